# The edge's VCL and hc_purger against messages published by hand.
#
# The origin is hc_http with a probe function whose answer carries whatever
# stamp, keys and Cache-Control the test puts in a table; the messages
# (invalidations, heartbeats, garbage) are published by the test on a
# channel of its own, so that nothing the engine publishes interferes.
# Covered: hits (Age, X-Varnish, X-Cache), If-None-Match answered by the
# edge, passes (Authorization, Cookie, X-Min-LSN, writes, the event
# stream), PURGE refused from another address and unknown methods, purges
# by key, the stamp rule, and every way the purger purges everything: a
# lost message, a heartbeat ahead, a new epoch, heartbeats that stop, the
# purger killed and restarted, Redis restarted, Varnish restarted.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin, "$FindBin::RealBin/../http";

use Test::More;
use Time::HiRes qw(time usleep);

use HcHttp;
use EdgeStack;

EdgeStack::require_varnish();

my $DB = 'postgres';          # HcHttp's database
my $CHANNEL = 'edge_test:synthetic';
my $ALIVE = 1;                # --alive-for
my $WINDOW_MS = 500;          # --reorder-window-ms
my $HB_TIMEOUT_MS = 800;      # --heartbeat-timeout-ms

my $stack = HcHttp->new(name => 'edge_vcl', listings => 50);
my $node = $stack->node;
$node->safe_psql('postgres', q{
CREATE SCHEMA edge_test;
CREATE TABLE edge_test.probe (
    name    text PRIMARY KEY,
    version int NOT NULL DEFAULT 1,
    stamp   text,
    keys    text,
    cc      text NOT NULL DEFAULT 'public, max-age=5, s-maxage=60');
-- What the engine's http_cache_headers() sets, from the table.
CREATE FUNCTION api.edge_probe(name text) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    p edge_test.probe;
    h json[];
BEGIN
    SELECT * INTO p FROM edge_test.probe WHERE probe.name = edge_probe.name;
    IF NOT FOUND THEN
        RETURN housing_cache.http_error(404, 'PGRST116', 'no such probe');
    END IF;
    h := ARRAY[json_build_object('Cache-Control', p.cc),
               json_build_object('ETag', format('"%s-%s"', p.name, p.version)),
               json_build_object('X-Cache', 'L1')];
    IF p.stamp IS NOT NULL THEN h := h || json_build_object('X-HC-Stamp', p.stamp); END IF;
    IF p.keys IS NOT NULL THEN h := h || json_build_object('xkey', p.keys); END IF;
    PERFORM set_config('response.headers', array_to_json(h)::text, true);
    RETURN json_build_object('name', p.name, 'version', p.version);
END
$$;
GRANT EXECUTE ON FUNCTION api.edge_probe(text) TO web_anon, web_editor;
});

my $srv = $stack->start_server('--pool', '4');
my $edge = EdgeStack::Varnish->start(backend => '127.0.0.1:' . $srv->port);
my $hb = EdgeStack::Heartbeats->start(redis => $stack->redis, channel => $CHANNEL, interval_ms => 200);
my @purger_args = ('--reorder-window-ms', $WINDOW_MS, '--heartbeat-ms', 200,
	'--heartbeat-timeout-ms', $HB_TIMEOUT_MS, '--repurge-delay-ms', 100, '--alive-for', $ALIVE);
my $purger = EdgeStack::Purger->start(redis => $stack->redis, edges => [$edge], channel => $CHANNEL,
	args => \@purger_args);

sub key { return EdgeStack::edge_key($DB, "probe/$_[0]") }

# The probe's row: stamp, keys (default: its own), Cache-Control; bumps the version.
sub probe
{
	my ($name, %f) = @_;
	my $stamp = exists $f{stamp} ? $f{stamp} : '100/0';
	my $keys = exists $f{keys} ? $f{keys} : key($name);
	my $cc = $f{cc} // 'public, max-age=5, s-maxage=60';
	my $q = sub { defined $_[0] ? "'$_[0]'" : 'NULL' };
	$node->safe_psql('postgres', sprintf(q{
		INSERT INTO edge_test.probe (name, stamp, keys, cc) VALUES (%s, %s, %s, %s)
		ON CONFLICT (name) DO UPDATE SET version = probe.version + 1, stamp = EXCLUDED.stamp,
		    keys = EXCLUDED.keys, cc = EXCLUDED.cc},
		$q->($name), $q->($stamp), $q->($keys), $q->($cc)));
	return;
}

