//! Summaries kept on insert, so that a statistic reads the events at its
//! range's edges only, never those inside it:
//!
//! - `ip_days`: new bans per UTC day, address, host, jail and location, with
//!   the first and last ban (what rankings, offenders and distinct counts need);
//! - `slot_bans`: new bans per 15-minute slot, one document per UTC day (slot
//!   `n` of the day in field `q<n>`), over everything (`by: "all"`) and per
//!   host, jail and country (what charts and counts need, in any time zone).
//!
//! A writer folds only the events its own insert stored, so a replayed event
//! adds nothing. The insert and the fold are two writes, so each folded event
//! is first marked `fold: {w, s, at}` (the writer and its batch's sequence
//! number) and unmarked once folded; every summary document remembers, per
//! writer, the last batch it took (`w.<writer>`), and a fold updates only
//! documents that have not taken its batch. A batch interrupted half-way is
//! therefore folded again — by its writer before its next batch, or, once its
//! mark is [`STALE_AFTER`] old, by whichever process maintains the store — and
//! each document takes it exactly once. Events that carry `t: true` belong to
//! the summaries (folded or being folded); events stored by versions that kept
//! no summaries lack it and are folded once by [`build`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::{Collection, Database};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::doc::{bson_time, from_doc, int, key_of};
use super::mongo_err;
use crate::error::{Error, Result};
use crate::event::BanEvent;
use crate::query::network_of;
use crate::storage::shared::{DAY_MS, SLOT_MS};

/// How old a batch's mark must be before another process folds it: far
/// longer than any insert takes, so that no live writer's batch is folded
/// while part of it is still being stored.
pub const STALE_AFTER: chrono::Duration = chrono::Duration::minutes(10);
/// Events read per step when folding stale or old events.
const STEP: i64 = 10_000;
/// Updates per `update` command.
const UPDATES_PER_COMMAND: usize = 100;
/// The `_id` of the document in `meta` that says every event is summarised.
const READY: &str = "000000000000000000000001";

/// The summary collections, and this process's identity as a writer.
#[derive(Debug)]
pub struct Tallies {
    db: Database,
    pub events: Collection<Document>,
    pub ip_days: Collection<Document>,
    pub slot_bans: Collection<Document>,
    meta: Collection<Document>,
    /// This process's writer name in the guards (`w.<writer>`).
    writer: String,
    /// The next batch number; held while folding, so this writer's batches
    /// reach every document in order. `Some` batch left unfinished goes first.
    batches: Mutex<Batches>,
    /// Whether every stored ban is summarised (once true, it stays true).
    ready: AtomicBool,
}

#[derive(Debug)]
struct Batches {
    next: i64,
    unfinished: Option<i64>,
}

/// One writer's batch: the mark its events carry while they are folded.
#[derive(Debug, Clone, Copy)]
struct Batch<'a> {
    writer: &'a str,
    seq: i64,
}

impl Batch<'_> {
    fn mark(&self, at: DateTime<Utc>) -> Document {
        doc! { "w": self.writer, "s": self.seq, "at": bson_time(at) }
    }

    fn marked(&self) -> Document {
        doc! { "fold.w": self.writer, "fold.s": self.seq }
    }

    /// Documents that have not taken this batch yet.
    fn guard(&self, id: &Bson) -> Document {
        doc! { "_id": id.clone(), format!("w.{}", self.writer): { "$not": { "$gte": self.seq } } }
    }
}

impl Tallies {
    pub fn new(db: &Database, events: Collection<Document>) -> Self {
        Tallies {
            db: db.clone(),
            events,
            ip_days: db.collection("ip_days"),
            slot_bans: db.collection("slot_bans"),
            meta: db.collection("meta"),
            writer: format!("w{}", ObjectId::new().to_hex()),
            batches: Mutex::new(Batches {
                next: 1,
                unfinished: None,
            }),
            ready: AtomicBool::new(false),
        }
    }

