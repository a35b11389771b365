--
-- invalidation: a committed write is visible to the next call, in this
-- session, whatever was cached before; a rolled-back one changes nothing.
-- Every answer is read once before the change (so that it may be cached)
-- and checked after it: correctness must not depend on Redis.
--
SET timezone = 'UTC';

-- the data set of setup, restored at the end for the tests that follow
CREATE TEMP TABLE saved_listings AS SELECT * FROM housing.listings;

--
-- UPDATE, INSERT, DELETE
--
SELECT housing_cache.get_listing(5) ->> 'price_cents' AS price_5;
SELECT item_ids(housing_cache.search_listings('Boston', sort => 'price_asc')) AS boston;
SELECT housing_cache.city_stats('Boston') ->> 'avg_price_cents' AS boston_avg;
SELECT item_ids(housing_cache.search_listings(sort => 'price_asc', page_size => 5)) AS cheapest;
SELECT item_ids(housing_cache.search_listings('Denver', sort => 'price_asc')) AS denver;

UPDATE housing.listings SET price_cents = 900000 WHERE id = 5;
SELECT housing_cache.get_listing(5) ->> 'price_cents' AS price_5;
SELECT item_ids(housing_cache.search_listings('Boston', sort => 'price_asc')) AS boston;
SELECT housing_cache.city_stats('Boston') ->> 'avg_price_cents' AS boston_avg;
SELECT item_ids(housing_cache.search_listings(sort => 'price_asc', page_size => 5)) AS cheapest;
SELECT item_ids(housing_cache.search_listings('Denver', sort => 'price_asc')) AS denver;

-- a listing moving from Boston to Denver leaves one and joins the other
UPDATE housing.listings SET city = 'Denver' WHERE id = 5;
SELECT item_ids(housing_cache.search_listings('Boston', sort => 'price_asc')) AS boston;
SELECT item_ids(housing_cache.search_listings('Denver', sort => 'price_asc')) AS denver;
SELECT c AS city, (housing_cache.city_stats(c) ->> 'active_count') AS active
  FROM unnest(ARRAY['Boston', 'Denver']) AS c ORDER BY c;

-- a listing that is no longer active leaves the searches, not get_listing
UPDATE housing.listings SET status = 'sold' WHERE id = 6;
SELECT item_ids(housing_cache.search_listings('Boston', sort => 'price_asc')) AS boston;
SELECT housing_cache.get_listing(6) ->> 'status' AS status_6;
SELECT housing_cache.city_stats('Boston') -> 'active_count' AS boston_active;

-- a new listing
SELECT housing_cache.get_listing(31) IS NULL AS absent_31;
INSERT INTO housing.listings
    (title, city, neighborhood, price_cents, bedrooms, bathrooms, area_sqm,
     lat, lon, created_at, updated_at)
VALUES ('Listing 31', 'Boston', 'North End', 500000, 4, 2.5, 150,
        42.36, -71.06, '2026-02-01 00:00:00+00', '2026-02-01 00:00:00+00')
RETURNING id;
SELECT housing_cache.get_listing(31) ->> 'title' AS title_31;
SELECT item_ids(housing_cache.search_listings('Boston', sort => 'price_asc')) AS boston;
SELECT item_ids(housing_cache.search_listings(page_size => 3)) AS newest;
SELECT housing_cache.search_listings(min_bedrooms => 4) -> 'total' AS four_bedrooms;

-- and gone again
DELETE FROM housing.listings WHERE id = 31;
SELECT housing_cache.get_listing(31) IS NULL AS absent_31;
SELECT item_ids(housing_cache.search_listings(page_size => 3)) AS newest;
SELECT housing_cache.search_listings(min_bedrooms => 4) -> 'total' AS four_bedrooms;

