//! Event listings: filters become a WHERE clause, rows become `StoredEvent`s.

use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row};

use super::key::{ip_of, Stored};
use super::sql_err;
use super::write::event_key;
use crate::error::{Error, Result};
use crate::event::{BanEvent, EventId, Geo};
use crate::ipkey::network_range;
use crate::query::{EventFilter, Order, Page, StoredEvent};
use crate::storage::shared::{self, kind_code, kind_of};

const COLUMNS: &str =
    "substr(event_key, 9), kind, ip_key, jail, host, protocol, port, failures, time, \
    bantime, bancount, restored, matches, user, country, city, latitude, longitude, asn, as_org, \
    received_at";

/// A WHERE clause with its parameters.
fn where_clause(filter: &EventFilter) -> (String, Vec<Value>) {
    let mut terms: Vec<&str> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(ip) = filter.ip {
        terms.push("ip_key = ?");
        args.push(Stored::ip(ip).into());
    }
    if let Some(net) = filter.network {
        let (lo, hi) = network_range(net);
        terms.push("ip_key BETWEEN ? AND ?");
        args.push(Stored::of(&lo).into());
        args.push(Stored::of(&hi).into());
    }
    for (term, value) in [
        ("jail = ?", &filter.scope.jail),
        ("host = ?", &filter.scope.host),
        ("country = ?", &filter.scope.country),
    ] {
        if let Some(v) = value {
            terms.push(term);
            args.push(Value::Text(v.clone()));
        }
    }
    if let Some(kind) = filter.kind {
        terms.push("kind = ?");
        args.push(Value::Integer(kind_code(kind).into()));
    }
    if let Some(since) = filter.since {
        terms.push("time >= ?");
        args.push(Value::Integer(since.timestamp_millis()));
    }
    if let Some(until) = filter.until {
        terms.push("time < ?");
        args.push(Value::Integer(until.timestamp_millis()));
    }
    if terms.is_empty() {
        (String::new(), args)
    } else {
        (format!("WHERE {}", terms.join(" AND ")), args)
    }
}

pub(super) fn events(
    conn: &Connection,
    filter: &EventFilter,
    page: Page,
) -> Result<Vec<StoredEvent>> {
    let (mut clause, mut args) = where_clause(filter);
    let (order, beyond) = match page.order {
        Order::Desc => ("DESC", "<"),
        Order::Asc => ("ASC", ">"),
    };
    if let Some(after) = page.after {
        // Ties in time go by row id, the index's own order: the cursor's row id
        // is found by its event's key.
        let t = after.time.timestamp_millis();
        let range = if beyond == ">" { ">=" } else { "<=" };
        clause.push_str(if clause.is_empty() { "WHERE " } else { " AND " });
        clause.push_str(&format!(
            "time {range} ? AND (time {beyond} ? OR id {beyond} \
             coalesce((SELECT id FROM events WHERE event_key = ?), id))"
        ));
        args.extend([
            Value::Integer(t),
            Value::Integer(t),
            Value::Blob(event_key(&after.id, t).to_vec()),
        ]);
    }
    args.push(Value::Integer(i64::from(page.limit.min(Page::MAX_LIMIT))));
    args.push(Value::Integer(
        i64::try_from(page.offset).unwrap_or(i64::MAX),
    ));
    let sql = format!(
        "SELECT {COLUMNS} FROM events {clause} ORDER BY time {order}, id {order} LIMIT ? OFFSET ?"
    );
    query_events(conn, &sql, args)
}

