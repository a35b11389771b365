# ALTER EXTENSION housing_cache UPDATE from 0.1.0, on a database with data.
#
# 0.1.0 carried the housing portal in the engine.  The update leaves the
# listings where they are (no longer part of any extension), still watched,
# and the portal's code working; CREATE EXTENSION housing_portal then takes
# that code over, keeping its grants.  Checked: every listing kept, answers
# cached before the update served again after it, writes after it
# invalidate, the API roles keep their grants, the updated objects are the
# same as a fresh 0.2.0 install's, and a later DROP keeps every row.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $node = new_node('upgrade', redis => $redis, create_extension => 0);
sub sql { return $node->safe_psql('postgres', $_[0]) }
# How a call is served, in one session: its answer (decoded) and tier.
sub served { return cached_call(sub { $node->safe_psql('postgres', $_[0]) }, $_[0]) }

my $digest_sql = q{SELECT count(*) || ':' || md5(string_agg(l::text, ',' ORDER BY id)) FROM housing.listings l};

# --- 0.1.0, with data and cached answers ------------------------------------------
sql(q{CREATE EXTENSION housing_cache VERSION '0.1.0'});
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'housing_cache'}), '0.1.0', 'housing_cache 0.1.0 installs');
sql(q{
SELECT housing_cache.generate_listings(500);
SELECT housing_cache.setup_api_roles();
CREATE TABLE public.t (id int PRIMARY KEY, cat text);
INSERT INTO public.t VALUES (1, 'a'), (2, 'a'), (3, 'b');
SELECT housing_cache.watch_table('public.t', 'cat');
SELECT housing_cache.register_query('t.by_cat', 'SELECT json_agg(id ORDER BY id) FROM public.t WHERE cat = $1',
    '{text}', '{public.t/cat=$1}');
});
my $digest = sql($digest_sql);
like($digest, qr/^500:/, '500 listings under 0.1.0');

my %before;
for my $call ("housing_cache.get_listing(5)", "housing_cache.search_listings('Boston')",
	"housing_cache.city_stats('Denver')", "housing_cache.fetch('t.by_cat', 'a')")
{
	sql("SELECT $call");
	my $r = served($call);
	$before{$call} = $r->{json};
	is($r->{tier}, 'l1', "0.1.0: $call is cached");
}

# --- the update ------------------------------------------------------------------------
sql('ALTER EXTENSION housing_cache UPDATE');
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'housing_cache'}), '0.2.0', 'ALTER EXTENSION ... UPDATE to 0.2.0');
is(sql($digest_sql), $digest, 'every listing kept');
is(sql(q{SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
          WHERE e.extname = 'housing_cache' AND d.deptype = 'e'
            AND (d.classid, d.objid) IN (('pg_class'::regclass, 'housing.listings'::regclass),
                                         ('pg_namespace'::regclass, 'housing'::regnamespace))}),
	'0', 'the listings no longer belong to the engine');
for my $call (sort keys %before)
{
	my $r = served($call);
	is_deeply($r->{json}, $before{$call}, "after the update: $call answers as before");
	is($r->{tier}, 'l1', "... from the cache");
}
is(sql(q{SELECT string_agg(name || ':' || fetchable || ':' || coalesce(extension, '-'), ',' ORDER BY name)
          FROM housing_cache.queries}),
	'housing.city_stats:false:housing_portal,housing.listing:false:housing_portal,'
	  . 'housing.search_newest:false:housing_portal,housing.search_price_asc:false:housing_portal,'
	  . 'housing.search_price_desc:false:housing_portal,t.by_cat:true:-',
	'the portal\'s queries belong to housing_portal and are not fetchable; the user\'s are unchanged');

