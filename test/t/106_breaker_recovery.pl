# How quickly Redis is used again after an outage.
#
# 1. A session whose Redis connection dates from before a Redis restart
#    finds it dead on its next call.  That is not an outage: Redis is up, and
#    the session should reconnect and be served from Redis, without opening
#    the breaker for every session.
# 2. When Redis hangs (SIGSTOP), every call in flight times out at once;
#    those concurrent failures are one outage, noticed once.  The breaker
#    should back off from breaker_backoff_ms, doubling per failed probe, and
#    so close soon after Redis answers again.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;

# L1 off: every read goes to Redis.  Default breaker settings.
my $node = new_node('breaker_recovery',
	redis => $redis,
	conf => "log_statement = none\n"
	  . "housing_cache.l1_size_mb = 0");

$node->safe_psql('postgres', q{
CREATE SCHEMA br;
CREATE TABLE br.items (id int PRIMARY KEY, version int NOT NULL);
INSERT INTO br.items SELECT i, 1 FROM generate_series(1, 100) AS i;
SELECT housing_cache.watch_table('br.items');
SELECT housing_cache.register_query('br.item',
  $q$SELECT json_build_object('id', id, 'version', version) FROM br.items WHERE id = $1$q$,
  '{int}', '{br.items/id=$1}');
});

my $FETCH = "SELECT housing_cache.fetch('br.item', '%d')::json->>'id';\n"
  . "SELECT tier FROM housing_cache.last_lookup()";

sub breaker
{
	return $node->safe_psql('postgres',
		"SELECT breaker_state || ' opens=' || breaker_opens || ' closes=' || breaker_closes "
		  . "|| ' errors=' || redis_errors FROM housing_cache.stats");
}

# --- 1. connections from before a Redis restart ----------------------------

my @sessions = map { $node->background_psql('postgres') } 1 .. 4;
# Each session connects to Redis (item 1 is filled by the first).
for my $s (@sessions)
{
	my $out = $s->query_safe(sprintf($FETCH, 1));
	like($out, qr/^1\n(miss|l2)$/, 'a session reads item 1 through Redis');
}

$redis->kill9;
$redis->start;

# A new session fills item 2 into the restarted Redis.
is($node->safe_psql('postgres', sprintf($FETCH, 2)), "2\nmiss", 'after the Redis restart, item 2 is filled');
is($node->safe_psql('postgres', sprintf($FETCH, 2)), "2\nl2", '... and served from Redis to a new session');

my $opens0 = stat($node, 'breaker_opens');
my $errors0 = stat($node, 'redis_errors');
my @tiers = map { (split /\n/, $_->query_safe(sprintf($FETCH, 2)))[1] } @sessions;
my $opened = stat($node, 'breaker_opens') - $opens0;
my $errors = stat($node, 'redis_errors') - $errors0;
diag("sessions connected before the Redis restart read item 2 from: @tiers; "
	  . "breaker opened $opened time(s), $errors Redis error(s)");
is("@tiers", join(' ', ('l2') x @sessions),
	'sessions connected before the restart are served from Redis');
is($opened, 0, 'their dead connections do not open the breaker');
is($errors, 0, '... nor count as Redis errors');
$_->quit for @sessions;

# --- 2. Redis hangs while calls are in flight ------------------------------

# Let the breaker close, if the sessions above opened it.
ok( $node->poll_query_until('postgres',
		"SELECT housing_cache.fetch('br.item', '3') IS NOT NULL "
		  . "AND breaker_state = 'closed' FROM housing_cache.stats"),
	'the breaker is closed before the hang');

# 8 sessions keep reading (each read is a Redis GET).
my $dir = $node->basedir;
PostgreSQL::Test::Utils::append_to_file("$dir/reader.sql",
	"\\set k random(1, 50)\nSELECT housing_cache.fetch('br.item', :k::text);\n");
my ($out, $err) = ('', '');
my $pgbench;
{
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'postgres';
	$pgbench = IPC::Run::start(
		[ 'pgbench', '-n', '-c', 8, '-j', 2, '-T', 40, '-f', "$dir/reader.sql" ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(60));
}
sleep 1;

# The readers are connected.  On a loaded machine their first connections
# to Redis may have timed out and opened the breaker: let it close again,
# so that what follows counts the hang alone.
ok( $node->poll_query_until('postgres',
		"SELECT breaker_state = 'closed' FROM housing_cache.stats"),
	'the breaker is closed with the readers running');

$opens0 = stat($node, 'breaker_opens');
$errors0 = stat($node, 'redis_errors');
my $paused = time;
$redis->pause;
sleep 1;
$redis->resume;
my $resumed = time;
my $paused_for = $resumed - $paused;
my $errors_at_hang = stat($node, 'redis_errors') - $errors0;

# The readers probe Redis as soon as the breaker lets them.  Each failed
# probe doubled the backoff from 500 ms, so the backoff under way when
# Redis answers again is at most twice the time it was paused (a slow
# machine stretches that "1 s"), plus 500 ms.
my $closed_after;
while (time - $resumed < 20)
{
	if (breaker() =~ /^closed/)
	{
		$closed_after = time - $resumed;
		last;
	}
	usleep(100_000);
}
my $log = slurp_file($node->logfile);
my @announced = $log =~ /is unavailable \(.*?\); skipping it for (\d+) ms/g;
diag(sprintf('Redis paused for 1 s with 8 readers: %d Redis errors, log says "skipping it for %s ms", '
		  . 'breaker %s', $errors_at_hang, $announced[-1] // '?',
		defined $closed_after ? sprintf('closed %.2f s after Redis answered again', $closed_after)
		: 'still open 20 s after Redis answered again'));
cmp_ok(stat($node, 'breaker_opens') - $opens0, '>=', 1, 'the hang opened the breaker');
my $bound = 2 * $paused_for + 0.5 + 2;
ok(defined $closed_after && $closed_after < $bound,
	sprintf('the breaker closes within %.1f s of Redis answering again (twice the %.1f s pause + 500 ms + 2 s)',
		$bound, $paused_for));

$pgbench->kill_kill;
$node->stop;
$redis->stop;

done_testing();
