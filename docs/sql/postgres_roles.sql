-- Read-only roles for a FairLens Monitor database on PostgreSQL.
--
-- Run once per database, as its owner (the role the daemon connects as), after
-- `fairlens-monitor db upgrade` — and again after each upgrade, since a revision that
-- re-creates a view drops its grants:
--     psql "postgresql://OWNER@HOST/DBNAME" -f docs/sql/postgres_roles.sql
-- Then give each person a login in one of the roles, e.g.
--     CREATE ROLE alice LOGIN PASSWORD '...' IN ROLE fairlens_auditor;
--     CREATE ROLE riskdesk LOGIN PASSWORD '...' IN ROLE fairlens_reader;
--
-- fairlens_auditor: SELECT on the documented views (docs/AUDITORS.md) and nothing else —
--   no raw table, no alert token, no write.
-- fairlens_reader: SELECT on the tables and views, for the trend page and `verify`
--   (which read the raw tables, and the tokens to decrypt where the key is present).
-- Both get sessions that refuse writes. Neither can write in any case: they hold no
-- INSERT/UPDATE/DELETE privilege, and the audit tables also reject UPDATE/DELETE by trigger.
-- Tables added by later migrations are not granted to fairlens_reader until this script is
-- run again (it is idempotent).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fairlens_auditor') THEN
        CREATE ROLE fairlens_auditor NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fairlens_reader') THEN
        CREATE ROLE fairlens_reader NOLOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO fairlens_auditor, fairlens_reader',
                   current_database());
END $$;

ALTER ROLE fairlens_auditor SET default_transaction_read_only = on;
ALTER ROLE fairlens_reader SET default_transaction_read_only = on;
GRANT USAGE ON SCHEMA public TO fairlens_auditor, fairlens_reader;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM fairlens_auditor;
GRANT SELECT ON v_runs, v_fairness_history, v_group_results, v_alerts, v_audit_trail,
    v_checkpoints, v_source_files TO fairlens_auditor;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM fairlens_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO fairlens_reader;