    /// The summaries' indexes: (collection, keys, sparse).
    pub fn indexes() -> [(&'static str, Document, bool); 5] {
        [
            ("ip_days", doc! { "day": 1 }, false),
            ("ip_days", doc! { "ip_key": 1, "day": 1 }, false),
            ("slot_bans", doc! { "by": 1, "key": 1, "day": 1 }, false),
            // Only events being folded carry a mark: these stay small.
            ("events", doc! { "fold.w": 1, "fold.s": 1 }, true),
            ("events", doc! { "fold.at": 1 }, true),
        ]
    }

    /// Marks the new bans among `docs` as this writer's next batch, has
    /// `insert` store them, then folds the new bans it stored. `insert`
    /// returns the positions of the documents that were already stored.
    pub async fn insert_and_fold<F, Fut>(
        &self,
        events: &[&BanEvent],
        mut docs: Vec<Document>,
        insert: F,
    ) -> Result<Vec<usize>>
    where
        F: FnOnce(Vec<Document>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<usize>>>,
    {
        let mut batches = self.batches.lock().await;
        let batch = self.next_batch(&mut batches).await?;
        let mark = batch.mark(Utc::now());
        for (doc, event) in docs.iter_mut().zip(events) {
            if event.is_new_ban() {
                doc.insert("t", true);
                doc.insert("fold", mark.clone());
            }
        }
        // Unfinished until folded: an insert that fails may have stored some.
        batches.unfinished = Some(batch.seq);
        let stored = insert(docs).await?;
        let mut fresh: Vec<&BanEvent> = Vec::with_capacity(events.len());
        let mut already = stored.iter().peekable();
        for (i, e) in events.iter().enumerate() {
            if already.next_if_eq(&&i).is_none() && e.is_new_ban() {
                fresh.push(e);
            }
        }
        self.fold(&fresh, batch).await?;
        batches.unfinished = None;
        Ok(stored)
    }

    /// This writer's next batch, once any it left unfinished is folded: a
    /// document must take this writer's batches in order.
    async fn next_batch(&self, batches: &mut Batches) -> Result<Batch<'_>> {
        if let Some(seq) = batches.unfinished {
            self.refold(Batch {
                writer: &self.writer,
                seq,
            })
            .await?;
            batches.unfinished = None;
        }
        batches.next += 1;
        Ok(Batch {
            writer: &self.writer,
            seq: batches.next - 1,
        })
    }

    /// Folds the events still marked as `batch`, and unmarks them.
    async fn refold(&self, batch: Batch<'_>) -> Result<()> {
        let events = self.events_matching(batch.marked()).await?;
        self.fold(&events.iter().collect::<Vec<_>>(), batch).await
    }

    async fn events_matching(&self, filter: Document) -> Result<Vec<BanEvent>> {
        let docs: Vec<Document> = self
            .events
            .find(filter)
            .await
            .map_err(mongo_err)?
            .try_collect()
            .await
            .map_err(mongo_err)?;
        docs.iter().map(|d| from_doc(d).map(|s| s.event)).collect()
    }

    /// Adds `events` to the summaries as `batch`, then unmarks them.
    async fn fold(&self, events: &[&BanEvent], batch: Batch<'_>) -> Result<()> {
        let mut days: HashMap<ObjectId, IpDay> = HashMap::new();
        let mut slots: HashMap<ObjectId, DaySlots> = HashMap::new();
        for e in events {
            let day = IpDay::of(e);
            days.entry(day.id()).and_modify(|d| d.add(e)).or_insert(day);
            for s in DaySlots::of(e) {
                add_slots(&mut slots, s);
            }
        }
        // Most address-days are new; a day's slots exist after its first ban.
        let days = days.values().map(IpDay::summary);
        self.apply(&self.ip_days, days, batch, Fresh::Likely)
            .await?;
        let slots = slots.values().map(DaySlots::summary);
        self.apply(&self.slot_bans, slots, batch, Fresh::Unlikely)
            .await?;
        self.events
            .update_many(batch.marked(), doc! { "$unset": { "fold": "" } })
            .await
            .map_err(mongo_err)?;
        Ok(())
    }

    /// Adds summary contributions to `coll` once each: documents are
    /// created (by an insert tried first, when they are `Likely` new) or
    /// updated if they have not taken `batch`.
    async fn apply(
        &self,
        coll: &Collection<Document>,
        parts: impl Iterator<Item = Summary>,
        batch: Batch<'_>,
        fresh: Fresh,
    ) -> Result<()> {
        let parts: Vec<Summary> = parts.collect();
        if parts.is_empty() {
            return Ok(());
        }
        let mut pending: Vec<&Summary> = parts.iter().collect();
        if fresh == Fresh::Likely {
            let docs = parts.iter().map(|p| p.as_new(batch)).collect::<Vec<_>>();
            let existing = match coll.insert_many(docs).ordered(false).await {
                Ok(_) => return Ok(()),
                Err(e) => duplicates(e)?,
            };
            pending = existing.iter().map(|&i| &parts[i]).collect();
        }
        // Twice: an upsert that inserts while another writer creates the same
        // document fails as a duplicate once; the second time a duplicate
        // means the document has taken this batch already.
        for _ in 0..2 {
            let mut again = Vec::new();
            for chunk in pending.chunks(UPDATES_PER_COMMAND) {
                let updates: Vec<Document> = chunk
                    .iter()
                    .map(|p| {
                        doc! { "q": batch.guard(&p.id), "u": p.as_update(batch), "upsert": true }
                    })
                    .collect();
                let reply = self
                    .db
                    .run_command(doc! {
                        "update": coll.name(),
                        "updates": updates,
                        "ordered": false,
                    })
                    .await
                    .map_err(mongo_err)?;
                for failure in reply.get_array("writeErrors").into_iter().flatten() {
                    let failure = failure.as_document().cloned().unwrap_or_default();
                    let index = failure.get_i32("index").unwrap_or(-1);
                    if !is_duplicate(&failure) || index < 0 {
                        return Err(Error::Storage(format!(
                            "MongoDB refused a summary update: {}",
                            failure.get_str("errmsg").unwrap_or("no reason given")
                        )));
                    }
                    if let Some(p) = chunk.get(index as usize) {
                        again.push(*p);
                    }
                }
            }
            pending = again;
        }
        Ok(())
    }

    /// Whether every stored ban is in the summaries: true for a store created
    /// by this version, and for an older one once [`build`] has run.
    pub async fn ready(&self) -> Result<bool> {
        if self.ready.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let marked = self
            .meta
            .find_one(doc! { "_id": oid(READY) })
            .await
            .map_err(mongo_err)?
            .is_some();
        let ready = marked || self.unsummarised(1).await?.is_empty() && self.mark_ready().await?;
        self.ready.store(ready, Ordering::Relaxed);
        Ok(ready)
    }

    async fn mark_ready(&self) -> Result<bool> {
        match self.meta.insert_one(doc! { "_id": oid(READY) }).await {
            Err(e) if !super::is_duplicate_key(&e) => Err(mongo_err(e)),
            _ => Ok(true),
        }
    }

    /// New bans stored by a version that kept no summaries, in id order.
    async fn unsummarised(&self, limit: i64) -> Result<Vec<Bson>> {
        let docs: Vec<Document> = self
            .events
            .find(doc! { "kind": 0, "restored": false, "t": { "$exists": false } })
            .projection(doc! { "_id": 1 })
            .sort(doc! { "_id": 1 })
            .limit(limit)
            .await
            .map_err(mongo_err)?
            .try_collect()
            .await
            .map_err(mongo_err)?;
        Ok(docs
            .into_iter()
            .filter_map(|mut d| d.remove("_id"))
            .collect())
    }

    /// Folds what no writer finished: batches marked more than
    /// [`STALE_AFTER`] ago (their writer stopped half-way), then events older
    /// than the summaries. Returns how many events it folded.
    pub async fn catch_up(&self) -> Result<u64> {
        let mut folded = self.fold_stale().await?;
        if !self.ready().await? {
            folded += self.build().await?;
        }
        Ok(folded)
    }

    async fn fold_stale(&self) -> Result<u64> {
        let cutoff = bson_time(Utc::now() - STALE_AFTER);
        let marks: Vec<Document> = self
            .events
            .aggregate([
                doc! { "$match": { "fold.at": { "$lt": cutoff } } },
                doc! { "$group": { "_id": { "w": "$fold.w", "s": "$fold.s" }, "n": { "$sum": 1 } } },
                doc! { "$sort": { "_id.s": 1 } },
            ])
            .await
            .map_err(mongo_err)?
            .try_collect()
            .await
            .map_err(mongo_err)?;
        let mut folded = 0;
        for m in &marks {
            let id = m.get_document("_id").cloned().unwrap_or_default();
            let (Ok(writer), Some(seq)) = (id.get_str("w"), int(&id, "s")) else {
                continue;
            };
            self.refold(Batch { writer, seq }).await?;
            folded += int(m, "n").unwrap_or(0) as u64;
        }
        Ok(folded)
    }

    /// Folds every ban stored before the summaries existed, a step at a time
    /// (each step a batch of this writer's, so an interrupted build resumes).
    async fn build(&self) -> Result<u64> {
        let mut folded = 0;
        loop {
            let ids = self.unsummarised(STEP).await?;
            if ids.is_empty() {
                self.mark_ready().await?;
                self.ready.store(true, Ordering::Relaxed);
                return Ok(folded);
            }
            let mut batches = self.batches.lock().await;
            let batch = self.next_batch(&mut batches).await?;
            batches.unfinished = Some(batch.seq);
            self.events
                .update_many(
                    doc! { "_id": { "$in": &ids }, "t": { "$exists": false } },
                    doc! { "$set": { "t": true, "fold": batch.mark(Utc::now()) } },
                )
                .await
                .map_err(mongo_err)?;
            self.refold(batch).await?;
            batches.unfinished = None;
            folded += ids.len() as u64;
        }
    }

    /// After events before `cutoff` were deleted: drops the summaries of
    /// whole days before it and rebuilds the day it cuts from the events left.
    pub async fn pruned(&self, cutoff: DateTime<Utc>) -> Result<()> {
        let ms = cutoff.timestamp_millis();
        let day = ms.div_euclid(DAY_MS) * DAY_MS;
        let (day_start, day_end) = (bson_millis(day), bson_millis(day + DAY_MS));
        let mut batches = self.batches.lock().await;
        self.ip_days
            .delete_many(doc! { "day": { "$lt": day_end } })
            .await
            .map_err(mongo_err)?;
        self.slot_bans
            .delete_many(doc! { "day": { "$lt": day_end } })
            .await
            .map_err(mongo_err)?;
        // Folded events of the cut day (pending ones are their writer's).
        let events = self
            .events_matching(doc! {
                "kind": 0, "restored": false, "t": true, "fold": { "$exists": false },
                "time": { "$gte": day_start, "$lt": day_end },
            })
            .await?;
        let batch = self.next_batch(&mut batches).await?;
        self.fold(&events.iter().collect::<Vec<_>>(), batch).await
    }

    /// Moves `ip`'s summarised bans to its new location: `before` are its
    /// events as they were (read before the events were updated).
    pub async fn relocated(
        &self,
        ip: std::net::IpAddr,
        before: &[BanEvent],
        location: &Document,
    ) -> Result<()> {
        let mut update = doc! {};
        let set: Document = ["country", "asn", "as_org"]
            .iter()
            .filter_map(|f| location.get(*f).map(|v| (f.to_string(), v.clone())))
            .collect();
        let unset: Document = ["country", "asn", "as_org"]
            .iter()
            .filter(|f| !set.contains_key(**f))
            .map(|f| (f.to_string(), Bson::from("")))
            .collect();
        if !set.is_empty() {
            update.insert("$set", set);
        }
        if !unset.is_empty() {
            update.insert("$unset", unset);
        }
        let mut batches = self.batches.lock().await;
        self.ip_days
            .update_many(doc! { "ip_key": key_of(ip) }, update)
            .await
            .map_err(mongo_err)?;
        // The per-country slots: each ban leaves its old country for the new.
        let new = location.get_str("country").ok();
        let mut moves: HashMap<ObjectId, DaySlots> = HashMap::new();
        for e in before.iter().filter(|e| e.is_new_ban()) {
            let old = e.geo.as_ref().and_then(|g| g.country.as_deref());
            if old == new {
                continue;
            }
            let slot = e.time.timestamp_millis().div_euclid(SLOT_MS);
            for (country, step) in [(old, -1), (new, 1)] {
                if let Some(c) = country {
                    add_slots(&mut moves, DaySlots::new(slot, "country", c, step));
                }
            }
        }
        let batch = self.next_batch(&mut batches).await?;
        let moves = moves.values().map(DaySlots::summary);
        let moves = moves.filter(|m| !m.inc.is_empty());
        self.apply(&self.slot_bans, moves, batch, Fresh::Unlikely)
            .await
    }
}

/// Whether the documents a fold adds to are mostly new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fresh {
    Likely,
    Unlikely,
}

