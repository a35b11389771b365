--
-- security: an answer shared by every session must not depend on one
-- session's search_path (registered queries are prepared and run with
-- search_path = pg_catalog), and must not reach a role that may not run a
-- function the query calls.
--
SET timezone = 'UTC';

CREATE TABLE public.ratings (
    id     integer PRIMARY KEY,
    city   text    NOT NULL,
    score  float8  NOT NULL
);
INSERT INTO public.ratings VALUES
    (1, 'Boston', 2.4), (2, 'Boston', 3.6), (3, 'Denver', 4.5), (4, 'Denver', 1.2);
SELECT housing_cache.watch_table('public.ratings', 'city');
-- unqualified functions and operators: they are pg_catalog's
SELECT housing_cache.register_query('sec.rating',
    $$SELECT json_build_object('id', r.id, 'rounded', round(r.score),
                               'city', upper(r.city), 'next', r.id + 1)
        FROM public.ratings r WHERE r.id = $1$$,
    '{integer}', '{public.ratings/id=$1}');
SELECT housing_cache.register_query('sec.city',
    $$SELECT json_build_object('city', $1, 'n', count(*), 'rounded', sum(round(r.score)))
        FROM public.ratings r WHERE r.city = $1$$,
    '{text}', '{public.ratings/city=$1}');

--
-- search_path
--
-- a role with a schema of its own, in which it shadows round(float8),
-- upper(text) and integer +
CREATE ROLE regress_hc_shadow;
GRANT SELECT ON public.ratings TO regress_hc_shadow;
CREATE SCHEMA regress_hc_shadow AUTHORIZATION regress_hc_shadow;
SET ROLE regress_hc_shadow;
CREATE FUNCTION regress_hc_shadow.round(float8) RETURNS float8
    LANGUAGE sql IMMUTABLE AS 'SELECT 42::float8';
CREATE FUNCTION regress_hc_shadow.upper(text) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$SELECT 'shadowed'$$;
CREATE FUNCTION regress_hc_shadow.plus(integer, integer) RETURNS integer
    LANGUAGE sql IMMUTABLE AS 'SELECT 1000';
CREATE OPERATOR regress_hc_shadow.+ (
    LEFTARG = integer, RIGHTARG = integer, FUNCTION = regress_hc_shadow.plus);
SET search_path = regress_hc_shadow, pg_catalog, public;
-- in plain SQL the shadows win
SELECT round(2.4::float8) AS rounded, upper('boston') AS city, 1 + 1 AS two;
-- not in a registered query, whether it runs it first (its answer is then
-- the one cached for everyone) ...
SELECT housing_cache.fetch('sec.rating', '1');
SELECT housing_cache.fetch('sec.city', 'Boston');
SELECT tier <> 'bypass' AS cached, bypass_reason FROM housing_cache.last_lookup();
RESET ROLE;
RESET search_path;
-- ... as others see it
SELECT housing_cache.fetch('sec.rating', '1');
SELECT housing_cache.fetch('sec.city', 'Boston');
-- or runs it after others
SELECT housing_cache.fetch('sec.rating', '3');
SELECT housing_cache.fetch('sec.city', 'Denver');
SET ROLE regress_hc_shadow;
SET search_path = regress_hc_shadow, pg_catalog, public;
SELECT housing_cache.fetch('sec.rating', '3');
SELECT housing_cache.fetch('sec.city', 'Denver');
-- a query registered now is prepared in this session first
RESET ROLE;
RESET search_path;
SELECT housing_cache.register_query('sec.rounded',
    $$SELECT json_agg(round(r.score) ORDER BY r.id) FROM public.ratings r$$,
    tags => '{public.ratings}');
SET ROLE regress_hc_shadow;
SET search_path = regress_hc_shadow, pg_catalog, public;
SELECT housing_cache.fetch('sec.rounded');
RESET ROLE;
RESET search_path;
SELECT housing_cache.fetch('sec.rounded');
-- a changed row, then the shadowing role first again
UPDATE public.ratings SET score = 5.5 WHERE id = 1;
SET ROLE regress_hc_shadow;
SET search_path = regress_hc_shadow, pg_catalog, public;
SELECT housing_cache.fetch('sec.rating', '1');
SELECT housing_cache.fetch('sec.rounded');
RESET ROLE;
RESET search_path;
SELECT housing_cache.fetch('sec.rating', '1');
SELECT housing_cache.fetch('sec.rounded');
-- a search_path naming the schema after pg_catalog changes nothing either
SET search_path = pg_catalog, regress_hc_shadow;
SELECT housing_cache.fetch('sec.city', 'Denver');
RESET search_path;
-- the queries must name everything outside pg_catalog with its schema
CREATE FUNCTION public.double_it(integer) RETURNS integer
    LANGUAGE sql IMMUTABLE AS 'SELECT 2 * $1';
