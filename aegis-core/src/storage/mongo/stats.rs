//! Statistics as aggregation pipelines over the summaries (`tally`): whole
//! UTC days from `ip_days`, whole 15-minute slots from `slot_bans`, and only
//! the partial day or slot at each edge of a range from `events`. The server
//! groups; only the groups come back (one row per address, country, slot, …).
//!
//! With `RUST_LOG=aegis_core::mongo=trace` each pipeline also logs how many
//! documents its `$match` stages select: the documents it reads.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::Collection;

use super::doc::{bson_time, int, ip_of_key, narrow, new_bans, time};
use super::mongo_err;
use super::tally::{Tallies, SLOTS_PER_DAY};
use crate::error::Result;
use crate::query::{DayCount, Offender, StatsQuery, Summary, TopBy, TopEntry};
use crate::storage::shared::{self, LocalDays, DAY_MS, DEFAULT_BANTIME_S, SLOT_MS};

/// Where [`run`] logs the documents each pipeline reads.
const READS: &str = "aegis_core::mongo::reads";

pub async fn run(
    coll: &Collection<Document>,
    pipeline: impl IntoIterator<Item = Document>,
) -> Result<Vec<Document>> {
    let pipeline: Vec<Document> = pipeline.into_iter().collect();
    if tracing::enabled!(target: READS, tracing::Level::TRACE) {
        let documents = documents_read(coll, &pipeline).await?;
        tracing::trace!(target: READS, collection = coll.name(), documents);
    }
    coll.aggregate(pipeline)
        .allow_disk_use(true)
        .await
        .map_err(mongo_err)?
        .try_collect()
        .await
        .map_err(mongo_err)
}

/// The documents a pipeline's leading `$match` selects, and those of each
/// `$unionWith` it reads.
async fn documents_read(coll: &Collection<Document>, pipeline: &[Document]) -> Result<u64> {
    let leading = |stages: &[Document]| {
        stages
            .first()
            .and_then(|s| s.get_document("$match").ok())
            .cloned()
            .unwrap_or_default()
    };
    let mut n = coll
        .count_documents(leading(pipeline))
        .await
        .map_err(mongo_err)?;
    for union in pipeline
        .iter()
        .filter_map(|s| s.get_document("$unionWith").ok())
    {
        let other = coll.client().database(&coll.namespace().db);
        let stages: Vec<Document> = union
            .get_array("pipeline")
            .map(|a| a.iter().filter_map(|s| s.as_document().cloned()).collect())
            .unwrap_or_default();
        n += other
            .collection::<Document>(union.get_str("coll").unwrap_or_default())
            .count_documents(leading(&stages))
            .await
            .map_err(mongo_err)?;
    }
    Ok(n)
}

/// New bans per slot among the events `matching`.
async fn slots_of_events(
    events: &Collection<Document>,
    matching: Document,
) -> Result<Vec<(i64, u64)>> {
    let rows = run(
        events,
        [
            doc! { "$match": matching },
            doc! { "$group": { "_id": "$slot", "bans": { "$sum": 1 } } },
        ],
    )
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((int(r, "_id")?, count(r.get("bans")))))
        .collect())
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

/// What the statistics read, and whether the summaries cover every ban.
pub struct Source<'a> {
    pub tallies: &'a Tallies,
    pub summarised: bool,
}

/// An event as a row of `ip_days`.
fn as_bucket() -> Document {
    doc! { "$project": {
        "ip_key": 1, "network": 1, "host": 1, "jail": 1, "country": 1, "asn": 1, "as_org": 1,
        "bans": { "$literal": 1 }, "first": "$time", "last": "$time",
    } }
}

/// New bans in `[from, to)` ranges, narrowed like `q`.
fn new_bans_in(q: &StatsQuery, ranges: &[(i64, i64)]) -> Document {
    let times: Vec<Document> = ranges
        .iter()
        .filter(|(from, to)| from < to)
        .map(|&(from, to)| doc! { "time": { "$gte": millis(from), "$lt": millis(to) } })
        .collect();
    let mut d = doc! { "kind": 0, "restored": false, "$or": times };
    narrow(&mut d, q);
    d
}