fn add_slots(days: &mut HashMap<ObjectId, DaySlots>, slots: DaySlots) {
    match days.entry(slots.id()) {
        std::collections::hash_map::Entry::Occupied(mut day) => day.get_mut().merge(slots),
        std::collections::hash_map::Entry::Vacant(day) => {
            day.insert(slots);
        }
    }
}

/// The positions of the documents an unordered insert found already stored;
/// any other failure is an error.
pub fn duplicates(e: mongodb::error::Error) -> Result<Vec<usize>> {
    match e.kind.as_ref() {
        ErrorKind::InsertMany(failure)
            if failure.write_concern_error.is_none()
                && failure
                    .write_errors
                    .iter()
                    .flatten()
                    .all(|w| w.code == super::DUPLICATE_KEY) =>
        {
            let mut at: Vec<usize> = failure
                .write_errors
                .iter()
                .flatten()
                .map(|w| w.index)
                .collect();
            at.sort_unstable();
            Ok(at)
        }
        _ => Err(mongo_err(e)),
    }
}

/// A write error of an `update` command that says the document exists.
fn is_duplicate(failure: &Document) -> bool {
    failure.get_i32("code") == Ok(super::DUPLICATE_KEY)
        // The test server reports an upsert's duplicate without its code.
        || failure
            .get_str("errmsg")
            .is_ok_and(|m| m.starts_with("Duplicate key"))
}

