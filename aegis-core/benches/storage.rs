//! Storage benchmark: record throughput and dashboard statistics at scale, each
//! printed beside a naive GROUP BY over the raw events table in the same run.
//!
//! `cargo bench -p aegis-core --bench storage` (sizes: `AEGIS_BENCH_SIZES=1000000,10000000`).
//! Generated stores are kept in `target/aegis-bench/` and reused by later runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_testkit::traffic::year_of_attacks;

use aegis_core::{BanEvent, StatsQuery, Storage, TopBy};
use aegis_testkit::open_sqlite as open;
use chrono::{DateTime, Utc};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// p50 and p95.
type Percentiles = (Duration, Duration);

/// Runs `f` `runs` times and returns (p50, p95).
async fn measure<F, Fut, T>(runs: usize, mut f: F) -> Percentiles
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(f().await);
        samples.push(t.elapsed());
    }
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.95),
    )
}

fn naive(conn: &rusqlite::Connection, sql: &str, q: &StatsQuery) -> usize {
    let mut stmt = conn.prepare_cached(sql).expect("naive query");
    let rows = stmt
        .query_map(
            [q.since.timestamp_millis(), q.until.timestamp_millis()],
            |_| Ok(()),
        )
        .expect("naive query runs");
    rows.count()
}

const NAIVE_SUMMARY: &str = "SELECT count(*), count(DISTINCT ip_key), count(DISTINCT country), \
    count(DISTINCT jail), count(DISTINCT host) FROM events \
    WHERE kind = 0 AND restored = 0 AND time >= ?1 AND time < ?2";
const NAIVE_DAILY: &str = "SELECT time / 86400000, count(*) FROM events \
    WHERE kind = 0 AND restored = 0 AND time >= ?1 AND time < ?2 GROUP BY 1";
const NAIVE_TOP: &str =
    "SELECT ip_key, count(*) AS n, min(time), max(time), group_concat(DISTINCT jail) \
    FROM events WHERE kind = 0 AND restored = 0 AND time >= ?1 AND time < ?2 \
    GROUP BY ip_key ORDER BY n DESC LIMIT 10";
const NAIVE_COUNTRIES: &str = "SELECT country, count(*) AS n, count(DISTINCT ip_key) FROM events \
    WHERE kind = 0 AND restored = 0 AND time >= ?1 AND time < ?2 GROUP BY country ORDER BY n DESC LIMIT 10";

async fn record_throughput(dir: &std::path::Path) {
    let path = dir.join("throughput.db");
    let _ = std::fs::remove_file(&path);
    let store = open(&path).await;
    let end = Utc::now();
    let single: Vec<BanEvent> = year_of_attacks(2_000, end, 7).collect();
    let t = Instant::now();
    for e in &single {
        store.record(e).await.expect("record");
    }
    let one = single.len() as f64 / t.elapsed().as_secs_f64();
    let batch: Vec<BanEvent> = year_of_attacks(200_000, end, 8).collect();
    let t = Instant::now();
    for chunk in batch.chunks(10_000) {
        store.record_batch(chunk).await.expect("batch");
    }
    let many = batch.len() as f64 / t.elapsed().as_secs_f64();
    println!("record, one event per transaction: {one:>10.0} events/s");
    println!("record_batch, 10k per batch:       {many:>10.0} events/s  (target >= 200000)");
    drop(store);
    let _ = std::fs::remove_file(&path);
}

async fn store_of(
    dir: &std::path::Path,
    n: usize,
    end: DateTime<Utc>,
) -> (Arc<dyn Storage>, PathBuf) {
    let path = dir.join(format!("events-{n}.db"));
    let store = open(&path).await;
    let have = store
        .count_events(&aegis_core::EventFilter::default())
        .await
        .expect("count") as usize;
    if have < n {
        println!("generating {} events into {} …", n - have, path.display());
        let t = Instant::now();
        let mut batch = Vec::with_capacity(20_000);
        for e in year_of_attacks(n - have, end, 42 + have as u64) {
            batch.push(e);
            if batch.len() == 20_000 {
                store.record_batch(&batch).await.expect("batch");
                batch.clear();
            }
        }
        store.record_batch(&batch).await.expect("batch");
        println!("  generated in {:.1} s", t.elapsed().as_secs_f64());
    }
    (store, path)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::var("AEGIS_BENCH_SIZES")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/aegis-bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    record_throughput(&dir).await;

    let end = Utc::now();
    for n in sizes {
        let (store, path) = store_of(&dir, n, end).await;
        let raw = rusqlite::Connection::open(&path).expect("raw connection");
        println!("\n{n} events ({})", path.display());
        println!(
            "{:<34} {:>10} {:>10} {:>12} {:>10}",
            "statistic", "p50", "p95", "naive p50", "speed-up"
        );
        for (label, days) in [("today (24 h)", 1), ("7 days", 7), ("30 days", 30)] {
            // Each call asks about "the last N days up to now", as a dashboard does.
            let q = move || StatsQuery::last_days(days);
            let cold = Instant::now();
            store.summary(&q()).await.expect("summary");
            println!(
                "{:<34} {:>10}   (first query: builds the window)",
                format!("cold start, {label}"),
                ms(cold.elapsed())
            );
            let fixed = q();
            let runs = 21;
            let rows: [(&str, Percentiles, Percentiles); 4] = [
                (
                    "summary",
                    measure(runs, || async { store.summary(&q()).await }).await,
                    measure(5, || async { naive(&raw, NAIVE_SUMMARY, &fixed) }).await,
                ),
                (
                    "bans per day",
                    measure(runs, || async {
                        store.bans_per_day(&q(), chrono_tz::Europe::Berlin).await
                    })
                    .await,
                    measure(5, || async { naive(&raw, NAIVE_DAILY, &fixed) }).await,
                ),
                (
                    "top offenders (10)",
                    measure(runs, || async { store.top_offenders(&q(), 10).await }).await,
                    measure(5, || async { naive(&raw, NAIVE_TOP, &fixed) }).await,
                ),
                (
                    "top countries (10)",
                    measure(runs, || async { store.top(&q(), TopBy::Country, 10).await }).await,
                    measure(5, || async { naive(&raw, NAIVE_COUNTRIES, &fixed) }).await,
                ),
            ];
            for (name, (p50, p95), (n50, _)) in rows {
                println!(
                    "{:<34} {:>10} {:>10} {:>12} {:>9.1}x",
                    format!("{name}, {label}"),
                    ms(p50),
                    ms(p95),
                    ms(n50),
                    n50.as_secs_f64() / p50.as_secs_f64()
                );
            }
        }
        // A range that fits no window: cost follows the range, not the history.
        let q = StatsQuery::range(
            Utc::now() - chrono::Duration::days(10),
            Utc::now() - chrono::Duration::days(3),
        );
        let (p50, p95) = measure(5, || store.top_offenders(&q, 10)).await;
        let (n50, _) = measure(3, || async { naive(&raw, NAIVE_TOP, &q) }).await;
        println!(
            "{:<34} {:>10} {:>10} {:>12} {:>9.1}x",
            "top offenders, 7 days a week ago",
            ms(p50),
            ms(p95),
            ms(n50),
            n50.as_secs_f64() / p50.as_secs_f64()
        );
    }
}
