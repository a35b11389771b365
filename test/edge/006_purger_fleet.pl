# hc_purger's options, a password-protected Redis, and a fleet of edges.
#
# Bad options are refused with the option's name (exit 2); the password
# comes from a file, re-read at each connection, and never reaches the log;
# every purge goes to every edge of the fleet, and an edge that is down
# does not keep the others from being vouched for, and is purged of
# everything when it comes back.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin, "$FindBin::RealBin/../http";

use File::Temp ();
use Test::More;
use Time::HiRes qw(time usleep);

use HcHttp;
use EdgeStack;
use HousingCache::Redis;

EdgeStack::require_varnish();

# --- options ---------------------------------------------------------------------

sub run_purger
{
	my (@args) = @_;
	my $pid = open(my $fh, '-|');
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open STDERR, '>&', \*STDOUT;
		exec $EdgeStack::PURGER_BIN, @args or POSIX::_exit(127);
	}
	local $/;
	my $out = <$fh> // '';
	close $fh;
	return ($? >> 8, $out);
}

for my $case (
	[ [], qr/no edge to purge/ ],
	[ [ '--varnish', 'ftp://x/' ], qr/--varnish: 'ftp:\/\/x\/' is not an http/ ],
	[ [ '--varnish', 'http://x/', '--redis-port', '70000' ], qr/--redis-port: '70000' is not an integer from 1 to 65535/ ],
	[ [ '--varnish', 'http://x/', '--alive-for', 'soon' ], qr/--alive-for: 'soon' is not a number of seconds/ ],
	[ [ '--varnish', 'http://x/', '--reorder-window-ms', '-1' ], qr/--reorder-window-ms/ ],
	[ [ '--varnish', 'http://x/', '--frobnicate' ], qr/unknown option '--frobnicate'/ ],
	[ [ '--varnish', 'http://x/', '--heartbeat-ms', '1000', '--heartbeat-timeout-ms', '900' ], qr/must be longer/ ],
	[ [ '--varnish', 'http://x/', '--redis-sentinels', '127.0.0.1' ], qr/--redis-sentinels: '127\.0\.0\.1' is not host:port/ ],
	[ [ '--varnish', 'http://x/', '--redis-sentinels', 'a:1,a:1' ], qr/--redis-sentinels: 'a:1' is listed twice/ ],
	[ [ '--varnish', 'http://x/', '--redis-sentinels', '::1:26379' ], qr/write an IPv6 address in brackets/ ],
	[ [ '--varnish', 'http://x/', '--redis-sentinel-master', 'my master' ], qr/--redis-sentinel-master: 'my master' contains blanks/ ])
{
	my ($args, $re) = @$case;
	my ($rc, $out) = run_purger(@$args);
	is($rc, 2, "hc_purger @$args: exit 2");
	like($out, $re, "... saying why");
}
{
	local $ENV{HC_PURGER_REDIS_DB} = 'x';
	my ($rc, $out) = run_purger('--varnish', 'http://x/');
	like($out, qr/HC_PURGER_REDIS_DB: 'x'/, 'a bad environment variable is named');
}
{
	local $ENV{HC_PURGER_REDIS_SENTINELS} = 'h:0';
	my ($rc, $out) = run_purger('--varnish', 'http://x/');
	like($out, qr/HC_PURGER_REDIS_SENTINELS: the port of 'h:0' must be a number/, 'a bad sentinel list in the environment is named');
}
{
	local $ENV{HC_PURGER_REDIS_SENTINEL_PASSWORD} = 'x';
	my ($rc, $out) = run_purger('--varnish', 'http://x/', '--redis-sentinel-password-file', '/nonexistent');
	is($rc, 2, 'two sentinel passwords: exit 2');
	like($out, qr/both give a password/, '... saying why');
}
my ($rc, $help) = run_purger('--help');
is($rc, 0, '--help: exit 0');
like($help, qr/--reorder-window-ms/, '--help lists the options');
like($help, qr/--redis-sentinels .*--redis-sentinel-master .*--redis-sentinel-password-file/s, '... the Sentinel ones too');