--
-- transactions
--
-- a transaction reads its own writes, bypassing the cache
BEGIN;
SELECT housing_cache.get_listing(1) ->> 'price_cents' AS price_1;
UPDATE housing.listings SET price_cents = 100 WHERE id = 1;
SELECT housing_cache.get_listing(1) ->> 'price_cents' AS price_1;
SELECT tier, bypass_reason FROM housing_cache.last_lookup();
SELECT item_ids(housing_cache.search_listings('Boston', sort => 'price_asc', page_size => 2)) AS boston;
SELECT tier, bypass_reason FROM housing_cache.last_lookup();
ROLLBACK;
-- rolled back: nothing changed
SELECT housing_cache.get_listing(1) ->> 'price_cents' AS price_1;
SELECT item_ids(housing_cache.search_listings('Boston', sort => 'price_asc', page_size => 2)) AS boston;

-- the same after an INSERT
BEGIN;
INSERT INTO housing.listings
    (title, city, neighborhood, price_cents, bedrooms, bathrooms, area_sqm,
     lat, lon, created_at, updated_at)
VALUES ('Listing 32', 'Austin', 'West End', 100, 1, 1, 50,
        30.27, -97.74, '2026-02-01 00:00:00+00', '2026-02-01 00:00:00+00');
SELECT item_ids(housing_cache.search_listings('Austin', sort => 'price_asc', page_size => 2)) AS austin;
SELECT tier, bypass_reason FROM housing_cache.last_lookup();
ROLLBACK;
SELECT item_ids(housing_cache.search_listings('Austin', sort => 'price_asc', page_size => 2)) AS austin;
SELECT count(*) AS listings FROM housing.listings;

-- a write rolled back to a savepoint is gone, the transaction still
-- bypasses the cache
BEGIN;
SAVEPOINT s;
UPDATE housing.listings SET price_cents = 100 WHERE id = 1;
ROLLBACK TO SAVEPOINT s;
SELECT housing_cache.get_listing(1) ->> 'price_cents' AS price_1;
SELECT tier, bypass_reason FROM housing_cache.last_lookup();
COMMIT;
SELECT housing_cache.get_listing(1) ->> 'price_cents' AS price_1;

-- a committed transaction with several writes
BEGIN;
UPDATE housing.listings SET price_cents = 1000000 WHERE id IN (10, 25);
UPDATE housing.listings SET title = 'Listing ten' WHERE id = 10;
COMMIT;
SELECT housing_cache.get_listing(10) ->> 'title' AS title_10;
SELECT e ->> 'id' AS id, e ->> 'title' AS title, e ->> 'price_cents' AS price_cents
  FROM json_array_elements(housing_cache.search_listings('Boston', sort => 'price_asc',
                                                         page_size => 4) -> 'items')
           WITH ORDINALITY AS t(e, n)
 ORDER BY n;

-- a write in a failed transaction is not seen
BEGIN;
UPDATE housing.listings SET price_cents = 1 WHERE id = 11;
SELECT 1 / 0;
COMMIT;
SELECT housing_cache.get_listing(11) ->> 'price_cents' AS price_11;

-- REPEATABLE READ and SERIALIZABLE transactions read their snapshot,
-- never the cache
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT housing_cache.search_listings('Seattle') -> 'total' AS seattle;
SELECT tier, bypass_reason FROM housing_cache.last_lookup();
SELECT housing_cache.get_listing(4) ->> 'price_cents' AS price_4;
SELECT tier, bypass_reason FROM housing_cache.last_lookup();
COMMIT;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT housing_cache.city_stats('Seattle') -> 'active_count' AS seattle;
SELECT tier, bypass_reason FROM housing_cache.last_lookup();
COMMIT;

--
-- TRUNCATE and COPY
--
SELECT housing_cache.search_listings(page_size => 1) -> 'total' AS total;
SELECT housing_cache.get_listing(1) ->> 'title' AS title_1;
SELECT housing_cache.city_stats('Boston') -> 'active_count' AS boston;
TRUNCATE housing.listings;
SELECT housing_cache.search_listings(page_size => 1);
SELECT housing_cache.get_listing(1) IS NULL AS absent_1;
SELECT housing_cache.city_stats('Boston');
SELECT housing_cache.search_listings('Boston', sort => 'price_desc');

