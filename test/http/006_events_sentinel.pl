# hc_http's event stream under Redis Sentinel.
#
# A master (a), a replica (b) and three sentinels (quorum 2, down-after
# 1000 ms, failover-timeout 3000 ms), every one password-protected; the
# engine (housing_cache.redis_sentinels, set with ALTER SYSTEM and a reload)
# and hc_http (--redis-sentinels, both passwords from files) know only the
# sentinels.  Phases:
#
#   options    malformed --redis-sentinels and --redis-sentinel-master (and
#              their environment variables) are refused at start
#   found      hc_http subscribes at the master the sentinels name
#              (confirmed by ROLE), and a write reaches a subscriber
#   kill       SIGKILL of the master: the subscriber gets `reset` once
#              hc_http is subscribed at the promoted replica, then the
#              `invalidate` of a write committed after that.  Measured:
#              the time from the kill to the reset (and to the sentinels'
#              naming the new master); a note line (prove -v, or the log)
#   silence    a second hc_http on a channel nobody publishes on: the
#              sentinels are made to name another master (c) while its
#              connection to b stays up; after 3 s without a message it
#              asks them, moves to c (reset), and hears what is published
#              there; the first hc_http, hearing the engine's heartbeats,
#              stays where it is
#   dead       a sentinel that does not answer is skipped; with none
#              answering the stream is served, the outage logged once, and
#              SIGTERM ends hc_http at once
#
# Timing is asserted only as generous bounds.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use POSIX ();
use JSON::PP;
use Test::More;
use Time::HiRes qw(time usleep);
use Time::Local qw(timegm);

use HcHttp;
use HousingCache::Redis;
use HousingCache::Sentinel;

my $bound = 30;    # seconds: any recovery slower than this fails
my $pw = 'redis-pw-http-6Rkq';
my $sentinel_pw = 'sentinel-pw-http-Qe9w';
my $name = 'hchttp';
my $channel = 'housing_cache:invalidations';
my $db = 'postgres';

# --- options refused at start ------------------------------------------------------------------
sub run_bin
{
	my ($env, @args) = @_;
	my $pid = open(my $fh, '-|') // die "fork: $!";
	if ($pid == 0)
	{
		open STDERR, '>&', \*STDOUT;
		open STDIN, '<', '/dev/null';
		$ENV{$_} = $env->{$_} for keys %$env;
		exec $HcHttp::BIN, '--port', '0', '--db', 'host=127.0.0.1 port=1 dbname=none', @args
		  or POSIX::_exit(127);
	}
	local $/;
	my $out = <$fh> // '';
	close $fh;
	return ($? >> 8, $out);
}

for my $case (
	[ [ '--redis-sentinels', 'sentinel.example' ], qr/--redis-sentinels: 'sentinel\.example' is not host:port/, 'no port' ],
	[ [ '--redis-sentinels', '127.0.0.1:0' ], qr/port of '127\.0\.0\.1:0' must be a number from 1 to 65535/, 'port 0' ],
	[ [ '--redis-sentinels', '127.0.0.1:26379x' ], qr/must be a number from 1 to 65535/, 'port not a number' ],
	[ [ '--redis-sentinels', ':26379' ], qr/':26379' has no host/, 'no host' ],
	[ [ '--redis-sentinels', '::1:26379' ], qr/write an IPv6 address in brackets/, 'IPv6 without brackets' ],
	[ [ '--redis-sentinels', 'a:1,b:2,a:1' ], qr/'a:1' is listed twice/, 'twice' ],
	[ [ '--redis-sentinels', join(',', map { "s$_:26379" } 1 .. 17) ], qr/more than 16 addresses/, '17 sentinels' ],
	[ [ '--redis-sentinels', 'a:1', '--redis-sentinel-master', '' ], qr/--redis-sentinel-master: "" \(empty\)/, 'empty master name' ],
	[ [ '--redis-sentinels', 'a:1', '--redis-sentinel-master', 'my master' ], qr/blanks or control characters/, 'a blank in the master name' ],
	[ [ '--redis-sentinels', 'a:1', '--redis-sentinel-password-file', '/nonexistent/pw' ], qr/--redis-sentinel-password-file \/nonexistent\/pw/, 'a password file that does not exist' ],
	[ { HC_HTTP_REDIS_SENTINELS => 'nope' }, qr/HC_HTTP_REDIS_SENTINELS: 'nope' is not host:port/, 'HC_HTTP_REDIS_SENTINELS' ],
	[ { HC_HTTP_REDIS_SENTINELS => 'a:1', HC_HTTP_REDIS_SENTINEL_MASTER => "x\ty" }, qr/HC_HTTP_REDIS_SENTINEL_MASTER: .*blanks/, 'HC_HTTP_REDIS_SENTINEL_MASTER' ])
{
	my ($what, $re, $label) = @$case;
	my ($rc, $out) = ref $what eq 'HASH' ? run_bin($what) : run_bin({}, @$what);
	is($rc, 2, "refused at start: $label (exit 2)");
	like($out, $re, "... saying why: $label");
}

