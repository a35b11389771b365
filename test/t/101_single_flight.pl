# Stampede protection: when many sessions miss the same key at once, only
# one of them runs the query; the others wait for its answer.
#
# 32 sessions (pgbench, all started together) ask for one cold key of a
# deliberately slow query.  With housing_cache.single_flight on, the query
# runs exactly once and every session gets the right answer; the same after
# a write has invalidated the key under load.  With single_flight off, on
# another cold key, most of the sessions run the query: that contrast shows
# the first result is the mechanism at work, not lucky timing.
use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $clients = 32;
my $sleep = 1.0;    # seconds the query takes; all clients start well within it

my $redis = HousingCache::Redis->new;
my $node = new_node('single_flight',
	redis => $redis,
	conf => "max_connections = 60\n"
	  . "housing_cache.fill_wait_ms = 30000\n"
	  . "log_statement = 'none'");

# A watched table and a slow registered query over it.  The delay comes from
# a session setting (sf.sleep), so the answer is the same however long a
# session makes the query take.
$node->safe_psql('postgres', q{
CREATE SCHEMA sf;
CREATE TABLE sf.items (id int PRIMARY KEY, version int NOT NULL, label text NOT NULL);
INSERT INTO sf.items SELECT i, 1, 'item ' || i FROM generate_series(1, 100) AS i;
UPDATE sf.items SET label = 'item 50 ' || repeat('x', 200) WHERE id = 50;
SELECT housing_cache.watch_table('sf.items');
SELECT housing_cache.register_query('sf.slow_item',
  $q$SELECT json_build_object(
        'id', id, 'version', version, 'label', label,
        'slept', (SELECT pg_sleep(coalesce(nullif(current_setting('sf.sleep', true), ''), '0')::float8)) IS NULL)
       FROM sf.items WHERE id = $1$q$,
  '{int}', '{sf.items/id=$1}');
});

# The answer the query itself gives (cache off, no delay), as jsonb text.
sub expected_answer
{
	my ($id) = @_;
	return $node->safe_psql('postgres',
		"SET housing_cache.enabled = off;\n"
		  . "SELECT housing_cache.fetch('sf.slow_item', '$id')::jsonb::text;");
}

# Run $clients sessions at once, each fetching item $id once and checking
# the answer against $expected (a mismatch divides by zero, which aborts
# that client and makes pgbench exit non-zero).  Extra settings for every
# session go in $options (PGOPTIONS).  Returns pgbench's exit code, output
# and error output.
my $script_no = 0;

