//! The `migration` binary as an operator runs it: exit codes, banner, refusals.

use std::path::PathBuf;
use std::process::{Command, Output};

fn scratch_sqlite(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("saas-db-binary-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{name}-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn migration(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_migration"));
    command
        .args(args)
        .env_remove("APP_ENV")
        .env_remove("MIGRATION_ENV")
        .env_remove("DATABASE_URL")
        // An empty directory, so no developer's .env file leaks into the test.
        .current_dir(std::env::temp_dir());
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("the binary runs")
}

#[test]
fn help_lists_the_sea_orm_cli_commands_and_the_safety_rules() {
    let out = migration(&["--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "up",
        "down",
        "status",
        "fresh",
        "refresh",
        "reset",
        "generate",
        "--confirm",
        "MIGRATE PRODUCTION",
    ] {
        assert!(help.contains(word), "--help mentions {word}");
    }
}

#[test]
fn lint_help_describes_every_option() {
    let out = migration(&["lint", "--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let options = help.split("Options:").nth(1).expect("an options list");
    // clap's own notes, such as `[default: text]`, are not a description.
    let is_description = |text: &str| {
        let text = text.trim();
        !text.is_empty() && !text.starts_with('[') && !text.starts_with('-')
    };
    let lines: Vec<&str> = options.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let option = line.trim();
        if !option.starts_with('-') {
            continue;
        }
        // The description follows the option on its line, or (when the help is too wide)
        // on the next one.
        let same_line = option
            .split_once("  ")
            .is_some_and(|(_, rest)| is_description(rest));
        let next_line = lines.get(i + 1).is_some_and(|next| is_description(next));
        assert!(
            same_line || next_line,
            "{option} has no description:\n{help}"
        );
    }
}

#[test]
fn up_then_status_json_then_fresh_refused_in_production() {
    let path = scratch_sqlite("prod");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let up = migration(
        &["-u", &url, "up", "--confirm", "MIGRATE PRODUCTION"],
        &[("APP_ENV", "production")],
    );
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let banner = String::from_utf8_lossy(&up.stderr);
    assert!(
        banner.contains("environment   production") && banner.contains("SQLite"),
        "{banner}"
    );

    let status = migration(
        &["-u", &url, "status", "--format", "json"],
        &[("APP_ENV", "production")],
    );
    assert!(status.status.success());
    let json: serde_json::Value =
        serde_json::from_slice(&status.stdout).expect("stdout is pure JSON");
    assert_eq!(json["database_environment"], "production");
    assert_eq!(json["pending"].as_array().map(Vec::len), Some(0));

    let fresh = migration(
        &["-u", &url, "fresh", "--confirm", "MIGRATE PRODUCTION"],
        &[("APP_ENV", "production")],
    );
    assert_eq!(fresh.status.code(), Some(2), "refusals exit with 2");
    assert!(String::from_utf8_lossy(&fresh.stderr).contains("never run against production"));

    // No terminal and no --confirm: refused, with the flag to use.
    let down = migration(&["-u", &url, "down"], &[("APP_ENV", "production")]);
    assert_eq!(down.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&down.stderr).contains("--confirm \"MIGRATE PRODUCTION\""));
    let _ = std::fs::remove_file(path);
}

#[test]
fn password_in_url_is_masked_in_the_banner() {
    let out = migration(
        &["-u", "postgres://app:s3cret@127.0.0.1:1/none", "status"],
        &[("DB_CONNECT_TIMEOUT", "1")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nothing listens on port 1");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    assert!(stderr.contains("****"), "{stderr}");
}

#[test]
fn unknown_environment_is_an_error_not_a_default() {
    let out = migration(&["status"], &[("APP_ENV", "prodution")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an environment"));
}

#[test]
fn migration_list_stays_rewritable_by_generate() {
    // sea-orm-cli's `generate` replaces everything from the first `vec![` to the last
    // `]` + newline with the new list; anything else in that span would be lost.
    let lib = include_str!("../src/lib.rs");
    assert_eq!(lib.matches("vec![").count(), 1, "exactly one vec! literal");
    let tail = &lib[lib.find("vec![").expect("one")..];
    let last_bracket_line = tail.rfind("]\n").expect("the list ends");
    assert!(
        tail[..last_bracket_line]
            .lines()
            .skip(1)
            .all(|l| l.trim().starts_with("Box::new(") || l.trim().is_empty()),
        "only migrations between vec![ and the last bracket"
    );
}

#[test]
fn env_file_of_the_environment_is_loaded_before_the_shared_one() {
    let dir = std::env::temp_dir().join(format!("dotenv-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let wanted = dir.join("from-env-test.sqlite");
    let ignored = dir.join("from-env.sqlite");
    std::fs::write(
        dir.join(".env.test"),
        format!("DATABASE_URL=sqlite://{}?mode=rwc\n", wanted.display()),
    )
    .expect("writes");
    std::fs::write(
        dir.join(".env"),
        format!("DATABASE_URL=sqlite://{}?mode=rwc\n", ignored.display()),
    )
    .expect("writes");
    let out = Command::new(env!("CARGO_BIN_EXE_migration"))
        .arg("status")
        .env_remove("DATABASE_URL")
        .env_remove("MIGRATION_ENV")
        .env("APP_ENV", "test")
        .current_dir(&dir)
        .output()
        .expect("runs");
    let banner = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{banner}");
    assert!(
        banner.contains("from-env-test.sqlite") && banner.contains("environment   test"),
        "{banner}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `keys status` names the ring's ids, never material; the development key only where
/// APP_ENV says local or test; production without keys refuses.
#[test]
fn keys_status_names_the_ring_and_refuses_without_keys() {
    let db = scratch_sqlite("keys-status");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let out = migration(
        &["keys", "status"],
        &[("APP_ENV", "test"), ("DATABASE_URL", &url)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("current key   dev"), "{stdout}");

    let key = "k2026:ERERERERERERERERERERERERERERERERERERERERERE=";
    let out = migration(
        &["keys", "status"],
        &[
            ("APP_ENV", "test"),
            ("DATABASE_URL", &url),
            ("FIELD_ENCRYPTION_KEYS", key),
        ],
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && printed.contains("current key   k2026"),
        "{printed}"
    );
    assert!(
        !printed.contains("ERERERER"),
        "no key material printed: {printed}"
    );

    let out = migration(
        &["keys", "status"],
        &[("APP_ENV", "production"), ("DATABASE_URL", &url)],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FIELD_ENCRYPTION_KEYS"));
    let out = migration(&["keys", "status"], &[("DATABASE_URL", &url)]);
    assert!(
        !out.status.success(),
        "no APP_ENV: the development key is not used"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no APP_ENV"));

    let out = migration(&["up"], &[("APP_ENV", "test"), ("DATABASE_URL", &url)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = migration(
        &["keys", "reencrypt"],
        &[("APP_ENV", "test"), ("DATABASE_URL", &url)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The registered column is walked; an empty one has nothing to rewrite.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("mfa_factors.secret: 0 scanned, 0 rewritten"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_file(&db);
}
