//! Fixture profiles as typed tables. Every email, name and slug here is
//! stable across versions: tests and documentation rely on them. Add rows; do not
//! rename them.

use entity::tenancy::memberships::MembershipRole;
use entity::tenancy::team_members::TeamRole;
use entity::tenancy::tenants::{DataRegion, PlanTier};

/// The one password of every fixture user.
pub const SHARED_PASSWORD: &str = "Test123!@#";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileName {
    /// One tenant per seed system (Acme, Tech Startup, Healthcare Co, Healthy Stellar,
    /// Rento) with their users.
    Demo,
    /// Acme with Alice and Bob only: the smallest useful data set.
    Minimal,
}

impl ProfileName {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileName::Demo => "demo",
            ProfileName::Minimal => "minimal",
        }
    }

    pub fn profile(self) -> Profile {
        match self {
            ProfileName::Demo => Profile {
                tenants: DEMO_TENANTS,
                users: DEMO_USERS,
                roles: DEMO_ROLES,
                teams: DEMO_TEAMS,
                team_members: DEMO_TEAM_MEMBERS,
                assignments: DEMO_ASSIGNMENTS,
                policies: DEMO_POLICIES,
                invitations: DEMO_INVITATIONS,
                api_keys: DEMO_API_KEYS,
            },
            // The other tables are shared: rows of tenants or users outside the
            // profile are skipped by the loader.
            ProfileName::Minimal => Profile {
                tenants: &DEMO_TENANTS[..1],
                users: &DEMO_USERS[..2],
                ..ProfileName::Demo.profile()
            },
        }
    }
}

pub struct Profile {
    pub tenants: &'static [TenantFixture],
    /// In creation order. A tenant's owner must come before its other members.
    pub users: &'static [UserFixture],
    /// System roles (no tenant) first, then tenants' own roles; parents before children.
    pub roles: &'static [RoleFixture],
    /// Parents before children.
    pub teams: &'static [TeamFixture],
    pub team_members: &'static [TeamMemberFixture],
    pub assignments: &'static [AssignmentFixture],
    pub policies: &'static [PolicyFixture],
    pub invitations: &'static [InvitationFixture],
    pub api_keys: &'static [ApiKeyFixture],
}

/// A role: a system role when `tenant` is `None`.
pub struct RoleFixture {
    pub tenant: Option<&'static str>,
    pub name: &'static str,
    pub description: &'static str,
    pub permissions: &'static [(&'static str, &'static str)],
    pub parents: &'static [&'static str],
}

pub struct TeamFixture {
    pub tenant: &'static str,
    pub name: &'static str,
    pub parent: Option<&'static str>,
}

pub struct TeamMemberFixture {
    pub tenant: &'static str,
    pub team: &'static str,
    pub email: &'static str,
    pub role: TeamRole,
}

/// A role for a member: the tenant's role of that name, else the system role.
pub struct AssignmentFixture {
    pub tenant: &'static str,
    pub email: &'static str,
    pub role: &'static str,
    /// Scoped to this team (and its sub-teams); tenant-wide when `None`.
    pub team: Option<&'static str>,
    /// A daily window, `HH:MM` UTC.
    pub window: Option<(&'static str, &'static str)>,
}

pub struct PolicyFixture {
    pub tenant: &'static str,
    pub name: &'static str,
    pub resource: &'static str,
    pub action: &'static str,
    /// Applies to holders of this role only; everyone when `None`.
    pub role: Option<&'static str>,
}

pub struct InvitationFixture {
    pub tenant: &'static str,
    pub email: &'static str,
    pub role: &'static str,
    pub team: Option<&'static str>,
}

/// An API key, created by the tenant's owner; it never expires.
pub struct ApiKeyFixture {
    pub tenant: &'static str,
    pub name: &'static str,
    pub scopes: &'static [&'static str],
}

pub struct TenantFixture {
    pub slug: &'static str,
    pub name: &'static str,
    pub plan_tier: PlanTier,
    pub data_region: DataRegion,
    /// Feature flags, a JSON object.
    pub features: &'static str,
    /// The product the tenant stands for, as the summary names it.
    pub origin: &'static str,
}

