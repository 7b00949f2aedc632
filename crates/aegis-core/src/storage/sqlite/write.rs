//! Inserts (with the summaries they maintain), prune and geo updates.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::sql_err;
use crate::error::Result;
use crate::event::{BanEvent, EventKind, Geo};
use crate::ipkey::ip_key;
use crate::query::{network_of, BatchOutcome};

pub(super) const DAY_MS: i64 = 86_400_000;
pub(super) const SLOT_MS: i64 = 900_000;
/// fail2ban's default bantime, assumed when an event does not say.
const DEFAULT_BANTIME_MS: i64 = 600_000;

pub(super) fn insert(conn: &mut Connection, events: &[BanEvent]) -> Result<BatchOutcome> {
    // IMMEDIATE: take the write lock up front, so concurrent writers queue on the
    // busy timeout instead of failing on a read-to-write upgrade.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let mut outcome = BatchOutcome::default();
    for event in events {
        if insert_one(&tx, event).map_err(sql_err)? {
            outcome.inserted += 1;
        } else {
            outcome.duplicates += 1;
        }
    }
    tx.commit().map_err(sql_err)?;
    Ok(outcome)
}

/// Inserts one event and updates the summaries; false when it was already stored.
fn insert_one(tx: &rusqlite::Transaction<'_>, e: &BanEvent) -> rusqlite::Result<bool> {
    let key = ip_key(e.ip);
    let time = e.time.timestamp_millis();
    let geo = e.geo.clone().unwrap_or_default();
    let matches = if e.matches.is_empty() {
        None
    } else {
        serde_json::to_string(&e.matches).ok()
    };
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO events (event_id, kind, ip, ip_key, jail, host, protocol, port,
                failures, time, bantime, bancount, restored, matches, user, country, city,
                latitude, longitude, asn, as_org, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20, ?21, ?22)",
        )?
        .execute(params![
            &e.id().0[..],
            kind_code(e.kind),
            e.ip.to_string(),
            &key[..],
            e.jail,
            e.host,
            e.protocol,
            e.port,
            e.failures,
            time,
            e.bantime,
            e.bancount,
            e.restored,
            matches,
            e.user,
            geo.country,
            geo.city,
            geo.latitude,
            geo.longitude,
            geo.asn,
            geo.as_org,
            e.received_at.timestamp_millis(),
        ])?;
    if inserted == 0 {
        return Ok(false);
    }
    tx.prepare_cached(
        "INSERT INTO ips (ip_key, network, country, asn, as_org) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (ip_key) DO UPDATE SET
            country = coalesce(excluded.country, country),
            asn = coalesce(excluded.asn, asn),
            as_org = coalesce(excluded.as_org, as_org)",
    )?
    .execute(params![
        &key[..],
        network_of(e.ip).to_string(),
        geo.country,
        geo.asn,
        geo.as_org
    ])?;
    match e.kind {
        EventKind::Ban => {
            let expires = match e.bantime {
                Some(-1) => None,
                Some(secs) => Some(time + secs * 1000),
                None => Some(time + DEFAULT_BANTIME_MS),
            };
            tx.prepare_cached(
                "INSERT INTO active_bans (ip_key, host, jail, banned_at, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (ip_key, host, jail) DO UPDATE SET
                    banned_at = excluded.banned_at, expires = excluded.expires
                 WHERE excluded.banned_at >= banned_at",
            )?
            .execute(params![&key[..], e.host, e.jail, time, expires])?;
        }
        EventKind::Unban => {
            tx.prepare_cached(
                "DELETE FROM active_bans WHERE ip_key = ?1 AND host = ?2 AND jail = ?3
                 AND banned_at <= ?4",
            )?
            .execute(params![&key[..], e.host, e.jail, time])?;
        }
    }
    if e.is_new_ban() {
        add_ban(tx, &key, &e.host, &e.jail, time)?;
    }
    Ok(true)
}

/// Counts one new ban in the per-day and per-slot summaries.
fn add_ban(
    tx: &rusqlite::Transaction<'_>,
    key: &[u8],
    host: &str,
    jail: &str,
    time: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO ip_day (day, ip_key, host, jail, bans, first, last)
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)
         ON CONFLICT (day, ip_key, host, jail) DO UPDATE SET
            bans = bans + 1, first = min(first, excluded.first), last = max(last, excluded.last)",
    )?
    .execute(params![time.div_euclid(DAY_MS), key, host, jail, time])?;
    tx.prepare_cached(
        "INSERT INTO ban_slots (slot, host, jail, bans) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (slot, host, jail) DO UPDATE SET bans = bans + 1",
    )?
    .execute(params![time.div_euclid(SLOT_MS), host, jail])?;
    Ok(())
}

pub(super) fn kind_code(kind: EventKind) -> i64 {
    match kind {
        EventKind::Ban => 0,
        EventKind::Unban => 1,
    }
}

pub(super) fn prune(conn: &mut Connection, before: DateTime<Utc>) -> Result<u64> {
    let cutoff = before.timestamp_millis();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let deleted = tx
        .execute("DELETE FROM events WHERE time < ?1", [cutoff])
        .map_err(sql_err)?;
    // Summaries: drop whole buckets before the cutoff, rebuild the one it cuts.
    let day = cutoff.div_euclid(DAY_MS);
    let slot = cutoff.div_euclid(SLOT_MS);
    tx.execute("DELETE FROM ip_day WHERE day <= ?1", [day])
        .map_err(sql_err)?;
    tx.execute("DELETE FROM ban_slots WHERE slot <= ?1", [slot])
        .map_err(sql_err)?;
    tx.execute(
        "INSERT INTO ip_day (day, ip_key, host, jail, bans, first, last)
         SELECT ?1, ip_key, host, jail, count(*), min(time), max(time) FROM events
         WHERE time >= ?2 AND time < ?3 AND kind = 0 AND restored = 0
         GROUP BY ip_key, host, jail",
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
        "DELETE FROM ips WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.ip_key = ips.ip_key)",
        [],
    )
    .map_err(sql_err)?;
    tx.commit().map_err(sql_err)?;
    Ok(deleted as u64)
}

pub(super) fn set_geo(conn: &mut Connection, ip: IpAddr, geo: &Geo) -> Result<u64> {
    let key = ip_key(ip);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let changed = tx
        .execute(
            "UPDATE events SET country = ?2, city = ?3, latitude = ?4, longitude = ?5, asn = ?6,
                as_org = ?7 WHERE ip_key = ?1",
            params![
                &key[..],
                geo.country,
                geo.city,
                geo.latitude,
                geo.longitude,
                geo.asn,
                geo.as_org
            ],
        )
        .map_err(sql_err)?;
    let known: Option<i64> = tx
        .query_row("SELECT 1 FROM ips WHERE ip_key = ?1", [&key[..]], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sql_err)?;
    if known.is_some() {
        tx.execute(
            "UPDATE ips SET country = ?2, asn = ?3, as_org = ?4 WHERE ip_key = ?1",
            params![&key[..], geo.country, geo.asn, geo.as_org],
        )
        .map_err(sql_err)?;
    }
    tx.commit().map_err(sql_err)?;
    Ok(changed as u64)
}