# writes after the update invalidate
sql(q{UPDATE housing.listings SET title = 'Updated after upgrade' WHERE id = 5});
is(sql(q{SELECT housing_cache.get_listing(5) ->> 'title'}), 'Updated after upgrade', 'a write after the update invalidates');
sql(q{INSERT INTO public.t VALUES (4, 'a')});
is(sql(q{SELECT housing_cache.fetch('t.by_cat', 'a')::text}), '[1, 2, 4]', '... the user\'s queries too');

# --- the portal takes its code back -------------------------------------------------
sql('CREATE EXTENSION housing_portal');
is(sql(q{SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
          WHERE e.extname = 'housing_portal' AND d.deptype = 'e'
            AND d.classid = 'pg_proc'::regclass}),
	'11', 'CREATE EXTENSION housing_portal takes over its ten functions and adds api.wal_lsn()');
is(sql(q{SELECT has_function_privilege('web_anon', 'api.listing(bigint)', 'EXECUTE')
            AND has_function_privilege('web_editor', 'api.update_listing(bigint, text, bigint, text, text)', 'EXECUTE')}),
	't', 'the API roles keep their grants');
is(sql(q{SELECT housing_cache.get_listing(5) ->> 'title'}), 'Updated after upgrade', 'the portal serves as before');
is(sql($digest_sql), sql($digest_sql), 'listings unchanged');

# --- the same objects as a fresh install ----------------------------------------------
my $objects = q{
SELECT string_agg(x, E'\n' ORDER BY x) FROM (
    SELECT e.extname || ' ' || pg_describe_object(d.classid, d.objid, 0) AS x
      FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
     WHERE d.deptype = 'e' AND e.extname LIKE 'housing%'
    UNION ALL
    SELECT 'def ' || p.oid::regprocedure || ' ' || md5(pg_get_functiondef(p.oid))
      FROM pg_proc p WHERE p.pronamespace IN ('housing_cache'::regnamespace, 'api'::regnamespace)
       AND p.prokind <> 'a'
    UNION ALL
    SELECT 'column ' || attrelid::regclass || '.' || attname || ' ' || format_type(atttypid, atttypmod)
           || CASE WHEN attnotnull THEN ' not null' ELSE '' END
      FROM pg_attribute
     WHERE attrelid IN ('housing_cache.queries'::regclass, 'housing_cache.watched_tables'::regclass)
       AND attnum > 0 AND NOT attisdropped
    UNION ALL
    SELECT 'trigger ' || tgrelid::regclass || ' ' || tgname FROM pg_trigger
     WHERE tgrelid IN ('housing_cache.queries'::regclass, 'housing_cache.watched_tables'::regclass)
    UNION ALL
    SELECT 'event trigger ' || evtname || ' ' || evtevent || ' ' || evtfoid::regproc || ' ' || evtenabled::text
           || ' ' || coalesce(array_to_string(evttags, ','), '') FROM pg_event_trigger
    UNION ALL
    SELECT 'config ' || unnest(extconfig)::regclass || ' ' FROM pg_extension WHERE extname = 'housing_cache'
    UNION ALL
    SELECT 'acl ' || p.oid::regprocedure || ' ' || coalesce(p.proacl::text, 'default')
      FROM pg_proc p WHERE p.pronamespace = 'housing_cache'::regnamespace) AS o};
my $updated = sql($objects);
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION housing_portal CASCADE');
my $fresh = $node->safe_psql('fresh', $objects);
is($updated, $fresh, 'the updated extensions have exactly the objects, definitions, columns and grants of a fresh install')
  or diag(join("\n", grep { my $l = $_; index($fresh, $l) < 0 } split /\n/, $updated));

# --- dropping every extension keeps the data ------------------------------------------
$digest = sql($digest_sql);
sql('DROP EXTENSION housing_portal CASCADE');
sql('DROP EXTENSION housing_cache CASCADE');
is(sql($digest_sql), $digest, 'DROP EXTENSION of both, with CASCADE: every listing still there');
is(sql(q{SELECT count(*) FROM public.t}), '4', '... and the user\'s table');

$node->stop;
$redis->stop;
done_testing();
