//! Statistics as aggregation pipelines: the server groups, only the groups
//! come back (one row per address, country, day slot, …), never the events.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::Collection;

use super::doc::{bson_time, ip_of_key, narrow, new_bans, time};
use super::mongo_err;
use crate::error::Result;
use crate::query::{DayCount, Offender, StatsQuery, Summary, TopBy, TopEntry};
use crate::storage::shared::{self, asn_key, LocalDays, DEFAULT_BANTIME_S};

pub async fn run(
    events: &Collection<Document>,
    pipeline: impl IntoIterator<Item = Document>,
) -> Result<Vec<Document>> {
    events
        .aggregate(pipeline)
        .allow_disk_use(true)
        .await
        .map_err(mongo_err)?
        .try_collect()
        .await
        .map_err(mongo_err)
}

/// A count in a result document (the server picks its number type).
fn count(v: Option<&Bson>) -> u64 {
    match v {
        Some(Bson::Int32(n)) => shared::count(i64::from(*n)),
        Some(Bson::Int64(n)) => shared::count(*n),
        Some(Bson::Double(n)) => *n as u64,
        _ => 0,
    }
}

/// Distinct values of `field` among `matching` events (grouped, then counted, so
/// no single document has to hold them all).
async fn distinct(events: &Collection<Document>, matching: &Document, field: &str) -> Result<u64> {
    let rows = run(
        events,
        [
            doc! { "$match": matching.clone() },
            doc! { "$match": { field: { "$exists": true, "$ne": Bson::Null } } },
            doc! { "$group": { "_id": format!("${field}") } },
            doc! { "$count": "n" },
        ],
    )
    .await?;
    Ok(rows.first().map_or(0, |d| count(d.get("n"))))
}

pub async fn summary(
    events: &Collection<Document>,
    q: &StatsQuery,
    now: DateTime<Utc>,
) -> Result<Summary> {
    let scope = new_bans(q);
    let bans = async {
        events
            .count_documents(scope.clone())
            .await
            .map_err(mongo_err)
    };
    let (bans, unique_ips, countries, jails, hosts, currently_banned) = tokio::try_join!(
        bans,
        distinct(events, &scope, "ip_key"),
        distinct(events, &scope, "country"),
        distinct(events, &scope, "jail"),
        distinct(events, &scope, "host"),
        currently_banned(events, q, now),
    )?;
    Ok(Summary {
        bans,
        unique_ips,
        countries,
        jails,
        hosts,
        currently_banned,
    })
}

/// Address, host and jail: what a ban applies to.
type BanKey = (String, String, String);

/// The key of a row grouped by `{ip, host, jail}`.
fn ban_key(row: &Document) -> BanKey {
    let id = row.get_document("_id").cloned().unwrap_or_default();
    let field = |k: &str| id.get_str(k).unwrap_or_default().to_owned();
    (field("ip"), field("host"), field("jail"))
}

/// Addresses whose latest ban (per host and jail) has neither expired nor been
/// followed by an unban. Only bans in force are read (by their `expires`,
/// kept on insert; events stored before it was kept are read too), so the cost
/// follows the bans in force, not the history; then the later bans and unbans
/// of those addresses.
async fn currently_banned(
    events: &Collection<Document>,
    q: &StatsQuery,
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut bans = doc! { "kind": 0, "$or": [
        { "expires": { "$gt": bson_time(now) } },
        { "expires": { "$exists": false } },
    ] };
    narrow(&mut bans, q);
    let candidates = run(
        events,
        [
            doc! { "$match": bans },
            doc! { "$sort": { "time": 1 } },
            doc! { "$group": {
                "_id": { "ip": "$ip_key", "host": "$host", "jail": "$jail" },
                "time": { "$last": "$time" },
                "bantime": { "$last": "$bantime" },
            } },
            // Expired bans stay on the server.
            doc! { "$match": { "$expr": { "$or": [
                { "$eq": ["$bantime", -1] },
                { "$gt": [
                    { "$add": ["$time", { "$multiply": [{ "$ifNull": ["$bantime", DEFAULT_BANTIME_S] }, 1000] }] },
                    bson_time(now),
                ] },
            ] } } },
        ],
    )
    .await?;
    let mut active: HashMap<BanKey, DateTime<Utc>> = HashMap::new();
    for c in &candidates {
        let key = ban_key(c);
        let banned_at = time(c, "time")?;
        let bantime = match c.get("bantime") {
            Some(Bson::Int64(v)) => Some(*v),
            Some(Bson::Int32(v)) => Some(i64::from(*v)),
            _ => None,
        };
        let live = match bantime {
            Some(-1) => true,
            other => banned_at + Duration::seconds(other.unwrap_or(DEFAULT_BANTIME_S)) > now,
        };
        if live {
            active.insert(key, banned_at);
        }
    }
    if active.is_empty() {
        return Ok(0);
    }
    let ips: Vec<&str> = active.keys().map(|(ip, _, _)| ip.as_str()).collect();
    let mut later = doc! { "ip_key": { "$in": ips } };
    narrow(&mut later, q);
    let latest = run(
        events,
        [
            doc! { "$match": later },
            doc! { "$group": {
                "_id": { "ip": "$ip_key", "host": "$host", "jail": "$jail" },
                "ban": { "$max": { "$cond": [{ "$eq": ["$kind", 0] }, "$time", null] } },
                "unban": { "$max": { "$cond": [{ "$eq": ["$kind", 1] }, "$time", null] } },
            } },
        ],
    )
    .await?;
    for r in &latest {
        let key = ban_key(r);
        let Some(banned_at) = active.get(&key) else {
            continue;
        };
        // A later ban that has expired ends this one; so does an unban after it.
        let superseded = time(r, "ban").is_ok_and(|b| b > *banned_at)
            || time(r, "unban").is_ok_and(|u| u >= *banned_at);
        if superseded {
            active.remove(&key);
        }
    }
    let addresses: std::collections::HashSet<&String> =
        active.keys().map(|(ip, _, _)| ip).collect();
    Ok(addresses.len() as u64)
}

