//! An address's timeline: its new bans per period, one lane per jail and host,
//! laid out here and drawn as SVG by the address page. The period (day, week,
//! month, year) is the one that fits the address's span on a screen, by the
//! rule `aegis stats` uses.

use std::collections::BTreeMap;

use aegis_core::calendar::Per;
use aegis_core::{NaiveDate, StoredEvent, Tz};
use serde::Serialize;

/// Lanes drawn, at most; the rest share one.
const LANES: usize = 12;
/// Room for a lane's name, in SVG units.
const NAME_WIDTH: u32 = 250;
/// Room for the periods.
const PLOT_WIDTH: u32 = 760;
/// A lane's height, with the gap under it.
const LANE_HEIGHT: u32 = 22;
/// Room under the lanes for the period labels.
const AXIS_HEIGHT: u32 = 20;
/// Room right of the periods for the last label.
const LABEL_ROOM: u32 = 72;
/// Period labels, at most.
const X_LABELS: usize = 8;
/// Characters of a jail or host name shown before "…".
const NAME_CHARS: usize = 36;

/// The laid-out timeline.
#[derive(Debug, Serialize)]
pub struct Timeline {
    /// What a cell counts: "day", "week", "month" or "year".
    pub per: &'static str,
    /// The first and the last period shown.
    pub from: String,
    pub to: String,
    /// Where the periods start, right of the lanes' names, and end.
    pub left: u32,
    pub right: u32,
    pub width: u32,
    pub height: u32,
    pub lanes: Vec<Lane>,
    pub labels: Vec<Label>,
    /// The whole chart in words, for screen readers.
    pub description: String,
}

/// The bans of one jail on one host.
#[derive(Debug, Serialize)]
pub struct Lane {
    /// "sshd on web-1".
    pub name: String,
    /// The name shortened to fit.
    pub short: String,
    pub bans: u64,
    pub y: u32,
    pub cells: Vec<Cell>,
}

/// A period with bans.
#[derive(Debug, Serialize)]
pub struct Cell {
    pub x: u32,
    pub width: u32,
    /// The period, as people write it.
    pub period: String,
    pub bans: u64,
    /// 1 (fewest) to 4 (most bans of any cell).
    pub level: u8,
}

/// A period's label under the lanes.
#[derive(Debug, Serialize)]
pub struct Label {
    pub x: u32,
    pub text: String,
}

