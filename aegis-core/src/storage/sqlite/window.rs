//! Rolling windows: exact statistics for "the last 24 h / 7 d / 30 d" that cost
//! the same at ten million events as at ten.
//!
//! A window holds every new ban at or after its cut. New bans are folded in on
//! insert (see `write::fold`); a query moves the cut forward to its `since`,
//! subtracting the bans that left. A query fits a window only when it has no
//! host, jail or country filter, spans exactly a window's length, and no stored
//! event lies at or after its `until`; anything else takes the range path.

use chrono::{TimeZone, Utc};
use rusqlite::{params, OptionalExtension, Transaction};

use super::write::{fold_windows, WindowRows, DAY_MS};
use crate::ipkey::ip_from_key;
use crate::query::{Offender, StatsQuery, TopBy, TopEntry};
use crate::storage::shared::count;

/// The window lengths kept, in milliseconds.
const WINDOWS: [i64; 3] = [DAY_MS, 7 * DAY_MS, 30 * DAY_MS];

/// Addresses tied at the last place of a ranking that are examined to break the tie.
const MAX_TIES: u32 = 1_000;

/// Whether `q` has the shape of a window query (checked before taking the write lock).
pub(super) fn fits(q: &StatsQuery) -> bool {
    let win = (q.until - q.since).num_milliseconds();
    q.scope.is_all() && WINDOWS.contains(&win)
}

/// The window that answers `q` exactly, moved to `q.since`; `None` when none can.
pub(super) fn prepare(tx: &Transaction<'_>, q: &StatsQuery) -> rusqlite::Result<Option<i64>> {
    let (since, until) = (q.since.timestamp_millis(), q.until.timestamp_millis());
    let win = until - since;
    if !fits(q) {
        return Ok(None);
    }
    let latest: Option<i64> = tx.query_row("SELECT max(time) FROM events", [], |r| r.get(0))?;
    if latest.is_some_and(|t| t >= until) {
        return Ok(None);
    }
    let cut: Option<i64> = tx
        .query_row("SELECT cut FROM win_state WHERE win = ?1", [win], |r| {
            r.get(0)
        })
        .optional()?;
    match cut {
        None => build(tx, win, since)?,
        Some(cut) if cut < since => advance(tx, win, cut, since)?,
        Some(cut) if cut > since => return Ok(None),
        Some(_) => {}
    }
    Ok(Some(win))
}

/// Builds window `win` from history: rows first (the per-row triggers stand aside),
/// then the totals in one pass each.
fn build(tx: &Transaction<'_>, win: i64, cut: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO win_state (win, cut, building) VALUES (?1, ?2, 1)",
        [win, cut],
    )?;
    fold_windows(tx, WindowRows::Build { win })?;
    tx.execute_batch(&format!(
        "INSERT INTO win_attr (win, kind, key, label, bans, ips)
            SELECT {win}, 'all', '', NULL, sum(bans), count(*) FROM win_ip WHERE win = {win}
            HAVING count(*) > 0;
         INSERT INTO win_attr (win, kind, key, label, bans, ips)
            SELECT {win}, 'country', country, NULL, sum(bans), count(*) FROM win_ip
            WHERE win = {win} AND country IS NOT NULL GROUP BY country;
         INSERT INTO win_attr (win, kind, key, label, bans, ips)
            SELECT {win}, 'asn', 'AS' || asn, max(as_org), sum(bans), count(*) FROM win_ip
            WHERE win = {win} AND asn IS NOT NULL GROUP BY asn;
         INSERT INTO win_attr (win, kind, key, label, bans, ips)
            SELECT {win}, 'network', network, NULL, sum(bans), count(*) FROM win_ip
            WHERE win = {win} GROUP BY network;
         INSERT INTO win_attr (win, kind, key, label, bans, ips)
            SELECT {win}, 'jail', jail, NULL, sum(bans), count(*) FROM win_ip_jail
            WHERE win = {win} GROUP BY jail;
         INSERT INTO win_attr (win, kind, key, label, bans, ips)
            SELECT {win}, 'host', host, NULL, sum(bans), count(*) FROM win_ip_host
            WHERE win = {win} GROUP BY host;
         UPDATE win_state SET building = 0 WHERE win = {win};"
    ))
}

/// Moves every window's cut to at least `cut` (before events are pruned).
pub(super) fn advance_all(tx: &Transaction<'_>, cut: i64) -> rusqlite::Result<()> {
    let states: Vec<(i64, i64)> = tx
        .prepare("SELECT win, cut FROM win_state WHERE cut < ?1")?
        .query_map([cut], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (win, old) in states {
        advance(tx, win, old, cut)?;
    }
    Ok(())
}

/// Removes from window `win` the bans in `[from, to)` and sets its cut to `to`.
fn advance(tx: &Transaction<'_>, win: i64, from: i64, to: i64) -> rusqlite::Result<()> {
    // Driven by the leaving events (few), never by the window (many): each
    // statement looks its rows up by key.
    const LEAVING: &str =
        "FROM events WHERE time >= ?2 AND time < ?3 AND kind = 0 AND restored = 0";
    const COUNTED: &str = "e.time >= ?2 AND e.time < ?3 AND e.kind = 0 AND e.restored = 0";
    tx.prepare_cached(&format!(
        "UPDATE win_ip SET bans = bans - (
            SELECT count(*) FROM events e WHERE e.ip_key = win_ip.ip_key AND {COUNTED})
         WHERE win = ?1 AND ip_key IN (SELECT ip_key {LEAVING})"
    ))?
    .execute([win, from, to])?;
    tx.prepare_cached("DELETE FROM win_ip WHERE win = ?1 AND bans <= 0")?
        .execute([win])?;
    for (table, column) in [("win_ip_jail", "jail"), ("win_ip_host", "host")] {
        tx.prepare_cached(&format!(
            "UPDATE {table} SET bans = bans - (
                SELECT count(*) FROM events e WHERE e.ip_key = {table}.ip_key
                AND e.{column} = {table}.{column} AND {COUNTED})
             WHERE win = ?1 AND (ip_key, {column}) IN (SELECT ip_key, {column} {LEAVING})"
        ))?
        .execute([win, from, to])?;
        tx.prepare_cached(&format!(
            "DELETE FROM {table} WHERE win = ?1 AND bans <= 0
             AND (ip_key, {column}) IN (SELECT ip_key, {column} {LEAVING})"
        ))?
        .execute([win, from, to])?;
    }
    for kind in ["all", "country", "asn", "network", "jail", "host"] {
        tx.prepare_cached("DELETE FROM win_attr WHERE win = ?1 AND kind = ?2 AND bans <= 0")?
            .execute(params![win, kind])?;
    }
    tx.execute("UPDATE win_state SET cut = ?2 WHERE win = ?1", [win, to])?;
    Ok(())
}