pub async fn bans_per_day(
    events: &Collection<Document>,
    q: &StatsQuery,
    tz: Tz,
) -> Result<Vec<DayCount>> {
    let Some(mut days) = LocalDays::of(q, tz) else {
        return Ok(Vec::new());
    };
    let whole_days = StatsQuery {
        since: days.from,
        until: days.to,
        ..q.clone()
    };
    let slots = run(
        events,
        [
            doc! { "$match": new_bans(&whole_days) },
            doc! { "$group": { "_id": "$slot", "bans": { "$sum": 1 } } },
        ],
    )
    .await?;
    for s in &slots {
        let slot = match s.get("_id") {
            Some(Bson::Int64(v)) => *v,
            Some(Bson::Int32(v)) => i64::from(*v),
            _ => continue,
        };
        days.add(slot, count(s.get("bans")))?;
    }
    Ok(days.finish())
}

pub async fn top_offenders(
    events: &Collection<Document>,
    q: &StatsQuery,
    limit: u32,
) -> Result<Vec<Offender>> {
    let rows = run(
        events,
        [
            doc! { "$match": new_bans(q) },
            doc! { "$sort": { "time": 1 } },
            doc! { "$group": {
                "_id": "$ip_key",
                "bans": { "$sum": 1 },
                "first": { "$min": "$time" },
                "last": { "$max": "$time" },
                "jails": { "$addToSet": "$jail" },
                "country": { "$last": "$country" },
            } },
            doc! { "$sort": { "bans": -1, "last": -1, "_id": 1 } },
            doc! { "$limit": i64::from(limit) },
        ],
    )
    .await?;
    rows.iter()
        .map(|r| {
            let mut jails: Vec<String> = r
                .get_array("jails")
                .map(|a| {
                    a.iter()
                        .filter_map(|j| j.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            jails.sort();
            Ok(Offender {
                ip: ip_of_key(r.get_str("_id").unwrap_or_default())?,
                bans: count(r.get("bans")),
                first_seen: time(r, "first")?,
                last_seen: time(r, "last")?,
                jails,
                country: r.get_str("country").ok().map(str::to_owned),
            })
        })
        .collect()
}

pub async fn top(
    events: &Collection<Document>,
    q: &StatsQuery,
    by: TopBy,
    limit: u32,
) -> Result<Vec<TopEntry>> {
    let field = match by {
        TopBy::Country => "country",
        TopBy::Jail => "jail",
        TopBy::Host => "host",
        TopBy::Asn => "asn",
        TopBy::Network => "network",
    };
    let rows = run(
        events,
        [
            doc! { "$match": new_bans(q) },
            doc! { "$match": { field: { "$exists": true, "$ne": Bson::Null } } },
            doc! { "$group": {
                "_id": { "key": format!("${field}"), "ip": "$ip_key" },
                "bans": { "$sum": 1 },
                "label": { "$max": "$as_org" },
            } },
            doc! { "$group": {
                "_id": "$_id.key",
                "bans": { "$sum": "$bans" },
                "ips": { "$sum": 1 },
                "label": { "$max": "$label" },
            } },
            doc! { "$sort": { "bans": -1, "_id": 1 } },
            doc! { "$limit": i64::from(limit) },
        ],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let key = match r.get("_id") {
                Some(Bson::String(s)) => s.clone(),
                Some(Bson::Int64(n)) => asn_key(*n),
                Some(Bson::Int32(n)) => asn_key(i64::from(*n)),
                other => other.map(ToString::to_string).unwrap_or_default(),
            };
            TopEntry {
                key,
                label: match by {
                    TopBy::Asn => r.get_str("label").ok().map(str::to_owned),
                    _ => None,
                },
                bans: count(r.get("bans")),
                unique_ips: count(r.get("ips")),
            }
        })
        .collect())
}
