# The publisher worker and its queue (README, "Invalidation messages"):
# writers number their messages at COMMIT and copy them into a queue in
# shared memory; the "housing_cache publisher" background worker publishes
# it in number order, and a heartbeat with the last number given.
#
#  (a) under concurrent writers (several psql sessions committing at once)
#      the subscriber sees every commit's message, numbers strictly
#      increasing, no gap;
#  (b) the queue full: with the worker stopped (SIGSTOP), writes commit at
#      their usual speed, the messages that find no room are dropped and
#      counted in publish_failures; once the worker resumes (SIGCONT), the
#      queued ones arrive in order, the subscriber sees the gap, and the
#      next heartbeat's number covers it;
#  (c) the worker terminated (SIGTERM) is started again by the postmaster
#      (bgw_restart_time) and publishes what was queued meanwhile, without a
#      gap; killed (SIGKILL), the postmaster takes it for a crash and
#      restarts the cluster: a new epoch, and messages go out again;
#  (d) Redis down while writes commit: they commit, each lost message is
#      counted (asynchronously: polled), and publishing resumes once Redis
#      is back;
#  (e) a message too long for the queue goes out truncated (its table-wide
#      tags and "T/<star>" for each table), numbered like any other.
#
# The worker connects to no database, but is in pg_stat_activity
# (backend_type 'housing_cache publisher'); it is found there.
use strict;
use warnings;

use File::Temp ();
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $node = new_node('publisher', redis => $redis,
	conf => join("\n",
		'log_min_messages = warning',
		'restart_after_crash = on',
		'housing_cache.heartbeat_ms = 200',
		'housing_cache.breaker_backoff_ms = 100',
		'housing_cache.breaker_max_backoff_ms = 1000'));
$node->safe_psql('postgres', ten_listings_sql());
my $channel = $node->safe_psql('postgres', 'SHOW housing_cache.channel');

# --- a subscriber: redis-cli SUBSCRIBE, every message kept in arrival order ---------
my ($sub, $sub_out, $sub_err);
my @inbox;    # decoded messages not yet taken, heartbeats included

sub subscribe
{
	$sub->kill_kill if $sub;
	($sub_out, $sub_err) = ('', '');
	@inbox = ();
	$sub = IPC::Run::start(
		[ 'redis-cli', '-h', '127.0.0.1', '-p', $redis->port, 'SUBSCRIBE', $channel ],
		'<', \undef, '>', \$sub_out, '2>', \$sub_err);
	my $deadline = time + 30;
	while ($sub_out !~ /^subscribe\n\Q$channel\E\n1\n/)
	{
		die "the subscriber did not subscribe: '$sub_out' '$sub_err'" if time > $deadline || !$sub->pumpable;
		$sub->pump_nb;
		usleep(10_000);
	}
	$sub_out =~ s/^subscribe\n\Q$channel\E\n1\n//;
	return;
}
# Never leave the subscriber behind, nor the worker stopped (the node could
# not shut down).
my $stopped_pid;
END
{
	kill 'CONT', $stopped_pid if $stopped_pid;
	eval { $sub->kill_kill if $sub; };
}

