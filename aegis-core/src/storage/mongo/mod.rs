//! The MongoDB backend, for many hosts reporting into one store: local or
//! remote URIs, replica sets, Atlas (`mongodb+srv://`).
//!
//! One `events` collection holds every event with its geolocation; summaries
//! kept on insert (`tally`) hold new bans per address and day and per
//! 15-minute slot; statistics are aggregation pipelines over them and the
//! events at a range's edges, run by the server, grouping before anything
//! comes back. `geo_cache` keeps the online provider's answers.

mod decisions;
mod doc;
mod stats;
mod tally;

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, IndexModel};

use super::{DecisionLog, GeoCache, Storage, StorageUrl};
use crate::decision::{AgentReport, Applied, Decision};
use crate::error::{Error, Result};
use crate::event::{BanEvent, Geo};
use crate::query::{
    BatchOutcome, DayCount, EventFilter, Offender, Order, Page, StatsQuery, StoredEvent, Summary,
    TopBy, TopEntry,
};
use doc::{from_doc, key_of};
use stats::Source;
use tally::Tallies;

/// How long to look for a server, and to connect to one, unless the URI says
/// otherwise: ingestion must never hang on a dead server.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The database when the URI names none.
const DEFAULT_DATABASE: &str = "aegis";
/// The duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

/// A store in a MongoDB database.
#[derive(Clone)]
pub struct MongoStorage {
    events: Collection<Document>,
    tallies: Arc<Tallies>,
    geo_cache: Collection<Document>,
    decisions: decisions::Decisions,
    database: String,
    shown: String,
}

impl fmt::Debug for MongoStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MongoStorage({})", self.shown)
    }
}

/// A driver error as an Aegis error; the message never carries the URI.
pub(crate) fn mongo_err(e: mongodb::error::Error) -> Error {
    match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => Error::Unavailable(format!("MongoDB: {e}")),
        ErrorKind::Authentication { .. } => Error::Config(format!(
            "MongoDB refused the credentials ({e}); check the user, password and authSource in the storage URL"
        )),
        ErrorKind::InvalidArgument { .. } => Error::Config(format!("MongoDB: {e}")),
        _ => Error::Storage(format!("MongoDB: {e}")),
    }
}

impl MongoStorage {
    /// Connects, checks that the server answers, and creates the indexes.
    ///
    /// The driver's messages may quote the URI's options: every secret in them
    /// is hidden before an error leaves.
    pub async fn connect(url: &StorageUrl) -> Result<Self> {
        Self::open(url)
            .await
            .map_err(|e| e.map_message(|m| url.scrub(&m)))
    }

    async fn open(url: &StorageUrl) -> Result<Self> {
        let mut options = ClientOptions::parse(url.expose()).await.map_err(|e| {
            Error::Config(format!(
                "storage URL {url} is not a MongoDB URI MongoDB accepts ({})",
                e.kind
            ))
        })?;
        options.server_selection_timeout.get_or_insert(TIMEOUT);
        options.connect_timeout.get_or_insert(TIMEOUT);
        options.app_name.get_or_insert_with(|| "aegis".into());
        let name = options
            .default_database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.into());
        let client = Client::with_options(options).map_err(mongo_err)?;
        let db = client.database(&name);
        let events = db.collection("events");
        let store = MongoStorage {
            tallies: Arc::new(Tallies::new(&db, events.clone())),
            events,
            geo_cache: db.collection("geo_cache"),
            decisions: decisions::Decisions::new(&db),
            database: name,
            shown: url.to_string(),
        };
        // Creating the indexes is the first round trip: it also tells whether the
        // server answers, so the ban path pays for no separate ping.
        store.create_indexes().await.map_err(|e| with_url(url, e))?;
        Ok(store)
    }

    /// Drops the whole database.
    pub(crate) async fn drop_database(&self) -> Result<()> {
        self.events
            .client()
            .database(&self.database)
            .drop()
            .await
            .map_err(mongo_err)
    }

    /// One index per filter and statistic; creating an existing index is a no-op.
    async fn create_indexes(&self) -> Result<()> {
        let index = |keys: Document| IndexModel::builder().keys(keys).build();
        let events = self.events.create_indexes([
            index(doc! { "time": 1 }),
            index(doc! { "ip_key": 1, "time": 1 }),
            index(doc! { "kind": 1, "time": 1 }),
            index(doc! { "host": 1, "time": 1 }),
            index(doc! { "jail": 1, "time": 1 }),
            index(doc! { "country": 1, "time": 1 }),
            index(doc! { "network": 1 }),
            index(doc! { "kind": 1, "expires": 1 }),
        ]);
        let unique = IndexOptions::builder().unique(true).build();
        let geo_cache = self.geo_cache.create_indexes([IndexModel::builder()
            .keys(doc! { "ip": 1 })
            .options(unique)
            .build()]);
        let db = self.events.client().database(&self.database);
        let summaries = Tallies::indexes().map(|(coll, keys, sparse)| {
            let options = IndexOptions::builder().sparse(sparse).build();
            let model = IndexModel::builder().keys(keys).options(options).build();
            let coll = db.collection::<Document>(coll);
            async move { coll.create_index(model).await.map_err(mongo_err) }
        });
        tokio::try_join!(
            async { events.await.map_err(mongo_err) },
            async { geo_cache.await.map_err(mongo_err) },
            futures_util::future::try_join_all(summaries),
            self.decisions.create_indexes(),
        )?;
        Ok(())
    }

    /// What statistics read: the summaries once they hold every ban.
    async fn stats(&self) -> Result<Source<'_>> {
        Ok(Source {
            tallies: &self.tallies,
            summarised: self.tallies.ready().await?,
        })
    }

    /// Events matching `filter` in `sort` order: one page, or all of them.
    async fn find(
        &self,
        filter: Document,
        sort: Document,
        page: Option<Page>,
    ) -> Result<Vec<StoredEvent>> {
        let mut find = self.events.find(filter).sort(sort);
        if let Some(page) = page {
            find = find
                .skip(page.offset)
                .limit(i64::from(page.limit.min(Page::MAX_LIMIT)));
        }
        let docs: Vec<Document> = find
            .await
            .map_err(mongo_err)?
            .try_collect()
            .await
            .map_err(mongo_err)?;
        docs.iter().map(from_doc).collect()
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    matches!(
        e.kind.as_ref(),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY
    )
}

