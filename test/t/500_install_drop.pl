# The engine installs alone; the housing portal installs on top of it; no
# DROP EXTENSION, with or without CASCADE, removes a row of data.
#
#   CREATE EXTENSION housing_cache       no schema housing or api; the engine
#                                        caches and invalidates a table of
#                                        the user's own
#   CREATE EXTENSION housing_portal      schema housing with its listings,
#                                        watched; schema api; the portal's
#                                        queries, served through its functions
#   DROP EXTENSION housing_portal        the listings and every row stay,
#                                        still watched; the portal's code goes
#   CREATE EXTENSION housing_portal      takes the listings as they are
#   DROP EXTENSION housing_cache         refused while the portal and the
#                                        watched tables' triggers depend on it
#   DROP EXTENSION housing_cache CASCADE the triggers, the catalog and the
#                                        portal go; the listings stay, an
#                                        ordinary table with every row
#   CREATE EXTENSION housing_portal CASCADE   watches and serves them again
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use HousingCache::Redis;
use HousingCache::Test;

my $redis = HousingCache::Redis->new;
my $node = new_node('install_drop', redis => $redis, create_extension => 0);

sub sql { return $node->safe_psql('postgres', $_[0]) }

sub schemas
{
	return sql(q{SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace
	              WHERE nspname IN ('housing', 'api', 'housing_cache')});
}

# The sum of every listing's columns, to tell that no row changed.
my $digest_sql = q{SELECT count(*) || ':' || md5(string_agg(l::text, ',' ORDER BY id)) FROM housing.listings l};

# How a call is served, in one session: its answer (decoded) and tier.
sub served { return cached_call(sub { $node->safe_psql('postgres', $_[0]) }, $_[0]) }

# --- the engine alone --------------------------------------------------------
sql('CREATE EXTENSION housing_cache');
is(schemas(), 'housing_cache', 'CREATE EXTENSION housing_cache creates no application schema');
is(sql(q{SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
          WHERE e.extname = 'housing_cache' AND d.deptype = 'e'
            AND d.classid = 'pg_class'::regclass
            AND d.objid NOT IN ('housing_cache.watched_tables'::regclass, 'housing_cache.queries'::regclass,
                                'housing_cache.replication'::regclass)
            AND (SELECT relkind FROM pg_class WHERE oid = d.objid) IN ('r', 'p')}),
	'0', 'its only tables are its catalog');
is(sql('SELECT count(*) FROM housing_cache.queries'), '0', 'no query is registered');

sql(q{CREATE TABLE public.items (id int PRIMARY KEY, kind text, label text);
      INSERT INTO public.items VALUES (1, 'a', 'one'), (2, 'b', 'two');
      SELECT housing_cache.watch_table('public.items', 'kind');
      SELECT housing_cache.register_query('items.of_kind',
          'SELECT json_agg(label ORDER BY id) FROM public.items WHERE kind = $1',
          '{text}', '{public.items/kind=$1}');});
sql(q{SELECT housing_cache.fetch('items.of_kind', 'a')});
my $r = served(q{housing_cache.fetch('items.of_kind', 'a')});
is_deeply($r->{json}, ['one'], 'engine alone: a query of the user\'s own');
is($r->{tier}, 'l1', '... served from the cache');
sql(q{UPDATE public.items SET label = 'uno' WHERE id = 1});
is(sql(q{SELECT housing_cache.fetch('items.of_kind', 'a')::text}), '["uno"]', '... and invalidated by a write');

# --- the portal on top -------------------------------------------------------
sql('CREATE EXTENSION housing_portal');
is(schemas(), 'api,housing,housing_cache', 'CREATE EXTENSION housing_portal creates schemas housing and api');
sql('SELECT housing_cache.generate_listings(300)');
my $digest = sql($digest_sql);
like($digest, qr/^300:/, '300 listings');
is(sql(q{SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
          WHERE e.extname IN ('housing_cache', 'housing_portal') AND d.deptype = 'e'
            AND (d.classid, d.objid) IN (('pg_class'::regclass, 'housing.listings'::regclass),
                                         ('pg_class'::regclass, 'housing.listings_id_seq'::regclass),
                                         ('pg_namespace'::regclass, 'housing'::regnamespace),
                                         ('pg_namespace'::regclass, 'api'::regnamespace))}),
	'0', 'the listings, their sequence and schemas housing and api belong to no extension');
