//! Rolling windows: exact statistics for "the last 24 h / 7 d / 30 d / 90 d /
//! 365 d" that cost the same at ten million events as at ten.
//!
//! A window holds every new ban at or after its cut among the events up to its
//! watermark (`seen`, an event row id). Inserts never touch it: whoever reads
//! it first folds in the events after the watermark and moves the cut forward
//! to the query's `since`, subtracting the bans that left. `maintain` does the
//! same ahead of time and builds missing windows, so that a request only ever
//! folds a few minutes of bans. A query fits a window only when it has no host,
//! jail or country filter, spans exactly a window's length, and no stored event
//! lies at or after its `until`; anything else takes the range path.

use chrono::{TimeZone, Utc};
use rusqlite::{params, OptionalExtension, Transaction};

use super::write::{newest_id, DAY_MS};
use crate::ipkey::ip_from_key;
use crate::query::{Offender, StatsQuery, TopBy, TopEntry};
use crate::storage::shared::{count, first_bucket_from};

/// The window lengths kept, in milliseconds: every range the dashboard offers.
pub(super) const WINDOWS: [i64; 5] = [DAY_MS, 7 * DAY_MS, 30 * DAY_MS, 90 * DAY_MS, 365 * DAY_MS];

/// New events a request may fold into a window (or build one from) itself;
/// beyond that it takes the range path and leaves the work to `maintain`,
/// which recounts the window's totals set-based after such a fold instead of
/// through the per-row triggers.
const REQUEST_FOLD: i64 = 20_000;

/// Addresses tied at the last place of a ranking that are examined to break the tie.
const MAX_TIES: u32 = 1_000;

/// Whether `q` has the shape of a window query (checked before taking the write lock).
pub(super) fn fits(q: &StatsQuery) -> bool {
    let win = (q.until - q.since).num_milliseconds();
    q.scope.is_all() && WINDOWS.contains(&win)
}

/// A window's cut and watermark.
fn state(tx: &Transaction<'_>, win: i64) -> rusqlite::Result<Option<(i64, i64)>> {
    tx.prepare_cached("SELECT cut, seen FROM win_state WHERE win = ?1")?
        .query_row([win], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// The window that answers `q` exactly, brought to `q.since`; `None` when none
/// can without more work than a request may do.
pub(super) fn prepare(tx: &Transaction<'_>, q: &StatsQuery) -> rusqlite::Result<Option<i64>> {
    let (since, until) = (q.since.timestamp_millis(), q.until.timestamp_millis());
    let win = until - since;
    if !fits(q) {
        return Ok(None);
    }
    let latest: Option<i64> = tx
        .prepare_cached("SELECT max(time) FROM events")?
        .query_row([], |r| r.get(0))?;
    if latest.is_some_and(|t| t >= until) {
        return Ok(None);
    }
    let newest = newest_id(tx)?;
    match state(tx, win)? {
        None => {
            let in_range: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM events WHERE time >= ?1 LIMIT ?2)",
                )?
                .query_row([since, REQUEST_FOLD + 1], |r| r.get(0))?;
            if in_range > REQUEST_FOLD {
                return Ok(None);
            }
            build(tx, win, since, newest)?;
        }
        Some((cut, _)) if cut > since => return Ok(None),
        Some((_, seen)) if newest - seen > REQUEST_FOLD => return Ok(None),
        Some((cut, seen)) => bring_to(tx, win, (cut, seen), since, newest)?,
    }
    Ok(Some(win))
}

/// Builds window `win`, or brings it up to the newest event, with its cut at
/// `now` minus its length: `Storage::maintain`, one window at a time.
pub(super) fn maintain(tx: &Transaction<'_>, win: i64, now: i64) -> rusqlite::Result<()> {
    let newest = newest_id(tx)?;
    let cut = now - win;
    match state(tx, win)? {
        None => build(tx, win, cut, newest),
        Some(state) => bring_to(tx, win, state, cut, newest),
    }
}

/// Folds the events after the watermark, then moves the cut forward to `cut`.
fn bring_to(
    tx: &Transaction<'_>,
    win: i64,
    (old_cut, seen): (i64, i64),
    cut: i64,
    newest: i64,
) -> rusqlite::Result<()> {
    if newest > seen {
        let recount = newest - seen > REQUEST_FOLD;
        if recount {
            set_building(tx, win, true)?;
        }
        fold(tx, win, Rows::After, newest)?;
        if recount {
            recount_totals(tx, win)?;
        }
    }
    if old_cut < cut {
        advance(tx, win, old_cut, cut)?;
    }
    Ok(())
}

