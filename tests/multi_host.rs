//! Many hosts reporting into one MongoDB store at once, each with a client of
//! its own as separate machines would, against the server named by
//! `AEGIS_TEST_MONGODB_URI` (`scripts/test` starts one).

use aegis_core::{connect, EventFilter, Facet, Scope, StatsQuery, TopBy};
use aegis_testkit::traffic::{ban, geo};
use aegis_testkit::TestStore;
use chrono::Utc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_hosts_recording_at_once_give_exact_per_host_figures() {
    let url = aegis_testkit::mongodb_url("multihost");
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
                let mut e = ban(
                    &ip,
                    if i % 5 == 0 { "nginx" } else { "sshd" },
                    &host,
                    start + chrono::Duration::milliseconds(i64::from(i) * 1000 + i64::from(h)),
                );
                e.geo = Some(geo(["DE", "CN", "US", "BR"][usize::from(h)]));
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
    let fleet = TestStore::at(url).await;
    let store = &fleet.store;
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
        q.scope.host = Some(format!("web{h}"));
        let s = store.summary(&q).await.unwrap();
        assert_eq!(
            (s.bans, s.unique_ips, s.countries, s.jails),
            (500, 500, 1, 2)
        );
        let jails = store.top(&q, TopBy::Jail, 10).await.unwrap();
        assert_eq!(jails[0].key, "sshd");
        assert_eq!(jails[0].bans, 400);
        let filter = EventFilter {
            scope: Scope::of(Facet::Host, format!("web{h}")),
            ..EventFilter::default()
        };
        assert_eq!(store.count_events(&filter).await.unwrap(), 500);
    }
}