pub struct UserFixture {
    pub email: &'static str,
    pub display_name: &'static str,
    pub timezone: &'static str,
    pub language: &'static str,
    pub tenant: &'static str,
    /// `Owner` creates the tenant; others are added by that owner.
    pub role: MembershipRole,
    /// What the person is in the seed's story (clinic roles become RBAC roles later).
    pub persona: &'static str,
    /// Has signed in once: a session of its own.
    pub signs_in: bool,
}

const fn user(
    email: &'static str,
    display_name: &'static str,
    tenant: &'static str,
    role: MembershipRole,
    persona: &'static str,
) -> UserFixture {
    UserFixture {
        email,
        display_name,
        timezone: "UTC",
        language: "en",
        tenant,
        role,
        persona,
        signs_in: false,
    }
}

const fn japanese(mut fixture: UserFixture) -> UserFixture {
    fixture.timezone = "Asia/Tokyo";
    fixture.language = "ja";
    fixture
}

const fn signs_in(mut fixture: UserFixture) -> UserFixture {
    fixture.signs_in = true;
    fixture
}

use MembershipRole::{Member, Owner};

const DEMO_TENANTS: &[TenantFixture] = &[
    TenantFixture {
        slug: "acme",
        name: "Acme Corporation",
        plan_tier: PlanTier::Enterprise,
        data_region: DataRegion::Us,
        features: r#"{"sso": true, "custom_domain": true, "advanced_security": true}"#,
        origin: "Agent SaaS (multi-tenant)",
    },
    TenantFixture {
        slug: "techstartup",
        name: "Tech Startup Inc",
        plan_tier: PlanTier::Pro,
        data_region: DataRegion::Us,
        features: r#"{"agents": true}"#,
        origin: "Agent SaaS (multi-tenant)",
    },
    TenantFixture {
        slug: "healthcare",
        name: "Healthcare Co",
        plan_tier: PlanTier::Free,
        data_region: DataRegion::Us,
        features: r#"{}"#,
        origin: "Agent SaaS (multi-tenant)",
    },
    TenantFixture {
        slug: "healthy-stellar",
        name: "Healthy Stellar",
        plan_tier: PlanTier::Enterprise,
        data_region: DataRegion::Us,
        features: r#"{"protected_records": true, "mfa_required": true}"#,
        origin: "Healthy Stellar (clinic)",
    },
    TenantFixture {
        slug: "rento",
        name: "Rento",
        plan_tier: PlanTier::Pro,
        data_region: DataRegion::Jp,
        features: r#"{"appi": true, "property_search": true}"#,
        origin: "Rento (rental, APPI)",
    },
];

const DEMO_USERS: &[UserFixture] = &[
    signs_in(user(
        "alice@acme.com",
        "Alice Anderson",
        "acme",
        Owner,
        "org admin",
    )),
    signs_in(user(
        "bob@acme.com",
        "Bob Brown",
        "acme",
        Member,
        "org member",
    )),
    signs_in(user(
        "charlie@techstartup.io",
        "Charlie Chen",
        "techstartup",
        Owner,
        "org admin",
    )),
    user(
        "diana@healthcare.com",
        "Diana Davis",
        "healthcare",
        Owner,
        "org admin",
    ),
    user(
        "admin@healthystellar.com",
        "Stellar Admin",
        "healthy-stellar",
        Owner,
        "clinic admin",
    ),
    user(
        "dr.smith@healthystellar.com",
        "Dr. Sarah Smith",
        "healthy-stellar",
        Member,
        "physician, cardiology",
    ),
    user(
        "dr.johnson@healthystellar.com",
        "Dr. James Johnson",
        "healthy-stellar",
        Member,
        "physician, neurology",
    ),
    user(
        "nurse.williams@healthystellar.com",
        "Emma Williams",
        "healthy-stellar",
        Member,
        "nurse",
    ),
    user(
        "nurse.garcia@healthystellar.com",
        "Maria Garcia",
        "healthy-stellar",
        Member,
        "nurse",
    ),
    user(
        "patient1@example.com",
        "Peter Parker",
        "healthy-stellar",
        Member,
        "patient",
    ),
    user(
        "patient2@example.com",
        "Mary Jones",
        "healthy-stellar",
        Member,
        "patient",
    ),
    user(
        "patient3@example.com",
        "Henry Ford",
        "healthy-stellar",
        Member,
        "patient",
    ),
    user(
        "billing@healthystellar.com",
        "Bill Taylor",
        "healthy-stellar",
        Member,
        "billing staff",
    ),
    user(
        "records@healthystellar.com",
        "Rachel Moore",
        "healthy-stellar",
        Member,
        "medical records",
    ),
    japanese(user(
        "tanaka@rento.jp",
        "田中 太郎",
        "rento",
        Owner,
        "real-estate agent",
    )),
    japanese(user(
        "sato.hanako@example.jp",
        "佐藤 花子",
        "rento",
        Member,
        "renter",
    )),
    japanese(user(
        "suzuki.ichiro@example.jp",
        "鈴木 一郎",
        "rento",
        Member,
        "renter",
    )),
];

