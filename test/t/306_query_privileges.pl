# Who may register, replace and remove a cached query, and whose rights a
# fetched query runs with.
#
# Roles: a superuser; alice and bob, ordinary roles that may register
# queries and that were also given INSERT, UPDATE and DELETE on the catalog
# (as a DBA might have, to let them register under earlier versions);
# carol, a member of alice; reader, who may only read.
#
#   - the catalog is written only through the engine's functions, whatever
#     grants a role holds on it;
#   - a query is replaced or removed only by its owner (the role that
#     registered it), a member of that role, or a superuser; the portal's
#     queries only by the portal's scripts;
#   - a query runs with the caller's rights only when its owner has every
#     privilege of the caller; otherwise with its owner's, and the caller
#     must still be able to read what it reads; where row-level security
#     applies to the caller, such a query is refused;
#   - whoever runs it, a query only reads: whatever it calls that writes
#     fails, and nothing is written.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $node = new_node('query_privileges', redis => $redis);
$node->safe_psql('postgres', ten_listings_sql());

$node->safe_psql('postgres', q{
CREATE ROLE alice; CREATE ROLE bob; CREATE ROLE carol IN ROLE alice; CREATE ROLE reader;
GRANT CREATE ON SCHEMA public TO alice, bob;
GRANT EXECUTE ON FUNCTION
    housing_cache.register_query(text, text, regtype[], text[], int, boolean, boolean, text, text[], text),
    housing_cache.unregister_query(text),
    housing_cache.watch_table(regclass, name)
  TO alice, bob, carol;
GRANT INSERT, UPDATE, DELETE, TRUNCATE ON housing_cache.queries, housing_cache.watched_tables TO alice, bob;

-- a query of the superuser's
SELECT housing_cache.register_query('admin.count',
    'SELECT json_build_object(''n'', count(*)) FROM housing.listings', '{}', '{housing.listings}');
CREATE TABLE public.audit (what text);
});

