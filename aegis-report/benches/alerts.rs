//! What each alert rule costs per evaluation, at store sizes a fleet reaches:
//! the time of one `Watcher::tick` with that rule alone, beside a watcher with
//! no rule (reading the new bans and keeping the state) in the same run.
//!
//! `cargo bench -p aegis-report --bench alerts` (sizes:
//! `AEGIS_BENCH_SIZES=1000000,10000000`). Stores are shared with the storage
//! benchmark in `target/aegis-bench/` and made there when missing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_core::{EventFilter, Order, Page, Settings, Storage};
use aegis_report::alert::Watcher;
use aegis_testkit::open_sqlite;
use aegis_testkit::traffic::{ban, geo, year_of_attacks};
use chrono::Utc;

const RULES: [(&str, &str); 6] = [
    ("no rule (baseline)", ""),
    ("bans (one jail)", "kind = \"bans\"\njail = \"sshd\""),
    (
        "spike (1h against 7 days)",
        "kind = \"spike\"\nperiod = \"1h\"\ndays = 7",
    ),
    (
        "repeat-offender (24h)",
        "kind = \"repeat-offender\"\nbans = 5\nhosts = 3",
    ),
    (
        "new-source (ASN, 30 days)",
        "kind = \"new-source\"\nby = \"asn\"",
    ),
    ("silent-host (1h of 30 days)", "kind = \"silent-host\""),
];

/// Evaluations timed per rule; each follows five new bans.
const TICKS: usize = 30;

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn store_of(n: usize) -> Arc<dyn Storage> {
    let dir = aegis_testkit::bench::dir();
    let store = open_sqlite(&dir.join(format!("events-{n}.db"))).await;
    let have = store
        .count_events(&EventFilter::default())
        .await
        .expect("count") as usize;
    if have < n {
        println!("generating {} events …", n - have);
        let events = year_of_attacks(n - have, Utc::now(), 42 + have as u64);
        aegis_testkit::bench::load(store.as_ref(), events).await;
    }
    store.maintain().await.expect("maintain");
    store
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sizes = aegis_testkit::bench::sizes("1000000");
    let dir = tempfile::tempdir().expect("temp dir");
    for n in sizes {
        let store = store_of(n).await;
        let newest = Page {
            order: Order::Desc,
            ..Page::first(1)
        };
        let latest = store
            .events(&EventFilter::default(), newest)
            .await
            .expect("latest")[0]
            .event
            .time;
        println!("\n{n} events; p50 / p95 of {TICKS} evaluations, each after 5 new bans");
        let mut now = latest.max(Utc::now());
        for (i, (label, rule)) in RULES.iter().enumerate() {
            let path = dir.path().join("aegis.toml");
            // A closed port: the first message fails, then the channel backs off.
            let mut config =
                "[[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n"
                    .to_owned();
            if !rule.is_empty() {
                config +=
                    &format!("[[alert]]\nname = \"rule{i}\"\nchannels = [\"hook\"]\n{rule}\n");
            }
            std::fs::write(&path, config).expect("config");
            let settings = Settings::load(Some(&path)).expect("settings");
            let watcher = Watcher::new(&settings, store.clone()).expect("watcher");
            // The first evaluation of a rule reads what it must learn (new-source).
            let t = Instant::now();
            watcher.tick(now, false).await.expect("tick");
            let first = t.elapsed();
            let mut samples = Vec::with_capacity(TICKS);
            for k in 0..TICKS {
                now += chrono::Duration::minutes(1);
                let bans: Vec<_> = (0..5)
                    .map(|j| {
                        let mut e = ban(
                            &format!("198.18.{}.{}", k % 7, j),
                            "sshd",
                            ["web1", "web2", "web3"][j % 3],
                            now - chrono::Duration::seconds(10 + j as i64),
                        );
                        e.geo = Some(geo(["CN", "BR", "US", "DE", "RU"][j]));
                        e
                    })
                    .collect();
                store.record_batch(&bans).await.expect("bans");
                let t = Instant::now();
                watcher.tick(now, false).await.expect("tick");
                samples.push(t.elapsed());
            }
            samples.sort();
            println!(
                "  {label:<30} {:>10} / {:>10}   (first evaluation {})",
                ms(samples[TICKS / 2]),
                ms(samples[TICKS * 95 / 100]),
                ms(first)
            );
        }
    }
}
