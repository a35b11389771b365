# Cached answers on hot standbys, exactly as fresh as each standby.
#
# A primary and two streaming standbys, one Redis.  The primary logs its
# invalidations in WAL (housing_cache.set_wal_invalidation(true)); each
# standby learns of the primary's commits from them, in WAL order.  Checked:
# a standby caches only when the primary logs; the second identical call on
# a standby is an L1 hit; a write is in the standby's next cached read as
# soon as replay has passed its commit, and a rollback changes nothing;
# TRUNCATE, COPY, a listing moved between cities, a transaction touching more
# tags than a pending entry holds; min_lsn waits, times out with 53HC0, is
# refused when malformed and returns at once on the primary; a standby
# restarted while a writing transaction runs on the primary; a primary
# restart; promotion.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $primary = new_node('primary', redis => $redis, allows_streaming => 1);
$primary->safe_psql('postgres', ten_listings_sql() . q{
SELECT housing_cache.generate_listings(200);});

my $standby1 = new_standby($primary, 'standby1');
my $standby2 = new_standby($primary, 'standby2');

sub call
{
	my ($node, $call) = @_;
	return cached_call(sub { $node->safe_psql('postgres', $_[0]) }, $call);
}

# A cached call made twice in one session: the second answer and its tier.
sub twice
{
	my ($node, $call) = @_;
	my $out = $node->safe_psql('postgres',
		"SELECT ($call)::jsonb::text;\nSELECT ($call)::jsonb::text;\n"
		  . "SELECT tier || '|' || coalesce(bypass_reason, '') FROM housing_cache.last_lookup();");
	my @l = split /\n/, $out;
	return { json => $l[1], tier => (split /\|/, $l[2], 2)[0], reason => (split /\|/, $l[2], 2)[1] // '' };
}

sub title { my ($node, $id) = @_; return call($node, "housing_cache.get_listing($id)")->{json}{title} }

# --- without WAL invalidation a standby computes every answer -------------------
my $r = twice($standby1, 'housing_cache.get_listing(1)');
is_deeply([ $r->{tier}, $r->{reason} ], [ 'bypass', 'standby without wal invalidation' ],
	'before the primary logs invalidations, a standby bypasses the cache');

$primary->safe_psql('postgres', 'SELECT housing_cache.set_wal_invalidation(true)');
wait_for_replay($primary, $_) for $standby1, $standby2;

for my $sb ($standby1, $standby2)
{
	my $n = $sb->name;
	for my $c ("housing_cache.get_listing(1)", "housing_cache.search_listings('Boston')",
		"housing_cache.city_stats('Denver')")
	{
		is(twice($sb, $c)->{tier}, 'l1', "$n: the second identical call of $c is an L1 hit");
	}
}

# --- a write, as soon as replay has passed its commit ------------------------------
for my $sb ($standby1, $standby2) { call($sb, 'housing_cache.get_listing(2)') for 1 .. 2 }
my $lsn = $primary->safe_psql('postgres', q{
UPDATE housing.listings SET title = 'Renamed on the primary' WHERE id = 2;
SELECT housing_cache.last_commit_lsn();});
like($lsn, qr{^[0-9A-F]+/[0-9A-F]+$}, "the primary reports its commit's LSN ($lsn)");
for my $sb ($standby1, $standby2)
{
	$sb->poll_query_until('postgres', "SELECT pg_last_wal_replay_lsn() >= '$lsn'")
	  or die 'replay stalled';
	is(title($sb, 2), 'Renamed on the primary',
		$sb->name . ': the cached read right after replay passed the commit LSN has the write');
}

# a rollback changes nothing
call($standby1, 'housing_cache.get_listing(3)');
$primary->safe_psql('postgres', q{BEGIN; UPDATE housing.listings SET title = 'Never' WHERE id = 3; ROLLBACK;});
$primary->safe_psql('postgres', q{UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = 200});
wait_for_replay($primary, $standby1);
$r = call($standby1, 'housing_cache.get_listing(3)');
is_deeply([ $r->{json}{title}, $r->{tier} ], [ 'Listing 3', 'l1' ],
	'standby1: a rolled-back write changes nothing, and invalidates nothing');

# a listing moved from Boston to Denver refreshes both cities
my $boston = call($standby1, "housing_cache.search_listings('Boston', page_size => 100)")->{json}{total};
my $denver = call($standby1, "housing_cache.search_listings('Denver', page_size => 100)")->{json}{total};
$primary->safe_psql('postgres', q{UPDATE housing.listings SET city = 'Denver' WHERE id = 4});
wait_for_replay($primary, $standby1);
is(call($standby1, "housing_cache.search_listings('Boston', page_size => 100)")->{json}{total}, $boston - 1,
	'standby1: a listing moved away leaves the Boston search');
is(call($standby1, "housing_cache.search_listings('Denver', page_size => 100)")->{json}{total}, $denver + 1,
	'... and joins the Denver search');

# TRUNCATE and COPY
$primary->safe_psql('postgres', q{
CREATE TABLE public.items (id int PRIMARY KEY, label text);
INSERT INTO public.items VALUES (1, 'one');
SELECT housing_cache.watch_table('public.items');
SELECT housing_cache.register_query('items.all', 'SELECT json_agg(label ORDER BY id) FROM public.items', '{}', '{public.items}');});
wait_for_replay($primary, $standby1);
is(twice($standby1, q{housing_cache.fetch('items.all')})->{json}, '["one"]', 'standby1: a query of the user\'s own');
$primary->safe_psql('postgres', 'TRUNCATE public.items');
wait_for_replay($primary, $standby1);
is(call($standby1, q{housing_cache.fetch('items.all')})->{json}, undef, 'standby1: TRUNCATE on the primary invalidates');
$primary->safe_psql('postgres', "COPY public.items FROM STDIN;\n2\ttwo\n\\.\n");
$primary->safe_psql('postgres', q{INSERT INTO public.items SELECT 3, 'three'});
wait_for_replay($primary, $standby1);
is_deeply(call($standby1, q{housing_cache.fetch('items.all')})->{json}, [ 'two', 'three' ],
	'standby1: COPY on the primary invalidates');

# a transaction touching more tags than a pending entry holds: everything,
# once it has ended
my $overflows = stat($standby1, 'wal_overflows');
call($standby1, 'housing_cache.get_listing(150)');
$primary->safe_psql('postgres', q{UPDATE housing.listings SET title = title || '!' WHERE id BETWEEN 11 AND 160});
wait_for_replay($primary, $standby1);
cmp_ok(stat($standby1, 'wal_overflows'), '>', $overflows, 'standby1: a transaction with 150 rows overflows its pending entry');
like(title($standby1, 150), qr/!$/, '... and its writes are in the next cached read');
is(twice($standby1, 'housing_cache.get_listing(150)')->{tier}, 'l1', '... which is cached again');

# The HTTP edge caches only a primary's answers (edge/README.md): a standby
# stamps none and sends no heartbeat, which would announce an epoch of its own.
cmp_ok(stat($primary, 'heartbeats'), '>', 0, 'the primary\'s worker publishes heartbeats');
is(stat($standby1, 'heartbeats'), 0, 'a standby\'s does not');
is($standby1->safe_psql('postgres',
		q{SELECT housing_cache.get_listing(150) IS NOT NULL; SELECT tier, stamp IS NULL, tags IS NOT NULL FROM housing_cache.last_lookup()}),
	"t\nl1|t|t", 'a standby\'s cached answer has its tags but no stamp');
like($primary->safe_psql('postgres',
		q{SELECT housing_cache.get_listing(150) IS NOT NULL; SELECT stamp FROM housing_cache.last_lookup()}),
	qr{^t\n\d+/\d+$}, 'the primary\'s has a stamp');

cmp_ok(stat($standby1, 'wal_records_replayed'), '>', 0, 'standby1 counts the records it replayed');
cmp_ok(stat($standby1, 'wal_slots_resolved'), '>', 0, '... and the slots it resolved');
cmp_ok(stat($primary, 'wal_records_logged'), '>', 0, 'the primary counts the records it logged');

# --- min_lsn -------------------------------------------------------------------------
my $lsn2 = $primary->safe_psql('postgres', q{
UPDATE housing.listings SET title = 'Read your writes' WHERE id = 5;
SELECT housing_cache.last_commit_lsn();});
is($primary->safe_psql('postgres', "SET housing_cache.min_lsn = '$lsn2'; SELECT housing_cache.get_listing(5) ->> 'title'"),
	'Read your writes', 'on the primary, min_lsn returns at once');

$standby2->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
my $lsn3 = $primary->safe_psql('postgres', q{
UPDATE housing.listings SET title = 'Behind the pause' WHERE id = 6;
SELECT housing_cache.last_commit_lsn();});
my $t0 = time;
my ($rc, $out, $err) = $standby2->psql('postgres',
	"\\set VERBOSITY verbose\nSET housing_cache.min_lsn_wait_ms = 300;\nSET housing_cache.min_lsn = '$lsn3';\n"
	  . "SELECT housing_cache.get_listing(6)");
my $waited = time - $t0;
like($err, qr/53HC0/, 'standby2, replay paused: a read with min_lsn of a later commit fails with 53HC0');
like($err, qr/has not replayed up to/, '... saying why');
cmp_ok($waited, '>=', 0.3, sprintf('... after waiting the %d ms allowed (%.2f s)', 300, $waited));
cmp_ok(stat($standby2, 'min_lsn_timeouts'), '>=', 1, '... counted');

my $reader = $standby2->background_psql('postgres');
$reader->query_until(qr/ready/, "SET housing_cache.min_lsn = '$lsn3';\nSET housing_cache.min_lsn_wait_ms = 60000;\n\\echo ready\n");
$reader->query_until(qr//, "SELECT housing_cache.get_listing(6) ->> 'title';\n");
sleep 1;
$standby2->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
$reader->query_until(qr/Behind the pause/, '');
pass('a read with min_lsn waits while replay is paused, and sees the write once it resumes');
$reader->quit;
cmp_ok(stat($standby2, 'min_lsn_waits'), '>=', 1, '... counted as a wait');

# The same through PostgREST, replaying its statements: it cannot send
# X-Commit-LSN, so a client that wrote asks the primary for api.wal_lsn()
# (POST, on another connection) and sends that as X-Min-LSN.
$primary->safe_psql('postgres', 'SELECT housing_cache.setup_api_roles()');
wait_for_replay($primary, $standby2);
$standby2->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
$primary->safe_psql('postgres', q{
BEGIN;
SET LOCAL ROLE web_editor;
SELECT set_config('request.method', 'POST', true);
SELECT api.update_listing(12, title => 'Through PostgREST');
COMMIT;});
my $wal_lsn = $primary->safe_psql('postgres', q{
BEGIN; SET LOCAL ROLE web_editor; SELECT (api.wal_lsn()::json) ->> 'lsn'; COMMIT;});
like($wal_lsn, qr{^[0-9A-F]+/[0-9A-F]+$}, 'api.wal_lsn() on the primary: an LSN');
my $get12 = sub {
	my ($wait_ms) = @_;
	return $standby2->psql('postgres', qq{
\\set VERBOSITY verbose
SET housing_cache.min_lsn_wait_ms = $wait_ms;
BEGIN;
SET LOCAL ROLE web_anon;
SELECT set_config('request.method', 'GET', true);
SELECT set_config('request.headers', json_build_object('x-min-lsn', '$wal_lsn')::text, true);
SELECT api.listing(12)::json ->> 'title';
COMMIT;});
};
($rc, $out, $err) = $get12->(200);
like($err, qr/53HC0/, 'standby2 paused: api.listing with X-Min-LSN = api.wal_lsn() after the write is refused (53HC0)');
$standby2->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
($rc, $out, $err) = $get12->(60000);
like($out, qr/Through PostgREST/, '... and, replay resumed, it has the write') or diag $err;
($rc, $out, $err) = $standby2->psql('postgres', q{SET ROLE web_editor; SELECT api.wal_lsn()});
like($err, qr/recovery is in progress/, 'api.wal_lsn() on a standby: an error, never a position');
($rc, $out, $err) = $primary->psql('postgres', q{SET ROLE web_anon; SELECT api.wal_lsn()});
like($err, qr/permission denied/, 'web_anon may not call api.wal_lsn()');

($rc, $out, $err) = $standby2->psql('postgres', "SET housing_cache.min_lsn = 'not an lsn'");
like($err, qr/housing_cache.min_lsn must be an LSN/, 'a malformed min_lsn is refused');

# --- a standby restarted while a writing transaction runs on the primary -----------
my $writer = $primary->background_psql('postgres');
$writer->query_safe(q{BEGIN; UPDATE housing.listings SET title = 'Spans the restart' WHERE id = 7;});
wait_for_replay($primary, $standby1);
$standby1->restart;
$r = twice($standby1, 'housing_cache.get_listing(7)');
is_deeply([ $r->{tier}, $r->{reason} ], [ 'bypass', 'standby catching up' ],
	'standby1 restarted while the primary has a writing transaction open: it bypasses the cache');
$writer->query_safe('COMMIT');
$writer->quit;
wait_for_replay($primary, $standby1);
$r = twice($standby1, 'housing_cache.get_listing(7)');
is_deeply([ $r->{json}, $r->{tier} ], [ $primary->safe_psql('postgres', 'SELECT housing_cache.get_listing(7)::jsonb::text'), 'l1' ],
	'... and caches again, with the write, once that transaction has ended');

# --- the primary restarted -----------------------------------------------------------
$primary->restart;
call($standby1, 'housing_cache.get_listing(8)');
$primary->safe_psql('postgres', q{UPDATE housing.listings SET title = 'After the primary restart' WHERE id = 8});
wait_for_replay($primary, $standby1);
is(title($standby1, 8), 'After the primary restart', 'after a primary restart, its writes still reach the standby\'s cache');

# --- promotion -------------------------------------------------------------------------
call($standby2, 'housing_cache.get_listing(9)') for 1 .. 2;
$primary->safe_psql('postgres', q{UPDATE housing.listings SET title = 'Before the promotion' WHERE id = 9});
wait_for_replay($primary, $standby2);
$primary->stop;
$standby2->promote;
is(title($standby2, 9), 'Before the promotion', 'standby2 promoted: its cache has every replayed write');
$standby2->safe_psql('postgres', q{UPDATE housing.listings SET title = 'On the new primary' WHERE id = 9});
is(title($standby2, 9), 'On the new primary', '... and its own writes invalidate it');
is(twice($standby2, 'housing_cache.get_listing(9)')->{tier}, 'l1', '... and it caches');
ok($standby2->poll_query_until('postgres', q{SELECT heartbeats > 0 FROM housing_cache.stats}),
	'... and publishes heartbeats');
like($standby2->safe_psql('postgres',
		q{SELECT housing_cache.get_listing(9) IS NOT NULL; SELECT stamp FROM housing_cache.last_lookup()}),
	qr{^t\n\d+/\d+$}, '... and stamps its answers');

$standby1->stop;
$standby2->stop;
$redis->stop;
done_testing();