const fn role(
    tenant: Option<&'static str>,
    name: &'static str,
    description: &'static str,
    permissions: &'static [(&'static str, &'static str)],
    parents: &'static [&'static str],
) -> RoleFixture {
    RoleFixture {
        tenant,
        name,
        description,
        permissions,
        parents,
    }
}

/// The system roles, then Healthy Stellar's clinic roles and Rento's agent role.
const DEMO_ROLES: &[RoleFixture] = &[
    role(
        None,
        "org_member",
        "Regular member",
        &[("organization", "read"), ("agents", "read")],
        &[],
    ),
    role(
        None,
        "agent_user",
        "Can run AI agents",
        &[("agents", "run")],
        &["org_member"],
    ),
    role(
        None,
        "org_admin",
        "Organization administrator",
        &[
            ("organization", "*"),
            ("members", "*"),
            ("roles", "*"),
            ("agents", "*"),
        ],
        &["agent_user"],
    ),
    role(
        None,
        "super_admin",
        "Full system access",
        &[("*", "*")],
        &[],
    ),
    role(
        Some("acme"),
        "release_manager",
        "Ships agent releases",
        &[("releases", "*")],
        &["agent_user"],
    ),
    role(
        Some("acme"),
        "occupational_health",
        "Keeps employees' occupational health records",
        &[("records", "write"), ("records", "grant")],
        &[],
    ),
    role(
        Some("healthy-stellar"),
        "patient",
        "Reads own records",
        &[("records", "read_own")],
        &[],
    ),
    role(
        Some("healthy-stellar"),
        "nurse",
        "Reads patient records",
        &[("records", "read")],
        &[],
    ),
    role(
        Some("healthy-stellar"),
        "physician",
        "Writes records; opens one without a grant in an emergency",
        &[("records", "write"), ("records", "break_glass")],
        &["nurse"],
    ),
    role(
        Some("healthy-stellar"),
        "medical_records",
        "Keeps and exports records",
        &[("records", "export")],
        &["nurse"],
    ),
    role(
        Some("healthy-stellar"),
        "billing_staff",
        "Billing",
        &[("billing", "*")],
        &[],
    ),
    role(
        Some("healthy-stellar"),
        "admin",
        "Clinic administrator",
        &[("users", "*"), ("records", "*")],
        &["org_admin"],
    ),
    role(
        Some("rento"),
        "agent",
        "Real-estate agent",
        &[("properties", "*"), ("consent", "read")],
        &["org_member"],
    ),
];

const fn team(
    tenant: &'static str,
    name: &'static str,
    parent: Option<&'static str>,
) -> TeamFixture {
    TeamFixture {
        tenant,
        name,
        parent,
    }
}

/// Acme's tree is five levels deep, as the access benchmark needs.
const DEMO_TEAMS: &[TeamFixture] = &[
    team("acme", "Company", None),
    team("acme", "Engineering", Some("Company")),
    team("acme", "Platform", Some("Engineering")),
    team("acme", "Databases", Some("Platform")),
    team("acme", "Migrations", Some("Databases")),
    team("acme", "Sales", Some("Company")),
    team("healthy-stellar", "Clinic", None),
    team("healthy-stellar", "Cardiology", Some("Clinic")),
    team("healthy-stellar", "Neurology", Some("Clinic")),
];

const fn team_member(
    tenant: &'static str,
    team: &'static str,
    email: &'static str,
    role: TeamRole,
) -> TeamMemberFixture {
    TeamMemberFixture {
        tenant,
        team,
        email,
        role,
    }
}

