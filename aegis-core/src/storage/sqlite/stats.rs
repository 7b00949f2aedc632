//! Statistics over a time range, read from the summaries maintained on insert.
//!
//! Whole UTC days inside the range come from `ip_day`, one row per address,
//! host, jail and day, with the address's location beside it; the partial
//! days at its edges from `events` through its time index (or, where the
//! location matters, from `ip_day` too). Cost thus depends on the range,
//! never on the total history. Counts and charts read 15-minute slots
//! (`ban_totals`; `ban_slots` when scoped to a host or jail, `country_slots`
//! to a country), and so do a summary's counts of countries, jails and hosts
//! where a slot summary keeps them. The summary and the rankings read the
//! range's rows once and group them in hash maps; long ranges rank
//! addresses with SQLite's sorter instead.

use std::cmp::Ordering;
use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
// Addresses and names hashed by the million: a fast hash, not a keyed one
// (the keys come from the store, and a map lives for one request).
use foldhash::{HashMap, HashSet};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension};

use super::key::{ip_of, unstored, Stored};
use super::sql_err;
use super::write::{DAY_MS, SLOT_MS};
use crate::error::Result;
use crate::ipkey::{ip_from_key, network_key};
use crate::query::{network_of, DayCount, Offender, StatsQuery, Summary, TopBy, TopEntry};
use crate::storage::shared::{corrupt, count, whole_buckets, LocalDays};

/// Rows `(ip_key, host, jail, bans, first, last)` of new bans in the query's
/// scope.
fn source(q: &StatsQuery) -> (String, Vec<Value>) {
    let (mut branches, mut args) = (Vec::new(), Vec::new());
    for (sql, values) in parts(q, Where::Unneeded) {
        branches.push(sql);
        args.extend(values);
    }
    (branches.join(" UNION ALL "), args)
}

/// Whether the range's rows must say where each address is.
#[derive(Clone, Copy, PartialEq)]
enum Where {
    Unneeded,
    /// `country` and `asn` columns too, as `ip_day` keeps them.
    Located,
}

/// [`source`] as separate statements: whole days from `ip_day`, the edges
/// from `events`, or from `ip_day` too where an address's location matters
/// (see [`located_edge`]).
fn parts(q: &StatsQuery, place: Where) -> Vec<(String, Vec<Value>)> {
    let columns = match place {
        Where::Unneeded => "ip_key, host, jail, bans, first, last",
        Where::Located => "ip_key, host, jail, bans, first, last, country, asn",
    };
    let mut parts = Vec::new();
    let (days, edges) = cut(q, DAY_MS);
    if let Some((first_day, end_day)) = days {
        let mut args = vec![Value::Integer(first_day), Value::Integer(end_day)];
        let narrow = narrowing(q, &mut args, Rows::Days);
        let sql = format!("SELECT {columns} FROM ip_day WHERE day >= ? AND day < ?{narrow}");
        parts.push((sql, args));
    }
    // A country's edges too: `ip_day` knows each address's country.
    let located = place == Where::Located || q.scope.country.is_some();
    for (from, to) in edges.into_iter().filter(|(from, to)| from < to) {
        match located {
            false => {
                let mut args = Vec::new();
                let sql = format!(
                    "SELECT ip_key, host, jail, 1 AS bans, time AS first, time AS last
                     FROM events WHERE kind = 0 AND restored = 0 AND time >= ? AND time < ?{}",
                    narrowing(q, &mut args, Rows::Events(from, to))
                );
                parts.push((sql, args));
            }
            true => parts.extend(located_edge(q, columns, from, to)),
        }
    }
    parts
}

