//! Inserts (with the summaries they maintain), prune and geo updates.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use foldhash::HashMap;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::key::Stored;
use super::sql_err;
use super::tally::{Location, Tally};
use crate::error::Result;
use crate::event::{round_half_even_secs, BanEvent, EventId, EventKind, Geo};
use crate::ipkey::ip_key;
use crate::query::{network_of, BatchOutcome};
use crate::storage::shared::{kind_code, DEFAULT_BANTIME_S};

pub(super) use crate::storage::shared::{DAY_MS, SLOT_MS};

pub(super) fn insert(conn: &mut Connection, events: &[BanEvent]) -> Result<BatchOutcome> {
    // IMMEDIATE: take the write lock up front, so concurrent writers queue on the
    // busy timeout instead of failing on a read-to-write upgrade.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let before = newest_id(&tx).map_err(sql_err)?;
    let mut outcome = BatchOutcome::default();
    let mut tally = Tally::default();
    // Each address once per batch, the latest geolocation given for it winning;
    // in key order, so that each page of the address table is visited once.
    let mut addresses: BTreeMap<[u8; 16], (IpAddr, Option<&Geo>)> = BTreeMap::new();
    // Prepared once: looking it up in the cache hashes its text, per event.
    let mut insert = tx.prepare_cached(INSERT_EVENT).map_err(sql_err)?;
    for event in events {
        let key = ip_key(event.ip);
        if insert_one(&mut insert, event, &key).map_err(sql_err)? {
            outcome.inserted += 1;
            if event.is_new_ban() {
                tally.add(event, key);
            }
            let entry = addresses.entry(key).or_insert((event.ip, None));
            if event.geo.is_some() {
                entry.1 = event.geo.as_ref();
            }
        } else {
            outcome.duplicates += 1;
        }
    }
    drop(insert);
    let mut located = HashMap::default();
    for (key, (ip, geo)) in addresses {
        let location = upsert_address(&tx, Stored::of(&key), ip, geo, before).map_err(sql_err)?;
        located.insert(key, location);
    }
    tally.write(&tx, &located).map_err(sql_err)?;
    if outcome.inserted > 0 {
        fold_bans(&tx, before, Present::of(events)).map_err(sql_err)?;
    }
    tx.commit().map_err(sql_err)?;
    Ok(outcome)
}

/// The row id of the newest event (0 when none): ids only grow, so events
/// after it are the new ones, and it bounds how many are stored.
pub(super) fn newest_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT coalesce(max(id), 0) FROM events")?
        .query_row([], |r| r.get(0))
}

/// The unique key of a stored event: the second its id was made from, then
/// the id. Led by time, new keys go to the end of the index.
pub(super) fn event_key(id: &EventId, time_ms: i64) -> [u8; 20] {
    let mut key = [0; 20];
    key[..8].copy_from_slice(&round_half_even_secs(time_ms).to_be_bytes());
    key[8..].copy_from_slice(&id.0);
    key
}

const INSERT_EVENT: &str = "INSERT OR IGNORE INTO events (event_key, kind, ip_key, jail, host,
        protocol, port, failures, time, bantime, bancount, restored, matches, user, country, city,
        latitude, longitude, asn, as_org, received_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
        ?20, ?21)";

/// Inserts one event, its address keyed `key`, with `insert` ([`INSERT_EVENT`]);
/// false when it was already stored.
fn insert_one(
    insert: &mut rusqlite::Statement<'_>,
    e: &BanEvent,
    key: &[u8; 16],
) -> rusqlite::Result<bool> {
    // Borrowed, not cloned: this runs for every imported row.
    let geo = e.geo.as_ref();
    let matches = if e.matches.is_empty() {
        None
    } else {
        serde_json::to_string(&e.matches).ok()
    };
    let inserted = insert.execute(params![
        &event_key(&e.id(), e.time.timestamp_millis())[..],
        i64::from(kind_code(e.kind)),
        Stored::of(key),
        e.jail,
        e.host,
        e.protocol,
        e.port,
        e.failures,
        e.time.timestamp_millis(),
        e.bantime,
        e.bancount,
        e.restored,
        matches,
        e.user,
        geo.and_then(|g| g.country.as_deref()),
        geo.and_then(|g| g.city.as_deref()),
        geo.and_then(|g| g.latitude),
        geo.and_then(|g| g.longitude),
        geo.and_then(|g| g.asn),
        geo.and_then(|g| g.as_org.as_deref()),
        e.received_at.timestamp_millis(),
    ])?;
    Ok(inserted == 1)
}

