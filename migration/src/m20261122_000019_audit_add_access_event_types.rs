//! Audit event types of access control, teams and invitations.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEventTypes {
    Table,
    EventType,
    Category,
    Description,
}

#[derive(DeriveIden)]
enum AuditLogs {
    Table,
    EventType,
}

/// (event_type, category, description)
const EVENTS: &[(&str, &str, &str)] = &[
    ("role_created", "security", "Role created"),
    (
        "role_permission_granted",
        "security",
        "Permission added to a role",
    ),
    (
        "role_permission_revoked",
        "security",
        "Permission removed from a role",
    ),
    (
        "role_inheritance_added",
        "security",
        "Role made to inherit another role",
    ),
    (
        "role_inheritance_removed",
        "security",
        "Role inheritance removed",
    ),
    ("role_assigned", "security", "Role assigned to a member"),
    (
        "role_assignment_revoked",
        "security",
        "Role assignment revoked",
    ),
    ("policy_created", "security", "Deny policy created"),
    ("policy_deleted", "security", "Deny policy deleted"),
    ("team_created", "tenant_management", "Team created"),
    (
        "team_moved",
        "tenant_management",
        "Team moved under another parent",
    ),
    (
        "team_member_added",
        "tenant_management",
        "Member added to a team",
    ),
    (
        "team_member_removed",
        "tenant_management",
        "Member removed from a team",
    ),
    ("invitation_created", "tenant_management", "Invitation sent"),
    (
        "invitation_accepted",
        "tenant_management",
        "Invitation accepted",
    ),
    (
        "invitation_revoked",
        "tenant_management",
        "Invitation revoked",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut insert = Query::insert();
        insert.into_table(AuditEventTypes::Table).columns([
            AuditEventTypes::EventType,
            AuditEventTypes::Category,
            AuditEventTypes::Description,
        ]);
        for (event_type, category, description) in EVENTS {
            insert.values_panic([
                (*event_type).into(),
                (*category).into(),
                (*description).into(),
            ]);
        }
        manager.exec_stmt(insert).await
    }

    /// Removes the event types no audit row uses. Types the trail already records stay
    /// in the catalogue: deleting them would mean deleting audit history (their rows'
    /// foreign key forbids it), and a rollback never does that. Consequence: applying
    /// this migration again after such a rollback fails on the kept types, so roll it
    /// back only on the way down to migration 9, or restore a backup instead.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let codes: Vec<&str> = EVENTS.iter().map(|(code, _, _)| *code).collect();
        let used = Query::select()
            .expr(Expr::val(1))
            .from(AuditLogs::Table)
            .and_where(
                Expr::col((AuditLogs::Table, AuditLogs::EventType))
                    .equals((AuditEventTypes::Table, AuditEventTypes::EventType)),
            )
            .to_owned();
        manager
            .exec_stmt(
                Query::delete()
                    .from_table(AuditEventTypes::Table)
                    .and_where(Expr::col(AuditEventTypes::EventType).is_in(codes))
                    .and_where(Expr::exists(used).not())
                    .to_owned(),
            )
            .await
    }
}
