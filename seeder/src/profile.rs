//! Fixture profiles as typed tables (DESIGN §7). Every email, name and slug here is
//! stable across versions: tests and documentation rely on them. Add rows; do not
//! rename them.

use entity::tenancy::memberships::MembershipRole;
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
            },
            ProfileName::Minimal => Profile {
                tenants: &DEMO_TENANTS[..1],
                users: &DEMO_USERS[..2],
            },
        }
    }
}

pub struct Profile {
    pub tenants: &'static [TenantFixture],
    /// In creation order. A tenant's owner must come before its other members.
    pub users: &'static [UserFixture],
}

pub struct TenantFixture {
    pub slug: &'static str,
    pub name: &'static str,
    pub plan_tier: PlanTier,
    pub data_region: DataRegion,
    /// Feature flags, a JSON object.
    pub features: &'static str,
    /// Which seed system the tenant stands for.
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
    /// Signs in once during seeding, leaving a session and a `login` event.
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
        origin: "multi-tenant agent SaaS (seed 002)",
    },
    TenantFixture {
        slug: "techstartup",
        name: "Tech Startup Inc",
        plan_tier: PlanTier::Pro,
        data_region: DataRegion::Us,
        features: r#"{"agents": true}"#,
        origin: "multi-tenant agent SaaS (seed 002)",
    },
    TenantFixture {
        slug: "healthcare",
        name: "Healthcare Co",
        plan_tier: PlanTier::Free,
        data_region: DataRegion::Us,
        features: r#"{}"#,
        origin: "multi-tenant agent SaaS (seed 002)",
    },
    TenantFixture {
        slug: "healthy-stellar",
        name: "Healthy Stellar",
        plan_tier: PlanTier::Enterprise,
        data_region: DataRegion::Us,
        features: r#"{"protected_records": true, "mfa_required": true}"#,
        origin: "Healthy Stellar clinic (seed 003)",
    },
    TenantFixture {
        slug: "rento",
        name: "Rento",
        plan_tier: PlanTier::Pro,
        data_region: DataRegion::Jp,
        features: r#"{"appi": true, "property_search": true}"#,
        origin: "Rento rentals, APPI (seed 000)",
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