/// Builds window `win` from history: rows first (the per-row triggers stand
/// aside), then the totals in one pass each.
fn build(tx: &Transaction<'_>, win: i64, cut: i64, newest: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO win_state (win, cut, building, seen) VALUES (?1, ?2, 1, 0)",
        [win, cut],
    )?;
    fold(tx, win, Rows::All { cut }, newest)?;
    recount_totals(tx, win)
}

fn set_building(tx: &Transaction<'_>, win: i64, building: bool) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE win_state SET building = ?2 WHERE win = ?1")?
        .execute(params![win, building])?;
    Ok(())
}

/// Recomputes window `win`'s totals from its rows and ends its building.
fn recount_totals(tx: &Transaction<'_>, win: i64) -> rusqlite::Result<()> {
    tx.execute_batch(&format!(
        "DELETE FROM win_attr WHERE win = {win};
         INSERT INTO win_attr (win, kind, key, label, bans, ips)
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
            WHERE win = {win} GROUP BY host;"
    ))?;
    set_building(tx, win, false)
}

/// Which new bans [`fold`] adds to a window.
enum Rows {
    /// Those after its watermark (found by row id).
    After,
    /// All of history at or after `cut`: whole days from the per-day
    /// summary, a few rows per address and day, and only the part of the
    /// cut's day after the cut from the events.
    All { cut: i64 },
}

/// Adds new bans up to row `newest` to window `win`'s per-address, per-jail
/// and per-host rows, and moves its watermark to `newest`.
fn fold(tx: &Transaction<'_>, win: i64, rows: Rows, newest: i64) -> rusqlite::Result<()> {
    const NEW_BANS: &str = "e.kind = 0 AND e.restored = 0";
    // Both sources give (ip_key, jail, host, bans); ?1 is the window, ?2 `newest`.
    // Addresses are grouped before their attributes are joined: in key order.
    let (source, args) = match rows {
        // NOT INDEXED keeps the planner from scanning an index instead of the row ids.
        Rows::After => (
            format!(
                "(SELECT e.ip_key, e.jail, e.host, 1 AS bans
                  FROM win_state w CROSS JOIN events e NOT INDEXED
                  ON e.id > w.seen AND e.id <= ?2 AND e.time >= w.cut AND w.win = ?1
                  WHERE {NEW_BANS})"
            ),
            vec![win, newest],
        ),
        Rows::All { cut } => {
            let first_day = first_bucket_from(cut, DAY_MS);
            (
                format!(
                    "(SELECT ip_key, jail, host, bans FROM ip_day WHERE day >= ?3
                      UNION ALL
                      SELECT e.ip_key, e.jail, e.host, 1 FROM events e
                      WHERE e.time >= ?4 AND e.time < ?5 AND e.id <= ?2 AND {NEW_BANS})"
                ),
                vec![win, newest, first_day, cut, first_day * DAY_MS],
            )
        }
    };
    tx.prepare_cached(&format!(
        "INSERT INTO win_ip (win, ip_key, bans, country, asn, as_org, network)
         SELECT ?1, g.ip_key, g.bans, i.country, i.asn, i.as_org, i.network
         FROM (SELECT s.ip_key, sum(s.bans) AS bans FROM {source} s GROUP BY s.ip_key) g
         CROSS JOIN ips i ON i.ip_key = g.ip_key WHERE true
         ON CONFLICT (win, ip_key) DO UPDATE SET bans = bans + excluded.bans"
    ))?
    .execute(rusqlite::params_from_iter(&args))?;
    for (table, column) in [("win_ip_jail", "jail"), ("win_ip_host", "host")] {
        tx.prepare_cached(&format!(
            "INSERT INTO {table} (win, ip_key, {column}, bans)
             SELECT ?1, s.ip_key, s.{column}, sum(s.bans) FROM {source} s
             GROUP BY s.ip_key, s.{column}
             ON CONFLICT (win, ip_key, {column}) DO UPDATE SET bans = bans + excluded.bans"
        ))?
        .execute(rusqlite::params_from_iter(&args))?;
    }
    tx.prepare_cached("UPDATE win_state SET seen = ?2 WHERE win = ?1")?
        .execute([win, newest])?;
    Ok(())
}

