# The event stream through the edge: GET /api/events is passed and
# streamed, each event as it comes, never buffered until the stream ends
# nor cached; two subscribers each get their own stream.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin, "$FindBin::RealBin/../http";

use Test::More;
use Time::HiRes qw(time usleep);

use HcHttp;
use EdgeStack;

EdgeStack::require_varnish();

my $stack = HcHttp->new(name => 'edge_events', listings => 100);
my $node = $stack->node;
if (!HcHttp->can('events_args') || !HcHttp::Server->can('events'))
{
	fail('hc_http serves the event stream (GET /api/events)');
	diag('test/http/HcHttp.pm has no events_args: the event stream of hc_http is not in this tree');
	done_testing();
	exit;
}
my $srv = $stack->start_server('--pool', '2', $stack->events_args);
my $edge = EdgeStack::Varnish->start(backend => '127.0.0.1:' . $srv->port);

my @streams = map { HcHttp::Events->new($edge->port) } 1 .. 2;
for my $i (0, 1)
{
	my $es = $streams[$i];
	is($es->status, 200, "stream $i through the edge: 200");
	like($es->headers->{'content-type'} // '', qr{^text/event-stream}, 'text/event-stream');
	is($es->headers->{'x-edge-cache'}, 'PASS', 'passed');
	ok(!defined $es->headers->{'content-length'}, 'no Content-Length: not buffered to the end');
}

my $id = $node->safe_psql('postgres', "SELECT min(id) FROM housing.listings WHERE city = 'Boston'");
my $t0 = time;
$node->safe_psql('postgres', "UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = $id");
for my $i (0, 1)
{
	my $ev = $streams[$i]->wait_for(sub { ($_[0]{event} // '') eq 'invalidate' }, 5);
	ok($ev, sprintf('stream %d: the invalidate event arrives through the edge (%.0f ms after the commit)',
			$i, 1000 * (time - $t0)));
	like($ev->{data} // '', qr/"keys"/, 'with its keys') if $ev;
	ok(!$streams[$i]->ended, 'and the stream stays open');
}
$_->finish for @streams;

done_testing();
