--
-- bad_input: every argument out of range is a clear error (SQLSTATE
-- 22023 for the listing functions), never a crash; NULLs mean defaults
-- where documented.
--
SET timezone = 'UTC';

--
-- search_listings: page
--
SELECT housing_cache.search_listings(page => 0);
SELECT housing_cache.search_listings(page => -1);
SELECT housing_cache.search_listings(page => -2147483648);
SELECT housing_cache.search_listings(page => 10001);
SELECT housing_cache.search_listings(page => 2147483647);
-- the largest page is fine (and empty)
SELECT housing_cache.search_listings(page => 10000) -> 'items' AS items;

--
-- page_size
--
SELECT housing_cache.search_listings(page_size => 0);
SELECT housing_cache.search_listings(page_size => -5);
SELECT housing_cache.search_listings(page_size => 101);
SELECT housing_cache.search_listings(page_size => 2147483647);
SELECT json_array_length(housing_cache.search_listings(page_size => 100) -> 'items') AS n;

--
-- sort
--
SELECT housing_cache.search_listings(sort => 'oldest');
SELECT housing_cache.search_listings(sort => '');
SELECT housing_cache.search_listings(sort => 'NEWEST');
SELECT housing_cache.search_listings(sort => 'price_asc ');
SELECT housing_cache.search_listings(sort => 'price_asc; DROP TABLE housing.listings');
SELECT count(*) AS listings FROM housing.listings;

--
-- prices and bedrooms
--
SELECT housing_cache.search_listings(min_price_cents => -1);
SELECT housing_cache.search_listings(max_price_cents => -1);
SELECT housing_cache.search_listings(min_price_cents => -9223372036854775808);
SELECT housing_cache.search_listings(min_price_cents => 1500000, max_price_cents => 1400000);
SELECT housing_cache.search_listings(min_price_cents => 1, max_price_cents => 0);
SELECT housing_cache.search_listings(min_bedrooms => -1);
SELECT housing_cache.search_listings(min_bedrooms => 101);
-- the extremes that are allowed
SELECT housing_cache.search_listings(min_price_cents => 0, max_price_cents => 9223372036854775807,
                                     min_bedrooms => 100);
SELECT housing_cache.search_listings(max_price_cents => 0) -> 'total' AS total;
-- the SQLSTATE is invalid_parameter_value
DO $$
BEGIN
    PERFORM housing_cache.search_listings(page_size => 0);
EXCEPTION WHEN invalid_parameter_value THEN
    RAISE NOTICE 'invalid_parameter_value: %', SQLERRM;
END
$$;

--
-- city
--
SELECT housing_cache.search_listings(repeat('x', 1000000));
SELECT housing_cache.city_stats(repeat('x', 1000000));
SELECT housing_cache.search_listings(repeat('x', 101));
SELECT housing_cache.city_stats(repeat('x', 101));
-- 100 characters are fine; a multibyte character (chr(233) in UTF-8)
-- counts as one
SELECT housing_cache.search_listings(repeat('x', 100)) -> 'total' AS total;
SELECT housing_cache.city_stats(repeat(chr(233), 100)) -> 'active_count' AS active;
SELECT housing_cache.city_stats(repeat(chr(233), 101));
-- odd but valid names are just not found
SELECT housing_cache.search_listings('') -> 'total' AS total;
SELECT housing_cache.city_stats('');
SELECT housing_cache.search_listings('Boston''; DROP TABLE housing.listings; --') -> 'total' AS total;
SELECT housing_cache.city_stats(E'Bos\\ton"') -> 'city' AS city;
SELECT count(*) AS listings FROM housing.listings;

--
-- NULLs
--
-- city, prices and bedrooms NULL: no filter; sort, page, page_size NULL:
-- their defaults
SELECT s -> 'total' AS total, s -> 'page' AS page, s -> 'page_size' AS page_size
  FROM housing_cache.search_listings(NULL, NULL, NULL, NULL, NULL, NULL, NULL) AS s;
SELECT item_ids(housing_cache.search_listings(sort => NULL, page_size => 5))
     = item_ids(housing_cache.search_listings(sort => 'newest', page_size => 5)) AS newest;
-- NULLs next to bad arguments: the first bad argument is reported
SELECT housing_cache.search_listings(NULL, -1, NULL, NULL, NULL, 0, NULL);
SELECT housing_cache.get_listing(NULL);
SELECT housing_cache.city_stats(NULL);

--
-- get_listing: any bigint, found or not
--
SELECT housing_cache.get_listing(-9223372036854775808) IS NULL AS absent;
SELECT housing_cache.get_listing('abc');

