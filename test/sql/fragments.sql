--
-- fragments: composed answers (an id list and its fragments, cached apart)
-- and column-aware tags.  Every composed answer is compared, byte for byte,
-- with the one query that computes it whole.
--
SET timezone = 'UTC';

-- Six listings of our own, in a city of their own.
INSERT INTO housing.listings (id, title, city, neighborhood, price_cents, bedrooms,
                              bathrooms, area_sqm, lat, lon, created_at)
SELECT 5000 + i, 'Frag ' || i, 'Fragtown', 'Center', 1000000 * i, 1 + i % 3, 1, 40 + i,
       1.5, -2.25, timestamptz '2025-01-01 00:00+00' + i * interval '1 day'
  FROM generate_series(1, 6) AS i;

-- The search as one query, as the portal computed it before it was composed.
CREATE FUNCTION whole(c text, minp bigint, maxp bigint, minb int, srt text, pg int, ps int)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    o  text := CASE srt WHEN 'newest' THEN 'created_at DESC, id DESC'
                        WHEN 'price_asc' THEN 'price_cents, id'
                        ELSE 'price_cents DESC, id DESC' END;
    oi text := CASE srt WHEN 'newest' THEN 'i.created_at DESC, i.id DESC'
                        WHEN 'price_asc' THEN 'i.price_cents, i.id'
                        ELSE 'i.price_cents DESC, i.id DESC' END;
    r  json;
BEGIN
    EXECUTE format($q$
SELECT json_build_object(
    'total', (SELECT count(*) FROM housing.listings WHERE %1$s),
    'page', $5, 'page_size', $6,
    'items', coalesce((
        SELECT json_agg(i ORDER BY %3$s)
          FROM (SELECT id, title, city, neighborhood, price_cents, bedrooms,
                       bathrooms, area_sqm, lat, lon, created_at
                  FROM housing.listings WHERE %1$s ORDER BY %2$s
                 LIMIT $6 OFFSET ($5 - 1) * $6) i), '[]'::json))$q$,
        $f$status = 'active' AND ($1 IS NULL OR city = $1) AND ($2 IS NULL OR price_cents >= $2)
           AND ($3 IS NULL OR price_cents <= $3) AND ($4 IS NULL OR bedrooms >= $4)$f$, o, oi)
      INTO r USING c, minp, maxp, minb, pg, ps;
    RETURN r;
END $$;

CREATE FUNCTION same(c text, minp bigint DEFAULT NULL, maxp bigint DEFAULT NULL,
                     minb int DEFAULT NULL, srt text DEFAULT 'newest',
                     pg int DEFAULT 1, ps int DEFAULT 20) RETURNS boolean
LANGUAGE sql AS $$
    SELECT housing_cache.search_listings(c, minp, maxp, minb, srt, pg, ps)::text
           = whole(c, minp, maxp, minb, srt, pg, ps)::text
$$;

CREATE FUNCTION served(OUT tier text, OUT fragment_hits int, OUT fragment_fills int)
LANGUAGE sql AS $$ SELECT tier, fragment_hits, fragment_fills FROM housing_cache.last_lookup() $$;

-- 1. Byte for byte the whole query, cold and warm, over many arguments.
SELECT count(*) FILTER (WHERE same(c, mp, xp, mb, s, p, z)) AS identical, count(*) AS cases
  FROM unnest(ARRAY['Fragtown', 'Boston', NULL]) c,
       unnest(ARRAY[NULL, 2000000]::bigint[]) mp,
       unnest(ARRAY[NULL, 5000000]::bigint[]) xp,
       unnest(ARRAY[NULL, 2]) mb,
       unnest(ARRAY['newest', 'price_asc', 'price_desc']) s,
       unnest(ARRAY[1, 2, 40]) p,
       unnest(ARRAY[1, 4, 100]) z;
SELECT count(*) FILTER (WHERE same(c, mp, xp, mb, s, p, z)) AS identical_warm, count(*) AS cases
  FROM unnest(ARRAY['Fragtown', 'Boston', NULL]) c,
       unnest(ARRAY[NULL, 2000000]::bigint[]) mp,
       unnest(ARRAY[NULL, 5000000]::bigint[]) xp,
       unnest(ARRAY[NULL, 2]) mb,
       unnest(ARRAY['newest', 'price_asc', 'price_desc']) s,
       unnest(ARRAY[1, 2, 40]) p,
       unnest(ARRAY[1, 4, 100]) z;

