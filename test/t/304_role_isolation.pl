# An answer computed for one role is never served to a role that could not
# see the same rows (the class of leak of pgpool-II's CVE-2024-45624, whose
# query cache served what a privileged role had cached to a session after
# SET ROLE / SET SESSION AUTHORIZATION).
#
# The oracle: for every role and call, the answer (or error) through the
# cache equals what the same role gets with the cache off
# (housing_cache.enabled = off in the same session), whatever other roles
# warmed the cache before, and in both orders.  Cases:
#   - row-level security: a registered query on a table with RLS, roles
#     with different policies, a BYPASSRLS role, FORCE ROW LEVEL SECURITY,
#     RLS enabled after answers were cached, row_security = off; the
#     built-in get_listing/search_listings with a policy on housing.listings
#   - column privileges: a role with SELECT on some columns only, on a
#     registered query and on the built-ins
#   - SECURITY DEFINER functions calling a cached function
#   - SET ROLE, SET LOCAL ROLE, set_config('role'), SET SESSION
#     AUTHORIZATION in the middle of a session
#   - restricted functions (EXECUTE revoked), called by the query itself or
#     by a function it calls; EXECUTE revoked on the cached functions
#   - vary_by_role queries
#   - a query reading a table through a view, or through a SECURITY INVOKER
#     function, where RLS or privileges apply inside
use strict;
use warnings;

use DBI;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $node = new_node('roles', redis => $redis, conf => 'log_statement = none');
my $dsn = 'dbi:Pg:dbname=postgres;host=' . $node->host . ';port=' . $node->port;