pub(super) fn count(conn: &Connection, filter: &EventFilter) -> Result<u64> {
    let (clause, args) = where_clause(filter);
    let sql = format!("SELECT count(*) FROM events {clause}");
    conn.query_row(&sql, rusqlite::params_from_iter(args), |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
    .map_err(sql_err)
}

pub(super) fn ip_history(conn: &Connection, ip: IpAddr) -> Result<Vec<StoredEvent>> {
    let sql = format!("SELECT {COLUMNS} FROM events WHERE ip_key = ? ORDER BY time, id");
    query_events(conn, &sql, vec![Stored::ip(ip).into()])
}

pub(super) fn distinct_ips(
    conn: &Connection,
    after: Option<IpAddr>,
    limit: u32,
) -> Result<Vec<IpAddr>> {
    let after = after
        .map(|ip| Stored::ip(ip).as_bytes().to_vec())
        .unwrap_or_default();
    let mut stmt = conn
        .prepare_cached("SELECT ip_key FROM ips WHERE ip_key > ? ORDER BY ip_key LIMIT ?")
        .map_err(sql_err)?;
    let rows = stmt
        .query_map(rusqlite::params![after, limit], |r| r.get::<_, Vec<u8>>(0))
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for key in rows {
        let key = key.map_err(sql_err)?;
        out.push(ip_of(&key).ok_or_else(|| corrupt("ip_key"))?);
    }
    Ok(out)
}

fn query_events(conn: &Connection, sql: &str, args: Vec<Value>) -> Result<Vec<StoredEvent>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args))
        .map_err(sql_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_err)? {
        out.push(stored_event(row)?);
    }
    Ok(out)
}

fn corrupt(what: &str) -> Error {
    shared::corrupt(what, "the events table")
}

fn millis(ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| corrupt("time"))
}

fn stored_event(row: &Row<'_>) -> Result<StoredEvent> {
    let get = |e: rusqlite::Error| Error::Storage(format!("reading an event: {e}"));
    let id: Vec<u8> = row.get(0).map_err(get)?;
    let id: [u8; 12] = id.try_into().map_err(|_| corrupt("event_id"))?;
    let kind = kind_of(row.get(1).map_err(get)?).ok_or_else(|| corrupt("kind"))?;
    let key: Vec<u8> = row.get(2).map_err(get)?;
    let matches: Option<String> = row.get(12).map_err(get)?;
    let matches = match matches {
        Some(json) => serde_json::from_str(&json).map_err(|_| corrupt("matches"))?,
        None => Vec::new(),
    };
    let geo = Geo {
        country: row.get(14).map_err(get)?,
        city: row.get(15).map_err(get)?,
        latitude: row.get(16).map_err(get)?,
        longitude: row.get(17).map_err(get)?,
        asn: row.get(18).map_err(get)?,
        as_org: row.get(19).map_err(get)?,
    };
    let event = BanEvent {
        kind,
        ip: ip_of(&key).ok_or_else(|| corrupt("ip_key"))?,
        jail: row.get(3).map_err(get)?,
        host: row.get(4).map_err(get)?,
        protocol: row.get(5).map_err(get)?,
        port: row.get(6).map_err(get)?,
        failures: row.get(7).map_err(get)?,
        time: millis(row.get(8).map_err(get)?)?,
        bantime: row.get(9).map_err(get)?,
        bancount: row.get(10).map_err(get)?,
        restored: row.get(11).map_err(get)?,
        matches,
        user: row.get(13).map_err(get)?,
        geo: (geo != Geo::default()).then_some(geo),
        received_at: millis(row.get(20).map_err(get)?)?,
    };
    Ok(StoredEvent {
        id: EventId(id),
        event,
    })
}

pub(super) fn cached_geo(conn: &Connection, ips: &[IpAddr]) -> Result<Vec<(IpAddr, Option<Geo>)>> {
    let mut stmt = conn
        .prepare_cached("SELECT geo FROM geo_cache WHERE ip_key = ?1")
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for ip in ips {
        let ip = ip.to_canonical();
        let mut rows = stmt.query([Stored::ip(ip)]).map_err(sql_err)?;
        if let Some(row) = rows.next().map_err(sql_err)? {
            let json: Option<String> = row.get(0).map_err(sql_err)?;
            let geo = match json {
                Some(j) => Some(serde_json::from_str(&j).map_err(|_| corrupt("geo_cache"))?),
                None => None,
            };
            out.push((ip, geo));
        }
    }
    Ok(out)
}

pub(super) fn state(conn: &Connection, name: &str) -> Result<Option<serde_json::Value>> {
    let body: Option<String> = conn
        .query_row(
            "SELECT body FROM service_state WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err)?;
    body.map(|b| {
        serde_json::from_str(&b)
            .map_err(|e| Error::Storage(format!("state {name:?} is unreadable: {e}")))
    })
    .transpose()
}
