//! Times as users type them: ages (`7d`), dates (`2026-11-01`) and RFC 3339.

use crate::error::Error;
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// An age such as `30s`, `90m`, `24h`, `7d`, `2w`.
pub fn parse_age(s: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::Invalid(format!(
            "invalid age {s:?}: expected a number with a unit, e.g. 30m, 24h, 7d, 2w"
        ))
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(seconds)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .map(Duration::seconds)
        .ok_or_else(bad)
}

/// A moment: an age before `now`, a date (midnight UTC), or RFC 3339.
pub fn parse_moment(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
    if s == "all" {
        return Ok(DateTime::from_timestamp(946_684_800, 0).unwrap_or(now));
    }
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    parse_age(s).map(|age| now - age).map_err(|_| {
        Error::Invalid(format!(
            "invalid time {s:?}: expected an age (7d, 24h), a date (2026-11-01), RFC 3339 or \"all\""
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_moments() {
        assert_eq!(parse_age("7d").unwrap(), Duration::days(7));
        assert_eq!(parse_age("2w").unwrap(), Duration::days(14));
        assert_eq!(parse_age("5s").unwrap(), Duration::seconds(5));
        for bad in ["", "7", "d", "7x", "-1d", "99999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
        let now = Utc::now();
        assert_eq!(parse_moment("24h", now).unwrap(), now - Duration::hours(24));
        assert_eq!(
            parse_moment("2026-11-01", now).unwrap().to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        assert!(parse_moment("tomorrow", now).is_err());
    }
}
