//! Session security: how strongly each session was authenticated, where it came from,
//! two-step sign-in, and the findings of anomaly detection.
//!
//! - `sessions` gains its authenticator assurance level (`aal1` password only, `aal2`
//!   with a second factor), the methods used (`password,totp`), when the user last
//!   proved who they are (`authenticated_at`, for the re-authentication window; sessions
//!   opened before this migration are backfilled with their `created_at`), the hex
//!   SHA-256 of the device fingerprint the application supplied, and the coarse location
//!   a CDN reports (country, city, latitude, longitude).
//! - `refresh_tokens.reissue_sealed`: a rotated-to token, sealed by field encryption and
//!   bound to its row, kept while it is unused, so the same parent presented again
//!   within the reuse interval (browser tabs refreshing together) gets the same
//!   successor instead of revoking the session. Cleared when it is used or revoked.
//! - `mfa_challenges`: the password step of a user with a second factor (or of a risky
//!   sign-in) issues a short-lived, single-use challenge instead of a session; only its
//!   SHA-256 is stored. `failures` counts wrong second steps.
//! - `session_anomaly_reports`: one row per finding (new device, impossible travel, a
//!   burst of failed sign-ins) with its risk score. Append-only for the runtime role.
//!
//! PostgreSQL: both new tables are global identity rows visible to the acting user only
//! (`app.current_user_id`), RLS enabled (not forced, like `sessions`: the owner's tools
//! see every row), per-command policies. A challenge is found by its hash through
//! `app_mfa_challenge_lookup` (nobody is acting yet when the second step arrives); the
//! runtime role never reads `token_hash`, may mark a challenge completed or count a
//! failure, and never deletes. Anomaly reports can be read and inserted, not changed.
//! The reading roles read everything but the challenge hash and the sealed token, and
//! lose the default writes they had on `sessions` and `refresh_tokens`. A trigger keeps
//! a revoked session revoked, its end from moving later, and its owner and start fixed.
//! An anomaly report can name only one of its user's own sessions.
//! `app_current_aal()` returns the acting session's level (set per transaction like the
//! acting user), for policies that require a second factor. The runtime role may now
//! set `users.is_active`, so a user can close their own account.

use crate::lint::{accept_lint, accept_lints};
use crate::schema_helpers::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    Aal,
    AuthMethods,
    AuthenticatedAt,
    DeviceHash,
    Country,
    City,
    Latitude,
    Longitude,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    ReissueSealed,
}

#[derive(DeriveIden)]
enum MfaChallenges {
    Table,
    Id,
    UserId,
    TokenHash,
    Reason,
    RiskScore,
    Failures,
    CreatedAt,
    ExpiresAt,
    CompletedAt,
}

#[derive(DeriveIden)]
enum SessionAnomalyReports {
    Table,
    Id,
    UserId,
    SessionId,
    Kind,
    RiskScore,
    Details,
    IpAddress,
    Country,
    City,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

const CHALLENGES_READABLE: &str =
    "id, user_id, reason, risk_score, failures, created_at, expires_at, completed_at";

const POSTGRES_UP: &str = r#"
-- The acting session's assurance level, set per transaction with the acting user, so a
-- policy can require a second factor: `app_current_aal() = 'aal2'`.
CREATE OR REPLACE FUNCTION app_current_aal() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('app.current_aal', true), '') $$;

ALTER TABLE mfa_challenges ENABLE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON mfa_challenges FOR SELECT USING (user_id = app_current_user());
CREATE POLICY wall_insert ON mfa_challenges FOR INSERT WITH CHECK (user_id = app_current_user());
CREATE POLICY wall_update ON mfa_challenges FOR UPDATE USING (user_id = app_current_user()) WITH CHECK (user_id = app_current_user());

ALTER TABLE session_anomaly_reports ENABLE ROW LEVEL SECURITY;
CREATE POLICY wall_select ON session_anomaly_reports FOR SELECT USING (user_id = app_current_user());
-- A report names one of the acting user's own sessions, or none (the subquery sees the
-- acting user's sessions only).
CREATE POLICY wall_insert ON session_anomaly_reports FOR INSERT WITH CHECK (
  user_id = app_current_user()
  AND (session_id IS NULL OR EXISTS (SELECT 1 FROM sessions s WHERE s.id = session_id)));

