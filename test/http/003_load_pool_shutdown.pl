# hc_http under load and when things go wrong: 1,000 concurrent connections
# (wrk), an exhausted pool (503), a database restart or outage (reconnect,
# 503 meanwhile), and a graceful shutdown that lets a request in flight end.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use IPC::Run ();
use Test::More;
use Time::HiRes qw(time sleep);

use HcHttp;

my $stack = HcHttp->new(name => 'http_load', listings => 2000);
my $node = $stack->node;

# A session that holds the row lock of listing $id for $secs seconds.
sub hold_row_lock
{
	my ($id, $secs) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-h', $node->host, '-p', $node->port, '-d', 'postgres',
			'-c', "BEGIN; UPDATE housing.listings SET title = title WHERE id = $id; "
			  . "SELECT pg_sleep($secs); COMMIT;" ],
		'<', \undef, '>', \$out, '2>', \$err);
	wait_for_sql(q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '%pg_sleep%'
		AND state = 'active' AND pid <> pg_backend_pid()}, 'lock holder running');
	return $h;
}

sub wait_for_sql
{
	my ($sql, $what) = @_;
	my $deadline = time + 20;
	while (time < $deadline)
	{
		return 1 if $node->safe_psql('postgres', $sql) eq 't';
		sleep 0.05;
	}
	die "timed out waiting for: $what";
}

# curl in the background; returns a harness and the ref its output goes to
sub background_request
{
	my ($srv, $method, $path, $token, $json) = @_;
	my $out = '';
	my $h = IPC::Run::start(
		[ 'curl', '-s', '-X', $method, '-H', 'Content-Type: application/json',
			'-H', "Authorization: Bearer $token", '--data-binary', $json,
			'-w', ' %{http_code}', '--max-time', '30', $srv->base . $path ],
		'<', \undef, '>', \$out, '2>', \my $err);
	return ($h, \$out);
}

my $waiting_on_lock = q{SELECT count(*) > 0 FROM pg_stat_activity
	WHERE usename = 'authenticator' AND wait_event_type = 'Lock'};

# --- 1,000 concurrent connections ------------------------------------------------

