/* housing_cache--0.1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION housing_cache" to load this file. \quit

----------------------------------------------------------------------------
-- The housing portal's domain
----------------------------------------------------------------------------

CREATE SCHEMA housing;
GRANT USAGE ON SCHEMA housing TO PUBLIC;

CREATE TABLE housing.listings (
    id           bigserial PRIMARY KEY,
    title        text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    city         text        NOT NULL,
    neighborhood text        NOT NULL,
    price_cents  bigint      NOT NULL CHECK (price_cents >= 0),
    bedrooms     int         NOT NULL CHECK (bedrooms >= 0),
    bathrooms    numeric(3,1) NOT NULL CHECK (bathrooms >= 0),
    area_sqm     int         NOT NULL CHECK (area_sqm > 0),
    status       text        NOT NULL DEFAULT 'active'
                 CHECK (status IN ('active', 'pending', 'sold')),
    lat          double precision NOT NULL,
    lon          double precision NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE housing.listings IS 'Housing listings; watched by housing_cache, partitioned by city';

-- The searches filter active listings by city and sort by recency or price;
-- city statistics read one city's active listings.
CREATE INDEX listings_active_city_created_idx
    ON housing.listings (city, created_at DESC, id DESC) WHERE status = 'active';
CREATE INDEX listings_active_city_price_idx
    ON housing.listings (city, price_cents, id) WHERE status = 'active';
CREATE INDEX listings_active_created_idx
    ON housing.listings (created_at DESC, id DESC) WHERE status = 'active';
CREATE INDEX listings_active_price_idx
    ON housing.listings (price_cents, id) WHERE status = 'active';

-- pg_dump dumps the listings (and where their ids stand) with the database.
SELECT pg_catalog.pg_extension_config_dump('housing.listings', '');
SELECT pg_catalog.pg_extension_config_dump('housing.listings_id_seq', '');

GRANT SELECT ON housing.listings TO PUBLIC;

----------------------------------------------------------------------------
-- Catalog: watched tables and registered queries
----------------------------------------------------------------------------

GRANT USAGE ON SCHEMA housing_cache TO PUBLIC;

CREATE TABLE housing_cache.watched_tables (
    relid        regclass PRIMARY KEY,
    table_tag    text NOT NULL UNIQUE,
    partition_by name,
    key_column   name,
    builtin      boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE housing_cache.watched_tables IS
    'Tables whose writes invalidate cached answers (see housing_cache.watch_table)';
SELECT pg_catalog.pg_extension_config_dump('housing_cache.watched_tables', 'WHERE NOT builtin');
GRANT SELECT ON housing_cache.watched_tables TO PUBLIC;

CREATE TABLE housing_cache.queries (
    name         text PRIMARY KEY,
    sql          text NOT NULL,
    param_types  regtype[] NOT NULL DEFAULT '{}',
    tags         text[] NOT NULL,
    ttl_seconds  int CHECK (ttl_seconds > 0),
    vary_by_role boolean NOT NULL DEFAULT false,
    builtin      boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE housing_cache.queries IS
    'Registered cached queries (see housing_cache.register_query)';
SELECT pg_catalog.pg_extension_config_dump('housing_cache.queries', 'WHERE NOT builtin');
GRANT SELECT ON housing_cache.queries TO PUBLIC;

CREATE FUNCTION housing_cache.queries_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'housing_cache_queries_changed'
LANGUAGE C;

-- Every backend drops its cached definitions when the catalog changes.
CREATE TRIGGER queries_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON housing_cache.queries
    FOR EACH STATEMENT EXECUTE FUNCTION housing_cache.queries_changed();

----------------------------------------------------------------------------
-- Invalidation
----------------------------------------------------------------------------

CREATE FUNCTION housing_cache.invalidation_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'housing_cache_invalidation_trigger'
LANGUAGE C;
COMMENT ON FUNCTION housing_cache.invalidation_trigger() IS
    'Row/TRUNCATE trigger attached by housing_cache.watch_table()';

CREATE FUNCTION housing_cache.invalidate(tag text)
RETURNS void
AS 'MODULE_PATHNAME', 'housing_cache_invalidate'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION housing_cache.invalidate(text) IS
    'Invalidate a tag when the current transaction commits; a table tag (e.g. ''housing.listings'') invalidates every answer depending on that table';
REVOKE ALL ON FUNCTION housing_cache.invalidate(text) FROM PUBLIC;

CREATE FUNCTION housing_cache.watch_table(tbl regclass, partition_by text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind       "char";
    tag        text;
    key_col    name;
    part_col   name := partition_by;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind, n.nspname || '.' || c.relname INTO kind, tag
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Only tables and partitioned tables can be watched; invalidate other relations with housing_cache.invalidate().';
    END IF;
    IF part_col IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_attribute
         WHERE attrelid = tbl AND attname = part_col AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'column "%" of table "%" does not exist', part_col, tbl
            USING ERRCODE = 'undefined_column';
    END IF;

    -- Rows are tagged by a single-column primary key, when there is one.
    SELECT a.attname INTO key_col
      FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = tbl AND i.indisprimary AND i.indnkeyatts = 1;

    EXECUTE format('DROP TRIGGER IF EXISTS housing_cache_invalidate ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS housing_cache_invalidate_truncate ON %s', tbl);
    EXECUTE format('CREATE TRIGGER housing_cache_invalidate '
                   'AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION housing_cache.invalidation_trigger(%L, %L, %L)',
                   tbl, tag, coalesce(part_col, ''), coalesce(key_col, ''));
    EXECUTE format('CREATE TRIGGER housing_cache_invalidate_truncate '
                   'AFTER TRUNCATE ON %s FOR EACH STATEMENT '
                   'EXECUTE FUNCTION housing_cache.invalidation_trigger(%L, %L, %L)',
                   tbl, tag, coalesce(part_col, ''), coalesce(key_col, ''));

    INSERT INTO housing_cache.watched_tables AS w (relid, table_tag, partition_by, key_column)
    VALUES (tbl, tag, part_col, key_col)
    ON CONFLICT (relid) DO UPDATE
        SET table_tag = EXCLUDED.table_tag,
            partition_by = EXCLUDED.partition_by,
            key_column = EXCLUDED.key_column;

    -- Whatever was cached before the table was watched may be old.
    PERFORM housing_cache.invalidate(tag);
END
$$;
COMMENT ON FUNCTION housing_cache.watch_table(regclass, text) IS
    'Attach the invalidation triggers to a table; writes then invalidate its table tag, the partition_by value of the old and new row, and the row''s primary key';
REVOKE ALL ON FUNCTION housing_cache.watch_table(regclass, text) FROM PUBLIC;

CREATE FUNCTION housing_cache.unwatch_table(tbl regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tag   text;
    users text;
BEGIN
    SELECT table_tag INTO tag FROM housing_cache.watched_tables WHERE relid = tbl;
    IF tag IS NULL THEN
        RAISE EXCEPTION 'table "%" is not watched', tbl USING ERRCODE = 'undefined_object';
    END IF;
    SELECT string_agg(q.name, ', ' ORDER BY q.name) INTO users
      FROM housing_cache.queries q
     WHERE EXISTS (SELECT 1 FROM unnest(q.tags) t
                    WHERE t = tag OR starts_with(t, tag || '/'));
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'table "%" is used by cached queries: %', tbl, users
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Unregister those queries first; without the triggers their answers would never be invalidated.';
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS housing_cache_invalidate ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS housing_cache_invalidate_truncate ON %s', tbl);
    DELETE FROM housing_cache.watched_tables WHERE relid = tbl;
END
$$;
COMMENT ON FUNCTION housing_cache.unwatch_table(regclass) IS
    'Remove the invalidation triggers from a table no cached query depends on';
REVOKE ALL ON FUNCTION housing_cache.unwatch_table(regclass) FROM PUBLIC;

----------------------------------------------------------------------------
-- The engine
----------------------------------------------------------------------------

CREATE FUNCTION housing_cache.register_query(
    name text,
    sql text,
    param_types regtype[] DEFAULT '{}',
    tags text[] DEFAULT '{}',
    ttl_seconds int DEFAULT NULL,
    vary_by_role boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'housing_cache_register_query'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.register_query(text, text, regtype[], text[], int, boolean) IS
    'Register (or replace) a named, parameterized SELECT returning one json value, with the tags its answer depends on';
REVOKE ALL ON FUNCTION housing_cache.register_query(text, text, regtype[], text[], int, boolean) FROM PUBLIC;

CREATE FUNCTION housing_cache.unregister_query(name text)
RETURNS boolean
LANGUAGE sql STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    WITH d AS (DELETE FROM housing_cache.queries q WHERE q.name = $1 AND NOT q.builtin RETURNING 1)
    SELECT count(*) > 0 FROM d
$$;
COMMENT ON FUNCTION housing_cache.unregister_query(text) IS
    'Remove a registered query; returns whether it existed';
REVOKE ALL ON FUNCTION housing_cache.unregister_query(text) FROM PUBLIC;

CREATE FUNCTION housing_cache.fetch(name text, VARIADIC params text[] DEFAULT '{}')
RETURNS json
AS 'MODULE_PATHNAME', 'housing_cache_fetch'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.fetch(text, text[]) IS
    'Answer a registered query from the cache, or by running it; parameters are given as text';

----------------------------------------------------------------------------
-- Observability
----------------------------------------------------------------------------

CREATE FUNCTION housing_cache.get_stats(
    OUT l1_hits bigint,
    OUT l2_hits bigint,
    OUT misses bigint,
    OUT db_executions bigint,
    OUT bypasses bigint,
    OUT l2_stores bigint,
    OUT l2_rejects bigint,
    OUT oversize bigint,
    OUT redis_errors bigint,
    OUT breaker_skips bigint,
    OUT breaker_opens bigint,
    OUT invalidations bigint,
    OUT invalidated_commits bigint,
    OUT publishes bigint,
    OUT publish_failures bigint,
    OUT breaker_state text,
    OUT preloaded boolean,
    OUT stats_reset timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'housing_cache_stats'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION housing_cache.get_stats() IS
    'Cluster-wide cache counters (see the view housing_cache.stats)';

CREATE VIEW housing_cache.stats AS
    SELECT s.*,
           round((s.l1_hits + s.l2_hits)::numeric
                 / nullif(s.l1_hits + s.l2_hits + s.misses, 0), 4) AS hit_ratio
      FROM housing_cache.get_stats() s;
COMMENT ON VIEW housing_cache.stats IS 'Cluster-wide cache counters';
GRANT SELECT ON housing_cache.stats TO PUBLIC;

CREATE FUNCTION housing_cache.reset_stats()
RETURNS void
AS 'MODULE_PATHNAME', 'housing_cache_reset_stats'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION housing_cache.reset_stats() IS 'Zero the counters of housing_cache.stats';
REVOKE ALL ON FUNCTION housing_cache.reset_stats() FROM PUBLIC;

CREATE FUNCTION housing_cache.last_lookup(
    OUT tier text,
    OUT key text,
    OUT elapsed_us bigint,
    OUT bypass_reason text)
RETURNS record
AS 'MODULE_PATHNAME', 'housing_cache_last_lookup'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION housing_cache.last_lookup() IS
    'How this session''s last cached call was served: tier l1, l2, db or bypass, its key, the time it took';

----------------------------------------------------------------------------
-- The listing queries
----------------------------------------------------------------------------

SELECT housing_cache.watch_table('housing.listings', 'city');
UPDATE housing_cache.watched_tables SET builtin = true WHERE relid = 'housing.listings'::regclass;

-- One search per sort order, so that each can use its index; the filters are
-- optional ($n IS NULL), which custom plans fold away.
DO $do$
DECLARE
    orders constant text[][] := ARRAY[
        ARRAY['newest',     'created_at DESC, id DESC',      'i.created_at DESC, i.id DESC'],
        ARRAY['price_asc',  'price_cents, id',               'i.price_cents, i.id'],
        ARRAY['price_desc', 'price_cents DESC, id DESC',     'i.price_cents DESC, i.id DESC']];
    filter constant text := $f$
        status = 'active'
        AND ($1 IS NULL OR city = $1)
        AND ($2 IS NULL OR price_cents >= $2)
        AND ($3 IS NULL OR price_cents <= $3)
        AND ($4 IS NULL OR bedrooms >= $4)$f$;
BEGIN
    FOR i IN 1 .. array_length(orders, 1) LOOP
        PERFORM housing_cache.register_query(
            'housing.search_' || orders[i][1],
            format($q$
SELECT json_build_object(
    'total', (SELECT count(*) FROM housing.listings WHERE %1$s),
    'page', $5,
    'page_size', $6,
    'items', coalesce((
        SELECT json_agg(i ORDER BY %3$s)
          FROM (SELECT id, title, city, neighborhood, price_cents, bedrooms,
                       bathrooms, area_sqm, lat, lon, created_at
                  FROM housing.listings
                 WHERE %1$s
                 ORDER BY %2$s
                 LIMIT $6 OFFSET ($5 - 1) * $6) i), '[]'::json))$q$,
                filter, orders[i][2], orders[i][3]),
            '{text,bigint,bigint,integer,integer,integer}',
            '{housing.listings/city=$1}');
    END LOOP;
END
$do$;

SELECT housing_cache.register_query(
    'housing.listing',
    $q$SELECT row_to_json(l) FROM housing.listings l WHERE l.id = $1$q$,
    '{bigint}',
    '{housing.listings/id=$1}');

SELECT housing_cache.register_query(
    'housing.city_stats',
    $q$
WITH a AS (
    SELECT price_cents, bedrooms FROM housing.listings
     WHERE city = $1 AND status = 'active')
SELECT json_build_object(
    'city', $1,
    'active_count', (SELECT count(*) FROM a),
    'avg_price_cents', (SELECT round(avg(price_cents))::bigint FROM a),
    'median_price_cents',
        (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY price_cents))::bigint FROM a),
    'by_bedrooms', coalesce((
        SELECT json_agg(json_build_object(
                   'bedrooms', bedrooms,
                   'count', n,
                   'median_price_cents', m) ORDER BY bedrooms)
          FROM (SELECT bedrooms, count(*) AS n,
                       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY price_cents))::bigint AS m
                  FROM a GROUP BY bedrooms) b), '[]'::json))$q$,
    '{text}',
    '{housing.listings/city=$1}');

UPDATE housing_cache.queries SET builtin = true WHERE name LIKE 'housing.%';

CREATE FUNCTION housing_cache.search_listings(
    city text DEFAULT NULL,
    min_price_cents bigint DEFAULT NULL,
    max_price_cents bigint DEFAULT NULL,
    min_bedrooms int DEFAULT NULL,
    sort text DEFAULT 'newest',
    page int DEFAULT 1,
    page_size int DEFAULT 20)
RETURNS json
AS 'MODULE_PATHNAME', 'housing_cache_search_listings'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.search_listings(text, bigint, bigint, int, text, int, int) IS
    'Active listings, filtered, sorted (newest, price_asc, price_desc; ties by id) and paginated (page_size at most 100), as JSON';

CREATE FUNCTION housing_cache.get_listing(listing_id bigint)
RETURNS json
AS 'MODULE_PATHNAME', 'housing_cache_get_listing'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION housing_cache.get_listing(bigint) IS
    'Every column of one listing as JSON; NULL when there is no such listing';

CREATE FUNCTION housing_cache.city_stats(city text)
RETURNS json
AS 'MODULE_PATHNAME', 'housing_cache_city_stats'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION housing_cache.city_stats(text) IS
    'Active listing count, average and median price, and count and median price by bedrooms, for one city, as JSON';
