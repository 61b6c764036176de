//! Adding an event type to the catalogue at run time: for an application's own events
//! (a plug-in, a new workflow) without a release of this crate. Platform work, like
//! system roles: on PostgreSQL the runtime role only reads `audit_event_types`, so call
//! it on the schema owner's connection.

use super::{AuditEntry, AuditEvent, record};
use crate::deps::Deps;
use crate::error::ServiceError;
use crate::request::RequestMeta;
use crate::transaction::begin_write;
use crate::{Result, input};
use entity::UserId;
use entity::audit::audit_event_types::{self, AuditCategory};
use entity::audit::audit_logs::AuditOutcome;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveEnum, ConnectionTrait, EntityTrait, Iterable, TransactionSession, TransactionTrait,
};
use serde_json::json;

/// A validated new catalogue entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEventType {
    code: String,
    category: AuditCategory,
    description: String,
}

impl NewEventType {
    /// `code`: 3 to 64 lowercase ASCII letters, digits and underscores, starting with a
    /// letter; `category`: one of the catalogue's categories (`data_access`,
    /// `security`, ...); `description`: 1 to 255 characters of plain text.
    ///
    /// # Errors
    /// `Validation` naming the field.
    pub fn parse(code: &str, category: &str, description: &str) -> Result<Self> {
        let code = code.trim();
        let well_formed = (3..=64).contains(&code.len())
            && code.starts_with(|c: char| c.is_ascii_lowercase())
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            return Err(ServiceError::validation(
                "event_type",
                "must be 3 to 64 lowercase letters, digits or underscores, starting with a letter",
            ));
        }
        let category = AuditCategory::iter()
            .find(|c| c.to_value() == category.trim())
            .ok_or_else(|| {
                let known: Vec<String> = AuditCategory::iter().map(|c| c.to_value()).collect();
                ServiceError::validation(
                    "category",
                    format!("unknown category; one of {}", known.join(", ")),
                )
            })?;
        Ok(NewEventType {
            code: code.to_owned(),
            category,
            description: input::plain_text("description", description, 255)?,
        })
    }
}

/// An event type of the catalogue that is not one of [`AuditEvent`]'s: recorded with
/// [`AuditEntry::of_added_type`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedEventType {
    code: String,
    category: AuditCategory,
}

impl AddedEventType {
    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn category(&self) -> AuditCategory {
        self.category
    }
}

/// Adds `new` to the catalogue and records `audit_event_type_added` (outside any
/// tenant, by `actor` if given), in one transaction.
///
/// # Errors
/// `Conflict` when the code is taken (by the catalogue's own events too); `Db`.
pub async fn add_event_type<C>(
    db: &C,
    deps: &Deps,
    actor: Option<UserId>,
    new: NewEventType,
    request: &RequestMeta,
) -> Result<AddedEventType>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = match actor {
        // The acting user's context: their chain, and PostgreSQL's insert policy.
        Some(user) => crate::identity::begin_for_user(db, user).await?,
        None => begin_write(db).await?,
    };
    let taken = AuditEvent::from_code(&new.code).is_some()
        || audit_event_types::Entity::find_by_id(new.code.clone())
            .one(&txn)
            .await?
            .is_some();
    if taken {
        return Err(ServiceError::Conflict {
            entity: "audit event type",
            reason: "the code is already in the catalogue",
        });
    }
    audit_event_types::Entity::insert(audit_event_types::ActiveModel {
        event_type: Set(new.code.clone()),
        category: Set(new.category),
        description: Set(new.description.clone()),
        created_at: Set(deps.now()),
    })
    .exec_without_returning(&txn)
    .await
    .map_err(|e| match e.sql_err() {
        // Added by someone else since the check above.
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => ServiceError::Conflict {
            entity: "audit event type",
            reason: "the code is already in the catalogue",
        },
        _ => e.into(),
    })?;
    let mut entry = AuditEntry::new(
        AuditEvent::AuditEventTypeAdded,
        AuditOutcome::Success,
        request,
    )
    .resource("audit_event_type", &new.code)
    .details(json!({
        "category": new.category.to_value(),
        "description": new.description,
    }));
    if let Some(user) = actor {
        entry = entry.actor(user);
    }
    record(&txn, deps, entry).await?;
    txn.commit().await?;
    Ok(AddedEventType {
        code: new.code,
        category: new.category,
    })
}

/// The run-time added event type `code`, if the catalogue holds it.
///
/// # Errors
/// `NotFound` when the catalogue has no such type, `Validation` when `code` is one of
/// [`AuditEvent`]'s (record those with [`AuditEntry::new`]); `Db`.
pub async fn added_event_type<C: ConnectionTrait>(db: &C, code: &str) -> Result<AddedEventType> {
    if AuditEvent::from_code(code).is_some() {
        return Err(ServiceError::validation(
            "event_type",
            "is one of the catalogue's own events: use AuditEvent",
        ));
    }
    let row = audit_event_types::Entity::find_by_id(code.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| ServiceError::NotFound {
            entity: "audit event type",
            id: code.to_owned(),
        })?;
    Ok(AddedEventType {
        code: row.event_type,
        category: row.category,
    })
}
