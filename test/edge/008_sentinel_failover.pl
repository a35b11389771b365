# hc_purger under Redis Sentinel, beside an engine under the same sentinels.
#
# A master (a), a replica (b) and three sentinels (quorum 2, down-after
# 1000 ms, failover-timeout 3000 ms), every one password-protected; the
# engine (housing_cache.redis_sentinels) and hc_purger (--redis-sentinels,
# both passwords from files) know only the sentinels.  Phases:
#
#   found         the purger subscribes at the master the sentinels name
#                 (confirmed by ROLE), vouches on the engine's heartbeats,
#                 and a write purges its answers at the edge by key
#   kill          SIGKILL of the master: the purger notices, purges
#                 everything, asks the sentinels again until they name the
#                 promoted replica, subscribes there and vouches again;
#                 purging by key works again, for a message published by
#                 hand on the new master and for the engine's own (a
#                 write).  Measured: the time from the kill, and from the
#                 sentinels' naming the new master, to the purger's
#                 subscription there (note lines: prove -v, or the log)
#   no-sentinels  every sentinel stopped: the purger keeps its
#                 subscription and vouches on (they are not on its path)
#   partition     a second purger on a channel of its own, fed by
#                 hand-made heartbeats: the sentinels are made to name
#                 another master while its connection stays up, and the
#                 heartbeats move there; it hears none, asks the sentinels,
#                 and follows
#
# Timing is asserted only as generous bounds.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin, "$FindBin::RealBin/../http";

use File::Temp ();
use JSON::PP;
use Test::More;
use Time::HiRes qw(time usleep);
use Time::Local qw(timegm);

use HcHttp;
use EdgeStack;
use HousingCache::Redis;
use HousingCache::Sentinel;

EdgeStack::require_varnish();

my $bound = 30;    # seconds: any recovery slower than this fails
my $pw = 'redis-pw-edge-8Jq';
my $sentinel_pw = 'sentinel-pw-edge-Zt3';
my $name = 'hcedge';
my $channel = 'housing_cache:invalidations';

# --- Redis: a master (a), a replica (b), three sentinels --------------------------------
my $ra = HousingCache::Redis->new(name => 'a', password => $pw, args => [ '--masterauth', $pw ]);
my $rb = HousingCache::Redis->new(name => 'b', password => $pw,
	args => [ '--masterauth', $pw, '--replicaof', '127.0.0.1', $ra->port ]);
sub addr { return '127.0.0.1:' . $_[0]->port }

ok($rb->wait_replicating, 'b replicates a');

my @sentinels = HousingCache::Sentinel->group(3, master => $ra, master_name => $name,
	quorum => 2, down_after_ms => 1000, failover_timeout_ms => 3000, password => $sentinel_pw);
HousingCache::Sentinel->wait_ready(\@sentinels, replicas => 1);
pass('three sentinels monitor a, know b and each other');

# --- the engine, hc_http, Varnish: the engine knows only the sentinels --------------------
my $stack = HcHttp->new(name => 'edge_sentinel', listings => 200, conf => join("\n",
	'housing_cache.heartbeat_ms = 200',
	'housing_cache.http_shared_max_age = 600',
	"housing_cache.redis_password = '$pw'",
	"housing_cache.redis_sentinel_master = '$name'",
	"housing_cache.redis_sentinels = '" . HousingCache::Sentinel->setting(@sentinels) . "'",
	"housing_cache.redis_sentinel_password = '$sentinel_pw'",
	'housing_cache.breaker_backoff_ms = 200',
	'housing_cache.breaker_max_backoff_ms = 1000'));
my $node = $stack->node;
$node->safe_psql('postgres', 'SELECT housing_cache.get_listing(1) IS NULL');
is($node->safe_psql('postgres', 'SELECT redis_master FROM housing_cache.stats'), addr($ra),
	'the engine found the master through the sentinels');

my $srv = $stack->start_server('--pool', '4');
my $edge = EdgeStack::Varnish->start(backend => '127.0.0.1:' . $srv->port);

my $dir = File::Temp::tempdir(CLEANUP => 1);
sub secret_file
{
	my ($file, $secret) = @_;
	open my $fh, '>', "$dir/$file" or die $!;
	print $fh "$secret\n";
	close $fh;
	return "$dir/$file";
}
my @secrets = ('--redis-password-file', secret_file('redis_pw', $pw),
	'--redis-sentinel-password-file', secret_file('sentinel_pw', $sentinel_pw));
my $purger = EdgeStack::Purger->start(sentinels => \@sentinels, edges => [$edge],
	args => [ @secrets, '--heartbeat-ms', 200, '--heartbeat-timeout-ms', 1000,
		'--repurge-delay-ms', 100, '--alive-for', 2 ]);

# The time of a log line (hc_log: UTC to the millisecond), as time() gives it.
sub log_time
{
	my ($line) = @_;
	return undef unless defined $line
	  && $line =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z/;
	return timegm($6, $5, $4, $3, $2 - 1, $1) + $7 / 1000;
}

