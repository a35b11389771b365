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

-- Deterministic, realistic sample data.
-- housing_cache.generate_listings(n, seed): deterministic sample data.
--
-- Every value of row number i is derived from
--     hashint8extended(i, seed * 64 + field)
-- with a distinct constant per field, so the rows depend only on (i, seed)
-- and never on execution order, now() or random().  Cities, bedroom mix and
-- property types are small VALUES lists, turned into arrays once per call;
-- the load is a single INSERT ... SELECT over generate_series with no joins
-- and no sort, so rows arrive in row-number order: on an empty table whose
-- id sequence was reset (TRUNCATE ... RESTART IDENTITY) the ids match too.
-- The first k rows of a run with n >= k equal the run with n = k.

CREATE FUNCTION housing_cache.generate_listings(n int, seed int DEFAULT 1)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    -- seed * 64 + field gives every (seed, field) pair its own hash seed.
    s        bigint;
    inserted bigint;
BEGIN
    IF n IS NULL THEN
        RAISE EXCEPTION 'housing_cache.generate_listings: argument "n" must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF seed IS NULL THEN
        RAISE EXCEPTION 'housing_cache.generate_listings: argument "seed" must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n < 0 OR n > 10000000 THEN
        RAISE EXCEPTION 'housing_cache.generate_listings: argument "n" must be between 0 and 10000000, got %', n
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF n = 0 THEN
        RETURN 0;
    END IF;

    s := seed::bigint * 64;

    INSERT INTO housing.listings
        (title, description, city, neighborhood, price_cents, bedrooms,
         bathrooms, area_sqm, status, lat, lon, created_at, updated_at)
    WITH
    -- weight: share of listings in 1/10000 (sums to 10000, Zipf-like by
    -- population rank); ppsqm and base_usd: price level in US dollars.
    cities (idx, name, weight, lat, lon, ppsqm, base_usd, hoods) AS (
        VALUES
        ( 1, 'New York',      1500, 40.7128,  -74.0060, 10500, 120000,
          'Upper West Side|Harlem|Williamsburg|Park Slope|Astoria|Chelsea|Tribeca|Long Island City'),
        ( 2, 'Los Angeles',   1200, 34.0522, -118.2437,  8300, 100000,
          'Silver Lake|Echo Park|Koreatown|Venice|Westwood|Hollywood|Highland Park'),
        ( 3, 'Chicago',        990, 41.8781,  -87.6298,  3300,  60000,
          'Lincoln Park|Wicker Park|Logan Square|Hyde Park|Lakeview|River North|Pilsen'),
        ( 4, 'Houston',        830, 29.7604,  -95.3698,  2300,  50000,
          'Montrose|The Heights|Midtown|River Oaks|Rice Military|EaDo'),
        ( 5, 'Phoenix',        700, 33.4484, -112.0740,  3000,  50000,
          'Arcadia|Roosevelt Row|Ahwatukee|Encanto|Biltmore|Maryvale'),
        ( 6, 'Philadelphia',   610, 39.9526,  -75.1652,  2700,  50000,
          'Rittenhouse Square|Fishtown|Northern Liberties|Old City|Manayunk|Fairmount|Queen Village'),
        ( 7, 'San Antonio',    530, 29.4241,  -98.4936,  2100,  45000,
          'Alamo Heights|King William|Southtown|Stone Oak|Tobin Hill|Monte Vista'),
        ( 8, 'San Diego',      475, 32.7157, -117.1611,  8000, 100000,
          'Gaslamp Quarter|La Jolla|North Park|Pacific Beach|Hillcrest|Ocean Beach|Little Italy'),
        ( 9, 'Dallas',         425, 32.7767,  -96.7970,  3000,  55000,
          'Uptown|Deep Ellum|Bishop Arts District|Lakewood|Oak Lawn|Lower Greenville'),
        (10, 'Austin',         380, 30.2672,  -97.7431,  4300,  70000,
          'South Congress|Hyde Park|East Austin|Zilker|Mueller|Travis Heights|Clarksville'),
        (11, 'Boston',         340, 42.3601,  -71.0589,  8800, 110000,
          'Back Bay|Beacon Hill|South End|Jamaica Plain|Charlestown|Dorchester|North End|Fenway'),
        (12, 'Denver',         310, 39.7392, -104.9903,  5000,  80000,
          'Capitol Hill|LoDo|Highlands|Cherry Creek|RiNo|Washington Park|Baker'),
        (13, 'Seattle',        285, 47.6062, -122.3321,  7800, 100000,
          'Capitol Hill|Ballard|Fremont|Queen Anne|Wallingford|Columbia City|Belltown'),
        (14, 'Miami',          260, 25.7617,  -80.1918,  5800,  80000,
          'Brickell|Wynwood|Little Havana|Coconut Grove|Edgewater|Design District'),
        (15, 'Portland',       240, 45.5152, -122.6784,  4600,  70000,
          'Pearl District|Alberta Arts District|Hawthorne|Sellwood|Nob Hill|St. Johns|Laurelhurst'),
        (16, 'Atlanta',        220, 33.7490,  -84.3880,  3400,  60000,
          'Midtown|Buckhead|Virginia-Highland|Inman Park|Old Fourth Ward|Grant Park|West End'),
        (17, 'Nashville',      200, 36.1627,  -86.7816,  3900,  65000,
          'East Nashville|The Gulch|12 South|Germantown|Sylvan Park|Green Hills'),
        (18, 'Minneapolis',    185, 44.9778,  -93.2650,  2900,  55000,
          'Uptown|Northeast|North Loop|Linden Hills|Longfellow|Powderhorn|Loring Park'),
        (19, 'Detroit',        165, 42.3314,  -83.0458,  1200,  90000,
          'Corktown|Midtown|Indian Village|Boston-Edison|Lafayette Park|Palmer Woods|Rosedale Park'),
        (20, 'San Francisco',  155, 37.7749, -122.4194, 12500, 150000,
          'Mission District|Noe Valley|Pacific Heights|SoMa|Sunset District|Richmond District|Castro|Haight-Ashbury')
    ),
    -- Bedroom mix in percent (cum_pct is the upper bound of the bucket),
    -- floor area, bathrooms and property types consistent with the count.
    beds (bedrooms, cum_pct, area_min, area_span, bath_min, bath_steps, types) AS (
        VALUES
        (0,   7,  28,  23, 1.0, 1, 'studio'),
        (1,  32,  45,  31, 1.0, 2, 'apartment|apartment|condo|condo|loft'),
        (2,  64,  65,  41, 1.0, 3, 'apartment|condo|condo|loft|townhouse'),
        (3,  87,  90,  61, 1.5, 3, 'condo|townhouse|house|house'),
        (4,  96, 120,  81, 2.0, 4, 'townhouse|house|house'),
        (5, 100, 150, 111, 2.5, 4, 'house')
    ),
    -- The small tables above as arrays, built once per statement (each
    -- scalar subquery is an InitPlan).  Per-row lookups are then array
    -- subscripts rather than joins, so the plan is a plain scan of
    -- generate_series and rows are inserted in row-number order (ids
    -- follow the row number, with no sort).  city_map has 10000 slots
    -- holding each city's index weight times (the weighted city draw);
    -- bed_map has 100 slots for the bedroom mix.
    lookups AS NOT MATERIALIZED (
        SELECT
            (SELECT array_agg(c.idx ORDER BY c.idx, k)
               FROM cities c CROSS JOIN LATERAL generate_series(1, c.weight) AS k) AS city_map,
            (SELECT array_agg(c.name     ORDER BY c.idx) FROM cities c) AS c_name,
            (SELECT array_agg(c.lat::float8 ORDER BY c.idx) FROM cities c) AS c_lat,
            (SELECT array_agg(c.lon::float8 ORDER BY c.idx) FROM cities c) AS c_lon,
            (SELECT array_agg(c.ppsqm    ORDER BY c.idx) FROM cities c) AS c_ppsqm,
            (SELECT array_agg(c.base_usd ORDER BY c.idx) FROM cities c) AS c_base,
            (SELECT array_agg(c.hoods    ORDER BY c.idx) FROM cities c) AS c_hoods,
            (SELECT array_agg(cardinality(string_to_array(c.hoods, '|')) ORDER BY c.idx)
               FROM cities c) AS c_nhoods,
            (SELECT array_agg(b.bedrooms ORDER BY b.bedrooms, k)
               FROM beds b CROSS JOIN LATERAL
                    generate_series(coalesce((SELECT max(p.cum_pct) FROM beds p
                                               WHERE p.bedrooms < b.bedrooms), 0) + 1,
                                    b.cum_pct) AS k) AS bed_map,
            -- indexed by bedrooms + 1
            (SELECT array_agg(b.area_min   ORDER BY b.bedrooms) FROM beds b) AS b_area_min,
            (SELECT array_agg(b.area_span  ORDER BY b.bedrooms) FROM beds b) AS b_area_span,
            (SELECT array_agg(b.bath_min   ORDER BY b.bedrooms) FROM beds b) AS b_bath_min,
            (SELECT array_agg(b.bath_steps ORDER BY b.bedrooms) FROM beds b) AS b_bath_steps,
            (SELECT array_agg(b.types      ORDER BY b.bedrooms) FROM beds b) AS b_types,
            (SELECT array_agg(cardinality(string_to_array(b.types, '|')) ORDER BY b.bedrooms)
               FROM beds b) AS b_ntypes
    ),
    -- One row per listing: the city and bedroom draws plus one 63-bit
    -- hash per remaining field.
    raw AS (
        SELECT g.i,
               l.city_map[1 + (hashint8extended(g.i, s +  0) & 9223372036854775807) % 10000] AS ci,
               l.bed_map [1 + (hashint8extended(g.i, s +  1) & 9223372036854775807) % 100]   AS bedrooms,
               hashint8extended(g.i, s +  2) & 9223372036854775807 AS h_hood,
               hashint8extended(g.i, s +  3) & 9223372036854775807 AS h_area,
               hashint8extended(g.i, s +  4) & 9223372036854775807 AS h_bath,
               hashint8extended(g.i, s +  5) & 9223372036854775807 AS h_type,
               hashint8extended(g.i, s +  6) & 9223372036854775807 AS h_status,
               hashint8extended(g.i, s +  7) & 9223372036854775807 AS h_noise1,
               hashint8extended(g.i, s +  8) & 9223372036854775807 AS h_noise2,
               hashint8extended(g.i, s +  9) & 9223372036854775807 AS h_noise3,
               hashint8extended(g.i, s + 10) & 9223372036854775807 AS h_radius,
               hashint8extended(g.i, s + 11) & 9223372036854775807 AS h_angle,
               hashint8extended(g.i, s + 12) & 9223372036854775807 AS h_created,
               hashint8extended(g.i, s + 13) & 9223372036854775807 AS h_updated,
               hashint8extended(g.i, s + 14) & 9223372036854775807 AS h_adj,
               hashint8extended(g.i, s + 15) & 9223372036854775807 AS h_feature
          FROM lookups l
         CROSS JOIN generate_series(1::bigint, n::bigint) AS g(i)
        OFFSET 0  -- keep as its own step: each hash is computed once
    ),
    -- Attributes that other columns depend on.
    attrs AS (
        SELECT r.i,
               l.c_name[r.ci] AS city,
               split_part(l.c_hoods[r.ci], '|',
                          1 + (r.h_hood % l.c_nhoods[r.ci])::int) AS neighborhood,
               r.bedrooms,
               l.b_area_min[r.bedrooms + 1]
                   + (r.h_area % l.b_area_span[r.bedrooms + 1])::int AS area_sqm,
               (l.b_bath_min[r.bedrooms + 1]
                   + 0.5 * (r.h_bath % l.b_bath_steps[r.bedrooms + 1]))::numeric(3,1) AS bathrooms,
               split_part(l.b_types[r.bedrooms + 1], '|',
                          1 + (r.h_type % l.b_ntypes[r.bedrooms + 1])::int) AS ptype,
               CASE WHEN r.h_status % 100 < 85 THEN 'active'
                    WHEN r.h_status % 100 < 95 THEN 'pending'
                    ELSE 'sold' END AS status,
               l.c_ppsqm[r.ci] AS ppsqm,
               l.c_base[r.ci] AS base_usd,
               -- Sum of three uniforms: bell-shaped noise around 1.0.
               exp(0.25 * ((r.h_noise1 >> 10) / 9007199254740992.0::float8
                         + (r.h_noise2 >> 10) / 9007199254740992.0::float8
                         + (r.h_noise3 >> 10) / 9007199254740992.0::float8 - 1.5)) AS noise,
               -- Up to 15 km from the centre, denser towards it.
               15.0 * ((r.h_radius >> 10) / 9007199254740992.0::float8) AS dist_km,
               2.0 * pi() * ((r.h_angle >> 10) / 9007199254740992.0::float8) AS bearing,
               l.c_lat[r.ci] AS c_lat,
               l.c_lon[r.ci] AS c_lon,
               -- Up to two years before the reference date, whole seconds.
               timestamptz '2026-06-01 00:00:00+00'
                   - (r.h_created % 63072000) * interval '1 second' AS created_at,
               r.h_updated, r.h_adj, r.h_feature
          FROM raw r
         CROSS JOIN lookups l
        OFFSET 0
    )
    SELECT
        CASE WHEN a.bedrooms = 0 THEN 'Studio'
             ELSE a.bedrooms || '-bed ' || a.ptype END
            || ' in ' || a.neighborhood AS title,
        (ARRAY['Bright', 'Spacious', 'Charming', 'Renovated', 'Sunny', 'Modern',
               'Cozy', 'Updated', 'Well-kept', 'Light-filled', 'Quiet', 'Classic'])
                [1 + (a.h_adj % 12)::int]
            || CASE WHEN a.bedrooms = 0 THEN ' studio'
                    ELSE ' ' || a.bedrooms || '-bedroom ' || a.ptype END
            || ' in ' || a.neighborhood || ', ' || a.city
            || ', with ' || trim_scale(a.bathrooms)
            || CASE WHEN a.bathrooms = 1 THEN ' bath and ' ELSE ' baths and ' END
            || a.area_sqm || ' sq m of living space.'
            || CASE WHEN a.h_feature % 16 >= 12 THEN ''
                    ELSE ' ' || (ARRAY['Updated kitchen with stainless steel appliances.',
                                       'Hardwood floors throughout.',
                                       'In-unit washer and dryer.',
                                       'Private balcony with city views.',
                                       'Steps from shops, cafes and transit.',
                                       'Includes one deeded parking space.',
                                       'Central air and new double-pane windows.',
                                       'Large windows and high ceilings.',
                                       'Close to parks and well-rated schools.',
                                       'Ample closet space and extra storage.',
                                       'Recently painted and move-in ready.',
                                       'Low HOA fees and a well-managed building.'])
                                [1 + (a.h_feature % 16)::int] END AS description,
        a.city,
        a.neighborhood,
        100 * round((a.base_usd + a.ppsqm * a.area_sqm)
                    * CASE a.ptype WHEN 'house'     THEN 1.10
                                   WHEN 'townhouse' THEN 1.05
                                   WHEN 'loft'      THEN 1.08
                                   WHEN 'apartment' THEN 0.95
                                   ELSE 1.00 END::float8
                    * a.noise)::bigint AS price_cents,
        a.bedrooms,
        a.bathrooms,
        a.area_sqm,
        a.status,
        round((a.c_lat + a.dist_km * cos(a.bearing) / 111.32) * 1e6) / 1e6 AS lat,
        round((a.c_lon + a.dist_km * sin(a.bearing)
                         / (111.32 * cos(radians(a.c_lat)))) * 1e6) / 1e6 AS lon,
        a.created_at,
        -- Active listings were touched shortly after creation; pending and
        -- sold ones when their status changed.  Never past the reference date.
        least(a.created_at
                  + CASE WHEN a.status = 'active' THEN a.h_updated % 259200
                         ELSE 86400 + a.h_updated % 2592000 END * interval '1 second',
              timestamptz '2026-06-01 00:00:00+00') AS updated_at
      FROM attrs a;

    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END;
