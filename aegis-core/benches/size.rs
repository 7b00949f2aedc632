//! Size benchmark: bytes on disk per stored event, with one matched line per
//! ban and with none, each store with its summaries and rolling windows
//! built, beside fail2ban's own database (schema 4) holding the same bans.
//!
//! `cargo bench -p aegis-core --bench size` (sizes: `AEGIS_BENCH_SIZES=1000000,10000000`).
//! The stores are made in `target/aegis-bench/` and deleted afterwards.

use std::path::Path;
use std::time::Instant;

use aegis_core::StorageUrl;
use aegis_testkit::traffic::year_of_attacks;
use aegis_testkit::{bench, open_sqlite as open};
use chrono::Utc;
use rusqlite::Connection;

/// Where a store's pages go: (label, the tables and indexes it sums).
const PARTS: [(&str, &[&str]); 5] = [
    ("events", &["events"]),
    ("their indexes", &["events_key", "events_time", "events_ip"]),
    ("addresses", &["ips"]),
    (
        "per-day and 15-minute summaries",
        &["ip_day", "ban_slots", "ban_totals", "country_slots"],
    ),
    (
        "rolling windows",
        &[
            "win_ip",
            "win_ip_rank",
            "win_ip_jail",
            "win_ip_host",
            "win_attr",
            "win_attr_rank",
        ],
    ),
];

/// The file's size once its write-ahead log is checkpointed into it.
fn file_bytes(path: &Path) -> u64 {
    let conn = Connection::open(path).expect("open");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    drop(conn);
    std::fs::metadata(path).expect("size").len()
}

/// Deletes the SQLite file at `path` with its journal.
async fn remove(path: &Path) {
    let url = StorageUrl::parse(&format!("sqlite://{}", path.display())).expect("store URL");
    aegis_core::destroy(&url).await.expect("remove the store");
}

fn per_event(bytes: u64, n: usize) -> String {
    format!("{:>8.1} B", bytes as f64 / n as f64)
}

/// Stores `n` generated bans (with or without their matched line), brings the
/// summaries up to date as an import's end does, and prints where the bytes went.
async fn aegis_store(dir: &Path, n: usize, matched_lines: bool) {
    let path = dir.join(format!("size-{n}-{matched_lines}.db"));
    remove(&path).await;
    let store = open(&path).await;
    let t = Instant::now();
    let events = year_of_attacks(n, Utc::now(), 42).map(|mut e| {
        if !matched_lines {
            e.matches.clear();
        }
        e
    });
    bench::load(store.as_ref(), events).await;
    store.maintain().await.expect("maintain");
    drop(store);
    let total = file_bytes(&path);
    let label = if matched_lines {
        "Aegis, one matched line per ban"
    } else {
        "Aegis, no matched lines"
    };
    println!(
        "{label:<40} {}  ({:.0} MB, stored and summarised in {:.0} s)",
        per_event(total, n),
        total as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let conn = Connection::open(&path).expect("open");
    let pages = |names: &[&str]| -> u64 {
        names
            .iter()
            .map(|name| {
                conn.query_row(
                    "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?1",
                    [name],
                    |r| r.get::<_, i64>(0),
                )
                .expect("dbstat") as u64
            })
            .sum()
    };
    let mut counted = 0;
    for (part, names) in PARTS {
        let bytes = pages(names);
        counted += bytes;
        println!("  {part:<38} {}", per_event(bytes, n));
    }
    println!(
        "  {:<38} {}",
        "the rest (free pages, other tables)",
        per_event(total - counted, n)
    );
    if matched_lines {
        let text: i64 = conn
            .query_row("SELECT sum(length(matches)) FROM events", [], |r| r.get(0))
            .expect("matched lines");
        println!(
            "  {:<38} {}",
            "of the events: matched lines (JSON)",
            per_event(text as u64, n)
        );
    }
    drop(conn);
    remove(&path).await;
}

/// fail2ban's database holding the same bans: a row in `bans` for each, the
/// latest per address and jail in `bips`, with fail2ban's indexes and its
/// `data` as it writes it.
async fn fail2ban_db(dir: &Path, n: usize) {
    let path = dir.join(format!("size-{n}-fail2ban.sqlite3"));
    remove(&path).await;
    let mut conn = Connection::open(&path).expect("open");
    conn.execute_batch(
        "CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL,
             bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON);
         CREATE INDEX bans_jail_timeofban_ip ON bans(jail, timeofban);
         CREATE INDEX bans_jail_ip ON bans(jail, ip);
         CREATE INDEX bans_ip ON bans(ip);
         CREATE TABLE bips(ip TEXT NOT NULL, jail TEXT NOT NULL, timeofban INTEGER NOT NULL,
             bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON,
             PRIMARY KEY(ip, jail));
         CREATE INDEX bips_timeofban ON bips(timeofban);
         CREATE INDEX bips_ip ON bips(ip);",
    )
    .expect("fail2ban's schema");
    let tx = conn.transaction().expect("transaction");
    {
        let mut bans = tx
            .prepare("INSERT INTO bans VALUES (?1, ?2, ?3, ?4, 1, ?5)")
            .expect("insert");
        let mut bips = tx
            .prepare("INSERT OR REPLACE INTO bips VALUES (?2, ?1, ?3, ?4, 1, ?5)")
            .expect("insert");
        for e in year_of_attacks(n, Utc::now(), 42) {
            // Python's json.dumps, as fail2ban writes it.
            let data = format!(
                "{{\"matches\": {}, \"failures\": {}}}",
                serde_json::to_string(&e.matches).expect("json"),
                e.failures.unwrap_or(0)
            );
            let row = rusqlite::params![
                e.jail,
                e.ip.to_string(),
                e.time.timestamp(),
                e.bantime.unwrap_or(600),
                data
            ];
            bans.execute(row).expect("ban");
            bips.execute(row).expect("bip");
        }
    }
    tx.commit().expect("commit");
    drop(conn);
    let total = file_bytes(&path);
    println!(
        "{:<40} {}  ({:.0} MB)",
        "fail2ban's database, the same bans",
        per_event(total, n),
        total as f64 / 1e6
    );
    remove(&path).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = bench::dir();
    for n in bench::sizes("1000000,10000000") {
        println!("\n{n} generated bans over a year (bytes per ban, file size after a checkpoint)");
        aegis_store(&dir, n, true).await;
        aegis_store(&dir, n, false).await;
        fail2ban_db(&dir, n).await;
    }
}
