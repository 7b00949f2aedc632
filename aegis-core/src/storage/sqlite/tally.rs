//! The summaries a batch's new bans add to, counted in memory while the batch
//! is inserted and written once per key: reading the new events back with SQL
//! (a scan, a sort and a lookup of each address per summary) cost more than
//! inserting them.

use foldhash::HashMap;
use rusqlite::{params, Transaction};

use super::key::Stored;
use super::write::{DAY_MS, SLOT_MS};
use crate::event::BanEvent;

/// Where an address is, as `ips` has it once the batch's addresses are
/// recorded: its address-days and country slots are counted there.
#[derive(Default)]
pub(super) struct Location {
    pub(super) country: Option<String>,
    pub(super) asn: Option<u32>,
}

/// An address-day's bans and the first and last of them.
#[derive(Clone, Copy)]
struct Span {
    bans: i64,
    first: i64,
    last: i64,
}

/// A batch's new bans, counted by each summary's key. Days and slots are cut
/// as SQLite's integer division cuts them, as every reader does.
#[derive(Default)]
pub(super) struct Tally<'a> {
    days: HashMap<(i64, [u8; 16], &'a str, &'a str), Span>,
    slots: HashMap<(i64, &'a str, &'a str), i64>,
    totals: HashMap<i64, i64>,
    /// Per slot and address: their country is known only once every address
    /// of the batch is recorded.
    addresses: HashMap<(i64, [u8; 16]), i64>,
}

impl<'a> Tally<'a> {
    /// Counts `ban` (a new ban just inserted) of the address keyed `key`.
    pub(super) fn add(&mut self, ban: &'a BanEvent, key: [u8; 16]) {
        let time = ban.time.timestamp_millis();
        let (host, jail) = (ban.host.as_str(), ban.jail.as_str());
        let slot = time / SLOT_MS;
        self.days
            .entry((time / DAY_MS, key, host, jail))
            .and_modify(|s| {
                s.bans += 1;
                s.first = s.first.min(time);
                s.last = s.last.max(time);
            })
            .or_insert(Span {
                bans: 1,
                first: time,
                last: time,
            });
        *self.slots.entry((slot, host, jail)).or_default() += 1;
        *self.totals.entry(slot).or_default() += 1;
        *self.addresses.entry((slot, key)).or_default() += 1;
    }

    /// Adds the counts to the summaries, each address where `located` puts it.
    pub(super) fn write(
        self,
        tx: &Transaction<'_>,
        located: &HashMap<[u8; 16], Location>,
    ) -> rusqlite::Result<()> {
        // Nothing to prepare: the ban path's writer, on a new connection each
        // time, compiles every statement it runs.
        if self.totals.is_empty() {
            return Ok(());
        }
        let nowhere = Location::default();
        let at = |key: &[u8; 16]| located.get(key).unwrap_or(&nowhere);
        let mut countries: HashMap<(i64, &str), i64> = HashMap::default();
        for ((slot, key), bans) in &self.addresses {
            if let Some(country) = &at(key).country {
                *countries.entry((*slot, country)).or_default() += bans;
            }
        }

        let mut day_row = tx.prepare_cached(
            "INSERT INTO ip_day (day, ip_key, host, jail, bans, first, last, country, asn)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (day, ip_key, host, jail) DO UPDATE SET bans = bans + excluded.bans,
                first = min(first, excluded.first), last = max(last, excluded.last),
                country = excluded.country, asn = excluded.asn",
        )?;
        for ((day, key, host, jail), s) in sorted(self.days) {
            let place = at(&key);
            day_row.execute(params![
                day,
                Stored::of(&key),
                host,
                jail,
                s.bans,
                s.first,
                s.last,
                place.country,
                place.asn
            ])?;
        }

        let mut slot_row = tx.prepare_cached(
            "INSERT INTO ban_slots (slot, host, jail, bans) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (slot, host, jail) DO UPDATE SET bans = bans + excluded.bans",
        )?;
        for ((slot, host, jail), bans) in sorted(self.slots) {
            slot_row.execute(params![slot, host, jail, bans])?;
        }
        let mut country_row = tx.prepare_cached(
            "INSERT INTO country_slots (slot, country, bans) VALUES (?1, ?2, ?3)
             ON CONFLICT (slot, country) DO UPDATE SET bans = bans + excluded.bans",
        )?;
        for ((slot, country), bans) in sorted(countries) {
            country_row.execute(params![slot, country, bans])?;
        }
        let mut total_row = tx.prepare_cached(
            "INSERT INTO ban_totals (slot, bans) VALUES (?1, ?2)
             ON CONFLICT (slot) DO UPDATE SET bans = bans + excluded.bans",
        )?;
        for (slot, bans) in sorted(self.totals) {
            total_row.execute(params![slot, bans])?;
        }
        Ok(())
    }
}

/// In key order, so that each page of a summary is visited once.
fn sorted<K: Ord, V>(map: HashMap<K, V>) -> Vec<(K, V)> {
    let mut rows: Vec<_> = map.into_iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    rows
}
