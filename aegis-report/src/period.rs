//! The period a report covers, in the configured time zone.

use aegis_core::{day_start, Tz};
use chrono::{DateTime, Duration, Utc};
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
}

impl Period {
    /// `yesterday`, `today`, `last24h` or `last7d`, relative to `now` in `tz`.
    pub fn named(name: &str, now: DateTime<Utc>, tz: Tz) -> Result<Self, ReportError> {
        let today = now.with_timezone(&tz).date_naive();
        let (label, since, until) = match name {
            "yesterday" => {
                let day = today - Duration::days(1);
                (day.to_string(), day_start(tz, day), day_start(tz, today))
            }
            "today" => (today.to_string(), day_start(tz, today), now),
            "last24h" => ("last 24 hours".into(), now - Duration::hours(24), now),
            "last7d" => ("last 7 days".into(), now - Duration::days(7), now),
            other => {
                return Err(ReportError::Config(format!(
                    "unknown period {other:?}: use yesterday, today, last24h or last7d, or --since/--until"
                )))
            }
        };
        Ok(Self::between(label, since, until))
    }

    /// An explicit range.
    pub fn between(label: String, since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        Period {
            label,
            since,
            until,
            previous_since: since - (until - since),
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

    fn chrono_tz_berlin() -> Tz {
        "Europe/Berlin".parse().unwrap()
    }
}
