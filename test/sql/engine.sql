--
-- engine: register_query on a table of one's own, fetch by name with
-- parameters, registration errors, unregister_query, watch_table and
-- unwatch_table.
--
SET timezone = 'UTC';

CREATE TABLE public.agents (
    id      integer PRIMARY KEY,
    name    text    NOT NULL,
    region  text    NOT NULL,
    deals   integer NOT NULL
);
-- agents 41 to 49, in three regions
INSERT INTO public.agents
SELECT i, 'Agent ' || i, (ARRAY['north', 'south', 'east'])[1 + i % 3], i - 40
  FROM generate_series(41, 49) AS g(i);

-- an unwatched table cannot be tagged
SELECT housing_cache.register_query('agents.by_id',
    $$SELECT row_to_json(a) FROM public.agents a WHERE a.id = $1$$,
    '{integer}', '{public.agents/id=$1}');

--
-- watch_table
--
-- (the first watch drops triggers that do not exist yet: no notices)
SET client_min_messages = warning;
SELECT housing_cache.watch_table('public.agents', 'region');
RESET client_min_messages;
SELECT relid, table_tag, partition_column, id_column
  FROM housing_cache.watched_tables ORDER BY table_tag;
SELECT tgname, tgenabled, pg_get_triggerdef(oid) AS definition
  FROM pg_trigger WHERE tgrelid = 'public.agents'::regclass ORDER BY tgname;
-- watching again replaces the settings
SELECT housing_cache.watch_table('public.agents');
SELECT table_tag, partition_column, id_column FROM housing_cache.watched_tables
 WHERE relid = 'public.agents'::regclass;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'public.agents'::regclass;
SELECT housing_cache.watch_table('public.agents', 'region');
-- not a table, no such column, no such table, NULL
CREATE VIEW public.agents_view AS SELECT * FROM public.agents;
SELECT housing_cache.watch_table('public.agents_view');
SELECT housing_cache.watch_table('public.agents', 'nope');
SELECT housing_cache.watch_table('public.no_such_table');
SELECT housing_cache.watch_table(NULL);

--
-- register_query and fetch
--
-- by key: the parameter has the type of the key column
SELECT housing_cache.register_query('agents.by_id',
    $$SELECT row_to_json(a) FROM public.agents a WHERE a.id = $1$$,
    '{integer}', '{public.agents/id=$1}');
-- by partition, with a TTL of its own, answering jsonb
SELECT housing_cache.register_query('agents.by_region',
    $$SELECT jsonb_build_object('region', $1::text, 'count', count(*), 'deals', sum(deals),
                                'ids', jsonb_agg(id ORDER BY id))
        FROM public.agents WHERE region = $1$$,
    '{text}', '{public.agents/region=$1}', ttl_seconds => 60);
-- a table tag, no parameters
SELECT housing_cache.register_query('agents.total',
    $$SELECT json_build_object('agents', count(*), 'deals', sum(deals)) FROM public.agents$$,
    tags => '{public.agents}');
-- two tables, two tags; parameters of other types
SELECT housing_cache.register_query('agents.vs_listings',
    $$SELECT json_build_object('agents', (SELECT count(*) FROM public.agents WHERE deals >= $1),
                               'listings', (SELECT count(*) FROM housing.listings
                                             WHERE city = $2 AND status = 'active'))$$,
    '{integer,text}', '{public.agents,housing.listings/city=$2}');
SELECT name, sql IS NOT NULL AS has_sql, param_types, tags, ttl_seconds, vary_by_role, fetchable,
       owner::text = current_user AS mine, extension
  FROM housing_cache.queries WHERE fetchable ORDER BY name;
-- while queries are registered on a table, how its writes are tagged
-- cannot change: their tags would no longer match
SELECT housing_cache.watch_table('public.agents');
SELECT housing_cache.watch_table('public.agents', 'name');
-- watching it again the same way is fine
SELECT housing_cache.watch_table('public.agents', 'region');
SELECT table_tag, partition_column, id_column FROM housing_cache.watched_tables
 WHERE relid = 'public.agents'::regclass;

SELECT housing_cache.fetch('agents.by_id', '44');
-- parameters are converted with the declared type's input function:
-- '042', '42' and ' +42 ' are the same integer, hence the same answer
SELECT housing_cache.fetch('agents.by_id', '042');
SELECT housing_cache.fetch('agents.by_id', '42');
SELECT housing_cache.fetch('agents.by_id', '042')::text
     = housing_cache.fetch('agents.by_id', '42')::text AS same,
       housing_cache.fetch('agents.by_id', ' +42 ')::text
     = housing_cache.fetch('agents.by_id', '42')::text AS same_too;
