# A session that waits for another session's fill must never be stranded:
#
#  - the filler is cancelled (pg_cancel_backend): a waiter takes the fill
#    over at once and answers right, long before fill_wait_ms; of several
#    waiters only one runs the query;
#  - the filler is terminated (pg_terminate_backend): the same;
#  - a waiter's own statement_timeout ends its wait with the timeout error,
#    and its session stays usable;
#  - a waiter whose fill_wait_ms runs out computes the answer itself.
#
# Every session is a background psql with a timeout, so nothing can hang the
# test.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $node = new_node('filler_cancelled',
	redis => $redis,
	conf => "housing_cache.fill_wait_ms = 20000");

# Delay of the query: the session setting sf.sleep (seconds), so that the
# filler is slow and a waiter that takes over is quick, with one answer.
$node->safe_psql('postgres', q{
CREATE SCHEMA sf;
CREATE TABLE sf.items (id int PRIMARY KEY, version int NOT NULL, label text NOT NULL);
INSERT INTO sf.items SELECT i, 1, 'item ' || i FROM generate_series(1, 100) AS i;
SELECT housing_cache.watch_table('sf.items');
SELECT housing_cache.register_query('sf.slow_item',
  $q$SELECT json_build_object(
        'id', id, 'version', version, 'label', label,
        'slept', (SELECT pg_sleep(coalesce(nullif(current_setting('sf.sleep', true), ''), '0')::float8)) IS NULL)
       FROM sf.items WHERE id = $1$q$,
  '{int}', '{sf.items/id=$1}');
});

sub expected_answer
{
	my ($id) = @_;
	return $node->safe_psql('postgres',
		"SET housing_cache.enabled = off;\n"
		  . "SELECT housing_cache.fetch('sf.slow_item', '$id')::jsonb::text;");
}

# A background session with the given settings; returns [session, pid].
sub session
{
	my (%settings) = @_;
	my $s = $node->background_psql('postgres', on_error_stop => 0, timeout => 60);
	my $set = join '', map { "SET $_ = '$settings{$_}';\n" } sort keys %settings;
	$s->query_safe($set) if $set ne '';
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	$pid =~ s/\s+//g;
	return { psql => $s, pid => $pid };
}

# Send a statement without waiting for it; finish() collects it.
my $marker = 0;

sub send_query
{
	my ($s, $sql) = @_;
	my $m = 'done_' . ++$marker;
	$s->{marker} = $m;
	$s->{started} = time;
	$s->{psql}{stdout} = '';
	$s->{psql}{stderr} = '';
	$s->{psql}{stdin} .= "$sql\n;\n\\echo '$m'\n\\warn '$m'\n";
	$s->{psql}{run}->pump_nb;
	return;
}

# Wait (at most $timeout seconds) for the statement sent last; returns
# { out, err, elapsed } or dies on timeout.
sub finish
{
	my ($s, $timeout) = @_;
	my $m = $s->{marker};
	my $p = $s->{psql};
	my $deadline = time + $timeout;
	while (!($p->{stdout} =~ /$m\n/ && $p->{stderr} =~ /$m\n/))
	{
		die "statement of session $s->{pid} still running after $timeout s"
		  if time > $deadline;
		$p->{run}->pump_nb;
		usleep(10_000);
	}
	my $elapsed = time - $s->{started};
	(my $out = $p->{stdout}) =~ s/\n?$m\n//;
	(my $err = $p->{stderr}) =~ s/\n?$m\n//;
	$p->{stdout} = '';
	$p->{stderr} = '';
	return { out => $out, err => $err, elapsed => $elapsed };
}

sub is_done
{
	my ($s) = @_;
	$s->{psql}{run}->pump_nb;
	return $s->{psql}{stdout} =~ /$s->{marker}\n/;
}

sub wait_for_state
{
	my ($pid, $condition, $what) = @_;
	ok( $node->poll_query_until('postgres',
			"SELECT $condition FROM pg_stat_activity WHERE pid = $pid"),
		$what);
}

