//! The storage conformance suite: one body per behaviour, run against every backend.
//!
//! SQLite (file and memory) always runs. MongoDB runs against the server named by
//! `AEGIS_TEST_MONGODB_URI`; `.ci/run` starts one and sets it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use aegis_core::decision::{parse_target, Action, AgentReport, Applied, Decision, Outcome};
use aegis_core::{
    BanEvent, EventFilter, EventKind, Facet, Geo, Order, Page, Recorded, Scope, StatsQuery,
    Storage, TopBy, TopEntry, Tz,
};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};

use aegis_testkit::traffic::{self, at, ban, geo, ip};
use aegis_testkit::TestStore;

/// Every behaviour as a test on every backend: a module per backend, each test
/// on a store of its own.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        conformance!(@backend sqlite_file, $($test),*);
        conformance!(@backend sqlite_memory, $($test),*);
        conformance!(@backend mongodb, $($test),*);
    };
    (@backend $backend:ident, $($test:ident),*) => {
        mod $backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let db = super::TestStore::$backend().await;
                super::$test(db.store.clone()).await;
            })*
        }
    };
}

conformance!(
    record_and_read_back,
    duplicate_is_stored_once,
    batch_reports_inserted_and_duplicates,
    filters_narrow_the_listing,
    pagination_and_order,
    pages_after_a_cursor_cover_every_event_once,
    summary_counts_new_bans_only,
    currently_banned_follows_bans_and_unbans,
    bans_per_day_is_zero_filled_in_the_time_zone,
    statistics_match_a_naive_model,
    rolling_windows_match_the_naive_model,
    top_rankings,
    ip_history_is_complete_and_ordered,
    prune_removes_old_events_and_their_statistics,
    set_geo_updates_events_and_statistics,
    concurrent_writers_lose_nothing,
    distinct_ips_pages_through_addresses,
    stats_filters_by_host_jail_and_country,
    names_seen_only_at_a_range_edge_are_counted,
    geo_cache_round_trips,
    decisions_are_kept_in_order_and_found_by_address,
    concurrent_deciders_neither_skip_nor_repeat,
    agents_reports_and_applications_replace_earlier_ones,
    service_state_round_trips,
);

type Store = Arc<dyn Storage>;

/// Bans, first seen, last seen and jails of one address, computed naively.
type ModelOffender = (u64, DateTime<Utc>, DateTime<Utc>, BTreeSet<String>);

async fn record_and_read_back(store: Store) {
    let mut e = ban("2001:db8::5", "sshd", "web1", at(3, 10, 0));
    e.protocol = Some("tcp".into());
    e.port = Some("http,https".into());
    e.failures = Some(3);
    e.bantime = Some(-1);
    e.bancount = Some(2);
    e.matches = aegis_core::bound_matches(["line <b>one</b>", "line 'two'; rm -rf /"]);
    e.user = Some("admin".into());
    e.geo = Some(Geo {
        city: Some("Linköping".into()),
        latitude: Some(58.4167),
        longitude: Some(15.6167),
        asn: Some(4_200_000_000),
        as_org: Some("Example AS".into()),
        ..geo("SE")
    });
    assert_eq!(store.record(&e).await.unwrap(), Recorded::Inserted);
    let got = store
        .events(&EventFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, e.id());
    assert_eq!(got[0].event, e);
}

async fn duplicate_is_stored_once(store: Store) {
    let e = ban("203.0.113.7", "sshd", "web1", at(1, 12, 0));
    assert_eq!(store.record(&e).await.unwrap(), Recorded::Inserted);
    let mut retried = e.clone();
    retried.received_at += Duration::seconds(5);
    assert_eq!(store.record(&retried).await.unwrap(), Recorded::Duplicate);
    assert_eq!(
        store.count_events(&EventFilter::default()).await.unwrap(),
        1
    );
    let s = store.summary(&all_time()).await.unwrap();
    assert_eq!(s.bans, 1, "a duplicate must not count twice");
}

async fn batch_reports_inserted_and_duplicates(store: Store) {
    let a = ban("198.51.100.1", "sshd", "web1", at(2, 1, 0));
    let b = ban("198.51.100.2", "sshd", "web1", at(2, 2, 0));
    let c = ban("198.51.100.3", "nginx", "web2", at(2, 3, 0));
    store.record(&a).await.unwrap();
    let out = store
        .record_batch(&[a.clone(), b.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    assert_eq!((out.inserted, out.duplicates), (2, 2));
    let again = store.record_batch(&[a, b, c]).await.unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, 3));
    assert_eq!(
        store.count_events(&EventFilter::default()).await.unwrap(),
        3
    );
    let empty = store.record_batch(&[]).await.unwrap();
    assert_eq!((empty.inserted, empty.duplicates), (0, 0));
}

