-- govern on PostgreSQL: the roles of a team vault (docs/team.md).
--
-- Run once, as a superuser (or a role with CREATEROLE), connected to the vault's database:
--     createdb govern
--     psql -v ON_ERROR_STOP=1 -d govern -f deploy/postgres/roles.sql
-- Safe to run again. It creates no login with a password: give each person their own
-- login afterwards (docs/team.md, "Logins").
--
-- govern_owner   owns the schema: `govern init`, `govern db upgrade`, backups. Used by IT only.
-- govern_member  what every person's login is a member of: read everything, write the
--                governance tables, and only ever INSERT into the audit log (never UPDATE,
--                DELETE or TRUNCATE it; deploy/postgres/grants.sql sets the table rights).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'govern_owner') THEN
        CREATE ROLE govern_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'govern_member') THEN
        CREATE ROLE govern_member NOLOGIN;
    END IF;
END
$$;

-- Nobody else may connect to this database or create anything in it.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I OWNER TO govern_owner', current_database());
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO govern_member', current_database());
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO govern_owner', current_database());
END
$$;

REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO govern_owner;
GRANT USAGE ON SCHEMA public TO govern_member;

-- Tables a future `govern db upgrade` creates are readable by members at once, and writable
-- only once grants.sql has been run again: a forgotten step fails closed (a command is
-- refused), it never opens the audit log to updates.
ALTER DEFAULT PRIVILEGES FOR ROLE govern_owner IN SCHEMA public GRANT SELECT ON TABLES TO govern_member;
ALTER DEFAULT PRIVILEGES FOR ROLE govern_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO govern_member;
