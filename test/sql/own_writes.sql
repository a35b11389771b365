--
-- own_writes: an answer computed by a transaction that has written, or may
-- yet write in the same statement, a table the query reads is neither
-- stored nor served to anyone else.  Whatever path the read takes inside
-- the write: RETURNING, a data-modifying CTE, a trigger of the user's own,
-- a function called from the write's expressions.  After each ROLLBACK,
-- the same session reads again: a phantom stored in the cache would show.
--
SET timezone = 'UTC';

CREATE FUNCTION how() RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(bypass_reason, 'cached') FROM housing_cache.last_lookup()
$$;

-- Warm the shared answers first, so that a wrong fill would replace them.
SELECT housing_cache.get_listing(5) ->> 'title' AS title_5,
       housing_cache.get_listing(3000) IS NULL AS no_3000,
       housing_cache.search_listings('Boston', page_size => 100) -> 'total' AS boston_total;

-- 1. INSERT ... RETURNING reads the new row through the cache.
BEGIN;
INSERT INTO housing.listings (id, title, city, neighborhood, price_cents, bedrooms,
                              bathrooms, area_sqm, lat, lon)
VALUES (3000, 'PHANTOM', 'Boston', 'X', 0, 1, 1, 10, 0, 0)
RETURNING housing_cache.get_listing(id) ->> 'title' AS own_title, how();
ROLLBACK;
SELECT housing_cache.get_listing(3000) IS NULL AS no_3000, how();
SELECT count(*) AS rows_3000 FROM housing.listings WHERE id = 3000;

-- 2. A data-modifying CTE, read by the main query.
BEGIN;
WITH u AS (UPDATE housing.listings SET title = 'CTE PHANTOM' WHERE id = 5 RETURNING id)
SELECT housing_cache.get_listing(u.id) ->> 'title' AS own_title, how() FROM u;
ROLLBACK;
SELECT housing_cache.get_listing(5) ->> 'title' AS title_5, how();

-- 3. The same through a search of the row's city.
BEGIN;
WITH u AS (INSERT INTO housing.listings (id, title, city, neighborhood, price_cents,
                                         bedrooms, bathrooms, area_sqm, lat, lon)
           VALUES (3001, 'PHANTOM', 'Boston', 'X', 1, 1, 1, 10, 0, 0) RETURNING city)
SELECT housing_cache.search_listings(u.city, page_size => 100) -> 'total' AS own_total, how()
  FROM u;
ROLLBACK;
SELECT housing_cache.search_listings('Boston', page_size => 100) -> 'total' AS boston_total, how();

-- 4. A trigger of the user's own that calls a cached function.
CREATE TABLE public.seen (listing_id bigint, title text);
CREATE FUNCTION public.remember_listing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.seen VALUES (NEW.id, housing_cache.get_listing(NEW.id) ->> 'title');
    RETURN NEW;
END
$$;
CREATE TRIGGER remember AFTER INSERT OR UPDATE ON housing.listings
    FOR EACH ROW EXECUTE FUNCTION public.remember_listing();
BEGIN;
UPDATE housing.listings SET title = 'TRIGGER PHANTOM' WHERE id = 6;
SELECT * FROM public.seen;
ROLLBACK;
SELECT housing_cache.get_listing(6) ->> 'title' AS title_6, how();
DROP TRIGGER remember ON housing.listings;

-- 5. A function called from the write's own expressions, for a row the
-- same statement may have written already.
SELECT housing_cache.get_listing(3002) IS NULL AS no_3002;
BEGIN;
INSERT INTO housing.listings (id, title, city, neighborhood, price_cents, bedrooms,
                              bathrooms, area_sqm, lat, lon)
SELECT g, coalesce(housing_cache.get_listing(g - 1) ->> 'title', 'first'),
       'Denver', 'X', 1, 1, 1, 10, 0, 0
  FROM generate_series(3002, 3003) AS g
RETURNING id, title;
ROLLBACK;
SELECT housing_cache.get_listing(3002) IS NULL AS no_3002, how();

-- 6. Later in the same transaction, after the write: still bypassed.
BEGIN;
UPDATE housing.listings SET title = 'LATER PHANTOM' WHERE id = 7;
SELECT housing_cache.get_listing(7) ->> 'title' AS own_title, how();
SELECT housing_cache.search_listings('Boston') IS NOT NULL AS searched, how();
ROLLBACK;
SELECT housing_cache.get_listing(7) ->> 'title' AS title_7, how();

-- 7. Writes elsewhere do not keep the cache from this transaction: a
-- temporary table, a table no cached query reads.
BEGIN;
CREATE TEMP TABLE scratch (i int);
INSERT INTO scratch VALUES (1);
INSERT INTO public.seen VALUES (1, 'x');
SELECT housing_cache.get_listing(5) ->> 'title' AS title_5, how();
ROLLBACK;

-- 8. A lock that allows writes counts as a write, before any row changes.
BEGIN;
LOCK TABLE housing.listings IN ROW EXCLUSIVE MODE;
SELECT housing_cache.get_listing(5) IS NOT NULL AS found, how();
ROLLBACK;

-- 9. A subtransaction that wrote and rolled back leaves nothing to see;
-- its tags stay (over-invalidating only), so reads still go around.
BEGIN;
SAVEPOINT s;
UPDATE housing.listings SET title = 'SAVEPOINT PHANTOM' WHERE id = 8;
ROLLBACK TO SAVEPOINT s;
SELECT housing_cache.get_listing(8) ->> 'title' AS title_8, how();
COMMIT;

DROP TABLE public.seen;
DROP FUNCTION public.remember_listing();