async fn filters_narrow_the_listing(store: Store) {
    let mut events = vec![
        ban("203.0.113.7", "sshd", "web1", at(5, 1, 0)),
        ban("203.0.113.200", "nginx", "web2", at(4, 1, 0)),
        ban("198.51.100.9", "sshd", "web2", at(3, 1, 0)),
        ban("2001:db8:1::1", "sshd", "web1", at(2, 1, 0)),
        ban("2001:db8:2::1", "postfix", "web1", at(1, 1, 0)),
    ];
    events[0].geo = Some(geo("DE"));
    events[2].geo = Some(geo("FR"));
    let mut unban = ban("203.0.113.7", "sshd", "web1", at(5, 2, 0));
    unban.kind = EventKind::Unban;
    events.push(unban);
    store.record_batch(&events).await.unwrap();

    let ips = |f: EventFilter| {
        let store = store.clone();
        async move {
            let mut v: Vec<String> = store
                .events(&f, Page::first(100))
                .await
                .unwrap()
                .into_iter()
                .map(|e| format!("{} {}", e.event.kind, e.event.ip))
                .collect();
            v.sort();
            let count = store.count_events(&f).await.unwrap();
            assert_eq!(
                count as usize,
                v.len(),
                "count_events agrees with events for {f:?}"
            );
            v
        }
    };
    assert_eq!(
        ips(EventFilter {
            ip: Some(ip("203.0.113.7")),
            ..Default::default()
        })
        .await,
        ["ban 203.0.113.7", "unban 203.0.113.7"]
    );
    assert_eq!(
        ips(EventFilter {
            ip: Some(ip("::ffff:203.0.113.7")),
            kind: Some(EventKind::Ban),
            ..Default::default()
        })
        .await,
        ["ban 203.0.113.7"]
    );
    assert_eq!(
        ips(EventFilter {
            network: Some("203.0.113.0/24".parse().unwrap()),
            kind: Some(EventKind::Ban),
            ..Default::default()
        })
        .await,
        ["ban 203.0.113.200", "ban 203.0.113.7"]
    );
    assert_eq!(
        ips(EventFilter {
            network: Some("2001:db8:1::/48".parse().unwrap()),
            ..Default::default()
        })
        .await,
        ["ban 2001:db8:1::1"]
    );
    assert_eq!(
        ips(EventFilter {
            network: Some("2001:db8::/32".parse().unwrap()),
            ..Default::default()
        })
        .await
        .len(),
        2
    );
    assert_eq!(
        ips(EventFilter {
            scope: Scope {
                jail: Some("sshd".into()),
                host: Some("web2".into()),
                ..Scope::default()
            },
            ..Default::default()
        })
        .await,
        ["ban 198.51.100.9"]
    );
    assert_eq!(
        ips(EventFilter {
            scope: Scope {
                country: Some("FR".into()),
                ..Scope::default()
            },
            ..Default::default()
        })
        .await,
        ["ban 198.51.100.9"]
    );
    assert_eq!(
        ips(EventFilter {
            since: Some(at(2, 1, 0)),
            until: Some(at(4, 1, 0)),
            ..Default::default()
        })
        .await,
        ["ban 198.51.100.9", "ban 2001:db8:1::1"],
        "since is inclusive, until exclusive"
    );
    assert!(ips(EventFilter {
        scope: Scope {
            jail: Some("none".into()),
            ..Scope::default()
        },
        ..Default::default()
    })
    .await
    .is_empty());
}

/// Paging by key: many events share a second (and some a millisecond), and
/// every page after the last event of the one before yields each event once,
/// in order, both ways, with a filter.
async fn pages_after_a_cursor_cover_every_event_once(store: Store) {
    let events: Vec<BanEvent> = (0..95)
        .map(|i| {
            let t = at(2, 3, 0) + Duration::milliseconds(i64::from(i / 7) * 250);
            ban(
                &format!("198.51.100.{i}"),
                ["sshd", "nginx"][i as usize % 2],
                "web1",
                t,
            )
        })
        .collect();
    store.record_batch(&events).await.unwrap();
    for (order, filter) in [
        (Order::Asc, EventFilter::default()),
        (Order::Desc, EventFilter::default()),
        (Order::Asc, Scope::of(Facet::Jail, "sshd").filter()),
    ] {
        let all = store
            .events(
                &filter,
                Page {
                    limit: 1000,
                    order,
                    ..Page::default()
                },
            )
            .await
            .unwrap();
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = Page {
                limit: 9,
                order,
                after,
                ..Page::default()
            };
            let got = store.events(&filter, page).await.unwrap();
            let Some(last) = got.last() else { break };
            after = Some(last.cursor());
            paged.extend(got);
        }
        assert_eq!(paged, all, "{order:?} {filter:?}");
        assert_eq!(paged.len(), if filter.scope.is_all() { 95 } else { 48 });
    }
    let cursor = aegis_core::Cursor::parse(&events_cursor(&store).await).unwrap();
    assert_eq!(aegis_core::Cursor::parse(&cursor.token()).unwrap(), cursor);
    assert!(aegis_core::Cursor::parse("12.zz").is_err());
}

async fn events_cursor(store: &Store) -> String {
    let first = store
        .events(&EventFilter::default(), Page::first(1))
        .await
        .unwrap();
    first[0].cursor().token()
}

async fn pagination_and_order(store: Store) {
    let events: Vec<BanEvent> = (0..25)
        .map(|i| ban(&format!("192.0.2.{i}"), "sshd", "web1", at(1, 0, i)))
        .collect();
    store.record_batch(&events).await.unwrap();
    let page = |offset, order| {
        let store = store.clone();
        async move {
            store
                .events(
                    &EventFilter::default(),
                    Page {
                        limit: 10,
                        offset,
                        order,
                        after: None,
                    },
                )
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.event.ip.to_string())
                .collect::<Vec<_>>()
        }
    };
    let newest = page(0, Order::Desc).await;
    assert_eq!(newest.first().unwrap(), "192.0.2.24");
    assert_eq!(newest.len(), 10);
    let oldest = page(0, Order::Asc).await;
    assert_eq!(oldest.first().unwrap(), "192.0.2.0");
    let last = page(20, Order::Asc).await;
    assert_eq!(
        last,
        [
            "192.0.2.20",
            "192.0.2.21",
            "192.0.2.22",
            "192.0.2.23",
            "192.0.2.24"
        ]
    );
    assert!(page(30, Order::Asc).await.is_empty());
}

async fn summary_counts_new_bans_only(store: Store) {
    let mut restored = ban("203.0.113.9", "sshd", "web1", at(3, 5, 0));
    restored.restored = true;
    let mut unban = ban("203.0.113.7", "sshd", "web1", at(3, 6, 0));
    unban.kind = EventKind::Unban;
    let mut de = ban("203.0.113.7", "sshd", "web1", at(3, 1, 0));
    de.geo = Some(geo("DE"));
    let mut de2 = ban("203.0.113.7", "nginx", "web2", at(3, 2, 0));
    de2.geo = Some(geo("DE"));
    let mut fr = ban("198.51.100.1", "sshd", "web1", at(3, 3, 0));
    fr.geo = Some(geo("FR"));
    let unknown = ban("2001:db8::1", "sshd", "web1", at(3, 4, 0));
    store
        .record_batch(&[restored, unban, de, de2, fr, unknown])
        .await
        .unwrap();
    let s = store.summary(&all_time()).await.unwrap();
    assert_eq!(
        (s.bans, s.unique_ips, s.countries, s.jails, s.hosts),
        (4, 3, 2, 2, 2),
        "{s:?}"
    );
    let none = store
        .summary(&StatsQuery::range(at(10, 0, 0), at(11, 0, 0)))
        .await
        .unwrap();
    assert_eq!((none.bans, none.unique_ips), (0, 0));
}

