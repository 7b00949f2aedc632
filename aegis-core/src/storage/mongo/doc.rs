//! Events as MongoDB documents and filters.
//!
//! `_id` is the event id as an ObjectId (both are 12 bytes), so a repeated
//! event is refused by the `_id` index that every MongoDB enforces. Addresses
//! are also stored as `ip_key`, 32 hex digits of the 16-byte key (IPv4 mapped),
//! whose string order is address order: CIDR filters are range queries.

use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime as BsonTime, Document};

use crate::error::{Error, Result};
use crate::event::{BanEvent, EventId, EventKind, Geo};
use crate::ipkey::{hex, ip_from_key, ip_key, network_range, unhex};
use crate::query::{network_of, EventFilter, StatsQuery, StoredEvent};
use crate::storage::shared::{self, kind_code, kind_of, slot_of};

pub fn key_of(ip: std::net::IpAddr) -> String {
    hex(&ip_key(ip.to_canonical()))
}

pub fn bson_time(t: chrono::DateTime<chrono::Utc>) -> BsonTime {
    BsonTime::from_millis(t.timestamp_millis())
}

pub fn object_id(id: EventId) -> ObjectId {
    ObjectId::from_bytes(id.0)
}

fn opt<T: Into<Bson>>(d: &mut Document, key: &str, v: Option<T>) {
    if let Some(v) = v {
        d.insert(key, v.into());
    }
}

pub fn to_doc(e: &BanEvent) -> Document {
    let mut d = doc! {
        "_id": object_id(e.id()),
        "kind": i32::from(kind_code(e.kind)),
        "ip": e.ip.to_string(),
        "ip_key": key_of(e.ip),
        "network": network_of(e.ip).to_string(),
        "jail": &e.jail,
        "host": &e.host,
        "time": bson_time(e.time),
        "slot": slot_of(e.time),
        "restored": e.restored,
        "matches": &e.matches,
        "received_at": bson_time(e.received_at),
    };
    opt(&mut d, "protocol", e.protocol.clone());
    opt(&mut d, "port", e.port.clone());
    opt(&mut d, "failures", e.failures.map(i64::from));
    opt(&mut d, "bantime", e.bantime);
    opt(&mut d, "bancount", e.bancount.map(i64::from));
    opt(&mut d, "user", e.user.clone());
    if e.kind == EventKind::Ban {
        d.insert("expires", expires(e));
    }
    if let Some(g) = &e.geo {
        d.extend(geo_fields(g));
    }
    d
}

/// When a ban ends (never, for a permanent one): kept on insert, so that the
/// bans in force are a range of an index, however long the history.
fn expires(e: &BanEvent) -> BsonTime {
    match e.bantime {
        // The end of year 9999: far enough, and a date every server can compare.
        Some(-1) => BsonTime::from_millis(253_402_300_799_999),
        other => bson_time(
            e.time + chrono::Duration::seconds(other.unwrap_or(shared::DEFAULT_BANTIME_S)),
        ),
    }
}

/// The geolocation fields of an event document (absent values unset).
pub fn geo_fields(g: &Geo) -> Document {
    let mut d = Document::new();
    opt(&mut d, "country", g.country.clone());
    opt(&mut d, "city", g.city.clone());
    opt(&mut d, "latitude", g.latitude);
    opt(&mut d, "longitude", g.longitude);
    opt(&mut d, "asn", g.asn.map(i64::from));
    opt(&mut d, "as_org", g.as_org.clone());
    d
}

pub const GEO_FIELDS: [&str; 6] = ["country", "city", "latitude", "longitude", "asn", "as_org"];

fn corrupt(what: &str) -> Error {
    shared::corrupt(what, "an event document")
}

/// An integer field, whichever number type the server chose.
pub fn int(d: &Document, key: &str) -> Option<i64> {
    match d.get(key)? {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) => Some(*v as i64),
        _ => None,
    }
}

fn text(d: &Document, key: &str) -> Option<String> {
    d.get_str(key).ok().map(str::to_owned)
}

