# The edge end to end: the engine's answers (xkey, X-HC-Stamp, s-maxage)
# and messages (invalidations, heartbeats), hc_http, Varnish with
# edge/housing_cache.vcl, and hc_purger on the engine's channel.
#
# A write to a Boston listing purges the edge's Boston answers and leaves
# Denver's cached; purge_edge() and a truncated message purge every answer
# of the table; authenticated requests are never cached; X-HC-Min-Stamp
# refuses older cached answers; the SQL edge_key() is the purger's.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin, "$FindBin::RealBin/../http";

use Encode ();
use Test::More;
use Time::HiRes qw(time usleep);

use HcHttp;
use EdgeStack;

EdgeStack::require_varnish();

my $DB = 'postgres';
my $stack = HcHttp->new(name => 'edge_engine', listings => 400,
	conf => "housing_cache.heartbeat_ms = 200\nhousing_cache.http_shared_max_age = 600\n");
my $node = $stack->node;

# The engine's side of edge/README.md: without it nothing here can pass.
my $contract = $node->safe_psql('postgres',
	"SELECT to_regprocedure('housing_cache.edge_key(text)') IS NOT NULL
	    AND to_regprocedure('housing_cache.purge_edge()') IS NOT NULL");
if ($contract ne 't')
{
	fail('the installed housing_cache implements the edge contract (housing_cache.edge_key(), purge_edge())');
	diag('the engine side of edge/README.md (commit "Edge contract in the engine") is not installed: '
		  . 'make && make install at the top of the tree');
	done_testing();
	exit;
}

my $srv = $stack->start_server('--pool', '4');
my $edge = EdgeStack::Varnish->start(backend => '127.0.0.1:' . $srv->port);
my $purger = EdgeStack::Purger->start(redis => $stack->redis, edges => [$edge],
	args => [ '--heartbeat-ms', 200, '--heartbeat-timeout-ms', 1000, '--repurge-delay-ms', 100,
		'--alive-for', 2 ]);
ok($purger->wait_log(qr/vouching for the edges/, 15), "the purger vouches on the engine's heartbeats")
  or diag($purger->log_text);
my ($epoch) = ($purger->log_text =~ /base: epoch (\d+)/);
ok(defined $epoch, "the engine's epoch: " . ($epoch // '?'));
usleep(300_000);    # past the second purge of everything

sub key { return EdgeStack::edge_key($DB, $_[0]) }
sub edge_state { return $_[0]->{headers}{'x-edge-cache'} // '(none)' }
sub reason { return $_[0]->{headers}{'x-edge-reason'} // '' }

sub get
{
	my ($path, %opts) = @_;
	return $edge->request('GET', $path, %opts);
}

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

# --- edge keys ---------------------------------------------------------------------

# (the source's bytes are UTF-8: decoded, as the purger reads the message's text)
for my $tag ('housing.listings/city=Boston', 'housing.listings/*', '*', 'x/city=New York ü')
{
	is($node->safe_psql('postgres', "SELECT housing_cache.edge_key('$tag')"), key(Encode::decode_utf8($tag)),
		"edge_key('$tag') in SQL is the purger's");
}

# --- answers of the engine ------------------------------------------------------------

my ($boston_id, $denver_id) = split /\|/, $node->safe_psql('postgres', q{
	SELECT (SELECT min(id) FROM housing.listings WHERE city = 'Boston' AND status = 'active'),
	       (SELECT min(id) FROM housing.listings WHERE city = 'Denver' AND status = 'active')});
my %path = (
	boston => '/api/rpc/listings?city=Boston&page_size=5',
	denver => '/api/rpc/listings?city=Denver&page_size=5',
	boston_stats => '/api/rpc/city_stats?city=Boston',
	denver_stats => '/api/rpc/city_stats?city=Denver',
	boston_item => "/api/rpc/listing?id=$boston_id",
	denver_item => "/api/rpc/listing?id=$denver_id",
);

my $r = get($path{boston});
is($r->{status}, 200, 'Boston search: 200') or diag($r->{body});
like($r->{headers}{'x-hc-stamp'} // '', qr/^$epoch\/\d+$/, "X-HC-Stamp in the engine's epoch");
my %keys = map { $_ => 1 } split ' ', $r->{headers}{xkey} // '';
ok($keys{ key('housing.listings/city=Boston') }, "xkey: the city's tag");
ok($keys{ key('housing.listings/*') }, 'xkey: the table-wide key (T/*)');
ok($keys{ key('*') }, "xkey: the database's key (*)");
ok(!$keys{ key('housing.listings/city=Denver') }, "xkey: not Denver's");
like($r->{headers}{'cache-control'} // '', qr/s-maxage=\d+/, 'Cache-Control has s-maxage');

for my $p (sort keys %path)
{
	ok(defined cached($path{$p}), "$p: cached at the edge");
}
$r = get($path{boston});
is(edge_state($r), 'HIT', 'a hit');
like($r->{headers}{'x-varnish'} // '', qr/^\d+ \d+$/, 'X-Varnish of a hit');
ok(defined $r->{headers}{age}, 'Age');
ok(length($r->{headers}{xkey} // ''), 'xkey on a hit too (the web UI reads it)');

# --- a Boston write purges Boston's answers, not Denver's -------------------------------------

$node->safe_psql('postgres', "UPDATE housing.listings SET price_cents = price_cents + 100 WHERE id = $boston_id");
my $new_price = $node->safe_psql('postgres', "SELECT price_cents FROM housing.listings WHERE id = $boston_id");
my $took = wait_until(sub { edge_state(get($path{boston_item})) ne 'HIT' }, 5);
ok(defined $took, sprintf('the listing purged %.0f ms after its commit', 1000 * ($took // -1)));
is(get($path{boston_item})->{json}{price_cents}, $new_price, 'the new price through the edge');
isnt(edge_state(get($path{boston_stats})), 'HIT', "Boston's statistics purged");
my $s = get($path{boston});
isnt(edge_state($s), 'HIT', "Boston's search purged");
like($s->{headers}{'x-hc-stamp'} // '', qr/^$epoch\/\d+$/, 'the new answer is stamped');
for my $p (qw(denver denver_stats denver_item))
{
	is(edge_state(get($path{$p})), 'HIT', "$p: still cached");
}

# the same through the API (a write passes the edge)
my $token = $srv->token('web_editor');
ok(defined cached($path{boston_item}), 'Boston listing cached again');
$r = $edge->request('POST', '/api/rpc/update_listing', token => $token,
	json => { id => 0 + $boston_id, price_cents => $new_price + 100 });
is($r->{status}, 200, 'POST update_listing through the edge: 200') or diag($r->{body});
is(edge_state($r), 'PASS', 'the write was passed');
ok(defined wait_until(sub { (get($path{boston_item})->{json}{price_cents} // 0) == $new_price + 100 }, 5),
	'the edge shows the write');
is(edge_state(get($path{denver})), 'HIT', 'Denver still cached');

# --- a tag that is not ASCII: the purger's key is the engine's -----------------------------------------

my $zid = $node->safe_psql('postgres', q{
	UPDATE housing.listings SET city = 'Zürich' WHERE id = (SELECT max(id) FROM housing.listings WHERE status = 'active')
	RETURNING id});
my $zurich = '/api/rpc/listings?city=Z%C3%BCrich&page_size=5';
ok(defined cached($zurich), 'a Zürich search cached');
is(get($zurich)->{json}{items}[0]{id}, $zid, 'the Zürich listing');
$node->safe_psql('postgres', "UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = $zid");
ok(defined wait_until(sub { edge_state(get($zurich)) ne 'HIT' }, 5), 'a write to it purges the Zürich search');

# --- authenticated reads: never cached -----------------------------------------------------------

for my $i (1 .. 3)
{
	$r = get($path{denver}, token => $token);
	is(edge_state($r), 'PASS', "authenticated GET $i: passed");
}
is(reason($r), 'authorization', 'because of Authorization');

# --- X-HC-Min-Stamp: a browser told of a change ------------------------------------------------------

my ($e, $n) = split m{/}, get($path{denver})->{headers}{'x-hc-stamp'} // '0/0';
is(edge_state(get($path{denver}, headers => ["X-HC-Min-Stamp: $e/$n"])), 'HIT', 'a min stamp the answer has: a hit');
$r = get($path{denver}, headers => [ "X-HC-Min-Stamp: $e/" . ($n + 1000) ]);
is(edge_state($r), 'PASS', 'a min stamp past the answer: from the origin');
is(reason($r), 'older than x-hc-min-stamp', '... saying why');
is(edge_state(get($path{denver}, headers => ['X-HC-Min-Stamp: reset'])), 'PASS',
	'X-HC-Min-Stamp: reset (after a reset event): from the origin');
is(edge_state(get($path{denver})), 'HIT', 'the cached answer stays for others');

# --- purge_edge(): every answer of the database ---------------------------------------------------------

ok(defined cached($path{denver}), 'Denver cached');
$node->safe_psql('postgres', 'SELECT housing_cache.purge_edge()');
ok(defined wait_until(sub { edge_state(get($path{denver})) ne 'HIT' }, 5), 'purge_edge(): Denver purged too');

# --- a truncated message: every answer of the table -----------------------------------------------------

ok(defined cached($path{denver}), 'Denver cached');
ok(defined cached($path{denver_item}), 'a Denver listing cached');
$node->safe_psql('postgres', q{
	SET housing_cache.publish_max_tags = 1;
	UPDATE housing.listings SET price_cents = price_cents + 1
	 WHERE id IN (SELECT id FROM housing.listings WHERE city = 'Boston' ORDER BY id LIMIT 3);
});
ok(defined wait_until(sub { edge_state(get($path{denver})) ne 'HIT' }, 5),
	'a truncated Boston message purges Denver too (T/*)');

# --- the server restarts: a new epoch ----------------------------------------------------------------

ok(defined cached($path{denver}), 'Denver cached');
my $mark = $purger->mark;
$node->restart;
ok($purger->wait_log(qr/purging everything: epoch (\d+) \(was $epoch\)/, 15, $mark), 'a restart: a new epoch, everything purged')
  or diag($purger->log_text($mark));
my ($epoch2) = ($purger->log_text($mark) =~ /epoch (\d+) \(was $epoch\)/);
$r = undef;
ok(defined wait_until(sub { $r = get($path{denver}); $r->{status} == 200 && edge_state($r) ne 'HIT' }, 15),
	'the old answer is gone');
ok(defined wait_until(sub { ($r = get($path{denver}))->{status} == 200 && edge_state($r) eq 'HIT' }, 10),
	"answers of the new epoch are cached") or diag(explain($r->{headers}));
like($r->{headers}{'x-hc-stamp'} // '', qr/^${\ ($epoch2 \/\/ 'none') }\//, 'stamped with the new epoch');

# --- the purger counted it all ------------------------------------------------------------------------

$purger->signal('USR1');
ok($purger->wait_log(qr/stats: \d+ messages .* (\d+) keys purged/, 5), 'counters on SIGUSR1');
unlike($purger->log_text, qr/has not arrived|heartbeat said/, 'no seq lost on a healthy channel');

done_testing();
