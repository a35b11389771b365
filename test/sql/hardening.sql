--
-- hardening: event triggers work for ordinary table owners; a table leaving
-- its parent still invalidates it; a disabled trigger stays disabled; the
-- queries of a dropped table fail until a table of that name is watched
-- again, and are never served stale; functions called by a
-- query keep their own search_path; catalog lookups ignore the caller's
-- operators.
--
SET client_min_messages = warning;
CREATE ROLE regress_hc_owner LOGIN;
GRANT CREATE ON SCHEMA public TO regress_hc_owner;
RESET client_min_messages;

-- an ordinary role can create, alter and drop its own tables, watched or not
SET ROLE regress_hc_owner;
CREATE TABLE public.scratch (id int);
ALTER TABLE public.scratch ADD COLUMN v int;
DROP TABLE public.scratch;
CREATE TABLE public.owned (id int PRIMARY KEY, v int);
RESET ROLE;
SELECT housing_cache.watch_table('public.owned');
SET ROLE regress_hc_owner;
ALTER TABLE public.owned ADD COLUMN w int;
CREATE TABLE public.owned_child () INHERITS (public.owned);
RESET ROLE;
SELECT tgrelid::regclass AS rel, tgname, tgenabled
  FROM pg_trigger WHERE tgrelid = 'public.owned_child'::regclass ORDER BY 2;

-- NO INHERIT: the parent's answers forget the child's rows
SELECT housing_cache.register_query('hard.owned_sum',
    'SELECT json_build_object(''s'', sum(v)) FROM public.owned',
    '{}', '{public.owned}');
INSERT INTO public.owned VALUES (1, 1);
INSERT INTO public.owned_child VALUES (2, 100);
SELECT housing_cache.fetch('hard.owned_sum');
ALTER TABLE public.owned_child NO INHERIT public.owned;
SELECT housing_cache.fetch('hard.owned_sum');

-- an administrator's DISABLE TRIGGER is not undone by later DDL
ALTER TABLE public.owned DISABLE TRIGGER housing_cache_invalidate;
ALTER TABLE public.owned ADD COLUMN x int;
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'public.owned'::regclass ORDER BY 1;
ALTER TABLE public.owned ENABLE ALWAYS TRIGGER housing_cache_invalidate;

-- a dropped table is forgotten; its queries fail, also once a table of the
-- same name exists, until it is watched again (pg_restore --clean drops
-- and creates tables so)
DROP TABLE public.owned CASCADE;
SELECT count(*) AS still_watched
  FROM housing_cache.watched_tables WHERE table_tag = 'public.owned';
SELECT housing_cache.fetch('hard.owned_sum');
CREATE TABLE public.owned (id int PRIMARY KEY, v int);
INSERT INTO public.owned VALUES (1, 7);
SELECT housing_cache.fetch('hard.owned_sum');
SELECT housing_cache.watch_table('public.owned');
SELECT housing_cache.fetch('hard.owned_sum');
INSERT INTO public.owned VALUES (2, 8);
SELECT housing_cache.fetch('hard.owned_sum');
SELECT housing_cache.unregister_query('hard.owned_sum');
SELECT housing_cache.unwatch_table('public.owned');
DROP TABLE public.owned;
DROP TABLE public.owned_child;

-- a function called by a registered query keeps its own SET search_path
CREATE TABLE public.labels (id int PRIMARY KEY, name text);
INSERT INTO public.labels VALUES (1, 'first');
SELECT housing_cache.watch_table('public.labels');
CREATE FUNCTION public.label_of(int) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = public
    AS $$ BEGIN RETURN (SELECT name FROM labels WHERE id = $1); END $$;
SELECT housing_cache.register_query('hard.label',
    'SELECT json_build_object(''name'', public.label_of($1))',
    '{int}', '{public.labels/id=$1}');
SELECT housing_cache.fetch('hard.label', '1');

-- an operator of the caller's own does not change which definition loads
CREATE SCHEMA regress_hc_evil;
CREATE FUNCTION regress_hc_evil.texteq_always(text, text) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE OPERATOR regress_hc_evil.= (LEFTARG = text, RIGHTARG = text,
                                   FUNCTION = regress_hc_evil.texteq_always);
-- in a new session, so that the definition is loaded under that search_path
\c -
SET search_path = regress_hc_evil, pg_catalog, public;
SELECT housing_cache.fetch('hard.label', '1');
RESET search_path;
SELECT housing_cache.fetch('hard.label', '1');

SELECT housing_cache.unregister_query('hard.label');
SELECT housing_cache.unwatch_table('public.labels');
DROP TABLE public.labels;
DROP FUNCTION public.label_of(int);
DROP SCHEMA regress_hc_evil CASCADE;
REVOKE CREATE ON SCHEMA public FROM regress_hc_owner;
DROP ROLE regress_hc_owner;