fn float(d: &Document, key: &str) -> Option<f64> {
    match d.get(key)? {
        Bson::Double(v) => Some(*v),
        Bson::Int32(v) => Some(f64::from(*v)),
        Bson::Int64(v) => Some(*v as f64),
        _ => None,
    }
}

pub fn time(d: &Document, key: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    let t = d.get_datetime(key).map_err(|_| corrupt(key))?;
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).ok_or_else(|| corrupt(key))
}

/// The address of a hex `ip_key`.
pub fn ip_of_key(key: &str) -> Result<std::net::IpAddr> {
    unhex(key)
        .and_then(|k| ip_from_key(&k))
        .ok_or_else(|| corrupt("ip_key"))
}

pub fn from_doc(d: &Document) -> Result<StoredEvent> {
    let id = d.get_object_id("_id").map_err(|_| corrupt("_id"))?;
    let kind = int(d, "kind")
        .and_then(kind_of)
        .ok_or_else(|| corrupt("kind"))?;
    let geo = Geo {
        country: text(d, "country"),
        city: text(d, "city"),
        latitude: float(d, "latitude"),
        longitude: float(d, "longitude"),
        asn: int(d, "asn").and_then(|v| u32::try_from(v).ok()),
        as_org: text(d, "as_org"),
    };
    let matches = match d.get_array("matches") {
        Ok(items) => items
            .iter()
            .map(|m| {
                m.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| corrupt("matches"))
            })
            .collect::<Result<_>>()?,
        Err(_) => Vec::new(),
    };
    let event = BanEvent {
        kind,
        ip: ip_of_key(d.get_str("ip_key").map_err(|_| corrupt("ip_key"))?)?,
        jail: text(d, "jail").ok_or_else(|| corrupt("jail"))?,
        host: text(d, "host").ok_or_else(|| corrupt("host"))?,
        protocol: text(d, "protocol"),
        port: text(d, "port"),
        failures: int(d, "failures").and_then(|v| u32::try_from(v).ok()),
        time: time(d, "time")?,
        bantime: int(d, "bantime"),
        bancount: int(d, "bancount").and_then(|v| u32::try_from(v).ok()),
        restored: d.get_bool("restored").unwrap_or(false),
        matches,
        user: text(d, "user"),
        geo: (geo != Geo::default()).then_some(geo),
        received_at: time(d, "received_at")?,
    };
    Ok(StoredEvent {
        id: EventId(id.bytes()),
        event,
    })
}

/// The filter of an event search.
pub fn event_filter(f: &EventFilter) -> Document {
    let mut d = Document::new();
    if let Some(ip) = f.ip {
        d.insert("ip_key", key_of(ip));
    }
    if let Some(net) = f.network {
        let (lo, hi) = network_range(net);
        let mut range = doc! { "$gte": hex(&lo), "$lte": hex(&hi) };
        if let Ok(exact) = d.get_str("ip_key") {
            range.insert("$eq", exact.to_owned());
        }
        d.insert("ip_key", range);
    }
    opt(&mut d, "jail", f.scope.jail.clone());
    opt(&mut d, "host", f.scope.host.clone());
    opt(&mut d, "country", f.scope.country.clone());
    opt(&mut d, "kind", f.kind.map(|k| i32::from(kind_code(k))));
    let mut t = Document::new();
    opt(&mut t, "$gte", f.since.map(bson_time));
    opt(&mut t, "$lt", f.until.map(bson_time));
    if !t.is_empty() {
        d.insert("time", t);
    }
    d
}

/// New bans (not restored) inside the query's range and narrowing.
pub fn new_bans(q: &StatsQuery) -> Document {
    let mut d = doc! {
        "kind": 0,
        "restored": false,
        "time": { "$gte": bson_time(q.since), "$lt": bson_time(q.until) },
    };
    narrow(&mut d, q);
    d
}

/// The host, jail and country terms of a statistics query.
pub fn narrow(d: &mut Document, q: &StatsQuery) {
    opt(d, "host", q.scope.host.clone());
    opt(d, "jail", q.scope.jail.clone());
    opt(d, "country", q.scope.country.clone());
}
