//! What the benchmarks share: the store sizes asked for, where generated
//! stores are kept between runs, and how they are filled.

use std::path::PathBuf;

use aegis_core::{BanEvent, Storage};

/// Events per batch when a store is filled, as `aegis import` stores them.
pub const BULK: usize = 100_000;

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

/// Stores `events` in `store`, [`BULK`] at a time, holding one batch in memory.
pub async fn load(store: &dyn Storage, events: impl IntoIterator<Item = BanEvent>) {
    let mut batch = Vec::with_capacity(BULK);
    for e in events {
        batch.push(e);
        if batch.len() == BULK {
            store.record_batch(&batch).await.expect("batch");
            batch.clear();
        }
    }
    store.record_batch(&batch).await.expect("batch");
}
