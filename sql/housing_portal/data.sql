----------------------------------------------------------------------------
-- The portal's data: schema housing, its listings, their cached queries
----------------------------------------------------------------------------
-- The tables are created only when there is no schema housing yet, and
-- never as part of the extension: DROP EXTENSION (with or without CASCADE)
-- leaves the listings with every row, and pg_dump dumps them (with their
-- triggers, and their rows of housing_cache.watched_tables and
-- housing_cache.queries) as the database's own.  When schema housing
-- exists -- the portal created again after a DROP EXTENSION, a database
-- updated from housing_cache 0.1.0, or a restore (pg_restore creates
-- schemas before extensions) -- the tables found there are kept as they
-- are.  Whenever the listings exist, they are watched and the portal's
-- queries registered (again).  During a restore they do not exist yet: the
-- dump brings their triggers and catalog rows.

CREATE FUNCTION housing_cache.create_portal_tables()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $create$
BEGIN
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
    COMMENT ON TABLE housing.listings IS
        'Housing listings; watched by housing_cache, partitioned by city';
    GRANT SELECT ON housing.listings TO PUBLIC;

    -- The searches filter active listings by city and sort by recency or
    -- price; city statistics read one city's active listings.
    CREATE INDEX listings_active_city_created_idx
        ON housing.listings (city, created_at DESC, id DESC) WHERE status = 'active';
    CREATE INDEX listings_active_city_price_idx
        ON housing.listings (city, price_cents, id) WHERE status = 'active';
    CREATE INDEX listings_active_created_idx
        ON housing.listings (created_at DESC, id DESC) WHERE status = 'active';
    CREATE INDEX listings_active_price_idx
        ON housing.listings (price_cents, id) WHERE status = 'active';
END
$create$;

CREATE FUNCTION housing_cache.register_portal_queries()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $register$
DECLARE
    -- One search per sort order, so that each can use its index; the
    -- filters are optional ($n IS NULL), which custom plans fold away.
    -- The page's rows carry only what their order needs: a column read
    -- anywhere is a column the page depends on.
    orders constant text[][] := ARRAY[
        ARRAY['newest',     'created_at DESC, id DESC',      'i.created_at DESC, i.id DESC',  'id, created_at'],
        ARRAY['price_asc',  'price_cents, id',               'i.price_cents, i.id',           'id, price_cents'],
        ARRAY['price_desc', 'price_cents DESC, id DESC',     'i.price_cents DESC, i.id DESC', 'id, price_cents']];
    filter constant text := $f$
        status = 'active'
        AND ($1 IS NULL OR city = $1)
        AND ($2 IS NULL OR price_cents >= $2)
        AND ($3 IS NULL OR price_cents <= $3)
        AND ($4 IS NULL OR bedrooms >= $4)$f$;
BEGIN
    PERFORM housing_cache.watch_table('housing.listings', 'city');

    -- Served only through their functions (listings.sql), which check the
    -- arguments: not fetchable.
    -- A search is composed (see register_query's fragment_sql): its own
    -- answer lists the ids of the page, which depend only on the columns
    -- it filters and sorts on; each listing's card is a fragment cached by
    -- id, which depends on the columns it shows.  A title edit then
    -- changes one fragment and no page, a price edit one fragment and the
    -- pages of its city that filter or sort on price (a filter left NULL
    -- reads no column: see "Column-aware tags" in the README).  The assembled answer is what one query with
    -- json_agg over the cards' rows returns.
    FOR i IN 1 .. array_length(orders, 1) LOOP
        PERFORM housing_cache.register_query(
            'housing.search_' || orders[i][1],
            format($q$
SELECT json_build_object(
    'total', (SELECT count(*) FROM housing.listings WHERE %1$s),
    'page', $5,
    'page_size', $6,
    'items', coalesce((
        SELECT json_agg(i.id ORDER BY %3$s)
          FROM (SELECT %4$s
                  FROM housing.listings
                 WHERE %1$s
                 ORDER BY %2$s
                 LIMIT $6 OFFSET ($5 - 1) * $6) i), '[]'::json))$q$,
                filter, orders[i][2], orders[i][3], orders[i][4]),
            '{text,bigint,bigint,integer,integer,integer}',
            '{housing.listings/city=$1}',
            fetchable => false,
            fragment_sql => $q$
SELECT f.id, row_to_json(f)
  FROM (SELECT id, title, city, neighborhood, price_cents, bedrooms,
               bathrooms, area_sqm, lat, lon, created_at
          FROM housing.listings
         WHERE id = ANY($1)) f$q$,
            fragment_tags => '{housing.listings/id=$1}',
            fragments_key => 'items');
    END LOOP;

    PERFORM housing_cache.register_query(
        'housing.listing',
        $q$SELECT row_to_json(l) FROM housing.listings l WHERE l.id = $1$q$,
        '{bigint}',
        '{housing.listings/id=$1}',
        fetchable => false);

    PERFORM housing_cache.register_query(
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
        '{housing.listings/city=$1}',
        fetchable => false);
END
$register$;

DO $$
BEGIN
    IF to_regnamespace('housing') IS NULL THEN
        PERFORM housing_cache.create_portal_tables();
        -- the data is the database's, not the extension's
        ALTER EXTENSION housing_portal DROP SCHEMA housing;
        ALTER EXTENSION housing_portal DROP TABLE housing.listings;
        ALTER EXTENSION housing_portal DROP SEQUENCE housing.listings_id_seq;
    END IF;
    IF to_regclass('housing.listings') IS NOT NULL THEN
        PERFORM housing_cache.register_portal_queries();
    ELSE
        RAISE NOTICE 'schema housing has no table listings: the portal''s tables, triggers and queries are expected to be restored there';
    END IF;
END
$$;
DROP FUNCTION housing_cache.create_portal_tables();
DROP FUNCTION housing_cache.register_portal_queries();
