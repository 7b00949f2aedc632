//! The period a report covers, in the configured time zone.

use aegis_core::{day_start, NaiveDate, Tz};
use chrono::{DateTime, Datelike, Duration, Months, Utc};
use serde::Serialize;

use crate::error::ReportError;

/// A reporting period and the one before it, for comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    /// A human label: "2026-11-26", "last 7 days", …
    pub label: String,
    /// Start (inclusive).
    pub since: DateTime<Utc>,
    /// End (exclusive).
    pub until: DateTime<Utc>,
    /// Start of the previous period of the same length.
    pub previous_since: DateTime<Utc>,
    /// What it is, for "a quiet day": day, week, month or period.
    pub noun: &'static str,
}

impl Period {
    /// A calendar period (`yesterday`, `last-week`: the ISO week before this
    /// one, `last-month`) compared with the one before it, or a rolling one
    /// (`today`, `last24h`, `last7d`) compared with as long before it;
    /// relative to `now` in `tz`.
    pub fn named(name: &str, now: DateTime<Utc>, tz: Tz) -> Result<Self, ReportError> {
        let today = now.with_timezone(&tz).date_naive();
        let calendar = |noun, label, previous: NaiveDate, first, next| Period {
            label,
            since: day_start(tz, first),
            until: day_start(tz, next),
            previous_since: day_start(tz, previous),
            noun,
        };
        match name {
            "last-week" => {
                let monday =
                    today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
                let first = monday - Duration::days(7);
                let week = first.iso_week();
                let label = format!(
                    "week {}-W{:02} ({first} to {})",
                    week.year(),
                    week.week(),
                    monday - Duration::days(1)
                );
                return Ok(calendar(
                    "week",
                    label,
                    first - Duration::days(7),
                    first,
                    monday,
                ));
            }
            "last-month" => {
                let this = today.with_day(1).unwrap_or(today);
                let first = this - Months::new(1);
                let label = first.format("%B %Y").to_string();
                return Ok(calendar(
                    "month",
                    label,
                    first - Months::new(1),
                    first,
                    this,
                ));
            }
            "yesterday" => {
                let day = today - Duration::days(1);
                return Ok(calendar(
                    "day",
                    day.to_string(),
                    day - Duration::days(1),
                    day,
                    today,
                ));
            }
            _ => {}
        }
        let (noun, label, since, until) = match name {
            "today" => ("day", today.to_string(), day_start(tz, today), now),
            "last24h" => ("day", "last 24 hours".into(), now - Duration::hours(24), now),
            "last7d" => ("week", "last 7 days".into(), now - Duration::days(7), now),
            other => {
                return Err(ReportError::Config(format!(
                    "unknown period {other:?}: use yesterday, last-week, last-month, today, last24h or last7d, or --since/--until"
                )))
            }
        };
        Ok(Period {
            noun,
            ..Self::between(label, since, until)
        })
    }

    /// An explicit range.
    pub fn between(label: String, since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        Period {
            label,
            since,
            until,
            previous_since: since - (until - since),
            noun: "period",
        }
    }

    /// Whether bars should be hours rather than days.
    pub fn hourly(&self) -> bool {
        self.until - self.since <= Duration::hours(48)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yesterday_in_a_time_zone() {
        let now = "2026-11-27T06:00:00Z".parse().unwrap();
        let p = Period::named("yesterday", now, chrono_tz_berlin()).unwrap();
        assert_eq!(p.label, "2026-11-26");
        assert_eq!(p.since.to_rfc3339(), "2026-11-25T23:00:00+00:00");
        assert_eq!(p.until.to_rfc3339(), "2026-11-26T23:00:00+00:00");
        assert_eq!(p.previous_since.to_rfc3339(), "2026-11-24T23:00:00+00:00");
        assert!(Period::named("lastweek", now, chrono_tz_berlin()).is_err());
    }

    #[test]
    fn last_week_and_last_month_are_calendar_periods() {
        let tz = chrono_tz_berlin();
        // A Wednesday in December; the week before ends as daylight saving does not.
        let now = "2026-12-02T10:00:00Z".parse().unwrap();
        let week = Period::named("last-week", now, tz).unwrap();
        assert_eq!(week.label, "week 2026-W48 (2026-11-23 to 2026-11-29)");
        assert_eq!(week.since.to_rfc3339(), "2026-11-22T23:00:00+00:00");
        assert_eq!(week.until.to_rfc3339(), "2026-11-29T23:00:00+00:00");
        assert_eq!(
            week.previous_since.to_rfc3339(),
            "2026-11-15T23:00:00+00:00"
        );
        let month = Period::named("last-month", now, tz).unwrap();
        assert_eq!(month.label, "November 2026");
        assert_eq!(month.since.to_rfc3339(), "2026-10-31T23:00:00+00:00");
        assert_eq!(month.until.to_rfc3339(), "2026-11-30T23:00:00+00:00");
        // October: 31 days, and the clocks went back on its last Sunday.
        assert_eq!(
            month.previous_since.to_rfc3339(),
            "2026-09-30T22:00:00+00:00"
        );
        // On a Monday, last week is the seven days that just ended; in
        // January, last month is December of the year before.
        let monday = "2027-01-04T00:30:00Z".parse().unwrap();
        let week = Period::named("last-week", monday, tz).unwrap();
        assert_eq!(week.label, "week 2026-W53 (2026-12-28 to 2027-01-03)");
        assert_eq!(
            Period::named("last-month", monday, tz).unwrap().label,
            "December 2026"
        );
    }

    fn chrono_tz_berlin() -> Tz {
        "Europe/Berlin".parse().unwrap()
    }
}
