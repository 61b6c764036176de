//! Fingerprints the migration sources, so the PostgreSQL template database that tests
//! clone is rebuilt exactly when a migration changes.

use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;

fn main() {
    // Read at run time, not baked in with env!: a target directory copied to another
    // checkout must fingerprint that checkout's migrations.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest_dir).join("../migration/src");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("migration/src exists")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    let mut hasher = Sha256::new();
    // Two checkouts on one machine share the PostgreSQL server: keep their templates
    // apart even while their migrations are equal.
    hasher.update(
        fs::canonicalize(&dir)
            .unwrap_or_else(|_| dir.clone())
            .as_os_str()
            .as_encoded_bytes(),
    );
    for file in files {
        hasher.update(file.file_name().unwrap_or_default().as_encoded_bytes());
        hasher.update(fs::read(&file).expect("migration sources are readable"));
    }
    let digest = hex::encode(hasher.finalize());
    println!("cargo:rustc-env=MIGRATIONS_FINGERPRINT={}", &digest[..16]);
}