sub stampede
{
	my ($id, $expected, $options, $n) = @_;
	$n //= $clients;
	my $md5 = md5_hex($expected);
	my $script = $node->basedir . '/stampede_' . ++$script_no . '.sql';
	PostgreSQL::Test::Utils::append_to_file($script,
		"SELECT 1 / (md5(housing_cache.fetch('sf.slow_item', '$id')::jsonb::text) = '$md5')::int;\n");

	my ($out, $err) = ('', '');
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'postgres';
	local $ENV{PGOPTIONS} = "-c sf.sleep=$sleep" . ($options ? " $options" : '');
	my $ok = IPC::Run::run(
		[ 'pgbench', '-n', '-c', $n, '-j', 2, '-t', 1, '-f', $script ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(120));
	note "pgbench output:\n$out\n$err";
	return ($ok ? 0 : $? >> 8, $out, $err);
}

sub stats
{
	my %s;
	$s{$_} = stat($node, $_) for qw(db_executions misses fill_waits fill_timeouts l1_hits oversize);
	return \%s;
}

sub delta
{
	my ($before, $after) = @_;
	return { map { $_ => $after->{$_} - $before->{$_} } keys %$after };
}

# --- single-flight on: one execution for 32 sessions ------------------------

my $expected7 = expected_answer(7);
like($expected7, qr/"id": 7\b/, 'the query answers for item 7');

my $s0 = stats();
my ($rc, $out, $err) = stampede(7, $expected7);
my $d = delta($s0, stats());
is($rc, 0, "single_flight on: all $clients sessions ran without error and got the right answer");
like($out, qr{number of transactions actually processed: $clients/$clients},
	"... all $clients of them");
is($d->{db_executions}, 1, "single_flight on: $clients concurrent sessions on a cold key ran the query once");
is($d->{misses}, 1, '... and counted one miss');
is($d->{fill_timeouts}, 0, '... with no fill timeout');
cmp_ok($d->{fill_waits}, '>=', $clients / 2,
	"... while most sessions waited for the fill (fill_waits = $d->{fill_waits})");
diag("single_flight on: db_executions +$d->{db_executions} for $clients sessions "
	  . "(fill_waits +$d->{fill_waits}, l1_hits +$d->{l1_hits})");
my $with_sf = $d->{db_executions};

# The next reader gets the stored answer without running the query.
my $r = $node->safe_psql('postgres',
	"SELECT housing_cache.fetch('sf.slow_item', '7')::jsonb::text;\n"
	  . "SELECT tier FROM housing_cache.last_lookup();");
is($r, "$expected7\nl1", 'afterwards, item 7 is served from L1 with the same answer');

# --- the same after an invalidation, while the key is hot -------------------

$node->safe_psql('postgres', "UPDATE sf.items SET version = 2, label = 'item seven' WHERE id = 7");
my $expected7b = expected_answer(7);
like($expected7b, qr/"version": 2\b/, 'after the update the query answers version 2');

$s0 = stats();
($rc, $out, $err) = stampede(7, $expected7b);
$d = delta($s0, stats());
is($rc, 0, "after an update: all $clients sessions got the new answer");
is($d->{db_executions}, 1, "after an update: $clients concurrent sessions ran the query once");

# --- single-flight off: nearly every session runs the query -----------------

my $expected8 = expected_answer(8);
$s0 = stats();
($rc, $out, $err) = stampede(8, $expected8, '-c housing_cache.single_flight=off');
$d = delta($s0, stats());
is($rc, 0, "single_flight off: all $clients sessions got the right answer");
cmp_ok($d->{db_executions}, '>', 16,
	"single_flight off: $clients concurrent sessions on a cold key ran the query many times");
is($d->{fill_waits}, 0, '... and nobody waited');
diag("single_flight off: db_executions +$d->{db_executions} for $clients sessions");
my $without_sf = $d->{db_executions};

# --- an answer that cannot be stored: waiters must not queue up -----------
#
# With max_value_bytes below the size of the answer, the filler serves it
# but stores it nowhere.  Its waiters learn that when it releases the claim
# and then all compute at once, rather than claim the fill one after the
# other (a queue: 8 sessions on a 1 s query would take until fill_wait_ms
# ran out).  So the slowest take about two query times.

{
	my $n = 8;
	my $expected50 = expected_answer(50);
	$s0 = stats();
	($rc, $out, $err) = stampede(50, $expected50,
		'-c housing_cache.max_value_bytes=64 -c housing_cache.fill_wait_ms=2500', $n);
	$d = delta($s0, stats());
	is($rc, 0, "oversize answer: all $n sessions got the right answer");
	cmp_ok($d->{oversize}, '>=', 1, '... which was too large to store');
	my ($avg) = $out =~ /latency average = ([\d.]+) ms/;
	diag(sprintf('oversize answer: %d sessions on a %.1f s query: average latency %.2f s, '
			. 'db_executions +%d, fill_timeouts +%d',
			$n, $sleep, $avg / 1000, $d->{db_executions}, $d->{fill_timeouts}));
	cmp_ok($avg, '<', 2.5 * $sleep * 1000,
		"oversize answer: $n concurrent sessions take about two query times, not a queue of them");
	is($d->{fill_timeouts}, 0, '... and no wait ran out');
}

# --- single-flight is SUSET: an ordinary role cannot turn it off ------------

$node->safe_psql('postgres', 'CREATE ROLE sf_user LOGIN');
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	'SET housing_cache.single_flight = off',
	extra_params => [ '-U', 'sf_user' ]);
isnt($ret, 0, 'an ordinary role cannot turn single_flight off');
like($stderr, qr/permission denied/, '... permission denied');

diag("query executions for $clients concurrent cold reads: "
	  . "$with_sf with single-flight, $without_sf without");

$node->stop;
$redis->stop;

done_testing();
