-- govern on PostgreSQL: table rights of govern_member (docs/team.md).
--
-- Run as govern_owner after `govern init` and after every `govern db upgrade`:
--     psql -v ON_ERROR_STOP=1 "host=db.example.org dbname=govern user=govern_owner sslmode=verify-full" \
--          -f deploy/postgres/grants.sql
-- Safe to run again.
--
-- The database is shared by everyone who uses the vault, so govern trusts signatures, not
-- rows (docs/security.md, properties 9-13): a member's login can write the governance
-- tables because every command a member runs does. What the database itself can refuse,
-- it refuses: the audit log is append-only for members (INSERT and SELECT, no UPDATE,
-- DELETE or TRUNCATE), the schema and its version are the owner's alone, and nothing can
-- be created or altered by a member.

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO govern_member;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO govern_member;

-- The signed audit log: append and read only.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_event, audit_seal FROM govern_member;
GRANT SELECT, INSERT ON audit_event, audit_seal TO govern_member;

-- The schema version is changed by `govern db upgrade` (the owner) only.
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM govern_member;
GRANT SELECT ON alembic_version TO govern_member;

-- Nothing but the rights above (a grant given by hand to PUBLIC is taken back).
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
