--
-- setup: install the extension and load a small, deterministic data set
-- that the later tests (listings, engine, invalidation, guc, bad_input)
-- share.  Nothing printed here or later depends on whether Redis is up.
--
SET timezone = 'UTC';
CREATE EXTENSION housing_portal CASCADE;

SELECT extname, extversion, nspname AS schema
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'housing_cache';

-- The built-in queries and the watched listings table.
SELECT name, param_types, tags, ttl_seconds, vary_by_role, fetchable, owner::text = current_user AS owned_by_installer
  FROM housing_cache.queries ORDER BY name;
SELECT relid, table_tag, partition_column, id_column
  FROM housing_cache.watched_tables ORDER BY table_tag;

-- 30 listings in four cities (Boston 12, Denver, Austin and Seattle 6 each).
-- Prices repeat every 7 ids and creation days every 8 ids, so that sorts
-- have ties to break by id; ids 7, 12, 26 are pending and 9, 21 sold, so
-- Boston has 10 active listings and Denver 4.
INSERT INTO housing.listings
    (id, title, description, city, neighborhood, price_cents, bedrooms,
     bathrooms, area_sqm, status, lat, lon, created_at, updated_at)
SELECT i,
       'Listing ' || i,
       'Description of listing ' || i,
       (ARRAY['Boston', 'Denver', 'Austin', 'Seattle', 'Boston'])[1 + (i - 1) % 5],
       (ARRAY['North End', 'South End', 'West End'])[1 + i % 3],
       100000 * (10 + i % 7),
       i % 4,
       1 + (i % 3) * 0.5,
       40 + 3 * i,
       CASE WHEN i IN (7, 12, 26) THEN 'pending'
            WHEN i IN (9, 21) THEN 'sold'
            ELSE 'active' END,
       (40 + i * 0.01)::float8,
       (-70 - i * 0.01)::float8,
       timestamptz '2026-01-01 12:00:00+00' + ((i * 5) % 8) * interval '1 day',
       timestamptz '2026-01-01 13:00:00+00' + ((i * 5) % 8) * interval '1 day'
  FROM generate_series(1, 30) AS g(i);
SELECT setval('housing.listings_id_seq', 30);

SELECT city, count(*) AS listings, count(*) FILTER (WHERE status = 'active') AS active
  FROM housing.listings GROUP BY city ORDER BY city;

-- The ids of a search answer's items, in order.
CREATE FUNCTION item_ids(answer json) RETURNS bigint[]
LANGUAGE sql IMMUTABLE STRICT
AS $$
    SELECT coalesce(array_agg((e ->> 'id')::bigint ORDER BY n), '{}')
      FROM json_array_elements(answer -> 'items') WITH ORDINALITY AS t(e, n)
$$;
