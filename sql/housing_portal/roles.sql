----------------------------------------------------------------------------
-- Roles of the HTTP API
----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION housing_cache.setup_api_roles(authenticator_password text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    r record;
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'only a superuser can set up the API roles'
            USING ERRCODE = 'insufficient_privilege';
    END IF;

    -- Roles are cluster-wide: another database (or a concurrent call) may
    -- have created them already.  Their attributes are set every time.
    FOR r IN SELECT * FROM (VALUES
            ('web_anon',      'NOLOGIN'),
            ('web_editor',    'NOLOGIN INHERIT'),
            ('authenticator', 'LOGIN NOINHERIT')) AS v(name, attrs)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I', r.name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;           -- created meanwhile by another session
            END;
        END IF;
        EXECUTE format('ALTER ROLE %I %s NOSUPERUSER NOCREATEDB NOCREATEROLE '
                       'NOREPLICATION NOBYPASSRLS', r.name, r.attrs);
    END LOOP;
    IF authenticator_password IS NOT NULL THEN
        EXECUTE format('ALTER ROLE authenticator PASSWORD %L', authenticator_password);
    END IF;

    -- authenticator switches to either role; web_editor has web_anon's rights.
    FOR r IN SELECT * FROM (VALUES
            ('web_anon', 'authenticator'),
            ('web_editor', 'authenticator'),
            ('web_anon', 'web_editor')) AS v(grp, member)
    LOOP
        IF NOT pg_has_role(r.member, r.grp, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', r.grp, r.member);
        END IF;
    END LOOP;

    GRANT USAGE ON SCHEMA api TO web_anon;
    GRANT USAGE ON TYPE api."application/json" TO web_anon;
    GRANT EXECUTE ON FUNCTION
        api.listings(text, bigint, bigint, int, text, int, int),
        api.listing(bigint),
        api.city_stats(text),
        api.cache_stats()
        TO web_anon;
    GRANT EXECUTE ON FUNCTION
        api.update_listing(bigint, text, bigint, text, text),
        api.wal_lsn()
        TO web_editor;
    GRANT UPDATE (title, price_cents, status, description, updated_at)
        ON housing.listings TO web_editor;
END
$function$;
COMMENT ON FUNCTION housing_cache.setup_api_roles(text) IS
    'Create or update the roles of the HTTP API (web_anon, web_editor, authenticator LOGIN NOINHERIT, with this password when given) and grant them the api schema; idempotent, superuser only';
REVOKE ALL ON FUNCTION housing_cache.setup_api_roles(text) FROM PUBLIC;