sub pump
{
	$sub->pump_nb if $sub && $sub->pumpable;
	while ($sub_out =~ s/^message\n\Q$channel\E\n([^\n]*)\n//)
	{
		push @inbox, channel_messages($1);
	}
	return;
}

# Wait until $done->(\@inbox) is true (or $secs pass); returns its value.
sub wait_inbox
{
	my ($done, $secs) = @_;
	my $deadline = time + $secs;
	while (1)
	{
		pump();
		my $v = $done->(\@inbox);
		return $v if $v || time > $deadline;
		usleep(20_000);
	}
}

sub invalidations { return grep { $_->{type} eq 'invalidation' } @{ $_[0] } }
sub heartbeats { return grep { $_->{type} eq 'heartbeat' } @{ $_[0] } }

# Every message received until no invalidation came for $quiet seconds
# (heartbeats come every 200 ms and do not count), at most 30 s; the inbox
# is emptied.
sub settle
{
	my ($quiet) = @_;
	my $cap = time + 30;
	my $n = -1;
	my $deadline;
	while (time < $cap)
	{
		pump();
		my $now_n = invalidations(\@inbox);
		if ($now_n != $n)
		{
			$n = $now_n;
			$deadline = time + $quiet;
		}
		last if time >= $deadline;
		usleep(20_000);
	}
	my @all = @inbox;
	@inbox = ();
	return @all;
}

# Numbers strictly increasing by one from $from: the first that is not, or ''.
sub gaps
{
	my ($from, @seqs) = @_;
	for my $s (@seqs)
	{
		return "expected $from, got $s" if $s != $from;
		$from++;
	}
	return '';
}

# The heartbeat's promise, over a stream in arrival order: every message
# numbered up to a heartbeat's seq went out before it (or was dropped), so
# no invalidation that arrives after a heartbeat has a number <= its seq.
# Returns the first broken promise, or ''.
sub heartbeat_promise
{
	my (@stream) = @_;
	my $hb;
	for my $m (@stream)
	{
		if ($m->{type} eq 'heartbeat')
		{
			return "heartbeat $m->{seq} after heartbeat $hb" if defined $hb && $m->{seq} < $hb;
			$hb = $m->{seq};
		}
		elsif (defined $hb && $m->{seq} <= $hb)
		{
			return "message $m->{seq} arrived after heartbeat $hb";
		}
	}
	return '';
}

# A counter of housing_cache.stats once it reached $want (or after 30 s).
sub stat_reaches
{
	my ($column, $want) = @_;
	my $deadline = time + 30;
	my $v = stat($node, $column);
	while ($v < $want && time < $deadline)
	{
		usleep(50_000);
		$v = stat($node, $column);
	}
	return $v;
}

sub last_heartbeat_seq
{
	my $hb = wait_inbox(sub { (heartbeats($_[0]))[-1] }, 10);
	return $hb ? $hb->{seq} : undef;
}

# The publisher worker: not in pg_stat_activity (it connects to no
# database), so found among the postmaster's children by its title.
sub publisher_pid
{
	my $pid = $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'housing_cache publisher'});
	return $pid =~ /^\d+$/ ? $pid : undef;
}

sub wait_publisher
{
	my ($not) = @_;
	my $deadline = time + 60;
	while (time < $deadline)
	{
		my $pid = eval { publisher_pid() };
		return $pid if $pid && (!defined $not || $pid != $not);
		usleep(100_000);
	}
	return undef;
}

# n autocommit UPDATEs in one psql session; returns the seconds they took.
my $scratch = File::Temp::tempdir('publisher_XXXX', TMPDIR => 1, CLEANUP => 1);
my $batches = 0;

sub write_file
{
	my ($n, $offset) = @_;
	my $file = "$scratch/w" . ++$batches . '.sql';
	open my $fh, '>', $file or die $!;
	print $fh 'UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = ' . (1 + ($_ + $offset) % 10) . ";\n"
	  for 1 .. $n;
	close $fh;
	return $file;
}

sub start_writer
{
	my ($n, $offset) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'), '-f', write_file($n, $offset) ],
		'<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(180));
	return [ $h, \$out, \$err ];
}

sub finish_writer
{
	my ($w) = @_;
	my $ok = eval { $w->[0]->finish };
	return $ok ? ${ $w->[2] } : "psql failed or timed out: " . ($@ || ${ $w->[2] });
}

sub timed_writes
{
	my ($n) = @_;
	my $t0 = time;
	my $err = finish_writer(start_writer($n, 0));
	return (time - $t0, $err);
}

subscribe();
wait_inbox(sub { scalar heartbeats($_[0]) }, 10);
settle(0.3);

# --- (a) concurrent writers: every message, in number order, no gap ---------------------
{
	my $seq0 = last_heartbeat_seq();
	settle(0.3);
	my $failures0 = stat($node, 'publish_failures');
	my ($k, $n) = (4, 150);
	my @w = map { start_writer($n, $_ * 3) } 1 .. $k;
	my @errs = grep { length } map { finish_writer($_) } @w;
	is_deeply(\@errs, [], "(a) $k sessions committed $n UPDATEs each, at once");
	wait_inbox(sub { invalidations($_[0]) >= $k * $n }, 60);
	my @stream = settle(0.5);
	my @msgs = invalidations(\@stream);
	is(scalar @msgs, $k * $n, '(a) one message per commit arrived');
	is(gaps($seq0 + 1, map { $_->{seq} } @msgs), '', '(a) numbered strictly one after the other from the last heartbeat\'s, in arrival order');
	my %xids = map { $_->{xid} => 1 } @msgs;
	is(scalar keys %xids, $k * $n, '(a) each of a different transaction');
	is(stat($node, 'publish_failures'), $failures0, '(a) nothing dropped (the queue holds them all)');
	is(heartbeat_promise(@stream), '', '(a) no message arrived after a heartbeat whose number covers it');
}