-- the page as it is now: served whole from the cache
SELECT same('Fragtown'), (served()).*;
SELECT same('Fragtown'), (served()).*;

-- 2. A title edit: the id list stays cached, one fragment is computed.
UPDATE housing.listings SET title = 'Frag 3, renovated' WHERE id = 5003;
SELECT same('Fragtown'), (served()).*;
SELECT housing_cache.search_listings('Fragtown') -> 'items' -> 3 ->> 'title' AS title;
-- the statistics show no titles: still cached
SELECT housing_cache.city_stats('Fragtown') IS NOT NULL AS stats, (served()).tier;
UPDATE housing.listings SET title = 'Frag 3, renovated again' WHERE id = 5003;
SELECT housing_cache.city_stats('Fragtown') IS NOT NULL AS stats, (served()).tier;
SELECT same('Fragtown'), (served()).*;

-- 3. A description edit: nothing a search or a card shows; the page is still cached whole.
UPDATE housing.listings SET description = 'A new description' WHERE id = 5004;
SELECT same('Fragtown'), (served()).*;
-- but the listing's own page shows every column
SELECT housing_cache.get_listing(5004) ->> 'description' AS description, (served()).tier;

-- 4. A price edit that reorders the page: exactly the uncached answer.
SELECT same('Fragtown', srt => 'price_asc');
UPDATE housing.listings SET price_cents = 500000 WHERE id = 5006;
SELECT same('Fragtown', srt => 'price_asc'), (served()).*;
SELECT housing_cache.search_listings('Fragtown', sort => 'price_asc') -> 'items' -> 0 ->> 'id' AS cheapest;
SELECT housing_cache.city_stats('Fragtown') IS NOT NULL AS stats, (served()).tier;

-- 4b. A filter left NULL reads no column: after a price edit, a newest-first
-- search without a price filter keeps its id list (one card computed); with
-- a price filter, or sorted by price, the list is computed again.
SELECT same('Fragtown'), same('Fragtown', maxp => 4000000), same('Fragtown', srt => 'price_desc');
UPDATE housing.listings SET price_cents = 600000 WHERE id = 5006;
SELECT same('Fragtown'), (served()).*;
SELECT same('Fragtown', maxp => 4000000), (served()).tier;
SELECT same('Fragtown', srt => 'price_desc'), (served()).tier;
-- a bedrooms filter given, price still not: the list stays cached
SELECT same('Fragtown', minb => 1);
UPDATE housing.listings SET price_cents = 650000 WHERE id = 5006;
SELECT same('Fragtown', minb => 1), (served()).tier;
UPDATE housing.listings SET bedrooms = bedrooms + 1 WHERE id = 5006;
SELECT same('Fragtown', minb => 1), (served()).tier;

-- 5. A listing leaving a filter's range, deleted, inserted, moved away.
SELECT same('Fragtown', maxp => 4000000);
UPDATE housing.listings SET price_cents = 9000000 WHERE id = 5002;
SELECT same('Fragtown', maxp => 4000000), (served()).tier;
DELETE FROM housing.listings WHERE id = 5001;
SELECT same('Fragtown'), same('Fragtown', maxp => 4000000), (served()).tier;
INSERT INTO housing.listings (id, title, city, neighborhood, price_cents, bedrooms,
                              bathrooms, area_sqm, lat, lon, created_at)
VALUES (5007, 'Frag 7', 'Fragtown', 'Center', 1500000, 2, 1, 47, 1.5, -2.25, '2025-02-01 00:00+00');
SELECT same('Fragtown'), (served()).tier;
SELECT housing_cache.search_listings('Fragtown') -> 'items' -> 0 ->> 'title' AS newest;
UPDATE housing.listings SET city = 'Elsewhere' WHERE id = 5005;
SELECT same('Fragtown'), same('Elsewhere'), (served()).tier;
SELECT json_array_length(housing_cache.search_listings('Fragtown') -> 'items') AS fragtown_items;
-- a listing sold: gone from the search, though its card did not change
UPDATE housing.listings SET status = 'sold' WHERE id = 5003;
SELECT same('Fragtown'), (served()).tier;