const DEMO_TEAM_MEMBERS: &[TeamMemberFixture] = &[
    team_member("acme", "Company", "alice@acme.com", TeamRole::Owner),
    team_member("acme", "Platform", "bob@acme.com", TeamRole::Member),
    team_member(
        "healthy-stellar",
        "Cardiology",
        "dr.smith@healthystellar.com",
        TeamRole::Admin,
    ),
    team_member(
        "healthy-stellar",
        "Neurology",
        "dr.johnson@healthystellar.com",
        TeamRole::Admin,
    ),
    team_member(
        "healthy-stellar",
        "Cardiology",
        "nurse.williams@healthystellar.com",
        TeamRole::Member,
    ),
];

const fn assign(
    tenant: &'static str,
    email: &'static str,
    role: &'static str,
) -> AssignmentFixture {
    AssignmentFixture {
        tenant,
        email,
        role,
        team: None,
        window: None,
    }
}

const DEMO_ASSIGNMENTS: &[AssignmentFixture] = &[
    assign("acme", "alice@acme.com", "org_admin"),
    assign("acme", "alice@acme.com", "release_manager"),
    assign("acme", "alice@acme.com", "occupational_health"),
    assign("acme", "bob@acme.com", "org_member"),
    // Bob runs agents, but only in Engineering and the teams below it.
    AssignmentFixture {
        team: Some("Engineering"),
        ..assign("acme", "bob@acme.com", "agent_user")
    },
    assign("techstartup", "charlie@techstartup.io", "org_admin"),
    assign("healthcare", "diana@healthcare.com", "org_admin"),
    assign("healthy-stellar", "admin@healthystellar.com", "admin"),
    assign(
        "healthy-stellar",
        "dr.smith@healthystellar.com",
        "physician",
    ),
    assign(
        "healthy-stellar",
        "dr.johnson@healthystellar.com",
        "physician",
    ),
    // A day shift, 07:00 to 19:00 UTC.
    AssignmentFixture {
        window: Some(("07:00", "19:00")),
        ..assign(
            "healthy-stellar",
            "nurse.williams@healthystellar.com",
            "nurse",
        )
    },
    // And a night shift that runs past midnight.
    AssignmentFixture {
        window: Some(("19:00", "07:00")),
        ..assign(
            "healthy-stellar",
            "nurse.garcia@healthystellar.com",
            "nurse",
        )
    },
    assign("healthy-stellar", "patient1@example.com", "patient"),
    assign("healthy-stellar", "patient2@example.com", "patient"),
    assign("healthy-stellar", "patient3@example.com", "patient"),
    assign(
        "healthy-stellar",
        "billing@healthystellar.com",
        "billing_staff",
    ),
    assign(
        "healthy-stellar",
        "records@healthystellar.com",
        "medical_records",
    ),
    assign("rento", "tanaka@rento.jp", "agent"),
    assign("rento", "sato.hanako@example.jp", "org_member"),
    assign("rento", "suzuki.ichiro@example.jp", "org_member"),
];

const DEMO_POLICIES: &[PolicyFixture] = &[
    PolicyFixture {
        tenant: "acme",
        name: "agents-are-never-deleted",
        resource: "agents",
        action: "delete",
        role: None,
    },
    PolicyFixture {
        tenant: "healthy-stellar",
        name: "patients-never-export",
        resource: "records",
        action: "export",
        role: Some("patient"),
    },
];

const DEMO_INVITATIONS: &[InvitationFixture] = &[
    InvitationFixture {
        tenant: "acme",
        email: "newhire@acme.com",
        role: "org_member",
        team: Some("Engineering"),
    },
    InvitationFixture {
        tenant: "healthy-stellar",
        email: "nurse.lee@healthystellar.com",
        role: "nurse",
        team: Some("Neurology"),
    },
];

/// Tech Startup's key is the one to try API authentication with; Acme and Healthy
/// Stellar have one each so that every tenant table holds rows of the two tenants
/// the isolation suite sets against each other.
const DEMO_API_KEYS: &[ApiKeyFixture] = &[
    ApiKeyFixture {
        tenant: "techstartup",
        name: "CI deploy",
        scopes: &["agents:read", "agents:run"],
    },
    ApiKeyFixture {
        tenant: "acme",
        name: "Reporting export",
        scopes: &["organization:read"],
    },
    ApiKeyFixture {
        tenant: "healthy-stellar",
        name: "Records sync",
        scopes: &["records:read"],
    },
];