sub edge_state { return $_[0]->{headers}{'x-edge-cache'} // '(none)' }
sub get { return $edge->request('GET', $_[0]) }

sub wait_until
{
	my ($cond, $timeout) = @_;
	my $t0 = time;
	while (time - $t0 < ($timeout // 10))
	{
		return time - $t0 if $cond->();
		usleep(10_000);
	}
	return undef;
}

sub cached
{
	my ($path) = @_;
	return wait_until(sub { edge_state(get($path)) eq 'HIT' }, 5);
}

# --- found ------------------------------------------------------------------------------------
ok($purger->wait_log(qr/redis: master "$name" is at \Q${\ addr($ra) }\E \(named by sentinel 127\.0\.0\.1:\d+\)/, 10),
	'the purger found the master through the sentinels') or diag($purger->log_text);
ok($purger->wait_log(qr/subscribed to \Q$channel\E at \Q${\ addr($ra) }\E/, 10), '... and subscribed there');
ok($purger->wait_log(qr/hc_purger: vouching for the edges/, 15), "it vouches on the engine's heartbeats")
  or diag($purger->log_text);

my ($boston_id, $denver_id) = split /\|/, $node->safe_psql('postgres', q{
	SELECT (SELECT min(id) FROM housing.listings WHERE city = 'Boston' AND status = 'active'),
	       (SELECT min(id) FROM housing.listings WHERE city = 'Denver' AND status = 'active')});
my %path = (
	boston => '/api/rpc/listings?city=Boston&page_size=5',
	denver => '/api/rpc/listings?city=Denver&page_size=5',
	boston_item => "/api/rpc/listing?id=$boston_id",
);

sub write_purges
{
	my ($what) = @_;
	ok(defined cached($path{boston_item}), "$what: the Boston listing cached at the edge");
	$node->safe_psql('postgres', "UPDATE housing.listings SET price_cents = price_cents + 100 WHERE id = $boston_id");
	my $price = $node->safe_psql('postgres', "SELECT price_cents FROM housing.listings WHERE id = $boston_id");
	my $took = wait_until(sub { edge_state(get($path{boston_item})) ne 'HIT' }, 5);
	ok(defined $took, sprintf('%s: a write purges it by key (%.0f ms after its commit)', $what, 1000 * ($took // -1)));
	is(get($path{boston_item})->{json}{price_cents}, $price, "$what: the new price through the edge");
	return;
}
write_purges('before the failover');

# --- kill ---------------------------------------------------------------------------------------
ok(defined cached($path{$_}), "$_ cached before the failover") for qw(boston denver);
my $mark = $purger->mark;
my $t0 = time;
$ra->kill9;
my $lost = $purger->wait_log(qr/redis: lost \Q${\ addr($ra) }\E/, 5, $mark);
ok($lost, 'the master killed: the purger notices');
ok($purger->wait_log(qr/purging everything: lost the subscription/, 5, $mark), '... and purges everything');

# Until the purger vouches again: requests through the edge, each for an
# answer not cached yet, and when a sentinel first names b.  Only a read
# that misses L1 reaches Redis and so makes the engine ask the sentinels
# again: the heartbeat worker does not (it publishes as a commit does),
# and a read served from L1 never calls Redis.
my ($named, $moved, $vouching);
my $i = 0;
while (time - $t0 < $bound)
{
	get('/api/rpc/listings?city=Denver&page_size=5&min_price_cents=' . $i++);
	$named //= time - $t0 if ($sentinels[0]->master_addr // '') eq addr($rb);
	$moved //= $purger->wait_log(qr/redis: master "$name" moved from \Q${\ addr($ra) }\E to \Q${\ addr($rb) }\E/, 0, $mark);
	$vouching = $purger->wait_log(qr/hc_purger: vouching for the edges/, 0, $mark);
	last if $moved && $vouching;
	usleep(100_000);
}
ok($moved, 'the purger found the promoted replica') or diag($purger->log_text($mark));
my $moved_s = defined $moved ? log_time($moved) - $t0 : undef;
ok(defined $moved_s && $moved_s < $bound, sprintf('... %.2f s after the kill', $moved_s // -1));
like($purger->log_text($mark), qr/subscribed to \Q$channel\E at \Q${\ addr($rb) }\E/, 'subscribed there');
like($purger->log_text($mark), qr/purging everything: \(re\)subscribed/, 'and purged everything on subscribing');
ok($vouching, 'it vouches again (the engine publishes its heartbeats on the new master)');
note(sprintf('kill: the purger lost the master %.2f s after the kill; a sentinel named the new master after %s s; '
		. 'the purger subscribed there after %.2f s (%s s after the sentinels named it); vouching again after %.2f s',
	(log_time($lost) // $t0) - $t0, defined $named ? sprintf('%.2f', $named) : '?', $moved_s // -1,
	defined $named && defined $moved_s ? sprintf('%.2f', $moved_s - $named) : '?',
	defined $vouching ? log_time($vouching) - $t0 : -1));

# purge by key on the new master: a message published by hand ...
ok(defined cached($path{$_}), "$_ cached after the failover") for qw(boston denver);
my $n = $rb->cli('PUBLISH', $channel, JSON::PP->new->canonical->encode({ v => 1, type => 'invalidation',
	cluster => 'by-hand', database => 'postgres', epoch => '1', seq => 1,
	tags => ['housing.listings/city=Boston'] }));
cmp_ok($n, '>=', 1, "a message published by hand on the new master reaches the purger ($n subscribers)");
ok(defined wait_until(sub { edge_state(get($path{boston})) ne 'HIT' }, 5), '... which purges the Boston search by key');
is(edge_state(get($path{denver})), 'HIT', '... and not the Denver one');

# ... and the engine's own
write_purges('after the failover');
cmp_ok($node->safe_psql('postgres', 'SELECT redis_failovers FROM housing_cache.stats'), '>=', 1,
	'the engine counted the failover');
is($node->safe_psql('postgres', 'SELECT redis_master FROM housing_cache.stats'), addr($rb),
	'the engine uses the new master');

# --- no-sentinels ----------------------------------------------------------------------------------
$mark = $purger->mark;
$_->stop for @sentinels;
usleep(3_000_000);
unlike($purger->log_text($mark), qr/redis: lost|not vouching/, 'every sentinel stopped: the purger keeps its subscription and vouches on');
ok(defined cached($path{denver}), '... the edge caches');
$_->start for @sentinels;
HousingCache::Sentinel->wait_for_master(\@sentinels, addr($rb), all => 1);

# --- partition ---------------------------------------------------------------------------------------
# A second purger, on its own channel, with heartbeats by hand on b; its
# edge listens nowhere (it is the subscription that is tested).
my $pchannel = 'edge_test:partition';
my $rc = HousingCache::Redis->new(name => 'c', password => $pw);
my $hb_b = EdgeStack::Heartbeats->start(redis => $rb, channel => $pchannel, interval_ms => 200);
$hb_b->set(epoch => '7', seq => 0);
my $purger2 = EdgeStack::Purger->start(sentinels => \@sentinels,
	edges => [ 'http://127.0.0.1:' . EdgeStack::free_port() . '/' ], channel => $pchannel,
	args => [ @secrets, '--heartbeat-ms', 200, '--heartbeat-timeout-ms', 1000, '--alive-for', 2 ]);
ok($purger2->wait_log(qr/hc_purger: vouching for the edges/, 15), 'partition: a second purger vouches on heartbeats at b')
  or diag($purger2->log_text);
like($purger2->log_text, qr/subscribed to \Q$pchannel\E at \Q${\ addr($rb) }\E/, '... subscribed at b');

# The sentinels now name c (as after a failover that b did not hear of:
# its clients stay connected), and the heartbeats go there.
$mark = $purger2->mark;
for my $s (@sentinels)
{
	$s->cli('SENTINEL', 'REMOVE', $name);
	$s->cli('SENTINEL', 'MONITOR', $name, '127.0.0.1', $rc->port, 2);
	$s->cli('SENTINEL', 'SET', $name, 'auth-pass', $pw);
}
HousingCache::Sentinel->wait_for_master(\@sentinels, addr($rc), all => 1);
$hb_b->set(off => 1);
my $hb_c = EdgeStack::Heartbeats->start(redis => $rc, channel => $pchannel, interval_ms => 200);
$hb_c->set(epoch => '7', seq => 0);
ok($purger2->wait_log(qr/no heartbeat for 1000 ms/, 10, $mark), 'partition: the purger hears no heartbeat at b');
ok($purger2->wait_log(qr/redis: sentinel \S+ names \Q${\ addr($rc) }\E as master "$name", not \Q${\ addr($rb) }\E, where we hear nothing: moving/, 10, $mark),
	'... asks the sentinels, which name c') or diag($purger2->log_text($mark));
ok($purger2->wait_log(qr/redis: master "$name" moved from \Q${\ addr($rb) }\E to \Q${\ addr($rc) }\E/, 10, $mark),
	'... and moves there');
ok($purger2->wait_log(qr/hc_purger: vouching for the edges/, 10, $mark), '... where it vouches again');

# --- the end -------------------------------------------------------------------------------------
for my $p ($purger, $purger2)
{
	unlike($p->log_text, qr/\Q$pw\E|\Q$sentinel_pw\E/, 'no password in ' . $p->logfile);
}
is($purger->stop, 0, 'the purger stops: exit 0');
is($purger2->stop, 0, 'the second one too');
$hb_b->stop;
$hb_c->stop;
$_->stop for @sentinels, $rb, $rc;

done_testing();