fn oid(hex: &str) -> ObjectId {
    ObjectId::parse_str(hex).expect("a constant ObjectId")
}

fn bson_millis(ms: i64) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(ms)
}

/// A summary document's `_id`: 12 bytes of a hash of what it counts, so that
/// every writer adds the same bucket's bans to the same document.
pub(super) fn bucket_id(parts: &[&[u8]]) -> ObjectId {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut id = [0; 12];
    id.copy_from_slice(&digest[..12]);
    ObjectId::from_bytes(id)
}

/// One summary document's contribution: what identifies it (set when it is
/// created) and what it adds.
pub struct Summary {
    id: Bson,
    fields: Document,
    /// Counters and what to add to them.
    inc: Document,
    /// First and last ban, for `ip_days`.
    span: Option<(i64, i64)>,
}

impl Summary {
    fn as_new(&self, batch: Batch<'_>) -> Document {
        let mut d = doc! { "_id": self.id.clone() };
        d.extend(self.fields.clone());
        d.extend(self.inc.clone());
        if let Some((first, last)) = self.span {
            d.insert("first", bson_millis(first));
            d.insert("last", bson_millis(last));
        }
        d.insert("w", doc! { batch.writer: batch.seq });
        d
    }

    fn as_update(&self, batch: Batch<'_>) -> Document {
        let mut u = doc! {
            "$inc": self.inc.clone(),
            "$set": { format!("w.{}", batch.writer): batch.seq },
            "$setOnInsert": self.fields.clone(),
        };
        if let Some((first, last)) = self.span {
            u.insert("$min", doc! { "first": bson_millis(first) });
            u.insert("$max", doc! { "last": bson_millis(last) });
        }
        u
    }
}