COPY housing.listings (id, title, city, neighborhood, price_cents, bedrooms, bathrooms,
                       area_sqm, status, lat, lon, created_at, updated_at)
FROM stdin WITH (FORMAT csv);
101,Copied 101,Boston,Back Bay,2000000,2,1.5,80,active,42.35,-71.08,2026-03-01 00:00:00+00,2026-03-01 00:00:00+00
102,Copied 102,Boston,Back Bay,2000000,3,2,95,active,42.35,-71.07,2026-03-01 00:00:00+00,2026-03-01 00:00:00+00
103,Copied 103,Denver,LoDo,700000,1,1,55,active,39.75,-105,2026-03-02 00:00:00+00,2026-03-02 00:00:00+00
104,Copied 104,Boston,Fenway,900000,0,1,30,pending,42.34,-71.1,2026-03-03 00:00:00+00,2026-03-03 00:00:00+00
\.
SELECT housing_cache.search_listings('Boston', sort => 'price_desc');
SELECT item_ids(housing_cache.search_listings()) AS newest;
SELECT housing_cache.get_listing(1) IS NULL AS absent_1;
SELECT housing_cache.get_listing(104) ->> 'status' AS status_104;
SELECT housing_cache.city_stats('Boston');

-- COPY in a transaction that rolls back
BEGIN;
COPY housing.listings (id, title, city, neighborhood, price_cents, bedrooms, bathrooms,
                       area_sqm, lat, lon, created_at, updated_at)
FROM stdin WITH (FORMAT csv);
105,Copied 105,Boston,Back Bay,1,2,1.5,80,42.35,-71.08,2026-03-05 00:00:00+00,2026-03-05 00:00:00+00
\.
SELECT item_ids(housing_cache.search_listings()) AS newest;
ROLLBACK;
SELECT item_ids(housing_cache.search_listings()) AS newest;

-- back to the data set of setup
TRUNCATE housing.listings;
INSERT INTO housing.listings SELECT * FROM saved_listings ORDER BY id;
SELECT housing_cache.search_listings('Boston', sort => 'price_desc')::text
     = (SELECT json_build_object('total', 10, 'page', 1, 'page_size', 20, 'items', json_agg(i))::text
          FROM (SELECT id, title, city, neighborhood, price_cents, bedrooms, bathrooms,
                       area_sqm, lat, lon, created_at
                  FROM housing.listings WHERE city = 'Boston' AND status = 'active'
                 ORDER BY price_cents DESC, id DESC) i) AS restored;
SELECT item_ids(housing_cache.search_listings()) AS newest;
SELECT housing_cache.city_stats('Boston') ->> 'avg_price_cents' AS boston_avg;
SELECT housing_cache.get_listing(1) ->> 'title' AS title_1;

--
-- session_replication_role = replica
--
-- The triggers fire ALWAYS: rows written as a logical replication
-- subscriber writes them invalidate like any other.
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'housing.listings'::regclass ORDER BY tgname;
SELECT housing_cache.get_listing(2) ->> 'title' AS title_2;
SELECT e ->> 'title' AS title FROM json_array_elements(
    housing_cache.search_listings('Denver', sort => 'price_desc', page_size => 100) -> 'items') AS e
 WHERE e ->> 'id' = '2';
SELECT housing_cache.search_listings(sort => 'price_asc', page_size => 100) -> 'total' AS total;
SELECT item_ids(housing_cache.search_listings('Denver', sort => 'price_asc')) AS denver;
SELECT housing_cache.get_listing(27) ->> 'price_cents' AS price_27;
SET session_replication_role = replica;
UPDATE housing.listings SET title = 'Renamed by a replica' WHERE id = 2;
UPDATE housing.listings SET status = 'pending' WHERE id = 3;
UPDATE housing.listings SET price_cents = 100 WHERE id = 27;
RESET session_replication_role;
SELECT housing_cache.get_listing(2) ->> 'title' AS title_2;
SELECT e ->> 'title' AS title FROM json_array_elements(
    housing_cache.search_listings('Denver', sort => 'price_desc', page_size => 100) -> 'items') AS e
 WHERE e ->> 'id' = '2';
