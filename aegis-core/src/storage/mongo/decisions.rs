//! Decisions and agents' reports in MongoDB.
//!
//! A decision's `_id` is its id (big-endian in the ObjectId's last 8 bytes), so
//! the `_id` index, which every MongoDB enforces, orders them and refuses a
//! second decision under the same id: a writer takes the id after the highest
//! stored and tries the next on a clash. As id `n + 1` is only taken once `n` is
//! visible, ids become visible in order and a reader that has seen `n` misses
//! nothing by asking for what follows it. A keyed decision is claimed first in
//! `decision_keys` (again by `_id`), so two writers never both store it.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{self, doc, oid::ObjectId, Document};
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};

use super::doc::{bson_time, int, key_of};
use super::tally::bucket_id;
use super::{is_duplicate_key, mongo_err};
use crate::decision::{AgentReport, Applied, Decision, Origin};
use crate::error::{Error, Result};
use crate::ipkey::{hex, network_range};

/// How long a writer whose key another writer claimed waits for that decision.
const CLAIMED_WAIT: Duration = Duration::from_secs(5);
/// Clashes on the next id a writer accepts before it reports the store busy.
const MAX_CLASHES: usize = 100;

/// The collections.
#[derive(Clone)]
pub(super) struct Decisions {
    decisions: Collection<Document>,
    keys: Collection<Document>,
    agents: Collection<Document>,
    applied: Collection<Document>,
    state: Collection<Document>,
}

fn id_of(id: u64) -> ObjectId {
    let mut bytes = [0; 12];
    bytes[4..].copy_from_slice(&id.to_be_bytes());
    ObjectId::from_bytes(bytes)
}

fn bson_err(e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("MongoDB: a decision could not be converted: {e}"))
}

impl Decisions {
    pub fn new(db: &Database) -> Self {
        Decisions {
            decisions: db.collection("decisions"),
            keys: db.collection("decision_keys"),
            agents: db.collection("agents"),
            applied: db.collection("decision_applied"),
            state: db.collection("service_state"),
        }
    }

    pub async fn create_indexes(&self) -> Result<()> {
        let sparse = IndexOptions::builder().sparse(true).build();
        let models = [
            IndexModel::builder().keys(doc! { "seq": 1 }).build(),
            IndexModel::builder()
                .keys(doc! { "key": 1 })
                .options(sparse.clone())
                .build(),
            IndexModel::builder()
                .keys(doc! { "first_key": 1, "last_key": 1 })
                .build(),
            IndexModel::builder()
                .keys(doc! { "policy_host": 1, "created": 1 })
                .options(sparse)
                .build(),
        ];
        self.decisions
            .create_indexes(models)
            .await
            .map_err(mongo_err)?;
        Ok(())
    }

    pub async fn decide(&self, decision: &Decision) -> Result<Decision> {
        if let Some(key) = &decision.key {
            if let Some(stored) = self.keyed(key).await? {
                return Ok(stored);
            }
            let claim = doc! { "_id": bucket_id(&[key.as_bytes()]), "key": key };
            match self.keys.insert_one(claim).await {
                Ok(_) => {}
                Err(e) if is_duplicate_key(&e) => return self.claimed(key).await,
                Err(e) => return Err(mongo_err(e)),
            }
        }
        let mut stored = decision.clone();
        stored.id = 0;
        let body = bson::to_document(&stored).map_err(bson_err)?;
        let (first, last) = network_range(decision.target);
        for _ in 0..MAX_CLASHES {
            let id = self.last_id().await? + 1;
            let mut doc = doc! {
                "_id": id_of(id),
                "seq": id as i64,
                "first_key": hex(&first),
                "last_key": hex(&last),
                "created": bson_time(decision.created),
                "body": body.clone(),
            };
            if let Some(key) = &decision.key {
                doc.insert("key", key);
            }
            if let Origin::Policy { host, .. } = &decision.origin {
                doc.insert("policy_host", host);
            }
            match self.decisions.insert_one(doc).await {
                Ok(_) => {
                    stored.id = id;
                    return Ok(stored);
                }
                Err(e) if is_duplicate_key(&e) => continue,
                Err(e) => return Err(mongo_err(e)),
            }
        }
        Err(Error::Unavailable(format!(
            "MongoDB: {MAX_CLASHES} writers at once took the next decision id; try again"
        )))
    }

    async fn last_id(&self) -> Result<u64> {
        let last = self
            .decisions
            .find_one(doc! {})
            .sort(doc! { "seq": -1 })
            .projection(doc! { "seq": 1 })
            .await
            .map_err(mongo_err)?;
        Ok(last.and_then(|d| int(&d, "seq")).unwrap_or(0) as u64)
    }

    async fn keyed(&self, key: &str) -> Result<Option<Decision>> {
        let found = self
            .decisions
            .find_one(doc! { "key": key })
            .await
            .map_err(mongo_err)?;
        found.as_ref().map(parse).transpose()
    }

