-- housing_cache--0.1.0--0.2.0.sql, built by `make` from the files of sql/housing_cache/

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION housing_cache UPDATE TO '0.2.0'" to load this file. \quit

----------------------------------------------------------------------------
-- From 0.1.0
----------------------------------------------------------------------------

-- The housing portal becomes an extension of its own, housing_portal.  Its
-- data (schema housing, the listings and their sequence) and schema api
-- stay where they are, now the database's own: no DROP EXTENSION removes
-- them any more.  Its code stays too, detached and working, until CREATE
-- EXTENSION housing_portal takes it over.
ALTER EXTENSION housing_cache DROP SCHEMA housing;
ALTER EXTENSION housing_cache DROP TABLE housing.listings;
ALTER EXTENSION housing_cache DROP SEQUENCE housing.listings_id_seq;
ALTER EXTENSION housing_cache DROP FUNCTION housing_cache.generate_listings(int, int);
ALTER EXTENSION housing_cache DROP FUNCTION housing_cache.search_listings(text, bigint, bigint, int, text, int, int);
ALTER EXTENSION housing_cache DROP FUNCTION housing_cache.get_listing(bigint);
ALTER EXTENSION housing_cache DROP FUNCTION housing_cache.city_stats(text);
ALTER EXTENSION housing_cache DROP FUNCTION housing_cache.setup_api_roles(text);
ALTER EXTENSION housing_cache DROP SCHEMA api;
ALTER EXTENSION housing_cache DROP DOMAIN api."application/json";
ALTER EXTENSION housing_cache DROP FUNCTION api.listings(text, bigint, bigint, int, text, int, int);
ALTER EXTENSION housing_cache DROP FUNCTION api.listing(bigint);
ALTER EXTENSION housing_cache DROP FUNCTION api.city_stats(text);
ALTER EXTENSION housing_cache DROP FUNCTION api.cache_stats();
ALTER EXTENSION housing_cache DROP FUNCTION api.update_listing(bigint, text, bigint, text, text);

-- Triggers and event triggers are created again below.
DROP EVENT TRIGGER housing_cache_ddl;
DROP EVENT TRIGGER housing_cache_drop;
DROP TRIGGER queries_changed ON housing_cache.queries;
DROP FUNCTION housing_cache.queries_changed();

-- The catalog: one word for one idea (partition column, id column), no
-- built-in rows (the portal's now belong to extension housing_portal,
-- which may replace them, and fetch() refuses them), and an owner for every
-- query.  Every row is dumped.
ALTER TABLE housing_cache.watched_tables RENAME COLUMN partition_by TO partition_column;
ALTER TABLE housing_cache.watched_tables RENAME COLUMN key_column TO id_column;
ALTER TABLE housing_cache.watched_tables DROP COLUMN builtin;
ALTER TABLE housing_cache.queries ADD COLUMN fetchable boolean NOT NULL DEFAULT true;
ALTER TABLE housing_cache.queries ADD COLUMN owner regrole;
ALTER TABLE housing_cache.queries ADD COLUMN extension name;
UPDATE housing_cache.queries
   SET fetchable = NOT builtin,
       owner = (SELECT relowner FROM pg_class WHERE oid = 'housing_cache.queries'::regclass)::regrole,
       extension = CASE WHEN builtin THEN 'housing_portal' END;
ALTER TABLE housing_cache.queries ALTER COLUMN owner SET NOT NULL;
ALTER TABLE housing_cache.queries DROP COLUMN builtin;
ALTER TABLE housing_cache.queries ADD COLUMN fragment_sql text;
ALTER TABLE housing_cache.queries ADD COLUMN fragment_tags text[];
ALTER TABLE housing_cache.queries ADD COLUMN fragments_key text;
ALTER TABLE housing_cache.queries ADD CONSTRAINT queries_fragments_check CHECK (
    (fragment_sql IS NULL) = (fragment_tags IS NULL)
    AND (fragment_sql IS NULL) = (fragments_key IS NULL));
COMMENT ON COLUMN housing_cache.queries.fragment_sql IS
    'For a composed query: the query of its fragments, taking an array of ids ($1) and returning (id, fragment json) rows; NULL otherwise';
COMMENT ON COLUMN housing_cache.queries.fragment_tags IS
    'For a composed query: the tags of one fragment, $1 standing for its id';
COMMENT ON COLUMN housing_cache.queries.fragments_key IS
    'For a composed query: the key of its answer that holds the array of ids, replaced by their fragments';
COMMENT ON COLUMN housing_cache.queries.fetchable IS
    'Whether housing_cache.fetch() serves the query; false for queries served only through a function of their own';
COMMENT ON COLUMN housing_cache.queries.owner IS
    'The role that registered the query: only it (or its members, or a superuser) may replace or remove it, and it runs the query for callers whose privileges it lacks';
COMMENT ON COLUMN housing_cache.queries.extension IS
    'The extension whose script registered the query, or NULL: only that extension''s scripts may replace or remove it while it is installed';
SELECT pg_catalog.pg_extension_config_dump('housing_cache.watched_tables', '');
SELECT pg_catalog.pg_extension_config_dump('housing_cache.queries', '');

-- The stats view and its function: get_stats() has more columns.
DROP VIEW housing_cache.stats;
DROP FUNCTION housing_cache.get_stats();

-- Functions whose arguments or columns changed.
DROP FUNCTION housing_cache.last_lookup();
DROP FUNCTION housing_cache.register_query(text, text, regtype[], text[], int, boolean);
DROP FUNCTION housing_cache.watch_table(regclass, text);
DROP FUNCTION housing_cache.attach_triggers(regclass, text, name, name, boolean);