SELECT housing_cache.search_listings(sort => 'price_asc', page_size => 100) -> 'total' AS total;
SELECT item_ids(housing_cache.search_listings('Denver', sort => 'price_asc')) AS denver;
SELECT housing_cache.get_listing(27) ->> 'price_cents' AS price_27;
-- and a replica's TRUNCATE: a table of one's own, emptied and filled again
CREATE TABLE public.replicated (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO public.replicated VALUES (1, 10), (2, 20);
SELECT housing_cache.watch_table('public.replicated');
SELECT housing_cache.register_query('inv.replicated',
    $$SELECT json_build_object('n', count(*), 'sum', sum(v)) FROM public.replicated$$,
    tags => '{public.replicated}');
SELECT housing_cache.fetch('inv.replicated');
SET session_replication_role = replica;
TRUNCATE public.replicated;
RESET session_replication_role;
SELECT housing_cache.fetch('inv.replicated');
SET session_replication_role = replica;
INSERT INTO public.replicated VALUES (3, 30);
RESET session_replication_role;
SELECT housing_cache.fetch('inv.replicated');
SELECT housing_cache.unregister_query('inv.replicated');
SELECT housing_cache.unwatch_table('public.replicated');
DROP TABLE public.replicated;

--
-- a large write invalidates the whole table
--
-- past housing_cache.escalate_rows rows in one transaction, a table is
-- invalidated as a whole rather than by each row's tags
SET housing_cache.escalate_rows = 2;
SELECT housing_cache.get_listing(13) ->> 'price_cents' AS price_13,
       housing_cache.get_listing(14) ->> 'price_cents' AS price_14;
SELECT item_ids(housing_cache.search_listings('Austin', sort => 'price_desc')) AS austin;
SELECT housing_cache.city_stats('Seattle') ->> 'avg_price_cents' AS seattle_avg;
UPDATE housing.listings SET price_cents = price_cents + 5000000 WHERE id IN (3, 8, 13, 14, 18, 19);
SELECT housing_cache.get_listing(13) ->> 'price_cents' AS price_13,
       housing_cache.get_listing(14) ->> 'price_cents' AS price_14;
SELECT item_ids(housing_cache.search_listings('Austin', sort => 'price_desc')) AS austin;
SELECT housing_cache.city_stats('Seattle') ->> 'avg_price_cents' AS seattle_avg;
UPDATE housing.listings SET price_cents = price_cents - 5000000 WHERE id IN (3, 8, 13, 14, 18, 19);
SELECT housing_cache.get_listing(13) ->> 'price_cents' AS price_13,
       housing_cache.get_listing(14) ->> 'price_cents' AS price_14;
SELECT item_ids(housing_cache.search_listings('Austin', sort => 'price_desc')) AS austin;
RESET housing_cache.escalate_rows;

--
-- housing_cache.invalidate()
--
-- An answer may depend on what no trigger sees: here a label kept in a
-- table that is not watched, read by a function the queries call.  After a
-- change there, invalidate() makes it visible, by tag.
CREATE TABLE public.city_labels (city text PRIMARY KEY, label text NOT NULL);
INSERT INTO public.city_labels VALUES
    ('Austin', 'ATX'), ('Boston', 'BOS'), ('Denver', 'DEN'), ('Seattle', 'SEA');
CREATE FUNCTION public.city_label(c text) RETURNS text
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (SELECT l.label FROM public.city_labels l WHERE l.city = c);
END
$$;
SELECT housing_cache.register_query('inv.city_label',
    $$SELECT json_build_object('city', $1, 'label', public.city_label($1))$$,
    '{text}', '{housing.listings/city=$1}');
SELECT housing_cache.register_query('inv.listing_label',
    $$SELECT json_build_object('id', l.id, 'label', public.city_label(l.city))
        FROM housing.listings l WHERE l.id = $1$$,
    '{bigint}', '{housing.listings/id=$1}');
SELECT housing_cache.register_query('inv.labels',
    $$SELECT json_object_agg(c, public.city_label(c) ORDER BY c)
        FROM (SELECT DISTINCT city FROM housing.listings) s(c)$$,
    tags => '{housing.listings}');
SELECT housing_cache.fetch('inv.city_label', 'Denver');
SELECT housing_cache.fetch('inv.listing_label', '27');
SELECT housing_cache.fetch('inv.labels');
UPDATE public.city_labels SET label = 'Mile High' WHERE city = 'Denver';
-- one city
SELECT housing_cache.invalidate('housing.listings/city=Denver');
SELECT housing_cache.fetch('inv.city_label', 'Denver');
-- one listing
SELECT housing_cache.invalidate('housing.listings/id=27');
SELECT housing_cache.fetch('inv.listing_label', '27');
-- the whole table
SELECT housing_cache.invalidate('housing.listings');
SELECT housing_cache.fetch('inv.labels');
SELECT housing_cache.unregister_query('inv.city_label');
SELECT housing_cache.unregister_query('inv.listing_label');
SELECT housing_cache.unregister_query('inv.labels');
DROP FUNCTION public.city_label(text);
DROP TABLE public.city_labels;

-- after invalidate() the transaction's own reads bypass the cache
BEGIN;
SELECT housing_cache.invalidate('housing.listings');
SELECT housing_cache.get_listing(2) ->> 'title' AS title_2;
SELECT tier, bypass_reason FROM housing_cache.last_lookup();
ROLLBACK;

-- back to the data set of setup
UPDATE housing.listings SET title = 'Listing 2' WHERE id = 2;
UPDATE housing.listings SET status = 'active' WHERE id = 3;
UPDATE housing.listings SET price_cents = 1600000 WHERE id = 27;
SELECT count(*) AS changed FROM housing.listings l JOIN saved_listings s USING (id)
 WHERE row(l.*) IS DISTINCT FROM row(s.*);

-- bad tags
SELECT housing_cache.invalidate('');
SELECT housing_cache.invalidate(repeat('t', 8193));
SELECT housing_cache.invalidate(NULL) IS NULL AS strict;
-- a tag naming no watched table is accepted (it may name anything)
SELECT housing_cache.invalidate('no.such_table');

--
-- PREPARE TRANSACTION is refused once a watched table was written
--
BEGIN;
UPDATE housing.listings SET price_cents = price_cents WHERE id = 1;
PREPARE TRANSACTION 'housing_cache_regress';
SELECT count(*) AS prepared FROM pg_prepared_xacts;
BEGIN;
SELECT housing_cache.invalidate('housing.listings');
PREPARE TRANSACTION 'housing_cache_regress';
SELECT count(*) AS prepared FROM pg_prepared_xacts;
-- and the session goes on normally
SELECT housing_cache.get_listing(1) ->> 'price_cents' AS price_1;

--
-- the stats view
--
SELECT ordinal_position, column_name, data_type
  FROM information_schema.columns
 WHERE table_schema = 'housing_cache' AND table_name = 'stats'
 ORDER BY ordinal_position;
SELECT housing_cache.reset_stats();
SELECT stats_reset IS NOT NULL AS was_reset, preloaded FROM housing_cache.stats;
-- with the cache off, a call runs its query and is counted as a bypass
SET housing_cache.enabled = off;
SELECT housing_cache.get_listing(1) ->> 'id' AS id;
SELECT tier, key, bypass_reason FROM housing_cache.last_lookup();
SELECT l1_hits, l2_hits, misses, db_executions, bypasses FROM housing_cache.stats;
RESET housing_cache.enabled;
