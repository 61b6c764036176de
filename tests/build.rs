//! Fingerprints the migration sources, so the PostgreSQL template database that tests
//! clone is rebuilt exactly when a migration changes.

use sha2::{Digest, Sha256};
use std::fs;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migration/src");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("migration/src exists")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.file_name().unwrap_or_default().as_encoded_bytes());
        hasher.update(fs::read(&file).expect("migration sources are readable"));
    }
    let digest = hex::encode(hasher.finalize());
    println!("cargo:rustc-env=MIGRATIONS_FINGERPRINT={}", &digest[..16]);
}