async fn currently_banned_follows_bans_and_unbans(store: Store) {
    let now = Utc::now();
    let mut permanent = ban("203.0.113.1", "sshd", "web1", now - Duration::days(3));
    permanent.bantime = Some(-1);
    permanent.geo = Some(geo("CN"));
    let mut expired = ban("203.0.113.2", "sshd", "web1", now - Duration::hours(2));
    expired.bantime = Some(600);
    expired.geo = Some(geo("CN"));
    let mut active = ban("203.0.113.3", "sshd", "web1", now - Duration::minutes(1));
    active.bantime = Some(3600);
    active.geo = Some(geo("DE"));
    let mut released = ban("203.0.113.4", "sshd", "web1", now - Duration::minutes(2));
    released.bantime = Some(3600);
    let mut unban = released.clone();
    unban.kind = EventKind::Unban;
    unban.time = released.time + Duration::seconds(30);
    // Out of order: an old unban arriving after a newer ban must not release it.
    let mut stale_unban = active.clone();
    stale_unban.kind = EventKind::Unban;
    stale_unban.time = active.time - Duration::hours(1);
    // A permanent ban followed by a short one that has ended: the latest decides.
    let mut once_permanent = ban("203.0.113.5", "sshd", "web1", now - Duration::days(2));
    once_permanent.bantime = Some(-1);
    let mut then_short = ban("203.0.113.5", "sshd", "web1", now - Duration::hours(3));
    then_short.bantime = Some(60);
    store
        .record_batch(&[
            permanent,
            expired,
            active,
            released,
            unban,
            stale_unban,
            once_permanent,
            then_short,
        ])
        .await
        .unwrap();
    let s = store.summary(&StatsQuery::last_days(7)).await.unwrap();
    assert_eq!(s.currently_banned, 2, "permanent and active only: {s:?}");
    for (country, banned) in [("CN", 1), ("DE", 1), ("FR", 0)] {
        let mut q = StatsQuery::last_days(7);
        q.scope.country = Some(country.into());
        let s = store.summary(&q).await.unwrap();
        assert_eq!(s.currently_banned, banned, "in {country}: {s:?}");
    }
}

async fn bans_per_day_is_zero_filled_in_the_time_zone(store: Store) {
    let berlin: Tz = "Europe/Berlin".parse().unwrap();
    let d0 = traffic::base_day();
    let utc = |day: i64, h: u32, m: u32| at(day, h, m);
    // 23:30 UTC is already the next day in Berlin (UTC+1 or +2).
    store
        .record_batch(&[
            ban("192.0.2.1", "sshd", "web1", utc(0, 12, 0)),
            ban("192.0.2.2", "sshd", "web1", utc(0, 23, 30)),
            ban("192.0.2.3", "sshd", "web1", utc(3, 9, 0)),
            ban("192.0.2.4", "sshd", "web1", utc(3, 10, 0)),
        ])
        .await
        .unwrap();
    let q = StatsQuery::range(utc(0, 0, 0), utc(5, 0, 0));
    let days = store.bans_per_day(&q, chrono_tz::UTC).await.unwrap();
    let counts: Vec<(NaiveDate, u64)> = days.iter().map(|d| (d.day, d.bans)).collect();
    let day = |n: i64| d0 + Duration::days(n);
    assert_eq!(
        counts,
        [
            (day(0), 2),
            (day(1), 0),
            (day(2), 0),
            (day(3), 2),
            (day(4), 0)
        ]
    );
    let local = store.bans_per_day(&q, berlin).await.unwrap();
    assert_eq!(local.first().unwrap().day, day(0));
    let by_day: BTreeMap<NaiveDate, u64> = local.iter().map(|d| (d.day, d.bans)).collect();
    assert_eq!(by_day[&day(0)], 1);
    assert_eq!(by_day[&day(1)], 1);
    assert_eq!(by_day[&day(3)], 2);
    assert_eq!(local.iter().map(|d| d.bans).sum::<u64>(), 4);
    assert!(
        local
            .windows(2)
            .all(|w| w[1].day == w[0].day + Duration::days(1)),
        "no gaps"
    );
    let tokyo: Tz = "Asia/Kathmandu".parse().unwrap(); // UTC+5:45
    let nepal = store.bans_per_day(&q, tokyo).await.unwrap();
    assert_eq!(nepal.iter().map(|d| d.bans).sum::<u64>(), 4);
}

/// Random events over three weeks, then every statistic over ranges cut at odd
/// moments, compared with a computation over the raw events.
async fn statistics_match_a_naive_model(store: Store) {
    let mut rng = traffic::Rng::with_seed(0x5eed);
    let events = traffic::skewed_events(&mut rng, at(0, 0, 0), at(21, 0, 0), 600);
    for chunk in events.chunks(97) {
        store.record_batch(chunk).await.unwrap();
    }
    let ranges = [
        (at(0, 0, 0), at(21, 0, 0)),
        (at(2, 13, 17), at(9, 4, 2)),
        (at(5, 0, 0), at(5, 23, 59)),
        (at(6, 18, 0), at(7, 6, 0)),
        (at(14, 0, 0), at(15, 0, 0)),
        (at(-5, 0, 0), at(30, 0, 0)),
    ];
    for (since, until) in ranges {
        for host in [None, Some("web2")] {
            let mut q = StatsQuery::range(since, until);
            q.scope.host = host.map(str::to_owned);
            check_against_model(&store, &events, &q).await;
            let new_bans: Vec<&BanEvent> = events.iter().filter(|e| e.is_new_ban()).collect();
            // Per day in UTC.
            let days = store.bans_per_day(&q, chrono_tz::UTC).await.unwrap();
            let first_day = since.date_naive();
            let last_day = (until - Duration::milliseconds(1)).date_naive();
            assert_eq!(days.first().unwrap().day, first_day);
            assert_eq!(days.last().unwrap().day, last_day);
            for d in &days {
                let want = new_bans
                    .iter()
                    .filter(|e| e.time.date_naive() == d.day && host.is_none_or(|h| e.host == h))
                    .count() as u64;
                assert_eq!(d.bans, want, "day {} of {q:?}", d.day);
            }
        }
    }
}

