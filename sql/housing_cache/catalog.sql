----------------------------------------------------------------------------
-- The catalog: watched tables and registered queries
----------------------------------------------------------------------------
-- Both are extension configuration tables: pg_dump dumps their rows, so a
-- restored database keeps its watched tables and queries.  Everyone may
-- read them; only the engine's functions write them, each checking the
-- caller's right to the row (catalog.c), and superusers (pg_restore).

GRANT USAGE ON SCHEMA housing_cache TO PUBLIC;

CREATE TABLE housing_cache.watched_tables (
    relid            regclass PRIMARY KEY,
    table_tag        text NOT NULL UNIQUE,
    partition_column name,
    id_column        name
);
COMMENT ON TABLE housing_cache.watched_tables IS
    'Tables whose writes invalidate cached answers (see housing_cache.watch_table)';
SELECT pg_catalog.pg_extension_config_dump('housing_cache.watched_tables', '');
GRANT SELECT ON housing_cache.watched_tables TO PUBLIC;

CREATE TABLE housing_cache.queries (
    name         text PRIMARY KEY,
    sql          text NOT NULL,
    param_types  regtype[] NOT NULL DEFAULT '{}',
    tags         text[] NOT NULL,
    ttl_seconds  int CHECK (ttl_seconds > 0),
    vary_by_role boolean NOT NULL DEFAULT false,
    fetchable    boolean NOT NULL DEFAULT true,
    owner        regrole NOT NULL,
    extension    name,
    fragment_sql  text,
    fragment_tags text[],
    fragments_key text,
    CONSTRAINT queries_fragments_check CHECK (
        (fragment_sql IS NULL) = (fragment_tags IS NULL)
        AND (fragment_sql IS NULL) = (fragments_key IS NULL))
);
COMMENT ON TABLE housing_cache.queries IS
    'Registered cached queries (see housing_cache.register_query)';
COMMENT ON COLUMN housing_cache.queries.fetchable IS
    'Whether housing_cache.fetch() serves the query; false for queries served only through a function of their own';
COMMENT ON COLUMN housing_cache.queries.owner IS
    'The role that registered the query: only it (or its members, or a superuser) may replace or remove it, and it runs the query for callers whose privileges it lacks';
COMMENT ON COLUMN housing_cache.queries.extension IS
    'The extension whose script registered the query, or NULL: only that extension''s scripts may replace or remove it while it is installed';
COMMENT ON COLUMN housing_cache.queries.fragment_sql IS
    'For a composed query: the query of its fragments, taking an array of ids ($1) and returning (id, fragment json) rows; NULL otherwise';
COMMENT ON COLUMN housing_cache.queries.fragment_tags IS
    'For a composed query: the tags of one fragment, $1 standing for its id';
COMMENT ON COLUMN housing_cache.queries.fragments_key IS
    'For a composed query: the key of its answer that holds the array of ids, replaced by their fragments';
SELECT pg_catalog.pg_extension_config_dump('housing_cache.queries', '');
GRANT SELECT ON housing_cache.queries TO PUBLIC;
