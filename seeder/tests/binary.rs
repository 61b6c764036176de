//! The `seeder` binary as a developer runs it.

use std::process::Command;

#[test]
fn production_is_refused_before_anything_is_created() {
    let dir = std::env::temp_dir().join("saas-db-binary-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("seeder-prod-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    for (var, value) in [
        ("APP_ENV", "production"),
        ("MIGRATION_ENV", "production"),
        ("APP_ENV", "prod"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_seeder"))
            .args([
                "--database-url",
                &format!("sqlite://{}?mode=rwc", path.display()),
            ])
            .env_remove("APP_ENV")
            .env_remove("MIGRATION_ENV")
            .env(var, value)
            .current_dir(&dir)
            .output()
            .expect("the binary runs");
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(var) && stderr.contains("nothing was written"),
            "{stderr}"
        );
        assert!(!path.exists(), "not even the database file was created");
    }
}

#[test]
fn help_explains_every_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_seeder"))
        .arg("--help")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--database-url",
        "--profile",
        "--seed",
        "--reset",
        "--no-reset",
        "--confirm",
        "--lock-timeout",
        "MIGRATE STAGING",
        "production",
    ] {
        assert!(help.contains(word), "--help mentions {word}");
    }
}