/// The window lengths, in days.
const DAYS: [i64; 5] = [1, 7, 30, 90, 365];

/// The rolling 24 h / 7 d / 30 d / 90 d / 365 d windows: built by `maintain`
/// (the range path answering before), folded small and large, moved forward
/// to odd moments, fed late events, re-located and pruned, always equal to
/// the naive computation.
async fn rolling_windows_match_the_naive_model(store: Store) {
    let mut rng = traffic::Rng::with_seed(0xa11);
    let now = Utc::now() - Duration::minutes(1);
    let start = now - Duration::days(400);
    let mut events: Vec<BanEvent> = Vec::new();
    // (days before now, new events): one step large enough to recount totals.
    let steps = [
        (380, 150),
        (200, 150),
        (95, 150),
        (35, 25_000),
        (20, 150),
        (12, 150),
        (6, 150),
        (2, 150),
        (0, 150),
    ];
    // Views of one host, jail or country (or two at once), each in turn.
    let scopes = [
        Scope::of(Facet::Host, "web2"),
        Scope::of(Facet::Jail, "sshd"),
        Scope::of(Facet::Country, "CN"),
        Scope {
            host: Some("web1".into()),
            jail: Some("nginx".into()),
            country: None,
        },
    ];
    let mut cursor = start;
    for (n, (days_before, fresh)) in steps.into_iter().enumerate() {
        let until = now - Duration::days(days_before) - Duration::minutes(7 * (9 - n as i64));
        let fresh = traffic::skewed_events(&mut rng, cursor, until, fresh);
        // Late arrivals: some inside the windows, some older than every cut.
        let late = traffic::skewed_events(&mut rng, start, until, 20);
        cursor = until;
        for chunk in fresh.chunks(10_000) {
            store.record_batch(chunk).await.unwrap();
        }
        store.record_batch(&late).await.unwrap();
        events.extend(fresh);
        events.extend(late);
        // Every other step, the windows are kept ahead of the requests.
        if n % 2 == 1 {
            store.maintain().await.unwrap();
        }
        for days in DAYS {
            for scope in [Scope::ALL, scopes[n % scopes.len()].clone()] {
                let mut q = StatsQuery::range(until - Duration::days(days), until);
                q.scope = scope;
                check_against_model(&store, &events, &q).await;
            }
        }
    }
    // Every view of the steps, and the country an address moves to below.
    let mut views = scopes.to_vec();
    views.extend([Scope::ALL, Scope::of(Facet::Country, "FR")]);
    // Windows kept by `maintain` answer ranges ending now.
    store.maintain().await.unwrap();
    check_views(&store, &events, &views, Utc::now()).await;

    // An address of a country whose windows were built moves to another.
    let in_china = |e: &&BanEvent| e.geo.as_ref().and_then(|g| g.country.as_deref()) == Some("CN");
    let (victim, g) = (
        events.iter().find(in_china).unwrap().ip,
        Geo {
            asn: Some(64_500),
            as_org: Some("Moved".into()),
            ..geo("FR")
        },
    );
    store.set_geo(victim, &g).await.unwrap();
    for e in events.iter_mut().filter(|e| e.ip == victim) {
        e.geo = Some(g.clone());
    }
    check_views(&store, &events, &views, Utc::now()).await;
    check_views(&store, &events, &views, now + Duration::seconds(30)).await;

    let cutoff = now - Duration::days(3);
    store.prune(cutoff).await.unwrap();
    events.retain(|e| e.time >= cutoff);
    let mut fresh = traffic::skewed_events(&mut rng, now, now + Duration::seconds(35), 50);
    // Located where the address now is (an address has one location: the latest given).
    for e in fresh.iter_mut().filter(|e| e.ip == victim) {
        e.geo = Some(g.clone());
    }
    store.record_batch(&fresh).await.unwrap();
    events.extend(fresh);
    check_views(&store, &events, &views, now + Duration::seconds(40)).await;
    store.maintain().await.unwrap();
    check_views(&store, &events, &views, Utc::now()).await;
}

/// [`check_against_model`] for every window length and every view, ending at `until`.
async fn check_views(store: &Store, events: &[BanEvent], views: &[Scope], until: DateTime<Utc>) {
    for days in DAYS {
        for scope in views {
            let mut q = StatsQuery::range(until - Duration::days(days), until);
            q.scope = scope.clone();
            check_against_model(store, events, &q).await;
        }
    }
}

