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

#[test]
fn a_seeder_killed_mid_run_leaves_no_lock_behind() {
    let dir = std::env::temp_dir().join("saas-db-binary-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("seeder-killed-{}.sqlite", std::process::id()));
    let lock_file = dir.join(format!(
        "seeder-killed-{}.sqlite.seed-lock",
        std::process::id()
    ));
    for suffix in ["", ".migrate-lock", ".seed-lock"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let seeder = |timeout: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_seeder"));
        command
            .args(["--database-url", &url, "--lock-timeout", timeout])
            .env_remove("APP_ENV")
            .env_remove("MIGRATION_ENV")
            .env_remove("DATABASE_URL")
            .current_dir(&dir);
        command
    };
    let mut first = seeder("5")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    // Killed once it holds the lock (it notes its pid in the lock file after taking it).
    let holds_lock =
        || std::fs::read_to_string(&lock_file).is_ok_and(|holder| holder.starts_with("pid "));
    let started = std::time::Instant::now();
    while !holds_lock() && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(holds_lock(), "the first seeder took the lock");
    first.kill().expect("kills");
    first.wait().expect("reaped");

    let second = seeder("2").output().expect("runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(!stderr.contains("waiting for another seeder"), "{stderr}");
    for suffix in ["", "-wal", "-shm", ".migrate-lock", ".seed-lock"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}
