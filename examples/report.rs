//! A read-only report over an existing store: the last week's figures, bans
//! per day in a time zone, and the countries attacks came from.
//!
//! `cargo run -p aegis-examples --bin report -- STORAGE_URL [TIME_ZONE]`

use aegis_core::{connect, Error, StatsQuery, StorageUrl, TopBy, Tz};

#[tokio::main(flavor = "current_thread")]
async fn main() -> aegis_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = || Error::Invalid("usage: report STORAGE_URL [TIME_ZONE]".into());
    let url = StorageUrl::parse(&args.next().ok_or_else(usage)?)?;
    let tz: Tz = match args.next() {
        Some(name) => name
            .parse()
            .map_err(|_| Error::Invalid(format!("unknown time zone {name:?}")))?,
        None => Tz::UTC,
    };
    // Opening a SQLite URL creates the file: a report looks at existing stores only.
    if let Some(path) = url.expose().strip_prefix("sqlite://") {
        if !std::path::Path::new(path).is_file() {
            return Err(Error::Invalid(format!("no store at {path}")));
        }
    }
    let store = connect(&url).await?;

    let week = StatsQuery::last_days(7);
    let summary = store.summary(&week).await?;
    println!(
        "last 7 days: {} bans of {} addresses from {} countries",
        summary.bans, summary.unique_ips, summary.countries
    );
    for day in store.bans_per_day(&week, tz).await? {
        println!("{}: {}", day.day, day.bans);
    }
    for country in store.top(&week, TopBy::Country, 5).await? {
        println!("country {}: {} bans", country.key, country.bans);
    }
    Ok(())
}
