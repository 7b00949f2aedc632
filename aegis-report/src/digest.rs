//! What a report says, gathered from the store: plain data, so rendering is pure.

use std::collections::BTreeSet;

use aegis_core::{EventFilter, EventKind, Page, StatsQuery, Storage, Summary, TopBy, TopEntry};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::error::ReportError;
use crate::period::Period;

/// One offender in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OffenderRow {
    /// The address.
    pub ip: String,
    /// Bans in the period.
    pub bans: u64,
    /// Country code, when known.
    pub country: Option<String>,
    /// "AS64496 Example Org", when known.
    pub asn: Option<String>,
    /// Jails that banned it.
    pub jails: Vec<String>,
    /// Hosts that banned it.
    pub hosts: Vec<String>,
    /// Banned before this period too.
    pub repeat: bool,
}

/// One bar of the chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bar {
    /// "2026-11-26" or "14:00".
    pub label: String,
    /// Bans.
    pub bans: u64,
}

/// Everything a report shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    /// The reporting machine, for the subject.
    pub hostname: String,
    /// The period.
    pub period: Period,
    /// Totals for the period.
    pub totals: Summary,
    /// Totals for the previous period of the same length.
    pub previous: Summary,
    /// Change in bans against the previous period, in percent (None when it had none).
    pub change_percent: Option<i64>,
    /// The most banned addresses.
    pub offenders: Vec<OffenderRow>,
    /// Listed offenders seen for the first time.
    pub new_offenders: u64,
    /// Listed offenders banned before.
    pub repeat_offenders: u64,
    /// Addresses banned by more than one host.
    pub multi_host: Vec<OffenderRow>,
    /// Top countries, jails and hosts.
    pub countries: Vec<TopEntry>,
    /// Top jails.
    pub jails: Vec<TopEntry>,
    /// Top hosts.
    pub hosts: Vec<TopEntry>,
    /// Bans per day (or hour, for periods up to two days).
    pub bars: Vec<Bar>,
    /// The IANA time zone of days and hours.
    pub time_zone: String,
    /// Link to the dashboard, when configured.
    pub dashboard_url: Option<String>,
    /// The data attribution to show.
    pub attribution: String,
}

impl Digest {
    /// A small made-up digest, for `send-test` and previews.
    pub fn sample(hostname: &str) -> Self {
        let now = Utc::now();
        let entry = |key: &str, bans| TopEntry {
            key: key.into(),
            label: None,
            bans,
            unique_ips: 1,
        };
        let offender = |ip: &str, bans, repeat| OffenderRow {
            ip: ip.into(),
            bans,
            country: Some("ZZ".into()),
            asn: None,
            jails: vec!["sshd".into()],
            hosts: vec![hostname.into()],
            repeat,
        };
        Digest {
            hostname: hostname.to_owned(),
            period: Period::between("test message".into(), now - Duration::days(1), now),
            totals: Summary {
                bans: 3,
                unique_ips: 2,
                countries: 1,
                jails: 1,
                hosts: 1,
                currently_banned: 1,
            },
            previous: Summary::default(),
            change_percent: None,
            offenders: vec![
                offender("192.0.2.1", 2, true),
                offender("198.51.100.7", 1, false),
            ],
            new_offenders: 1,
            repeat_offenders: 1,
            multi_host: Vec::new(),
            countries: vec![entry("ZZ", 3)],
            jails: vec![entry("sshd", 3)],
            hosts: vec![entry(hostname, 3)],
            bars: (0..24)
                .map(|h| Bar {
                    label: format!("{h:02}:00"),
                    bans: u64::from(h % 7 == 0),
                })
                .collect(),
            time_zone: "UTC".into(),
            dashboard_url: None,
            attribution: "This is a test message from aegis-report: delivery works.".into(),
        }
    }

    /// Whether nothing was banned.
    pub fn quiet(&self) -> bool {
        self.totals.bans == 0
    }