/// The rows of `[from, to)`, an edge of the range, from `ip_day` (a raw
/// event would look its address up): the address-days wholly inside it, and
/// the bans inside it of those that straddle its bounds, one by one from
/// `events` (none where an address-day holds one ban, a few where an address
/// is banned again and again across a bound).
fn located_edge(q: &StatsQuery, columns: &str, from: i64, to: i64) -> [(String, Vec<Value>); 2] {
    let days = [from.div_euclid(DAY_MS), (to - 1).div_euclid(DAY_MS)].map(Value::Integer);
    let (from, to) = (Value::Integer(from), Value::Integer(to));
    let mut args = [days.clone(), [from.clone(), to.clone()]].concat();
    let narrow = narrowing(q, &mut args, Rows::Days);
    let inside = (
        format!(
            "SELECT {columns} FROM ip_day
             WHERE day >= ? AND day <= ? AND first >= ? AND last < ?{narrow}"
        ),
        args,
    );
    let bounds = [to.clone(), from.clone(), from.clone(), to.clone()];
    let mut args = [days.as_slice(), &bounds].concat();
    let narrow = narrowing(q, &mut args, Rows::Days);
    args.extend([from, to]);
    let straddling = (
        format!(
            "SELECT {columns} FROM (
                SELECT d.ip_key, d.host, d.jail, 1 AS bans, e.time AS first, e.time AS last,
                    d.country, d.asn
                FROM (SELECT * FROM ip_day WHERE day >= ? AND day <= ?
                      AND first < ? AND last >= ? AND NOT (first >= ? AND last < ?){narrow}) d
                JOIN events e ON e.ip_key = d.ip_key AND e.time >= ? AND e.time < ?
                WHERE e.time / {DAY_MS} = d.day AND e.host = d.host AND e.jail = d.jail
                AND e.kind = 0 AND e.restored = 0)"
        ),
        args,
    );
    [inside, straddling]
}

/// `[start, end)`: bucket numbers, or milliseconds.
type Span = (i64, i64);

/// The query's range as whole buckets of `size` ms, numbered (`None` when
/// none fits), and the spans of milliseconds left at its edges, read from
/// raw events.
fn cut(q: &StatsQuery, size: i64) -> (Option<Span>, Vec<Span>) {
    let (since, until) = (q.since.timestamp_millis(), q.until.timestamp_millis());
    match whole_buckets(q, size) {
        Some((from, to)) => (
            Some((from / size, to / size)),
            vec![(since, from), (to, until)],
        ),
        None => (None, vec![(since, until.max(since))]),
    }
}

/// The rows a narrowing applies to, which decides how a country is checked.
#[derive(Clone, Copy)]
enum Rows {
    /// Raw `events` in `[from, to)`, read over short spans (edges, partial
    /// days): each row looks its address up. The bounds are pushed first.
    Events(i64, i64),
    /// The bans in force (`active_bans`): few, each looks its address up.
    InForce,
    /// A summary by day or slot: `ip_day` carries the address's country;
    /// the slot summaries of hosts and jails are never narrowed to one.
    Days,
}

/// The host, jail and country terms for `rows`, their values pushed to `args`.
fn narrowing(q: &StatsQuery, args: &mut Vec<Value>, rows: Rows) -> String {
    if let Rows::Events(from, to) = rows {
        args.push(Value::Integer(from));
        args.push(Value::Integer(to));
    }
    let mut sql = String::new();
    if let Some(host) = &q.scope.host {
        sql.push_str(" AND host = ?");
        args.push(Value::Text(host.clone()));
    }
    if let Some(jail) = &q.scope.jail {
        sql.push_str(" AND jail = ?");
        args.push(Value::Text(jail.clone()));
    }
    if let Some(country) = &q.scope.country {
        let looked_up = |table: &str| {
            format!(
                " AND EXISTS (SELECT 1 FROM ips i WHERE i.ip_key = {table}.ip_key AND i.country = ?)"
            )
        };
        sql.push_str(&match rows {
            Rows::Events(..) => looked_up("events"),
            Rows::InForce => looked_up("active_bans"),
            Rows::Days => " AND country = ?".into(),
        });
        args.push(Value::Text(country.clone()));
    }
    sql
}