# --- Redis: a master (a), a replica (b), three sentinels ----------------------------------------
my $ra = HousingCache::Redis->new(name => 'a', password => $pw, args => [ '--masterauth', $pw ]);
my $rb = HousingCache::Redis->new(name => 'b', password => $pw,
	args => [ '--masterauth', $pw, '--replicaof', '127.0.0.1', $ra->port ]);
sub addr { return '127.0.0.1:' . $_[0]->port }

ok($rb->wait_replicating, 'b replicates a');

my @sentinels = HousingCache::Sentinel->group(3, master => $ra, master_name => $name,
	quorum => 2, down_after_ms => 1000, failover_timeout_ms => 3000, password => $sentinel_pw);
HousingCache::Sentinel->wait_ready(\@sentinels, replicas => 1);
pass('three sentinels monitor a, know b and each other');

# --- the engine and hc_http: they know only the sentinels ----------------------------------------
my $stack = HcHttp->new(name => 'http_sentinel', listings => 200, redis => $ra, conf => join("\n",
	'housing_cache.breaker_backoff_ms = 200',
	'housing_cache.breaker_max_backoff_ms = 1000'));
my $node = $stack->node;
is($stack->use_sentinels(\@sentinels, password => $sentinel_pw), addr($ra),
	'the engine (ALTER SYSTEM, reload) found the master through the sentinels');

sub sql { return $node->safe_psql('postgres', $_[0]) }

sub key_of
{
	my ($tag) = @_;
	my $bytes = "$db\0$tag";
	utf8::encode($bytes);
	return 'k' . substr(sha256_hex($bytes), 0, 32);
}

sub has_key
{
	my ($ev, $key) = @_;
	my $j = $ev && defined $ev->{data} ? eval { decode_json($ev->{data}) } : undef;
	return scalar grep { $_ eq $key } @{ ($j && $j->{keys}) || [] };
}

# The time of a log line (UTC to the millisecond), as time() gives it.
sub log_time
{
	my ($line) = @_;
	return undef unless defined $line
	  && $line =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z/;
	return timegm($6, $5, $4, $3, $2 - 1, $1) + $7 / 1000;
}

my $tag_l = sql(q{SELECT table_tag FROM housing_cache.watched_tables WHERE relid = 'housing.listings'::regclass});
my $id = sql("SELECT min(id) FROM housing.listings WHERE status = 'active'");