# Every probe's stamp at once (after a message, as the engine's would be).
sub restamp
{
	my ($stamp) = @_;
	$node->safe_psql('postgres', "UPDATE edge_test.probe SET stamp = '$stamp' WHERE stamp IS NOT NULL");
	return;
}

sub get
{
	my ($name, %opts) = @_;
	return $edge->request('GET', "/api/rpc/edge_probe?name=$name", %opts);
}

sub edge_state { return $_[0]->{headers}{'x-edge-cache'} // '(none)' }
sub reason { return $_[0]->{headers}{'x-edge-reason'} // '' }

# Poll until $cond->() holds; how long it took, or undef after $timeout s.
sub wait_until
{
	my ($cond, $timeout) = @_;
	my $t0 = time;
	while (time - $t0 < ($timeout // 10))
	{
		return time - $t0 if $cond->();
		usleep(20_000);
	}
	return undef;
}

# Get it into the cache: a MISS (or a hit), then a HIT.
sub cached
{
	my ($name) = @_;
	return wait_until(sub { edge_state(get($name)) eq 'HIT' }, 5);
}

my $seq = 0;
sub invalidate
{
	my (%o) = @_;
	$seq = $o{seq} // $seq + 1;
	EdgeStack::publish($stack->redis, $CHANNEL, {
		v => 1, type => 'invalidation', cluster => $hb->cluster, database => $DB,
		epoch => $o{epoch} // $hb->epoch, seq => $seq, xid => 1000 + $seq,
		tags => [ map { "probe/$_" } @{ $o{probes} } ], truncated => JSON::PP::false, lsn => '0/1' });
	return $seq;
}

# --- nobody vouches yet --------------------------------------------------------

probe($_) for qw(a b);
my $r = get('a');
is($r->{status}, 200, 'through the edge: 200') or diag($r->{body});
is($r->{json}{name}, 'a', 'the origin answered');
is(edge_state($r), 'PASS', 'before any heartbeat: passed');
is(reason($r), 'no purger vouches', '... because no purger vouches');
is(edge_state(get('a')), 'PASS', 'and not cached');

# --- heartbeats: vouching ------------------------------------------------------

$hb->set(epoch => '100', seq => 0);
ok($purger->wait_log(qr/vouching for the edges/, 10), 'the purger vouches once heartbeats arrive')
  or diag($purger->log_text);
ok(defined wait_until(sub { edge_state(get('a')) ne 'PASS' }, 5), 'the edge caches again');
usleep(300_000);    # past the second purge of everything (--repurge-delay-ms)

# --- hits ---------------------------------------------------------------------------

ok(defined cached('a'), 'a second GET is a hit');
$r = get('a');
is(edge_state($r), 'HIT', 'X-Edge-Cache: HIT');
is($r->{headers}{'x-cache'}, 'HIT', 'X-Cache: HIT');
like($r->{headers}{'x-varnish'} // '', qr/^\d+ \d+$/, 'X-Varnish: this request and the one that stored it');
like($r->{headers}{age} // '', qr/^\d+$/, 'an Age header');
is($r->{headers}{xkey}, key('a'), 'xkey left on the delivered answer');
is($r->{headers}{'x-hc-stamp'}, '100/0', 'X-HC-Stamp left on it');
is($r->{json}{version}, 1, 'the cached body');

$r = get('a', headers => ['If-None-Match: "a-1"']);
is($r->{status}, 304, 'If-None-Match: 304 ...');
is(edge_state($r), 'HIT', '... from the edge');
$r = get('a', headers => ['If-None-Match: "a-0"']);
is($r->{status}, 200, 'another ETag: 200');
$r = $edge->request('HEAD', '/api/rpc/edge_probe?name=a');
is($r->{status}, 200, 'HEAD: 200');
is(edge_state($r), 'HIT', 'HEAD: from the cache');

# --- passed, never cached ---------------------------------------------------------------

my $token = $srv->token('web_editor');
for my $case (
	[ 'Authorization', [ "Authorization: Bearer $token" ], 'authorization' ],
	[ 'a cookie', [ 'Cookie: session=1' ], 'cookie' ],
	[ 'X-Min-LSN', [ 'X-Min-LSN: 0/0' ], 'x-min-lsn' ])
{
	my ($what, $headers, $why) = @$case;
	for my $i (1, 2)
	{
		$r = get('a', headers => $headers);
		is(edge_state($r), 'PASS', "$what ($i): passed");
	}
	is(reason($r), $why, "$what: the reason");
	is($r->{json}{name}, 'a', "$what: the origin's answer");
}
$r = $edge->request('POST', '/api/rpc/edge_probe', json => { name => 'a' });
is(edge_state($r), 'PASS', 'POST: passed');
$r = $edge->request('GET', '/api/events', timeout => 2);
is(edge_state($r), 'PASS', '/api/events: passed') or diag(explain($r->{headers}));
is(reason($r), 'event stream', '/api/events: as the event stream');
$r = $edge->request('GET', '/');
is(edge_state($r), 'PASS', 'not /api/rpc/: passed');

# --- PURGE only from the purgers, known methods only ------------------------------------------

$r = $edge->purge(from => '127.0.0.2', headers => { 'X-HC-Purge-All' => 1 });
is($r->{status}, 403, 'PURGE from 127.0.0.2: 403');
is(edge_state(get('a')), 'HIT', 'and nothing was purged');
$r = $edge->purge(from => '127.0.0.2', headers => { 'X-HC-Alive-For' => 0 });
is($r->{status}, 403, 'a vouching PURGE from 127.0.0.2: 403');
is(edge_state(get('a')), 'HIT', 'and the vouching stands');
for my $m (qw(BAN FOO))
{
	$r = $edge->request($m, '/api/rpc/edge_probe?name=a');
	is($r->{status}, 405, "$m: 405");
}
is($edge->purge(headers => {})->{status}, 200, 'PURGE from 127.0.0.1 without keys: 200');

# --- purge by key -------------------------------------------------------------------------------

ok(defined cached('b'), 'b cached');
probe('a', stamp => '100/1');    # the write of seq 1, committed before its message
invalidate(probes => ['a']);
ok(defined wait_until(sub { $r = get('a'); edge_state($r) ne 'HIT' }, 5), "a's key purged");
is($r->{json}{version}, 2, 'a: the new version');
is(edge_state(get('b')), 'HIT', "b's answer left in the cache");
ok(defined cached('a'), 'a cached again, stamped 100/1 (M is 1)');

# --- the stamp rule --------------------------------------------------------------------------------

probe('old', stamp => '100/0');
probe('nostamp', stamp => undef);
probe('otherepoch', stamp => '999/5');
probe('nomaxage', stamp => '100/1', cc => 'public, max-age=5');
probe('badstamp', stamp => '100/x');
for my $case (
	[ 'old', 'stamp older than the last purge' ],
	[ 'nostamp', 'no stamp' ],
	[ 'otherepoch', 'stamp of another epoch' ],
	[ 'nomaxage', 'no s-maxage' ],
	[ 'badstamp', 'malformed stamp' ])
{
	my ($name, $why) = @$case;
	my @states = map { edge_state(get($name)) } 1 .. 3;
	is("@states", 'PASS PASS PASS', "$name: never cached");
	is(reason(get($name)), $why, "$name: $why");
}
probe('old', stamp => '100/1');
ok(defined cached('old'), 'a stamp equal to M is cached');

# --- a lost message ------------------------------------------------------------------------------------

ok(defined cached('b'), 'b cached');
restamp('100/3');
my $mark = $purger->mark;
invalidate(seq => 3, probes => ['zzz']);    # 2 never comes
$hb->set(seq => 3);
is(edge_state(get('b')), 'HIT', 'seq 3 without 2: b still cached within the window');
ok($purger->wait_log(qr/seq 2 has not arrived within $WINDOW_MS ms/, 5, $mark),
	'the purger gives seq 2 up after the window');
ok(defined wait_until(sub { edge_state(get('b')) ne 'HIT' }, 2), 'and everything was purged');

# --- a heartbeat ahead ---------------------------------------------------------------------------------

ok(defined cached('b'), 'b cached (stamp 100/3)');
$mark = $purger->mark;
restamp('100/5');
$hb->set(seq => 5);    # 4 and 5 never come
ok($purger->wait_log(qr/a heartbeat said seq 5 was given; seq 4 has not arrived/, 5, $mark),
	'a heartbeat ahead: given up after the window');
ok(defined wait_until(sub { edge_state(get('b')) ne 'HIT' }, 2), 'everything purged');
$seq = 5;

# --- a new epoch -------------------------------------------------------------------------------------------

ok(defined cached('b'), 'b cached (stamp 100/5)');
$mark = $purger->mark;
$hb->set(epoch => '200', seq => 0);
ok($purger->wait_log(qr/purging everything: epoch 200 \(was 100\)/, 5, $mark), 'a new epoch: everything purged');
ok(defined wait_until(sub { edge_state(get('b')) ne 'HIT' }, 2), 'b is gone');
is(reason(get('b')), 'stamp of another epoch', "the old epoch's stamps are refused");
restamp('200/0');
ok(defined cached('b'), "the new epoch's are cached");
$seq = 0;

# --- heartbeats stop ------------------------------------------------------------------------------------------

$mark = $purger->mark;
$hb->set(off => 1);
ok($purger->wait_log(qr/no heartbeat for $HB_TIMEOUT_MS ms; not vouching/, 5, $mark), 'heartbeats stop: not vouching');
ok(defined wait_until(sub { edge_state(get('b')) eq 'PASS' }, 2), 'the edge passes everything');
is(reason(get('b')), 'no purger vouches', '... because nobody vouches');
$hb->set(epoch => '200', seq => 0);
ok($purger->wait_log(qr/heartbeats resumed/, 5, $mark), 'heartbeats resume');
ok(defined cached('b'), 'cached again');

# --- the purger killed, restarted ------------------------------------------------------------------------------

$purger->kill9;
my $gone = wait_until(sub { edge_state(get('b')) eq 'PASS' }, $ALIVE + 3);
ok(defined $gone, 'purger killed: the edge stops serving from its cache');
ok(defined $gone && $gone <= $ALIVE + 0.5, sprintf('within alive-for (%ss): after %.2fs', $ALIVE, $gone // -1));
$mark = $purger->mark;
$purger->restart;
ok($purger->wait_log(qr/purging everything: starting/, 5, $mark), 'restarted: it purges everything');
ok($purger->wait_log(qr/vouching for the edges/, 5, $mark), 'and vouches again');
ok(defined wait_until(sub { edge_state(get('b')) ne 'PASS' }, 3), 'the edge caches again');
# b was cached before: the restart purged it
$r = get('b');
ok(defined cached('b'), 'b cached again after the restart');

# --- Redis restarted ---------------------------------------------------------------------------------------------

$mark = $purger->mark;
$stack->redis->kill9;
ok($purger->wait_log(qr/redis: lost/, 5, $mark), 'Redis killed: the purger notices');
ok($purger->wait_log(qr/purging everything: lost the subscription/, 5, $mark), '... and purges everything');
ok(defined wait_until(sub { edge_state(get('b')) eq 'PASS' }, 2), 'the edge passes everything meanwhile');
$stack->redis->start;
ok($purger->wait_log(qr/purging everything: \(re\)subscribed/, 10, $mark), 'Redis back: purged everything');
ok($purger->wait_log(qr/base: epoch 200, seq 0 \(from a heartbeat\)/, 10, $mark), 'a new base from a heartbeat');
ok(defined wait_until(sub { edge_state(get('b')) ne 'PASS' }, 5), 'caching again');
ok(defined cached('b'), 'b cached again');

# --- Varnish restarted -----------------------------------------------------------------------------------------------

$mark = $purger->mark;
$edge->restart;
ok($purger->wait_log(qr/answers again; purged everything there/, 15, $mark),
	'Varnish restarted: the purger purges everything there once it answers')
  or diag($purger->log_text($mark));
ok(defined wait_until(sub { edge_state(get('b')) ne 'PASS' }, 5), 'vouched again (vmod_var state restored)');
ok(defined cached('b'), 'and caching');
is(edge_state(get('b', headers => ['Cookie: x=1'])), 'PASS', 'same VCL after the restart');

# --- what cannot be read is ignored ----------------------------------------------------------------------------------

$mark = $purger->mark;
EdgeStack::publish($stack->redis, $CHANNEL, 'not json', '{"v":1,"type":"heartbeat"}', '{"v":2,"whatever":true}',
	'{"type":"future-kind","epoch":"200","seq":1}');
ok($purger->wait_log(qr/ignoring a message that cannot be read/, 5, $mark), 'garbage is logged');
usleep(300_000);
is(edge_state(get('b')), 'HIT', 'and purges nothing');
ok($purger->is_running, 'the purger is still running');
unlike($purger->log_text($mark), qr/purging everything/, 'no purge of everything for it');

# --- a graceful stop withdraws the vouching at once ---------------------------------------------------------------------

is($purger->stop, 0, 'SIGTERM: exit 0');
like($purger->log_text, qr/stats: /, 'counters logged at exit');
ok(defined wait_until(sub { edge_state(get('b')) eq 'PASS' }, 0.5), 'the edge stops serving from its cache at once');

unlike($purger->log_text, qr/^\S+ hc_purger: message:/m, 'no log line per message without --verbose');

done_testing();