pub(super) fn summary(conn: &Connection, q: &StatsQuery, now: DateTime<Utc>) -> Result<Summary> {
    let currently_banned = currently_banned(conn, q, now)?;
    let (countries, jails, hosts) = (
        slot_distinct(conn, q, Attr::Country)?,
        slot_distinct(conn, q, Attr::Jail)?,
        slot_distinct(conn, q, Attr::Host)?,
    );
    // The range's rows are read once; addresses, and the names no slot
    // summary counts for this scope, are told apart in hash sets.
    let missing: Vec<&str> = [("country", countries), ("jail", jails), ("host", hosts)]
        .into_iter()
        .filter_map(|(column, counted)| counted.is_none().then_some(column))
        .collect();
    let mut seen: Vec<HashSet<String>> = vec![HashSet::default(); missing.len()];
    let columns = [&["ip_key", "bans"], missing.as_slice()]
        .concat()
        .join(", ");
    let place = match missing.contains(&"country") {
        true => Where::Located,
        false => Where::Unneeded,
    };
    let (mut addresses, mut bans) = (HashSet::default(), 0);
    each_row(conn, q, place, &columns, |row| {
        addresses.insert(key_at(row, 0)?);
        bans += row.get::<_, i64>(1).map_err(sql_err)?;
        for (column, seen) in (2..).zip(&mut seen) {
            let name = row.get_ref(column).map_err(sql_err)?;
            // An address whose country is unknown counts for none.
            if matches!(name, ValueRef::Null) {
                continue;
            }
            let name = name.as_str().map_err(|_| corrupt("name", "ip_day"))?;
            if !seen.contains(name) {
                seen.insert(name.to_owned());
            }
        }
        Ok(())
    })?;
    let found = |column| {
        let i = missing.iter().position(|c| *c == column);
        i.map_or(0, |i| seen[i].len() as u64)
    };
    Ok(Summary {
        bans: count(bans),
        unique_ips: addresses.len() as u64,
        countries: countries.unwrap_or_else(|| found("country")),
        jails: jails.unwrap_or_else(|| found("jail")),
        hosts: hosts.unwrap_or_else(|| found("host")),
        currently_banned,
    })
}

/// Calls `f` on each of the range's rows (`columns` of the rows [`parts`]
/// gives for `place`), for the statistics that tell addresses apart in a
/// hash set: faster than SQLite's temporary indexes, for about the same
/// memory. Each part of the range is its own statement, so that SQLite hands
/// rows over without copying them.
fn each_row(
    conn: &Connection,
    q: &StatsQuery,
    place: Where,
    columns: &str,
    mut f: impl FnMut(&rusqlite::Row<'_>) -> Result<()>,
) -> Result<()> {
    for (part, args) in parts(q, place) {
        let mut stmt = conn
            .prepare_cached(&format!("SELECT {columns} FROM ({part})"))
            .map_err(sql_err)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args))
            .map_err(sql_err)?;
        while let Some(row) = rows.next().map_err(sql_err)? {
            f(row)?;
        }
    }
    Ok(())
}

/// The address key in `row`'s column `i`.
fn key_at(row: &rusqlite::Row<'_>, i: usize) -> Result<[u8; 16]> {
    row.get_ref(i)
        .map_err(sql_err)?
        .as_blob()
        .ok()
        .and_then(unstored)
        .ok_or_else(|| corrupt("ip_key", "ip_day"))
}

/// The jail or host name in `row`'s column `i`.
fn name_at<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str> {
    row.get_ref(i)
        .map_err(sql_err)?
        .as_str()
        .map_err(|_| corrupt("name", "ip_day"))
}

/// What new bans are told apart by, besides their address.
#[derive(Clone, Copy)]
enum Attr {
    Country,
    Jail,
    Host,
}

