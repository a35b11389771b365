--
-- listings: search_listings, get_listing and city_stats on the data set of
-- setup; results and JSON shape, sort orders and their tie-breaks,
-- pagination edges, filters.
--
SET timezone = 'UTC';

--
-- search_listings: the JSON shape
--
SELECT housing_cache.search_listings('Denver', page_size => 2);
-- top-level keys, then the keys of an item, in order
SELECT json_object_keys(housing_cache.search_listings('Denver'));
SELECT json_object_keys(housing_cache.search_listings('Denver') -> 'items' -> 0);
SELECT json_typeof(s -> 'total') AS total, json_typeof(s -> 'page') AS page,
       json_typeof(s -> 'page_size') AS page_size, json_typeof(s -> 'items') AS items
  FROM housing_cache.search_listings('Denver') AS s;

-- the same call twice gives the same answer
SELECT housing_cache.search_listings('Boston', sort => 'price_asc')::text
     = housing_cache.search_listings('Boston', sort => 'price_asc')::text AS same;

-- defaults: every city, newest first, page 1 of 20; active listings only
SELECT s -> 'total' AS total, s -> 'page' AS page, s -> 'page_size' AS page_size,
       json_array_length(s -> 'items') AS n, item_ids(s) AS ids
  FROM housing_cache.search_listings() AS s;
SELECT count(*) AS active FROM housing.listings WHERE status = 'active';
-- pending (7, 12, 26) and sold (9, 21) listings never appear
SELECT item_ids(housing_cache.search_listings(page_size => 100))
       && '{7,9,12,21,26}'::bigint[] AS any_inactive;
-- an explicit NULL is the same as leaving an argument out
SELECT housing_cache.search_listings(NULL, NULL, NULL, NULL, NULL, NULL, NULL)::text
     = housing_cache.search_listings()::text AS same;
-- positional arguments: Boston, no price bounds, 2+ bedrooms, by price
SELECT item_ids(housing_cache.search_listings('Boston', NULL, NULL, 2, 'price_asc', 1, 10));

--
-- sort orders, and ties broken by id
--
-- newest: created_at descending, then id descending (1 and 25 were created
-- together, as were 6 and 30)
SELECT e ->> 'id' AS id, e ->> 'created_at' AS created_at, e ->> 'price_cents' AS price_cents
  FROM json_array_elements(housing_cache.search_listings('Boston', sort => 'newest') -> 'items')
           WITH ORDINALITY AS t(e, n)
 ORDER BY n;
-- price_asc: price ascending, then id ascending (1 and 15, 16 and 30,
-- 11 and 25, 6 and 20 cost the same)
SELECT e ->> 'id' AS id, e ->> 'price_cents' AS price_cents
  FROM json_array_elements(housing_cache.search_listings('Boston', sort => 'price_asc') -> 'items')
           WITH ORDINALITY AS t(e, n)
 ORDER BY n;
-- price_desc: price descending, then id descending
SELECT e ->> 'id' AS id, e ->> 'price_cents' AS price_cents
  FROM json_array_elements(housing_cache.search_listings('Boston', sort => 'price_desc') -> 'items')
           WITH ORDINALITY AS t(e, n)
 ORDER BY n;

-- every order over all cities agrees with the same ORDER BY in plain SQL
SELECT sort,
       item_ids(housing_cache.search_listings(sort => sort, page_size => 100)) AS ids,
       item_ids(housing_cache.search_listings(sort => sort, page_size => 100)) =
       CASE sort
         WHEN 'newest' THEN ARRAY(SELECT id FROM housing.listings WHERE status = 'active'
                                  ORDER BY created_at DESC, id DESC)
         WHEN 'price_asc' THEN ARRAY(SELECT id FROM housing.listings WHERE status = 'active'
                                     ORDER BY price_cents, id)
         WHEN 'price_desc' THEN ARRAY(SELECT id FROM housing.listings WHERE status = 'active'
                                      ORDER BY price_cents DESC, id DESC)
       END AS as_sql
  FROM unnest(ARRAY['newest', 'price_asc', 'price_desc']) WITH ORDINALITY AS u(sort, n)
 ORDER BY n;