-- 6. Inside a transaction that wrote: computed without the cache, both
-- queries on one snapshot, and what the transaction wrote is in it.
BEGIN;
UPDATE housing.listings SET title = 'Uncommitted' WHERE id = 5004;
SELECT same('Fragtown'), (served()).*;
SELECT housing_cache.search_listings('Fragtown')::text LIKE '%Uncommitted%' AS sees_own_write;
ROLLBACK;
SELECT same('Fragtown'), housing_cache.search_listings('Fragtown')::text LIKE '%Uncommitted%' AS phantom;

-- 7. If-None-Match on a composed answer: its entity tag covers every piece.
-- (If-None-Match is for the next cached call of the same transaction.)
SELECT housing_cache.search_listings('Fragtown') IS NOT NULL;
SELECT etag AS e1 FROM housing_cache.last_lookup() \gset
BEGIN;
SELECT housing_cache.if_none_match(:'e1');
SELECT housing_cache.search_listings('Fragtown') IS NULL AS not_modified, (served()).tier;
COMMIT;
UPDATE housing.listings SET title = 'Frag 4, retitled' WHERE id = 5004;
BEGIN;
SELECT housing_cache.if_none_match(:'e1');
SELECT housing_cache.search_listings('Fragtown') IS NOT NULL AS sent_again, (served()).*,
       (SELECT etag FROM housing_cache.last_lookup()) <> :'e1' AS new_etag;
COMMIT;

-- 8. A composed query on a table of one's own, with text ids.
CREATE TABLE public.books (isbn text PRIMARY KEY, shelf text NOT NULL, title text NOT NULL,
                           pages int NOT NULL);
INSERT INTO public.books VALUES ('978-1', 'A', 'One', 100), ('978-2', 'A', 'Two', 200),
                                ('978-3', 'B', 'Three', 300);
SELECT housing_cache.watch_table('public.books', 'shelf');
SELECT housing_cache.register_query('books.shelf',
    $q$SELECT json_build_object('shelf', $1, 'books',
         coalesce((SELECT json_agg(isbn ORDER BY isbn) FROM public.books WHERE shelf = $1), '[]'))$q$,
    '{text}', '{public.books/shelf=$1}',
    fragment_sql => $q$SELECT b.isbn, json_build_object('title', b.title, 'pages', b.pages)
                         FROM public.books b WHERE b.isbn = ANY($1)$q$,
    fragment_tags => '{public.books/isbn=$1}',
    fragments_key => 'books');
SELECT housing_cache.fetch('books.shelf', 'A');
SELECT (served()).*;
UPDATE public.books SET pages = 101 WHERE isbn = '978-1';
SELECT housing_cache.fetch('books.shelf', 'A');
SELECT (served()).*;

-- 9. What registration refuses, and what fetch says of a broken answer.
SELECT housing_cache.register_query('bad.1', 'SELECT json_build_object(''items'', ''[]''::json)', '{}',
    '{public.books}', fragment_sql => 'SELECT isbn, to_json(title) FROM public.books WHERE isbn = ANY($1)');
SELECT housing_cache.register_query('bad.2', 'SELECT json_build_object(''items'', ''[]''::json)', '{}',
    '{public.books}', fragment_sql => 'SELECT to_json(title) FROM public.books WHERE isbn = ANY($1)',
    fragment_tags => '{public.books/isbn=$1}');
SELECT housing_cache.register_query('bad.3', 'SELECT json_build_object(''items'', ''[]''::json)', '{}',
    '{public.books}', fragment_sql => 'SELECT isbn, title FROM public.books WHERE isbn = ANY($1)',
    fragment_tags => '{public.books/isbn=$1}');
SELECT housing_cache.register_query('bad.4', 'SELECT json_build_object(''items'', ''[]''::json)', '{}',
    '{public.books}', fragment_sql => 'SELECT isbn, to_json(title) FROM public.books WHERE isbn = ANY($1)',
    fragment_tags => '{public.books}');
SELECT housing_cache.register_query('bad.5', 'SELECT json_build_object(''items'', ''[]''::json)', '{}',
    '{public.books}', fragment_sql => 'SELECT isbn, to_json(title) FROM public.books WHERE isbn = ANY($1)',
    fragment_tags => '{public.books/isbn=$1}', fragments_key => '');
SELECT housing_cache.register_query('bad.6', 'SELECT json_build_object(''items'', ''[]''::json)', '{}',
    '{public.books}', fragment_tags => '{public.books/isbn=$1}');
SELECT housing_cache.register_query('odd.1', $q$SELECT json_build_object('books', 7)$q$, '{}',
    '{public.books}', fragment_sql => 'SELECT isbn, to_json(title) FROM public.books WHERE isbn = ANY($1)',
    fragment_tags => '{public.books/isbn=$1}', fragments_key => 'books');