/// How many `attr`s the range's new bans have: from a slot summary (whole
/// 15-minute slots) and raw events (the partial slots at the edges). `None`
/// when no slot summary keeps `attr` within `q`'s scope: a country is the
/// address's, not the host's and jail's slots', so a host's or a jail's
/// countries, or a country's hosts and jails, are not in one.
fn slot_distinct(conn: &Connection, q: &StatsQuery, attr: Attr) -> Result<Option<u64>> {
    let host_or_jail = q.scope.host.is_some() || q.scope.jail.is_some();
    let (table, column, raw_column) = match attr {
        Attr::Country if !host_or_jail => (
            "country_slots",
            "country",
            "(SELECT i.country FROM ips i WHERE i.ip_key = events.ip_key)",
        ),
        Attr::Jail if q.scope.country.is_none() => ("ban_slots", "jail", "jail"),
        Attr::Host if q.scope.country.is_none() => ("ban_slots", "host", "host"),
        _ => return Ok(None),
    };
    let mut branches = Vec::new();
    let mut args = Vec::new();
    let (slots, edges) = cut(q, SLOT_MS);
    if let Some((first_slot, end_slot)) = slots {
        args.extend([Value::Integer(first_slot), Value::Integer(end_slot)]);
        let narrow = match &q.scope.country {
            Some(country) => {
                args.push(Value::Text(country.clone()));
                " AND country = ?".into()
            }
            None => narrowing(q, &mut args, Rows::Days),
        };
        branches.push(format!(
            "SELECT {column} AS v FROM {table} WHERE slot >= ? AND slot < ? AND bans > 0{narrow}"
        ));
    }
    for (from, to) in edges {
        branches.push(format!(
            "SELECT {raw_column} AS v FROM events
             WHERE kind = 0 AND restored = 0 AND time >= ? AND time < ?{}",
            narrowing(q, &mut args, Rows::Events(from, to))
        ));
    }
    let sql = format!(
        "SELECT count(DISTINCT v) FROM ({})",
        branches.join(" UNION ALL ")
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| s.query_row(rusqlite::params_from_iter(args), |r| r.get(0)))
        .map(|n: i64| Some(count(n)))
        .map_err(sql_err)
}

/// Addresses whose latest ban has not expired or been lifted, now.
pub(super) fn currently_banned(
    conn: &Connection,
    q: &StatsQuery,
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut args = vec![Value::Integer(now.timestamp_millis())];
    let narrow = narrowing(q, &mut args, Rows::InForce);
    conn.query_row(
        &format!(
            "SELECT count(DISTINCT ip_key) FROM active_bans
             WHERE (expires IS NULL OR expires > ?){narrow}"
        ),
        rusqlite::params_from_iter(args),
        |r| r.get::<_, i64>(0),
    )
    .map(count)
    .map_err(sql_err)
}