/// New bans of one address on one UTC day, in one host and jail, from one location.
struct IpDay {
    day: i64,
    ip_key: String,
    network: String,
    host: String,
    jail: String,
    country: Option<String>,
    asn: Option<i64>,
    as_org: Option<String>,
    bans: i64,
    first: i64,
    last: i64,
}

impl IpDay {
    fn of(e: &BanEvent) -> Self {
        let t = e.time.timestamp_millis();
        let geo = e.geo.clone().unwrap_or_default();
        IpDay {
            day: t.div_euclid(DAY_MS) * DAY_MS,
            ip_key: key_of(e.ip),
            network: network_of(e.ip).to_string(),
            host: e.host.clone(),
            jail: e.jail.clone(),
            country: geo.country,
            asn: geo.asn.map(i64::from),
            as_org: geo.as_org,
            bans: 1,
            first: t,
            last: t,
        }
    }

    fn add(&mut self, e: &BanEvent) {
        let t = e.time.timestamp_millis();
        self.bans += 1;
        self.first = self.first.min(t);
        self.last = self.last.max(t);
    }

    fn id(&self) -> ObjectId {
        let asn = self.asn.map(|a| a.to_be_bytes()).unwrap_or_default();
        bucket_id(&[
            b"ip_days",
            &self.day.to_be_bytes(),
            self.ip_key.as_bytes(),
            self.host.as_bytes(),
            self.jail.as_bytes(),
            self.country.as_deref().unwrap_or("").as_bytes(),
            &asn,
            self.as_org.as_deref().unwrap_or("").as_bytes(),
        ])
    }

