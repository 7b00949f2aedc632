//! MongoDB beyond the conformance suite: several hosts writing into one
//! database at once, and connection failures. Runs against the server named by
//! `AEGIS_TEST_MONGODB_URI` (`scripts/test` starts one); without it, it fails.

mod support;

use std::time::{Duration, Instant};

use aegis_core::{connect, Error, EventFilter, StatsQuery, StorageUrl, TopBy};
use chrono::Utc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_hosts_recording_at_once_give_exact_per_host_figures() {
    let url = support::mongodb_url("multihost");
    let start = Utc::now() - chrono::Duration::hours(2);
    let mut hosts = Vec::new();
    for h in 0..4u8 {
        let url = url.clone();
        hosts.push(tokio::spawn(async move {
            // Each host has its own client, as separate machines would.
            let store = connect(&url).await.unwrap();
            let host = format!("web{h}");
            for i in 0..500u32 {
                let ip = format!("10.{h}.{}.{}", i / 256, i % 256);
                let mut e = support::ban(
                    &ip,
                    if i % 5 == 0 { "nginx" } else { "sshd" },
                    &host,
                    start + chrono::Duration::milliseconds(i64::from(i) * 1000 + i64::from(h)),
                );
                e.geo = Some(support::geo(["DE", "CN", "US", "BR"][usize::from(h)]));
                store.record(&e).await.unwrap();
                if i % 100 == 0 {
                    // fail2ban retries a failed action: the same ban again is stored once.
                    store.record(&e).await.unwrap();
                }
            }
        }));
    }
    for h in hosts {
        h.await.unwrap();
    }
    let store = connect(&url).await.unwrap();
    assert_eq!(
        store.count_events(&EventFilter::default()).await.unwrap(),
        2_000
    );
    let day = StatsQuery::last_days(1);
    assert_eq!(store.summary(&day).await.unwrap().bans, 2_000);
    assert_eq!(store.summary(&day).await.unwrap().hosts, 4);
    let per_host = store.top(&day, TopBy::Host, 10).await.unwrap();
    assert_eq!(per_host.len(), 4);
    for entry in &per_host {
        assert_eq!((entry.bans, entry.unique_ips), (500, 500), "{entry:?}");
    }
    for h in 0..4 {
        let mut q = day.clone();
        q.host = Some(format!("web{h}"));
        let s = store.summary(&q).await.unwrap();
        assert_eq!(
            (s.bans, s.unique_ips, s.countries, s.jails),
            (500, 500, 1, 2)
        );
        let jails = store.top(&q, TopBy::Jail, 10).await.unwrap();
        assert_eq!(jails[0].key, "sshd");
        assert_eq!(jails[0].bans, 400);
        let filter = EventFilter {
            host: Some(format!("web{h}")),
            ..EventFilter::default()
        };
        assert_eq!(store.count_events(&filter).await.unwrap(), 500);
    }
}

#[tokio::test]
async fn connection_failures_are_clear_bounded_and_hide_the_password() {
    // Nothing listens on port 9: refused at once, reported within the bound.
    let url = StorageUrl::parse(
        "mongodb://aegis:s3cret-pw@127.0.0.1:9/aegis?serverSelectionTimeoutMS=500&connectTimeoutMS=500",
    )
    .unwrap();
    let started = Instant::now();
    let err = connect(&url).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert!(shown.contains("127.0.0.1:9"), "{shown}");

    for bad in [
        "mongodb://",
        "mongodb://host:notaport/db",
        "mongodb://127.0.0.1/db?unknownOption=1&w=banana",
    ] {
        let err = match StorageUrl::parse(bad) {
            Ok(url) => connect(&url).await.unwrap_err(),
            Err(e) => e,
        };
        assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
    }
}
