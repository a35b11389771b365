# The roles of the HTTP API: housing_cache.setup_api_roles() is idempotent,
# superuser only and least privilege; the api schema has what PostgREST needs
# to find its functions (media type handlers of api."application/json").
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
# L1 off: a repeated read is an L2 (Redis) hit.
my $node = new_node('http_roles', redis => $redis, conf => 'housing_cache.l1_size_mb = 0');
$node->safe_psql('postgres', 'SELECT housing_cache.generate_listings(200)');

sub sql { return $node->safe_psql('postgres', $_[0]); }

# psql as another role: (exit code, stdout, stderr)
sub as_role
{
	my ($role, $sql, $db) = @_;
	my ($stdout, $stderr);
	my $rc = $node->psql($db // 'postgres', $sql,
		stdout => \$stdout, stderr => \$stderr,
		extra_params => [ '-U', $role, '-v', 'VERBOSITY=verbose' ],
		on_error_stop => 1);
	return ($rc, $stdout, $stderr);
}

my $roles_sql = q{
SELECT rolname, rolcanlogin, rolinherit, rolsuper, rolcreaterole, rolcreatedb,
       rolreplication, rolbypassrls
  FROM pg_roles WHERE rolname IN ('web_anon', 'web_editor', 'authenticator')
 ORDER BY rolname};
my $members_sql = q{
SELECT g.rolname || ' > ' || m.rolname
  FROM pg_auth_members a
  JOIN pg_roles g ON g.oid = a.roleid
  JOIN pg_roles m ON m.oid = a.member
 WHERE g.rolname IN ('web_anon', 'web_editor', 'authenticator')
    OR m.rolname IN ('web_anon', 'web_editor', 'authenticator')
 ORDER BY 1};

is(sql($roles_sql), '', 'no API role before setup');

sql(q{SELECT housing_cache.setup_api_roles('first-password')});
my $roles = sql($roles_sql);
is($roles, join("\n",
		'authenticator|t|f|f|f|f|f|f',
		'web_anon|f|t|f|f|f|f|f',
		'web_editor|f|t|f|f|f|f|f'),
	'authenticator LOGIN NOINHERIT, web_anon and web_editor NOLOGIN, none privileged');
my $members = sql($members_sql);
is($members, join("\n",
		'web_anon > authenticator',
		'web_anon > web_editor',
		'web_editor > authenticator'),
	'authenticator may become either role; web_editor has web_anon\'s rights');
is(sql(q{SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = 'authenticator'}), 't',
	'authenticator has the password');
my $pw = sql(q{SELECT rolpassword FROM pg_authid WHERE rolname = 'authenticator'});

# Twice, thrice: harmless, no notice, nothing doubled; NULL keeps the password.
my ($stdout, $stderr);
$node->psql('postgres', 'SELECT housing_cache.setup_api_roles()',
	stdout => \$stdout, stderr => \$stderr, on_error_stop => 1);
is($stderr, '', 'a second setup says nothing');
sql(q{SELECT housing_cache.setup_api_roles()});
is(sql($roles_sql), $roles, 'the roles are unchanged');
is(sql($members_sql), $members, 'the memberships are unchanged');
is(sql(q{SELECT rolpassword FROM pg_authid WHERE rolname = 'authenticator'}), $pw,
	'without a password argument the password is kept');
sql(q{SELECT housing_cache.setup_api_roles('second-password')});
isnt(sql(q{SELECT rolpassword FROM pg_authid WHERE rolname = 'authenticator'}), $pw,
	'with one it is changed');

# A role someone gave too much is brought back to least privilege.
sql(q{ALTER ROLE web_anon LOGIN CREATEDB; ALTER ROLE authenticator INHERIT});
sql(q{SELECT housing_cache.setup_api_roles()});
is(sql($roles_sql), $roles, 'setup resets the attributes of existing roles');

# --- privileges ----------------------------------------------------------
my @read = (
	'api.listings(text, bigint, bigint, int, text, int, int)',
	'api.listing(bigint)', 'api.city_stats(text)', 'api.cache_stats()');