# --- (b) the queue full ------------------------------------------------------------
$node->append_conf('postgresql.conf', 'housing_cache.publish_queue_kb = 64');
$node->restart;
is($node->safe_psql('postgres', 'SHOW housing_cache.publish_queue_kb'), '64kB', '(b) the queue is 64 kB');
subscribe();
wait_inbox(sub { scalar heartbeats($_[0]) }, 10);
{
	my $n = 600;    # a message is about 300 bytes: 64 kB hold about 200
	my ($normal, $err) = timed_writes($n);
	is($err, '', "(b) $n UPDATEs commit with the worker running");
	wait_inbox(sub { invalidations($_[0]) >= $n }, 60);
	settle(0.5);

	my $pid = publisher_pid();
	ok($pid, "(b) the publisher worker runs (pid $pid)");
	my $seq0 = last_heartbeat_seq();
	settle(0.3);
	my $failures0 = stat($node, 'publish_failures');
	kill 'STOP', $pid;
	$stopped_pid = $pid;
	my ($stopped, $err2) = timed_writes($n);
	my $failures1 = stat($node, 'publish_failures');
	my @while = invalidations([ settle(0.5) ]);
	kill 'CONT', $pid;
	$stopped_pid = undef;
	is($err2, '', "(b) $n UPDATEs commit with the worker stopped");
	cmp_ok($stopped, '<', 4 * $normal + 5,
		sprintf('(b) ... at their usual speed (%.2f s, %.2f s with the worker running)', $stopped, $normal));
	is(scalar @while, 0, '(b) nothing is published while the worker is stopped');
	my $dropped = $failures1 - $failures0;
	cmp_ok($dropped, '>', 0, "(b) the messages that found the queue full were dropped and counted ($dropped)");
	cmp_ok($dropped, '<', $n, '(b) ... not all of them: the queue held some');

	# (a heartbeat the worker was about to send when stopped may come first,
	# with the number of before: the promise below still holds for it)
	my $hb = wait_inbox(sub { (grep { $_->{seq} >= $seq0 + $n } heartbeats($_[0]))[0] }, 30);
	my @got = settle(0.5);
	my @msgs = invalidations(\@got);
	my $queued = $n - $dropped;
	is(scalar @msgs, $queued, "(b) once the worker resumes, the $queued queued messages arrive");
	is(gaps($seq0 + 1, map { $_->{seq} } @msgs), '', '(b) ... in number order, from the first number after the stop');
	is(heartbeat_promise(@got), '', '(b) ... none after a heartbeat whose number covers it');
	is($hb && $hb->{seq}, $seq0 + $n, '(b) the next heartbeat names the last number given: it covers the dropped ones');
	$node->safe_psql('postgres', 'UPDATE housing.listings SET title = title WHERE id = 1');
	my $next = wait_inbox(sub { (invalidations($_[0]))[0] }, 30);
	is($next && $next->{seq}, $seq0 + $n + 1, '(b) the next commit has the next number: the gap is what the subscriber missed');
	settle(0.3);
}