    fn summary(&self) -> Summary {
        let mut fields = doc! {
            "day": bson_millis(self.day),
            "ip_key": &self.ip_key,
            "network": &self.network,
            "host": &self.host,
            "jail": &self.jail,
        };
        for (k, v) in [("country", &self.country), ("as_org", &self.as_org)] {
            if let Some(v) = v {
                fields.insert(k, v);
            }
        }
        if let Some(asn) = self.asn {
            fields.insert("asn", asn);
        }
        Summary {
            id: Bson::ObjectId(self.id()),
            fields,
            inc: doc! { "bans": self.bans },
            span: Some((self.first, self.last)),
        }
    }
}

/// The slots of a day in `slot_bans`.
pub const SLOTS_PER_DAY: i64 = DAY_MS / SLOT_MS;

/// The field of `slot_bans` that counts the bans of `slot`.
pub fn slot_field(slot: i64) -> String {
    format!("q{}", slot.rem_euclid(SLOTS_PER_DAY))
}

/// New bans per slot of one UTC day, over everything or for one host, jail or country.
struct DaySlots {
    day: i64,
    by: &'static str,
    key: String,
    bans: HashMap<i64, i64>,
}

impl DaySlots {
    fn new(slot: i64, by: &'static str, key: &str, bans: i64) -> Self {
        DaySlots {
            day: slot.div_euclid(SLOTS_PER_DAY),
            by,
            key: key.to_owned(),
            bans: HashMap::from([(slot, bans)]),
        }
    }

    /// The days and slots a new ban counts in.
    fn of(e: &BanEvent) -> impl Iterator<Item = DaySlots> + '_ {
        let slot = e.time.timestamp_millis().div_euclid(SLOT_MS);
        let country = e.geo.as_ref().and_then(|g| g.country.as_deref());
        [
            Some(("all", "")),
            Some(("host", e.host.as_str())),
            Some(("jail", e.jail.as_str())),
            country.map(|c| ("country", c)),
        ]
        .into_iter()
        .flatten()
        .map(move |(by, key)| DaySlots::new(slot, by, key, 1))
    }

    fn merge(&mut self, other: DaySlots) {
        for (slot, n) in other.bans {
            *self.bans.entry(slot).or_default() += n;
        }
    }

    fn id(&self) -> ObjectId {
        bucket_id(&[
            b"slot_bans",
            &self.day.to_be_bytes(),
            self.by.as_bytes(),
            self.key.as_bytes(),
        ])
    }

    fn summary(&self) -> Summary {
        Summary {
            id: Bson::ObjectId(self.id()),
            fields: doc! { "day": bson_millis(self.day * DAY_MS), "by": self.by, "key": &self.key },
            inc: self
                .bans
                .iter()
                .filter(|(_, n)| **n != 0)
                .map(|(slot, n)| (slot_field(*slot), Bson::Int64(*n)))
                .collect(),
            span: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_told_apart_by_every_part() {
        let a = bucket_id(&[b"ab", b"c"]);
        assert_eq!(a, bucket_id(&[b"ab", b"c"]));
        assert_ne!(a, bucket_id(&[b"a", b"bc"]));
        assert_ne!(a, bucket_id(&[b"ab", b"d"]));
    }
}