/// Every statistic for `q` equals a computation over the raw `events`.
async fn check_against_model(store: &Store, events: &[BanEvent], q: &StatsQuery) {
    let (since, until) = (q.since, q.until);
    let in_scope = |e: &BanEvent| {
        let country = e.geo.as_ref().and_then(|g| g.country.as_deref());
        q.scope.host.as_ref().is_none_or(|h| &e.host == h)
            && q.scope.jail.as_ref().is_none_or(|j| &e.jail == j)
            && q.scope
                .country
                .as_deref()
                .is_none_or(|c| country == Some(c))
    };
    let new_bans: Vec<&BanEvent> = events
        .iter()
        .filter(|e| e.is_new_ban() && in_scope(e))
        .collect();
    let scope: Vec<&BanEvent> = new_bans
        .iter()
        .copied()
        .filter(|e| e.time >= since && e.time < until)
        .collect();
    let s = store.summary(q).await.unwrap();
    let distinct = |f: &dyn Fn(&BanEvent) -> Option<String>| {
        scope
            .iter()
            .filter_map(|e| f(e))
            .collect::<BTreeSet<_>>()
            .len() as u64
    };
    assert_eq!(s.bans, scope.len() as u64, "bans {q:?}");
    assert_eq!(store.ban_count(q).await.unwrap(), s.bans, "ban_count {q:?}");
    assert_eq!(
        s.unique_ips,
        distinct(&|e| Some(e.ip.to_string())),
        "ips {q:?}"
    );
    assert_eq!(s.jails, distinct(&|e| Some(e.jail.clone())), "jails {q:?}");
    assert_eq!(s.hosts, distinct(&|e| Some(e.host.clone())), "hosts {q:?}");
    assert_eq!(
        s.countries,
        distinct(&|e| e.geo.as_ref().and_then(|g| g.country.clone())),
        "countries {q:?}"
    );

    // Top offenders: bans desc, last seen desc, then address.
    let mut per_ip: BTreeMap<IpAddr, ModelOffender> = BTreeMap::new();
    for e in &scope {
        let entry = per_ip
            .entry(e.ip)
            .or_insert((0, e.time, e.time, BTreeSet::new()));
        entry.0 += 1;
        entry.1 = entry.1.min(e.time);
        entry.2 = entry.2.max(e.time);
        entry.3.insert(e.jail.clone());
    }
    let top = store.top_offenders(q, 1000).await.unwrap();
    assert_eq!(top.len(), per_ip.len());
    for o in &top {
        let (bans, first, last, jails) = &per_ip[&o.ip];
        assert_eq!(
            (o.bans, o.first_seen, o.last_seen),
            (*bans, *first, *last),
            "{o:?}"
        );
        assert_eq!(o.jails, jails.iter().cloned().collect::<Vec<_>>());
    }
    assert!(
        top.windows(2)
            .all(|w| (w[0].bans, w[0].last_seen) >= (w[1].bans, w[1].last_seen)),
        "order"
    );
    let top3 = store.top_offenders(q, 3).await.unwrap();
    assert_eq!(top3[..], top[..top.len().min(3)]);

    // Bans per local day in zones whose midnights are not on the hour.
    for tz in [chrono_tz::Asia::Kathmandu, chrono_tz::America::St_Johns] {
        let mut per_day: BTreeMap<NaiveDate, u64> = BTreeMap::new();
        for e in &new_bans {
            *per_day
                .entry(e.time.with_timezone(&tz).date_naive())
                .or_default() += 1;
        }
        for d in store.bans_per_day(q, tz).await.unwrap() {
            let want = per_day.get(&d.day).copied().unwrap_or(0);
            assert_eq!(d.bans, want, "{tz} day {} of {q:?}", d.day);
        }
    }

    // Rankings.
    for by in [TopBy::Jail, TopBy::Host, TopBy::Country, TopBy::Network] {
        let key = |e: &BanEvent| -> Option<String> {
            match by {
                TopBy::Jail => Some(e.jail.clone()),
                TopBy::Host => Some(e.host.clone()),
                TopBy::Country => e.geo.as_ref().and_then(|g| g.country.clone()),
                _ => Some(aegis_core::network_of(e.ip).to_string()),
            }
        };
        let mut want: BTreeMap<String, (u64, BTreeSet<IpAddr>)> = BTreeMap::new();
        for e in &scope {
            if let Some(k) = key(e) {
                let w = want.entry(k).or_default();
                w.0 += 1;
                w.1.insert(e.ip);
            }
        }
        let got = store.top(q, by, 1000).await.unwrap();
        // Most bans first, ties by key; a shorter list is the longer one's start.
        let order = |t: &TopEntry| (Reverse(t.bans), t.key.clone());
        assert!(got.is_sorted_by_key(order), "{by:?} order {q:?}");
        for limit in [1, 2, 5] {
            let short = store.top(q, by, limit).await.unwrap();
            let start = &got[..got.len().min(limit as usize)];
            assert_eq!(short[..], start[..], "{by:?} limit {limit} {q:?}");
        }
        let got: BTreeMap<String, (u64, u64)> = got
            .into_iter()
            .map(|t| (t.key, (t.bans, t.unique_ips)))
            .collect();
        let want: BTreeMap<String, (u64, u64)> = want
            .into_iter()
            .map(|(k, (b, ips))| (k, (b, ips.len() as u64)))
            .collect();
        assert_eq!(got, want, "{by:?} {q:?}");
    }
}