# Write until the subscriber gets the write's invalidate (the engine may
# still be moving: a message published on the dead master is lost, which
# the stream answers with reset); returns the seconds it took, or undef.
sub write_reaches
{
	my ($es, $timeout) = @_;
	my $t0 = time;
	while (time - $t0 < $timeout)
	{
		sql("UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = $id");
		my $ev = $es->wait_for(sub { ($_[0]{event} // '') eq 'invalidate' && has_key($_[0], key_of("$tag_l/id=$id")) }, 1);
		return time - $t0 if $ev;
	}
	return undef;
}

my $srv = $stack->start_server('--pool', '3', $stack->events_args);
ok($srv->wait_log(qr/events: master "$name" is at \Q${\ addr($ra) }\E \(named by sentinel 127\.0\.0\.1:\d+\)/, 10),
	'hc_http found the master through the sentinels') or diag($srv->log_text);
ok($srv->wait_log(qr/events: subscribed to \Q$channel\E at \Q${\ addr($ra) }\E/, 10), '... and subscribed there');
unlike(join(' ', $stack->events_args), qr/\Q$pw\E|\Q$sentinel_pw\E/, 'the passwords are not on the command line');

my $es = $srv->events;
is($es->status, 200, 'GET /api/events: 200');
is($es->next_event(5)->{comment} // '', 'housing_cache events', 'the stream starts');
ok(defined write_reaches($es, 10), 'found: a write reaches the subscriber');

# --- kill ------------------------------------------------------------------------------------------
my $mark = $srv->mark;
my $t0 = time;
$ra->kill9;
my ($reset, $named);
while (time - $t0 < $bound)
{
	$named //= time - $t0 if ($sentinels[0]->master_addr // '') eq addr($rb);
	my $ev = $es->next_event(0.05);
	next unless $ev && $ev->{event};
	if ($ev->{event} eq 'reset')
	{
		$reset = $ev;
		last;
	}
}
my $reset_s = time - $t0;
ok($reset, sprintf('kill: the subscriber gets reset (%.2f s after the kill)', $reset_s))
  or diag($srv->log_text($mark));
my $lost = $srv->wait_log(qr/events: lost the Redis connection to \Q${\ addr($ra) }\E/, 0, $mark);
ok($lost, 'hc_http noticed the lost master');
my $moved = $srv->wait_log(qr/events: master "$name" moved from \Q${\ addr($ra) }\E to \Q${\ addr($rb) }\E \(named by sentinel/, 0, $mark);
ok($moved, '... found the promoted replica through the sentinels');
my $subscribed = $srv->wait_log(qr/events: subscribed to \Q$channel\E at \Q${\ addr($rb) }\E/, 0, $mark);
ok($subscribed, '... and subscribed there');
unlike($srv->log_text($mark) =~ s/\Q$subscribed\E.*//sr, qr/events: subscribed to/,
	'no subscription in between (none at the dead master, none at b before it was promoted)')
  if $subscribed;
my $sub_s = defined $subscribed ? log_time($subscribed) - $t0 : undef;
ok(defined $sub_s && $sub_s <= $reset_s + 0.01, 'the reset came after the subscription at b');
ok($reset_s < $bound, "within $bound s");

my $after = write_reaches($es, $bound);
ok(defined $after, sprintf('a write committed after the reset reaches the subscriber (%.2f s of writing)', $after // -1));
is(sql('SELECT redis_master FROM housing_cache.stats'), addr($rb), 'the engine uses the new master');
note(sprintf('kill -> reset: %.2f s (hc_http lost the master after %.2f s; a sentinel named the new master after %s s; '
		. 'hc_http subscribed there after %.2f s); then a write reached the subscriber after %.2f s of writing',
	$reset_s, (log_time($lost) // $t0) - $t0, defined $named ? sprintf('%.2f', $named) : '?', $sub_s // -1,
	$after // -1));
# the figure, also in the log of prove without -v
diag(sprintf('kill -> reset: %.2f s', $reset_s));

# --- silence -------------------------------------------------------------------------------------------
# A second server on a channel nobody publishes on; the sentinels then name c
# (as after a failover that b did not hear of: its clients stay connected).
my $quiet = 'http_test:silence';
HousingCache::Sentinel->wait_for_master(\@sentinels, addr($rb), all => 1);
my $rc = HousingCache::Redis->new(name => 'c', password => $pw);
my $srv2 = $stack->start_server('--pool', '1', $stack->events_args($quiet));
ok($srv2->wait_log(qr/events: subscribed to \Q$quiet\E at \Q${\ addr($rb) }\E/, 10), 'silence: a second server subscribed at b')
  or diag($srv2->log_text);
my $es2 = $srv2->events;
$es2->next_event(5);
my ($mark1, $mark2) = ($srv->mark, $srv2->mark);
# Every sentinel forgets the master before any monitors c: a sentinel still
# monitoring b, fresh from the failover (a newer configuration epoch), would
# otherwise talk the others back to b, and make c its replica.
$_->cli('SENTINEL', 'REMOVE', $name) for @sentinels;
for my $s (@sentinels)
{
	$s->cli('SENTINEL', 'MONITOR', $name, '127.0.0.1', $rc->port, 2);
	$s->cli('SENTINEL', 'SET', $name, 'auth-pass', $pw);
}
HousingCache::Sentinel->wait_for_master(\@sentinels, addr($rc), all => 1);
ok($srv2->wait_log(qr/events: sentinel \S+ names \Q${\ addr($rc) }\E as master "$name", not \Q${\ addr($rb) }\E, where we hear nothing: moving/, 15, $mark2),
	'silence: hearing nothing, it asks the sentinels, which name c') or diag($srv2->log_text($mark2));
ok($srv2->wait_log(qr/events: subscribed to \Q$quiet\E at \Q${\ addr($rc) }\E/, 10, $mark2), '... and moves there');
my $ev = $es2->wait_for(sub { $_[0]{event} }, 5);
is($ev && $ev->{event}, 'reset', '... its subscriber gets reset');
my $n = $rc->cli('PUBLISH', $quiet, JSON::PP->new->canonical->encode({ v => 1, type => 'invalidation',
	cluster => 'by-hand', database => $db, epoch => '9', seq => 1, tags => ["$tag_l/id=$id"] }));
cmp_ok($n, '>=', 1, "a message published on c reaches it ($n subscriber)");
$ev = $es2->wait_for(sub { $_[0]{event} }, 5);
ok($ev && $ev->{event} eq 'invalidate' && has_key($ev, key_of("$tag_l/id=$id")), '... and its subscriber');
unlike($srv->log_text($mark1), qr/where we hear nothing|events: lost/,
	"the first server, hearing the engine's heartbeats at b, stays there");

# --- sentinels that do not answer ------------------------------------------------------------------------
# A port nobody listens on: first in the list, it is skipped; alone, the
# stream still serves (and says nothing) while the feed retries, and
# SIGTERM ends it at once.
my $dead = do
{
	my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1) or die $!;
	my $port = $sock->sockport;
	close $sock;
	"127.0.0.1:$port";
};
my @args3 = $stack->events_args($quiet);
$args3[1] = "$dead,$args3[1]";    # --redis-sentinels DEAD,s1,s2,s3
my $srv3 = $stack->start_server('--pool', '1', @args3);
ok($srv3->wait_log(qr/events: master "$name" is at \Q${\ addr($rc) }\E \(named by sentinel 127\.0\.0\.1:(?!\Q${\ (split ':', $dead)[1] }\E)\d+\)/, 15),
	'a sentinel that does not answer, first in the list: the next one is asked') or diag($srv3->log_text);
ok($srv3->wait_log(qr/events: subscribed to \Q$quiet\E at \Q${\ addr($rc) }\E/, 5), '... and the master it names used');
my $srv4 = $stack->start_server('--pool', '1', '--redis-sentinels', $dead, '--redis-sentinel-master', $name);
ok($srv4->wait_log(qr/events: cannot subscribe to Redis: no sentinel named a usable master "$name" \(sentinel \Q$dead\E: .+\) \(retrying\)/, 10),
	'no sentinel answers: said once, retrying') or diag($srv4->log_text);
my $es4 = $srv4->events;
is($es4->status, 200, '... the stream is served meanwhile');
is($es4->next_event(5)->{comment} // '', 'housing_cache events', '... and starts');
$es4->finish;
usleep(1_500_000);
my @complaints = $srv4->log_text =~ /cannot subscribe to Redis/g;
is(scalar @complaints, 1, '... logged once for the outage');
my $t_stop = time;
is($srv4->stop, 0, '... SIGTERM while it retries: exit 0');
cmp_ok(time - $t_stop, '<', 5, sprintf('... at once (%.2f s)', time - $t_stop));
is($srv3->stop, 0, 'the server that skipped a sentinel exits 0');

# --- the end ---------------------------------------------------------------------------------------------
$_->finish for $es, $es2;
for my $s ($srv, $srv2, $srv3, $srv4)
{
	unlike($s->log_text, qr/\Q$pw\E|\Q$sentinel_pw\E/, 'no password in ' . $s->logfile);
}
is($srv->stop, 0, 'the server exits 0');
is($srv2->stop, 0, 'the second one too');
$_->stop for @sentinels, $rb, $rc;

done_testing();