-- no such agent
SELECT housing_cache.fetch('agents.by_id', '7') IS NULL AS absent;
SELECT housing_cache.fetch('agents.by_region', 'north');
SELECT housing_cache.fetch('agents.by_region', 'south');
SELECT housing_cache.fetch('agents.by_region', 'east');
SELECT housing_cache.fetch('agents.by_region', 'west');
SELECT housing_cache.fetch('agents.total');
SELECT housing_cache.fetch('agents.vs_listings', '5', 'Boston');
SELECT housing_cache.fetch('agents.vs_listings', VARIADIC ARRAY['5', 'Denver']);
-- a NULL parameter is passed as NULL
SELECT housing_cache.fetch('agents.by_region', NULL);
SELECT housing_cache.fetch('agents.vs_listings', NULL, 'Seattle');
-- the built-in queries are not fetched directly: their functions check
-- the arguments first
SELECT housing_cache.fetch('housing.listing', '2');
SELECT housing_cache.fetch('housing.city_stats', 'Denver');
SELECT housing_cache.fetch('housing.search_newest', NULL, NULL, NULL, NULL, '1', '20');

-- fetch sees committed changes to the watched table: agent 44 is in the
-- east
UPDATE public.agents SET deals = deals + 100 WHERE id = 44;
SELECT housing_cache.fetch('agents.by_id', '44');
SELECT housing_cache.fetch('agents.by_region', 'east');
SELECT housing_cache.fetch('agents.by_region', 'north');
SELECT housing_cache.fetch('agents.total');
INSERT INTO public.agents VALUES (50, 'Agent 50', 'west', 5);
SELECT housing_cache.fetch('agents.by_region', 'west');
SELECT housing_cache.fetch('agents.by_id', '50');
-- a row moving between partitions changes both
UPDATE public.agents SET region = 'north' WHERE id = 50;
SELECT housing_cache.fetch('agents.by_region', 'west');
SELECT housing_cache.fetch('agents.by_region', 'north') -> 'ids' AS north_ids;
DELETE FROM public.agents WHERE id = 50;
SELECT housing_cache.fetch('agents.by_region', 'north') -> 'ids' AS north_ids;
SELECT housing_cache.fetch('agents.by_id', '50') IS NULL AS deleted;
SELECT housing_cache.fetch('agents.total');

-- re-registering replaces the definition, and its answers
SELECT housing_cache.register_query('agents.total',
    $$SELECT json_build_object('agent_count', count(*)) FROM public.agents$$,
    tags => '{public.agents}');
SELECT housing_cache.fetch('agents.total');

--
-- registration errors
--
-- a table the query reads is watched but none of the tags names it
SELECT housing_cache.register_query('bad.untagged',
    $$SELECT json_build_object('n', count(*)) FROM housing.listings$$,
    tags => '{public.agents}');
-- a table the query reads is not watched at all
CREATE TABLE public.offices (id integer PRIMARY KEY, city text NOT NULL);
SELECT housing_cache.register_query('bad.unwatched',
    $$SELECT json_agg(o) FROM public.offices o$$,
    tags => '{public.agents}');
SELECT housing_cache.register_query('bad.unwatched',
    $$SELECT json_agg(o) FROM public.offices o$$,
    tags => '{public.offices}');
-- a tag on a column that is neither the partition nor the key column
-- (the primary message only: the wording of the detail may change)
\set VERBOSITY terse
SELECT housing_cache.register_query('bad.column',
    $$SELECT json_agg(a) FROM public.agents a WHERE a.name = $1$$,
    '{text}', '{public.agents/name=$1}');
SELECT housing_cache.register_query('bad.column',
    $$SELECT json_agg(a) FROM public.agents a WHERE a.name = $1$$,
    '{text}', '{public.agents/no_such_column=$1}');
\set VERBOSITY default
-- the parameter's type is not the column's
SELECT housing_cache.register_query('bad.type',
    $$SELECT row_to_json(a) FROM public.agents a WHERE a.id = $1$$,
    '{bigint}', '{public.agents/id=$1}');
SELECT housing_cache.register_query('bad.type',
    $$SELECT json_agg(a) FROM public.agents a WHERE a.region = $1$$,
    '{varchar}', '{public.agents/region=$1}');
-- a tag naming a parameter the query does not have, malformed tags
SELECT housing_cache.register_query('bad.tag',
    $$SELECT row_to_json(a) FROM public.agents a WHERE a.id = $1$$,
    '{integer}', '{public.agents/id=$2}');
SELECT housing_cache.register_query('bad.tag',
    $$SELECT row_to_json(a) FROM public.agents a WHERE a.id = $1$$,
    '{integer}', '{public.agents/id=$x}');