/// The timeline of `history` (one address's events, oldest first) in `tz`;
/// `None` when it holds no new ban.
pub fn of(history: &[StoredEvent], tz: Tz) -> Option<Timeline> {
    let bans: Vec<(NaiveDate, &str, &str)> = history
        .iter()
        .filter(|s| s.event.is_new_ban())
        .map(|s| {
            let e = &s.event;
            let day = e.time.with_timezone(&tz).date_naive();
            (day, e.jail.as_str(), e.host.as_str())
        })
        .collect();
    let first = bans.iter().map(|b| b.0).min()?;
    let last = bans.iter().map(|b| b.0).max()?;
    let per = Per::fitting((last - first).num_days() + 1);
    let periods = per.spanning(first, last);
    let column = |day: NaiveDate| periods.partition_point(|start| *start <= day) - 1;

    // Bans per lane and period; the busiest lanes first.
    let mut counts: BTreeMap<(&str, &str), BTreeMap<usize, u64>> = BTreeMap::new();
    for (day, jail, host) in &bans {
        *counts
            .entry((jail, host))
            .or_default()
            .entry(column(*day))
            .or_default() += 1;
    }
    let mut lanes: Vec<(String, BTreeMap<usize, u64>)> = counts
        .into_iter()
        .map(|((jail, host), cells)| (format!("{jail} on {host}"), cells))
        .collect();
    lanes.sort_by_key(|(name, cells)| {
        (std::cmp::Reverse(cells.values().sum::<u64>()), name.clone())
    });
    if lanes.len() > LANES {
        let rest = lanes.split_off(LANES - 1);
        let mut merged: BTreeMap<usize, u64> = BTreeMap::new();
        for (_, cells) in &rest {
            for (c, n) in cells {
                *merged.entry(*c).or_default() += n;
            }
        }
        lanes.push((format!("{} other jails and hosts", rest.len()), merged));
    }

    let slot = (PLOT_WIDTH / periods.len() as u32).clamp(2, 40);
    let peak = lanes
        .iter()
        .flat_map(|(_, cells)| cells.values())
        .copied()
        .max()
        .unwrap_or(1);
    let lanes: Vec<Lane> = lanes
        .into_iter()
        .enumerate()
        .map(|(i, (name, cells))| Lane {
            short: shorten(&name),
            name,
            bans: cells.values().sum(),
            y: i as u32 * LANE_HEIGHT,
            cells: cells
                .into_iter()
                .map(|(c, bans)| Cell {
                    x: NAME_WIDTH + c as u32 * slot,
                    width: slot.saturating_sub(1).max(1),
                    period: per.label(periods[c]),
                    bans,
                    level: level(bans, peak),
                })
                .collect(),
        })
        .collect();
    let step = periods.len().div_ceil(X_LABELS);
    let labels = (0..periods.len())
        .step_by(step)
        .map(|c| Label {
            x: NAME_WIDTH + c as u32 * slot,
            text: per.label(periods[c]),
        })
        .collect();
    let from = per.label(periods[0]);
    let to = per.label(periods[periods.len() - 1]);
    let description = format!(
        "Bans per {} from {from} to {to}: {}.",
        per.name(),
        lanes
            .iter()
            .map(|l| format!("{} {}", l.name, l.bans))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Some(Timeline {
        per: per.name(),
        from,
        to,
        left: NAME_WIDTH,
        right: NAME_WIDTH + periods.len() as u32 * slot,
        width: NAME_WIDTH + periods.len() as u32 * slot + LABEL_ROOM,
        height: lanes.len() as u32 * LANE_HEIGHT + AXIS_HEIGHT,
        lanes,
        labels,
        description,
    })
}

/// 1 to 4 by the share of the busiest cell, so that one ban always shows.
fn level(bans: u64, peak: u64) -> u8 {
    (1 + (bans.saturating_sub(1) * 3) / peak.max(2).saturating_sub(1)).min(4) as u8
}

fn shorten(name: &str) -> String {
    if name.chars().count() <= NAME_CHARS {
        return name.to_owned();
    }
    let mut short: String = name.chars().take(NAME_CHARS - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::{parse_ip, BanEvent, EventId, EventKind};
    use chrono::NaiveDateTime;

    fn ban(time: &str, jail: &str, host: &str) -> StoredEvent {
        let time = NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M")
            .unwrap()
            .and_utc();
        StoredEvent {
            id: EventId([0; 12]),
            event: BanEvent::new(
                EventKind::Ban,
                parse_ip("203.0.113.7").unwrap(),
                jail,
                host,
                time,
            )
            .unwrap(),
        }
    }

    #[test]
    fn lanes_per_jail_and_host_with_days_in_the_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 23:30 UTC on the 1st is the 2nd in Berlin.
        let history = [
            ban("2026-11-01 23:30", "sshd", "web-1"),
            ban("2026-11-02 08:00", "sshd", "web-1"),
            ban("2026-11-05 08:00", "nginx", "web-2"),
        ];
        let t = of(&history, berlin).unwrap();
        assert_eq!(
            (t.per, t.from.as_str(), t.to.as_str()),
            ("day", "2026-11-02", "2026-11-05")
        );
        let lanes: Vec<_> = t.lanes.iter().map(|l| (l.name.as_str(), l.bans)).collect();
        assert_eq!(lanes, [("sshd on web-1", 2), ("nginx on web-2", 1)]);
        let sshd = &t.lanes[0].cells;
        assert_eq!(
            (
                sshd.len(),
                sshd[0].period.as_str(),
                sshd[0].bans,
                sshd[0].level
            ),
            (1, "2026-11-02", 2, 4)
        );
        assert_eq!(
            t.lanes[1].cells[0].x,
            NAME_WIDTH + 3 * (PLOT_WIDTH / 4).min(40)
        );
        assert_eq!(
            t.description,
            "Bans per day from 2026-11-02 to 2026-11-05: sshd on web-1 2, nginx on web-2 1."
        );
    }

    #[test]
    fn a_long_span_is_grouped_and_many_lanes_share_the_last() {
        let mut history: Vec<_> = (0..20)
            .map(|i| {
                ban(
                    &format!("2025-{:02}-10 12:00", i % 12 + 1),
                    &format!("jail{i:02}"),
                    "web-1",
                )
            })
            .collect();
        history.push(ban("2026-11-30 12:00", "jail00", "web-1"));
        let t = of(&history, Tz::UTC).unwrap();
        assert_eq!(
            (t.per, t.from.as_str(), t.to.as_str()),
            ("month", "2025-01", "2026-11")
        );
        assert_eq!(t.lanes.len(), LANES);
        assert_eq!(t.lanes[0].name, "jail00 on web-1");
        assert_eq!(t.lanes[LANES - 1].name, "9 other jails and hosts");
        assert_eq!(t.lanes.iter().map(|l| l.bans).sum::<u64>(), 21);
        assert!(t.labels.len() <= X_LABELS && t.right <= NAME_WIDTH + PLOT_WIDTH);
    }

    #[test]
    fn levels_grow_with_bans_and_names_are_shortened() {
        assert_eq!([1, 2, 5, 9, 10].map(|n| level(n, 10)), [1, 1, 2, 3, 4]);
        assert_eq!(level(1, 1), 1);
        assert_eq!(shorten(&"x".repeat(40)).chars().count(), NAME_CHARS);
        assert!(of(&[], Tz::UTC).is_none());
    }
}
