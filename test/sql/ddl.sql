--
-- ddl: invalidation follows the shape of a watched table.  Partitions and
-- inheritance children get the triggers (TRUNCATE triggers on each table),
-- and DDL that changes what a query reads without writing a row (ATTACH and
-- DETACH PARTITION, a new partition or child, DROP TABLE, ADD and DROP
-- COLUMN) invalidates the table.  Every answer is read once before the
-- change, so that it may be cached, and checked after it.
--
SET timezone = 'UTC';

--
-- a partitioned table
--
CREATE TABLE public.offers (
    id      integer NOT NULL,
    region  text    NOT NULL,
    amount  integer NOT NULL
) PARTITION BY LIST (region);
CREATE TABLE public.offers_north PARTITION OF public.offers FOR VALUES IN ('north');
CREATE TABLE public.offers_south PARTITION OF public.offers FOR VALUES IN ('south');
INSERT INTO public.offers VALUES
    (1, 'north', 100), (2, 'north', 200), (3, 'south', 300), (4, 'south', 400);
SELECT housing_cache.watch_table('public.offers', 'region');
SELECT relid, table_tag, partition_column, id_column
  FROM housing_cache.watched_tables WHERE relid = 'public.offers'::regclass;
-- the row trigger is cloned to the partitions; each has a TRUNCATE trigger
SELECT tgrelid::regclass AS rel, tgname, tgenabled, tgparentid <> 0 AS cloned
  FROM pg_trigger
 WHERE tgrelid IN ('public.offers'::regclass, 'public.offers_north'::regclass,
                   'public.offers_south'::regclass)
 ORDER BY tgrelid::regclass::text, tgname;

SELECT housing_cache.register_query('ddl.offers',
    $$SELECT json_build_object('n', count(*), 'ids', json_agg(o.id ORDER BY o.id),
                               'sum', sum(o.amount))
        FROM public.offers o$$,
    tags => '{public.offers}');
SELECT housing_cache.register_query('ddl.region',
    $$SELECT json_build_object('region', $1, 'ids', json_agg(o.id ORDER BY o.id))
        FROM public.offers o WHERE o.region = $1$$,
    '{text}', '{public.offers/region=$1}');
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'north');
SELECT housing_cache.fetch('ddl.region', 'south');

-- writes through the parent and to a partition directly
INSERT INTO public.offers VALUES (5, 'north', 500);
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'north');
UPDATE public.offers_south SET amount = amount + 1 WHERE id = 3;
SELECT housing_cache.fetch('ddl.offers');
-- a row moving to another partition
UPDATE public.offers SET region = 'south' WHERE id = 5;
SELECT housing_cache.fetch('ddl.region', 'north');
SELECT housing_cache.fetch('ddl.region', 'south');

-- TRUNCATE of one partition
TRUNCATE public.offers_north;
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'north');
SELECT housing_cache.fetch('ddl.region', 'south');
INSERT INTO public.offers_north VALUES (1, 'north', 100), (2, 'north', 200);
SELECT housing_cache.fetch('ddl.offers');

-- a replica's writes to a partition
SET session_replication_role = replica;
INSERT INTO public.offers_north VALUES (6, 'north', 600);
RESET session_replication_role;
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'north');
SET session_replication_role = replica;
TRUNCATE public.offers_north;
RESET session_replication_role;
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'north');
INSERT INTO public.offers_north VALUES (1, 'north', 100), (2, 'north', 200);

-- DETACH PARTITION: its rows leave the table
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'south');
ALTER TABLE public.offers DETACH PARTITION public.offers_south;
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'south');
-- detached, it is a table of its own: its row trigger is gone
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'public.offers_south'::regclass AND tgname = 'housing_cache_invalidate';
INSERT INTO public.offers_south VALUES (7, 'south', 700);

-- ATTACH PARTITION: its rows join the table, and it gets the triggers
ALTER TABLE public.offers ATTACH PARTITION public.offers_south FOR VALUES IN ('south');
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'south');
SELECT tgname, tgenabled, tgparentid <> 0 AS cloned FROM pg_trigger
 WHERE tgrelid = 'public.offers_south'::regclass ORDER BY tgname;