-- What no service operation ever does to a session, whoever runs the statement: bring a
-- revoked session back, push its end further out, or change whose it is or when it
-- began. (Raising its level and freshness is what step-up does, so those stay
-- writable: see the README on what the walls do not stop.)
CREATE FUNCTION app_sessions_one_way() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$
BEGIN
  IF OLD.revoked_at IS NOT NULL AND (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at
                                     OR NEW.revoked_reason IS DISTINCT FROM OLD.revoked_reason) THEN
    RAISE EXCEPTION 'session % is revoked and stays revoked', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.expires_at > OLD.expires_at THEN
    RAISE EXCEPTION 'session %: expires_at never moves later', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.user_id IS DISTINCT FROM OLD.user_id OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
    RAISE EXCEPTION 'session %: user_id and created_at are fixed', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER sessions_one_way BEFORE UPDATE ON sessions
    FOR EACH ROW EXECUTE FUNCTION app_sessions_one_way();

-- A completed challenge stays completed, and failures only grow: the role that runs
-- the second step cannot reopen a challenge or forget wrong codes.
CREATE FUNCTION app_mfa_challenges_one_way() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog
    AS $$
BEGIN
  IF OLD.completed_at IS NOT NULL AND NEW.completed_at IS DISTINCT FROM OLD.completed_at THEN
    RAISE EXCEPTION 'MFA challenge % is completed and stays completed', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.failures < OLD.failures THEN
    RAISE EXCEPTION 'MFA challenge %: failures only grow', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER mfa_challenges_one_way BEFORE UPDATE ON mfa_challenges
    FOR EACH ROW EXECUTE FUNCTION app_mfa_challenges_one_way();

DO $functions$
BEGIN
  EXECUTE replace($body$
-- Anomaly detection: how many of the acting user's own global events of one type
-- happened since a time (the runtime role reads no global audit row directly).
CREATE FUNCTION app_own_security_event_count(p_event_type text, p_since timestamptz)
    RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, {schema}, pg_temp
    AS $$ SELECT count(*) FROM audit_logs
           WHERE tenant_id IS NULL AND actor_user_id = app_current_user()
             AND event_type = p_event_type AND occurred_at >= p_since $$;

-- The second step of a sign-in: which challenge and whose a presented token names.
CREATE FUNCTION app_mfa_challenge_lookup(p_token_hash text)
    RETURNS TABLE (challenge_id uuid, user_id uuid)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, {schema}, pg_temp
    AS $$ SELECT c.id, c.user_id FROM mfa_challenges c WHERE c.token_hash = p_token_hash $$;
$body$, '{schema}', quote_ident(current_schema()));
END
$functions$;
REVOKE ALL ON FUNCTION app_mfa_challenge_lookup(text), app_own_security_event_count(text, timestamptz) FROM PUBLIC;

DO $walls$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
    GRANT EXECUTE ON FUNCTION app_mfa_challenge_lookup(text), app_own_security_event_count(text, timestamptz) TO app_service;
    GRANT SELECT (reissue_sealed), UPDATE (reissue_sealed) ON refresh_tokens TO app_service;
    GRANT SELECT ({challenges_readable}) ON mfa_challenges TO app_service;
    GRANT INSERT (id, user_id, token_hash, reason, risk_score, failures, created_at, expires_at) ON mfa_challenges TO app_service;
    GRANT UPDATE (failures, completed_at) ON mfa_challenges TO app_service;
    GRANT SELECT, INSERT ON session_anomaly_reports TO app_service;
    -- Closing one's own account (the users policy limits it to the acting user).
    GRANT UPDATE (is_active) ON users TO app_service;
  END IF;
END
$walls$;

-- The reading roles got every privilege their defaults give on new tables; they read,
-- and not the challenge hash.
DO $readers$
DECLARE
  reader text;
BEGIN
  FOREACH reader IN ARRAY ARRAY['read_only', 'compliance_officer', 'data_processor'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = reader) THEN
      EXECUTE format('REVOKE ALL ON mfa_challenges, session_anomaly_reports FROM %I', reader);
      -- Sessions and their tokens are the service's to write: the readers' default
      -- writes there would reach the new columns (assurance level, sealed tokens).
      EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON sessions, refresh_tokens FROM %I', reader);
      EXECUTE format('GRANT SELECT ({challenges_readable}) ON mfa_challenges TO %I', reader);
      EXECUTE format('GRANT SELECT ON session_anomaly_reports TO %I', reader);
    END IF;
  END LOOP;