my $update = 'api.update_listing(bigint, text, bigint, text, text)';
for my $f (@read)
{
	is(sql("SELECT has_function_privilege('web_anon', '$f', 'EXECUTE')"), 't', "web_anon may call $f");
	is(sql("SELECT has_function_privilege('web_editor', '$f', 'EXECUTE')"), 't', "web_editor may call $f");
}
is(sql("SELECT has_function_privilege('web_anon', '$update', 'EXECUTE')"), 'f',
	'web_anon may not call update_listing');
is(sql("SELECT has_function_privilege('web_editor', '$update', 'EXECUTE')"), 't',
	'web_editor may call update_listing');
is(sql("SELECT has_function_privilege('web_anon', 'api.wal_lsn()', 'EXECUTE')"), 'f',
	'web_anon may not call wal_lsn');
is(sql("SELECT has_function_privilege('web_editor', 'api.wal_lsn()', 'EXECUTE')"), 't',
	'web_editor may call wal_lsn');
is(sql(q{SELECT has_table_privilege('web_anon', 'housing.listings', 'UPDATE')}), 'f',
	'web_anon may not update listings');
is(sql(q{SELECT string_agg(attname, ',' ORDER BY attname) FROM pg_attribute
        WHERE attrelid = 'housing.listings'::regclass AND attnum > 0
          AND has_column_privilege('web_editor', attrelid, attnum, 'UPDATE')}),
	'description,price_cents,status,title,updated_at',
	'web_editor may update exactly the columns update_listing changes');
is(sql(q{SELECT has_table_privilege('web_editor', 'housing.listings', 'INSERT')
           OR has_table_privilege('web_editor', 'housing.listings', 'DELETE')
           OR has_table_privilege('web_editor', 'housing.listings', 'TRUNCATE')}), 'f',
	'web_editor may not insert, delete or truncate');
is(sql(q{SELECT count(*) FROM (
           SELECT aclexplode(coalesce(proacl, acldefault('f', proowner))) AS a
             FROM pg_proc WHERE pronamespace = 'api'::regnamespace
           UNION ALL
           SELECT aclexplode(coalesce(nspacl, acldefault('n', nspowner)))
             FROM pg_namespace WHERE nspname = 'api'
           UNION ALL
           SELECT aclexplode(coalesce(typacl, acldefault('T', typowner)))
             FROM pg_type WHERE typnamespace = 'api'::regnamespace
                            AND typelem = 0) x      -- arrays follow their element
        WHERE (x.a).grantee = 0}), '0',
	'nothing in schema api is granted to PUBLIC');
is(sql(q{SELECT has_function_privilege('authenticator', 'housing_cache.setup_api_roles(text)', 'EXECUTE')
           OR has_function_privilege('web_editor', 'housing_cache.setup_api_roles(text)', 'EXECUTE')}),
	'f', 'the API roles may not run setup_api_roles');

# authenticator (NOINHERIT) has nothing of its own until it switches role.
my ($rc, $out, $err) = as_role('authenticator', 'SELECT api.cache_stats()');
isnt($rc, 0, 'authenticator itself cannot call the API');
like($err, qr/42501/, '... permission denied (42501)');
($rc, $out, $err) = as_role('authenticator',
	"SET ROLE web_anon; SELECT (api.listing(1)::json)->>'id'");
is($rc, 0, 'authenticator as web_anon calls the API') or diag $err;
is($out, '1', '... and gets listing 1');
($rc, $out, $err) = as_role('authenticator',
	"SET ROLE web_anon; SELECT api.update_listing(1, price_cents => 5)");
like($err, qr/42501.*permission denied for function update_listing/s,
	'authenticator as web_anon cannot update (42501)');
($rc, $out, $err) = as_role('authenticator',
	"SET ROLE web_editor; SELECT (api.update_listing(1, price_cents => 5)::json)->>'price_cents'");
is($out, '5', 'authenticator as web_editor updates a listing') or diag $err;

