# Redis absent at start: the server points at a port where nothing listens.
# Calls still answer right, without an error, from the database (never from
# Redis), invalidation still works, and the failures are visible in the
# stats.  Once Redis is started on that port and the circuit breaker's
# backoff has passed, answers are cached in Redis again.  L1 is off so that
# a cached answer can only come from Redis.
use strict;
use warnings;

use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use HousingCache::Redis;
use HousingCache::Test;

# A port that was free a moment ago; the server that held it is stopped, and
# started again on the same port later.
my $redis = HousingCache::Redis->new;
my $port = $redis->port;
$redis->stop;
ok(!$redis->is_running, "nothing listens on port $port");

# Short backoffs, so that the test need not wait long for the breaker.
my $node = new_node(
	'redis_absent',
	redis_port => $port,
	conf => join("\n",
		'housing_cache.l1_size_mb = 0',
		'housing_cache.breaker_backoff_ms = 50',
		'housing_cache.breaker_max_backoff_ms = 200'));
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname "
		  . "WHERE e.extversion = a.default_version AND e.extname IN ('housing_cache', 'housing_portal')"),
	'2', 'CREATE EXTENSION worked without Redis');

# Ten listings: ids 1-5 in Boston, 6-10 in Denver; nothing depends on now().
$node->safe_psql('postgres', ten_listings_sql());

# One cached call in a new session.  Unlike safe_psql, also returns what the
# client got on stderr (notices, warnings, errors), which must be nothing.
sub fetch
{
	my ($call) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		"SELECT ($call)::jsonb::text;\n"
		  . "SELECT tier || '|' || coalesce(bypass_reason, '') FROM housing_cache.last_lookup();");
	my @lines = split /\n/, $out, -1;
	return { ret => $ret, err => $err, out => $out } unless @lines == 2;
	my ($tier, $reason) = split /\|/, $lines[1], 2;
	return {
		ret => $ret,
		err => $err,
		json => $lines[0] eq '' ? undef : decode_json($lines[0]),
		tier => $tier,
		reason => $reason,
	};
}

# The same call with the cache turned off.
sub uncached
{
	my ($call) = @_;
	my $out = $node->safe_psql('postgres',
		"SET housing_cache.enabled = off;\nSELECT ($call)::jsonb::text;");
	return $out eq '' ? undef : decode_json($out);
}

my @calls = (
	"housing_cache.get_listing(1)",
	"housing_cache.search_listings('Boston')",
	"housing_cache.city_stats('Denver')");

my $errors0 = stat($node, 'redis_errors');
for my $call (@calls)
{
	my $expected = uncached($call);
	for my $i (1 .. 3)
	{
		my $r = fetch($call);
		is($r->{ret}, 0, "Redis absent: $call #$i succeeds");
		is($r->{err}, '', "Redis absent: $call #$i sends no error, warning or notice");
		like($r->{tier} // '', qr/^(miss|bypass)$/, "Redis absent: $call #$i runs the query");
		is_deeply($r->{json}, $expected, "Redis absent: $call #$i answers right");
	}
}
cmp_ok(stat($node, 'redis_errors'), '>', $errors0, 'Redis absent: Redis errors were counted');
cmp_ok(stat($node, 'breaker_opens'), '>=', 1, 'Redis absent: the circuit breaker opened');
is(stat($node, 'l2_hits'), 0, 'Redis absent: no L2 hit');
is(stat($node, 'l2_stores'), 0, 'Redis absent: nothing stored');

# Writes commit (their publish fails quietly) and still invalidate: the
# generations are in shared memory, not in Redis.
my $failures0 = stat($node, 'publish_failures');
my ($ret, $out, $err) = $node->psql('postgres',
	'UPDATE housing.listings SET price_cents = 45600000 WHERE id = 1');
is($ret, 0, 'Redis absent: an UPDATE commits');
is($err, '', 'Redis absent: ... without an error or warning');
is(stat($node, 'publish_failures'), $failures0 + 1, 'Redis absent: its publish counted as failed');
my $r = fetch('housing_cache.get_listing(1)');
is($r->{json}{price_cents}, 45600000, 'Redis absent: the next call shows the new price');

# Redis comes up on that port.  After the breaker's longest backoff (200 ms)
# the next call probes Redis, finds no answer, stores it; the call after that
# is an L2 hit.
$redis->start;
ok($redis->is_running, "Redis started on port $port");
usleep(500_000);

my $call = 'housing_cache.get_listing(1)';
$r = fetch($call);
is($r->{err}, '', 'Redis back: no error');
is($r->{tier}, 'miss', 'Redis back: the first call after the backoff runs the query');
is($r->{json}{price_cents}, 45600000, 'Redis back: ... and answers right');
is(stat($node, 'l2_stores'), 1, 'Redis back: ... and stores the answer in Redis');
is($node->safe_psql('postgres', 'SELECT breaker_state FROM housing_cache.stats'),
	'closed', 'Redis back: the breaker is closed');

$r = fetch($call);
is($r->{tier}, 'l2', 'Redis back: the next call is an L2 hit');
is($r->{json}{price_cents}, 45600000, 'Redis back: ... with the right answer');

for my $c (@calls[ 1 .. $#calls ])
{
	is(fetch($c)->{tier}, 'miss', "Redis back: $c fills");
	$r = fetch($c);
	is($r->{tier}, 'l2', "Redis back: $c is then an L2 hit");
	is_deeply($r->{json}, uncached($c), "Redis back: $c answers right");
}

$node->stop;
$redis->stop;

done_testing();