SKIP:
{
	my ($wrk) = grep { -x "$_/wrk" } split /:/, $ENV{PATH};
	ok($wrk, 'wrk is installed (scripts/install-deps)') or skip 'no wrk', 9;

	my $srv = $stack->start_server('--pool', '8', '--quiet');
	my $url = $srv->base . '/api/rpc/listings?city=Boston&page_size=10';
	my $r = $srv->request('GET', '/api/rpc/listings?city=Boston&page_size=10');
	is($r->{status}, 200, 'warm-up request');

	my $run_wrk = sub {
		my ($conns, $target) = @_;
		my $out = `bash -c 'ulimit -n 4096 && exec wrk -c $conns -t 2 -d 5s --timeout 5s "\$0"' '$target' 2>&1`;
		note($out);
		my ($rps) = $out =~ /Requests\/sec:\s+([\d.]+)/;
		my ($total) = $out =~ /(\d+) requests in/;
		my ($non2xx) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
		my @sock = $out =~ /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/;
		return ($out, $rps, $total, $non2xx // 0, @sock ? \@sock : [ 0, 0, 0, 0 ]);
	};

	my ($out, $rps, $total, $non2xx, $sock) = $run_wrk->(1000, $url);
	ok(defined $rps && $total > 0, "wrk -c 1000 -t 2 -d 5s on an L1 hit: $total requests")
	  or diag($out);
	is($non2xx, 0, '1000 connections: every response 2xx');
	is($sock->[0], 0, '1000 connections: no connect error');
	is($sock->[3], 0, '1000 connections: no timeout');
	diag(sprintf('wrk -c 1000 -t 2 -d 5s, /api/rpc/listings (L1 hit): %s req/s', $rps // '?'));

	ok($srv->is_running, 'server alive after 1000 connections');
	$r = $srv->request('GET', '/api/rpc/listing?id=1');
	is($r->{status}, 200, 'a normal request succeeds after the load');
	is($r->{headers}{'content-type'}, 'application/json; charset=utf-8', '... with its JSON');
	is($srv->stop, 0, 'server exits 0');
}

# --- pool exhausted: 503 after --pool-timeout ------------------------------------

{
	my $srv = $stack->start_server('--pool', '1', '--threads', '4', '--pool-timeout', '300',
		'--statement-timeout', '10000');
	my $editor = $srv->token('web_editor');
	my $lock = hold_row_lock(8, 3);
	my ($post, $post_out) = background_request($srv, 'POST', '/api/rpc/update_listing', $editor,
		'{"id": 8, "price_cents": 1000}');
	wait_for_sql($waiting_on_lock, 'the update waits for the row lock');

	my $t0 = time;
	my $r = $srv->request('GET', '/api/rpc/listing?id=1');
	my $took = time - $t0;
	is($r->{status}, 503, 'the only connection is busy: 503');
	is($r->{json}{code}, 'PGRST003', '503: JSON error PGRST003');
	is($r->{headers}{'retry-after'}, '1', '503: Retry-After');
	ok($took < 2, sprintf('503 after the bounded wait (%.2f s)', $took));
	my $s = $srv->request('GET', '/index.html');
	ok($s->{status} == 404, 'requests without the database are still served meanwhile');

	$post->finish;
	$lock->finish;
	like($$post_out, qr/"price_cents":1000.* 200$/s, 'the waiting update then completes');
	$r = $srv->request('GET', '/api/rpc/listing?id=8');
	is($r->{status}, 200, 'the connection is back in the pool');
	is($r->{json}{price_cents}, 1000, '... and the update is seen');
	is($srv->stop, 0, 'server exits 0');
}

# --- the database restarts or goes away ---------------------------------------------

{
	my $srv = $stack->start_server('--pool', '2');
	my $r = $srv->request('GET', '/api/rpc/listing?id=2');
	is($r->{status}, 200, 'before the restart: 200');
	$node->restart;
	$r = $srv->request('GET', '/api/rpc/listing?id=2');
	is($r->{status}, 200, 'after a database restart: 200 (broken connection replaced)');
	$r = $srv->request('GET', '/api/rpc/listing?id=3');
	is($r->{status}, 200, 'and again');

	$node->stop('fast');
	$r = $srv->request('GET', '/api/rpc/listing?id=2');
	is($r->{status}, 503, 'database down: 503');
	is($r->{json}{code}, 'PGRST001', '503: JSON error PGRST001');
	ok($srv->is_running, 'server survives the outage');
	$node->start;
	$r = $srv->request('GET', '/api/rpc/listing?id=2');
	is($r->{status}, 200, 'database back: 200');
	is($srv->stop, 0, 'server exits 0');
}

# --- graceful shutdown -----------------------------------------------------------------

{
	my $srv = $stack->start_server('--pool', '2', '--shutdown-timeout', '20',
		'--statement-timeout', '20000');
	my $editor = $srv->token('web_editor');
	my $lock = hold_row_lock(9, 3);
	my ($post, $post_out) = background_request($srv, 'POST', '/api/rpc/update_listing', $editor,
		'{"id": 9, "title": "written during shutdown"}');
	wait_for_sql($waiting_on_lock, 'the update waits for the row lock');

	my $t0 = time;
	$srv->signal('TERM');
	sleep 0.3;
	my $r = $srv->request('GET', '/api/rpc/listing?id=1', timeout => 3);
	is($r->{status}, 0, 'after SIGTERM: new connections are refused');
	ok($srv->is_running, 'still running while a request is in flight');

	$post->finish;
	$lock->finish;
	like($$post_out, qr/written during shutdown.* 200$/s, 'the request in flight completes with 200');
	my $exit = $srv->stop(15);
	is($exit, 0, 'then the server exits 0');
	ok(time - $t0 < 10, sprintf('shutdown took %.1f s', time - $t0));
	is($node->safe_psql('postgres', 'SELECT title FROM housing.listings WHERE id = 9'),
		'written during shutdown', 'the write is committed');
	like($srv->log_text, qr/shutting down.*\n(.*\n)*.*stopped/, 'shutdown logged');
}

done_testing();
