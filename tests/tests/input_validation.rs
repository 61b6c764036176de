//! Bad input gets a typed error naming the field (no database needed: parsing
//! happens before any query).

use service::ServiceError;
use service::identity::NewUser;
use service::input::{DisplayName, Email, Language, Password, Slug, Timezone};
use service::tenancy::NewTenant;

fn field_of(err: ServiceError) -> &'static str {
    match err {
        ServiceError::Validation { field, .. } => field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn email_malformed_empty_overlong_or_decorated_is_rejected() {
    let overlong = format!("{}@example.com", "a".repeat(250));
    for bad in [
        "",
        "   ",
        "plainaddress",
        "@example.com",
        "a@",
        "a@localhost",
        "Alice <alice@acme.com>",
        "a@[10.0.0.1]",
        overlong.as_str(),
        "a b@example.com",
    ] {
        let err = Email::parse(bad).expect_err(bad);
        assert_eq!(field_of(err), "email", "{bad:?}");
    }
}

#[test]
fn email_is_trimmed_and_lowercased() {
    assert_eq!(
        Email::parse("  Alice@ACME.com ").expect("valid").as_str(),
        "alice@acme.com"
    );
}

#[test]
fn email_compatibility_forms_are_one_address() {
    // Full-width letters and at sign, a ligature, a superscript: NFKC folds them.
    for (typed, stored) in [
        ("ａｌｉｃｅ＠ａｃｍｅ．ｃｏｍ", "alice@acme.com"),
        ("ﬁnn@example.com", "finn@example.com"),
        ("user²@example.com", "user2@example.com"),
    ] {
        assert_eq!(
            Email::parse(typed).expect(typed).as_str(),
            stored,
            "{typed:?}"
        );
    }
    // Megabytes of input are refused before any normalising work.
    let huge = "ａ".repeat(1_000_000);
    assert_eq!(field_of(Email::parse(&huge).expect_err("huge")), "email");
}

#[test]
fn password_policy_bounds_length() {
    assert_eq!(
        field_of(Password::new("short").expect_err("short")),
        "password"
    );
    assert_eq!(
        field_of(Password::new(&"x".repeat(129)).expect_err("long")),
        "password"
    );
    assert_eq!(
        field_of(Password::for_verification("").expect_err("empty")),
        "password"
    );
    assert!(Password::new("Test123!@#").is_ok());
    assert!(
        Password::for_verification("short").is_ok(),
        "old short passwords can still be checked"
    );
    assert!(!format!("{:?}", Password::new("Test123!@#").expect("valid")).contains("Test"));
}

#[test]
fn display_name_and_slug_reject_bad_text() {
    for bad in ["", "  ", "tab\tname", &"n".repeat(101)] {
        assert_eq!(
            field_of(DisplayName::parse(bad).expect_err(bad)),
            "display_name",
            "{bad:?}"
        );
    }
    assert!(DisplayName::parse(" 佐藤 花子 ").is_ok());
    for bad in [
        "ab",
        "Acme",
        "acme corp",
        "-acme",
        "acme-",
        "acmé",
        &"a".repeat(64),
    ] {
        assert_eq!(
            field_of(Slug::parse(bad).expect_err(bad)),
            "slug",
            "{bad:?}"
        );
    }
    assert!(Slug::parse("healthy-stellar").is_ok());
}

#[test]
fn timezone_and_language_are_shape_checked() {
    assert!(Timezone::parse("Asia/Tokyo").is_ok());
    assert_eq!(
        field_of(Timezone::parse("Not a zone!").expect_err("bad")),
        "timezone"
    );
    assert!(Language::parse("ja-JP").is_ok());
    assert_eq!(
        field_of(Language::parse("123").expect_err("bad")),
        "language"
    );
}

#[test]
fn request_types_report_the_first_bad_field() {
    assert_eq!(
        field_of(NewUser::parse("nope", "Test123!@#", "Alice").expect_err("email")),
        "email"
    );
    assert_eq!(
        field_of(NewUser::parse("a@b.co", "x", "Alice").expect_err("password")),
        "password"
    );
    assert_eq!(
        field_of(NewUser::parse("a@b.co", "Test123!@#", "").expect_err("name")),
        "display_name"
    );
    assert_eq!(
        field_of(NewTenant::parse("x", "Acme").expect_err("slug")),
        "slug"
    );
    assert_eq!(
        field_of(NewTenant::parse("acme", "").expect_err("name")),
        "name"
    );
}
