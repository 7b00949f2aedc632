//! Storage benchmark: record throughput and dashboard statistics at scale, each
//! printed beside a naive GROUP BY over the raw events table in the same run.
//!
//! `cargo bench -p aegis-core --bench storage` (sizes: `AEGIS_BENCH_SIZES=1000000,10000000`).
//! Generated stores are kept in `target/aegis-bench/` and reused by later runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_testkit::traffic::year_of_attacks;

use aegis_core::{BanEvent, Facet, Scope, StatsQuery, Storage, TopBy};
use aegis_testkit::{bench, open_sqlite as open};
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

/// The naive summary, country ranking, bans per day and ban count of a view
/// narrowed by `term`.
fn naive_view(term: &str) -> [String; 4] {
    let new_bans = "kind = 0 AND restored = 0 AND time >= ?1 AND time < ?2";
    [
        format!(
            "SELECT count(*), count(DISTINCT ip_key), count(DISTINCT country), \
             count(DISTINCT jail), count(DISTINCT host) FROM events WHERE {new_bans} AND {term}"
        ),
        format!(
            "SELECT country, count(*) AS n, count(DISTINCT ip_key) FROM events \
             WHERE {new_bans} AND {term} GROUP BY country ORDER BY n DESC LIMIT 10"
        ),
        format!(
            "SELECT time / 86400000, count(*) FROM events WHERE {new_bans} AND {term} GROUP BY 1"
        ),
        format!("SELECT count(*) FROM events WHERE {new_bans} AND {term}"),
    ]
}

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
    println!("record_batch, 10k per batch:       {many:>10.0} events/s  (target >= 100000)");
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
        bench::load(
            store.as_ref(),
            year_of_attacks(n - have, end, 42 + have as u64),
        )
        .await;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "  stored in {secs:.1} s ({:.0} events/s, {} per batch, as `aegis import`)",
            (n - have) as f64 / secs,
            bench::BULK
        );
    }
    (store, path)
}

/// What the overview asks for one range (the dashboard runs these together).
async fn overview(store: &dyn Storage, q: &StatsQuery) {
    let _ = tokio::join!(
        store.summary(q),
        store.top_offenders(q, 10),
        store.top(q, TopBy::Country, 300),
        store.top(q, TopBy::Jail, 10),
        store.top(q, TopBy::Host, 10),
        store.top(q, TopBy::Network, 10),
        store.bans_per_day(q, chrono_tz::Europe::Berlin),
    );
}

/// The ranges a dashboard offers, as it asks them: ending now, or (the last)
/// seven days ending a month ago.
/// A range as a dashboard asks it, afresh at each call.
type Range = Box<dyn Fn() -> StatsQuery>;