--
-- pagination
--
-- Boston's 10 active listings, 3 a page: pages 1 to 4, the last one short;
-- page 5 is past the end: no items, the same total
SELECT p AS page, s -> 'total' AS total, s -> 'page' AS page_out,
       s -> 'page_size' AS page_size, item_ids(s) AS ids
  FROM generate_series(1, 5) AS p,
       housing_cache.search_listings('Boston', sort => 'price_asc', page => p, page_size => 3) AS s
 ORDER BY p;
SELECT housing_cache.search_listings('Boston', page => 5, page_size => 3);
-- far past the end, at the largest page allowed
SELECT housing_cache.search_listings('Boston', page => 10000, page_size => 100);
-- page_size 1: one listing a page; page 10 is the last one, 11 is empty
SELECT p AS page, item_ids(s) AS ids
  FROM unnest(ARRAY[1, 2, 10, 11]) AS p,
       housing_cache.search_listings('Boston', sort => 'price_desc', page => p, page_size => 1) AS s
 ORDER BY p;
-- page_size 100: everything on page 1, nothing on page 2
SELECT p AS page, s -> 'total' AS total, json_array_length(s -> 'items') AS n
  FROM generate_series(1, 2) AS p,
       housing_cache.search_listings(page => p, page_size => 100) AS s
 ORDER BY p;
-- pages of 7 over all cities put together are the whole ordered list
SELECT array_agg(id ORDER BY p, n) =
       item_ids(housing_cache.search_listings(sort => 'newest', page_size => 100)) AS pages_cover_all
  FROM generate_series(1, 4) AS p,
       unnest(item_ids(housing_cache.search_listings(sort => 'newest', page => p, page_size => 7)))
           WITH ORDINALITY AS u(id, n);

--
-- filters
--
-- price bounds are inclusive
SELECT s -> 'total' AS total, item_ids(s) AS ids
  FROM housing_cache.search_listings(min_price_cents => 1500000, sort => 'price_asc') AS s;
SELECT s -> 'total' AS total, item_ids(s) AS ids
  FROM housing_cache.search_listings(max_price_cents => 1100000, sort => 'price_asc') AS s;
SELECT s -> 'total' AS total, item_ids(s) AS ids
  FROM housing_cache.search_listings(min_price_cents => 1200000, max_price_cents => 1300000,
                                     sort => 'price_asc') AS s;
-- min = max selects one price
SELECT s -> 'total' AS total, item_ids(s) AS ids
  FROM housing_cache.search_listings(min_price_cents => 1400000, max_price_cents => 1400000,
                                     sort => 'price_asc') AS s;
-- at least 3 bedrooms, and at least 0 (everything)
SELECT s -> 'total' AS total, item_ids(s) AS ids
  FROM housing_cache.search_listings(min_bedrooms => 3, sort => 'price_asc') AS s;
SELECT s -> 'total' AS total
  FROM housing_cache.search_listings(min_bedrooms => 0) AS s;
-- city NULL is every city; a city is matched exactly
SELECT c AS city, s -> 'total' AS total
  FROM unnest(ARRAY[NULL, 'Boston', 'Denver', 'Austin', 'Seattle', 'boston', 'Nowhere'])
           WITH ORDINALITY AS u(c, n),
       housing_cache.search_listings(c) AS s
 ORDER BY n;
-- every filter at once
SELECT housing_cache.search_listings('Boston', 1100000, 1400000, 1, 'price_desc', 1, 20);
SELECT s -> 'total' AS total, item_ids(s) AS ids
  FROM housing_cache.search_listings('Boston', 1100000, 1400000, 1, 'price_desc') AS s;
