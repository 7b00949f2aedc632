//! What the benchmarks share: the store sizes asked for, and where
//! generated stores are kept between runs.

use std::path::PathBuf;

/// The store sizes in `AEGIS_BENCH_SIZES` (comma-separated event counts),
/// else `default`'s.
pub fn sizes(default: &str) -> Vec<usize> {
    std::env::var("AEGIS_BENCH_SIZES")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// `target/aegis-bench/`, made when missing: generated stores take minutes
/// to make, so the benchmarks keep them there for later runs.
pub fn dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/aegis-bench");
    std::fs::create_dir_all(&dir).expect("bench directory");
    dir
}
