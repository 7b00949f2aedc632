//! Calendar periods for charts over long ranges: bans per day, ISO week, month
//! or year, the period chosen so that a range's bars fit a screen. The CLI's
//! `aegis stats` and the dashboard's address timeline group by the same rule.

use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;

use crate::DayCount;

/// What one bar of a chart counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Per {
    /// Each day.
    Day,
    /// Each ISO week, from its Monday.
    Week,
    /// Each calendar month.
    Month,
    /// Each calendar year.
    Year,
}

impl Per {
    /// The grouping that keeps a range of `days` days within a screen: days
    /// up to 90, then weeks up to half a year, months up to four years.
    pub fn fitting(days: i64) -> Per {
        match days {
            ..=90 => Per::Day,
            91..=182 => Per::Week,
            183..=1_461 => Per::Month,
            _ => Per::Year,
        }
    }

    /// "day", "week", "month", "year".
    pub fn name(self) -> &'static str {
        match self {
            Per::Day => "day",
            Per::Week => "week",
            Per::Month => "month",
            Per::Year => "year",
        }
    }

    /// The first day of the period holding `day` (a week's Monday).
    pub fn start(self, day: NaiveDate) -> NaiveDate {
        match self {
            Per::Day => day,
            Per::Week => day - Duration::days(day.weekday().num_days_from_monday().into()),
            Per::Month => day.with_day(1).unwrap_or(day),
            Per::Year => day.with_ordinal(1).unwrap_or(day),
        }
    }

    /// The first day of the period after the one starting on `start`.
    pub fn next(self, start: NaiveDate) -> NaiveDate {
        match self {
            Per::Day => start.checked_add_days(chrono::Days::new(1)),
            Per::Week => start.checked_add_days(chrono::Days::new(7)),
            Per::Month => start.checked_add_months(chrono::Months::new(1)),
            Per::Year => start.checked_add_months(chrono::Months::new(12)),
        }
        // Past the calendar's end: no later period.
        .unwrap_or(NaiveDate::MAX)
    }

    /// The period starting on `start` as people write it: "2026-11-26" for a
    /// day or a week (its Monday), "2026-11" for a month, "2026" for a year.
    pub fn label(self, start: NaiveDate) -> String {
        match self {
            Per::Day | Per::Week => start.to_string(),
            Per::Month => start.format("%Y-%m").to_string(),
            Per::Year => start.format("%Y").to_string(),
        }
    }

    /// Every period from the one holding `first` to the one holding `last`,
    /// by their first days.
    pub fn spanning(self, first: NaiveDate, last: NaiveDate) -> Vec<NaiveDate> {
        let mut out = Vec::new();
        let mut at = self.start(first);
        while at <= last {
            out.push(at);
            let next = self.next(at);
            if next <= at {
                break;
            }
            at = next;
        }
        out
    }

    /// Bans per period from bans per day (in day order), each period named by
    /// its first day; periods without a day in `days` are left out.
    pub fn group(self, days: &[DayCount]) -> Vec<(NaiveDate, u64)> {
        let mut out: Vec<(NaiveDate, u64)> = Vec::new();
        for d in days {
            let key = self.start(d.day);
            match out.last_mut() {
                Some((last, bans)) if *last == key => *bans += d.bans,
                _ => out.push((key, d.bans)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(from: &str, counts: &[u64]) -> Vec<DayCount> {
        let first: NaiveDate = from.parse().unwrap();
        counts
            .iter()
            .enumerate()
            .map(|(i, &bans)| DayCount {
                day: first + Duration::days(i as i64),
                bans,
            })
            .collect()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        // 2026-11-28 is a Saturday.
        let d = days("2026-11-28", &[1, 2, 3, 4, 5]);
        assert_eq!(
            Per::Week.group(&d),
            [(date("2026-11-23"), 3), (date("2026-11-30"), 12)]
        );
        let months = Per::Month.group(&d);
        assert_eq!(months, [(date("2026-11-01"), 6), (date("2026-12-01"), 9)]);
        assert_eq!(Per::Month.label(months[1].0), "2026-12");
        assert_eq!(Per::Year.group(&d), [(date("2026-01-01"), 15)]);
    }

    #[test]
    fn spans_cover_both_ends_across_month_and_year_ends() {
        assert_eq!(
            Per::Month.spanning(date("2025-11-30"), date("2026-01-01")),
            [date("2025-11-01"), date("2025-12-01"), date("2026-01-01")]
        );
        assert_eq!(
            Per::Week.spanning(date("2026-11-29"), date("2026-11-30")),
            [date("2026-11-23"), date("2026-11-30")]
        );
        assert_eq!(
            Per::Day
                .spanning(date("2026-03-01"), date("2026-03-01"))
                .len(),
            1
        );
        assert!(Per::Day
            .spanning(date("2026-03-02"), date("2026-03-01"))
            .is_empty());
    }

    #[test]
    fn long_ranges_fit_a_screen() {
        assert_eq!(Per::fitting(90), Per::Day);
        assert_eq!(Per::fitting(91), Per::Week);
        assert_eq!(Per::fitting(365), Per::Month);
        // 9,844 days since 2000: 27 rows, not 9,844.
        assert_eq!(Per::fitting(9_844), Per::Year);
    }
}