/// Brings every window up to date and moves its cut to at least `cut` (before
/// events are pruned).
pub(super) fn advance_all(tx: &Transaction<'_>, cut: i64) -> rusqlite::Result<()> {
    let newest = newest_id(tx)?;
    let states: Vec<(i64, i64, i64)> = tx
        .prepare("SELECT win, cut, seen FROM win_state")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (win, old, seen) in states {
        bring_to(tx, win, (old, seen), cut.max(old), newest)?;
    }
    Ok(())
}

/// After events were deleted: row ids above the newest left may be handed out
/// again, so no watermark may lie above it.
pub(super) fn after_delete(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let newest = newest_id(tx)?;
    tx.execute("UPDATE win_state SET seen = ?1 WHERE seen > ?1", [newest])?;
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
    // The window has the counts and jails; the events only the first and the
    // last ban, each one step through the address's index.
    let (since, until) = (q.since.timestamp_millis(), q.until.timestamp_millis());
    let mut out = Vec::with_capacity(candidates.len());
    for (key, bans) in candidates {
        let edge = |sql: &str, bound: i64| -> rusqlite::Result<Option<i64>> {
            tx.prepare_cached(sql)?
                .query_row(params![key, bound], |r| r.get(0))
                .optional()
        };
        let first = edge(
            "SELECT time FROM events WHERE ip_key = ?1 AND time >= ?2
             AND kind = 0 AND restored = 0 ORDER BY time LIMIT 1",
            since,
        )?;
        let last = edge(
            "SELECT time FROM events WHERE ip_key = ?1 AND time < ?2
             AND kind = 0 AND restored = 0 ORDER BY time DESC LIMIT 1",
            until,
        )?;
        let jails: Vec<String> = tx
            .prepare_cached(
                "SELECT jail FROM win_ip_jail WHERE win = ?1 AND ip_key = ?2 AND bans > 0
                 ORDER BY jail",
            )?
            .query_map(params![win, key], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let country: Option<String> = tx
            .prepare_cached("SELECT country FROM ips WHERE ip_key = ?1")?
            .query_row([&key], |r| r.get(0))
            .optional()?
            .flatten();
        let (Some(ip), Some(first), Some(last)) = (
            ip_from_key(&key),
            first.and_then(|t| Utc.timestamp_millis_opt(t).single()),
            last.and_then(|t| Utc.timestamp_millis_opt(t).single()),
        ) else {
            continue;
        };
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

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::super::SqliteStorage;
    use super::*;
    use crate::event::{BanEvent, EventKind};
    use crate::storage::Storage;

    fn states(store: &SqliteStorage) -> Vec<(i64, i64, i64)> {
        let conn = store.inner.writer.lock().unwrap();
        let mut stmt = conn
            .prepare("SELECT win, cut, seen FROM win_state ORDER BY win")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// The conformance suite checks the figures; this checks that windows,
    /// not the range path, gave them.
    #[tokio::test]
    async fn maintain_builds_every_window_and_requests_fold_what_came_after() {
        let store = SqliteStorage::open_in_memory().unwrap();
        let ban = |minutes: i64| {
            let ip = format!("192.0.2.{}", minutes % 200).parse().unwrap();
            let time = Utc::now() - Duration::minutes(minutes);
            BanEvent::new(EventKind::Ban, ip, "sshd", "web1", time).unwrap()
        };
        store.record_batch(&[ban(5), ban(90_000)]).await.unwrap();
        store.maintain().await.unwrap();
        let built = states(&store);
        assert_eq!(
            built.iter().map(|s| s.0).collect::<Vec<_>>(),
            WINDOWS.to_vec()
        );
        assert!(built.iter().all(|&(_, _, seen)| seen == 2), "{built:?}");

        store.record(&ban(1)).await.unwrap();
        let summary = store.summary(&StatsQuery::last_days(365)).await.unwrap();
        assert_eq!(summary.bans, 3);
        let year = states(&store).into_iter().find(|s| s.0 == 365 * DAY_MS);
        assert_eq!(year.map(|s| s.2), Some(3), "the request folded the new ban");
    }
}