my $FETCH = "SELECT housing_cache.fetch('sf.slow_item', '%d')::jsonb::text;\n"
  . "SELECT tier FROM housing_cache.last_lookup()";

# --- the filler is cancelled ------------------------------------------------

{
	my $id = 5;
	my $expected = expected_answer($id);
	my $exec0 = stat($node, 'db_executions');
	my $waits0 = stat($node, 'fill_waits');

	my $filler = session('sf.sleep' => 3);
	my @waiters = map { session('sf.sleep' => 0.2) } 1 .. 3;

	send_query($filler, sprintf($FETCH, $id));
	wait_for_state($filler->{pid}, "wait_event = 'PgSleep'", 'cancel: the filler runs the slow query');
	for my $i (0 .. $#waiters)
	{
		send_query($waiters[$i], sprintf($FETCH, $id));
		wait_for_state($waiters[$i]{pid}, "wait_event_type = 'Extension'",
			'cancel: waiter ' . ($i + 1) . ' waits for the fill');
	}
	is(stat($node, 'fill_waits'), $waits0 + 3, 'cancel: three fill waits counted');
	ok(!is_done($_), 'cancel: a waiter is still waiting before the cancel') for $waiters[0];

	my $t0 = time;
	is($node->safe_psql('postgres', "SELECT pg_cancel_backend($filler->{pid})"),
		't', 'cancel: the filler is cancelled');

	my $f = finish($filler, 30);
	like($f->{err}, qr/canceling statement due to user request/, 'cancel: the filler got the cancel');

	for my $i (0 .. $#waiters)
	{
		my $r = finish($waiters[$i], 30);
		my $since = time - $t0;
		my $w = 'waiter ' . ($i + 1);
		is($r->{err}, '', "cancel: $w had no error");
		my ($answer) = split /\n/, $r->{out};
		is($answer, $expected, "cancel: $w got the right answer");
		cmp_ok($since, '<', 5,
			sprintf('cancel: %s answered %.2f s after the cancel (fill_wait_ms is 20 s)', $w, $since));
	}
	is(stat($node, 'db_executions'), $exec0 + 1,
		'cancel: of three waiters only one ran the query (the cancelled run is not counted)');
	is(stat($node, 'fill_timeouts'), 0, 'cancel: no fill timeout');

	# The filler's session is usable, and finds the answer the waiter stored.
	my ($out) = $filler->{psql}->query_safe(sprintf($FETCH, $id));
	is($out, "$expected\nl1", 'cancel: the cancelled session then reads the stored answer from L1');

	$_->{psql}->quit for $filler, @waiters;
}

# --- the filler is terminated -----------------------------------------------

{
	my $id = 6;
	my $expected = expected_answer($id);
	my $exec0 = stat($node, 'db_executions');

	my $filler = session('sf.sleep' => 3);
	my $waiter = session('sf.sleep' => 0.2);
	send_query($filler, sprintf($FETCH, $id));
	wait_for_state($filler->{pid}, "wait_event = 'PgSleep'", 'terminate: the filler runs the slow query');
	send_query($waiter, sprintf($FETCH, $id));
	wait_for_state($waiter->{pid}, "wait_event_type = 'Extension'", 'terminate: the waiter waits');

	my $t0 = time;
	is($node->safe_psql('postgres', "SELECT pg_terminate_backend($filler->{pid})"),
		't', 'terminate: the filler is terminated');
	my $r = finish($waiter, 30);
	my $since = time - $t0;
	is($r->{err}, '', 'terminate: the waiter had no error');
	is($r->{out}, "$expected\nmiss", 'terminate: the waiter ran the query itself and got the right answer');
	cmp_ok($since, '<', 5, sprintf('terminate: the waiter answered %.2f s after the termination', $since));
	is(stat($node, 'db_executions'), $exec0 + 1, 'terminate: one execution counted');

	$filler->{psql}{run}->kill_kill;
	$waiter->{psql}->quit;
}

# --- a waiter's statement_timeout ends its wait -----------------------------

{
	my $id = 7;
	my $expected = expected_answer($id);
	my $timeouts0 = stat($node, 'fill_timeouts');
	my $waits0 = stat($node, 'fill_waits');

	my $filler = session('sf.sleep' => 3);
	# sf.sleep = 0: had it computed the answer instead of waiting, it would
	# have answered at once, without a timeout.
	my $waiter = session('sf.sleep' => 0, statement_timeout => '500ms');
	my $other = session('sf.sleep' => 0);

	send_query($filler, sprintf($FETCH, $id));
	wait_for_state($filler->{pid}, "wait_event = 'PgSleep'", 'statement_timeout: the filler runs');
	send_query($waiter, sprintf($FETCH, $id));
	send_query($other, sprintf($FETCH, $id));
	my $r = finish($waiter, 30);
	like($r->{err}, qr/canceling statement due to statement timeout/,
		'statement_timeout: the waiting session gets the statement timeout error');
	cmp_ok($r->{elapsed}, '<', 2.5,
		sprintf('statement_timeout: ... after %.2f s, not when the 3 s fill ends', $r->{elapsed}));
	ok(!is_done($filler), 'statement_timeout: the filler is still running then');
	is(stat($node, 'fill_timeouts'), $timeouts0, 'statement_timeout: not counted as a fill timeout');

	my ($out, $failed) = $waiter->{psql}->query('SELECT 1');
	is($out, '1', 'statement_timeout: the session that timed out is still usable');

	my $f = finish($filler, 30);
	is($f->{out}, "$expected\nmiss", 'statement_timeout: the filler finishes with the right answer');
	my $o = finish($other, 30);
	is($o->{out}, "$expected\nl1", 'statement_timeout: another waiter gets the filled answer from L1');
	is(stat($node, 'fill_waits'), $waits0 + 2, 'statement_timeout: both waits counted');

	$waiter->{psql}->query_safe('SET statement_timeout = 0');
	($out) = $waiter->{psql}->query_safe(sprintf($FETCH, $id));
	is($out, "$expected\nl1", 'statement_timeout: the timed-out session then reads the answer from L1');

	$_->{psql}->quit for $filler, $waiter, $other;
}

# --- fill_wait_ms runs out: the waiter computes the answer itself ----------

{
	my $id = 8;
	my $expected = expected_answer($id);
	my $timeouts0 = stat($node, 'fill_timeouts');
	my $exec0 = stat($node, 'db_executions');

	my $filler = session('sf.sleep' => 3);
	my $waiter = session('sf.sleep' => 0, 'housing_cache.fill_wait_ms' => 500);
	send_query($filler, sprintf($FETCH, $id));
	wait_for_state($filler->{pid}, "wait_event = 'PgSleep'", 'fill_wait_ms: the filler runs');
	send_query($waiter, sprintf($FETCH, $id));
	my $r = finish($waiter, 30);
	is($r->{err}, '', 'fill_wait_ms: no error for the waiter');
	is($r->{out}, "$expected\nmiss", 'fill_wait_ms: the waiter computed the right answer itself');
	cmp_ok($r->{elapsed}, '>=', 0.4, sprintf('fill_wait_ms: ... after waiting %.2f s', $r->{elapsed}));
	cmp_ok($r->{elapsed}, '<', 2.5, 'fill_wait_ms: ... not until the filler finished');
	is(stat($node, 'fill_timeouts'), $timeouts0 + 1, 'fill_wait_ms: one fill timeout counted');

	my $f = finish($filler, 30);
	is($f->{out}, "$expected\nmiss", 'fill_wait_ms: the filler finishes with the right answer');
	is(stat($node, 'db_executions'), $exec0 + 2, 'fill_wait_ms: both ran the query');

	$_->{psql}->quit for $filler, $waiter;
}

# No claim is left behind: a fresh stampede-free read of a new key is quick.
my $t0 = time;
is($node->safe_psql('postgres', "SELECT housing_cache.fetch('sf.slow_item', '9')::jsonb::text"),
	expected_answer(9), 'afterwards a new key is filled normally');
cmp_ok(time - $t0, '<', 5, '... without waiting');

$node->stop;
$redis->stop;

done_testing();
