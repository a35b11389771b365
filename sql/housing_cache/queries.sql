----------------------------------------------------------------------------
-- Registered queries
----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION housing_cache.register_query(
    name text,
    sql text,
    param_types regtype[] DEFAULT '{}',
    tags text[] DEFAULT '{}',
    ttl_seconds int DEFAULT NULL,
    vary_by_role boolean DEFAULT false,
    fetchable boolean DEFAULT true,
    fragment_sql text DEFAULT NULL,
    fragment_tags text[] DEFAULT NULL,
    fragments_key text DEFAULT 'items')
RETURNS void
AS 'MODULE_PATHNAME', 'housing_cache_register_query'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.register_query(text, text, regtype[], text[], int, boolean, boolean, text, text[], text) IS
    'Register (or, as its owner, replace) a named, parameterized SELECT returning one json value, with the tags its answer depends on; with fragment_sql, a composed query whose answer lists ids at fragments_key, each replaced by its cached fragment';
REVOKE ALL ON FUNCTION housing_cache.register_query(text, text, regtype[], text[], int, boolean, boolean, text, text[], text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION housing_cache.unregister_query(name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'housing_cache_unregister_query'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION housing_cache.unregister_query(text) IS
    'Remove a registered query (its owner only); returns whether it existed';
REVOKE ALL ON FUNCTION housing_cache.unregister_query(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION housing_cache.fetch(name text, VARIADIC params text[] DEFAULT '{}')
RETURNS json
AS 'MODULE_PATHNAME', 'housing_cache_fetch'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.fetch(text, text[]) IS
    'Answer a registered query from the cache, or by running it; parameters are given as text';

----------------------------------------------------------------------------
-- Hot standbys: WAL invalidation and reading one's own writes
----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION housing_cache.set_wal_invalidation(enabled boolean)
RETURNS void
AS 'MODULE_PATHNAME', 'housing_cache_set_wal_invalidation'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION housing_cache.set_wal_invalidation(boolean) IS
    'On the primary, superuser: log (or stop logging) this database''s invalidations in WAL, so that hot standbys can cache; every standby needs housing_cache in shared_preload_libraries';
REVOKE ALL ON FUNCTION housing_cache.set_wal_invalidation(boolean) FROM PUBLIC;

CREATE OR REPLACE FUNCTION housing_cache.last_commit_lsn()
RETURNS pg_lsn
AS 'MODULE_PATHNAME', 'housing_cache_last_commit_lsn'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.last_commit_lsn() IS
    'Where this session''s last commit that wrote WAL ends; a read with housing_cache.min_lsn set to it, on a standby, sees that commit';