--
-- fetch
--
-- unknown or bad names
SELECT housing_cache.fetch('no.such.query');
SELECT housing_cache.fetch('');
SELECT housing_cache.fetch(NULL);
SELECT housing_cache.fetch(repeat('q', 64));
SELECT housing_cache.fetch(repeat('q', 1000000));
-- the built-in queries are refused whatever their parameters
SELECT housing_cache.fetch('housing.listing', '1');
SELECT housing_cache.fetch('housing.listing', 'abc');
SELECT housing_cache.fetch('housing.search_newest', 'Boston');
-- the parameters of a query of one's own: a bigint key, and a page of a
-- search with text, bigint and integer parameters
CREATE TABLE public.bad_items (
    id    bigint  PRIMARY KEY,
    kind  text    NOT NULL,
    qty   bigint  NOT NULL
);
INSERT INTO public.bad_items
SELECT i, (ARRAY['a', 'b'])[1 + i % 2], 10 * i FROM generate_series(1, 5) AS g(i);
SELECT housing_cache.watch_table('public.bad_items', 'kind');
SELECT housing_cache.register_query('bad_input.item',
    $$SELECT row_to_json(b) FROM public.bad_items b WHERE b.id = $1$$,
    '{bigint}', '{public.bad_items/id=$1}');
SELECT housing_cache.register_query('bad_input.page',
    $$SELECT json_build_object(
        'total', (SELECT count(*) FROM public.bad_items
                   WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR qty >= $2)),
        'page', $3,
        'ids', (SELECT json_agg(id ORDER BY id)
                  FROM (SELECT id FROM public.bad_items
                         WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR qty >= $2)
                         ORDER BY id LIMIT $4 OFFSET ($3 - 1) * $4) i))$$,
    '{text,bigint,integer,integer}', '{public.bad_items/kind=$1}');
SELECT housing_cache.fetch('bad_input.page', 'a', '20', '1', '10');
-- wrong number of parameters
SELECT housing_cache.fetch('bad_input.item');
SELECT housing_cache.fetch('bad_input.item', '1', '2');
SELECT housing_cache.fetch('bad_input.item', VARIADIC '{}'::text[]);
SELECT housing_cache.fetch('bad_input.page', 'a');
SELECT housing_cache.fetch('bad_input.item', VARIADIC NULL::text[]);
SELECT housing_cache.fetch('bad_input.item', VARIADIC '{{1},{2}}'::text[]);
-- parameters that are not valid input for their type
SELECT housing_cache.fetch('bad_input.item', 'abc');
SELECT housing_cache.fetch('bad_input.item', '');
SELECT housing_cache.fetch('bad_input.item', '1.5');
SELECT housing_cache.fetch('bad_input.item', '99999999999999999999');
SELECT housing_cache.fetch('bad_input.page', NULL, 'cheap', '1', '10');
SELECT housing_cache.fetch('bad_input.page', NULL, NULL, '1', 'ten');
SELECT housing_cache.fetch('bad_input.page', NULL, NULL, '2147483648', '10');
-- valid parameters as text, with spaces and leading zeros
SELECT housing_cache.fetch('bad_input.item', ' 0003 ') ->> 'id' AS id;
SELECT housing_cache.fetch('bad_input.item', '-1') IS NULL AS absent;
SELECT housing_cache.fetch('bad_input.item', NULL) IS NULL AS absent;
SELECT housing_cache.fetch('bad_input.page', NULL, ' +020 ', '1', '10');
-- values the query itself refuses fail cleanly (without the query's text
-- as context): page 0, a negative page size, a page past the integers
\set SHOW_CONTEXT never
SELECT housing_cache.fetch('bad_input.page', NULL, NULL, '0', '10');
SELECT housing_cache.fetch('bad_input.page', NULL, NULL, '-1', '10');
SELECT housing_cache.fetch('bad_input.page', NULL, NULL, '1', '-1');
SELECT housing_cache.fetch('bad_input.page', NULL, NULL, '2147483647', '100');
\set SHOW_CONTEXT errors
SELECT housing_cache.unregister_query('bad_input.item');
SELECT housing_cache.unregister_query('bad_input.page');
SELECT housing_cache.unwatch_table('public.bad_items');
DROP TABLE public.bad_items;

--
-- register_query with bad arguments
--
SELECT housing_cache.register_query('bad.args', 'SELECT ''1''::json', NULL, '{housing.listings}');
SELECT housing_cache.register_query('bad.args', 'SELECT ''1''::json', '{}', NULL);
SELECT housing_cache.register_query('bad.args', 'SELECT ''1''::json', '{integer,NULL}', '{housing.listings}');
SELECT housing_cache.register_query('bad.args', 'SELECT ''1''::json', '{no_such_type}', '{housing.listings}');
SELECT housing_cache.register_query('bad.args', 'SELECT ''1''::json',
    array_fill('integer'::regtype, ARRAY[33]), '{housing.listings}');
SELECT housing_cache.register_query('bad.args', 'SELECT ''1''::json', '{}',
    array_fill('housing.listings'::text, ARRAY[9]));
SELECT housing_cache.register_query('bad.args', repeat(' ', 1000000), '{}', '{housing.listings}');
SELECT name FROM housing_cache.queries WHERE fetchable;

--
-- the extension's own objects still work after all that
--
SELECT s -> 'total' AS total, item_ids(s) AS ids
  FROM housing_cache.search_listings('Boston', sort => 'price_asc', page_size => 3) AS s;
SELECT housing_cache.get_listing(1) ->> 'title' AS title;
SELECT housing_cache.city_stats('Denver') -> 'active_count' AS active;