    /// Gathers the digest for `period` from `store`.
    pub async fn gather(
        store: &dyn Storage,
        period: &Period,
        hostname: &str,
        top: u32,
        tz: aegis_core::Tz,
        dashboard_url: Option<String>,
    ) -> Result<Self, ReportError> {
        let q = StatsQuery::range(period.since, period.until);
        let totals = store.summary(&q).await?;
        let previous = store
            .summary(&StatsQuery::range(period.previous_since, period.since))
            .await?;
        let change_percent = (previous.bans > 0).then(|| {
            ((totals.bans as f64 - previous.bans as f64) * 100.0 / previous.bans as f64).round()
                as i64
        });
        let mut offenders = Vec::new();
        for o in store.top_offenders(&q, top).await? {
            let history = store.ip_history(o.ip).await?;
            let repeat = history
                .iter()
                .any(|e| e.event.is_new_ban() && e.event.time < period.since);
            let in_period = history
                .iter()
                .filter(|e| e.event.time >= period.since && e.event.time < period.until);
            let hosts: BTreeSet<String> = in_period.map(|e| e.event.host.clone()).collect();
            let geo = history.iter().rev().find_map(|e| e.event.geo.clone());
            offenders.push(OffenderRow {
                ip: o.ip.to_string(),
                bans: o.bans,
                country: o.country.clone(),
                asn: geo.and_then(|g| {
                    g.asn.map(|a| {
                        format!("AS{a} {}", g.as_org.unwrap_or_default())
                            .trim()
                            .to_owned()
                    })
                }),
                jails: o.jails.clone(),
                hosts: hosts.into_iter().collect(),
                repeat,
            });
        }
        let repeat_offenders = offenders.iter().filter(|o| o.repeat).count() as u64;
        let multi_host = offenders
            .iter()
            .filter(|o| o.hosts.len() > 1)
            .cloned()
            .collect();
        let bars = if period.hourly() {
            hourly(store, period, tz).await?
        } else {
            store
                .bans_per_day(&q, tz)
                .await?
                .into_iter()
                .map(|d| Bar {
                    label: d.day.to_string(),
                    bans: d.bans,
                })
                .collect()
        };
        Ok(Digest {
            hostname: hostname.to_owned(),
            period: period.clone(),
            totals,
            previous,
            change_percent,
            new_offenders: offenders.len() as u64 - repeat_offenders,
            repeat_offenders,
            offenders,
            multi_host,
            countries: store.top(&q, TopBy::Country, 5).await?,
            jails: store.top(&q, TopBy::Jail, 5).await?,
            hosts: store.top(&q, TopBy::Host, 5).await?,
            bars,
            time_zone: tz.name().to_owned(),
            dashboard_url,
            attribution: aegis_core::geo::ATTRIBUTION.to_owned(),
        })
    }
}

/// Bans per hour, read from the events (a period of at most two days).
async fn hourly(
    store: &dyn Storage,
    period: &Period,
    tz: aegis_core::Tz,
) -> Result<Vec<Bar>, ReportError> {
    let filter = EventFilter {
        kind: Some(EventKind::Ban),
        since: Some(period.since),
        until: Some(period.until),
        ..EventFilter::default()
    };
    let mut counts = std::collections::BTreeMap::<DateTime<Utc>, u64>::new();
    let mut hour = period.since;
    while hour < period.until {
        counts.insert(hour, 0);
        hour += Duration::hours(1);
    }
    let mut page = Page::first(Page::MAX_LIMIT);
    loop {
        let events = store.events(&filter, page).await?;
        for e in events.iter().filter(|e| e.event.is_new_ban()) {
            let slot = period.since + Duration::hours((e.event.time - period.since).num_hours());
            *counts.entry(slot).or_default() += 1;
        }
        if events.len() < page.limit as usize {
            break;
        }
        page.offset += u64::from(page.limit);
    }
    Ok(counts
        .into_iter()
        .map(|(t, bans)| Bar {
            label: t.with_timezone(&tz).format("%H:%M").to_string(),
            bans,
        })
        .collect())
}