$node->safe_psql('postgres', q{
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE carol LOGIN BYPASSRLS;
CREATE ROLE clerk LOGIN;
CREATE ROLE outsider LOGIN;
CREATE ROLE keeper LOGIN;          -- owns a table with FORCE ROW LEVEL SECURITY

CREATE SCHEMA sec;
GRANT USAGE ON SCHEMA sec TO PUBLIC;

-- documents: everyone sees their own; bob also sees carol's
CREATE TABLE sec.docs (id int PRIMARY KEY, city text NOT NULL, owner text NOT NULL, body text NOT NULL);
INSERT INTO sec.docs VALUES
  (1, 'Boston', 'alice', 'alice-boston'), (2, 'Boston', 'bob', 'bob-boston'),
  (3, 'Boston', 'carol', 'carol-boston'), (4, 'Boston', 'postgres', 'admin-boston'),
  (5, 'Denver', 'alice', 'alice-denver'), (6, 'Denver', 'bob', 'bob-denver'),
  (7, 'Denver', 'carol', 'carol-denver'), (8, 'Denver', 'postgres', 'admin-denver');
ALTER TABLE sec.docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON sec.docs USING (owner = current_user);
CREATE POLICY bob_sees_carol ON sec.docs TO bob USING (owner = 'carol');
GRANT SELECT ON sec.docs TO alice, bob, carol;
SELECT housing_cache.watch_table('sec.docs', 'city');
SELECT housing_cache.register_query('sec.docs_by_city',
  $q$SELECT coalesce(json_agg(d.body ORDER BY d.id), '[]') FROM sec.docs d WHERE d.city = $1$q$,
  '{text}', '{sec.docs/city=$1}');

-- a table without RLS yet
CREATE TABLE sec.notes (id int PRIMARY KEY, owner text NOT NULL, body text NOT NULL);
INSERT INTO sec.notes VALUES (1, 'alice', 'note-alice'), (2, 'bob', 'note-bob');
GRANT SELECT ON sec.notes TO PUBLIC;
SELECT housing_cache.watch_table('sec.notes');
SELECT housing_cache.register_query('sec.all_notes',
  $q$SELECT json_agg(n.body ORDER BY n.id) FROM sec.notes n$q$, '{}', '{sec.notes}');

-- FORCE ROW LEVEL SECURITY: the owner is subject to its own policy
CREATE TABLE sec.ledger (id int PRIMARY KEY, owner text NOT NULL, amount int NOT NULL);
INSERT INTO sec.ledger VALUES (1, 'keeper', 10), (2, 'alice', 20), (3, 'bob', 30);
ALTER TABLE sec.ledger OWNER TO keeper;
ALTER TABLE sec.ledger ENABLE ROW LEVEL SECURITY;
ALTER TABLE sec.ledger FORCE ROW LEVEL SECURITY;
CREATE POLICY own ON sec.ledger USING (owner = current_user);
SELECT housing_cache.watch_table('sec.ledger');
SELECT housing_cache.register_query('sec.ledger_sum',
  $q$SELECT json_build_object('rows', count(*), 'sum', sum(amount)) FROM sec.ledger$q$, '{}', '{sec.ledger}');

-- column privileges
CREATE TABLE sec.people (id int PRIMARY KEY, name text NOT NULL, salary int NOT NULL);
INSERT INTO sec.people VALUES (1, 'Ann', 100000), (2, 'Ben', 90000);
GRANT SELECT (id, name) ON sec.people TO clerk;
SELECT housing_cache.watch_table('sec.people');
SELECT housing_cache.register_query('sec.person',
  $q$SELECT json_build_object('id', id, 'name', name, 'salary', salary) FROM sec.people WHERE id = $1$q$,
  '{int}', '{sec.people/id=$1}');
SELECT housing_cache.register_query('sec.person_name',
  $q$SELECT json_build_object('id', id, 'name', name) FROM sec.people WHERE id = $1$q$,
  '{int}', '{sec.people/id=$1}');

-- restricted functions
CREATE TABLE sec.scores (id int PRIMARY KEY, raw int NOT NULL);
INSERT INTO sec.scores VALUES (1, 7), (2, 9);
GRANT SELECT ON sec.scores TO PUBLIC;
SELECT housing_cache.watch_table('sec.scores');
CREATE FUNCTION sec.secret_weight(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 1000';
REVOKE EXECUTE ON FUNCTION sec.secret_weight(int) FROM PUBLIC;
-- an ordinary (SECURITY INVOKER) function anyone may run, which calls it
CREATE FUNCTION sec.weigh(int) RETURNS int LANGUAGE plpgsql STABLE AS
  $f$BEGIN RETURN sec.secret_weight($1); END$f$;
SELECT housing_cache.register_query('sec.weighted',
  $q$SELECT json_build_object('id', id, 'w', sec.secret_weight(raw)) FROM sec.scores WHERE id = $1$q$,
  '{int}', '{sec.scores/id=$1}');
SELECT housing_cache.register_query('sec.weighed_via_wrapper',
  $q$SELECT json_build_object('id', id, 'w', sec.weigh(raw)) FROM sec.scores WHERE id = $1$q$,
  '{int}', '{sec.scores/id=$1}');

-- a SECURITY INVOKER function reading the RLS table (its reads are the caller's)
CREATE FUNCTION sec.count_docs(text) RETURNS bigint LANGUAGE plpgsql STABLE AS
  $f$BEGIN RETURN (SELECT count(*) FROM sec.docs WHERE city = $1); END$f$;
SELECT housing_cache.register_query('sec.doc_count_via_function',
  $q$SELECT json_build_object('city', $1, 'n', sec.count_docs($1))$q$,
  '{text}', '{sec.docs/city=$1}');

-- a view owned by alice (RLS applies as alice, with current_user the caller)
CREATE VIEW sec.docs_view AS SELECT id, city, owner, body FROM sec.docs;
ALTER VIEW sec.docs_view OWNER TO alice;
GRANT SELECT ON sec.docs_view TO PUBLIC;
SELECT housing_cache.register_query('sec.docs_view_by_city',
  $q$SELECT coalesce(json_agg(v.body ORDER BY v.id), '[]') FROM sec.docs_view v WHERE v.city = $1$q$,
  '{text}', '{sec.docs/city=$1}');

-- vary_by_role
SELECT housing_cache.register_query('sec.whoami',
  $q$SELECT json_build_object('user', current_user, 'scores', count(*)) FROM sec.scores$q$,
  '{}', '{sec.scores}', vary_by_role => true);

-- SECURITY DEFINER paths: one defined by the superuser, one by bob
CREATE FUNCTION sec.docs_as_admin(c text) RETURNS json LANGUAGE sql SECURITY DEFINER
  SET search_path = pg_catalog AS $f$SELECT housing_cache.fetch('sec.docs_by_city', c)$f$;
CREATE FUNCTION sec.docs_as_bob(c text) RETURNS json LANGUAGE sql SECURITY DEFINER
  SET search_path = pg_catalog AS $f$SELECT housing_cache.fetch('sec.docs_by_city', c)$f$;
ALTER FUNCTION sec.docs_as_bob(text) OWNER TO bob;

-- listings for the built-ins: 1-3 in Boston, 4-6 in Denver; 3 and 6 expensive
INSERT INTO housing.listings
    (id, title, city, neighborhood, price_cents, bedrooms, bathrooms, area_sqm, lat, lon,
     created_at, updated_at)
SELECT i, 'Listing ' || i, CASE WHEN i <= 3 THEN 'Boston' ELSE 'Denver' END, 'Center',
       CASE WHEN i % 3 = 0 THEN 90000000 ELSE 30000000 + i END, 2, 1.0, 60, 42, -71,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour', timestamptz '2024-01-01 00:00:00+00'
  FROM generate_series(1, 6) AS i;
});

# --- sessions ---------------------------------------------------------------------

my %session;

sub session
{
	my ($who) = @_;
	return $session{$who} //= DBI->connect($dsn, $who eq 'admin' ? '' : $who, '',
		{ AutoCommit => 1, RaiseError => 0, PrintError => 0 })
	  // die "cannot connect as $who: " . DBI->errstr;
}

sub run_call
{
	my ($dbh, $call) = @_;
	my $row = $dbh->selectrow_arrayref("SELECT ($call)::text");
	return { error => $dbh->state, message => $dbh->errstr } unless $row;
	my ($tier, $reason) = $dbh->selectrow_array('SELECT tier, bypass_reason FROM housing_cache.last_lookup()');
	return { value => $row->[0] // 'NULL', tier => $tier // '', reason => $reason // '' };
}

# Through the cache, in $who's session (a role name, 'admin' for the
# superuser, or a database handle).
sub cached
{
	my ($who, $call) = @_;
	return run_call(ref $who ? $who : session($who), $call);
}

# The same call in the same session with the cache off.
sub uncached
{
	my ($who, $call) = @_;
	my $dbh = ref $who ? $who : session($who);
	$dbh->do('SET housing_cache.enabled = off');
	my $r = run_call($dbh, $call);
	$dbh->do('RESET housing_cache.enabled');
	return $r;
}

sub shown { my ($r) = @_; return defined $r->{error} ? "ERROR $r->{error}" : $r->{value}; }

# The oracle: the cached answer (or error) is the one the role gets without
# the cache.  Returns the cached result.
sub same_as_uncached
{
	my ($who, $call, $label) = @_;
	my $c = cached($who, $call);
	my $u = uncached($who, $call);
	is(shown($c), shown($u), "$label: as without the cache (" . shown($u) . ')');
	return $c;
}

sub sql { return $node->safe_psql('postgres', $_[0]) }

# Make an answer's next read a miss: a write to its tag.
sub touch_city
{
	my ($city) = @_;
	sql("UPDATE sec.docs SET body = body WHERE city = '$city' AND id IN (4, 8)");
}

# --- row-level security ------------------------------------------------------------

my $boston = q{housing_cache.fetch('sec.docs_by_city', 'Boston')};
my $denver = q{housing_cache.fetch('sec.docs_by_city', 'Denver')};

# The superuser first: its answer (every row) is cached...
my $r = cached('admin', $boston);
is($r->{value}, '["alice-boston", "bob-boston", "carol-boston", "admin-boston"]', 'RLS: the superuser sees every row');
is(cached('admin', $boston)->{tier}, 'l1', 'RLS: ... and its answer is cached');
# ...and must reach nobody subject to a policy.
$r = same_as_uncached('alice', $boston, 'RLS, privileged first: alice');
is($r->{value}, '["alice-boston"]', 'RLS, privileged first: alice sees her row only');
is_deeply([ $r->{tier}, $r->{reason} ], [ 'bypass', 'row level security' ], 'RLS: alice bypasses the cache');
$r = same_as_uncached('bob', $boston, 'RLS, privileged first: bob');
is($r->{value}, '["bob-boston", "carol-boston"]', 'RLS, privileged first: bob sees his and carol\'s rows (his policies)');
$r = same_as_uncached('carol', $boston, 'RLS, privileged first: carol (BYPASSRLS)');
is($r->{tier}, 'l1', 'RLS: a BYPASSRLS role may share the cached answer (it sees every row)');

# Restricted roles first: nothing they compute may be stored for the others.
$r = same_as_uncached('alice', $denver, 'RLS, restricted first: alice');
is($r->{value}, '["alice-denver"]', 'RLS, restricted first: alice sees her row only');
same_as_uncached('bob', $denver, 'RLS, restricted first: bob');
$r = cached('admin', $denver);
is_deeply([ $r->{value}, $r->{tier} ], [ '["alice-denver", "bob-denver", "carol-denver", "admin-denver"]', 'miss' ],
	'RLS, restricted first: the superuser\'s first read computes every row (nothing was stored for alice or bob)');
same_as_uncached('alice', $denver, 'RLS, restricted first, again: alice');
same_as_uncached('carol', $denver, 'RLS, restricted first: carol');

# row_security = off: PostgreSQL's own error instead of a filtered answer,
# never the cached full one.
session('alice')->do('SET row_security = off');
$r = same_as_uncached('alice', $boston, 'RLS: alice with row_security = off');
is($r->{error}, '42501', 'RLS: with row_security = off alice gets PostgreSQL\'s error');
session('alice')->do('RESET row_security');

# FORCE ROW LEVEL SECURITY: even the table's owner.
my $ledger = q{housing_cache.fetch('sec.ledger_sum')};
is(cached('admin', $ledger)->{value}, '{"rows" : 3, "sum" : 60}', 'FORCE RLS: the superuser sees every row');
$r = same_as_uncached('keeper', $ledger, 'FORCE RLS: the owner');
is($r->{value}, '{"rows" : 1, "sum" : 10}', 'FORCE RLS: the owner sees its own rows only');

# RLS enabled after answers were cached for everyone.
my $notes = q{housing_cache.fetch('sec.all_notes')};
cached('admin', $notes);
is(cached('alice', $notes)->{tier}, 'l1', 'RLS enabled later: before, alice shares the cached answer');
sql(q{ALTER TABLE sec.notes ENABLE ROW LEVEL SECURITY;
      CREATE POLICY own ON sec.notes USING (owner = current_user)});
$r = same_as_uncached('alice', $notes, 'RLS enabled later: alice');
is($r->{value}, '["note-alice"]', 'RLS enabled later: alice then sees her note only');
is(cached('admin', $notes)->{value}, '["note-alice", "note-bob"]', 'RLS enabled later: the superuser still sees both');

# The built-in functions, with a restrictive policy for alice on listings.
sql(q{ALTER TABLE housing.listings ENABLE ROW LEVEL SECURITY;
      CREATE POLICY everyone ON housing.listings USING (true);
      CREATE POLICY alice_cheap ON housing.listings AS RESTRICTIVE TO alice USING (price_cents < 50000000)});
my $expensive = 'housing_cache.get_listing(3)';
my $search = q{housing_cache.search_listings(city => 'Boston')};
like(cached('admin', $expensive)->{value}, qr/"id":3/, 'built-ins with RLS: the superuser reads listing 3');
cached('admin', $search);
$r = same_as_uncached('alice', $expensive, 'built-ins with RLS: alice, get_listing(3)');
is($r->{value}, 'NULL', 'built-ins with RLS: listing 3 does not exist for alice');
$r = same_as_uncached('alice', $search, 'built-ins with RLS: alice, search_listings(Boston)');
unlike($r->{value}, qr/"id":3/, 'built-ins with RLS: alice\'s search does not list it');
same_as_uncached('bob', $search, 'built-ins with RLS: bob, search_listings(Boston)');
# alice first, then the superuser
$r = same_as_uncached('alice', 'housing_cache.get_listing(6)', 'built-ins with RLS, alice first: get_listing(6)');
like(cached('admin', 'housing_cache.get_listing(6)')->{value}, qr/"id":6/,
	'built-ins with RLS, alice first: the superuser then reads listing 6');
sql(q{DROP POLICY alice_cheap ON housing.listings; DROP POLICY everyone ON housing.listings;
      ALTER TABLE housing.listings DISABLE ROW LEVEL SECURITY});

# --- column privileges ----------------------------------------------------------------

cached('admin', q{housing_cache.fetch('sec.person', '1')});
cached('admin', q{housing_cache.fetch('sec.person_name', '1')});
$r = same_as_uncached('clerk', q{housing_cache.fetch('sec.person', '1')}, 'columns: clerk reading salary');
is($r->{error}, '42501', 'columns: clerk gets PostgreSQL\'s permission error, not the cached salary');
$r = same_as_uncached('clerk', q{housing_cache.fetch('sec.person_name', '1')}, 'columns: clerk reading names');
is($r->{value}, '{"id" : 1, "name" : "Ann"}', 'columns: clerk reads the columns granted');
is($r->{reason}, 'no select privilege', 'columns: ... computed for it, outside the cache');

# the built-ins, with SELECT on some columns of housing.listings only
sql(q{REVOKE SELECT ON housing.listings FROM PUBLIC;
      GRANT SELECT (id, title, city) ON housing.listings TO clerk});
cached('admin', 'housing_cache.get_listing(1)');
cached('admin', q{housing_cache.search_listings(city => 'Denver')});
$r = same_as_uncached('clerk', 'housing_cache.get_listing(1)', 'columns: clerk, get_listing(1)');
is($r->{error}, '42501', 'columns: clerk gets PostgreSQL\'s permission error from get_listing');
$r = same_as_uncached('clerk', q{housing_cache.search_listings(city => 'Denver')}, 'columns: clerk, search_listings');
is($r->{error}, '42501', 'columns: ... and from search_listings');
$r = same_as_uncached('outsider', 'housing_cache.get_listing(1)', 'no privilege at all: get_listing(1)');
is($r->{error}, '42501', 'no privilege at all: PostgreSQL\'s permission error');
sql(q{REVOKE SELECT (id, title, city) ON housing.listings FROM clerk;
      GRANT SELECT ON housing.listings TO PUBLIC});

# --- SECURITY DEFINER paths --------------------------------------------------------

touch_city('Boston');
$r = cached('alice', q{sec.docs_as_admin('Boston')});
is($r->{value}, '["alice-boston", "bob-boston", "carol-boston", "admin-boston"]',
	'definer: alice through the superuser\'s SECURITY DEFINER function gets its answer');
$r = same_as_uncached('alice', $boston, 'definer, then direct: alice');
is($r->{value}, '["alice-boston"]', 'definer, then direct: alice sees her row only');
touch_city('Boston');
same_as_uncached('alice', $boston, 'direct, then definer: alice');
is(cached('alice', q{sec.docs_as_admin('Boston')})->{value},
	'["alice-boston", "bob-boston", "carol-boston", "admin-boston"]', 'direct, then definer: the definer\'s answer');
same_as_uncached('alice', $boston, 'direct, definer, direct: alice');
# a definer subject to RLS itself
$r = cached('alice', q{sec.docs_as_bob('Boston')});
is($r->{value}, '["bob-boston", "carol-boston"]', 'definer bob: alice through bob\'s function gets bob\'s rows');
same_as_uncached('alice', $boston, 'definer bob, then direct: alice');
same_as_uncached('bob', $boston, 'definer bob, then direct: bob');
is(cached('admin', $boston)->{value}, '["alice-boston", "bob-boston", "carol-boston", "admin-boston"]',
	'definer bob, then direct: the superuser still sees every row');

# --- role switches in the middle of a session ---------------------------------------

{
	my $s = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
	touch_city('Boston');
	my $full = cached($s, $boston)->{value};
	is(cached($s, $boston)->{tier}, 'l1', 'switch: the superuser session warmed the cache');
	cached($s, 'housing_cache.get_listing(1)');

	$s->do('SET ROLE alice');
	$r = same_as_uncached($s, $boston, 'SET ROLE alice');
	is($r->{value}, '["alice-boston"]', 'SET ROLE alice: her row only, not the warmed answer');
	$s->do('SET ROLE outsider');
	$r = same_as_uncached($s, $boston, 'SET ROLE outsider');
	is($r->{error}, '42501', 'SET ROLE outsider (no SELECT): PostgreSQL\'s permission error');
	$s->do('RESET ROLE');
	is(cached($s, $boston)->{value}, $full, 'RESET ROLE: every row again');

	$s->do('BEGIN');
	$s->do('SET LOCAL ROLE bob');
	$r = same_as_uncached($s, $boston, 'SET LOCAL ROLE bob');
	is($r->{value}, '["bob-boston", "carol-boston"]', 'SET LOCAL ROLE bob: his rows');
	$s->do('COMMIT');
	is(cached($s, $boston)->{value}, $full, 'after COMMIT: the superuser again');

	$s->do('BEGIN');
	$s->do(q{SELECT set_config('role', 'alice', true)});    # as PostgREST switches roles
	same_as_uncached($s, $boston, q{set_config('role', 'alice', true)});
	$s->do('COMMIT');

	$s->do('SET SESSION AUTHORIZATION bob');
	$r = same_as_uncached($s, $boston, 'SET SESSION AUTHORIZATION bob');
	is($r->{value}, '["bob-boston", "carol-boston"]', 'SET SESSION AUTHORIZATION bob: his rows');
	$s->do('SET SESSION AUTHORIZATION outsider');
	$r = same_as_uncached($s, 'housing_cache.get_listing(1)', 'SET SESSION AUTHORIZATION outsider: get_listing(1)');
	$s->do('RESET SESSION AUTHORIZATION');
	is(cached($s, $boston)->{value}, $full, 'RESET SESSION AUTHORIZATION: every row again');
	$s->disconnect;
}

# --- restricted functions -------------------------------------------------------------

cached('admin', q{housing_cache.fetch('sec.weighted', '1')});
$r = same_as_uncached('alice', q{housing_cache.fetch('sec.weighted', '1')}, 'EXECUTE revoked: alice');
is($r->{error}, '42501', 'EXECUTE revoked: alice gets PostgreSQL\'s error, not the weight');
$r = same_as_uncached('alice', q{housing_cache.fetch('sec.weighted', '2')}, 'EXECUTE revoked, alice first');
is($r->{error}, '42501', 'EXECUTE revoked, alice first: PostgreSQL\'s error');
is(cached('admin', q{housing_cache.fetch('sec.weighted', '2')})->{value}, '{"id" : 2, "w" : 9000}',
	'EXECUTE revoked, alice first: the superuser then gets the weight');

# EXECUTE revoked on the cached functions themselves
sql(q{REVOKE EXECUTE ON FUNCTION housing_cache.get_listing(bigint) FROM PUBLIC;
      REVOKE EXECUTE ON FUNCTION housing_cache.fetch(text, text[]) FROM PUBLIC});
cached('admin', 'housing_cache.get_listing(2)');
is(cached('alice', 'housing_cache.get_listing(2)')->{error}, '42501', 'get_listing not executable: PostgreSQL\'s error');
is(cached('alice', q{housing_cache.fetch('sec.all_notes')})->{error}, '42501', 'fetch not executable: PostgreSQL\'s error');
sql(q{GRANT EXECUTE ON FUNCTION housing_cache.get_listing(bigint) TO PUBLIC;
      GRANT EXECUTE ON FUNCTION housing_cache.fetch(text, text[]) TO PUBLIC});

# --- vary_by_role ------------------------------------------------------------------------

my $whoami = q{housing_cache.fetch('sec.whoami')};
is(cached('admin', $whoami)->{value}, '{"user" : "postgres", "scores" : 2}', 'vary_by_role: the superuser');
$r = same_as_uncached('alice', $whoami, 'vary_by_role: alice');
is($r->{value}, '{"user" : "alice", "scores" : 2}', 'vary_by_role: alice gets her own answer');
is(cached('alice', $whoami)->{tier}, 'l1', 'vary_by_role: ... cached for her');
same_as_uncached('bob', $whoami, 'vary_by_role: bob');
{
	my $s = DBI->connect($dsn, '', '', { AutoCommit => 1, RaiseError => 0, PrintError => 0 });
	cached($s, $whoami);
	$s->do('SET ROLE bob');
	is(cached($s, $whoami)->{value}, '{"user" : "bob", "scores" : 2}', 'vary_by_role: after SET ROLE bob, bob\'s answer');
	$s->do('RESET ROLE');
	is(cached($s, $whoami)->{value}, '{"user" : "postgres", "scores" : 2}', 'vary_by_role: after RESET ROLE, the superuser\'s');
	$s->disconnect;
}

# --- what the privilege checks do not see into ------------------------------------------
#
# A function the query calls runs as the caller too, and what it reads or
# calls is checked by PostgreSQL only when it runs -- which a cache hit
# skips.  So queries calling SECURITY INVOKER code of their own are keyed by
# role, and RLS on tables read through a view is checked as the view's owner.

cached('admin', q{housing_cache.fetch('sec.weighed_via_wrapper', '1')});
same_as_uncached('alice', q{housing_cache.fetch('sec.weighed_via_wrapper', '1')},
	'restricted function behind a SECURITY INVOKER wrapper: alice');

touch_city('Denver');
cached('admin', q{housing_cache.fetch('sec.doc_count_via_function', 'Denver')});
same_as_uncached('alice', q{housing_cache.fetch('sec.doc_count_via_function', 'Denver')},
	'RLS table read by a SECURITY INVOKER function: alice');
same_as_uncached('outsider', q{housing_cache.fetch('sec.doc_count_via_function', 'Denver')},
	'RLS table read by a SECURITY INVOKER function: a role without SELECT');

# Through a view owned by alice, RLS applies with alice's policies, and
# current_user in them is the caller.  Two roles for which the table has no
# RLS in force (the superuser, a BYPASSRLS role) share the cache, yet get
# different rows without it.
touch_city('Boston');
my $view = q{housing_cache.fetch('sec.docs_view_by_city', 'Boston')};
is(cached('admin', $view)->{value}, '["admin-boston"]', 'view owned by alice: the superuser sees its own row through it');
same_as_uncached('alice', $view, 'view owned by alice: alice');
same_as_uncached('carol', $view, 'view owned by alice: carol (BYPASSRLS)');

$_->disconnect for values %session;
$node->stop;
$redis->stop;
done_testing();