sql(q{SELECT housing_cache.get_listing(7)});
$r = served(q{housing_cache.get_listing(7)});
my $title7 = $r->{json}{title};
is($r->{tier}, 'l1', 'the portal\'s listing page is cached');

# --- DROP EXTENSION housing_portal ---------------------------------------------
sql('DROP EXTENSION housing_portal');
is(sql($digest_sql), $digest, 'DROP EXTENSION housing_portal: every listing is still there, unchanged');
is(schemas(), 'api,housing,housing_cache', '... and schemas housing and api too');
is(sql(q{SELECT count(*) FROM pg_proc WHERE proname IN ('search_listings', 'get_listing', 'city_stats')
          AND pronamespace = 'housing_cache'::regnamespace}), '0', '... the portal\'s functions are gone');
is(sql(q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'housing.listings'::regclass
          AND tgname LIKE 'housing_cache_invalidate%'}), '2', '... the listings are still watched');

sql('CREATE EXTENSION housing_portal');
is(sql($digest_sql), $digest, 'CREATE EXTENSION housing_portal again: the listings as they were');
is(sql(q{SELECT housing_cache.get_listing(7) ->> 'title'}), $title7, '... served again');
sql(q{UPDATE housing.listings SET title = 'Renamed' WHERE id = 7});
is(sql(q{SELECT housing_cache.get_listing(7) ->> 'title'}), 'Renamed', '... and invalidated');
$digest = sql($digest_sql);

# --- DROP EXTENSION housing_cache ----------------------------------------------
my ($rc, $out, $err) = $node->psql('postgres', 'DROP EXTENSION housing_cache');
isnt($rc, 0, 'DROP EXTENSION housing_cache without CASCADE is refused');
like($err, qr/cannot drop extension housing_cache because other objects depend on it/,
	'... because the portal and the watched tables\' triggers depend on it');
is(sql($digest_sql), $digest, '... and changes nothing');

sql('DROP EXTENSION housing_cache CASCADE');
is(sql($digest_sql), $digest, 'DROP EXTENSION housing_cache CASCADE: every listing is still there, unchanged');
is(sql(q{SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'housing_cache%'}), '0',
	'... the invalidation triggers are gone');
is(sql(q{SELECT count(*) FROM pg_class WHERE relnamespace = 'housing_cache'::regnamespace})
	  + sql(q{SELECT count(*) FROM pg_proc WHERE pronamespace = 'housing_cache'::regnamespace}),
	0, '... and so is everything in the engine\'s schema, its catalog with it');
is(sql(q{SELECT count(*) FROM public.items}), '2', '... the user\'s own table keeps its rows too');
is(sql(q{SELECT count(*) FROM pg_extension WHERE extname LIKE 'housing%'}), '0', 'no extension of ours is left');

# an ordinary table: writes work without the extension
sql(q{UPDATE housing.listings SET price_cents = price_cents + 1 WHERE id = 1});
pass('the listings are an ordinary table: writes work without the extension');
$digest = sql($digest_sql);

# --- back ------------------------------------------------------------------------
sql('CREATE EXTENSION housing_portal CASCADE');
is(sql($digest_sql), $digest, 'CREATE EXTENSION housing_portal CASCADE: the listings as they were');
is(sql(q{SELECT count(*) FROM housing_cache.watched_tables WHERE table_tag = 'housing.listings'}), '1',
	'... watched again');
sql(q{SELECT housing_cache.search_listings('Boston')});
$r = served(q{housing_cache.search_listings('Boston')});
my $total = $r->{json}{total};
is($r->{tier}, 'l1', '... a search is cached again');
sql(q{UPDATE housing.listings SET city = 'Boston' WHERE id = (SELECT min(id) FROM housing.listings
      WHERE city <> 'Boston' AND status = 'active')});
is(sql(q{SELECT housing_cache.search_listings('Boston') ->> 'total'}), $total + 1,
	'... and invalidated by a listing moving to Boston');

$node->stop;
$redis->stop;
done_testing();