SELECT housing_cache.register_query('sec.unqualified',
    $$SELECT json_build_object('n', double_it(count(*)::integer)) FROM public.ratings$$,
    tags => '{public.ratings}');
SELECT housing_cache.register_query('sec.unqualified',
    $$SELECT json_build_object('n', count(*)) FROM ratings$$,
    tags => '{public.ratings}');
SELECT housing_cache.register_query('sec.qualified',
    $$SELECT json_build_object('n', public.double_it(count(*)::integer)) FROM public.ratings$$,
    tags => '{public.ratings}');
SELECT housing_cache.fetch('sec.qualified');

--
-- EXECUTE privilege on the functions a query calls
--
CREATE ROLE regress_hc_reader;
GRANT SELECT ON public.ratings TO regress_hc_reader;
CREATE FUNCTION public.secret_weight(integer) RETURNS integer
    LANGUAGE sql IMMUTABLE AS 'SELECT 1000 * $1';
REVOKE EXECUTE ON FUNCTION public.secret_weight(integer) FROM PUBLIC;
SELECT housing_cache.register_query('sec.weighted',
    $$SELECT json_build_object('id', r.id, 'weight', public.secret_weight(r.id))
        FROM public.ratings r WHERE r.id = $1$$,
    '{integer}', '{public.ratings/id=$1}');
-- the weight is only computed for ids above a threshold; with custom plans
-- the function is then not even called for the others
SELECT housing_cache.register_query('sec.weighted_top',
    $$SELECT json_build_object('id', r.id,
                               'weight', CASE WHEN $1 > 100 THEN public.secret_weight(r.id)
                                              ELSE 0 END)
        FROM public.ratings r WHERE r.id = $1$$,
    '{integer}', '{public.ratings/id=$1}');
SET plan_cache_mode = force_custom_plan;
SELECT housing_cache.fetch('sec.weighted', '2');
SELECT housing_cache.fetch('sec.weighted', '2');
SELECT housing_cache.fetch('sec.weighted_top', '2');
SELECT bypass_reason FROM housing_cache.last_lookup();
-- functions of pg_catalog, and others anyone may run, are no reason to
-- bypass
SET ROLE regress_hc_reader;
SELECT housing_cache.fetch('sec.rating', '2');
SELECT tier <> 'bypass' AS cached, bypass_reason FROM housing_cache.last_lookup();
SELECT housing_cache.fetch('sec.qualified');
SELECT tier <> 'bypass' AS cached, bypass_reason FROM housing_cache.last_lookup();
-- a role that may not run the function never gets the cached answer
SELECT housing_cache.fetch('sec.weighted', '2');
-- and its own answers are never cached
SELECT housing_cache.fetch('sec.weighted_top', '2');
SELECT tier, bypass_reason FROM housing_cache.last_lookup();
RESET ROLE;
-- EXECUTE granted, through a role it is a member of
CREATE ROLE regress_hc_weighers;
GRANT EXECUTE ON FUNCTION public.secret_weight(integer) TO regress_hc_weighers;
GRANT regress_hc_weighers TO regress_hc_reader;
SET ROLE regress_hc_reader;
SELECT housing_cache.fetch('sec.weighted', '2');
SELECT tier <> 'bypass' AS cached, bypass_reason FROM housing_cache.last_lookup();
SELECT housing_cache.fetch('sec.weighted_top', '2');
SELECT tier <> 'bypass' AS cached, bypass_reason FROM housing_cache.last_lookup();
RESET ROLE;
REVOKE regress_hc_weighers FROM regress_hc_reader;
SET ROLE regress_hc_reader;
SELECT housing_cache.fetch('sec.weighted_top', '2');
SELECT tier, bypass_reason FROM housing_cache.last_lookup();
RESET ROLE;
RESET plan_cache_mode;

--
-- clean up
--
SELECT housing_cache.unregister_query(q)
  FROM unnest(ARRAY['sec.rating', 'sec.city', 'sec.rounded', 'sec.qualified',
                    'sec.weighted', 'sec.weighted_top']) AS q;
SELECT housing_cache.unwatch_table('public.ratings');
DROP FUNCTION public.double_it(integer);
DROP FUNCTION public.secret_weight(integer);
DROP TABLE public.ratings;
SET client_min_messages = warning;
DROP SCHEMA regress_hc_shadow CASCADE;
RESET client_min_messages;
DROP ROLE regress_hc_shadow;
DROP ROLE regress_hc_reader;
DROP ROLE regress_hc_weighers;
