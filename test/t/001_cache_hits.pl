# Repeated calls are served from Redis (L2): the second identical call does
# not run the query, returns the same answer as the query itself, and is
# found under a key that really is in Redis.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;

# L1 (in-server) off: this test is about the Redis tier.
my $node = new_node('cache_hits',
	redis => $redis,
	conf => "housing_cache.l1_size_mb = 0");

# Ten listings: ids 1-5 in Boston, 6-10 in Denver; nothing depends on now().
$node->safe_psql('postgres', ten_listings_sql() . q{
-- the engine's generic entry point, on a query of our own (fetch() refuses
-- the built-in ones, whose functions validate their arguments)
SELECT housing_cache.register_query('test.listing',
    'SELECT row_to_json(l) FROM housing.listings l WHERE l.id = $1',
    '{bigint}', '{housing.listings/id=$1}');
});

# One cached call in a new session: its answer (decoded; undef for SQL
# NULL) and how last_lookup() says it was served.
sub fetch
{
	my ($call) = @_;
	return cached_call(sub { $node->safe_psql('postgres', $_[0]) }, $call);
}

# The same call with the cache turned off: what the query itself answers.
sub uncached
{
	my ($call) = @_;
	my $out = $node->safe_psql('postgres',
		"SET housing_cache.enabled = off;\nSELECT ($call)::jsonb::text;");
	return $out eq '' ? undef : decode_json($out);
}

my @calls = (
	[ "housing_cache.search_listings('Boston')", sub { $_[0]{total} == 5 } ],
	[
		"housing_cache.search_listings(city => 'Denver', sort => 'price_desc', page_size => 2)",
		sub { $_[0]{total} == 5 && @{ $_[0]{items} } == 2 && $_[0]{items}[0]{id} == 10 }
	],
	[ "housing_cache.search_listings()", sub { $_[0]{total} == 10 } ],
	[ "housing_cache.get_listing(3)", sub { $_[0]{id} == 3 && $_[0]{city} eq 'Boston' } ],
	[ "housing_cache.get_listing(4242)", sub { !defined $_[0] } ],
	[ "housing_cache.city_stats('Denver')", sub { $_[0]{active_count} == 5 } ],
	[ "housing_cache.fetch('test.listing', '7')", sub { $_[0]{id} == 7 } ],);

for my $c (@calls)
{
	my ($call, $check) = @$c;

	my $exec0 = stat($node, 'db_executions');
	my $hits0 = stat($node, 'l2_hits');

	my $first = fetch($call);
	is($first->{tier}, 'miss', "$call: first call runs the query");
	ok($check->($first->{json}), "$call: first answer is right");
	# a search is composed: its id list, then its cards, one query each
	my $runs = $call =~ /search_listings/ ? 2 : 1;
	is(stat($node, 'db_executions'), $exec0 + $runs, "$call: first call executed " . ($runs == 1 ? 'once' : 'its list and fragment queries once'));
	like($first->{key}, qr/^hc:[0-9a-f]{32}$/, "$call: first call reports its key");
	is($redis->cli('EXISTS', $first->{key}), '1', "$call: the answer was stored in Redis");

	my $second = fetch($call);
	is($second->{tier}, 'l2', "$call: second call is served from Redis");
	is($second->{key}, $first->{key}, "$call: second call looks up the same key");
	is_deeply($second->{json}, $first->{json}, "$call: second call returns the same answer");
	is(stat($node, 'db_executions'), $exec0 + $runs, "$call: second call did not execute the query");
	is(stat($node, 'l2_hits'), $hits0 + 1, "$call: second call counted as an L2 hit");

	is_deeply($second->{json}, uncached($call), "$call: cached answer equals the query's own");
}

# It really is Redis that answers: without the key, the call is a miss again.
my $call = "housing_cache.get_listing(3)";
my $r = fetch($call);
is($r->{tier}, 'l2', 'get_listing(3) still cached');
$redis->cli('DEL', $r->{key});
my $exec0 = stat($node, 'db_executions');
$r = fetch($call);
is($r->{tier}, 'miss', 'after DEL of its key in Redis, get_listing(3) runs the query again');
is($r->{json}{id}, 3, '... and answers right');
is(stat($node, 'db_executions'), $exec0 + 1, '... executing it once');
is(fetch($call)->{tier}, 'l2', '... and the next call is an L2 hit again');

# Parameters are canonicalized: '007' and '7' for a bigint are one answer.
$r = fetch("housing_cache.fetch('test.listing', '007')");
is($r->{tier}, 'l2', "fetch('test.listing', '007') hits the answer of '7'");
is($r->{json}{id}, 7, '... which is listing 7');

# Different parameters are a different answer.
$r = fetch("housing_cache.search_listings('Boston', page_size => 2)");
is($r->{tier}, 'miss', 'another page size is another answer');
is(scalar @{ $r->{json}{items} }, 2, '... with its own page size');

is(stat($node, 'redis_errors'), 0, 'no Redis error along the way');

$node->stop;
$redis->stop;

done_testing();
