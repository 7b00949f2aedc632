//! Embedding aegis-core: open a store, record a few bans, print statistics.
//!
//! `cargo run -p aegis-examples --bin record-and-query -- [STORAGE_URL]` (default: in memory).

use aegis_core::{connect, parse_ip, BanEvent, EventKind, StatsQuery, StorageUrl, TopBy, Utc};
use chrono::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> aegis_core::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite::memory:".into());
    let store = connect(&StorageUrl::parse(&url)?).await?;

    let now = Utc::now();
    for (i, addr) in ["203.0.113.7", "203.0.113.7", "2001:db8::5"]
        .iter()
        .enumerate()
    {
        let time = now - Duration::minutes(10 * i as i64);
        let mut event = BanEvent::new(
            EventKind::Ban,
            parse_ip(addr)?,
            "sshd",
            "example-host",
            time,
        )?;
        event.failures = Some(5);
        store.record(&event).await?;
    }

    let week = StatsQuery::last_days(7);
    let summary = store.summary(&week).await?;
    println!("bans: {}, unique IPs: {}", summary.bans, summary.unique_ips);
    for offender in store.top_offenders(&week, 3).await? {
        println!("offender: {} ({} bans)", offender.ip, offender.bans);
    }
    for jail in store.top(&week, TopBy::Jail, 3).await? {
        println!("jail: {} ({} bans)", jail.key, jail.bans);
    }
    Ok(())
}