# --- a fleet, behind a password-protected Redis ------------------------------------

my $stack = HcHttp->new(name => 'edge_fleet', listings => 100, conf => "housing_cache.heartbeat_ms = 200\n");
my $srv = $stack->start_server('--pool', '2');
my $pw_redis = HousingCache::Redis->new(password => 'purger-s3cret', name => 'pw');
my $channel = 'edge_test:fleet';
my @edges = map { EdgeStack::Varnish->start(backend => '127.0.0.1:' . $srv->port) } 1 .. 2;

# heartbeats by redis-cli (it authenticates)
sub heartbeat
{
	$pw_redis->cli('PUBLISH', $channel,
		qq({"v":1,"type":"heartbeat","cluster":"c","epoch":"5","seq":$_[0]}));
	return;
}

my $dir = File::Temp::tempdir(CLEANUP => 1);
my $pwfile = "$dir/pw";
open my $fh, '>', $pwfile or die $!;
print $fh "wrong-password\n";
close $fh;
my $purger = EdgeStack::Purger->start(redis => $pw_redis, edges => \@edges, channel => $channel,
	args => [ '--redis-password-file', $pwfile, '--heartbeat-ms', 200, '--heartbeat-timeout-ms', 1000,
		'--alive-for', 1, '--reorder-window-ms', 300 ]);
ok($purger->wait_log(qr/cannot subscribe .*refused/, 10), 'a wrong password: refused, logged');
unlike($purger->log_text, qr/wrong-password|purger-s3cret/, 'the password never reaches the log');
open $fh, '>', $pwfile or die $!;
print $fh "purger-s3cret\n";
close $fh;
ok($purger->wait_log(qr/subscribed to/, 10), 'the file is read again at the next attempt: subscribed');
unlike($purger->log_text, qr/purger-s3cret/, 'still not in the log');

my $stop = 0;
my $pid = fork;
if ($pid == 0)
{
	# heartbeats, every 200 ms, until told to stop
	$SIG{TERM} = sub { $stop = 1 };
	until ($stop) { heartbeat(0); usleep(200_000) }
	POSIX::_exit(0);
}
ok($purger->wait_log(qr/vouching for the edges/, 10), 'vouching');
usleep(400_000);

my $path = '/api/rpc/listings?city=Boston&page_size=3';
sub state_at { return $_[0]->request('GET', $path)->{headers}{'x-edge-cache'} // '' }
sub wait_until
{
	my ($cond, $timeout) = @_;
	my $t0 = time;
	while (time - $t0 < $timeout) { return 1 if $cond->(); usleep(20_000) }
	return 0;
}

# the engine's answers carry its own epoch, not the "5" of these heartbeats:
# the edges refuse them, which shows the rule; purges go to both all the same
for my $e (@edges)
{
	my $r = $e->request('GET', $path);
	is($r->{headers}{'x-edge-reason'}, 'stamp of another epoch', 'edge ' . $e->port . ': vouched for, epoch 5');
}

# one edge down: the other stays vouched for
my $mark = $purger->mark;
$edges[1]->stop;
ok($purger->wait_log(qr/edge http:\/\/127\.0\.0\.1:${\ $edges[1]->port }\/: down/, 5, $mark), 'edge 2 down: logged');
usleep(1_500_000);    # past --alive-for
is($edges[0]->request('GET', $path)->{headers}{'x-edge-reason'}, 'stamp of another epoch',
	'edge 1 still vouched for');
$edges[1]->restart;
ok($purger->wait_log(qr/edge http:\/\/127\.0\.0\.1:${\ $edges[1]->port }\/: answers again; purged everything there/,
		10, $mark), 'edge 2 back: purged of everything');
ok(wait_until(sub { ($edges[1]->request('GET', $path)->{headers}{'x-edge-reason'} // '') eq 'stamp of another epoch' }, 3),
	'edge 2 vouched for again');

kill 'TERM', $pid;
waitpid($pid, 0);
is($purger->stop, 0, 'stopped: exit 0');

done_testing();