fn with_url(url: &StorageUrl, e: Error) -> Error {
    match e {
        Error::Unavailable(m) => Error::Unavailable(format!("{url}: {m}")),
        other => other,
    }
}

#[async_trait]
impl Storage for MongoStorage {
    async fn record_batch(&self, events: &[BanEvent]) -> Result<BatchOutcome> {
        let mut seen = HashSet::new();
        let unique: Vec<&BanEvent> = events.iter().filter(|e| seen.insert(e.id())).collect();
        let repeated = (events.len() - unique.len()) as u64;
        if unique.is_empty() {
            return Ok(BatchOutcome {
                inserted: 0,
                duplicates: repeated,
            });
        }
        let docs: Vec<Document> = unique.iter().map(|e| doc::to_doc(e)).collect();
        // Unordered: one stored event does not stop the others.
        let stored = self
            .tallies
            .insert_and_fold(&unique, docs, |docs| async {
                match self.events.insert_many(docs).ordered(false).await {
                    Ok(_) => Ok(Vec::new()),
                    Err(e) => tally::duplicates(e),
                }
            })
            .await?;
        let duplicates = stored.len() as u64;
        Ok(BatchOutcome {
            inserted: unique.len() as u64 - duplicates,
            duplicates: duplicates + repeated,
        })
    }

    async fn events(&self, filter: &EventFilter, page: Page) -> Result<Vec<StoredEvent>> {
        let dir = match page.order {
            Order::Asc => 1,
            Order::Desc => -1,
        };
        let mut matching = doc::event_filter(filter);
        if let Some(after) = page.after {
            let beyond = if dir == 1 { "$gt" } else { "$lt" };
            let t = doc::bson_time(after.time);
            matching = doc! { "$and": [matching, { "$or": [
                { "time": { beyond: t } },
                { "time": t, "_id": { beyond: doc::object_id(after.id) } },
            ] }] };
        }
        self.find(matching, doc! { "time": dir, "_id": dir }, Some(page))
            .await
    }