# Run SQL as a role; returns (ok, output or error message, SQLSTATE).
sub as
{
	my ($role, $sql) = @_;
	my ($stdout, $stderr) = ('', '');
	my $rc = $node->psql('postgres', "SET ROLE $role;\n\\set VERBOSITY verbose\n$sql",
		stdout => \$stdout, stderr => \$stderr, on_error_stop => 1);
	my ($state) = $stderr =~ /ERROR:\s+([0-9A-Z]{5}):/;
	return ($rc == 0, $rc == 0 ? $stdout : $stderr, $state // '');
}

sub refused
{
	my ($role, $sql, $state, $label) = @_;
	my ($ok, $out, $got) = as($role, $sql);
	ok(!$ok && $got eq $state, "$label: refused ($state)") or diag($out);
	return $out;
}

sub allowed
{
	my ($role, $sql, $label) = @_;
	my ($ok, $out) = as($role, $sql);
	ok($ok, "$label: allowed") or diag($out);
	return $out;
}

my $super = $node->safe_psql('postgres', 'SELECT current_user');
my $admin_sql = $node->safe_psql('postgres', q{SELECT md5(sql) FROM housing_cache.queries WHERE name = 'admin.count'});

# --- the catalog, written directly ----------------------------------------------
for my $r ([ 'INSERT', q{INSERT INTO housing_cache.queries (name, sql, tags, owner) VALUES ('x', 'SELECT 1', '{housing.listings}', 'alice')} ],
	[ 'UPDATE', q{UPDATE housing_cache.queries SET sql = 'SELECT json_build_object()' WHERE name = 'admin.count'} ],
	[ 'DELETE', q{DELETE FROM housing_cache.queries WHERE name = 'admin.count'} ],
	[ 'TRUNCATE', q{TRUNCATE housing_cache.queries} ],
	[ 'UPDATE of watched_tables', q{UPDATE housing_cache.watched_tables SET partition_column = NULL} ],
	[ 'DELETE of watched_tables', q{DELETE FROM housing_cache.watched_tables} ])
{
	my $out = refused('alice', $r->[1], '42501', "alice, holding the catalog grants, writes it directly: $r->[0]");
	like($out, qr/can only be changed through housing_cache's functions/, '... with a message that says how') if $r->[0] eq 'INSERT';
}
is($node->safe_psql('postgres', q{SELECT md5(sql) FROM housing_cache.queries WHERE name = 'admin.count'}), $admin_sql,
	'the superuser\'s query is unchanged');

# --- registering, replacing, removing ----------------------------------------------
allowed('alice', q{SELECT housing_cache.register_query('alice.count',
    'SELECT json_build_object(''n'', count(*)) FROM housing.listings WHERE city = $1', '{text}',
    '{housing.listings/city=$1}')}, 'alice registers a query with EXECUTE on register_query alone');
is($node->safe_psql('postgres', q{SELECT owner FROM housing_cache.queries WHERE name = 'alice.count'}), 'alice',
	'... and owns it');
refused('bob', q{SELECT housing_cache.register_query('alice.count', 'SELECT json_build_object()', '{}', '{housing.listings}')},
	'42501', 'bob replaces alice\'s query');
refused('bob', q{SELECT housing_cache.unregister_query('alice.count')}, '42501', 'bob removes alice\'s query');
refused('alice', q{SELECT housing_cache.register_query('admin.count', 'SELECT json_build_object()', '{}', '{housing.listings}')},
	'42501', 'alice replaces the superuser\'s query');
refused('alice', q{SELECT housing_cache.unregister_query('admin.count')}, '42501', 'alice removes the superuser\'s query');
my $out = refused('alice', q{SELECT housing_cache.register_query('housing.listing', 'SELECT json_build_object()', '{}', '{housing.listings}')},
	'42501', 'alice replaces a query of the portal');
like($out, qr/belongs to extension "housing_portal"/, '... which belongs to the portal');
refused($super, q{SELECT housing_cache.unregister_query('housing.listing')}, '42501',
	'even a superuser removes a query of the portal outside its scripts');
allowed('carol', q{SELECT housing_cache.register_query('alice.count',
    'SELECT json_build_object(''n'', count(*)) FROM housing.listings WHERE city = $1', '{text}',
    '{housing.listings/city=$1}', 60)}, 'carol, a member of alice, replaces alice\'s query');
is($node->safe_psql('postgres', q{SELECT owner || ' ' || ttl_seconds FROM housing_cache.queries WHERE name = 'alice.count'}),
	'carol 60', '... and owns the new definition');
refused('reader', q{SELECT housing_cache.register_query('r.q', 'SELECT json_build_object()', '{}', '{housing.listings}')},
	'42501', 'reader, without EXECUTE on register_query, registers');
refused('bob', q{SELECT housing_cache.register_query('bob.audit', 'SELECT json_agg(what) FROM public.audit', '{}', '{public.audit}')},
	'22023', 'bob registers a query over a table nobody watches');
refused('bob', q{SELECT housing_cache.watch_table('public.audit')}, '42501', 'bob watches a table he does not own');

# --- a role's code, fetched by a superuser --------------------------------------
allowed('alice', q{
CREATE FUNCTION public.alice_grab() RETURNS json LANGUAGE plpgsql AS $$
BEGIN
    ALTER ROLE alice SUPERUSER;
    RETURN json_build_object('grabbed', true);
END $$;
SELECT housing_cache.register_query('alice.grab', 'SELECT public.alice_grab()', '{}', '{housing.listings}');
}, 'alice registers a query calling a function of hers that makes her a superuser');
my ($ok, $err) = (as($super, q{SELECT housing_cache.fetch('alice.grab')}))[ 0, 1 ];
ok(!$ok, 'a superuser fetching it gets an error') or diag($err);
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'}), 'f',
	'... and alice is no superuser: her code ran with her rights, read-only');

allowed('alice', q{
CREATE FUNCTION public.alice_log() RETURNS json LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.alice_audit VALUES ('fetched');
    RETURN json_build_object('logged', true);
END $$;
CREATE TABLE public.alice_audit (what text);
SELECT housing_cache.register_query('alice.log', 'SELECT public.alice_log()', '{}', '{housing.listings}');
}, 'alice registers a query whose function writes a table of hers');
for my $who ($super, 'alice')
{
	refused($who, q{SELECT housing_cache.fetch('alice.log')}, '25006', "$who fetches the writing query");
}
is($node->safe_psql('postgres', q{SELECT count(*) FROM public.alice_audit}), '0', '... and nothing was written');

$node->safe_psql('postgres', q{
CREATE FUNCTION public.admin_log() RETURNS json LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.audit VALUES ('fetched');
    RETURN json_build_object('logged', true);
END $$;
SELECT housing_cache.register_query('admin.log', 'SELECT public.admin_log()', '{}', '{housing.listings}');});
refused($super, q{SELECT housing_cache.fetch('admin.log')}, '25006', 'a superuser\'s query that writes, fetched');
refused($super, q{BEGIN; UPDATE housing.listings SET title = title WHERE id = 1; SELECT housing_cache.fetch('admin.log'); COMMIT;},
	'25006', '... also around the cache, after a write of its own');
is($node->safe_psql('postgres', q{SELECT count(*) FROM public.audit}), '0', '... and nothing was written');

# --- whose rights: run as the owner for a caller with more rights ------------------
allowed('alice', q{
CREATE TABLE public.alice_items (id int PRIMARY KEY, label text);
INSERT INTO public.alice_items VALUES (1, 'one');
SELECT housing_cache.watch_table('public.alice_items');
SELECT housing_cache.register_query('alice.items',
    'SELECT json_build_object(''label'', label, ''user'', current_user) FROM public.alice_items WHERE id = $1',
    '{int}', '{public.alice_items/id=$1}');
}, 'alice watches a table of hers and registers a query over it');
is($node->safe_psql('postgres', q{SELECT housing_cache.fetch('alice.items', '1') ->> 'user'}), 'alice',
	'a superuser fetching alice\'s query runs it as alice');
refused('reader', q{SELECT housing_cache.fetch('alice.items', '1')}, '42501',
	'reader, who cannot read alice\'s table, fetches her query');
allowed('alice', q{GRANT SELECT ON public.alice_items TO reader}, 'alice lets reader read her table');
is((as('reader', q{SELECT housing_cache.fetch('alice.items', '1') ->> 'label'}))[1], 'one',
	'reader now gets the answer');

# row-level security that applies to the caller: neither role's rights fit
allowed('alice', q{
ALTER TABLE public.alice_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON public.alice_items USING (label = current_user);
}, 'alice turns on row-level security');
my $rls = refused('reader', q{SELECT housing_cache.fetch('alice.items', '1')}, '42501',
	'reader, to whom row-level security applies, fetches alice\'s query');
like($rls, qr/Row-level security applies/, '... and is told why');
is($node->safe_psql('postgres', q{SELECT housing_cache.fetch('alice.items', '1') ->> 'label'}), 'one',
	'the superuser, to whom it does not apply, still gets alice\'s answer');

# a superuser's query runs with the caller's rights, row-level security included
$node->safe_psql('postgres', q{
CREATE TABLE public.notes (id int PRIMARY KEY, who text);
INSERT INTO public.notes VALUES (1, 'reader'), (2, 'bob');
ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON public.notes USING (who = current_user);
GRANT SELECT ON public.notes TO reader, bob;
SELECT housing_cache.watch_table('public.notes');
SELECT housing_cache.register_query('admin.notes', 'SELECT json_agg(id ORDER BY id) FROM public.notes', '{}', '{public.notes}');});
is((as('reader', q{SELECT housing_cache.fetch('admin.notes')}))[1], '[1]', 'a superuser\'s query, fetched by reader: reader\'s rows');
is((as('bob', q{SELECT housing_cache.fetch('admin.notes')}))[1], '[2]', '... by bob: bob\'s rows');

# --- every role that may call the functions ---------------------------------------
is($node->safe_psql('postgres', q{
SELECT string_agg(p.oid::regprocedure::text, ', ' ORDER BY 1)
  FROM pg_proc p
 WHERE p.pronamespace = 'housing_cache'::regnamespace
   AND has_function_privilege('public', p.oid, 'EXECUTE')
   AND p.proname IN ('register_query', 'unregister_query', 'watch_table', 'unwatch_table', 'invalidate',
                     'reset_stats', 'generate_listings', 'setup_api_roles')}), '',
	'PUBLIC may not register, remove, watch, unwatch, invalidate, reset or generate');
refused('bob', q{SELECT housing_cache.catalog_watch('public.alice_items', 'public.alice_items', NULL, 'id')}, '42501',
	'bob records alice\'s table as watched through the internal function');
refused('bob', q{SELECT housing_cache.catalog_unwatch('public.alice_items')}, '42501',
	'bob forgets alice\'s table through the internal function');

$node->stop;
$redis->stop;
done_testing();
