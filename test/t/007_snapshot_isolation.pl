# REPEATABLE READ and SERIALIZABLE transactions bypass the cache (reason
# 'snapshot isolation'): their snapshot may be older than the cached answers,
# so they run the query on their own snapshot, and never store what they
# saw.  READ COMMITTED transactions use the cache.
#
# Run twice: without L1 (cached answers come from Redis, 'l2') and with L1
# ('l1').
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;

# Ten listings: ids 1-5 in Boston, 6-10 in Denver; nothing depends on now().
my $listings_sql = ten_listings_sql();

# One cached call, in a BackgroundPsql session: the answer (decoded; undef
# for SQL NULL), the tier and the bypass reason from last_lookup().
sub fetch
{
	my ($session, $call) = @_;
	return cached_call(sub { $session->query_safe($_[0]) }, $call);
}

sub price_of
{
	my ($answer, $id) = @_;
	my @found = grep { $_->{id} == $id } @{ $answer->{items} };
	return @found ? $found[0]{price_cents} : undef;
}

sub scenario
{
	my ($cached, $conf) = @_;
	my $node = new_node("snapshot_$cached", redis => $redis, conf => $conf);
	my $n = $node->name;
	$node->safe_psql('postgres', $listings_sql);

	my $reader = $node->background_psql('postgres');
	my $rr = $node->background_psql('postgres');
	my $listing = 'housing_cache.get_listing(1)';
	my $boston = "housing_cache.search_listings('Boston')";

	for my $call ($listing, $boston)
	{
		is(fetch($reader, $call)->{tier}, 'miss', "$n: $call fills");
		is(fetch($reader, $call)->{tier}, $cached, "$n: $call is cached");
	}

	# A REPEATABLE READ transaction takes its snapshot on its first call.
	my $bypasses0 = stat($node, 'bypasses');
	$rr->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ;');
	my $r = fetch($rr, $listing);
	is($r->{tier}, 'bypass', "$n: in REPEATABLE READ, the call bypasses the cache");
	is($r->{reason}, 'snapshot isolation', "$n: ... because of snapshot isolation");
	is($r->{json}{price_cents}, 31000000, "$n: ... and answers right");

	# Another session commits a new price, a third one caches the new answer.
	$node->safe_psql('postgres', 'UPDATE housing.listings SET price_cents = 77700000 WHERE id = 1');
	$r = fetch($reader, $listing);
	is($r->{tier}, 'miss', "$n: after the commit, a READ COMMITTED call recomputes");
	is($r->{json}{price_cents}, 77700000, "$n: ... the new price");
	is(fetch($reader, $listing)->{tier}, $cached, "$n: ... and caches it");
	is(price_of(fetch($reader, $boston)->{json}, 1), 77700000,
		"$n: the Boston search shows the new price");
	is(fetch($reader, $boston)->{tier}, $cached, "$n: ... and caches it");

	# The REPEATABLE READ transaction keeps seeing its snapshot, not the cache.
	$r = fetch($rr, $listing);
	is($r->{tier}, 'bypass', "$n: the REPEATABLE READ transaction still bypasses");
	is($r->{json}{price_cents}, 31000000, "$n: ... and sees the price of its snapshot");
	$r = fetch($rr, $boston);
	is($r->{tier}, 'bypass', "$n: its search bypasses too");
	is($r->{reason}, 'snapshot isolation', "$n: ... because of snapshot isolation");
	is(price_of($r->{json}, 1), 31000000, "$n: ... and sees the price of its snapshot");
	$rr->query_safe('COMMIT;');
	is(stat($node, 'bypasses'), $bypasses0 + 3, "$n: three bypasses counted");

	# What it saw was not stored: the cache still holds the new price.
	$r = fetch($reader, $listing);
	is($r->{tier}, $cached, "$n: after the REPEATABLE READ transaction, the listing is cached");
	is($r->{json}{price_cents}, 77700000, "$n: ... with the new price");
	$r = fetch($reader, $boston);
	is($r->{tier}, $cached, "$n: the search is cached");
	is(price_of($r->{json}, 1), 77700000, "$n: ... with the new price");

	# SERIALIZABLE bypasses too; so does a session defaulting to REPEATABLE READ.
	$rr->query_safe('BEGIN ISOLATION LEVEL SERIALIZABLE;');
	$r = fetch($rr, $listing);
	is($r->{tier}, 'bypass', "$n: in SERIALIZABLE, the call bypasses");
	is($r->{reason}, 'snapshot isolation', "$n: ... because of snapshot isolation");
	is($r->{json}{price_cents}, 77700000, "$n: ... and answers right");
	$rr->query_safe('COMMIT;');

	$rr->query_safe("SET default_transaction_isolation = 'repeatable read';");
	$r = fetch($rr, $boston);
	is($r->{tier}, 'bypass', "$n: a single statement in REPEATABLE READ bypasses");
	is($r->{reason}, 'snapshot isolation', "$n: ... because of snapshot isolation");
	$rr->query_safe('RESET default_transaction_isolation;');

	# READ COMMITTED, in a transaction block or not, uses the cache.
	$rr->query_safe('BEGIN ISOLATION LEVEL READ COMMITTED;');
	$r = fetch($rr, $listing);
	is($r->{tier}, $cached, "$n: in a READ COMMITTED transaction, the call is cached");
	$rr->query_safe('COMMIT;');
	is(fetch($rr, $boston)->{tier}, $cached, "$n: after RESET, the session uses the cache again");

	$reader->quit;
	$rr->quit;
	$node->stop;
}

scenario('l2', 'housing_cache.l1_size_mb = 0');
scenario('l1', '');

$redis->stop;

done_testing();
