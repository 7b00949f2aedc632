//! Rolling windows: exact statistics for "the last 24 h / 7 d / 30 d / 90 d /
//! 365 d" that cost the same at ten million events as at ten.
//!
//! A window holds every new ban in its scope (everything, or a host, a jail, a
//! country) at or after its cut among the events up to its watermark (`seen`,
//! an event row id). Inserts never touch it: whoever reads it first folds in
//! the events after the watermark and moves the cut forward to the query's
//! `since`, subtracting the bans that left. `maintain` does the same ahead of
//! time and builds missing windows, so that a request only ever folds a few
//! minutes of bans. The unscoped windows always exist; a scoped one is made
//! when a query first asks for it (built by the next `maintain`, the query
//! taking the range path meanwhile) and dropped when left unread. A query
//! fits a window when it spans exactly a window's length and no stored event
//! lies at or after its `until`.

use chrono::{TimeZone, Utc};
use rusqlite::types::ToSql;
use rusqlite::{named_params, params, OptionalExtension, Row, Transaction};

use super::key::ip_of;
use super::write::{newest_id, DAY_MS};
use crate::query::{Offender, Scope, StatsQuery, TopBy, TopEntry};
use crate::storage::shared::{count, first_bucket_from};

/// The window lengths kept, in milliseconds: every range the dashboard offers.
pub(super) const WINDOWS: [i64; 5] = [DAY_MS, 7 * DAY_MS, 30 * DAY_MS, 90 * DAY_MS, 365 * DAY_MS];

/// New events a request may fold into a built window itself;
/// beyond that it takes the range path and leaves the work to `maintain`,
/// which recounts the window's totals set-based after such a fold instead of
/// through the per-row triggers.
const REQUEST_FOLD: i64 = 20_000;

/// Addresses tied at the last place of a ranking that are examined to break the tie.
const MAX_TIES: u32 = 1_000;

/// Scoped windows kept at most: a new one replaces the least recently read.
const MAX_SCOPED: i64 = 64;

/// Scoped windows `maintain` builds at most per run: visitors asking for many
/// views (a crawler walking every country) cannot keep it building.
const BUILDS_PER_RUN: i64 = 4;

/// A scoped window unread for this long is dropped by `maintain`.
const UNREAD_MS: i64 = 7 * DAY_MS;

const HOUR_MS: i64 = 3_600_000;

/// Which `win_state` rows are scoped.
const SCOPED: &str = "(host IS NOT NULL OR jail IS NOT NULL OR country IS NOT NULL)";

/// Keeps the new bans (alias `e`, in `events`) of a window's scope; a NULL
/// parameter does not narrow. An address is in the country `ips` has now.
const IN_SCOPE: &str = "(:host IS NULL OR e.host = :host) AND (:jail IS NULL OR e.jail = :jail)
     AND (:country IS NULL
          OR EXISTS (SELECT 1 FROM ips i WHERE i.ip_key = e.ip_key AND i.country = :country))";

/// [`IN_SCOPE`] for `ip_day`, whose rows carry their address's country.
const DAYS_IN_SCOPE: &str =
    "(:host IS NULL OR e.host = :host) AND (:jail IS NULL OR e.jail = :jail)
     AND (:country IS NULL OR e.country = :country)";

/// New bans, as opposed to unbans and bans restored at a restart.
const NEW_BANS: &str = "e.kind = 0 AND e.restored = 0";

/// Whether `q` has the shape of a window query (checked before taking the write lock).
pub(super) fn fits(q: &StatsQuery) -> bool {
    WINDOWS.contains(&(q.until - q.since).num_milliseconds())
}

/// A window's row in `win_state`.
struct Window {
    win: i64,
    span: i64,
    scope: Scope,
    cut: i64,
    seen: i64,
    built: bool,
}