fn ranges() -> [(&'static str, Range); 6] {
    let last = |days: i64| -> Range { Box::new(move || StatsQuery::last_days(days)) };
    [
        ("24 h", last(1)),
        ("7 d", last(7)),
        ("30 d", last(30)),
        ("90 d", last(90)),
        ("365 d", last(365)),
        (
            "7 d a month ago",
            Box::new(|| {
                let until = Utc::now() - chrono::Duration::days(30);
                StatsQuery::range(until - chrono::Duration::days(7), until)
            }),
        ),
    ]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes = bench::sizes("1000000,10000000");
    let dir = bench::dir();
    record_throughput(&dir).await;

    let end = Utc::now();
    for n in sizes {
        let (store, path) = store_of(&dir, n, end).await;
        let raw = rusqlite::Connection::open(&path).expect("raw connection");
        println!("\n{n} events ({})", path.display());
        // What an import ends with, then the first visit.
        let t = Instant::now();
        store.maintain().await.expect("maintain");
        println!(
            "summaries brought up to date (end of an import): {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        overview(store.as_ref(), &StatsQuery::last_days(30)).await;
        println!(
            "first overview after it (30 d):                 {}",
            ms(t.elapsed())
        );
        println!(
            "{:<36} {:>10} {:>10} {:>12} {:>10}",
            "statistic, range", "p50", "p95", "naive", "speed-up"
        );
        for (label, q) in ranges() {
            let fixed = q();
            let runs = 21;
            let by = |by: TopBy, limit: u32| {
                let (store, q) = (&store, &q);
                measure(
                    runs,
                    move || async move { store.top(&q(), by, limit).await },
                )
            };
            let rows: [(&str, Percentiles, Option<&str>); 9] = [
                (
                    "summary",
                    measure(runs, || async { store.summary(&q()).await }).await,
                    Some(NAIVE_SUMMARY),
                ),
                (
                    "bans per day",
                    measure(runs, || async {
                        store.bans_per_day(&q(), chrono_tz::Europe::Berlin).await
                    })
                    .await,
                    Some(NAIVE_DAILY),
                ),
                (
                    "top offenders (10)",
                    measure(runs, || async { store.top_offenders(&q(), 10).await }).await,
                    Some(NAIVE_TOP),
                ),
                (
                    "top countries (10)",
                    by(TopBy::Country, 10).await,
                    Some(NAIVE_COUNTRIES),
                ),
                ("map (300 countries)", by(TopBy::Country, 300).await, None),
                ("top jails (10)", by(TopBy::Jail, 10).await, None),
                ("top hosts (10)", by(TopBy::Host, 10).await, None),
                ("top ASNs (10)", by(TopBy::Asn, 10).await, None),
                ("top networks (10)", by(TopBy::Network, 10).await, None),
            ];
            for (name, (p50, p95), baseline) in rows {
                let (naive_ms, speed_up) = match baseline {
                    Some(sql) => {
                        let (n50, _) = measure(1, || async { naive(&raw, sql, &fixed) }).await;
                        (
                            ms(n50),
                            format!("{:.1}x", n50.as_secs_f64() / p50.as_secs_f64()),
                        )
                    }
                    None => (String::new(), String::new()),
                };
                println!(
                    "{:<36} {:>10} {:>10} {:>12} {:>10}",
                    format!("{name}, {label}"),
                    ms(p50),
                    ms(p95),
                    naive_ms,
                    speed_up
                );
            }
        }
        // A jail's, a country's and a host's view: the first visit takes the
        // range path and leaves its windows to `maintain` (the dashboard's
        // minute), which later visits read.
        let views = [
            ("jail sshd", Scope::of(Facet::Jail, "sshd"), "jail = 'sshd'"),
            (
                "country CN",
                Scope::of(Facet::Country, "CN"),
                "country = 'CN'",
            ),
            ("host web1", Scope::of(Facet::Host, "web1"), "host = 'web1'"),
        ];
        // A store kept from an earlier run has their windows: drop them, so
        // that the first visit is one.
        raw.execute_batch(
            "UPDATE win_state SET building = 1 WHERE host IS NOT NULL OR jail IS NOT NULL
                OR country IS NOT NULL;
             DELETE FROM win_attr WHERE win IN (SELECT win FROM win_state WHERE building);
             DELETE FROM win_ip WHERE win IN (SELECT win FROM win_state WHERE building);
             DELETE FROM win_ip_jail WHERE win IN (SELECT win FROM win_state WHERE building);
             DELETE FROM win_ip_host WHERE win IN (SELECT win FROM win_state WHERE building);
             DELETE FROM win_state WHERE building;",
        )
        .expect("drop the views' windows");
        let view = |scope: &Scope, days: i64| {
            let mut q = StatsQuery::last_days(days);
            q.scope = scope.clone();
            q
        };
        println!(
            "{:<36} {:>10} {:>10} {:>12}",
            "view, range", "first", "", "naive"
        );
        for (name, scope, term) in &views {
            for days in [7, 365] {
                let q = view(scope, days);
                let (first, _) = measure(1, || async { store.summary(&q).await }).await;
                let (naive_p50, _) =
                    measure(1, || async { naive(&raw, &naive_view(term)[0], &q) }).await;
                println!(
                    "{:<36} {:>10} {:>10} {:>12}",
                    format!("summary, {name}, {days} d, first visit"),
                    ms(first),
                    "",
                    ms(naive_p50)
                );
            }
        }
        // Four views' windows per run: two runs, as two minutes of the dashboard.
        let t = Instant::now();
        for _ in 0..2 {
            store.maintain().await.expect("maintain");
        }
        println!(
            "their windows built by maintain (two runs):   {:.1} s",
            t.elapsed().as_secs_f64()
        );
        for (name, scope, term) in &views {
            for days in [7, 365] {
                let q = || view(scope, days);
                let summary = measure(21, || async { store.summary(&q()).await }).await;
                let countries =
                    measure(21, || async { store.top(&q(), TopBy::Country, 10).await }).await;
                let daily = measure(21, || async {
                    store.bans_per_day(&q(), chrono_tz::Europe::Berlin).await
                })
                .await;
                // What a view's page asks of the period before, to compare.
                let counted = measure(21, || async { store.ban_count(&q()).await }).await;
                for ((statistic, (p50, p95)), sql) in [
                    ("summary", summary),
                    ("top countries (10)", countries),
                    ("bans per day", daily),
                    ("ban count", counted),
                ]
                .into_iter()
                .zip(naive_view(term))
                {
                    let (naive_p50, _) = measure(1, || async { naive(&raw, &sql, &q()) }).await;
                    println!(
                        "{:<36} {:>10} {:>10} {:>12} {:>9.1}x",
                        format!("{statistic}, {name}, {days} d"),
                        ms(p50),
                        ms(p95),
                        ms(naive_p50),
                        naive_p50.as_secs_f64() / p50.as_secs_f64()
                    );
                }
            }
        }
    }
}