DELETE FROM public.offers_south WHERE id = 7;
SELECT housing_cache.fetch('ddl.region', 'south');
TRUNCATE public.offers_south;
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'south');
-- a table attached with rows of its own
CREATE TABLE public.offers_east (LIKE public.offers);
INSERT INTO public.offers_east VALUES (8, 'east', 800), (9, 'east', 900);
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'east');
ALTER TABLE public.offers ATTACH PARTITION public.offers_east FOR VALUES IN ('east');
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'east');

-- a new partition gets the triggers: its rows and its TRUNCATE count
CREATE TABLE public.offers_west PARTITION OF public.offers FOR VALUES IN ('west');
SELECT tgname, tgenabled, tgparentid <> 0 AS cloned FROM pg_trigger
 WHERE tgrelid = 'public.offers_west'::regclass ORDER BY tgname;
SELECT housing_cache.fetch('ddl.region', 'west');
INSERT INTO public.offers_west VALUES (10, 'west', 1000);
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'west');
TRUNCATE public.offers_west;
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'west');
INSERT INTO public.offers_west VALUES (11, 'west', 1100);
SELECT housing_cache.fetch('ddl.offers');
-- a new partition that is itself partitioned, and its own partition
CREATE TABLE public.offers_central PARTITION OF public.offers FOR VALUES IN ('central')
    PARTITION BY RANGE (amount);
CREATE TABLE public.offers_central_low PARTITION OF public.offers_central
    FOR VALUES FROM (0) TO (1000);
SELECT tgrelid::regclass AS rel, tgname, tgenabled, tgparentid <> 0 AS cloned
  FROM pg_trigger
 WHERE tgrelid IN ('public.offers_central'::regclass, 'public.offers_central_low'::regclass)
 ORDER BY tgrelid::regclass::text, tgname;
INSERT INTO public.offers VALUES (12, 'central', 120);
SELECT housing_cache.fetch('ddl.offers');
TRUNCATE public.offers_central_low;
SELECT housing_cache.fetch('ddl.offers');

-- DROP of a partition
SELECT housing_cache.fetch('ddl.region', 'west');
DROP TABLE public.offers_west;
SELECT housing_cache.fetch('ddl.offers');
SELECT housing_cache.fetch('ddl.region', 'west');
DROP TABLE public.offers_central;
SELECT housing_cache.fetch('ddl.offers');

--
-- inheritance
--
CREATE TABLE public.branches (
    id    integer PRIMARY KEY,
    city  text    NOT NULL,
    staff integer NOT NULL
);
INSERT INTO public.branches VALUES (1, 'Boston', 5), (2, 'Denver', 3);
SELECT housing_cache.watch_table('public.branches', 'city');
SELECT housing_cache.register_query('ddl.branches',
    $$SELECT json_build_object('n', count(*), 'ids', json_agg(b.id ORDER BY b.id),
                               'staff', sum(b.staff))
        FROM public.branches b$$,
    tags => '{public.branches}');
SELECT housing_cache.register_query('ddl.branches_in',
    $$SELECT json_build_object('city', $1, 'ids', json_agg(b.id ORDER BY b.id))
        FROM public.branches b WHERE b.city = $1$$,
    '{text}', '{public.branches/city=$1}');
