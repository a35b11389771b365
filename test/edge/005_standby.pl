# The edge in front of hc_http with a hot standby as its read database:
# the edge's own fetches (X-HC-Edge-Fetch: 1) are answered by the primary,
# the only server whose answers carry a stamp the edge accepts; passed
# reads (a session's, or any while no purger vouches) by the standby; a
# standby's answer is never cached (no stamp).
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin, "$FindBin::RealBin/../http";

use Test::More;
use Time::HiRes qw(time usleep);

use HcHttp;
use EdgeStack;

EdgeStack::require_varnish();

my $stack = HcHttp->new(name => 'edge_standby', listings => 200, streaming => 1,
	conf => "housing_cache.heartbeat_ms = 200\n");
my $primary = $stack->node;
$primary->safe_psql('postgres', 'SELECT housing_cache.set_wal_invalidation(true)')
  if $primary->safe_psql('postgres',
	"SELECT to_regprocedure('housing_cache.set_wal_invalidation(boolean)') IS NOT NULL") eq 't';
my $standby = $stack->add_standby('standby');

my $srv = $stack->start_server('--pool', '2', '--read-db', $stack->conninfo($standby));
my $edge = EdgeStack::Varnish->start(backend => '127.0.0.1:' . $srv->port);

sub edge_state { return $_[0]->{headers}{'x-edge-cache'} // '(none)' }
sub served { return $_[0]->{headers}{'x-served-by'} // '(none)' }

sub wait_until
{
	my ($cond, $timeout) = @_;
	my $t0 = time;
	while (time - $t0 < ($timeout // 10))
	{
		return 1 if $cond->();
		usleep(20_000);
	}
	return 0;
}

my $path = '/api/rpc/listings?city=Denver&page_size=3';

# --- nobody vouches: reads pass, to the standby -------------------------------------------
my $r = $edge->request('GET', $path);
is($r->{status}, 200, 'GET through the edge: 200') or diag($r->{body});
is(edge_state($r), 'PASS', 'no purger yet: passed');
is(served($r), 'replica', 'a passed read goes to the standby');
ok(!defined $r->{headers}{'x-hc-stamp'}, "the standby's answer has no stamp");

my $purger = EdgeStack::Purger->start(redis => $stack->redis, edges => [$edge],
	args => [ '--heartbeat-ms', 200, '--heartbeat-timeout-ms', 1000 ]);
ok($purger->wait_log(qr/vouching for the edges/, 15), 'the purger vouches (heartbeats from the primary only)')
  or diag($purger->log_text);
usleep(400_000);

# --- the edge's fetches: from the primary, cached ---------------------------------------------
ok(wait_until(sub { edge_state($r = $edge->request('GET', $path)) eq 'MISS' }, 5), 'a miss: fetched to be cached')
  or diag(explain($r->{headers}));
is(served($r), 'primary', 'the edge fetch (X-HC-Edge-Fetch: 1) was answered by the primary')
  or diag('hc_http must route X-HC-Edge-Fetch: 1 to the primary (edge/README.md)');
like($r->{headers}{'x-hc-stamp'} // '', qr{^\d+/\d+$}, 'stamped');
$r = $edge->request('GET', $path);
is(edge_state($r), 'HIT', 'then a hit');

# --- a session's reads: passed, to the standby ------------------------------------------------------
my $token = $srv->token('web_editor');
$r = $edge->request('GET', $path, token => $token);
is(edge_state($r), 'PASS', 'authenticated: passed');
is(served($r), 'replica', 'to the standby');
$r = $edge->request('GET', $path, headers => ['X-Min-LSN: 0/1']);
is(edge_state($r), 'PASS', 'X-Min-LSN: passed');
is(served($r), 'replica', 'to the standby (it has replayed that far)');

# --- a client cannot make the origin's answer look like the edge's fetch ------------------------------
$r = $edge->request('GET', '/api/rpc/listings?city=Austin&page_size=3', token => $token,
	headers => ['X-HC-Edge-Fetch: 1']);
is(served($r), 'replica', "a client's X-HC-Edge-Fetch is dropped by the edge");

# --- a write through the edge purges the answer ------------------------------------------------------
my $id = $r = $edge->request('GET', $path)->{json}{items}[0]{id};
$r = $edge->request('POST', '/api/rpc/update_listing', token => $token, json => { id => 0 + $id, title => 'Edge test' });
is($r->{status}, 200, 'a write through the edge') or diag($r->{body});
is(served($r), 'primary', 'on the primary');
ok(wait_until(sub { edge_state($edge->request('GET', $path)) ne 'HIT' }, 5), 'the cached search is purged');
ok(wait_until(sub { ($edge->request('GET', $path)->{json}{items}[0]{title} // '') eq 'Edge test' }, 5),
	'and the edge shows the write');

done_testing();
