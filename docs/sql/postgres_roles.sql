-- Read-only roles for a FairLens Monitor database on PostgreSQL.
--
-- Run as a superuser or a role with CREATEROLE that owns the database, after
-- `fairlens-monitor db upgrade` — again after each upgrade (a revision that re-creates a
-- view drops its grants) and AFTER CREATING EACH LOGIN (see below):
--     psql "postgresql://OWNER@HOST/DBNAME" -f docs/sql/postgres_roles.sql
-- Give each person a login in one of the two group roles, then run this script again:
--     CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE fairlens_auditor;
--     CREATE ROLE riskdesk LOGIN PASSWORD '...' IN ROLE fairlens_reader;
--
-- fairlens_auditor: SELECT on the documented views (docs/AUDITORS.md) and nothing else —
--   no raw table, no alert token, no write.
-- fairlens_reader: SELECT on the tables and views, for the trend page and `verify`
--   (which read the raw tables, and the tokens to decrypt where the key is present).
--
-- What keeps a member login read-only is privilege, not a session setting:
--   * no INSERT/UPDATE/DELETE/TRUNCATE on any table, no USAGE/UPDATE on any sequence (so no
--     nextval), and the audit tables also reject UPDATE/DELETE by trigger;
--   * TEMPORARY on this database is revoked from PUBLIC (PostgreSQL grants it to everyone by
--     default, so a member could otherwise create and fill temporary tables); the owner
--     keeps it implicitly;
--   * CREATE on schema public is revoked from PUBLIC (the default on PostgreSQL <= 14);
--   * run as a superuser, creating large objects (lo_create, lo_import, ...) is revoked from
--     PUBLIC in this database (they need no privilege otherwise).
-- This assumes the database serves FairLens Monitor alone: other roles lose TEMPORARY and
-- CREATE in public too; grant them back by name if some other application needs them.
-- As a second line, every current member login gets `default_transaction_read_only = on` in
-- this database (ALTER ROLE ... IN DATABASE): a setting on the group role itself is NOT
-- inherited by its members, which is why this script must run after a login is created.
-- Tables added by later migrations are not granted to fairlens_reader until this script is
-- run again (it is idempotent).

DO $$
DECLARE
    member text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fairlens_auditor') THEN
        CREATE ROLE fairlens_auditor NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fairlens_reader') THEN
        CREATE ROLE fairlens_reader NOLOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO fairlens_auditor, fairlens_reader',
                   current_database());
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM fairlens_auditor, fairlens_reader',
                   current_database());
    -- Large objects need no privilege to create; only a superuser can close that door (the
    -- functions belong to the system). Run as the owner alone, this step is skipped.
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        REVOKE EXECUTE ON FUNCTION lo_create(oid), lo_creat(integer), lo_import(text),
            lo_import(text, oid), lo_from_bytea(oid, bytea) FROM PUBLIC;
    END IF;
    FOR member IN
        SELECT DISTINCT m.rolname FROM pg_auth_members a
        JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
        WHERE g.rolname IN ('fairlens_auditor', 'fairlens_reader')
    LOOP
        EXECUTE format('ALTER ROLE %I IN DATABASE %I SET default_transaction_read_only = on',
                       member, current_database());
    END LOOP;
END $$;

ALTER ROLE fairlens_auditor SET default_transaction_read_only = on;
ALTER ROLE fairlens_reader SET default_transaction_read_only = on;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM fairlens_auditor, fairlens_reader;
GRANT USAGE ON SCHEMA public TO fairlens_auditor, fairlens_reader;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM fairlens_auditor;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM fairlens_auditor, fairlens_reader;
GRANT SELECT ON v_runs, v_fairness_history, v_group_results, v_alerts, v_audit_trail,
    v_checkpoints, v_source_files, v_reading_rollups, v_monitor_status TO fairlens_auditor;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM fairlens_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO fairlens_reader;
