----------------------------------------------------------------------------
-- Watching tables
----------------------------------------------------------------------------
-- watch_table() and unwatch_table() run as their caller, who must own the
-- table: they create and drop its triggers.  The catalog row is written by
-- catalog_watch() and catalog_unwatch(), which check the same.

-- Attach the invalidation triggers of a watched table to it and to every
-- table below it: partitions get the parent's row trigger as a clone, but
-- TRUNCATE triggers are per table; inheritance children get both.  The
-- triggers fire ALWAYS, so that rows applied by logical replication
-- (session_replication_role = replica) invalidate too.  With replace false
-- (after DDL), only missing triggers are created: a trigger an administrator
-- disabled stays disabled.
CREATE OR REPLACE FUNCTION housing_cache.attach_triggers(
    tbl regclass, tag text, partition_column name, id_column name,
    replace boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r            record;
    args         text := format('%L, %L, %L', tag, coalesce(partition_column, ''),
                                coalesce(id_column, ''));
    has_row      boolean;
    has_truncate boolean;
BEGIN
    -- the DDL below must not re-enter housing_cache.on_ddl_command_end()
    PERFORM set_config('housing_cache_internal.attaching', 'on', true);
    FOR r IN
        WITH RECURSIVE tree(relid, is_root) AS (
            SELECT tbl::oid, true
            UNION
            SELECT i.inhrelid, false FROM pg_inherits i JOIN tree t ON i.inhparent = t.relid)
        SELECT t.relid::regclass AS rel, t.is_root, c.relispartition, c.relkind
          FROM tree t JOIN pg_class c ON c.oid = t.relid
         WHERE c.relkind IN ('r', 'p')
    LOOP
        has_row := EXISTS (SELECT 1 FROM pg_trigger
                            WHERE tgrelid = r.rel AND tgname = 'housing_cache_invalidate');
        has_truncate := EXISTS (SELECT 1 FROM pg_trigger
                                 WHERE tgrelid = r.rel AND tgname = 'housing_cache_invalidate_truncate');
        -- a partition's row trigger is the clone of its parent's
        IF r.is_root OR NOT r.relispartition THEN
            IF has_row AND replace THEN
                EXECUTE format('DROP TRIGGER housing_cache_invalidate ON %s', r.rel);
                has_row := false;
            END IF;
            IF NOT has_row THEN
                EXECUTE format('CREATE TRIGGER housing_cache_invalidate '
                               'AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW '
                               'EXECUTE FUNCTION housing_cache.invalidation_trigger(%s)',
                               r.rel, args);
                EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER housing_cache_invalidate', r.rel);
            END IF;
        ELSIF has_row AND replace THEN
            EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER housing_cache_invalidate', r.rel);
        END IF;
        IF has_truncate AND replace THEN
            EXECUTE format('DROP TRIGGER housing_cache_invalidate_truncate ON %s', r.rel);
            has_truncate := false;
        END IF;
        IF NOT has_truncate THEN
            EXECUTE format('CREATE TRIGGER housing_cache_invalidate_truncate '
                           'AFTER TRUNCATE ON %s FOR EACH STATEMENT '
                           'EXECUTE FUNCTION housing_cache.invalidation_trigger(%s)',
                           r.rel, args);
            EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER housing_cache_invalidate_truncate', r.rel);
        END IF;
    END LOOP;
    PERFORM set_config('housing_cache_internal.attaching', 'off', true);
END
$$;
COMMENT ON FUNCTION housing_cache.attach_triggers(regclass, text, name, name, boolean) IS
    'Internal: (re)attach the invalidation triggers of a watched table to it and its partitions and inheritance children, as the caller';

-- The registered queries whose tags name a table tag.
CREATE OR REPLACE FUNCTION housing_cache.queries_using(tag text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(q.name, ', ' ORDER BY q.name)
      FROM housing_cache.queries q
     WHERE EXISTS (SELECT 1 FROM unnest(q.tags) t
                    WHERE t = $1 OR starts_with(t, $1 || '/'))
$$;
COMMENT ON FUNCTION housing_cache.queries_using(text) IS
    'Names of the registered queries that depend on a table tag, or NULL';

CREATE OR REPLACE FUNCTION housing_cache.catalog_watch(
    tbl regclass, table_tag text, partition_column name, id_column name)
RETURNS void
AS 'MODULE_PATHNAME', 'housing_cache_catalog_watch'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.catalog_watch(regclass, text, name, name) IS
    'Internal: record a watched table in housing_cache.watched_tables (the caller must own the table)';

CREATE OR REPLACE FUNCTION housing_cache.catalog_unwatch(tbl regclass)
RETURNS boolean
AS 'MODULE_PATHNAME', 'housing_cache_catalog_unwatch'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION housing_cache.catalog_unwatch(regclass) IS
    'Internal: forget a watched table (the caller must own the table)';

CREATE OR REPLACE FUNCTION housing_cache.watch_table(tbl regclass, partition_column name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind       "char";
    tag        text;
    id_col     name;
    part_col   name := partition_column;
    old        record;
    users      text;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind, n.nspname || '.' || c.relname INTO kind, tag
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'relation with OID % does not exist', tbl::oid
            USING ERRCODE = 'undefined_table';
    END IF;
    IF kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'Only tables and partitioned tables can be watched; invalidate other relations with housing_cache.invalidate().';
    END IF;
    IF NOT pg_has_role((SELECT relowner FROM pg_class WHERE oid = tbl), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', tbl
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Watching a table attaches triggers to it.';
    END IF;
    IF part_col IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_attribute
         WHERE attrelid = tbl AND attname = part_col AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'column "%" of table "%" does not exist', part_col, tbl
            USING ERRCODE = 'undefined_column';
    END IF;

    -- Rows are tagged by a single-column primary key, when there is one.
    SELECT a.attname INTO id_col
      FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = tbl AND i.indisprimary AND i.indnkeyatts = 1;

    -- Changing how a table's writes are tagged would leave the tags of the
    -- queries registered on it unmatched: their answers would go stale.
    SELECT * INTO old FROM housing_cache.watched_tables w WHERE w.relid = tbl;
    IF FOUND AND (old.partition_column IS DISTINCT FROM part_col
                  OR old.id_column IS DISTINCT FROM id_col) THEN
        users := housing_cache.queries_using(old.table_tag);
        IF users IS NOT NULL THEN
            RAISE EXCEPTION 'table "%" is used by cached queries: %', tbl, users
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('It is watched with partition column %s and id column %s.',
                                      coalesce(quote_ident(old.partition_column), 'none'),
                                      coalesce(quote_ident(old.id_column), 'none')),
                      HINT = 'Unregister those queries before changing how the table is watched.';
        END IF;
    END IF;

    PERFORM housing_cache.attach_triggers(tbl, tag, part_col, id_col);
    -- records it, and invalidates whatever was cached before
    PERFORM housing_cache.catalog_watch(tbl, tag, part_col, id_col);
END
$$;
COMMENT ON FUNCTION housing_cache.watch_table(regclass, name) IS
    'Attach the invalidation triggers to a table (and its partitions and inheritance children); writes then invalidate its table tag, the partition column''s value in the old and new row, and the row''s primary key (id column); the caller must own the table';
REVOKE ALL ON FUNCTION housing_cache.watch_table(regclass, name) FROM PUBLIC;

CREATE OR REPLACE FUNCTION housing_cache.unwatch_table(tbl regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tag   text;
    users text;
    r     record;
BEGIN
    SELECT table_tag INTO tag FROM housing_cache.watched_tables WHERE relid = tbl;
    IF tag IS NULL THEN
        RAISE EXCEPTION 'table "%" is not watched', tbl USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT pg_has_role((SELECT relowner FROM pg_class WHERE oid = tbl), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', tbl USING ERRCODE = 'insufficient_privilege';
    END IF;
    users := housing_cache.queries_using(tag);
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'table "%" is used by cached queries: %', tbl, users
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = 'Unregister those queries first; without the triggers their answers would never be invalidated.';
    END IF;
    FOR r IN
        SELECT t.tgrelid::regclass AS rel, t.tgname
          FROM pg_trigger t
         WHERE t.tgname IN ('housing_cache_invalidate', 'housing_cache_invalidate_truncate')
           AND t.tgparentid = 0
           AND t.tgfoid = 'housing_cache.invalidation_trigger()'::regprocedure
           AND (t.tgargs = '' OR split_part(encode(t.tgargs, 'escape'), '\000', 1) = tag)
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
    END LOOP;
    PERFORM housing_cache.catalog_unwatch(tbl);
END
$$;
COMMENT ON FUNCTION housing_cache.unwatch_table(regclass) IS
    'Remove the invalidation triggers from a table no cached query depends on; the caller must own the table';
REVOKE ALL ON FUNCTION housing_cache.unwatch_table(regclass) FROM PUBLIC;