# Only a superuser may run setup_api_roles, even if granted EXECUTE.
sql(q{CREATE ROLE plain LOGIN CREATEROLE});
($rc, $out, $err) = as_role('plain', 'SELECT housing_cache.setup_api_roles()');
like($err, qr/42501.*permission denied for function setup_api_roles/s,
	'a non-superuser may not execute setup_api_roles');
sql(q{GRANT EXECUTE ON FUNCTION housing_cache.setup_api_roles(text) TO plain});
($rc, $out, $err) = as_role('plain', 'SELECT housing_cache.setup_api_roles()');
like($err, qr/42501.*only a superuser/s, '... not even when granted EXECUTE');

# --- tiers through the API: L2 when L1 is off -----------------------------
($rc, $out, $err) = as_role('authenticator', q{
SET ROLE web_anon;
BEGIN;
SELECT api.city_stats('Boston') IS NOT NULL;
SELECT current_setting('response.headers')::json->2->>'X-Cache';
COMMIT;
BEGIN;
SELECT api.city_stats('Boston') IS NOT NULL;
SELECT current_setting('response.headers')::json->2->>'X-Cache';
COMMIT;
});
is($out, "t\nMISS\nt\nL2", 'X-Cache: MISS, then L2 from Redis') or diag $err;

# --- what PostgREST's schema cache sees ------------------------------------
# Its media type handler query (SchemaCache.hs, mediaHandlers): a function of
# an exposed schema returning a domain named like a media type handles it.
is(sql(q{
SELECT string_agg(proname || ':' || t.typname, ',' ORDER BY proname)
  FROM pg_proc p JOIN pg_type t ON p.prorettype = t.oid
 WHERE p.pronamespace = 'api'::regnamespace AND NOT p.proretset AND p.prokind = 'f'
   AND t.typbasetype <> 0 AND t.typname ~* '^[A-Za-z0-9.-]+/[A-Za-z0-9.\+-]+$'}),
	'cache_stats:application/json,city_stats:application/json,listing:application/json,'
	  . 'listings:application/json,update_listing:application/json,wal_lsn:application/json',
	'every api function is the application/json handler of its route');
is(sql(q{SELECT count(*) FROM pg_proc p, unnest(p.proargnames) a
        WHERE p.pronamespace = 'api'::regnamespace
          AND a IN ('limit', 'offset', 'order', 'select', 'and', 'or', 'on_conflict', 'columns')}),
	'0', 'no api argument shadows a PostgREST query parameter');
is(sql(q{SELECT string_agg(proname || ':' || provolatile::text, ',' ORDER BY proname)
         FROM pg_proc WHERE pronamespace = 'api'::regnamespace}),
	'cache_stats:v,city_stats:v,listing:v,listings:v,update_listing:v,wal_lsn:v',
	'volatile: POST /rpc/update_listing runs in a read-write transaction');
is(sql(q{SELECT count(*) FROM pg_proc p
        WHERE pronamespace = 'api'::regnamespace
          AND (obj_description(p.oid, 'pg_proc') IS NULL
               OR NOT 'search_path=pg_catalog, pg_temp' = ANY (p.proconfig))}),
	'0', 'every api function has a comment and a fixed search_path');

# --- another database of the same cluster; the extension dropped and back --
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION housing_portal CASCADE; SELECT housing_cache.setup_api_roles()');
is($node->safe_psql('other',
		q{SELECT has_function_privilege('web_anon', 'api.listing(bigint)', 'EXECUTE')}),
	't', 'setup in a second database reuses the roles and grants there');
is(sql($members_sql), $members, '... without changing memberships');

sql(q{DROP EXTENSION housing_portal; CREATE EXTENSION housing_portal;
    SELECT housing_cache.setup_api_roles()});
is(sql(q{SELECT has_function_privilege('web_anon', 'api.cache_stats()', 'EXECUTE')}), 't',
	'after DROP and CREATE EXTENSION, setup grants again');
is(sql($roles_sql), $roles, '... to the roles as they were');

$node->stop;
$redis->stop;

done_testing();