impl Window {
    const COLUMNS: &'static str = "win, span, host, jail, country, cut, seen, built";

    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Window {
            win: r.get(0)?,
            span: r.get(1)?,
            scope: Scope {
                host: r.get(2)?,
                jail: r.get(3)?,
                country: r.get(4)?,
            },
            cut: r.get(5)?,
            seen: r.get(6)?,
            built: r.get(7)?,
        })
    }

    /// Runs `sql` with the window's id and scope and those of `more` it names.
    fn exec(
        &self,
        tx: &Transaction<'_>,
        sql: &str,
        more: &[(&str, &dyn ToSql)],
    ) -> rusqlite::Result<usize> {
        let mine: [(&str, &dyn ToSql); 4] = [
            (":win", &self.win),
            (":host", &self.scope.host),
            (":jail", &self.scope.jail),
            (":country", &self.scope.country),
        ];
        let mut stmt = tx.prepare_cached(sql)?;
        for &(name, value) in mine.iter().chain(more) {
            if let Some(i) = stmt.parameter_index(name)? {
                stmt.raw_bind_parameter(i, value)?;
            }
        }
        stmt.raw_execute()
    }
}

/// The window of length `span` over `scope`, if one was made.
fn find(tx: &Transaction<'_>, span: i64, scope: &Scope) -> rusqlite::Result<Option<Window>> {
    tx.prepare_cached(&format!(
        "SELECT {} FROM win_state WHERE span = :span
         AND host IS :host AND jail IS :jail AND country IS :country",
        Window::COLUMNS
    ))?
    .query_row(
        named_params! {
            ":span": span, ":host": scope.host, ":jail": scope.jail, ":country": scope.country
        },
        Window::from_row,
    )
    .optional()
}

fn load(tx: &Transaction<'_>, win: i64) -> rusqlite::Result<Option<Window>> {
    tx.prepare_cached(&format!(
        "SELECT {} FROM win_state WHERE win = ?1",
        Window::COLUMNS
    ))?
    .query_row([win], Window::from_row)
    .optional()
}

/// Records a window to build, cut at `cut`; a scoped one beyond the limit
/// replaces the longest waiting to be built, else the least recently read.
fn create(
    tx: &Transaction<'_>,
    span: i64,
    scope: &Scope,
    cut: i64,
    now: i64,
) -> rusqlite::Result<Window> {
    if !scope.is_all() {
        let scoped: i64 = tx
            .prepare_cached(&format!("SELECT count(*) FROM win_state WHERE {SCOPED}"))?
            .query_row([], |r| r.get(0))?;
        if scoped >= MAX_SCOPED {
            let least_read: i64 = tx
                .prepare_cached(&format!(
                    "SELECT win FROM win_state WHERE {SCOPED} ORDER BY built, read_at LIMIT 1"
                ))?
                .query_row([], |r| r.get(0))?;
            drop_window(tx, least_read)?;
        }
    }
    tx.prepare_cached(
        "INSERT INTO win_state (span, host, jail, country, cut, seen, building, built, read_at)
         VALUES (:span, :host, :jail, :country, :cut, 0, 0, 0, :now)",
    )?
    .execute(named_params! {
        ":span": span, ":host": scope.host, ":jail": scope.jail, ":country": scope.country,
        ":cut": cut, ":now": now,
    })?;
    Ok(Window {
        win: tx.last_insert_rowid(),
        span,
        scope: scope.clone(),
        cut,
        seen: 0,
        built: false,
    })
}

/// The window that answers `q` exactly, brought to `q.since`; `None` when none
/// can without more work than a request may do (one is then left for
/// `maintain` to build).
pub(super) fn prepare(
    tx: &Transaction<'_>,
    q: &StatsQuery,
    now: i64,
) -> rusqlite::Result<Option<i64>> {
    let (since, until) = (q.since.timestamp_millis(), q.until.timestamp_millis());
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
    let span = until - since;
    let window = match find(tx, span, &q.scope)? {
        Some(window) => window,
        None => create(tx, span, &q.scope, since, now)?,
    };
    // Hourly is precise enough for dropping windows unread for days, and
    // spares most reads a write.
    tx.prepare_cached("UPDATE win_state SET read_at = ?2 WHERE win = ?1 AND read_at < ?2 - ?3")?
        .execute([window.win, now, HOUR_MS])?;
    // Building is `maintain`'s alone: the range path answers a first visit
    // several times sooner than building would, whatever the store's size.
    if !window.built || window.cut > since || newest - window.seen > REQUEST_FOLD {
        return Ok(None);
    }
    bring_to(tx, &window, since, newest)?;
    Ok(Some(window.win))
}