/// (bans, unique IPs, countries, jails, hosts) of window `win`.
pub(super) fn summary(tx: &Transaction<'_>, win: i64) -> rusqlite::Result<[u64; 5]> {
    let total: (i64, i64) = tx
        .query_row(
            "SELECT bans, ips FROM win_attr WHERE win = ?1 AND kind = 'all' AND key = ''",
            [win],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((0, 0));
    let keys = |kind: &str| -> rusqlite::Result<u64> {
        tx.prepare_cached("SELECT count(*) FROM win_attr WHERE win = ?1 AND kind = ?2 AND ips > 0")?
            .query_row(params![win, kind], |r| r.get::<_, i64>(0))
            .map(count)
    };
    Ok([
        count(total.0),
        count(total.1),
        keys("country")?,
        keys("jail")?,
        keys("host")?,
    ])
}

/// A ranking of window `win`.
pub(super) fn top(
    tx: &Transaction<'_>,
    win: i64,
    by: TopBy,
    limit: u32,
) -> rusqlite::Result<Vec<TopEntry>> {
    let kind = match by {
        TopBy::Country => "country",
        TopBy::Jail => "jail",
        TopBy::Host => "host",
        TopBy::Asn => "asn",
        TopBy::Network => "network",
    };
    let mut stmt = tx.prepare_cached(
        "SELECT key, label, bans, ips FROM win_attr WHERE win = ?1 AND kind = ?2 AND ips > 0
         ORDER BY bans DESC, key LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![win, kind, limit], |r| {
        Ok(TopEntry {
            key: r.get(0)?,
            label: r.get(1)?,
            bans: count(r.get(2)?),
            unique_ips: count(r.get(3)?),
        })
    })?;
    rows.collect()
}

/// The most banned addresses of window `win`, with details read from their events.
pub(super) fn top_offenders(
    tx: &Transaction<'_>,
    win: i64,
    q: &StatsQuery,
    limit: u32,
) -> rusqlite::Result<Vec<Offender>> {
    let ranked = |sql: &str, arg: i64, n: u32| -> rusqlite::Result<Vec<(Vec<u8>, i64)>> {
        tx.prepare_cached(sql)?
            .query_map(params![win, arg, n], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect()
    };
    let mut candidates = ranked(
        "SELECT ip_key, bans FROM win_ip WHERE win = ?1 AND ?2 = ?2 ORDER BY bans DESC LIMIT ?3",
        0,
        limit,
    )?;
    // Ties at the last place are ordered by last seen: fetch them all (bounded).
    if candidates.len() == limit as usize {
        if let Some(&(_, last_bans)) = candidates.last() {
            let ties = ranked(
                "SELECT ip_key, bans FROM win_ip WHERE win = ?1 AND bans = ?2 LIMIT ?3",
                last_bans,
                MAX_TIES,
            )?;
            candidates.retain(|(_, b)| *b > last_bans);
            candidates.extend(ties);
        }
    }
    let mut detail = tx.prepare_cached(
        "SELECT count(*), min(e.time), max(e.time), json_group_array(DISTINCT e.jail),
                (SELECT country FROM ips WHERE ips.ip_key = ?1)
         FROM events e WHERE e.ip_key = ?1 AND e.time >= ?2 AND e.time < ?3
         AND e.kind = 0 AND e.restored = 0",
    )?;
    let (since, until) = (q.since.timestamp_millis(), q.until.timestamp_millis());
    let mut out = Vec::with_capacity(candidates.len());
    for (key, _) in candidates {
        let (bans, first, last, jails, country): (i64, i64, i64, String, Option<String>) =
            detail.query_row(params![key, since, until], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
        let (Some(ip), Some(first), Some(last)) = (
            ip_from_key(&key),
            Utc.timestamp_millis_opt(first).single(),
            Utc.timestamp_millis_opt(last).single(),
        ) else {
            continue;
        };
        let mut jails: Vec<String> = serde_json::from_str(&jails).unwrap_or_default();
        jails.sort();
        out.push((
            key,
            Offender {
                ip,
                bans: count(bans),
                first_seen: first,
                last_seen: last,
                jails,
                country,
            },
        ));
    }
    out.sort_by(|(ka, a), (kb, b)| {
        b.bans
            .cmp(&a.bans)
            .then(b.last_seen.cmp(&a.last_seen))
            .then(ka.cmp(kb))
    });
    out.truncate(limit as usize);
    Ok(out.into_iter().map(|(_, o)| o).collect())
}