$function$;

COMMENT ON FUNCTION housing_cache.generate_listings(int, int) IS
'Inserts n (0..10000000) deterministic, realistic rows into housing.listings and returns the number inserted. The same (n, seed) always yields the same rows: every value is derived from a hash of (row number, seed, field). Listings cover 20 US cities with Zipf-like sizes, real neighbourhood names and city-specific price levels.';
REVOKE ALL ON FUNCTION housing_cache.generate_listings(int, int) FROM PUBLIC;

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

-- Attach the invalidation triggers of a watched table to it and to every
-- table below it: partitions get the parent's row trigger as a clone, but
-- TRUNCATE triggers are per table; inheritance children get both.  The
-- triggers fire ALWAYS, so that rows applied by logical replication
-- (session_replication_role = replica) invalidate too.  With replace false
-- (after DDL), only missing triggers are created: a trigger an administrator
-- disabled stays disabled.
CREATE FUNCTION housing_cache.attach_triggers(tbl regclass, tag text, part_col name, key_col name,
                                              replace boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r            record;
    args         text := format('%L, %L, %L', tag, coalesce(part_col, ''), coalesce(key_col, ''));
    has_row      boolean;
    has_truncate boolean;
BEGIN
    -- the DDL below must not re-enter housing_cache.on_ddl_command_end()
    PERFORM set_config('housing_cache_internal.attaching', 'on', true);
    FOR r IN
        WITH RECURSIVE tree(relid, is_root) AS (
            SELECT tbl::oid, true
            UNION
            SELECT i.inhrelid, false FROM pg_inherits i JOIN tree t ON i.inhparent = t.relid)
        SELECT t.relid::regclass AS rel, t.is_root, c.relispartition, c.relkind
          FROM tree t JOIN pg_class c ON c.oid = t.relid
         WHERE c.relkind IN ('r', 'p')
    LOOP
        has_row := EXISTS (SELECT 1 FROM pg_trigger
                            WHERE tgrelid = r.rel AND tgname = 'housing_cache_invalidate');
        has_truncate := EXISTS (SELECT 1 FROM pg_trigger
                                 WHERE tgrelid = r.rel AND tgname = 'housing_cache_invalidate_truncate');
        -- a partition's row trigger is the clone of its parent's
        IF r.is_root OR NOT r.relispartition THEN
            IF has_row AND replace THEN
                EXECUTE format('DROP TRIGGER housing_cache_invalidate ON %s', r.rel);
                has_row := false;
            END IF;
            IF NOT has_row THEN
                EXECUTE format('CREATE TRIGGER housing_cache_invalidate '
                               'AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW '
                               'EXECUTE FUNCTION housing_cache.invalidation_trigger(%s)',
                               r.rel, args);
                EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER housing_cache_invalidate', r.rel);
            END IF;
        ELSIF has_row AND replace THEN
            EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER housing_cache_invalidate', r.rel);
        END IF;
        IF has_truncate AND replace THEN
            EXECUTE format('DROP TRIGGER housing_cache_invalidate_truncate ON %s', r.rel);
            has_truncate := false;
        END IF;
        IF NOT has_truncate THEN
            EXECUTE format('CREATE TRIGGER housing_cache_invalidate_truncate '
                           'AFTER TRUNCATE ON %s FOR EACH STATEMENT '
                           'EXECUTE FUNCTION housing_cache.invalidation_trigger(%s)',
                           r.rel, args);
            EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER housing_cache_invalidate_truncate', r.rel);
        END IF;
    END LOOP;
    PERFORM set_config('housing_cache_internal.attaching', 'off', true);
END
$$;
COMMENT ON FUNCTION housing_cache.attach_triggers(regclass, text, name, name, boolean) IS
    'Internal: (re)attach the invalidation triggers of a watched table to it and its partitions and inheritance children';
REVOKE ALL ON FUNCTION housing_cache.attach_triggers(regclass, text, name, name, boolean) FROM PUBLIC;

-- The registered queries whose tags name a table tag.
CREATE FUNCTION housing_cache.queries_using(tag text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(q.name, ', ' ORDER BY q.name)
      FROM housing_cache.queries q
     WHERE EXISTS (SELECT 1 FROM unnest(q.tags) t
                    WHERE t = $1 OR starts_with(t, $1 || '/'))
$$;
COMMENT ON FUNCTION housing_cache.queries_using(text) IS
    'Names of the registered queries that depend on a table tag, or NULL';

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
    old        record;
    users      text;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind, n.nspname || '.' || c.relname INTO kind, tag
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'relation with OID % does not exist', tbl::oid
            USING ERRCODE = 'undefined_table';
    END IF;
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

    -- Changing how a table's writes are tagged would leave the tags of the
    -- queries registered on it unmatched: their answers would go stale.
    SELECT * INTO old FROM housing_cache.watched_tables w WHERE w.relid = tbl;
    IF FOUND AND (old.partition_by IS DISTINCT FROM part_col
                  OR old.key_column IS DISTINCT FROM key_col) THEN
        users := housing_cache.queries_using(old.table_tag);
        IF users IS NOT NULL THEN
            RAISE EXCEPTION 'table "%" is used by cached queries: %', tbl, users
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('It is watched with partition column %s and key column %s.',
                                      coalesce(quote_ident(old.partition_by), 'none'),
                                      coalesce(quote_ident(old.key_column), 'none')),
                      HINT = 'Unregister those queries before changing how the table is watched.';
        END IF;
    END IF;

    -- a table dropped and created again under the same name
    DELETE FROM housing_cache.watched_tables w WHERE w.table_tag = tag AND w.relid <> tbl;

    PERFORM housing_cache.attach_triggers(tbl, tag, part_col, key_col);

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
    'Attach the invalidation triggers to a table (and its partitions and inheritance children); writes then invalidate its table tag, the partition_by value of the old and new row, and the row''s primary key';
REVOKE ALL ON FUNCTION housing_cache.watch_table(regclass, text) FROM PUBLIC;

CREATE FUNCTION housing_cache.unwatch_table(tbl regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tag   text;
    users text;
    r     record;
BEGIN
    SELECT table_tag INTO tag FROM housing_cache.watched_tables WHERE relid = tbl;
    IF tag IS NULL THEN
        RAISE EXCEPTION 'table "%" is not watched', tbl USING ERRCODE = 'undefined_object';
    END IF;
    users := housing_cache.queries_using(tag);
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'table "%" is used by cached queries: %', tbl, users
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Unregister those queries first; without the triggers their answers would never be invalidated.';
    END IF;
    PERFORM set_config('housing_cache_internal.attaching', 'on', true);
    FOR r IN
        SELECT t.tgrelid::regclass AS rel, t.tgname
          FROM pg_trigger t
         WHERE t.tgname IN ('housing_cache_invalidate', 'housing_cache_invalidate_truncate')
           AND t.tgparentid = 0
           AND t.tgfoid = 'housing_cache.invalidation_trigger()'::regprocedure
           AND (t.tgargs = '' OR split_part(encode(t.tgargs, 'escape'), '\000', 1) = tag)
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
    END LOOP;
    PERFORM set_config('housing_cache_internal.attaching', 'off', true);
    DELETE FROM housing_cache.watched_tables WHERE relid = tbl;
END
$$;
COMMENT ON FUNCTION housing_cache.unwatch_table(regclass) IS
    'Remove the invalidation triggers from a table no cached query depends on';
REVOKE ALL ON FUNCTION housing_cache.unwatch_table(regclass) FROM PUBLIC;

-- DDL on a watched table, or on a table below it, can change what its
-- queries return without firing a row trigger (ALTER TABLE ... ATTACH or
-- DETACH PARTITION, ADD or DROP COLUMN, a new partition or inheritance
-- child): invalidate the table, and give new tables below it their triggers.
CREATE FUNCTION housing_cache.on_ddl_command_end()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w record;
BEGIN
    IF current_setting('housing_cache_internal.attaching', true) = 'on' THEN
        RETURN;
    END IF;
    FOR w IN
        WITH RECURSIVE cmd(relid) AS (
            SELECT objid FROM pg_event_trigger_ddl_commands()
             WHERE classid = 'pg_catalog.pg_class'::regclass),
        anc(relid) AS (
            SELECT relid FROM cmd
            UNION
            SELECT i.inhparent FROM pg_inherits i JOIN anc a ON i.inhrelid = a.relid),
        -- a table that just left its parent (NO INHERIT, DETACH) still
        -- carries the parent's tag in its triggers
        tagged(tag) AS (
            SELECT split_part(encode(t.tgargs, 'escape'), '\000', 1)
              FROM pg_trigger t JOIN cmd ON t.tgrelid = cmd.relid
             WHERE t.tgname = 'housing_cache_invalidate_truncate')
        SELECT DISTINCT wt.relid, wt.table_tag, wt.partition_by, wt.key_column
          FROM housing_cache.watched_tables wt
         WHERE wt.relid::oid IN (SELECT relid FROM anc)
            OR wt.table_tag IN (SELECT tag FROM tagged)
    LOOP
        PERFORM housing_cache.attach_triggers(w.relid, w.table_tag, w.partition_by, w.key_column, false);
        PERFORM housing_cache.invalidate(w.table_tag);
    END LOOP;
END
$$;
COMMENT ON FUNCTION housing_cache.on_ddl_command_end() IS
    'Event trigger: DDL on or below a watched table invalidates it and attaches triggers to new partitions and children';
REVOKE ALL ON FUNCTION housing_cache.on_ddl_command_end() FROM PUBLIC;

-- Dropping a partition or an inheritance child of a watched table removes its
-- rows without firing a trigger, and by then nothing tells which table it
-- belonged to: any dropped permanent table invalidates every watched table
-- (dropping tables is rare; invalidating too much is only slower).  Dropping
-- a table that registered queries depend on is refused, as unwatch_table()
-- refuses: a table created again under its name would not be watched.
-- Event triggers run as whoever ran the DDL: these run as the extension's
-- owner, so that any table owner's DDL works.
CREATE FUNCTION housing_cache.on_sql_drop()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w     record;
    users text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects()
                    WHERE classid = 'pg_catalog.pg_class'::regclass
                      AND object_type = 'table' AND NOT is_temporary) THEN
        RETURN;
    END IF;
    FOR w IN
        SELECT wt.table_tag
          FROM housing_cache.watched_tables wt
          JOIN pg_event_trigger_dropped_objects() d
            ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = wt.relid::oid
    LOOP
        users := housing_cache.queries_using(w.table_tag);
        IF users IS NOT NULL THEN
            RAISE EXCEPTION 'table "%" is used by cached queries: %', w.table_tag, users
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Unregister those queries (housing_cache.unregister_query) before dropping the table.';
        END IF;
    END LOOP;
    -- every watched table, the dropped ones included, before forgetting them
    PERFORM housing_cache.invalidate(wt.table_tag) FROM housing_cache.watched_tables wt;
    DELETE FROM housing_cache.watched_tables wt
     USING pg_event_trigger_dropped_objects() d
     WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = wt.relid::oid;
END
$$;
COMMENT ON FUNCTION housing_cache.on_sql_drop() IS
    'Event trigger: every watched table is invalidated and dropped ones are forgotten; dropping a table registered queries depend on is refused';
REVOKE ALL ON FUNCTION housing_cache.on_sql_drop() FROM PUBLIC;

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
LANGUAGE plpgsql STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM housing_cache.queries q WHERE q.name = $1 AND q.builtin) THEN
        RAISE EXCEPTION 'cannot unregister built-in query "%"', $1
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM housing_cache.queries q WHERE q.name = $1;
    RETURN FOUND;
END
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
    OUT l1_stores bigint,
    OUT l1_evictions bigint,
    OUT l2_stores bigint,
    OUT l2_rejects bigint,
    OUT oversize bigint,
    OUT redis_errors bigint,
    OUT breaker_skips bigint,
    OUT breaker_opens bigint,
    OUT breaker_closes bigint,
    OUT fill_waits bigint,
    OUT fill_timeouts bigint,
    OUT early_refreshes bigint,
    OUT stale_served bigint,
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
    OUT bypass_reason text,
    OUT etag text,
    OUT ttl_remaining_s int)