SELECT housing_cache.fetch('odd.1');
SELECT housing_cache.register_query('odd.2', $q$SELECT json_build_object('books', json_build_array('978-1', 'nope'))$q$,
    '{}', '{public.books}',
    fragment_sql => 'SELECT isbn, to_json(title) FROM public.books WHERE isbn = ANY($1)',
    fragment_tags => '{public.books/isbn=$1}', fragments_key => 'books');
SELECT housing_cache.fetch('odd.2');
SELECT housing_cache.unregister_query(q) FROM unnest(ARRAY['odd.1', 'odd.2', 'books.shelf']) q;
SELECT housing_cache.unwatch_table('public.books');
DROP TABLE public.books;

-- 10. Column-aware tags on a query of one's own: what it reads, nothing more.
SELECT count(*) > 0 AS stats_counted FROM housing_cache.stats WHERE fragment_hits > 0 AND fragment_fills > 0;

-- 11. Optional filters on queries of one's own: a NULL parameter's filter
-- reads no column, in a subquery, a CTE or a sublink; through a JOIN every
-- column of the joined tables counts (a miss, never a stale answer).
CREATE TABLE public.books2 (isbn text PRIMARY KEY, shelf text NOT NULL, title text NOT NULL,
                            pages int NOT NULL);
INSERT INTO public.books2 VALUES ('1', 'A', 'One', 100), ('2', 'A', 'Two', 200);
SELECT housing_cache.watch_table('public.books2', 'shelf');
SELECT housing_cache.register_query('b2.sub',
    $q$SELECT json_agg(isbn ORDER BY isbn)
         FROM (SELECT isbn FROM public.books2 WHERE shelf = $1 AND ($2 IS NULL OR pages >= $2)) s$q$,
    '{text,int}', '{public.books2/shelf=$1}');
SELECT housing_cache.register_query('b2.cte',
    $q$WITH c AS (SELECT isbn FROM public.books2 WHERE shelf = $1 AND ($2 IS NULL OR pages >= $2))
       SELECT json_build_object('n', (SELECT count(*) FROM c),
              'big', EXISTS (SELECT 1 FROM public.books2 b WHERE b.shelf = $1 AND ($2 IS NULL OR b.pages > 2 * $2)))$q$,
    '{text,int}', '{public.books2/shelf=$1}');
SELECT housing_cache.register_query('b2.join',
    $q$SELECT json_agg(a.isbn ORDER BY a.isbn)
         FROM public.books2 a JOIN public.books2 b USING (isbn)
        WHERE a.shelf = $1 AND ($2 IS NULL OR a.pages >= $2)$q$,
    '{text,int}', '{public.books2/shelf=$1}');
SELECT q, housing_cache.fetch(q, 'A', NULL) FROM unnest(ARRAY['b2.sub', 'b2.cte', 'b2.join']) q;
SELECT housing_cache.fetch('b2.sub', 'A', '150'), housing_cache.fetch('b2.cte', 'A', '150');
UPDATE public.books2 SET pages = 300 WHERE isbn = '1';
SELECT housing_cache.fetch('b2.sub', 'A', NULL), (served()).tier;
SELECT housing_cache.fetch('b2.cte', 'A', NULL), (served()).tier;
SELECT housing_cache.fetch('b2.join', 'A', NULL), (served()).tier;
SELECT housing_cache.fetch('b2.sub', 'A', '150'), (served()).tier;
SELECT housing_cache.fetch('b2.cte', 'A', '150'), (served()).tier;
UPDATE public.books2 SET shelf = 'B' WHERE isbn = '2';
SELECT housing_cache.fetch('b2.sub', 'A', NULL), (served()).tier;
SELECT housing_cache.fetch('b2.cte', 'A', NULL), (served()).tier;
SELECT housing_cache.unregister_query(q) FROM unnest(ARRAY['b2.sub', 'b2.cte', 'b2.join']) q;
SELECT housing_cache.unwatch_table('public.books2');
DROP TABLE public.books2;

DELETE FROM housing.listings WHERE id BETWEEN 5001 AND 5007;
DROP FUNCTION same(text, bigint, bigint, int, text, int, int);
DROP FUNCTION whole(text, bigint, bigint, int, text, int, int);
DROP FUNCTION served();