async fn top_rankings(store: Store) {
    let mut events = Vec::new();
    for (ip, n, country, asn) in [
        ("203.0.113.7", 5, "CN", 4134),
        ("203.0.113.8", 3, "CN", 4134),
        ("198.51.100.1", 4, "US", 15169),
        ("2001:db8:1:2::7", 2, "DE", 3320),
    ] {
        for i in 0..n {
            let mut e = ban(
                ip,
                if i % 2 == 0 { "sshd" } else { "nginx" },
                "web1",
                at(2, i, 0),
            );
            e.geo = Some(Geo {
                asn: Some(asn),
                as_org: Some(format!("Org {asn}")),
                ..geo(country)
            });
            events.push(e);
        }
    }
    store.record_batch(&events).await.unwrap();
    let q = all_time();
    let top = store.top_offenders(&q, 2).await.unwrap();
    assert_eq!(top.len(), 2);
    assert_eq!((top[0].ip, top[0].bans), (ip("203.0.113.7"), 5));
    assert_eq!(top[0].jails, ["nginx", "sshd"]);
    assert_eq!(top[0].country.as_deref(), Some("CN"));
    assert_eq!(top[0].first_seen, at(2, 0, 0));
    assert_eq!(top[0].last_seen, at(2, 4, 0));
    assert_eq!((top[1].ip, top[1].bans), (ip("198.51.100.1"), 4));

    let keys = |by| {
        let store = store.clone();
        let q = q.clone();
        async move {
            store
                .top(&q, by, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|t| (t.key, t.label, t.bans, t.unique_ips))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        keys(TopBy::Country).await,
        [
            ("CN".into(), None, 8, 2),
            ("US".into(), None, 4, 1),
            ("DE".into(), None, 2, 1)
        ]
    );
    assert_eq!(
        keys(TopBy::Asn).await[0],
        ("AS4134".into(), Some("Org 4134".into()), 8, 2)
    );
    assert_eq!(
        keys(TopBy::Network).await,
        [
            ("203.0.113.0/24".into(), None, 8, 2),
            ("198.51.100.0/24".into(), None, 4, 1),
            ("2001:db8:1:2::/64".into(), None, 2, 1)
        ]
    );
    assert_eq!(keys(TopBy::Jail).await[0], ("sshd".into(), None, 8, 4));
    assert_eq!(keys(TopBy::Host).await, [("web1".into(), None, 14, 4)]);
    assert_eq!(store.top(&q, TopBy::Country, 1).await.unwrap().len(), 1);
}

async fn ip_history_is_complete_and_ordered(store: Store) {
    let a = ban("203.0.113.7", "sshd", "web1", at(3, 0, 0));
    let mut b = ban("203.0.113.7", "sshd", "web1", at(1, 0, 0));
    b.kind = EventKind::Unban;
    let c = ban("203.0.113.7", "nginx", "web2", at(2, 0, 0));
    let other = ban("203.0.113.8", "sshd", "web1", at(2, 0, 0));
    store.record_batch(&[a, b, c, other]).await.unwrap();
    let history = store.ip_history(ip("::ffff:203.0.113.7")).await.unwrap();
    let times: Vec<_> = history.iter().map(|e| e.event.time).collect();
    assert_eq!(times, [at(1, 0, 0), at(2, 0, 0), at(3, 0, 0)]);
    assert!(store.ip_history(ip("192.0.2.99")).await.unwrap().is_empty());
}

async fn prune_removes_old_events_and_their_statistics(store: Store) {
    let events: Vec<BanEvent> = (0..10)
        .map(|d| ban(&format!("192.0.2.{d}"), "sshd", "web1", at(d, 12, 0)))
        .collect();
    store.record_batch(&events).await.unwrap();
    // Cut in the middle of day 5: its noon event goes, the next ones stay.
    let removed = store.prune(at(5, 18, 0)).await.unwrap();
    assert_eq!(removed, 6);
    assert_eq!(
        store.count_events(&EventFilter::default()).await.unwrap(),
        4
    );
    let q = StatsQuery::range(at(0, 0, 0), at(10, 0, 0));
    let s = store.summary(&q).await.unwrap();
    assert_eq!((s.bans, s.unique_ips), (4, 4));
    let days = store.bans_per_day(&q, chrono_tz::UTC).await.unwrap();
    assert_eq!(
        days.iter().map(|d| d.bans).collect::<Vec<_>>(),
        [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    );
    assert_eq!(store.top_offenders(&q, 100).await.unwrap().len(), 4);
    assert_eq!(store.distinct_ips(None, 100).await.unwrap().len(), 4);
    assert_eq!(store.prune(at(5, 18, 0)).await.unwrap(), 0);
}

async fn set_geo_updates_events_and_statistics(store: Store) {
    let a = ban("203.0.113.7", "sshd", "web1", at(1, 0, 0));
    let b = ban("203.0.113.7", "nginx", "web1", at(2, 0, 0));
    let c = ban("198.51.100.1", "sshd", "web1", at(2, 0, 0));
    store.record_batch(&[a, b, c]).await.unwrap();
    let g = Geo {
        city: Some("Beijing".into()),
        latitude: Some(39.9),
        longitude: Some(116.4),
        asn: Some(4134),
        as_org: Some("Chinanet".into()),
        ..geo("CN")
    };
    assert_eq!(store.set_geo(ip("203.0.113.7"), &g).await.unwrap(), 2);
    for e in store.ip_history(ip("203.0.113.7")).await.unwrap() {
        assert_eq!(e.event.geo.as_ref(), Some(&g));
    }
    let countries = store.top(&all_time(), TopBy::Country, 10).await.unwrap();
    assert_eq!(countries.len(), 1);
    assert_eq!((countries[0].key.as_str(), countries[0].bans), ("CN", 2));
    let listed = store
        .events(
            &EventFilter {
                scope: Scope {
                    country: Some("CN".into()),
                    ..Scope::default()
                },
                ..Default::default()
            },
            Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    let bad = Geo {
        country: Some("china".into()),
        ..Geo::default()
    };
    assert!(store.set_geo(ip("203.0.113.7"), &bad).await.is_err());
    assert_eq!(store.set_geo(ip("192.0.2.250"), &g).await.unwrap(), 0);
}

async fn concurrent_writers_lose_nothing(store: Store) {
    let mut tasks = Vec::new();
    for w in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..4 {
                let e = ban(
                    &format!("10.{w}.{i}.1"),
                    "sshd",
                    &format!("host{}", w % 4),
                    at(1, w, i),
                );
                store.record(&e).await.unwrap();
                // A retry racing the original.
                store.record(&e).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        store.count_events(&EventFilter::default()).await.unwrap(),
        200
    );
    let s = store.summary(&all_time()).await.unwrap();
    assert_eq!((s.bans, s.unique_ips, s.hosts), (200, 200, 4));
}

async fn distinct_ips_pages_through_addresses(store: Store) {
    let events: Vec<BanEvent> = [
        "192.0.2.3",
        "192.0.2.1",
        "2001:db8::1",
        "192.0.2.1",
        "10.0.0.1",
    ]
    .iter()
    .enumerate()
    .map(|(i, a)| ban(a, "sshd", "web1", at(1, i as u32, 0)))
    .collect();
    store.record_batch(&events).await.unwrap();
    let first = store.distinct_ips(None, 2).await.unwrap();
    assert_eq!(first, [ip("10.0.0.1"), ip("192.0.2.1")]);
    let rest = store.distinct_ips(Some(first[1]), 10).await.unwrap();
    assert_eq!(rest, [ip("192.0.2.3"), ip("2001:db8::1")]);
}

async fn stats_filters_by_host_jail_and_country(store: Store) {
    let mut events = Vec::new();
    for (i, (jail, host, country)) in [
        ("sshd", "web1", "DE"),
        ("sshd", "web2", "CN"),
        ("nginx", "web1", "CN"),
    ]
    .iter()
    .enumerate()
    {
        let mut e = ban(&format!("192.0.2.{i}"), jail, host, at(1, i as u32, 0));
        e.geo = Some(geo(country));
        events.push(e);
    }
    store.record_batch(&events).await.unwrap();
    let mut q = all_time();
    q.scope.country = Some("CN".into());
    assert_eq!(store.summary(&q).await.unwrap().bans, 2);
    assert_eq!(store.ban_count(&q).await.unwrap(), 2);
    assert_eq!(
        store
            .bans_per_day(&q, chrono_tz::UTC)
            .await
            .unwrap()
            .iter()
            .map(|d| d.bans)
            .sum::<u64>(),
        2
    );
    q.scope.jail = Some("sshd".into());
    assert_eq!(store.top_offenders(&q, 10).await.unwrap().len(), 1);
    q.scope.country = None;
    q.scope.host = Some("web1".into());
    assert_eq!(store.summary(&q).await.unwrap().bans, 1);
    assert_eq!(store.ban_count(&q).await.unwrap(), 1);
    assert_eq!(
        store
            .bans_per_day(&q, chrono_tz::UTC)
            .await
            .unwrap()
            .iter()
            .map(|d| d.bans)
            .sum::<u64>(),
        1
    );
}

/// Each jail, host and country has one ban, each in a different part of a
/// range cut at odd moments: its partial first and last 15-minute slots, its
/// partial first and last days, a whole day inside, and just outside it (in
/// the same slots as the edges). Every count and ranking, unscoped and
/// narrowed, must see exactly those inside.
async fn names_seen_only_at_a_range_edge_are_counted(store: Store) {
    let (since, until) = (at(2, 10, 3), at(5, 6, 49));
    let placed = [
        ("first-slot", at(2, 10, 7), Some("FR")),
        ("first-day", at(2, 20, 0), Some("US")),
        ("whole-day", at(3, 12, 0), Some("CN")),
        ("unlocated", at(4, 1, 0), None),
        ("last-day", at(5, 2, 30), Some("DE")),
        ("last-slot", at(5, 6, 48), Some("NL")),
        ("just-before", at(2, 10, 1), Some("BR")),
        ("just-after", at(5, 6, 50), Some("JP")),
        ("at-since", since, Some("SE")),
        ("at-until", until, Some("IT")),
    ];
    let mut events: Vec<BanEvent> = placed
        .iter()
        .enumerate()
        .map(|(i, (name, time, country))| {
            let mut e = ban(
                &format!("198.51.100.{i}"),
                &format!("jail-{name}"),
                &format!("host-{name}"),
                *time,
            );
            e.geo = country.map(geo);
            e
        })
        .collect();
    // One address banned on both sides of each bound, the same day.
    for time in [at(2, 9, 0), at(2, 11, 0), at(5, 5, 0), at(5, 7, 0)] {
        let mut e = ban("203.0.113.9", "sshd", "web1", time);
        e.geo = Some(geo("PL"));
        events.push(e);
    }
    store.record_batch(&events).await.unwrap();
    let ranges = [
        (since, until),
        (since, at(2, 10, 9)),
        (since, at(2, 21, 5)),
        (at(4, 0, 0), until),
    ];
    for (since, until) in ranges {
        let scopes = [
            Scope::ALL,
            Scope {
                country: Some("NL".into()),
                ..Scope::ALL
            },
            Scope {
                jail: Some("jail-first-slot".into()),
                ..Scope::ALL
            },
            Scope {
                host: Some("host-last-slot".into()),
                country: Some("NL".into()),
                ..Scope::ALL
            },
        ];
        for scope in scopes {
            let mut q = StatsQuery::range(since, until);
            q.scope = scope;
            check_against_model(&store, &events, &q).await;
        }
    }
}

fn all_time() -> StatsQuery {
    StatsQuery::range(
        Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap(),
        Utc::now() + Duration::days(1),
    )
}

async fn geo_cache_round_trips(store: Store) {
    let known = (
        ip("8.8.8.8"),
        Some(Geo {
            city: Some("Mountain View".into()),
            asn: Some(15169),
            ..geo("US")
        }),
    );
    let unknown = (ip("2a00:1450::1"), None);
    assert!(store
        .geo_cache()
        .cached_geo(&[known.0, unknown.0])
        .await
        .unwrap()
        .is_empty());
    store
        .geo_cache()
        .cache_geo(&[known.clone(), unknown.clone()])
        .await
        .unwrap();
    let cached = store
        .geo_cache()
        .cached_geo(&[ip("::ffff:8.8.8.8"), unknown.0, ip("1.1.1.1")])
        .await
        .unwrap();
    assert_eq!(cached, [known.clone(), unknown]);
    let newer = (known.0, Some(geo("CA")));
    store
        .geo_cache()
        .cache_geo(std::slice::from_ref(&newer))
        .await
        .unwrap();
    assert_eq!(
        store.geo_cache().cached_geo(&[known.0]).await.unwrap(),
        [newer]
    );
    let bad = (
        known.0,
        Some(Geo {
            latitude: Some(200.0),
            ..Geo::default()
        }),
    );
    assert!(store.geo_cache().cache_geo(&[bad]).await.is_err());
}

fn person(action: Action, target: &str) -> Decision {
    Decision::by_person(
        action,
        parse_target(target).unwrap(),
        "alice",
        "seen on every host",
    )
}

async fn decisions_are_kept_in_order_and_found_by_address(store: Store) {
    let log = store.decision_log();
    assert!(log.after(0, 100).await.unwrap().is_empty());
    let made = [
        person(Action::Ban, "45.155.205.7").lasting(Duration::hours(1)),
        person(Action::Ban, "45.155.205.0/24").on_hosts(vec!["web1".into(), "db1".into()]),
        person(Action::Allow, "2a00:1450:4001::/48"),
        Decision::by_policy(
            parse_target("45.155.205.7").unwrap(),
            "ssh",
            "web1",
            "ev-1".into(),
        ),
    ];
    let mut stored = Vec::new();
    for d in &made {
        stored.push(log.decide(d).await.unwrap());
    }
    for (d, s) in made.iter().zip(&stored) {
        assert_eq!(
            Decision {
                id: s.id,
                ..d.clone()
            },
            *s,
            "stored as made"
        );
    }
    let ids: Vec<u64> = stored.iter().map(|d| d.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let revoke = log
        .decide(&Decision::revoking(&stored[0], "bob", "false alarm"))
        .await
        .unwrap();
    assert_eq!(revoke.revokes, Some(ids[0]));

    let all = log.after(0, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[..4], stored[..]);
    assert_eq!(
        log.after(ids[1], 100).await.unwrap()[..2],
        [stored[2].clone(), stored[3].clone()]
    );
    assert_eq!(log.after(0, 2).await.unwrap(), stored[..2]);

    let on = |s: &'static str| async move {
        let found = log.on(ip(s)).await.unwrap();
        found.iter().map(|d| d.id).collect::<Vec<_>>()
    };
    assert_eq!(
        on("45.155.205.7").await,
        [ids[0], ids[1], ids[3], revoke.id]
    );
    assert_eq!(on("::ffff:45.155.205.200").await, [ids[1]]);
    assert_eq!(on("2a00:1450:4001:8::1").await, [ids[2]]);
    assert!(on("45.155.206.1").await.is_empty());

    // A decision's key makes storing it idempotent.
    let again = Decision::by_policy(
        parse_target("45.155.205.7").unwrap(),
        "ssh",
        "web1",
        "ev-1".into(),
    );
    assert_eq!(log.decide(&again).await.unwrap(), stored[3]);
    assert_eq!(log.after(0, 100).await.unwrap().len(), 5);
    let hour_ago = Utc::now() - Duration::hours(1);
    assert_eq!(log.made_from("web1", hour_ago).await.unwrap(), 1);
    assert_eq!(log.made_from("db1", hour_ago).await.unwrap(), 0);
    assert_eq!(
        log.made_from("web1", Utc::now() + Duration::minutes(1))
            .await
            .unwrap(),
        0
    );

    let mut bad = person(Action::Ban, "45.155.205.8");
    bad.reason = "\u{1b}]8;;http://evil\u{7}".into();
    assert!(log.decide(&bad).await.is_err());
    assert_eq!(log.after(0, 100).await.unwrap().len(), 5, "nothing stored");
}

/// Writers deciding at once, one of them 30 s behind the others' clocks, all
/// re-deciding some of the same keyed decisions, and a reader following them: every decision is stored once under its own
/// id, and the reader, asking only for what follows the last id it saw, sees
/// every one of them once and in order.
async fn concurrent_deciders_neither_skip_nor_repeat(store: Store) {
    const WRITERS: usize = 4;
    const EACH: usize = 15;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..EACH {
                    let target = parse_target(&format!("45.155.{w}.{n}")).unwrap();
                    let shared = format!("shared-{n}");
                    let mut decision = if n % 5 == 0 {
                        Decision::by_policy(target, "ssh", "web1", shared)
                    } else {
                        Decision::by_person(Action::Ban, target, "alice", "")
                    };
                    // One writer's clock is 30 s behind the others'.
                    if w == 1 {
                        decision.created -= Duration::seconds(30);
                    }
                    store.decision_log().decide(&decision).await.unwrap();
                }
            })
        })
        .collect();
    let expected = WRITERS * EACH - (WRITERS - 1) * EACH.div_ceil(5);
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while seen.len() < expected && std::time::Instant::now() < deadline {
        let last = seen.last().map_or(0, |d: &Decision| d.id);
        seen.extend(store.decision_log().after(last, 7).await.unwrap());
    }
    for w in writers {
        w.await.unwrap();
    }
    let all = store.decision_log().after(0, 1000).await.unwrap();
    assert_eq!(all.len(), expected);
    assert_eq!(seen, all, "the follower saw every decision once, in order");
    let keys: BTreeSet<&str> = all.iter().filter_map(|d| d.key.as_deref()).collect();
    assert_eq!(keys.len(), EACH.div_ceil(5));
}