fn millis(ms: i64) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(ms)
}

impl Source<'_> {
    /// New bans in the query's range and scope as rows of `ip_days`
    /// (`bans`, `first`, `last` and what they are of): the collection to
    /// aggregate and the stages that start the pipeline.
    fn buckets(&self, q: &StatsQuery) -> (&Collection<Document>, Vec<Document>) {
        let (since, until) = (q.since.timestamp_millis(), q.until.timestamp_millis());
        match shared::whole_buckets(q, DAY_MS).filter(|_| self.summarised) {
            Some((from, to)) => {
                let mut days = doc! { "day": { "$gte": millis(from), "$lt": millis(to) } };
                narrow(&mut days, q);
                let mut stages = vec![doc! { "$match": days }];
                if since < from || to < until {
                    stages.push(doc! { "$unionWith": {
                        "coll": self.tallies.events.name(),
                        "pipeline": [
                            { "$match": new_bans_in(q, &[(since, from), (to, until)]) },
                            as_bucket(),
                        ],
                    } });
                }
                (&self.tallies.ip_days, stages)
            }
            None => (
                &self.tallies.events,
                vec![doc! { "$match": new_bans(q) }, as_bucket()],
            ),
        }
    }

    /// New bans per 15-minute slot in the query's range and scope.
    async fn slots(&self, q: &StatsQuery) -> Result<Vec<(i64, u64)>> {
        let (since, until) = (q.since.timestamp_millis(), q.until.timestamp_millis());
        let narrowed: Vec<(&str, &str)> = [
            ("host", &q.scope.host),
            ("jail", &q.scope.jail),
            ("country", &q.scope.country),
        ]
        .into_iter()
        .filter_map(|(by, v)| v.as_deref().map(|v| (by, v)))
        .collect();
        // Slots are kept per one facet at a time: two at once read events.
        let by = match narrowed[..] {
            [] => Some(("all", "")),
            [one] => Some(one),
            _ => None,
        };
        let Some(((from, to), (by, key))) = shared::whole_buckets(q, SLOT_MS)
            .zip(by)
            .filter(|_| self.summarised)
        else {
            return slots_of_events(&self.tallies.events, new_bans(q)).await;
        };
        let (first, end) = (from / SLOT_MS, to / SLOT_MS);
        let days = doc! { "by": by, "key": key, "day": {
            "$gte": millis(first.div_euclid(SLOTS_PER_DAY) * DAY_MS),
            "$lt": millis(((end - 1).div_euclid(SLOTS_PER_DAY) + 1) * DAY_MS),
        } };
        let edges = async {
            if since < from || to < until {
                let edges = new_bans_in(q, &[(since, from), (to, until)]);
                slots_of_events(&self.tallies.events, edges).await
            } else {
                Ok(Vec::new())
            }
        };
        let (days, mut slots) = tokio::try_join!(
            run(&self.tallies.slot_bans, [doc! { "$match": days }]),
            edges
        )?;
        for d in &days {
            let day = time(d, "day")?.timestamp_millis() / SLOT_MS;
            for (field, bans) in d {
                let Some(slot) = field.strip_prefix('q').and_then(|n| n.parse::<i64>().ok()) else {
                    continue;
                };
                let slot = day + slot;
                if (first..end).contains(&slot) {
                    slots.push((slot, count(Some(bans))));
                }
            }
        }
        Ok(slots)
    }

    /// Distinct values of `field` among the query's new bans (grouped, then
    /// counted, so no single document has to hold them all).
    async fn distinct(&self, q: &StatsQuery, field: &str) -> Result<u64> {
        let (coll, mut pipeline) = self.buckets(q);
        pipeline.extend([
            doc! { "$match": { field: { "$exists": true, "$ne": Bson::Null } } },
            doc! { "$group": { "_id": format!("${field}") } },
            doc! { "$count": "n" },
        ]);
        let rows = run(coll, pipeline).await?;
        Ok(rows.first().map_or(0, |d| count(d.get("n"))))
    }

    /// New bans and distinct addresses.
    async fn bans_and_addresses(&self, q: &StatsQuery) -> Result<(u64, u64)> {
        let (coll, mut pipeline) = self.buckets(q);
        pipeline.extend([
            doc! { "$group": { "_id": "$ip_key", "bans": { "$sum": "$bans" } } },
            doc! { "$group": { "_id": Bson::Null, "ips": { "$sum": 1 }, "bans": { "$sum": "$bans" } } },
        ]);
        let rows = run(coll, pipeline).await?;
        Ok(rows
            .first()
            .map_or((0, 0), |d| (count(d.get("bans")), count(d.get("ips")))))
    }

    pub async fn summary(&self, q: &StatsQuery, now: DateTime<Utc>) -> Result<Summary> {
        let ((bans, unique_ips), countries, jails, hosts, currently_banned) = tokio::try_join!(
            self.bans_and_addresses(q),
            self.distinct(q, "country"),
            self.distinct(q, "jail"),
            self.distinct(q, "host"),
            currently_banned(&self.tallies.events, q, now),
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

    pub async fn ban_count(&self, q: &StatsQuery) -> Result<u64> {
        Ok(self.slots(q).await?.iter().map(|(_, n)| n).sum())
    }

    pub async fn bans_per_day(&self, q: &StatsQuery, tz: Tz) -> Result<Vec<DayCount>> {
        let Some(mut days) = LocalDays::of(q, tz) else {
            return Ok(Vec::new());
        };
        let whole_days = StatsQuery {
            since: days.from,
            until: days.to,
            ..q.clone()
        };
        for (slot, bans) in self.slots(&whole_days).await? {
            days.add(slot, bans)?;
        }
        Ok(days.finish())
    }

    pub async fn top_offenders(&self, q: &StatsQuery, limit: u32) -> Result<Vec<Offender>> {
        let (coll, mut pipeline) = self.buckets(q);
        pipeline.extend([
            doc! { "$sort": { "last": 1 } },
            doc! { "$group": {
                "_id": "$ip_key",
                "bans": { "$sum": "$bans" },
                "first": { "$min": "$first" },
                "last": { "$max": "$last" },
                "jails": { "$addToSet": "$jail" },
                "country": { "$last": "$country" },
            } },
            doc! { "$sort": { "bans": -1, "last": -1, "_id": 1 } },
            doc! { "$limit": i64::from(limit) },
        ]);
        let rows = run(coll, pipeline).await?;
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

    pub async fn top(&self, q: &StatsQuery, by: TopBy, limit: u32) -> Result<Vec<TopEntry>> {
        let field = match by {
            TopBy::Country => "country",
            TopBy::Jail => "jail",
            TopBy::Host => "host",
            TopBy::Asn => "asn",
            TopBy::Network => "network",
        };
        let (coll, mut pipeline) = self.buckets(q);
        pipeline.extend([
            doc! { "$match": { field: { "$exists": true, "$ne": Bson::Null } } },
            doc! { "$group": {
                "_id": { "key": format!("${field}"), "ip": "$ip_key" },
                "bans": { "$sum": "$bans" },
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
        ]);
        let rows = run(coll, pipeline).await?;
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
/// kept on insert; events stored before it was kept are read too), then the
/// later bans and unbans of those addresses: the cost follows the bans in
/// force and the longest of them, not the history.
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
        let bantime = int(c, "bantime");
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
    // Only what came after the oldest ban in force can end one.
    let oldest = active.values().min().copied().unwrap_or(now);
    let mut later = doc! { "ip_key": { "$in": ips }, "time": { "$gte": bson_time(oldest) } };
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

/// The ranking key of an autonomous system, as the SQLite store makes it.
fn asn_key(asn: i64) -> String {
    format!("AS{asn}")
}