-- nothing matches: a total of 0 and an empty list
SELECT housing_cache.search_listings('Denver', min_bedrooms => 4);
SELECT housing_cache.search_listings(min_price_cents => 100000000);
-- the filtered totals agree with plain SQL
SELECT c AS city, b AS min_bedrooms,
       (housing_cache.search_listings(c, 1100000, 1500000, b) ->> 'total')::bigint AS total,
       (SELECT count(*) FROM housing.listings
         WHERE status = 'active' AND (c IS NULL OR city = c)
           AND price_cents BETWEEN 1100000 AND 1500000 AND bedrooms >= b) AS as_sql
  FROM unnest(ARRAY[NULL, 'Boston', 'Seattle']) AS c, generate_series(0, 3) AS b
 ORDER BY c NULLS FIRST, b;

--
-- get_listing: every column, NULL when absent
--
SELECT housing_cache.get_listing(1);
SELECT array_agg(k ORDER BY n) =
       ARRAY(SELECT attname::text FROM pg_attribute
              WHERE attrelid = 'housing.listings'::regclass AND attnum > 0 AND NOT attisdropped
              ORDER BY attnum) AS every_column
  FROM json_object_keys(housing_cache.get_listing(1)) WITH ORDINALITY AS t(k, n);
-- also listings that are not active
SELECT l ->> 'id' AS id, l ->> 'status' AS status, l ->> 'city' AS city
  FROM unnest(ARRAY[21, 26]) AS i, housing_cache.get_listing(i) AS l
 ORDER BY i;
-- the answer is the row
SELECT i AS id, housing_cache.get_listing(i)::jsonb = to_jsonb(l) AS same_as_row
  FROM housing.listings l, unnest(ARRAY[1, 2, 14, 26, 30]) AS i
 WHERE l.id = i ORDER BY i;
-- absent
SELECT housing_cache.get_listing(0) IS NULL AS zero,
       housing_cache.get_listing(31) IS NULL AS next_id,
       housing_cache.get_listing(-5) IS NULL AS negative,
       housing_cache.get_listing(9223372036854775807) IS NULL AS max_bigint,
       housing_cache.get_listing(NULL) IS NULL AS null_id;

--
-- city_stats: active count, average and median price, by bedrooms
--
SELECT housing_cache.city_stats('Boston');
SELECT housing_cache.city_stats('Denver');
SELECT housing_cache.city_stats('Austin');
SELECT housing_cache.city_stats('Nowhere');
SELECT housing_cache.city_stats(NULL) IS NULL AS null_city;
-- the same numbers, computed in plain SQL for every city
SELECT c AS city,
       (s ->> 'active_count')::bigint AS active_count,
       (s ->> 'avg_price_cents')::bigint AS avg_price_cents,
       (s ->> 'median_price_cents')::bigint AS median_price_cents,
       (s ->> 'active_count')::bigint = (SELECT count(*) FROM housing.listings
                                          WHERE city = c AND status = 'active')
       AND (s ->> 'avg_price_cents')::numeric = (SELECT round(avg(price_cents)) FROM housing.listings
                                                  WHERE city = c AND status = 'active')
       AND (s ->> 'median_price_cents')::float8 =
           (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY price_cents))
              FROM housing.listings WHERE city = c AND status = 'active')
       AND (s -> 'by_bedrooms')::jsonb =
           (SELECT jsonb_agg(jsonb_build_object('bedrooms', bedrooms, 'count', n,
                                                'median_price_cents', m) ORDER BY bedrooms)
              FROM (SELECT bedrooms, count(*) AS n,
                           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY price_cents)) AS m
                      FROM housing.listings WHERE city = c AND status = 'active'
                     GROUP BY bedrooms) b) AS as_sql
  FROM (SELECT DISTINCT city FROM housing.listings) AS d(c),
       housing_cache.city_stats(c) AS s
 ORDER BY c;