async fn agents_reports_and_applications_replace_earlier_ones(store: Store) {
    let log = store.decision_log();
    let report = |host: &str, last| AgentReport {
        host: host.into(),
        addresses: vec![ip("8.8.4.4"), ip("2a00:1450::4")],
        seen: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
        last,
        applied: last * 2,
        refused: 1,
        failed: 0,
        error: None,
    };
    log.report_agent(&report("web2", 3)).await.unwrap();
    log.report_agent(&report("web1", 1)).await.unwrap();
    log.report_agent(&report("web1", 9)).await.unwrap();
    assert_eq!(
        log.agents().await.unwrap(),
        [report("web1", 9), report("web2", 3)]
    );
    assert!(log.report_agent(&report("", 1)).await.is_err());

    let at = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
    let applied = |decision, host: &str, outcome, detail: Option<&str>| Applied {
        decision,
        host: host.into(),
        at,
        outcome,
        detail: detail.map(Into::into),
    };
    log.record_applied(&[
        applied(7, "web2", Outcome::Failed, Some("fail2ban: refused")),
        applied(7, "web1", Outcome::Applied, None),
        applied(8, "web1", Outcome::Refused, Some("in this host's ignoreip")),
    ])
    .await
    .unwrap();
    log.record_applied(&[applied(7, "web2", Outcome::Applied, None)])
        .await
        .unwrap();
    assert_eq!(
        log.applied(&[7, 8, 9]).await.unwrap(),
        [
            applied(7, "web1", Outcome::Applied, None),
            applied(7, "web2", Outcome::Applied, None),
            applied(8, "web1", Outcome::Refused, Some("in this host's ignoreip")),
        ]
    );
    assert!(log.applied(&[1]).await.unwrap().is_empty());
}

async fn service_state_round_trips(store: Store) {
    assert_eq!(store.state("watch").await.unwrap(), None);
    let first = serde_json::json!({ "firing": { "silent-host:web1": "2026-12-01T10:00:00Z" }, "sent": [1, 2] });
    store.set_state("watch", &first).await.unwrap();
    assert_eq!(store.state("watch").await.unwrap(), Some(first));
    let second = serde_json::json!({ "firing": {} });
    store.set_state("watch", &second).await.unwrap();
    assert_eq!(store.state("watch").await.unwrap(), Some(second));
    assert_eq!(store.state("other").await.unwrap(), None);
    assert!(store.set_state("", &serde_json::json!(1)).await.is_err());
}