/// The windows `maintain` works on, unscoped first: one of each length over
/// everything (recorded when missing), the scoped ones built and read lately
/// (those left unread are dropped), and the scoped ones asked for, a few per
/// run, the most recently asked first.
pub(super) fn kept(tx: &Transaction<'_>, now: i64) -> rusqlite::Result<Vec<i64>> {
    for span in WINDOWS {
        if find(tx, span, &Scope::ALL)?.is_none() {
            create(tx, span, &Scope::ALL, now - span, now)?;
        }
    }
    let unread: Vec<i64> = tx
        .prepare(&format!(
            "SELECT win FROM win_state WHERE {SCOPED} AND read_at < ?1"
        ))?
        .query_map([now - UNREAD_MS], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for win in unread {
        drop_window(tx, win)?;
    }
    let mut kept: Vec<i64> = tx
        .prepare(&format!(
            "SELECT win FROM win_state WHERE built OR NOT {SCOPED} ORDER BY {SCOPED}, span, win"
        ))?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let asked = tx
        .prepare(&format!(
            "SELECT win FROM win_state WHERE NOT built AND {SCOPED} ORDER BY read_at DESC LIMIT ?1"
        ))?
        .query_map([BUILDS_PER_RUN], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    kept.extend(asked);
    Ok(kept)
}

/// Builds window `win`, or brings it up to the newest event, with its cut at
/// `now` minus its length: `Storage::maintain`, one window at a time.
pub(super) fn maintain(tx: &Transaction<'_>, win: i64, now: i64) -> rusqlite::Result<()> {
    let Some(window) = load(tx, win)? else {
        return Ok(());
    };
    let newest = newest_id(tx)?;
    let cut = now - window.span;
    if window.built {
        bring_to(tx, &window, cut, newest)
    } else {
        build(tx, &window, cut, newest)
    }
}

/// Folds the events after the watermark, then moves the cut forward to `cut`.
fn bring_to(tx: &Transaction<'_>, window: &Window, cut: i64, newest: i64) -> rusqlite::Result<()> {
    if newest > window.seen {
        let recount = newest - window.seen > REQUEST_FOLD;
        if recount {
            set_building(tx, window.win, true)?;
        }
        fold(tx, window, Rows::After, newest)?;
        if recount {
            recount_totals(tx, window.win)?;
        }
    }
    if window.cut < cut {
        advance(tx, window, window.cut, cut)?;
    }
    Ok(())
}

/// Builds a window from history: rows first (the per-row triggers stand
/// aside), then the totals in one pass each.
fn build(tx: &Transaction<'_>, window: &Window, cut: i64, newest: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE win_state SET cut = ?2, seen = 0, building = 1 WHERE win = ?1")?
        .execute([window.win, cut])?;
    fold(tx, window, Rows::All { cut }, newest)?;
    recount_totals(tx, window.win)?;
    tx.prepare_cached("UPDATE win_state SET built = 1 WHERE win = ?1")?
        .execute([window.win])?;
    Ok(())
}

fn set_building(tx: &Transaction<'_>, win: i64, building: bool) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE win_state SET building = ?2 WHERE win = ?1")?
        .execute(params![win, building])?;
    Ok(())
}

/// Empties window `win`, leaving it to be built again (the triggers stand aside).
fn clear(tx: &Transaction<'_>, win: i64) -> rusqlite::Result<()> {
    set_building(tx, win, true)?;
    for table in ["win_attr", "win_ip", "win_ip_jail", "win_ip_host"] {
        tx.prepare_cached(&format!("DELETE FROM {table} WHERE win = ?1"))?
            .execute([win])?;
    }
    tx.prepare_cached("UPDATE win_state SET building = 0, built = 0, seen = 0 WHERE win = ?1")?
        .execute([win])?;
    Ok(())
}

fn drop_window(tx: &Transaction<'_>, win: i64) -> rusqlite::Result<()> {
    clear(tx, win)?;
    tx.prepare_cached("DELETE FROM win_state WHERE win = ?1")?
        .execute([win])?;
    Ok(())
}

/// After an address moved from country `left` to `joined`: the windows scoped
/// to either are emptied, for the next request or `maintain` to build again.
pub(super) fn country_moved(
    tx: &Transaction<'_>,
    left: Option<&str>,
    joined: Option<&str>,
) -> rusqlite::Result<()> {
    let affected: Vec<i64> = tx
        .prepare_cached(
            "SELECT win FROM win_state WHERE built AND country IS NOT NULL
             AND (country IS ?1 OR country IS ?2)",
        )?
        .query_map([left, joined], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for win in affected {
        clear(tx, win)?;
    }
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

/// Adds the new bans in its scope up to row `newest` to a window's
/// per-address, per-jail and per-host rows, and moves its watermark to `newest`.
fn fold(tx: &Transaction<'_>, window: &Window, rows: Rows, newest: i64) -> rusqlite::Result<()> {
    // Both sources give (ip_key, jail, host, bans).
    let (source, cut) = match rows {
        // NOT INDEXED keeps the planner from scanning an index instead of the row ids.
        Rows::After => (
            format!(
                "(SELECT e.ip_key, e.jail, e.host, 1 AS bans FROM events e NOT INDEXED
                  WHERE e.id > :seen AND e.id <= :newest AND e.time >= :cut
                  AND {NEW_BANS} AND {IN_SCOPE})"
            ),
            window.cut,
        ),
        Rows::All { cut } => (
            format!(
                "(SELECT e.ip_key, e.jail, e.host, e.bans FROM ip_day e
                  WHERE e.day >= :first_day AND {DAYS_IN_SCOPE}
                  UNION ALL
                  SELECT e.ip_key, e.jail, e.host, 1 FROM events e
                  WHERE e.time >= :cut AND e.time < :first_day * {DAY_MS} AND e.id <= :newest
                  AND {NEW_BANS} AND {IN_SCOPE})"
            ),
            cut,
        ),
    };
    let first_day = first_bucket_from(cut, DAY_MS);
    let args: [(&str, &dyn ToSql); 4] = [
        (":seen", &window.seen),
        (":newest", &newest),
        (":cut", &cut),
        (":first_day", &first_day),
    ];
    // Addresses are grouped before their attributes are joined: in key order.
    window.exec(
        tx,
        &format!(
            "INSERT INTO win_ip (win, ip_key, bans, country, asn, as_org, network)
             SELECT :win, g.ip_key, g.bans, i.country, i.asn, i.as_org, i.network
             FROM (SELECT s.ip_key, sum(s.bans) AS bans FROM {source} s GROUP BY s.ip_key) g
             CROSS JOIN ips i ON i.ip_key = g.ip_key WHERE true
             ON CONFLICT (win, ip_key) DO UPDATE SET bans = bans + excluded.bans"
        ),
        &args,
    )?;
    for (table, column) in [("win_ip_jail", "jail"), ("win_ip_host", "host")] {
        window.exec(
            tx,
            &format!(
                "INSERT INTO {table} (win, ip_key, {column}, bans)
                 SELECT :win, s.ip_key, s.{column}, sum(s.bans) FROM {source} s
                 GROUP BY s.ip_key, s.{column}
                 ON CONFLICT (win, ip_key, {column}) DO UPDATE SET bans = bans + excluded.bans"
            ),
            &args,
        )?;
    }
    tx.prepare_cached("UPDATE win_state SET seen = ?2 WHERE win = ?1")?
        .execute([window.win, newest])?;
    Ok(())
}

/// Brings every built window up to date and moves its cut to at least `cut`
/// (before events are pruned).
pub(super) fn advance_all(tx: &Transaction<'_>, cut: i64) -> rusqlite::Result<()> {
    let newest = newest_id(tx)?;
    let windows: Vec<Window> = tx
        .prepare(&format!(
            "SELECT {} FROM win_state WHERE built",
            Window::COLUMNS
        ))?
        .query_map([], Window::from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for window in windows {
        bring_to(tx, &window, cut.max(window.cut), newest)?;
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

/// Removes from a window the bans in `[from, to)` and sets its cut to `to`.
fn advance(tx: &Transaction<'_>, window: &Window, from: i64, to: i64) -> rusqlite::Result<()> {
    // Driven by the leaving events (few), never by the window (many): each
    // statement looks its rows up by key.
    let leaving = format!(
        "FROM events e WHERE e.time >= :from AND e.time < :to AND {NEW_BANS} AND {IN_SCOPE}"
    );
    let counted = format!("e.time >= :from AND e.time < :to AND {NEW_BANS} AND {IN_SCOPE}");
    let args: [(&str, &dyn ToSql); 2] = [(":from", &from), (":to", &to)];
    window.exec(
        tx,
        &format!(
            "UPDATE win_ip SET bans = bans - (
                SELECT count(*) FROM events e WHERE e.ip_key = win_ip.ip_key AND {counted})
             WHERE win = :win AND ip_key IN (SELECT e.ip_key {leaving})"
        ),
        &args,
    )?;
    window.exec(tx, "DELETE FROM win_ip WHERE win = :win AND bans <= 0", &[])?;
    for (table, column) in [("win_ip_jail", "jail"), ("win_ip_host", "host")] {
        window.exec(
            tx,
            &format!(
                "UPDATE {table} SET bans = bans - (
                    SELECT count(*) FROM events e WHERE e.ip_key = {table}.ip_key
                    AND e.{column} = {table}.{column} AND {counted})
                 WHERE win = :win AND (ip_key, {column}) IN (SELECT e.ip_key, e.{column} {leaving})"
            ),
            &args,
        )?;
        window.exec(
            tx,
            &format!(
                "DELETE FROM {table} WHERE win = :win AND bans <= 0
                 AND (ip_key, {column}) IN (SELECT e.ip_key, e.{column} {leaving})"
            ),
            &args,
        )?;
    }
    for kind in ["all", "country", "asn", "network", "jail", "host"] {
        window.exec(
            tx,
            "DELETE FROM win_attr WHERE win = :win AND kind = :kind AND bans <= 0",
            &[(":kind", &kind)],
        )?;
    }
    tx.execute(
        "UPDATE win_state SET cut = ?2 WHERE win = ?1",
        [window.win, to],
    )?;
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
        // The first and last ban in the window's host and jail (an address
        // in it is in its country).
        let edge = |sql: &str, bound: i64| -> rusqlite::Result<Option<i64>> {
            tx.prepare_cached(sql)?
                .query_row(
                    named_params! {
                        ":key": key, ":bound": bound,
                        ":host": q.scope.host, ":jail": q.scope.jail,
                    },
                    |r| r.get(0),
                )
                .optional()
        };
        let first = edge(
            "SELECT time FROM events WHERE ip_key = :key AND time >= :bound
             AND kind = 0 AND restored = 0
             AND (:host IS NULL OR host = :host) AND (:jail IS NULL OR jail = :jail)
             ORDER BY time LIMIT 1",
            since,
        )?;
        let last = edge(
            "SELECT time FROM events WHERE ip_key = :key AND time < :bound
             AND kind = 0 AND restored = 0
             AND (:host IS NULL OR host = :host) AND (:jail IS NULL OR jail = :jail)
             ORDER BY time DESC LIMIT 1",
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
            ip_of(&key),
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
    use crate::event::{BanEvent, EventKind, Geo};
    use crate::storage::Storage;

    /// (span, scope, built, seen) of every window, unscoped first.
    type State = (i64, Option<String>, bool, i64);

    fn states(store: &SqliteStorage) -> Vec<State> {
        let conn = store.inner.writer.lock().unwrap();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT span, coalesce(host, jail, country), built, seen FROM win_state
                 ORDER BY {SCOPED}, span, win"
            ))
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    fn located(country: &str) -> Geo {
        Geo {
            country: Some(country.into()),
            ..Geo::default()
        }
    }

    fn ban(minutes: i64, jail: &str) -> BanEvent {
        let ip = format!("192.0.2.{}", minutes % 200).parse().unwrap();
        let time = Utc::now() - Duration::minutes(minutes);
        BanEvent::new(EventKind::Ban, ip, jail, "web1", time).unwrap()
    }

    /// The conformance suite checks the figures; this checks that windows,
    /// not the range path, gave them.
    #[tokio::test]
    async fn maintain_builds_every_window_and_requests_fold_what_came_after() {
        let store = SqliteStorage::open_in_memory().unwrap();
        store
            .record_batch(&[ban(5, "sshd"), ban(90_000, "sshd")])
            .await
            .unwrap();
        store.maintain().await.unwrap();
        let built = states(&store);
        assert_eq!(
            built.iter().map(|s| s.0).collect::<Vec<_>>(),
            WINDOWS.to_vec()
        );
        assert!(built.iter().all(|s| s.2 && s.3 == 2), "{built:?}");

        store.record(&ban(1, "sshd")).await.unwrap();
        let summary = store.summary(&StatsQuery::last_days(365)).await.unwrap();
        assert_eq!(summary.bans, 3);
        let year = states(&store).into_iter().find(|s| s.0 == 365 * DAY_MS);
        assert_eq!(year.map(|s| s.3), Some(3), "the request folded the new ban");
    }

    /// Views asked for wait for `maintain`, however small, which builds a
    /// few per run.
    #[tokio::test]
    async fn maintain_builds_a_few_asked_for_views_per_run() {
        let store = SqliteStorage::open_in_memory().unwrap();
        let jails = ["j0", "j1", "j2", "j3", "j4", "j5"];
        let now = Utc::now();
        let events: Vec<BanEvent> = (0..600)
            .map(|i| {
                let ip = format!("192.0.2.{}", i % 200).parse().unwrap();
                let (jail, time) = (jails[i as usize % 6], now - Duration::seconds(60 + i));
                BanEvent::new(EventKind::Ban, ip, jail, "web1", time).unwrap()
            })
            .collect();
        store.record_batch(&events).await.unwrap();
        for jail in jails {
            let mut q = StatsQuery::last_days(7);
            q.scope.jail = Some(jail.into());
            let want = events.iter().filter(|e| e.jail == jail).count() as u64;
            assert_eq!(store.summary(&q).await.unwrap().bans, want, "{jail}");
        }
        let built = |store: &SqliteStorage| {
            let states = states(store);
            states.iter().filter(|s| s.1.is_some() && s.2).count()
        };
        assert_eq!(built(&store), 0, "left to maintain");
        store.maintain().await.unwrap();
        assert_eq!(built(&store), BUILDS_PER_RUN as usize);
        store.maintain().await.unwrap();
        assert_eq!(built(&store), jails.len());
    }

    /// A scoped query makes its window, `maintain` builds it, keeps it while
    /// it is read and drops it once left unread; an address moving out of a
    /// country empties the windows of that country until they are built again.
    #[tokio::test]
    async fn scoped_windows_are_made_on_demand_and_dropped_unread() {
        let store = SqliteStorage::open_in_memory().unwrap();
        let mut moved = ban(10, "nginx");
        moved.geo = Some(located("DE"));
        store
            .record_batch(&[ban(5, "sshd"), moved.clone()])
            .await
            .unwrap();
        let mut q = StatsQuery::last_days(7);
        q.scope.jail = Some("sshd".into());
        assert_eq!(store.summary(&q).await.unwrap().bans, 1);
        let mut germany = StatsQuery::last_days(7);
        germany.scope.country = Some("DE".into());
        assert_eq!(store.summary(&germany).await.unwrap().bans, 1);
        let scoped = |store: &SqliteStorage| -> Vec<State> {
            states(store)
                .into_iter()
                .filter(|s| s.1.is_some())
                .collect()
        };
        let made = [
            (7 * DAY_MS, Some("sshd".into()), false, 0),
            (7 * DAY_MS, Some("DE".into()), false, 0),
        ];
        assert_eq!(scoped(&store), made);
        store.maintain().await.unwrap();
        let built = made.map(|(span, scope, _, _)| (span, scope, true, 2));
        assert_eq!(scoped(&store), built);

        moved.time += Duration::seconds(1);
        moved.geo = Some(located("FR"));
        store.record(&moved).await.unwrap();
        let germany_window = scoped(&store)
            .into_iter()
            .find(|s| s.1.as_deref() == Some("DE"));
        assert_eq!(germany_window.map(|s| s.2), Some(false), "emptied");
        assert_eq!(store.summary(&germany).await.unwrap().bans, 0);
        // Its earlier ban moved with it; the new one is counted once.
        let mut france = germany.clone();
        france.scope.country = Some("FR".into());
        for (q, bans) in [(&germany, 0), (&france, 2)] {
            assert_eq!(store.ban_count(q).await.unwrap(), bans, "{q:?}");
            let days = store.bans_per_day(q, chrono_tz::UTC).await.unwrap();
            assert_eq!(days.iter().map(|d| d.bans).sum::<u64>(), bans, "{q:?}");
        }

        store.maintain().await.unwrap();
        assert_eq!(scoped(&store).len(), 2, "read lately: kept");
        store
            .inner
            .writer
            .lock()
            .unwrap()
            .execute("UPDATE win_state SET read_at = 0 WHERE jail = 'sshd'", [])
            .unwrap();
        store.maintain().await.unwrap();
        assert_eq!(
            scoped(&store),
            [(7 * DAY_MS, Some("DE".into()), true, 3)],
            "unread: dropped"
        );
    }
}