    async fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        self.events
            .count_documents(doc::event_filter(filter))
            .await
            .map_err(mongo_err)
    }

    async fn summary(&self, query: &StatsQuery) -> Result<Summary> {
        self.stats().await?.summary(query, Utc::now()).await
    }

    async fn ban_count(&self, query: &StatsQuery) -> Result<u64> {
        self.stats().await?.ban_count(query).await
    }

    async fn bans_per_day(&self, query: &StatsQuery, tz: Tz) -> Result<Vec<DayCount>> {
        self.stats().await?.bans_per_day(query, tz).await
    }

    async fn top_offenders(&self, query: &StatsQuery, limit: u32) -> Result<Vec<Offender>> {
        self.stats().await?.top_offenders(query, limit).await
    }

    async fn top(&self, query: &StatsQuery, by: TopBy, limit: u32) -> Result<Vec<TopEntry>> {
        self.stats().await?.top(query, by, limit).await
    }

    async fn ip_history(&self, ip: IpAddr) -> Result<Vec<StoredEvent>> {
        self.find(
            doc! { "ip_key": key_of(ip) },
            doc! { "time": 1, "_id": 1 },
            None,
        )
        .await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        let deleted = self
            .events
            .delete_many(doc! { "time": { "$lt": doc::bson_time(before) } })
            .await
            .map_err(mongo_err)?
            .deleted_count;
        self.tallies.pruned(before).await?;
        Ok(deleted)
    }

    async fn set_geo(&self, ip: IpAddr, geo: &Geo) -> Result<u64> {
        let mut update = doc! {};
        let set = doc::geo_fields(geo);
        let unset: Document = doc::GEO_FIELDS
            .iter()
            .filter(|f| !set.contains_key(**f))
            .map(|f| (f.to_string(), "".into()))
            .collect();
        if !set.is_empty() {
            update.insert("$set", set.clone());
        }
        if !unset.is_empty() {
            update.insert("$unset", unset);
        }
        // The summarised bans (or those being folded), as they were.
        let before = self
            .find(doc! { "ip_key": key_of(ip), "t": true }, doc! {}, None)
            .await?;
        let changed = self
            .events
            .update_many(doc! { "ip_key": key_of(ip) }, update)
            .await
            .map_err(mongo_err)?
            .modified_count;
        let before: Vec<BanEvent> = before.into_iter().map(|s| s.event).collect();
        self.tallies.relocated(ip, &before, &set).await?;
        Ok(changed)
    }

    async fn distinct_ips(&self, after: Option<IpAddr>, limit: u32) -> Result<Vec<IpAddr>> {
        let after = after.map(key_of).unwrap_or_default();
        let pipeline = [
            doc! { "$match": { "ip_key": { "$gt": after } } },
            doc! { "$group": { "_id": "$ip_key" } },
            doc! { "$sort": { "_id": 1 } },
            doc! { "$limit": i64::from(limit) },
        ];
        let rows = stats::run(&self.events, pipeline).await?;
        rows.iter()
            .map(|d| doc::ip_of_key(d.get_str("_id").unwrap_or_default()))
            .collect()
    }

    async fn maintain(&self) -> Result<()> {
        self.tallies.catch_up().await.map(drop)
    }

    fn geo_cache(&self) -> &dyn GeoCache {
        self
    }

    fn decision_log(&self) -> &dyn DecisionLog {
        self
    }

    async fn state(&self, name: &str) -> Result<Option<serde_json::Value>> {
        self.decisions.state(name).await
    }

    async fn set_state(&self, name: &str, value: &serde_json::Value) -> Result<()> {
        self.decisions.set_state(name, value).await
    }
}

#[async_trait]
impl DecisionLog for MongoStorage {
    async fn decide(&self, decision: &Decision) -> Result<Decision> {
        self.decisions.decide(decision).await
    }

    async fn after(&self, after: u64, limit: u32) -> Result<Vec<Decision>> {
        self.decisions.after(after, limit).await
    }

    async fn on(&self, ip: IpAddr) -> Result<Vec<Decision>> {
        self.decisions.on(ip).await
    }

    async fn made_from(&self, host: &str, since: DateTime<Utc>) -> Result<u64> {
        self.decisions.made_from(host, since).await
    }

    async fn record_applied(&self, applied: &[Applied]) -> Result<()> {
        self.decisions.record_applied(applied).await
    }

    async fn applied(&self, decisions: &[u64]) -> Result<Vec<Applied>> {
        self.decisions.applied(decisions).await
    }

    async fn report_agent(&self, report: &AgentReport) -> Result<()> {
        self.decisions.report_agent(report).await
    }

    async fn agents(&self) -> Result<Vec<AgentReport>> {
        self.decisions.agents().await
    }
}

#[async_trait]
impl GeoCache for MongoStorage {
    async fn cached_geo(&self, ips: &[IpAddr]) -> Result<Vec<(IpAddr, Option<Geo>)>> {
        let keys: Vec<String> = ips.iter().map(|ip| key_of(*ip)).collect();
        let docs: Vec<Document> = self
            .geo_cache
            .find(doc! { "ip": { "$in": keys } })
            .await
            .map_err(mongo_err)?
            .try_collect()
            .await
            .map_err(mongo_err)?;
        docs.iter()
            .map(|d| {
                let ip = doc::ip_of_key(d.get_str("ip").unwrap_or_default())?;
                let geo = match d.get_document("geo") {
                    Ok(g) => Some(
                        mongodb::bson::from_document::<Geo>(g.clone())
                            .map_err(|e| Error::Storage(format!("corrupt cached geo: {e}")))?,
                    ),
                    Err(_) => None,
                };
                Ok((ip, geo))
            })
            .collect()
    }

    async fn cache_geo(&self, answers: &[(IpAddr, Option<Geo>)]) -> Result<()> {
        for (ip, geo) in answers {
            let mut set = doc! { "ip": key_of(*ip), "at": doc::bson_time(Utc::now()) };
            let mut update = Document::new();
            match geo {
                Some(g) => {
                    set.insert("geo", doc::geo_fields(g));
                }
                None => {
                    update.insert("$unset", doc! { "geo": "" });
                }
            }
            update.insert("$set", set.clone());
            let filter = doc! { "ip": key_of(*ip) };
            let upsert = || {
                self.geo_cache
                    .update_one(filter.clone(), update.clone())
                    .upsert(true)
            };
            match upsert().await {
                // Two hosts caching one address at once: the loser's insert hits the
                // unique index; its update now finds the winner's document.
                Err(e) if is_duplicate_key(&e) => upsert().await.map(drop).map_err(mongo_err)?,
                other => other.map(drop).map_err(mongo_err)?,
            }
        }
        Ok(())
    }
}