/// Records an address, or what a new event says of a known one's location
/// (filling in or replacing what was known); `folded`: see [`locate`].
/// Returns where the address is now.
fn upsert_address(
    tx: &rusqlite::Transaction<'_>,
    key: Stored,
    ip: IpAddr,
    geo: Option<&Geo>,
    folded: i64,
) -> rusqlite::Result<Location> {
    let place = Place::of(geo);
    let added = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO ips (ip_key, network, country, asn, as_org)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            key,
            network_of(ip).to_string(),
            place.country,
            place.asn,
            place.as_org
        ])?;
    if added == 1 {
        Ok(place.location())
    } else {
        locate(tx, key, place, true, folded)
    }
}

/// Where an address is, as `ips` keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Place<'a> {
    country: Option<&'a str>,
    asn: Option<u32>,
    as_org: Option<&'a str>,
}

impl<'a> Place<'a> {
    fn of(geo: Option<&'a Geo>) -> Self {
        Place {
            country: geo.and_then(|g| g.country.as_deref()),
            asn: geo.and_then(|g| g.asn),
            as_org: geo.and_then(|g| g.as_org.as_deref()),
        }
    }

    fn location(self) -> Location {
        Location {
            country: self.country.map(str::to_owned),
            asn: self.asn,
        }
    }

    /// This place, the `known` one's fields standing where this one says nothing.
    fn or(self, known: Place<'a>) -> Self {
        Place {
            country: self.country.or(known.country),
            asn: self.asn.or(known.asn),
            as_org: self.as_org.or(known.as_org),
        }
    }
}

/// Moves an address to `place` (`keep_known`: where `place` says nothing, the
/// old stays) and keeps the summaries right: its address-days are located
/// anew, its bans move to the new country in `country_slots` (those of events
/// up to row `folded`, the ones already counted), its window rows move to the
/// new keys (the triggers move the totals), and the windows scoped to a
/// country it left or joined are emptied to be built again. Returns where the
/// address is now (nowhere when it is not recorded).
fn locate(
    tx: &rusqlite::Transaction<'_>,
    key: Stored,
    place: Place<'_>,
    keep_known: bool,
    folded: i64,
) -> rusqlite::Result<Location> {
    let known: Option<(Option<String>, Option<u32>, Option<String>)> = tx
        .prepare_cached("SELECT country, asn, as_org FROM ips WHERE ip_key = ?1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((country, asn, as_org)) = known else {
        return Ok(Location::default());
    };
    let old = Place {
        country: country.as_deref(),
        asn,
        as_org: as_org.as_deref(),
    };
    let new = if keep_known { place.or(old) } else { place };
    if new == old {
        return Ok(new.location());
    }
    tx.prepare_cached("UPDATE ips SET country = ?2, asn = ?3, as_org = ?4 WHERE ip_key = ?1")?
        .execute(params![key, new.country, new.asn, new.as_org])?;
    tx.prepare_cached(
        "UPDATE win_ip SET country = ?2, asn = ?3, as_org = ?4
         WHERE win IN (SELECT win FROM win_state) AND ip_key = ?1",
    )?
    .execute(params![key, new.country, new.asn, new.as_org])?;
    if (new.country, new.asn) != (old.country, old.asn) {
        // The address's events are found through its index, which a bulk
        // load may have set aside: without it each move would scan them all.
        address_index(tx)?;
        tx.prepare_cached(&format!(
            "UPDATE ip_day SET country = ?2, asn = ?3 WHERE ip_key = ?1 AND day IN (
                SELECT DISTINCT time / {DAY_MS} FROM events WHERE ip_key = ?1)"
        ))?
        .execute(params![key, new.country, new.asn])?;
    }
    if new.country != old.country {
        for (country, sign) in [(old.country, -1), (new.country, 1)] {
            tx.prepare_cached(&format!(
                "INSERT INTO country_slots (slot, country, bans)
                 SELECT time / {SLOT_MS}, ?2, count(*) * ?3 FROM events
                 WHERE ip_key = ?1 AND id <= ?4 AND kind = 0 AND restored = 0 AND ?2 IS NOT NULL
                 GROUP BY 1
                 ON CONFLICT (slot, country) DO UPDATE SET bans = bans + excluded.bans"
            ))?
            .execute(params![key, country, sign, folded])?;
        }
        super::window::country_moved(tx, old.country, new.country)?;
    }
    Ok(new.location())
}