# --- (c) the worker terminated, then killed ------------------------------------------
{
	my $pid = publisher_pid();
	my $seq0 = last_heartbeat_seq();
	settle(0.3);
	kill 'TERM', $pid;
	my $deadline = time + 30;
	usleep(20_000) while kill(0, $pid) && time < $deadline;
	ok(!kill(0, $pid), '(c) the worker exits on SIGTERM');
	# committed while no worker runs (it is started again after 1 s): queued
	$node->safe_psql('postgres', join('', map { "UPDATE housing.listings SET title = title WHERE id = $_;\n" } 1 .. 3));
	note('a worker ran when the 3 UPDATEs had committed: ' . (publisher_pid() ? 'yes' : 'no'));
	my $new = wait_publisher($pid);
	ok($new, "(c) after SIGTERM the postmaster starts the worker again (pid $pid, then " . ($new // 'none') . ')');
	wait_inbox(sub { invalidations($_[0]) >= 3 }, 30);
	my @msgs = invalidations([ settle(0.5) ]);
	is(gaps($seq0 + 1, map { $_->{seq} } @msgs), '', '(c) the 3 messages queued meanwhile arrive, in order, without a gap');
	is(scalar @msgs, 3, '(c) ... and nothing else');
	my $epoch = $msgs[0] && $msgs[0]{epoch};

	$node->safe_psql('postgres', 'UPDATE housing.listings SET title = title WHERE id = 4');
	my $m = wait_inbox(sub { (invalidations($_[0]))[0] }, 30);
	is($m && $m->{seq}, $seq0 + 4, '(c) the new worker publishes the next commit');
	settle(0.3);

	# SIGKILL: a crash of a process attached to shared memory; the postmaster
	# restarts the whole cluster (restart_after_crash), which starts a new epoch
	$pid = publisher_pid();
	kill 'KILL', $pid;
	$node->poll_query_until('postgres', 'SELECT true') or die 'the server did not come back';
	my $again = wait_publisher($pid);
	ok($again, "(c) after SIGKILL the cluster restarts, with a new worker (" . ($again // 'none') . ')');
	like(slurp_file($node->logfile), qr/background worker "housing_cache publisher" \(PID $pid\) was terminated by signal 9/,
		'(c) ... the postmaster took it for a crash');
	settle(0.5);
	$m = undef;
	for (1 .. 50)    # the first sessions may still meet the restart
	{
		my ($ret) = $node->psql('postgres', 'UPDATE housing.listings SET title = title WHERE id = 5');
		if ($ret != 0)
		{
			usleep(200_000);
			next;
		}
		$m = wait_inbox(sub { (invalidations($_[0]))[0] }, 10);
		last;
	}
	ok($m, '(c) messages go out again after the crash restart');
	isnt($m && $m->{epoch}, $epoch, '(c) ... in a new epoch');
	settle(0.3);
}

# --- (d) Redis down while writes commit ----------------------------------------------
{
	settle(0.3);
	$node->safe_psql('postgres', 'UPDATE housing.listings SET title = title WHERE id = 6');
	my $last = wait_inbox(sub { (invalidations($_[0]))[0] }, 30);
	ok($last, '(d) a message before Redis goes down');
	settle(0.3);
	$sub->kill_kill;
	undef $sub;
	$redis->stop;
	my $failures0 = stat($node, 'publish_failures');
	my $n = 20;
	my ($secs, $err) = timed_writes($n);
	is($err, '', "(d) with Redis down, $n UPDATEs commit without an error or a warning (in ${\ sprintf('%.2f', $secs)} s)");
	is(stat_reaches('publish_failures', $failures0 + $n) - $failures0, $n,
		'(d) each lost message is counted in publish_failures (by the worker, soon after)');

	$redis->start;
	subscribe();
	my $m;
	my $deadline = time + 60;
	while (!$m && time < $deadline)
	{
		$node->safe_psql('postgres', 'UPDATE housing.listings SET title = title WHERE id = 7');
		$m = wait_inbox(sub { (invalidations($_[0]))[0] }, 0.5);
	}
	ok($m, '(d) once Redis is back, messages are published again');
	cmp_ok($m && $m->{seq}, '>', $last->{seq} + $n, '(d) ... numbered past the lost ones (the subscriber sees the gap)');
	# (a heartbeat that went out before that message may have come first)
	my $hb = wait_inbox(sub {
		my ($in) = @_;
		my ($at) = grep { $in->[$_] == $m } 0 .. $#$in;
		return (grep { $_->{type} eq 'heartbeat' } @$in[ $at + 1 .. $#$in ])[0];
	}, 10);
	ok($hb && $hb->{seq} >= $m->{seq}, '(d) ... and heartbeats too, covering it');
	is(heartbeat_promise(@inbox), '', '(d) no message arrived after a heartbeat whose number covers it');
}

# --- (e) a message larger than the queue can take ---------------------------------
# An entry may use at most half the queue: with 64 kB, a transaction whose
# message lists 256 finer tags of 300-byte city names (about 80 kB) is
# dropped however empty the queue is.  That is safe (counted, its number
# skipped, which consumers see as a lost message and answer by purging
# everything), but such a transaction then always loses its message, where
# the truncated form ("T/<star>" for each table, which always fits) would
# have told consumers what to purge.
{
	settle(0.3);
	my $seq0 = last_heartbeat_seq();
	settle(0.3);
	my $failures0 = stat($node, 'publish_failures');
	$node->safe_psql('postgres', q{
INSERT INTO housing.listings (id, title, city, neighborhood, price_cents, bedrooms, bathrooms, area_sqm, lat, lon)
SELECT 1000 + g, 't', repeat('c', 296) || lpad(g::text, 4, '0'), 'n', 1, 1, 1, 1, 0, 0
  FROM generate_series(1, 200) AS g});
	my $hb = wait_inbox(sub { (grep { $_->{seq} > $seq0 } heartbeats($_[0]))[0] }, 30);
	my @msgs = invalidations([ settle(0.3) ]);
	is($hb && $hb->{seq}, $seq0 + 1, '(e) a message too large for the queue is numbered, and the heartbeat covers it');
	is(stat($node, 'publish_failures'), $failures0, '(e) ... it is not lost');
	ok(@msgs == 1 && $msgs[0]{seq} == $seq0 + 1 && $msgs[0]{truncated}
		  && grep({ $_ eq 'housing.listings/*' } @{ $msgs[0]{tags} }),
		'(e) ... it goes out truncated, naming housing.listings/*')
	  or diag explain \@msgs;
}

$sub->kill_kill;
undef $sub;
$node->stop;
$redis->stop;
done_testing();
