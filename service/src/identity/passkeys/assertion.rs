//! The check of each sign-in's assertion against a stored passkey (see the module
//! above for the rules): find the credential, check the ceremony and the signature,
//! then the counter, and store the new count; a refusal is recorded on a transaction
//! of its own.

use super::ceremony::{check_assertion, check_shapes, counter_advances};
use super::{
    ExpectedCeremony, FLAG_BACKUP_STATE, FLAG_USER_VERIFIED, PasskeyAssertion, PasskeyRejection,
    VerifiedPasskey,
};
use crate::Result;
use crate::audit::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::identity::users::{begin_for_user, find_active_user};
use crate::request::RequestMeta;
use crate::sql::find_before_acting;
use crate::tenancy::set_row_security_context;
use entity::audit::audit_logs::AuditOutcome;
use entity::identity::passkeys::{self, PasskeyDisabledReason};
use entity::{PasskeyId, UserId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect,
    QueryTrait,
};
use serde_json::json;

/// Which passkey and user a credential id names. On PostgreSQL through
/// `app_passkey_lookup`: no user is known yet to make the row visible.
async fn find_credential<C: ConnectionTrait>(
    db: &C,
    credential_id: &[u8],
) -> Result<Option<(PasskeyId, UserId)>> {
    let elsewhere = passkeys::Entity::find()
        .select_only()
        .column(passkeys::Column::Id)
        .column(passkeys::Column::UserId)
        .filter(passkeys::Column::CredentialId.eq(credential_id.to_vec()))
        .into_query();
    find_before_acting(
        db,
        ("app_passkey_lookup", &["passkey_id", "user_id"]),
        credential_id.to_vec(),
        elsewhere,
    )
    .await
}

/// Records a refused assertion of a known passkey on a transaction of its own; for a
/// clone, disables the passkey in the same transaction. Returns the caller's error.
async fn refuse(
    db: &DatabaseConnection,
    deps: &Deps,
    passkey: &passkeys::Model,
    mut rejection: PasskeyRejection,
    presented_count: u32,
    meta: &RequestMeta,
) -> Result<ServiceError> {
    let txn = begin_for_user(db, passkey.user_id).await?;
    if rejection == PasskeyRejection::ClonedAuthenticator {
        let disabled = passkeys::Entity::update_many()
            .col_expr(passkeys::Column::DisabledAt, Expr::value(deps.now()))
            .col_expr(
                passkeys::Column::DisabledReason,
                Expr::value(PasskeyDisabledReason::ClonedAuthenticator),
            )
            .filter(passkeys::Column::Id.eq(passkey.id))
            .filter(passkeys::Column::DisabledAt.is_null())
            .exec(&txn)
            .await?;
        // A concurrent assertion disabled it first: that one recorded the clone.
        if disabled.rows_affected == 0 {
            rejection = PasskeyRejection::Disabled;
        }
    }
    let entry = if rejection == PasskeyRejection::ClonedAuthenticator {
        AuditEntry::new(AuditEvent::PasskeyCloneDetected, AuditOutcome::Denied, meta)
            .risk(90)
            .details(json!({
                "stored_sign_count": passkey.sign_count,
                "presented_sign_count": presented_count,
                "disabled": true,
            }))
    } else {
        AuditEntry::new(
            AuditEvent::PasskeyAssertionFailed,
            AuditOutcome::Failure,
            meta,
        )
        .risk(30)
        .details(json!({ "reason": rejection.as_str() }))
    };
    record(
        &txn,
        deps,
        entry.actor(passkey.user_id).resource("passkey", passkey.id),
    )
    .await?;
    txn.commit().await?;
    Ok(ServiceError::PasskeyRejected { reason: rejection })
}

/// Verifies a WebAuthn assertion (see the module's documentation for the checks) and,
/// if it holds, stores the new counter, backup state and last use, and records
/// `passkey_used`. A refused assertion of a known passkey records
/// `passkey_assertion_failed`, and a counter that did not increase disables the
/// passkey and records `passkey_clone_detected` (risk 90), on a transaction of its own
/// committed before the error returns. Whether the user is signed in, and whether user
/// verification was required, is the application's decision on the result.
///
/// # Errors
/// `Validation` for malformed input (lengths, client data that is not JSON with type,
/// challenge and origin; an expected challenge under 16 bytes), before any query and
/// writing nothing; `PasskeyRejected` with the reason; `AccountDisabled` for a
/// deactivated user; `Db`.
pub async fn verify_passkey_assertion(
    db: &DatabaseConnection,
    deps: &Deps,
    assertion: PasskeyAssertion<'_>,
    expected: ExpectedCeremony<'_>,
    meta: &RequestMeta,
) -> Result<VerifiedPasskey> {
    let client = check_shapes(&assertion, &expected)?;
    let auth = assertion.authenticator_data;
    let presented_count = u32::from_be_bytes([auth[33], auth[34], auth[35], auth[36]]);
    let flags = auth[32];

    // One transaction for the lookup and the checks (every statement runs in one).
    let txn = crate::begin_write(db).await?;
    let Some((id, user)) = find_credential(&txn, assertion.credential_id).await? else {
        txn.rollback().await?;
        return Err(ServiceError::PasskeyRejected {
            reason: PasskeyRejection::UnknownCredential,
        });
    };
    set_row_security_context(&txn, None, Some(user)).await?;
    find_active_user(&txn, user).await?;
    let passkey = passkeys::Entity::find_by_id(id)
        .filter(passkeys::Column::UserId.eq(user))
        .one(&txn)
        .await?
        .ok_or(ServiceError::PasskeyRejected {
            reason: PasskeyRejection::UnknownCredential,
        })?;
    let mut refusal = check_assertion(&passkey, &assertion, &client, &expected).err();
    if refusal.is_none() && !counter_advances(passkey.sign_count, presented_count) {
        refusal = Some(PasskeyRejection::ClonedAuthenticator);
    }
    let backup_state = flags & FLAG_BACKUP_STATE != 0;
    if refusal.is_none() {
        // The counter condition again, on the row: of two concurrent assertions with
        // one count, one passes and the other is a regression.
        let stored = passkeys::Entity::update_many()
            .col_expr(
                passkeys::Column::SignCount,
                Expr::value(i64::from(presented_count)),
            )
            .col_expr(passkeys::Column::BackupState, Expr::value(backup_state))
            .col_expr(passkeys::Column::LastUsedAt, Expr::value(deps.now()))
            .filter(passkeys::Column::Id.eq(id))
            .filter(passkeys::Column::DisabledAt.is_null())
            .filter(if presented_count == 0 {
                passkeys::Column::SignCount.eq(0)
            } else {
                passkeys::Column::SignCount.lt(i64::from(presented_count))
            })
            .exec(&txn)
            .await?;
        if stored.rows_affected == 0 {
            refusal = Some(PasskeyRejection::ClonedAuthenticator);
        }
    }
    if let Some(rejection) = refusal {
        txn.rollback().await?;
        return Err(refuse(db, deps, &passkey, rejection, presented_count, meta).await?);
    }
    let user_verified = flags & FLAG_USER_VERIFIED != 0;
    record(
        &txn,
        deps,
        AuditEntry::new(AuditEvent::PasskeyUsed, AuditOutcome::Success, meta)
            .actor(user)
            .resource("passkey", id)
            .details(json!({
                "sign_count": presented_count,
                "user_verified": user_verified,
                "backup_state": backup_state,
            })),
    )
    .await?;
    txn.commit().await?;
    Ok(VerifiedPasskey {
        passkey_id: id,
        user_id: user,
        sign_count: presented_count,
        user_verified,
        backup_state,
    })
}
