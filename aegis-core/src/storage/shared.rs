//! Rules every backend shares, written once: how kinds are coded, what an
//! unknown bantime means, how counts and keys are read back, how bans fall into
//! local days.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::query::{DayCount, StatsQuery};

/// fail2ban's default `bantime`, in seconds: what a ban without one lasts.
pub const DEFAULT_BANTIME_S: i64 = 600;

/// How an event's kind is stored.
pub fn kind_code(kind: EventKind) -> u8 {
    match kind {
        EventKind::Ban => 0,
        EventKind::Unban => 1,
    }
}

/// The kind a stored code stands for.
pub fn kind_of(code: i64) -> Option<EventKind> {
    match code {
        0 => Some(EventKind::Ban),
        1 => Some(EventKind::Unban),
        _ => None,
    }
}

/// A stored value that cannot be read back.
pub fn corrupt(what: &str, place: &str) -> Error {
    Error::Storage(format!("corrupt {what} in {place}"))
}

/// A count read back from the store (never negative).
pub fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A UTC day, the unit of the per-address summaries.
pub const DAY_MS: i64 = 86_400_000;

/// Bans are counted per 15-minute slot: every time zone in use today is a
/// whole number of slots from UTC, so slots add up to exact local days.
pub const SLOT_MS: i64 = 900_000;

/// The first `unit`-long bucket (day or slot, numbered from the epoch) that
/// starts at or after `ms`: where a range's whole buckets begin.
pub fn first_bucket_from(ms: i64, unit: i64) -> i64 {
    (ms + unit - 1).div_euclid(unit)
}

/// The whole `unit`-long buckets inside `q`'s range, as the milliseconds
/// they span (`None` when none fits): what both backends read from their
/// summaries, the rest of the range from raw events.
pub fn whole_buckets(q: &StatsQuery, unit: i64) -> Option<(i64, i64)> {
    let (since, until) = (q.since.timestamp_millis(), q.until.timestamp_millis());
    let (first, end) = (first_bucket_from(since, unit), until.div_euclid(unit));
    (first < end).then_some((first * unit, end * unit))
}

/// The slot a moment falls in.
#[cfg(feature = "mongodb")]
pub fn slot_of(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis().div_euclid(SLOT_MS)
}

/// The local days a range touches, every one present, filled slot by slot:
/// what both backends' `bans_per_day` share.
pub struct LocalDays {
    tz: Tz,
    days: BTreeMap<NaiveDate, u64>,
    /// From the start of the first day to the end of the last, in UTC.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl LocalDays {
    /// `None` for an empty range.
    pub fn of(q: &StatsQuery, tz: Tz) -> Option<Self> {
        if q.until <= q.since {
            return None;
        }
        let first = q.since.with_timezone(&tz).date_naive();
        let last = (q.until - chrono::Duration::milliseconds(1))
            .with_timezone(&tz)
            .date_naive();
        Some(LocalDays {
            tz,
            days: first
                .iter_days()
                .take_while(|d| *d <= last)
                .map(|d| (d, 0))
                .collect(),
            from: crate::query::day_start(tz, first),
            to: crate::query::day_start(tz, last + chrono::Duration::days(1)),
        })
    }

    /// Adds the bans of one slot to its local day.
    pub fn add(&mut self, slot: i64, bans: u64) -> Result<()> {
        let at = DateTime::from_timestamp_millis(slot * SLOT_MS)
            .ok_or_else(|| Error::Storage(format!("corrupt slot {slot}")))?;
        if let Some(n) = self.days.get_mut(&at.with_timezone(&self.tz).date_naive()) {
            *n += bans;
        }
        Ok(())
    }

    pub fn finish(self) -> Vec<DayCount> {
        self.days
            .into_iter()
            .map(|(day, bans)| DayCount { day, bans })
            .collect()
    }
}