RETURNS record
AS 'MODULE_PATHNAME', 'housing_cache_last_lookup'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION housing_cache.last_lookup() IS
    'How this session''s last cached call was served: tier l1, l2, db, bypass or not_modified, its key, the time it took, its entity tag and remaining TTL';

CREATE FUNCTION housing_cache.if_none_match(etags text)
RETURNS void
AS 'MODULE_PATHNAME', 'housing_cache_if_none_match'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.if_none_match(text) IS
    'For the next cached call of this session: if its answer has one of these entity tags (an HTTP If-None-Match value), return NULL without fetching and report tier not_modified';

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

CREATE EVENT TRIGGER housing_cache_ddl ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE')
    EXECUTE FUNCTION housing_cache.on_ddl_command_end();
CREATE EVENT TRIGGER housing_cache_drop ON sql_drop
    EXECUTE FUNCTION housing_cache.on_sql_drop();

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
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.get_listing(bigint) IS
    'Every column of one listing as JSON; NULL when there is no such listing';

CREATE FUNCTION housing_cache.city_stats(city text)
RETURNS json
AS 'MODULE_PATHNAME', 'housing_cache_city_stats'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.city_stats(text) IS
    'Active listing count, average and median price, and count and median price by bedrooms, for one city, as JSON';

----------------------------------------------------------------------------
-- HTTP API (schema api)
----------------------------------------------------------------------------
-- The schema PostgREST exposes (PGRST_DB_SCHEMAS=api), and the development
-- server under http/ serves the same way.  Every function returns the domain
-- api."application/json", which makes it PostgREST's handler for that media
-- type: the body is the function's json value as it is, with no aggregate
-- around it.  The cached reads turn the request's If-None-Match header into
-- housing_cache.if_none_match() and answer with the entity tag, freshness and
-- tier of the answer in response.headers (and 304 in response.status when
-- the client's copy is current).  Roles: housing_cache.setup_api_roles().

CREATE SCHEMA api;
COMMENT ON SCHEMA api IS
    'HTTP API of housing_cache (exposed by PostgREST); privileges come from housing_cache.setup_api_roles()';

CREATE DOMAIN api."application/json" AS json;
COMMENT ON DOMAIN api."application/json" IS
    'Return type of the api functions: PostgREST sends the value as the response body, Content-Type application/json';

-- A request header (lower-case name) from PostgREST's request.headers, or
-- NULL when there is no such header or no request.headers at all (a plain SQL
-- caller) or it is not a JSON object.
CREATE FUNCTION housing_cache.http_request_header(name text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    headers text := current_setting('request.headers', true);
BEGIN
    IF headers IS NULL OR headers = '' OR name IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        RETURN CASE WHEN json_typeof(headers::json) = 'object'
                    THEN headers::json ->> name END;
    EXCEPTION WHEN invalid_text_representation THEN
        RETURN NULL;            -- not JSON: as if there were no headers
    END;
END
$function$;
COMMENT ON FUNCTION housing_cache.http_request_header(text) IS
    'The value of a request header (lower-case name) in request.headers as PostgREST sets it; NULL when absent or unreadable';

-- After a cached call: set response.headers (ETag, Cache-Control, X-Cache,
-- Server-Timing) from housing_cache.last_lookup(), and response.status 304
-- when the call matched If-None-Match.  has_entity = false (a listing that does
-- not exist) sends no entity tag.  Returns the tier.
CREATE FUNCTION housing_cache.http_cache_headers(has_entity boolean DEFAULT true)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    lk         record;
    max_age    int;
    headers    json[];
BEGIN
    SELECT * INTO lk FROM housing_cache.last_lookup();

    -- housing_cache.http_max_age is shown with a unit ('5s', '2min', '1h'),
    -- which reads as an interval; 5 seconds if the library is not loaded.
    max_age := coalesce(extract(epoch FROM
                   current_setting('housing_cache.http_max_age', true)::interval)::int, 5);
    IF lk.ttl_remaining_s IS NOT NULL THEN
        max_age := least(max_age, lk.ttl_remaining_s);
    END IF;

    IF lk.tier IS NULL OR lk.tier = 'bypass' OR lk.etag IS NULL THEN
        -- computed without the cache: nothing to revalidate against
        headers := ARRAY[json_build_object('Cache-Control', 'no-cache')];
    ELSIF NOT has_entity THEN
        headers := ARRAY[json_build_object('Cache-Control',
                        format('public, max-age=%s', max_age))];
    ELSE
        headers := ARRAY[
            json_build_object('ETag', lk.etag),
            json_build_object('Cache-Control',
                format('public, max-age=%s, stale-while-revalidate=%s',
                       max_age, coalesce(lk.ttl_remaining_s, 0)))];
    END IF;
    headers := headers || ARRAY[
        json_build_object('X-Cache',
            CASE lk.tier WHEN 'l1' THEN 'L1'
                         WHEN 'l2' THEN 'L2'
                         WHEN 'db' THEN 'MISS'
                         WHEN 'not_modified' THEN 'HIT'
                         ELSE 'BYPASS' END),
        json_build_object('Server-Timing',
            format('cache;desc="%s";dur=%s', coalesce(lk.tier, 'none'),
                   to_char(coalesce(lk.elapsed_us, 0) / 1000.0, 'FM9999999990.000')))];

    PERFORM pg_catalog.set_config('response.headers', array_to_json(headers)::text, true);
    IF lk.tier = 'not_modified' THEN
        PERFORM pg_catalog.set_config('response.status', '304', true);
    END IF;
    RETURN lk.tier;
END
$function$;
COMMENT ON FUNCTION housing_cache.http_cache_headers(boolean) IS
    'Set response.headers (ETag, Cache-Control, X-Cache, Server-Timing) and, for a matched If-None-Match, response.status 304, from last_lookup(); returns the tier';

-- An error answered as PostgREST answers errors, with an HTTP status of our
-- choosing (404 for a listing that does not exist).
CREATE FUNCTION housing_cache.http_error(status int, code text, message text)
RETURNS json
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    PERFORM pg_catalog.set_config('response.status', status::text, true);
    RETURN json_build_object('code', code, 'message', message,
                             'details', NULL, 'hint', NULL);
END
$function$;
COMMENT ON FUNCTION housing_cache.http_error(int, text, text) IS
    'Set response.status and return a PostgREST-style error body {code, message, details, hint}';

CREATE FUNCTION api.listings(
    city text DEFAULT NULL,
    min_price_cents bigint DEFAULT NULL,
    max_price_cents bigint DEFAULT NULL,
    min_bedrooms int DEFAULT NULL,
    sort text DEFAULT 'newest',
    page int DEFAULT 1,
    page_size int DEFAULT 20)
RETURNS api."application/json"
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    result json;
BEGIN
    PERFORM housing_cache.if_none_match(housing_cache.http_request_header('if-none-match'));
    result := housing_cache.search_listings(
        city => city, min_price_cents => min_price_cents,
        max_price_cents => max_price_cents, min_bedrooms => min_bedrooms,
        sort => sort, page => page, page_size => page_size);
    PERFORM housing_cache.http_cache_headers();
    RETURN result;
END
$function$;
COMMENT ON FUNCTION api.listings(text, bigint, bigint, int, text, int, int) IS
    'GET /rpc/listings: housing_cache.search_listings() with ETag, Cache-Control, X-Cache and Server-Timing; 304 for a current If-None-Match; 400 (22023) for an argument out of range';

CREATE FUNCTION api.listing(id bigint)
RETURNS api."application/json"
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    result json;
    tier   text;
BEGIN
    IF id IS NULL THEN
        RAISE EXCEPTION 'id is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM housing_cache.if_none_match(housing_cache.http_request_header('if-none-match'));
    result := housing_cache.get_listing(id);
    -- NULL is either "not modified" or "no such listing": the tier tells
    SELECT l.tier INTO tier FROM housing_cache.last_lookup() l;
    IF result IS NULL AND tier IS DISTINCT FROM 'not_modified' THEN
        PERFORM housing_cache.http_cache_headers(has_entity => false);
        RETURN housing_cache.http_error(404, 'HC404', format('listing %s not found', id));
    END IF;
    PERFORM housing_cache.http_cache_headers();
    RETURN result;
END
$function$;
COMMENT ON FUNCTION api.listing(bigint) IS
    'GET /rpc/listing?id=N: every column of one listing (housing_cache.get_listing()) with cache headers; 404 {"code":"HC404"} when there is no such listing; 304 for a current If-None-Match';

CREATE FUNCTION api.city_stats(city text)
RETURNS api."application/json"
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    result json;
BEGIN
    IF city IS NULL THEN
        RAISE EXCEPTION 'city is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM housing_cache.if_none_match(housing_cache.http_request_header('if-none-match'));
    result := housing_cache.city_stats(city);
    PERFORM housing_cache.http_cache_headers();
    RETURN result;
END
$function$;
COMMENT ON FUNCTION api.city_stats(text) IS
    'GET /rpc/city_stats?city=X: housing_cache.city_stats() with cache headers; 304 for a current If-None-Match';

CREATE FUNCTION api.cache_stats()
RETURNS api."application/json"
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    PERFORM pg_catalog.set_config('response.headers',
        json_build_array(json_build_object('Cache-Control', 'no-store'))::text, true);
    RETURN (SELECT row_to_json(s) FROM housing_cache.stats s);
END
$function$;
COMMENT ON FUNCTION api.cache_stats() IS
    'GET /rpc/cache_stats: the row of housing_cache.stats as a JSON object, never cached (Cache-Control: no-store)';

CREATE FUNCTION api.update_listing(
    id bigint,
    title text DEFAULT NULL,
    price_cents bigint DEFAULT NULL,
    status text DEFAULT NULL,
    description text DEFAULT NULL)
RETURNS api."application/json"
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    result json;
BEGIN
    IF update_listing.id IS NULL THEN
        RAISE EXCEPTION 'id is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF update_listing.title IS NOT NULL AND btrim(update_listing.title) = '' THEN
        RAISE EXCEPTION 'title must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF update_listing.price_cents < 0 THEN
        RAISE EXCEPTION 'price_cents must not be negative'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF update_listing.status NOT IN ('active', 'pending', 'sold') THEN
        RAISE EXCEPTION 'status must be one of active, pending, sold'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF num_nonnulls(update_listing.title, update_listing.price_cents,
                    update_listing.status, update_listing.description) = 0 THEN
        -- nothing to change: the listing as it is
        SELECT row_to_json(l) INTO result
          FROM housing.listings l WHERE l.id = update_listing.id;
    ELSE
        UPDATE housing.listings AS l
           SET title       = coalesce(update_listing.title, l.title),
               price_cents = coalesce(update_listing.price_cents, l.price_cents),
               status      = coalesce(update_listing.status, l.status),
               description = coalesce(update_listing.description, l.description),
               updated_at  = now()
         WHERE l.id = update_listing.id
        RETURNING row_to_json(l) INTO result;
    END IF;

    IF result IS NULL THEN
        RETURN housing_cache.http_error(404, 'HC404',
                                        format('listing %s not found', update_listing.id));
    END IF;
    PERFORM pg_catalog.set_config('response.headers',
        json_build_array(json_build_object('Cache-Control', 'no-store'))::text, true);
    RETURN result;
END
$function$;
COMMENT ON FUNCTION api.update_listing(bigint, text, bigint, text, text) IS
    'POST /rpc/update_listing (web_editor only): change the given fields of a listing and return it; 404 {"code":"HC404"} when there is no such listing; 400 (22023) for a negative price or an unknown status';

-- Nothing in schema api is PUBLIC's: setup_api_roles() grants to web_anon
-- and web_editor.
REVOKE ALL ON FUNCTION api.listings(text, bigint, bigint, int, text, int, int) FROM PUBLIC;
REVOKE ALL ON FUNCTION api.listing(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION api.city_stats(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION api.cache_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION api.update_listing(bigint, text, bigint, text, text) FROM PUBLIC;
REVOKE ALL ON DOMAIN api."application/json" FROM PUBLIC;

CREATE FUNCTION housing_cache.setup_api_roles(authenticator_password text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    r record;
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'only a superuser can set up the API roles'
            USING ERRCODE = 'insufficient_privilege';
    END IF;

    -- Roles are cluster-wide: another database (or a concurrent call) may
    -- have created them already.  Their attributes are set every time.
    FOR r IN SELECT * FROM (VALUES
            ('web_anon',      'NOLOGIN'),
            ('web_editor',    'NOLOGIN INHERIT'),
            ('authenticator', 'LOGIN NOINHERIT')) AS v(name, attrs)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I', r.name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;           -- created meanwhile by another session
            END;
        END IF;
        EXECUTE format('ALTER ROLE %I %s NOSUPERUSER NOCREATEDB NOCREATEROLE '
                       'NOREPLICATION NOBYPASSRLS', r.name, r.attrs);
    END LOOP;
    IF authenticator_password IS NOT NULL THEN
        EXECUTE format('ALTER ROLE authenticator PASSWORD %L', authenticator_password);
    END IF;

    -- authenticator switches to either role; web_editor has web_anon's rights.
    FOR r IN SELECT * FROM (VALUES
            ('web_anon', 'authenticator'),
            ('web_editor', 'authenticator'),
            ('web_anon', 'web_editor')) AS v(grp, member)
    LOOP
        IF NOT pg_has_role(r.member, r.grp, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', r.grp, r.member);
        END IF;
    END LOOP;

    GRANT USAGE ON SCHEMA api TO web_anon;
    GRANT USAGE ON TYPE api."application/json" TO web_anon;
    GRANT EXECUTE ON FUNCTION
        api.listings(text, bigint, bigint, int, text, int, int),
        api.listing(bigint),
        api.city_stats(text),
        api.cache_stats()
        TO web_anon;
    GRANT EXECUTE ON FUNCTION api.update_listing(bigint, text, bigint, text, text) TO web_editor;
    GRANT UPDATE (title, price_cents, status, description, updated_at)
        ON housing.listings TO web_editor;
END
$function$;
COMMENT ON FUNCTION housing_cache.setup_api_roles(text) IS
    'Create or update the roles of the HTTP API (web_anon, web_editor, authenticator LOGIN NOINHERIT, with this password when given) and grant them the api schema; idempotent, superuser only';
REVOKE ALL ON FUNCTION housing_cache.setup_api_roles(text) FROM PUBLIC;