END
$readers$;
"#;

fn double_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).double().null().take()
}

fn add_column(table: impl IntoIden, column: ColumnDef) -> TableAlterStatement {
    // One column per statement: SQLite alters one thing at a time.
    Table::alter().table(table).add_column(column).take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let text_limit = "varchar(n) is the input limit, enforced by the database";
        // (column, whether squawk sees a varchar in it)
        let session_columns = [
            // Constant defaults: PostgreSQL stores them in the catalogue, no rewrite.
            (
                ColumnDef::new(Sessions::Aal)
                    .string_len(8)
                    .not_null()
                    .default("aal1")
                    .check(Expr::col(Sessions::Aal).is_in(["aal1", "aal2"]))
                    .take(),
                true,
            ),
            (
                ColumnDef::new(Sessions::AuthMethods)
                    .string_len(64)
                    .not_null()
                    .default("password")
                    .take(),
                true,
            ),
            (timestamp_null(backend, Sessions::AuthenticatedAt), false),
            (string_null(Sessions::DeviceHash, 64), true),
            (string_null(Sessions::Country, 2), true),
            (string_null(Sessions::City, 100), true),
            (double_null(Sessions::Latitude), false),
            (double_null(Sessions::Longitude), false),
        ];
        for (column, varchar) in session_columns {
            let statement = add_column(Sessions::Table, column);
            if varchar {
                accept_lint(manager, "prefer-text-field", text_limit, &statement).await?;
            } else {
                manager.alter_table(statement).await?;
            }
        }
        manager
            .exec_stmt(
                Query::update()
                    .table(Sessions::Table)
                    .value(
                        Sessions::AuthenticatedAt,
                        Expr::col(Alias::new("created_at")),
                    )
                    .and_where(Expr::col(Sessions::AuthenticatedAt).is_null())
                    .to_owned(),
            )
            .await?;

        manager
            .alter_table(add_column(
                RefreshTokens::Table,
                ColumnDef::new(RefreshTokens::ReissueSealed)
                    .var_binary(255)
                    .null()
                    .take(),
            ))
            .await?;

        let challenges = create_table(backend, MfaChallenges::Table)
            .col(uuid_pk(MfaChallenges::Id))
            .col(uuid(MfaChallenges::UserId))
            .col(string(MfaChallenges::TokenHash, 64))
            .col(string(MfaChallenges::Reason, 16))
            .col(
                ColumnDef::new(MfaChallenges::RiskScore)
                    .integer()
                    .not_null()
                    .default(0),
            )
            .col(
                ColumnDef::new(MfaChallenges::Failures)
                    .integer()
                    .not_null()
                    .default(0),
            )
            .col(timestamp_default_now(backend, MfaChallenges::CreatedAt))
            .col(timestamp(backend, MfaChallenges::ExpiresAt))
            .col(timestamp_null(backend, MfaChallenges::CompletedAt))
            .check(Check::named(
                Alias::new("ck_mfa_challenges_token_hash_length"),
                Expr::cust("LENGTH(token_hash) = 64"),
            ))
            .check(check_in(
                "ck_mfa_challenges_reason",
                MfaChallenges::Reason,
                &["factor", "risk"],
            ))
            .check(Check::named(
                Alias::new("ck_mfa_challenges_risk_score"),
                Expr::cust("risk_score BETWEEN 0 AND 100"),
            ))
            .check(Check::named(
                Alias::new("ck_mfa_challenges_failures"),
                Expr::cust("failures >= 0"),
            ))
            .foreign_key(&mut foreign_key(
                MfaChallenges::Table,
                MfaChallenges::UserId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Cascade,
            ))
            .to_owned();
        accept_lints(
            manager,
            &[
                (
                    "prefer-text-field",
                    "varchar(n) is the input limit, enforced by the database; MariaDB needs a bounded length to index token_hash",
                ),
                (
                    "prefer-bigint-over-int",
                    "risk_score is checked to 0-100 and failures stop counting at a handful",
                ),
            ],
            &challenges,
        )
        .await?;
        manager
            .create_index(unique_index(
                MfaChallenges::Table,
                [MfaChallenges::TokenHash],
            ))
            .await?;
        manager
            .create_index(index(MfaChallenges::Table, [MfaChallenges::UserId]))
            .await?;

        let reports = create_table(backend, SessionAnomalyReports::Table)
            .col(uuid_pk(SessionAnomalyReports::Id))
            .col(uuid(SessionAnomalyReports::UserId))
            .col(uuid_null(SessionAnomalyReports::SessionId))
            .col(string(SessionAnomalyReports::Kind, 32))
            .col(
                ColumnDef::new(SessionAnomalyReports::RiskScore)
                    .integer()
                    .not_null(),
            )
            .col(json(SessionAnomalyReports::Details))
            .col(string_null(SessionAnomalyReports::IpAddress, 45))
            .col(string_null(SessionAnomalyReports::Country, 2))
            .col(string_null(SessionAnomalyReports::City, 100))
            .col(timestamp_default_now(
                backend,
                SessionAnomalyReports::CreatedAt,
            ))
            .check(check_in(
                "ck_session_anomaly_reports_kind",
                SessionAnomalyReports::Kind,
                &["new_device", "impossible_travel", "failed_sign_in_burst"],
            ))
            .check(Check::named(
                Alias::new("ck_session_anomaly_reports_risk_score"),
                Expr::cust("risk_score BETWEEN 0 AND 100"),
            ))
            .foreign_key(&mut foreign_key(
                SessionAnomalyReports::Table,
                SessionAnomalyReports::UserId,
                Users::Table,
                Users::Id,
                ForeignKeyAction::Cascade,
            ))
            // A report outlives nothing it describes but its session's row, which is
            // never deleted on its own (only with its user).
            .foreign_key(&mut foreign_key(
                SessionAnomalyReports::Table,
                SessionAnomalyReports::SessionId,
                Sessions::Table,
                Sessions::Id,
                ForeignKeyAction::SetNull,
            ))
            .to_owned();
        accept_lints(
            manager,
            &[
                ("prefer-text-field", text_limit),
                ("prefer-bigint-over-int", "risk_score is checked to 0-100"),
            ],
            &reports,
        )
        .await?;
        // A user's reports, newest first; the burst count of recent ones.
        manager
            .create_index(index(
                SessionAnomalyReports::Table,
                [
                    SessionAnomalyReports::UserId,
                    SessionAnomalyReports::CreatedAt,
                ],
            ))
            .await?;
        manager
            .create_index(index(
                SessionAnomalyReports::Table,
                [SessionAnomalyReports::SessionId],
            ))
            .await?;

        if backend == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    &POSTGRES_UP.replace("{challenges_readable}", CHALLENGES_READABLE),
                )
                .await?;
        }
        Ok(())
    }

    /// Drops the challenges (a sign-in in progress must start over) and the anomaly
    /// reports (their findings stay in the audit trail, which names them), and the new
    /// session columns: sessions keep working at the single level they had before.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        manager
            .drop_table(Table::drop().table(SessionAnomalyReports::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(MfaChallenges::Table).to_owned())
            .await?;
        if backend == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP FUNCTION IF EXISTS app_mfa_challenge_lookup(text);
                     DROP FUNCTION IF EXISTS app_own_security_event_count(text, timestamptz);
                     DROP FUNCTION IF EXISTS app_mfa_challenges_one_way();
                     DROP FUNCTION IF EXISTS app_current_aal();
                     DROP TRIGGER IF EXISTS sessions_one_way ON sessions;
                     DROP FUNCTION IF EXISTS app_sessions_one_way();
                     DO $readers$ BEGIN
                       IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'data_processor') THEN
                         GRANT INSERT, UPDATE, DELETE ON sessions, refresh_tokens TO data_processor;
                       END IF;
                     END $readers$;
                     DO $walls$ BEGIN
                       IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_service') THEN
                         REVOKE UPDATE (is_active) ON users FROM app_service;
                       END IF;
                     END $walls$;",
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(RefreshTokens::Table)
                    .drop_column(RefreshTokens::ReissueSealed)
                    .to_owned(),
            )
            .await?;
        for column in [
            Sessions::Longitude,
            Sessions::Latitude,
            Sessions::City,
            Sessions::Country,
            Sessions::DeviceHash,
            Sessions::AuthenticatedAt,
            Sessions::AuthMethods,
            Sessions::Aal,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
