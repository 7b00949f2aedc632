//! Versioned schema migrations, applied in order and recorded in `PRAGMA user_version`.

use rusqlite::Connection;

use super::sql_err;
use crate::error::{Error, Result};

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_geo_cache.sql"),
    include_str!("migrations/0003_windows_at_read.sql"),
    include_str!("migrations/0004_events_keyed_by_time.sql"),
    include_str!("migrations/0005_decisions.sql"),
    include_str!("migrations/0006_service_state.sql"),
    include_str!("migrations/0007_scoped_windows.sql"),
    include_str!("migrations/0008_country_slots.sql"),
    include_str!("migrations/0009_located_days.sql"),
    include_str!("migrations/0010_address_text_dropped.sql"),
    include_str!("migrations/0011_country_index_dropped.sql"),
    include_str!("migrations/0012_short_address_keys.sql"),
];

/// Brings the schema up to date; refuses a database written by a newer Aegis.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let current: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(sql_err)? as usize;
    if current == MIGRATIONS.len() {
        return Ok(());
    }
    if current > MIGRATIONS.len() {
        return Err(Error::Storage(format!(
            "the database has schema version {current}, newer than this Aegis knows ({}): upgrade Aegis",
            MIGRATIONS.len()
        )));
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .map_err(sql_err)?;
    // Another process may have migrated while we waited for the lock.
    let current: usize = tx
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(sql_err)? as usize;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql).map_err(sql_err)?;
        tx.pragma_update(None, "user_version", (version + 1) as i64)
            .map_err(sql_err)?;
    }
    tx.commit().map_err(sql_err)
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use chrono::{TimeZone, Utc};
    use ipnetwork::IpNetwork;
    use rusqlite::params;

    use super::*;
    use crate::decision::{Action, Decision};
    use crate::event::{BanEvent, EventKind};
    use crate::ipkey::ip_key;
    use crate::query::{EventFilter, StatsQuery, TopBy};
    use crate::storage::sqlite::SqliteStorage;
    use crate::storage::{Storage, Workload};

    /// Events stored before the events were keyed by time are still found as
    /// duplicates afterwards, whatever their milliseconds (halves round to even).
    #[tokio::test]
    async fn rekeyed_events_are_still_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aegis.db");
        let base = 1_767_225_600_000; // an even second
                                      // Each stored event, and a twin whose time rounds to the same second.
        let pairs = [
            (0, 499),
            (500, 100),
            (501, 1_400),
            (1_500, 2_400),
            (2_500, 1_600),
        ];
        let at = |n: usize, ms: i64| {
            let time = Utc.timestamp_millis_opt(base + ms).unwrap();
            let ip = format!("192.0.2.{n}").parse().unwrap();
            BanEvent::new(EventKind::Ban, ip, "sshd", "h", time).unwrap()
        };
        let events: Vec<BanEvent> = pairs.iter().enumerate().map(|(n, p)| at(n, p.0)).collect();
        let twins: Vec<BanEvent> = pairs.iter().enumerate().map(|(n, p)| at(n, p.1)).collect();
        {
            let mut conn = Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            for sql in &MIGRATIONS[..3] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 3).unwrap();
            for e in &events {
                tx.execute(
                    "INSERT INTO events (event_id, kind, ip, ip_key, jail, host, time, restored,
                        received_at) VALUES (?1, 0, ?2, ?3, 'sshd', 'h', ?4, 0, ?4)",
                    params![
                        &e.id().0[..],
                        e.ip.to_string(),
                        &ip_key(e.ip)[..],
                        e.time.timestamp_millis()
                    ],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        let store = SqliteStorage::open_for(&path, Workload::Batch).unwrap();
        for batch in [&events, &twins] {
            let again = store.record_batch(batch).await.unwrap();
            assert_eq!((again.inserted, again.duplicates), (0, events.len() as u64));
        }
        for e in &events {
            let stored = store.ip_history(e.ip).await.unwrap();
            assert_eq!(stored.iter().map(|s| s.id).collect::<Vec<_>>(), [e.id()]);
        }
    }

    /// A store from before keys were shortened finds every address as it
    /// did: its events, its networks, its order, its decisions, its cached
    /// location and its window's ranking.
    #[tokio::test]
    async fn address_keys_are_shortened_on_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aegis.db");
        let now = Utc::now();
        // In address order: IPv6 below the IPv4 block, IPv4, IPv6 above it.
        let ips: Vec<IpAddr> = [
            "::1",
            "192.0.2.7",
            "192.0.2.200",
            "198.51.100.1",
            "2001:db8::5",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let bans: Vec<BanEvent> = ips
            .iter()
            .enumerate()
            .flat_map(|(n, ip)| {
                (0..=n).map(move |i| {
                    let at = now - chrono::Duration::minutes(i as i64 + 1);
                    BanEvent::new(EventKind::Ban, *ip, "sshd", "h", at).unwrap()
                })
            })
            .collect();
        let net: IpNetwork = "192.0.2.0/24".parse().unwrap();
        {
            let store = SqliteStorage::open_for(&path, Workload::Batch).unwrap();
            store.record_batch(&bans).await.unwrap();
            store.maintain().await.unwrap();
            let decision = Decision::by_person(Action::Ban, net, "ops", "scan");
            store.decision_log().decide(&decision).await.unwrap();
            store
                .geo_cache()
                .cache_geo(&[(ips[1], None)])
                .await
                .unwrap();
        }
        // Back to 16-byte keys, as version 11 kept them.
        const KEYS: [(&str, &str); 10] = [
            ("events", "ip_key"),
            ("ips", "ip_key"),
            ("ip_day", "ip_key"),
            ("active_bans", "ip_key"),
            ("geo_cache", "ip_key"),
            ("win_ip", "ip_key"),
            ("win_ip_jail", "ip_key"),
            ("win_ip_host", "ip_key"),
            ("decisions", "first_key"),
            ("decisions", "last_key"),
        ];
        {
            let conn = Connection::open(&path).unwrap();
            for (table, column) in KEYS {
                conn.execute(
                    &format!(
                        "UPDATE {table} SET {column} = CASE length({column})
                            WHEN 5 THEN unhex('00000000000000000000FFFF' || hex(substr({column}, 2)))
                            ELSE substr({column}, 2) END"
                    ),
                    [],
                )
                .unwrap();
            }
            conn.pragma_update(None, "user_version", 11).unwrap();
        }
        let store = SqliteStorage::open_for(&path, Workload::Batch).unwrap();
        {
            let conn = store.inner.writer.lock().unwrap();
            for (table, column) in KEYS {
                let long: i64 = conn
                    .query_row(
                        &format!(
                            "SELECT count(*) FROM {table} WHERE length({column}) NOT IN (5, 17)"
                        ),
                        [],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(long, 0, "{table}.{column}");
            }
        }
        for (n, ip) in ips.iter().enumerate() {
            assert_eq!(store.ip_history(*ip).await.unwrap().len(), n + 1, "{ip}");
        }
        let in_net = EventFilter {
            network: Some(net),
            ..Default::default()
        };
        assert_eq!(store.count_events(&in_net).await.unwrap(), 2 + 3);
        assert_eq!(store.distinct_ips(None, 10).await.unwrap(), ips);
        assert_eq!(store.decision_log().on(ips[2]).await.unwrap().len(), 1);
        assert!(store.decision_log().on(ips[3]).await.unwrap().is_empty());
        assert_eq!(
            store.geo_cache().cached_geo(&ips).await.unwrap(),
            [(ips[1], None)]
        );
        let top = store
            .top_offenders(&StatsQuery::last_days(1), 10)
            .await
            .unwrap();
        let ranked: Vec<IpAddr> = top.iter().map(|o| o.ip).collect();
        assert_eq!(ranked, ips.iter().rev().copied().collect::<Vec<_>>());
    }

    /// A store from before address-days carried a location has them located
    /// as its addresses are: a past week ranks by country and AS at once.
    #[tokio::test]
    async fn address_days_are_located_on_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aegis.db");
        let now = Utc::now();
        let located = |ip: &str, country: &str, asn: u32| {
            let mut e =
                BanEvent::new(EventKind::Ban, ip.parse().unwrap(), "sshd", "h", now).unwrap();
            e.geo = Some(crate::event::Geo {
                country: Some(country.into()),
                asn: Some(asn),
                ..Default::default()
            });
            e
        };
        let events = [
            located("192.0.2.1", "DE", 3320),
            located("192.0.2.2", "DE", 3320),
            located("198.51.100.1", "FR", 3215),
        ];
        {
            let store = SqliteStorage::open_for(&path, Workload::Batch).unwrap();
            store.record_batch(&events).await.unwrap();
        }
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "ALTER TABLE ip_day DROP COLUMN country; ALTER TABLE ip_day DROP COLUMN asn;
                 ALTER TABLE events ADD COLUMN ip TEXT; CREATE INDEX ips_country ON ips (country);
                 PRAGMA user_version = 8;",
            )
            .unwrap();
        }
        let store = SqliteStorage::open_for(&path, Workload::Batch).unwrap();
        let week = StatsQuery::range(
            now - chrono::Duration::days(7),
            now + chrono::Duration::hours(1),
        );
        let keys = |by| {
            let (store, week) = (&store, &week);
            async move {
                let top = store.top(week, by, 10).await.unwrap();
                top.into_iter().map(|t| (t.key, t.bans)).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            keys(TopBy::Country).await,
            [("DE".into(), 2), ("FR".into(), 1)]
        );
        assert_eq!(
            keys(TopBy::Asn).await,
            [("AS3320".into(), 2), ("AS3215".into(), 1)]
        );
    }
}
