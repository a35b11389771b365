# hc_http with a read database: a primary and a streaming hot standby.
#
# GET and HEAD are answered by the standby (X-Served-By: replica), POST by
# the primary, with the commit's LSN in X-Commit-LSN.  A read the standby
# cannot answer -- it is down, or it has not replayed the client's
# X-Min-LSN yet (53HC0) -- is answered by the primary, so that
# an editor who sends back the LSN of its write never reads an older
# answer; lag that reaches the client is a 503 with Retry-After.  The HTTP
# edge's fetches (X-HC-Edge-Fetch: 1) are answered by the primary.
#
# The part that needs housing_cache's hot-standby SQL (last_commit_lsn(),
# min_lsn) fails, saying so, when the installed extension lacks it.  The
# rest uses a probe function of its own in the api schema, which does
# what the portal's reads do with X-Min-LSN, without the extension.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;

use JSON::PP;
use Test::More;
use Time::HiRes qw(time usleep);

use HcHttp;

my $stack = HcHttp->new(name => 'http_replica', listings => 300, streaming => 1);
my $primary = $stack->node;

my $has_lsn_sql = $primary->safe_psql('postgres',
	"SELECT to_regprocedure('housing_cache.last_commit_lsn()') IS NOT NULL") eq 't';
my $has_wal_inval = $primary->safe_psql('postgres',
	"SELECT to_regprocedure('housing_cache.set_wal_invalidation(boolean)') IS NOT NULL") eq 't';
# the standby caches only when the primary logs its invalidations in WAL
$primary->safe_psql('postgres', 'SELECT housing_cache.set_wal_invalidation(true)')
  if $has_wal_inval;

# The probe: where it ran, the listing's title, and the X-Min-LSN it was
# given (as request.headers has it: lower-case); on a standby that has not
# replayed that far, the error the extension raises, at once.
$primary->safe_psql('postgres', q{
CREATE FUNCTION api.replica_probe(id bigint) RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    want text := nullif(current_setting('request.headers', true), '')::json->>'x-min-lsn';
BEGIN
    IF want IS NOT NULL AND pg_is_in_recovery() AND pg_last_wal_replay_lsn() < want::pg_lsn THEN
        RAISE EXCEPTION 'this standby has not replayed up to % yet', want USING ERRCODE = '53HC0';
    END IF;
    RETURN json_build_object('in_recovery', pg_is_in_recovery(), 'min_lsn', want,
        'title', (SELECT l.title FROM housing.listings l WHERE l.id = replica_probe.id));
END
$$;
GRANT EXECUTE ON FUNCTION api.replica_probe(bigint) TO web_anon;
});

my $standby = $stack->add_standby('standby');

# --- the standby is a hot standby with the extension preloaded --------------

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'standby: in recovery');
is($standby->safe_psql('postgres', 'SHOW shared_preload_libraries'), 'housing_cache',
	'standby: housing_cache preloaded');
is($standby->safe_psql('postgres', 'SHOW housing_cache.redis_port'), $stack->redis->port,
	"standby: the primary's Redis settings");

my $srv = $stack->start_server('--pool', '2', '--read-db', $stack->conninfo($standby));
my $editor = $srv->token('web_editor');
my $id = $primary->safe_psql('postgres',
	"SELECT min(id) FROM housing.listings WHERE city = 'Denver' AND status = 'active'");
my $item = "/api/rpc/listing?id=$id";
my $probe = "/api/rpc/replica_probe?id=$id";