SELECT housing_cache.register_query('bad.tag',
    $$SELECT row_to_json(a) FROM public.agents a WHERE a.id = $1$$,
    '{integer}', '{public.agents/id}');
SELECT housing_cache.register_query('bad.tag',
    $$SELECT row_to_json(a) FROM public.agents a WHERE a.id = $1$$,
    '{integer}', '{/id=$1}');
SELECT housing_cache.register_query('bad.tag',
    $$SELECT row_to_json(a) FROM public.agents a WHERE a.id = $1$$,
    '{integer}', '{""}');
SELECT housing_cache.register_query('bad.tag',
    $$SELECT row_to_json(a) FROM public.agents a WHERE a.id = $1$$,
    '{integer}', '{public.agents,NULL}');
SELECT housing_cache.register_query('bad.tag',
    $$SELECT row_to_json(a) FROM public.agents a WHERE a.id = $1$$,
    '{integer}', '{}');
-- not a SELECT
SELECT housing_cache.register_query('bad.write',
    $$UPDATE public.agents SET deals = 0 RETURNING row_to_json(agents)$$,
    tags => '{public.agents}');
SELECT housing_cache.register_query('bad.write',
    $$WITH d AS (DELETE FROM public.agents RETURNING id) SELECT json_agg(id) FROM d$$,
    tags => '{public.agents}');
SELECT housing_cache.register_query('bad.write',
    $$SELECT row_to_json(a) FROM public.agents a WHERE a.id = 41 FOR UPDATE$$,
    tags => '{public.agents}');
SELECT housing_cache.register_query('bad.write',
    $$CREATE TABLE public.x (j json)$$,
    tags => '{public.agents}');
SELECT housing_cache.register_query('bad.write',
    $$SELECT '1'::json; SELECT '2'::json$$,
    tags => '{public.agents}');
SELECT count(*) AS agents FROM public.agents;
-- not one json column
SELECT housing_cache.register_query('bad.result',
    $$SELECT row_to_json(a), a.id FROM public.agents a$$,
    tags => '{public.agents}');
SELECT housing_cache.register_query('bad.result',
    $$SELECT count(*) FROM public.agents$$,
    tags => '{public.agents}');
SELECT housing_cache.register_query('bad.result',
    $$SELECT json_agg(a)::text FROM public.agents a$$,
    tags => '{public.agents}');
-- more than one row is refused when fetched
SELECT housing_cache.register_query('bad.rows',
    $$SELECT row_to_json(a) FROM public.agents a$$,
    tags => '{public.agents}');
SELECT housing_cache.fetch('bad.rows');
SELECT housing_cache.unregister_query('bad.rows');
-- SQL that does not parse, or refers to a parameter not declared
SELECT housing_cache.register_query('bad.sql', 'SELEKT 1', tags => '{public.agents}');
SELECT housing_cache.register_query('bad.sql',
    $$SELECT row_to_json(a) FROM public.agents a WHERE a.id = $2$$,
    '{integer}', '{public.agents/id=$1}');
SELECT housing_cache.register_query('bad.sql', '  ', tags => '{public.agents}');
SELECT housing_cache.register_query('bad.sql', NULL, tags => '{public.agents}');
-- a built-in query cannot be replaced
SELECT housing_cache.register_query('housing.listing',
    $$SELECT row_to_json(a) FROM public.agents a WHERE a.id = $1$$,
    '{integer}', '{public.agents/id=$1}');
SELECT sql LIKE '%housing.listings%' AS unchanged FROM housing_cache.queries
 WHERE name = 'housing.listing';
-- bad names
SELECT housing_cache.register_query('',
    $$SELECT json_agg(a) FROM public.agents a$$, tags => '{public.agents}');
SELECT housing_cache.register_query('agents by id',
    $$SELECT json_agg(a) FROM public.agents a$$, tags => '{public.agents}');
SELECT housing_cache.register_query('agents;drop',
    $$SELECT json_agg(a) FROM public.agents a$$, tags => '{public.agents}');
SELECT housing_cache.register_query(repeat('n', 64),
    $$SELECT json_agg(a) FROM public.agents a$$, tags => '{public.agents}');
SELECT housing_cache.register_query(NULL,
    $$SELECT json_agg(a) FROM public.agents a$$, tags => '{public.agents}');
-- names of 63 characters and of every allowed character are fine
SELECT housing_cache.register_query(repeat('n', 63),
    $$SELECT json_build_object('n', count(*)) FROM public.agents$$, tags => '{public.agents}');