/// Which kinds of events a batch holds, so that folding skips what cannot apply.
#[derive(Debug, Clone, Copy)]
struct Present {
    bans: bool,
    unbans: bool,
}

impl Present {
    fn of(events: &[BanEvent]) -> Self {
        Present {
            bans: events.iter().any(|e| e.kind == EventKind::Ban),
            unbans: events.iter().any(|e| e.kind == EventKind::Unban),
        }
    }
}

/// Folds the events with `id > after` into the bans in force, set-based: a
/// batch costs a handful of statements, not a handful per event.
fn fold_bans(tx: &rusqlite::Transaction<'_>, after: i64, present: Present) -> rusqlite::Result<()> {
    // Every statement skipped saves its compilation: `aegis ban` prepares them afresh.
    if present.bans {
        // The latest ban per address, host and jail (bare columns come from the
        // max row); one already expired matters only if it replaces a row.
        tx.prepare_cached(&format!(
            "INSERT INTO active_bans (ip_key, host, jail, banned_at, expires)
             SELECT * FROM (
                SELECT e.ip_key, e.host, e.jail, max(e.time) AS banned_at,
                    CASE WHEN e.bantime = -1 THEN NULL
                         ELSE e.time + coalesce(e.bantime, {DEFAULT_BANTIME_S}) * 1000 END AS expires
                FROM events e NOT INDEXED WHERE e.id > ?1 AND e.kind = 0 GROUP BY 1, 2, 3
             ) n
             WHERE n.expires IS NULL OR n.expires > ?2 OR EXISTS (SELECT 1 FROM active_bans a
                WHERE a.ip_key = n.ip_key AND a.host = n.host AND a.jail = n.jail)
             ON CONFLICT (ip_key, host, jail) DO UPDATE SET
                banned_at = excluded.banned_at, expires = excluded.expires
             WHERE excluded.banned_at >= banned_at"
        ))?
        .execute([after, Utc::now().timestamp_millis()])?;
    }
    if present.unbans {
        tx.prepare_cached(
            "DELETE FROM active_bans WHERE (ip_key, host, jail) IN (
                SELECT u.ip_key, u.host, u.jail FROM events u NOT INDEXED JOIN active_bans a
                ON a.ip_key = u.ip_key AND a.host = u.host AND a.jail = u.jail
                WHERE u.id > ?1 AND u.kind = 1 AND u.time >= a.banned_at)",
        )?
        .execute([after])?;
    }
    if present.bans {
        // Expired bans can never count again: keep the table to the live ones.
        tx.prepare_cached("DELETE FROM active_bans WHERE expires <= ?1")?
            .execute([Utc::now().timestamp_millis()])?;
    }
    Ok(())
}

/// Before a bulk load that outgrows the store: drops the per-address index,
/// which new addresses would otherwise rewrite all over on every batch;
/// [`restore_address_index`] builds it again in one sorted pass.
pub(super) fn expect_bulk(conn: &mut Connection, events: u64) -> Result<()> {
    let stored = newest_id(conn).map_err(sql_err)?;
    if i64::try_from(events).unwrap_or(i64::MAX) > stored {
        conn.execute("DROP INDEX IF EXISTS events_ip", [])
            .map_err(sql_err)?;
    }
    Ok(())
}

/// Builds the per-address index when a bulk load (finished or not) left it out.
pub(super) fn restore_address_index(conn: &mut Connection) -> Result<()> {
    address_index(conn).map_err(sql_err)
}

fn address_index(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "CREATE INDEX IF NOT EXISTS events_ip ON events (ip_key, time)",
        [],
    )
    .map(drop)
}