    /// The decision another writer claimed `key` for, once it is stored.
    async fn claimed(&self, key: &str) -> Result<Decision> {
        let deadline = tokio::time::Instant::now() + CLAIMED_WAIT;
        loop {
            if let Some(stored) = self.keyed(key).await? {
                return Ok(stored);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Storage(format!(
                    "MongoDB: the decision with key {key:?} was claimed by a writer that never stored it"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn after(&self, after: u64, limit: u32) -> Result<Vec<Decision>> {
        self.select(doc! { "seq": { "$gt": after as i64 } }, Some(limit))
            .await
    }

    pub async fn on(&self, ip: IpAddr) -> Result<Vec<Decision>> {
        let key = key_of(ip);
        self.select(
            doc! { "first_key": { "$lte": &key }, "last_key": { "$gte": &key } },
            None,
        )
        .await
    }

    async fn select(&self, filter: Document, limit: Option<u32>) -> Result<Vec<Decision>> {
        let mut find = self.decisions.find(filter).sort(doc! { "seq": 1 });
        if let Some(limit) = limit {
            find = find.limit(i64::from(limit));
        }
        let docs: Vec<Document> = find
            .await
            .map_err(mongo_err)?
            .try_collect()
            .await
            .map_err(mongo_err)?;
        docs.iter().map(parse).collect()
    }

    pub async fn made_from(&self, host: &str, since: DateTime<Utc>) -> Result<u64> {
        self.decisions
            .count_documents(doc! { "policy_host": host, "created": { "$gte": bson_time(since) } })
            .await
            .map_err(mongo_err)
    }

    pub async fn record_applied(&self, applied: &[Applied]) -> Result<()> {
        for a in applied {
            let id = bucket_id(&[&a.decision.to_be_bytes(), a.host.as_bytes()]);
            let mut doc = bson::to_document(a).map_err(bson_err)?;
            doc.insert("_id", id);
            doc.insert("decision", a.decision as i64);
            self.applied
                .replace_one(doc! { "_id": id }, doc)
                .upsert(true)
                .await
                .map_err(mongo_err)?;
        }
        Ok(())
    }

    pub async fn applied(&self, decisions: &[u64]) -> Result<Vec<Applied>> {
        let ids: Vec<i64> = decisions.iter().map(|d| *d as i64).collect();
        let docs: Vec<Document> = self
            .applied
            .find(doc! { "decision": { "$in": ids } })
            .sort(doc! { "decision": 1, "host": 1 })
            .await
            .map_err(mongo_err)?
            .try_collect()
            .await
            .map_err(mongo_err)?;
        docs.into_iter()
            .map(|mut d| {
                d.remove("_id");
                let decision = int(&d, "decision").ok_or_else(|| bson_err("no decision"))?;
                d.insert("decision", decision);
                bson::from_document(d).map_err(bson_err)
            })
            .collect()
    }

    /// Service state lives here too: small documents found by name, like the agents'.
    pub async fn state(&self, name: &str) -> Result<Option<serde_json::Value>> {
        let found = self
            .state
            .find_one(doc! { "_id": bucket_id(&[name.as_bytes()]) })
            .await
            .map_err(mongo_err)?;
        found
            .map(|d| {
                let body = d.get_str("body").map_err(bson_err)?;
                serde_json::from_str(body).map_err(bson_err)
            })
            .transpose()
    }

    pub async fn set_state(&self, name: &str, value: &serde_json::Value) -> Result<()> {
        let id = bucket_id(&[name.as_bytes()]);
        self.state
            .replace_one(
                doc! { "_id": id },
                doc! { "_id": id, "name": name, "body": value.to_string() },
            )
            .upsert(true)
            .await
            .map_err(mongo_err)?;
        Ok(())
    }

    pub async fn report_agent(&self, report: &AgentReport) -> Result<()> {
        let mut doc = bson::to_document(report).map_err(bson_err)?;
        doc.insert("_id", bucket_id(&[report.host.as_bytes()]));
        self.agents
            .replace_one(doc! { "_id": bucket_id(&[report.host.as_bytes()]) }, doc)
            .upsert(true)
            .await
            .map_err(mongo_err)?;
        Ok(())
    }

    pub async fn agents(&self) -> Result<Vec<AgentReport>> {
        let docs: Vec<Document> = self
            .agents
            .find(doc! {})
            .sort(doc! { "host": 1 })
            .await
            .map_err(mongo_err)?
            .try_collect()
            .await
            .map_err(mongo_err)?;
        docs.into_iter()
            .map(|mut d| {
                d.remove("_id");
                bson::from_document(d).map_err(bson_err)
            })
            .collect()
    }
}

fn parse(doc: &Document) -> Result<Decision> {
    let id = int(doc, "seq").ok_or_else(|| bson_err("no seq"))? as u64;
    let body = doc.get_document("body").map_err(bson_err)?;
    let mut decision: Decision = bson::from_document(body.clone()).map_err(bson_err)?;
    decision.id = id;
    Ok(decision)
}