/// Runs `f` on the rolling window that answers `q`, if one can (see `window`).
pub(super) fn windowed<T>(
    conn: &mut Connection,
    q: &StatsQuery,
    f: impl FnOnce(&rusqlite::Transaction<'_>, i64) -> Result<T>,
) -> Result<Option<T>> {
    if !super::window::fits(q) {
        return Ok(None);
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    let result =
        match super::window::prepare(&tx, q, Utc::now().timestamp_millis()).map_err(sql_err)? {
            Some(win) => Some(f(&tx, win)?),
            None => None,
        };
    tx.commit().map_err(sql_err)?;
    Ok(result)
}

/// New bans in the range: whole 15-minute slots from a slot summary, the
/// partial slots at the edges (and a country with a host or jail) from raw events.
pub(super) fn ban_count(conn: &Connection, q: &StatsQuery) -> Result<u64> {
    if q.until <= q.since {
        return Ok(0);
    }
    let raw = |(from, to): Span| -> Result<i64> {
        let mut args = Vec::new();
        let sql = format!(
            "SELECT count(*) FROM events WHERE kind = 0 AND restored = 0 AND time >= ? AND time < ?{}",
            narrowing(q, &mut args, Rows::Events(from, to))
        );
        conn.prepare_cached(&sql)
            .and_then(|mut s| s.query_row(rusqlite::params_from_iter(args), |r| r.get(0)))
            .map_err(sql_err)
    };
    let (slots, edges) = cut(q, SLOT_MS);
    let mut args = Vec::new();
    let summary = slots.and_then(|(first_slot, end_slot)| {
        args.extend([Value::Integer(first_slot), Value::Integer(end_slot)]);
        slot_summary(q, &mut args)
    });
    let Some((table, narrow)) = summary else {
        let whole = (q.since.timestamp_millis(), q.until.timestamp_millis());
        return Ok(count(raw(whole)?));
    };
    let slots: i64 = conn
        .prepare_cached(&format!(
            "SELECT coalesce(sum(bans), 0) FROM {table} WHERE slot >= ? AND slot < ?{narrow}"
        ))
        .and_then(|mut s| s.query_row(rusqlite::params_from_iter(args), |r| r.get(0)))
        .map_err(sql_err)?;
    let edges = edges.into_iter().map(raw).sum::<Result<i64>>()?;
    Ok(count(slots + edges))
}

/// The 15-minute slot summary that counts `q`'s scope and the terms that
/// narrow it (their values pushed to `args`): the totals, per host and jail,
/// or per country. `None` for a country together with a host or jail: a
/// country is an attribute of the address, not of the host's and jail's slots.
fn slot_summary(q: &StatsQuery, args: &mut Vec<Value>) -> Option<(&'static str, String)> {
    let (host_or_jail, country) = (
        q.scope.host.is_some() || q.scope.jail.is_some(),
        &q.scope.country,
    );
    match (country, host_or_jail) {
        (None, false) => Some(("ban_totals", String::new())),
        (None, true) => Some(("ban_slots", narrowing(q, args, Rows::Days))),
        (Some(country), false) => {
            args.push(Value::Text(country.clone()));
            Some(("country_slots", " AND country = ?".into()))
        }
        (Some(_), true) => None,
    }
}

pub(super) fn bans_per_day(conn: &Connection, q: &StatsQuery, tz: Tz) -> Result<Vec<DayCount>> {
    let Some(mut days) = LocalDays::of(q, tz) else {
        return Ok(Vec::new());
    };
    let (from, to) = (days.from.timestamp_millis(), days.to.timestamp_millis());
    let mut args = vec![
        Value::Integer(from.div_euclid(SLOT_MS)),
        Value::Integer(to.div_euclid(SLOT_MS)),
    ];
    let sql = match slot_summary(q, &mut args) {
        Some((table, narrow)) => format!(
            "SELECT slot, sum(bans) FROM {table} WHERE slot >= ? AND slot < ?{narrow} GROUP BY slot"
        ),
        None => {
            args.clear();
            format!(
                "SELECT time / {SLOT_MS}, count(*) FROM events
                 WHERE kind = 0 AND restored = 0 AND time >= ? AND time < ?{} GROUP BY 1",
                narrowing(q, &mut args, Rows::Events(from, to))
            )
        }
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(sql_err)?;
    for row in rows {
        let (slot, bans) = row.map_err(sql_err)?;
        days.add(slot, count(bans))?;
    }
    Ok(days.finish())
}

pub(super) fn top_offenders(
    conn: &Connection,
    q: &StatsQuery,
    limit: u32,
) -> Result<Vec<Offender>> {
    if !hashed(q) {
        return top_offenders_sorted(conn, q, limit);
    }
    let mut jail_ids: HashMap<String, u32> = HashMap::default();
    let tallies = per_address(
        conn,
        q,
        "ip_key, bans, first, last, jail",
        |t: &mut Offence, row| {
            t.bans += row.get::<_, i64>(1).map_err(sql_err)?;
            t.first = t.first.min(row.get(2).map_err(sql_err)?);
            t.last = t.last.max(row.get(3).map_err(sql_err)?);
            let name = name_at(row, 4)?;
            let id = match jail_ids.get(name) {
                Some(&id) => id,
                None => {
                    let id = jail_ids.len() as u32;
                    jail_ids.insert(name.to_owned(), id);
                    id
                }
            };
            t.jails.add(id);
            Ok(())
        },
    )?;
    let mut names = vec![""; jail_ids.len()];
    for (name, &id) in &jail_ids {
        names[id as usize] = name;
    }
    let mut top = first_n(tallies, limit, worst_first);
    top.sort_unstable_by(worst_first);
    let corrupt = |what: &str| corrupt(what, "ip_day");
    let mut country = conn
        .prepare_cached("SELECT country FROM ips WHERE ip_key = ?1")
        .map_err(sql_err)?;
    let mut out = Vec::with_capacity(top.len());
    for (key, t) in top {
        let mut jails: Vec<String> = t.jails.ids().map(|id| names[id].to_owned()).collect();
        jails.sort();
        out.push(Offender {
            ip: ip_from_key(&key).ok_or_else(|| corrupt("ip_key"))?,
            bans: count(t.bans),
            first_seen: Utc
                .timestamp_millis_opt(t.first)
                .single()
                .ok_or_else(|| corrupt("first"))?,
            last_seen: Utc
                .timestamp_millis_opt(t.last)
                .single()
                .ok_or_else(|| corrupt("last"))?,
            jails,
            country: country
                .query_row([Stored::of(&key)], |r| r.get(0))
                .optional()
                .map_err(sql_err)?
                .flatten(),
        });
    }
    Ok(out)
}

/// [`top_offenders`] over a long range: SQLite's sorter groups the
/// addresses, spilling to disk rather than holding them all in memory.
fn top_offenders_sorted(conn: &Connection, q: &StatsQuery, limit: u32) -> Result<Vec<Offender>> {
    let (src, mut args) = source(q);
    args.push(Value::Integer(i64::from(limit)));
    let sql = format!(
        "SELECT t.ip_key, t.bans, t.first, t.last, t.jails, i.country FROM (
            SELECT ip_key, sum(bans) AS bans, min(first) AS first, max(last) AS last,
                   json_group_array(DISTINCT jail) AS jails
            FROM ({src}) GROUP BY ip_key ORDER BY bans DESC, last DESC, ip_key LIMIT ?
         ) t LEFT JOIN ips i ON i.ip_key = t.ip_key
         ORDER BY t.bans DESC, t.last DESC, t.ip_key"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })
        .map_err(sql_err)?;
    let corrupt = |what: &str| corrupt(what, "ip_day");
    let mut out = Vec::new();
    for row in rows {
        let (key, bans, first, last, jails, country) = row.map_err(sql_err)?;
        let mut jails: Vec<String> = serde_json::from_str(&jails).map_err(|_| corrupt("jail"))?;
        jails.sort();
        out.push(Offender {
            ip: ip_of(&key).ok_or_else(|| corrupt("ip_key"))?,
            bans: count(bans),
            first_seen: Utc
                .timestamp_millis_opt(first)
                .single()
                .ok_or_else(|| corrupt("first"))?,
            last_seen: Utc
                .timestamp_millis_opt(last)
                .single()
                .ok_or_else(|| corrupt("last"))?,
            jails,
            country,
        });
    }
    Ok(out)
}

/// Whether a ranking of addresses groups them in a hash map (fast) rather
/// than with SQLite's sorter: for ranges of up to a month, whose addresses
/// fit in a few tens of megabytes (10M events a year: some 600,000).
fn hashed(q: &StatsQuery) -> bool {
    q.until - q.since <= chrono::Duration::days(31)
}

/// Most bans first, then the latest, then by address, as SQL ranks them.
fn worst_first((ka, a): &([u8; 16], Offence), (kb, b): &([u8; 16], Offence)) -> Ordering {
    b.bans
        .cmp(&a.bans)
        .then(b.last.cmp(&a.last))
        .then(ka.cmp(kb))
}

/// An address's new bans in the range: how many, the first and last, and
/// its jails (as numbered by the caller).
struct Offence {
    bans: i64,
    first: i64,
    last: i64,
    jails: Jails,
}

/// The jails an address was banned in, by number: a bit each for the first
/// 64 (so most addresses allocate nothing), a list beyond.
#[derive(Default)]
struct Jails {
    first: u64,
    more: Vec<u32>,
}

impl Jails {
    fn add(&mut self, id: u32) {
        if id < 64 {
            self.first |= 1 << id;
        } else if !self.more.contains(&id) {
            self.more.push(id);
        }
    }

    fn ids(&self) -> impl Iterator<Item = usize> + '_ {
        (0..64)
            .filter(|bit| self.first & (1 << bit) != 0)
            .chain(self.more.iter().map(|&id| id as usize))
    }
}

impl Default for Offence {
    fn default() -> Self {
        Offence {
            bans: 0,
            first: i64::MAX,
            last: i64::MIN,
            jails: Jails::default(),
        }
    }
}

/// The range's rows (`columns` of [`source`], the address first) folded
/// into one `T` per address by `add`, in one pass. The map holds only an
/// index into the list: growing, it moves 24 bytes per address, not each
/// tally (measured: a past week's offenders ranked a tenth faster).
fn per_address<T: Default>(
    conn: &Connection,
    q: &StatsQuery,
    columns: &str,
    mut add: impl FnMut(&mut T, &rusqlite::Row<'_>) -> Result<()>,
) -> Result<Vec<([u8; 16], T)>> {
    let mut index: HashMap<[u8; 16], usize> = HashMap::default();
    let mut tallies = Vec::new();
    each_row(conn, q, Where::Unneeded, columns, |row| {
        let key = key_at(row, 0)?;
        let i = *index.entry(key).or_insert_with(|| {
            tallies.push((key, T::default()));
            tallies.len() - 1
        });
        add(&mut tallies[i].1, row)
    })?;
    Ok(tallies)
}

/// The `limit` first of `items` in `order`, unsorted.
fn first_n<T>(mut items: Vec<T>, limit: u32, mut order: impl FnMut(&T, &T) -> Ordering) -> Vec<T> {
    let limit = limit as usize;
    if limit < items.len() {
        items.select_nth_unstable_by(limit, &mut order);
        items.truncate(limit);
    }
    items
}

pub(super) fn top(
    conn: &Connection,
    q: &StatsQuery,
    by: TopBy,
    limit: u32,
) -> Result<Vec<TopEntry>> {
    match by {
        TopBy::Jail => top_column(conn, q, "jail", limit),
        TopBy::Host => top_column(conn, q, "host", limit),
        TopBy::Country => top_column(conn, q, "country", limit),
        TopBy::Asn => top_column(conn, q, "asn", limit),
        TopBy::Network if hashed(q) => top_networks(conn, q, limit),
        TopBy::Network => top_networks_sorted(conn, q, limit),
    }
}

/// The jails, hosts, countries or ASes (`column`) with the most new bans in
/// the range, each with its distinct addresses: all kept on the range's rows
/// (an address's location beside each of its days), so one pass groups
/// them. An address not located counts for no country or AS. An AS is
/// labelled as its lowest address in the range has it.
fn top_column(
    conn: &Connection,
    q: &StatsQuery,
    column: &str,
    limit: u32,
) -> Result<Vec<TopEntry>> {
    let mut groups: HashMap<String, (i64, HashSet<[u8; 16]>)> = HashMap::default();
    let (place, name) = match column {
        "country" => (Where::Located, column),
        // As the windows key an AS; made by SQLite, which allocates nothing per row.
        "asn" => (Where::Located, "'AS' || asn"),
        _ => (Where::Unneeded, column),
    };
    each_row(conn, q, place, &format!("ip_key, bans, {name}"), |row| {
        let name = match row.get_ref(2).map_err(sql_err)? {
            ValueRef::Null => return Ok(()),
            name => name.as_str().map_err(|_| corrupt("name", "ip_day"))?,
        };
        let group = match groups.get_mut(name) {
            Some(group) => group,
            None => groups.entry(name.to_owned()).or_default(),
        };
        group.0 += row.get::<_, i64>(1).map_err(sql_err)?;
        group.1.insert(key_at(row, 0)?);
        Ok(())
    })?;
    let ranking = groups
        .iter()
        .map(|(name, (bans, addresses))| (name, *bans, addresses.len()));
    let mut top = ranked(ranking, limit, |name| name.to_string());
    if column == "asn" {
        let mut label = conn
            .prepare_cached("SELECT as_org FROM ips WHERE ip_key = ?1")
            .map_err(sql_err)?;
        for entry in &mut top {
            let lowest = groups
                .get(&entry.key)
                .and_then(|(_, keys)| keys.iter().min());
            if let Some(key) = lowest {
                entry.label = label
                    .query_row([Stored::of(key)], |r| r.get(0))
                    .optional()
                    .map_err(sql_err)?
                    .flatten();
            }
        }
    }
    Ok(top)
}

/// The networks (/24, /64) with the most new bans in the range: an
/// address's network follows from its key, so none is looked up.
fn top_networks(conn: &Connection, q: &StatsQuery, limit: u32) -> Result<Vec<TopEntry>> {
    let bans = per_address(conn, q, "ip_key, bans", |bans: &mut i64, row| {
        *bans += row.get::<_, i64>(1).map_err(sql_err)?;
        Ok(())
    })?;
    let mut networks: HashMap<[u8; 16], (i64, usize)> = HashMap::default();
    for (key, bans) in bans {
        let network = networks.entry(network_key(key)).or_default();
        network.0 += bans;
        network.1 += 1;
    }
    let networks = networks
        .into_iter()
        .map(|(key, (bans, addresses))| (key, bans, addresses));
    let text = |key: &[u8; 16]| network_of(IpAddr::V6((*key).into()).to_canonical()).to_string();
    Ok(ranked(networks, limit, text))
}

/// [`top_networks`] over a long range: SQLite's sorter groups the
/// addresses (spilling to disk), each then joined to its network.
fn top_networks_sorted(conn: &Connection, q: &StatsQuery, limit: u32) -> Result<Vec<TopEntry>> {
    let (src, mut args) = source(q);
    args.push(Value::Integer(i64::from(limit)));
    let sql = format!(
        "SELECT i.network AS k, sum(g.bans) AS bans, count(*)
         FROM (SELECT ip_key, sum(bans) AS bans FROM ({src}) GROUP BY ip_key) g
         CROSS JOIN ips i ON i.ip_key = g.ip_key
         GROUP BY k ORDER BY bans DESC, k LIMIT ?"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |r| {
            Ok(TopEntry {
                key: r.get(0)?,
                label: None,
                bans: count(r.get(1)?),
                unique_ips: count(r.get(2)?),
            })
        })
        .map_err(sql_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(sql_err)
}

/// The `limit` first of `(key, bans, addresses)` as SQL ranks them: most
/// bans first, then by the key's text, byte by byte. Only the keys that can
/// make the list (ties at its end included) are put into text.
fn ranked<K>(
    items: impl Iterator<Item = (K, i64, usize)>,
    limit: u32,
    text: impl Fn(&K) -> String,
) -> Vec<TopEntry> {
    let mut items: Vec<_> = items.collect();
    let limit = limit as usize;
    if limit == 0 {
        return Vec::new();
    }
    if limit < items.len() {
        items.select_nth_unstable_by(limit - 1, |a, b| b.1.cmp(&a.1));
        let least = items[limit - 1].1;
        items.retain(|item| item.1 >= least);
    }
    let mut top: Vec<TopEntry> = items
        .into_iter()
        .map(|(key, bans, addresses)| TopEntry {
            key: text(&key),
            label: None,
            bans: count(bans),
            unique_ips: addresses as u64,
        })
        .collect();
    top.sort_unstable_by(|a, b| b.bans.cmp(&a.bans).then_with(|| a.key.cmp(&b.key)));
    top.truncate(limit);
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jails_past_the_first_64_are_kept_once_each() {
        let mut jails = Jails::default();
        for id in [3, 0, 63, 64, 200, 64, 3, 200, 65] {
            jails.add(id);
        }
        assert_eq!(jails.ids().collect::<Vec<_>>(), [0, 3, 63, 64, 200, 65]);
    }

    #[test]
    fn a_ranking_keeps_every_tie_until_it_is_cut_by_key() {
        let items = [
            ("c", 2, 1),
            ("a", 5, 1),
            ("d", 2, 2),
            ("b", 2, 1),
            ("e", 1, 1),
        ];
        let keys = |limit| {
            ranked(items.into_iter(), limit, |k| k.to_string())
                .into_iter()
                .map(|t| t.key)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(2), ["a", "b"]);
        assert_eq!(keys(3), ["a", "b", "c"]);
        assert_eq!(keys(9), ["a", "b", "c", "d", "e"]);
        assert!(keys(0).is_empty());
    }
}