SELECT housing_cache.fetch(repeat('n', 63));
SELECT housing_cache.unregister_query(repeat('n', 63));
SELECT housing_cache.register_query('Agents_2.by-region:v1',
    $$SELECT json_build_object('n', count(*)) FROM public.agents WHERE region = $1$$,
    '{text}', '{public.agents/region=$1}');
SELECT housing_cache.fetch('Agents_2.by-region:v1', 'east');
-- TTL out of range
SELECT housing_cache.register_query('bad.ttl',
    $$SELECT json_agg(a) FROM public.agents a$$, tags => '{public.agents}', ttl_seconds => 0);
SELECT housing_cache.register_query('bad.ttl',
    $$SELECT json_agg(a) FROM public.agents a$$, tags => '{public.agents}',
    ttl_seconds => 2592001);
-- none of the failed registrations was stored
SELECT name FROM housing_cache.queries WHERE fetchable ORDER BY name;

--
-- an answer is never served to a role that may not see it
--
CREATE ROLE regress_hc_agent;
SELECT housing_cache.fetch('agents.by_region', 'north') -> 'ids' AS north_ids;
SET ROLE regress_hc_agent;
-- no SELECT privilege on the table: the query runs, and fails
SELECT housing_cache.fetch('agents.by_region', 'north');
SELECT housing_cache.fetch('agents.total');
RESET ROLE;
GRANT SELECT ON public.agents TO regress_hc_agent;
-- row level security in force: the role's own answer, never a cached one
ALTER TABLE public.agents ENABLE ROW LEVEL SECURITY;
CREATE POLICY agents_even ON public.agents FOR SELECT TO regress_hc_agent
    USING (id % 2 = 0);
SET ROLE regress_hc_agent;
SELECT housing_cache.fetch('agents.by_region', 'north') -> 'ids' AS north_ids;
SELECT tier, bypass_reason FROM housing_cache.last_lookup();
SELECT housing_cache.fetch('agents.total');
RESET ROLE;
SELECT housing_cache.fetch('agents.by_region', 'north') -> 'ids' AS north_ids;
SELECT housing_cache.fetch('agents.total');
DROP POLICY agents_even ON public.agents;
ALTER TABLE public.agents DISABLE ROW LEVEL SECURITY;
-- vary_by_role: every role has answers of its own
SELECT housing_cache.register_query('agents.whoami',
    $$SELECT json_build_object('user', current_user, 'agents', count(*)) FROM public.agents$$,
    tags => '{public.agents}', vary_by_role => true);
SELECT housing_cache.fetch('agents.whoami') ->> 'user' = current_user AS own_answer;
SET ROLE regress_hc_agent;
SELECT housing_cache.fetch('agents.whoami');
SELECT housing_cache.fetch('agents.whoami');
RESET ROLE;
SELECT housing_cache.fetch('agents.whoami') ->> 'user' = current_user AS own_answer;
SELECT housing_cache.unregister_query('agents.whoami');
REVOKE SELECT ON public.agents FROM regress_hc_agent;
DROP ROLE regress_hc_agent;

--
-- unregister_query and unwatch_table
--
-- a table used by registered queries cannot be unwatched
SELECT housing_cache.unwatch_table('public.agents');
SELECT housing_cache.unwatch_table('housing.listings');
SELECT housing_cache.unwatch_table('public.offices');
SELECT housing_cache.unregister_query('agents.by_id');
SELECT housing_cache.unregister_query('agents.by_id');
SELECT housing_cache.unregister_query('no.such.query');
SELECT housing_cache.unregister_query(NULL);
SELECT housing_cache.fetch('agents.by_id', '44');
SELECT housing_cache.unwatch_table('public.agents');
SELECT housing_cache.unregister_query('agents.by_region');
SELECT housing_cache.unregister_query('agents.total');
SELECT housing_cache.unregister_query('Agents_2.by-region:v1');
-- still used by agents.vs_listings (as is housing.listings)
SELECT housing_cache.unwatch_table('public.agents');
SELECT housing_cache.unregister_query('agents.vs_listings');
SELECT housing_cache.unwatch_table('public.agents');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'public.agents'::regclass;
SELECT table_tag FROM housing_cache.watched_tables ORDER BY table_tag;
SELECT housing_cache.unwatch_table('public.agents');
-- built-in queries cannot be unregistered
SELECT housing_cache.unregister_query('housing.listing');
SELECT name FROM housing_cache.queries ORDER BY name;

DROP VIEW public.agents_view;
-- a watched table that is dropped is no longer watched
SELECT housing_cache.watch_table('public.offices');
SELECT table_tag FROM housing_cache.watched_tables ORDER BY table_tag;
DROP TABLE public.offices;
SELECT table_tag FROM housing_cache.watched_tables ORDER BY table_tag;
DROP TABLE public.agents;
