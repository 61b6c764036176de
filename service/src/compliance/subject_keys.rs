//! Each user's data key: created on first use, sealed by the key ring, destroyed by
//! erasure. Personal fields sealed under it are unreadable from then on, wherever
//! they were copied.

use crate::Result;
use crate::crypto::{DataKey, FieldSlot};
use crate::deps::Deps;
use crate::error::ServiceError;
use entity::compliance::subject_keys;
use entity::identity::users;
use entity::{SealedBytes, UserId};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, EntityTrait, QuerySelect};

fn wrap_slot(row: &str) -> FieldSlot<'_> {
    FieldSlot {
        table: "subject_keys",
        column: "wrapped_key",
        row,
    }
}

/// The user's data key, if they have one (none yet, or erased).
///
/// # Errors
/// `Crypto` if the stored key does not open with the key ring; `Db`.
pub(crate) async fn find<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    user: UserId,
) -> Result<Option<DataKey>> {
    let Some(row) = subject_keys::Entity::find_by_id(user).one(db).await? else {
        return Ok(None);
    };
    let slot_row = user.to_string();
    let bytes = deps
        .keys
        .open(wrap_slot(&slot_row), row.wrapped_key.expose())
        .map_err(|_| ServiceError::Crypto("a subject key does not open with the key ring"))?;
    DataKey::from_slice(&bytes)
        .map(Some)
        .map_err(|_| ServiceError::Crypto("a subject key is not 32 bytes"))
}

/// The user's data key, created if they have none. Two callers at once keep one key:
/// the second insert does nothing and both read the stored one.
///
/// # Errors
/// `Crypto`; `Db`.
pub(crate) async fn find_or_create<C: ConnectionTrait>(
    db: &C,
    deps: &Deps,
    user: UserId,
) -> Result<DataKey> {
    if let Some(key) = find(db, deps, user).await? {
        return Ok(key);
    }
    // No key for an erased (or deactivated) user: the erasure job holds this row
    // exclusively while it deletes the key, so a key is never made behind its back.
    let active = users::Entity::find_by_id(user)
        .select_only()
        .column(users::Column::IsActive)
        .lock_shared()
        .into_tuple::<bool>()
        .one(db)
        .await?;
    if active != Some(true) {
        return Err(ServiceError::AccountDisabled);
    }
    if let Some(key) = find(db, deps, user).await? {
        return Ok(key);
    }
    let fresh = DataKey::from_bytes(deps.random_bytes::<32>());
    let slot_row = user.to_string();
    let wrapped = deps
        .keys
        .seal(wrap_slot(&slot_row), fresh.expose())
        .map_err(|_| ServiceError::Crypto("sealing a subject key failed"))?;
    // MariaDB cannot say DO NOTHING: a no-op update of the key there (the runtime
    // role of PostgreSQL may not update keys, so not there).
    let mut on_conflict = OnConflict::column(subject_keys::Column::UserId);
    if db.get_database_backend() == DbBackend::MySql {
        on_conflict.update_column(subject_keys::Column::UserId);
    } else {
        on_conflict.do_nothing();
    }
    let created = subject_keys::Entity::insert(subject_keys::ActiveModel {
        user_id: Set(user),
        wrapped_key: Set(SealedBytes::new(wrapped)),
        created_at: Set(deps.now()),
    })
    .on_conflict(on_conflict)
    .exec_without_returning(db)
    .await;
    match created {
        Ok(_) | Err(DbErr::RecordNotInserted) => {}
        Err(e) => return Err(e.into()),
    }
    find(db, deps, user).await?.ok_or(ServiceError::Crypto(
        "a subject key vanished as it was created",
    ))
}