SELECT housing_cache.fetch('ddl.branches');
SELECT housing_cache.fetch('ddl.branches_in', 'Boston');
-- a new child gets both triggers, and its rows are the parent's
CREATE TABLE public.kiosks (opened date) INHERITS (public.branches);
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'public.kiosks'::regclass ORDER BY tgname;
INSERT INTO public.kiosks VALUES (3, 'Boston', 1, '2026-01-01');
SELECT housing_cache.fetch('ddl.branches');
SELECT housing_cache.fetch('ddl.branches_in', 'Boston');
UPDATE public.kiosks SET staff = 2 WHERE id = 3;
SELECT housing_cache.fetch('ddl.branches');
UPDATE public.kiosks SET city = 'Denver' WHERE id = 3;
SELECT housing_cache.fetch('ddl.branches_in', 'Boston');
SELECT housing_cache.fetch('ddl.branches_in', 'Denver');
SET session_replication_role = replica;
INSERT INTO public.kiosks VALUES (4, 'Denver', 1, '2026-02-01');
RESET session_replication_role;
SELECT housing_cache.fetch('ddl.branches_in', 'Denver');
TRUNCATE public.kiosks;
SELECT housing_cache.fetch('ddl.branches');
SELECT housing_cache.fetch('ddl.branches_in', 'Denver');
-- an existing table with rows becomes a child
CREATE TABLE public.outlets (id integer NOT NULL, city text NOT NULL, staff integer NOT NULL);
INSERT INTO public.outlets VALUES (5, 'Boston', 7);
SELECT housing_cache.fetch('ddl.branches');
ALTER TABLE public.outlets INHERIT public.branches;
SELECT housing_cache.fetch('ddl.branches');
SELECT housing_cache.fetch('ddl.branches_in', 'Boston');
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'public.outlets'::regclass ORDER BY tgname;
DELETE FROM public.outlets WHERE id = 5;
SELECT housing_cache.fetch('ddl.branches_in', 'Boston');
-- DROP of a child
INSERT INTO public.kiosks VALUES (6, 'Boston', 1, '2026-03-01');
SELECT housing_cache.fetch('ddl.branches');
DROP TABLE public.kiosks;
SELECT housing_cache.fetch('ddl.branches');

--
-- columns
--
-- answers of row_to_json() follow ADD, DROP and RENAME COLUMN
SELECT housing_cache.register_query('ddl.branch',
    $$SELECT row_to_json(b) FROM public.branches b WHERE b.id = $1$$,
    '{integer}', '{public.branches/id=$1}');
SELECT housing_cache.fetch('ddl.branch', '1');
ALTER TABLE public.branches ADD COLUMN phone text NOT NULL DEFAULT 'none';
SELECT housing_cache.fetch('ddl.branch', '1');
SELECT housing_cache.fetch('ddl.branches');
ALTER TABLE public.branches RENAME COLUMN phone TO telephone;
SELECT housing_cache.fetch('ddl.branch', '1');
ALTER TABLE public.branches DROP COLUMN telephone;
SELECT housing_cache.fetch('ddl.branch', '1');
-- a new column type rewrites every value without firing a row trigger
ALTER TABLE public.branches ALTER COLUMN staff TYPE numeric USING staff * 1.5;
SELECT housing_cache.fetch('ddl.branch', '1');
SELECT housing_cache.fetch('ddl.branches');
-- the same on a partitioned table
SELECT housing_cache.register_query('ddl.offer',
    $$SELECT row_to_json(o) FROM public.offers o WHERE o.region = $1 AND o.id = 1$$,
    '{text}', '{public.offers/region=$1}');
SELECT housing_cache.fetch('ddl.offer', 'north');
ALTER TABLE public.offers ADD COLUMN currency text NOT NULL DEFAULT 'USD';
SELECT housing_cache.fetch('ddl.offer', 'north');
ALTER TABLE public.offers DROP COLUMN currency;
SELECT housing_cache.fetch('ddl.offer', 'north');

--
-- DROP TABLE of a watched table
--
CREATE TABLE public.scratch (id integer PRIMARY KEY);
SELECT housing_cache.watch_table('public.scratch');
SELECT table_tag FROM housing_cache.watched_tables ORDER BY table_tag;
DROP TABLE public.scratch;
SELECT table_tag FROM housing_cache.watched_tables ORDER BY table_tag;
-- temporary tables are not watched and dropping them changes nothing
CREATE TEMP TABLE scratch_temp (id integer);
DROP TABLE scratch_temp;
SELECT table_tag FROM housing_cache.watched_tables ORDER BY table_tag;

--
-- clean up
--
SELECT housing_cache.unregister_query(q)
  FROM unnest(ARRAY['ddl.offers', 'ddl.region', 'ddl.offer', 'ddl.branches',
                    'ddl.branches_in', 'ddl.branch']) AS q;
SELECT housing_cache.unwatch_table('public.offers');
SELECT housing_cache.unwatch_table('public.branches');
SELECT count(*) AS triggers FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relname LIKE 'offers%' OR c.relname IN ('branches', 'outlets');
DROP TABLE public.offers;
DROP TABLE public.outlets;
DROP TABLE public.branches;
SELECT table_tag FROM housing_cache.watched_tables ORDER BY table_tag;