sub served { return $_[0]->{headers}{'x-served-by'} // '(none)' }

# --- reads go to the standby, writes to the primary --------------------------

my $r = $srv->request('GET', $item);
is($r->{status}, 200, 'GET: 200') or diag($r->{body});
is(served($r), 'replica', 'GET: served by the replica');
is($r->{json}{id}, $id, 'GET: the listing');
$r = $srv->request('HEAD', $item);
is(served($r), 'replica', 'HEAD: served by the replica');
$r = $srv->request('GET', $probe);
is($r->{json}{in_recovery}, JSON::PP::true, 'GET: ran on the standby');

# the HTTP edge's own fetches (Varnish, X-HC-Edge-Fetch: 1) go to the
# primary: only its answers carry a stamp the edge accepts
$r = $srv->request('GET', $item, headers => ['X-HC-Edge-Fetch: 1']);
is($r->{status}, 200, 'edge fetch: 200');
is(served($r), 'primary', 'edge fetch (X-HC-Edge-Fetch: 1): served by the primary');
$r = $srv->request('GET', $probe, headers => ['X-HC-Edge-Fetch: 1']);
is($r->{json}{in_recovery}, JSON::PP::false, 'edge fetch: ran on the primary');
$r = $srv->request('GET', $item, headers => ['X-HC-Edge-Fetch: 0']);
is(served($r), 'replica', 'X-HC-Edge-Fetch other than 1: the replica as usual');

$r = $srv->request('GET', $probe, headers => ['X-Min-LSN: 0/1']);
is($r->{json}{min_lsn}, '0/1', 'X-Min-LSN reaches request.headers as x-min-lsn');
is(served($r), 'replica', 'X-Min-LSN the standby has replayed: served by the replica');

$r = $srv->request('GET', "/api/rpc/update_listing?id=$id&title=x", token => $editor);
is($r->{status}, 405, 'GET of a writing function: 405 (read-only, on the standby too)');
is($r->{json}{code}, '25006', 'GET of a writing function: 25006');

my $lsn_before = $primary->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
$r = $srv->request('POST', '/api/rpc/update_listing', token => $editor,
	json => { id => 0 + $id, title => 'Written on the primary' });
is($r->{status}, 200, 'POST: 200') or diag($r->{body});
is(served($r), 'primary', 'POST: served by the primary');
is($r->{json}{title}, 'Written on the primary', 'POST: the new title');
my $commit_lsn = $r->{headers}{'x-commit-lsn'};

$primary->wait_for_catchup($standby);
$r = $srv->request('GET', $probe);
is($r->{json}{title}, 'Written on the primary', 'the standby, caught up, has the write');
is(served($r), 'replica', '... and answers');

# --- a lagging standby: X-Min-LSN sends the read to the primary -------------

$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$standby->poll_query_until('postgres', "SELECT pg_get_wal_replay_pause_state() = 'paused'")
  or die 'replay did not pause';
$primary->safe_psql('postgres', "UPDATE housing.listings SET title = 'Lagging' WHERE id = $id");
my $fresh = $primary->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');

$r = $srv->request('GET', $probe);
is($r->{json}{title}, 'Written on the primary', 'replay paused: the standby does not have the write');
is(served($r), 'replica', 'replay paused: reads without X-Min-LSN stay on the replica');
$r = $srv->request('GET', $probe, headers => ["X-Min-LSN: $fresh"]);
is($r->{status}, 200, 'X-Min-LSN past replay: 200, not the standby\'s error') or diag($r->{body});
is(served($r), 'primary', 'X-Min-LSN past replay: served by the primary');
is($r->{json}{title}, 'Lagging', 'X-Min-LSN past replay: the write is seen');
is($r->{json}{in_recovery}, JSON::PP::false, 'X-Min-LSN past replay: ran on the primary');

# --- housing_cache's own SQL: X-Commit-LSN, and the portal's reads ----------

if (!$has_lsn_sql)
{
	ok(!defined $commit_lsn, 'no X-Commit-LSN without housing_cache.last_commit_lsn()');
	fail('housing_cache.last_commit_lsn() does not exist in the installed extension: '
		  . 'the hot-standby SQL (last_commit_lsn, min_lsn) has not landed, so '
		  . 'X-Commit-LSN and the portal\'s X-Min-LSN cannot be tested');
}
else
{
	like($commit_lsn // '', qr{^[0-9A-F]+/[0-9A-F]+$}, 'POST: X-Commit-LSN');
	is($primary->safe_psql('postgres',
			"SELECT '$commit_lsn'::pg_lsn > '$lsn_before'::pg_lsn AND '$commit_lsn'::pg_lsn <= pg_current_wal_lsn()"),
		't', 'X-Commit-LSN: after the LSN before the write, not past the WAL written');

	# the editor's write while replay is paused, read back with its LSN
	$r = $srv->request('POST', '/api/rpc/update_listing', token => $editor,
		json => { id => 0 + $id, title => 'Read your own write' });
	is($r->{status}, 200, 'POST while replay is paused: 200') or diag($r->{body});
	my $lsn = $r->{headers}{'x-commit-lsn'};
	like($lsn // '', qr{^[0-9A-F]+/[0-9A-F]+$}, 'POST while replay is paused: X-Commit-LSN');

	$r = $srv->request('GET', $item);
	is(served($r), 'replica', 'portal read without X-Min-LSN: the replica');
	isnt($r->{json}{title}, 'Read your own write', '... which lags behind');

	my $t0 = time;
	$r = $srv->request('GET', $item, headers => ["X-Min-LSN: $lsn"]);
	my $took = time - $t0;
	is($r->{status}, 200, 'portal read with X-Min-LSN: 200') or diag($r->{body});
	is($r->{json}{title}, 'Read your own write', 'portal read with X-Min-LSN: the new value');
	is(served($r), 'primary', 'portal read with X-Min-LSN: the primary answered');
	cmp_ok($took, '<', 10, "portal read with X-Min-LSN: bounded wait (${took}s)");

	$r = $srv->request('GET', "/api/rpc/listings?city=Denver&page_size=5", headers => ["X-Min-LSN: $lsn"]);
	is($r->{status}, 200, 'search with X-Min-LSN: 200') or diag($r->{body});
	is(served($r), 'primary', 'search with X-Min-LSN: the primary answered');

	# lag that reaches the client: a server whose only database is the
	# paused standby
	my $lagging = $stack->start_server('--pool', '1', '--db', $stack->conninfo($standby));
	$r = $lagging->request('GET', $item, headers => ["X-Min-LSN: $lsn"]);
	is($r->{status}, 503, 'lag reaching the client: 503') or diag($r->{body});
	like($r->{json}{code} // '', qr/^53HC0$/, 'lag reaching the client: the SQLSTATE');
	is($r->{headers}{'retry-after'}, '1', 'lag reaching the client: Retry-After: 1');
	$lagging->stop;

	$r = $srv->request('GET', $item, headers => ["X-Min-LSN: not-an-lsn"]);
	is($r->{status}, 400, 'malformed X-Min-LSN: 400') or diag($r->{body});
}

# the probe's error, when no primary is left to ask: 503 with Retry-After
my $alone = $stack->start_server('--pool', '1', '--db', $stack->conninfo($standby));
$r = $alone->request('GET', $probe, headers => ["X-Min-LSN: $fresh"]);
is($r->{status}, 503, 'standby alone, behind X-Min-LSN: 503') or diag($r->{body});
is($r->{json}{code}, '53HC0', 'standby alone, behind X-Min-LSN: 53HC0');
is($r->{headers}{'retry-after'}, '1', 'standby alone, behind X-Min-LSN: Retry-After: 1');
is(served($r), 'primary', 'standby alone: it is the --db (X-Served-By names the pool)');
$alone->stop;

$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$primary->wait_for_catchup($standby);
$r = $srv->request('GET', $probe);
is($r->{json}{title}, $primary->safe_psql('postgres', "SELECT title FROM housing.listings WHERE id = $id"),
	'replay resumed: the standby catches up');
is(served($r), 'replica', 'replay resumed: served by the replica');
if ($has_lsn_sql)
{
	$r = $srv->request('GET', $item);
	is($r->{json}{title}, 'Read your own write', 'replay resumed: the portal read on the replica is current');
	is(served($r), 'replica', 'replay resumed: portal read by the replica');
}

# --- the standby down: reads go to the primary -------------------------------

$standby->stop('immediate');
for my $i (1 .. 4)
{
	my $t0 = time;
	$r = $srv->request('GET', $item);
	is($r->{status}, 200, "standby down, GET $i: 200") or diag($r->{body});
	is(served($r), 'primary', "standby down, GET $i: served by the primary");
	cmp_ok(time - $t0, '<', 5, "standby down, GET $i: quick");
}
$r = $srv->request('POST', '/api/rpc/update_listing', token => $editor,
	json => { id => 0 + $id, title => 'Standby down' });
is($r->{status}, 200, 'standby down: POST 200');
$r = $srv->request('GET', $item);
is($r->{json}{title}, 'Standby down', 'standby down: the primary has the write');
like($srv->log_text, qr/read database unavailable: reads go to the primary/, 'standby down: logged');

$standby->start;
my $back;
my $deadline = time + 30;
while (time < $deadline)
{
	$r = $srv->request('GET', $probe);
	if ($r->{status} == 200 && served($r) eq 'replica')
	{
		$back = $r;
		last;
	}
	usleep(200_000);
}
ok($back, 'standby back: reads go to the replica again');
like($srv->log_text, qr/read database available: reads go to it again/, 'standby back: logged');

# --- a read database that never answered; none at all ------------------------

my $dead = $stack->start_server('--pool', '1', '--read-db',
	'host=127.0.0.1 port=1 dbname=postgres user=authenticator connect_timeout=2');
$r = $dead->request('GET', $item);
is($r->{status}, 200, 'read database unreachable from the start: 200');
is(served($r), 'primary', 'read database unreachable from the start: the primary answers');
like($dead->log_text, qr/starting without the read database/, 'read database unreachable: logged at start');
$dead->stop;

my $single = $stack->start_server('--pool', '1');
$r = $single->request('GET', $item);
is(served($r), 'primary', 'no read database: X-Served-By primary');
$r = $single->request('POST', '/api/rpc/update_listing', token => $editor,
	json => { id => 0 + $id, title => 'Single' });
is(served($r), 'primary', 'no read database: POST by the primary');
if ($has_lsn_sql)
{
	like($r->{headers}{'x-commit-lsn'} // '', qr{^[0-9A-F]+/[0-9A-F]+$},
		'no read database: X-Commit-LSN all the same');
}
# a failed write has no LSN
$r = $single->request('POST', '/api/rpc/update_listing', token => $editor,
	json => { id => 0 + $id, price_cents => -1 });
is($r->{status}, 400, 'refused write: 400');
ok(!exists $r->{headers}{'x-commit-lsn'}, 'refused write: no X-Commit-LSN');
$single->stop;

is($srv->stop, 0, 'the server stops cleanly');

done_testing();