pub(super) fn prune(conn: &mut Connection, before: DateTime<Utc>) -> Result<u64> {
    let cutoff = before.timestamp_millis();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    // Windows must let go of the events before they are deleted.
    super::window::advance_all(&tx, cutoff).map_err(sql_err)?;
    let deleted = tx
        .execute("DELETE FROM events WHERE time < ?1", [cutoff])
        .map_err(sql_err)?;
    super::window::after_delete(&tx).map_err(sql_err)?;
    // Summaries: drop whole buckets before the cutoff, rebuild the one it cuts.
    let day = cutoff.div_euclid(DAY_MS);
    let slot = cutoff.div_euclid(SLOT_MS);
    tx.execute("DELETE FROM ip_day WHERE day <= ?1", [day])
        .map_err(sql_err)?;
    for table in ["ban_slots", "ban_totals", "country_slots"] {
        tx.execute(&format!("DELETE FROM {table} WHERE slot <= ?1"), [slot])
            .map_err(sql_err)?;
    }
    tx.execute(
        "INSERT INTO ip_day (day, ip_key, host, jail, bans, first, last, country, asn)
         SELECT ?1, e.ip_key, e.host, e.jail, count(*), min(e.time), max(e.time), i.country, i.asn
         FROM events e LEFT JOIN ips i ON i.ip_key = e.ip_key
         WHERE e.time >= ?2 AND e.time < ?3 AND e.kind = 0 AND e.restored = 0
         GROUP BY e.ip_key, e.host, e.jail",
        params![day, cutoff, (day + 1) * DAY_MS],
    )
    .map_err(sql_err)?;
    tx.execute(
        "INSERT INTO ban_slots (slot, host, jail, bans)
         SELECT ?1, host, jail, count(*) FROM events
         WHERE time >= ?2 AND time < ?3 AND kind = 0 AND restored = 0
         GROUP BY host, jail",
        params![slot, cutoff, (slot + 1) * SLOT_MS],
    )
    .map_err(sql_err)?;
    tx.execute(
        "INSERT INTO country_slots (slot, country, bans)
         SELECT ?1, i.country, count(*) FROM events e CROSS JOIN ips i ON i.ip_key = e.ip_key
         WHERE e.time >= ?2 AND e.time < ?3 AND e.kind = 0 AND e.restored = 0
         AND i.country IS NOT NULL GROUP BY 2",
        params![slot, cutoff, (slot + 1) * SLOT_MS],
    )
    .map_err(sql_err)?;
    tx.execute(
        "INSERT INTO ban_totals (slot, bans) SELECT slot, sum(bans) FROM ban_slots
         WHERE slot = ?1 GROUP BY slot",
        [slot],
    )
    .map_err(sql_err)?;
    tx.execute(
        "DELETE FROM ips WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.ip_key = ips.ip_key)",
        [],
    )
    .map_err(sql_err)?;
    tx.commit().map_err(sql_err)?;
    Ok(deleted as u64)
}

pub(super) fn set_geo(conn: &mut Connection, ip: IpAddr, geo: &Geo) -> Result<u64> {
    set_geo_many(conn, &[(ip, geo.clone())])
}

/// Sets the geolocation of each address's events, summaries and windows, in one transaction.
pub(super) fn set_geo_many(conn: &mut Connection, updates: &[(IpAddr, Geo)]) -> Result<u64> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let mut changed = 0;
    let folded = newest_id(&tx).map_err(sql_err)?;
    for (ip, geo) in updates {
        let key = Stored::ip(*ip);
        changed += tx
            .prepare_cached(
                "UPDATE events SET country = ?2, city = ?3, latitude = ?4, longitude = ?5,
                    asn = ?6, as_org = ?7 WHERE ip_key = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key,
                    geo.country,
                    geo.city,
                    geo.latitude,
                    geo.longitude,
                    geo.asn,
                    geo.as_org
                ])
            })
            .map_err(sql_err)? as u64;
        locate(&tx, key, Place::of(Some(geo)), false, folded).map_err(sql_err)?;
    }
    tx.commit().map_err(sql_err)?;
    Ok(changed)
}

pub(super) fn cache_geo(conn: &mut Connection, answers: &[(IpAddr, Option<Geo>)]) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let now = Utc::now().timestamp_millis();
    for (ip, geo) in answers {
        let json = geo.as_ref().and_then(|g| serde_json::to_string(g).ok());
        tx.prepare_cached(
            "INSERT INTO geo_cache (ip_key, geo, fetched_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (ip_key) DO UPDATE SET geo = excluded.geo, fetched_at = excluded.fetched_at",
        )
        .and_then(|mut s| s.execute(params![Stored::ip(*ip), json, now]))
        .map_err(sql_err)?;
    }
    tx.commit().map_err(sql_err)
}

pub(super) fn set_state(conn: &mut Connection, name: &str, body: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO service_state (name, body) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET body = excluded.body",
        params![name, body],
    )
    .map(drop)
    .map_err(sql_err)
}
