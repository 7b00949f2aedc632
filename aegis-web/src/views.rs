//! What the pages and the API show, gathered from the store in parallel and
//! shaped for templates (times in the dashboard's zone, map data).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use aegis_core::{
    network_of, DayCount, EventFilter, EventKind, Offender, Order, Page, Scope, StatsQuery,
    Storage, StoredEvent, Summary, TopBy, TopEntry, Tz,
};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::error::WebError;

/// The headline periods, each compared with the one before it.
pub const PERIODS: [(&str, &str, i64); 3] = [
    ("24 hours", "24h", 1),
    ("7 days", "7d", 7),
    ("30 days", "30d", 30),
];

/// Bans shown in the latest-bans table.
pub const LATEST: u32 = 15;
/// Events in an address's JSON (all of them are one search away).
pub const IP_EVENTS: usize = 200;
/// Recent bans whose city coordinates become map points.
const MAP_SAMPLE: u32 = 500;

/// A view's scope as templates show it: `all`, or a facet and its value.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeLabel {
    /// `all`, `country`, `jail` or `host`.
    pub kind: &'static str,
    /// The country code, jail or host name.
    pub value: Option<String>,
}

impl From<&Scope> for ScopeLabel {
    fn from(scope: &Scope) -> Self {
        match scope.single() {
            Some((facet, value)) => ScopeLabel {
                kind: facet.as_str(),
                value: Some(value.to_owned()),
            },
            None => ScopeLabel {
                kind: "all",
                value: None,
            },
        }
    }
}

/// One headline period.
#[derive(Serialize)]
pub struct Period {
    pub label: &'static str,
    pub range: &'static str,
    pub summary: Summary,
    /// New bans in the period of the same length just before.
    pub previous_bans: u64,
    /// Change of bans against the previous period, in percent (absent when it had none).
    pub change: Option<f64>,
}

/// An address in a ranking.
#[derive(Serialize)]
pub struct OffenderRow {
    pub ip: String,
    pub bans: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub jails: Vec<String>,
    pub country: Option<String>,
}

/// An event in a table.
#[derive(Serialize)]
pub struct EventRow {
    pub id: String,
    pub time: String,
    pub time_iso: String,
    pub kind: &'static str,
    pub ip: String,
    pub jail: String,
    pub host: String,
    pub country: Option<String>,
    pub city: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
    pub failures: Option<u32>,
    pub bantime: Option<i64>,
    pub restored: bool,
    pub matches: Vec<String>,
}

/// Countries shaded by bans, and city points.
#[derive(Serialize, Default)]
pub struct MapData {
    pub countries: BTreeMap<String, u64>,
    pub points: Vec<MapPoint>,
}

/// Bans located at one city.
#[derive(Serialize)]
pub struct MapPoint {
    pub lat: f64,
    pub lon: f64,
    pub label: String,
    pub bans: u64,
}

/// Everything on the overview (and on country, jail and host pages).
#[derive(Serialize)]
pub struct Overview {
    pub scope: ScopeLabel,
    pub range: String,
    pub periods: Vec<Period>,
    pub days: u32,
    pub daily: Vec<DayCount>,
    pub offenders: Vec<OffenderRow>,
    pub countries: Vec<TopEntry>,
    pub jails: Vec<TopEntry>,
    pub hosts: Vec<TopEntry>,
    pub networks: Vec<TopEntry>,
    pub latest: Vec<EventRow>,
    pub map: MapData,
}

/// The end of the current second: the `until` of every "last …" statistic.
///
/// Whole seconds let the store's rolling windows move at most once a second
/// however many requests arrive, and a ban stamped later in this second (or by
/// a host whose clock is a little ahead) still falls inside the range.
pub fn stats_now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp(now.timestamp() + 1, 0).unwrap_or(now)
}

/// Formats times in the dashboard's zone.
#[derive(Clone, Copy)]
pub struct Clock(pub Tz);

impl Clock {
    pub fn show(self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.0)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    pub fn offender(self, o: Offender) -> OffenderRow {
        OffenderRow {
            ip: o.ip.to_string(),
            bans: o.bans,
            first_seen: self.show(o.first_seen),
            last_seen: self.show(o.last_seen),
            jails: o.jails,
            country: o.country,
        }
    }

    pub fn event(self, s: StoredEvent) -> EventRow {
        let e = s.event;
        let geo = e.geo.unwrap_or_default();
        EventRow {
            id: s.id.to_hex(),
            time: self.show(e.time),
            time_iso: e.time.to_rfc3339(),
            kind: e.kind.as_str(),
            ip: e.ip.to_string(),
            jail: e.jail,
            host: e.host,
            country: geo.country,
            city: geo.city,
            asn: geo.asn,
            as_org: geo.as_org,
            failures: e.failures,
            bantime: e.bantime,
            restored: e.restored,
            matches: e.matches,
        }
    }
}

/// The headline figures of `scope` for one period, with the period before it.
pub async fn period(
    store: &dyn Storage,
    scope: &Scope,
    (label, range, days): (&'static str, &'static str, i64),
    now: DateTime<Utc>,
) -> Result<Period, WebError> {
    let length = if days == 1 {
        Duration::hours(24)
    } else {
        Duration::days(days)
    };
    let current = scope.narrow(StatsQuery::range(now - length, now));
    let previous = scope.narrow(StatsQuery::range(now - length - length, now - length));
    let (summary, previous_bans) =
        tokio::try_join!(store.summary(&current), store.ban_count(&previous))?;
    Ok(Period {
        label,
        range,
        change: change(summary.bans, previous_bans),
        summary,
        previous_bans,
    })
}

fn change(now: u64, before: u64) -> Option<f64> {
    (before > 0).then(|| ((now as f64 - before as f64) / before as f64 * 100.0).round())
}

/// New bans per day over the last `days` days (today included) in `tz`.
pub async fn daily(
    store: &dyn Storage,
    scope: &Scope,
    days: u32,
    tz: Tz,
) -> Result<Vec<DayCount>, WebError> {
    let now = stats_now();
    let today = now.with_timezone(&tz).date_naive();
    let first = today - Duration::days(i64::from(days) - 1);
    let q = scope.narrow(StatsQuery::range(aegis_core::day_start(tz, first), now));
    Ok(store.bans_per_day(&q, tz).await?)
}

/// Countries by bans over the range, and the cities of recent bans.
pub async fn map(store: &dyn Storage, scope: &Scope, q: &StatsQuery) -> Result<MapData, WebError> {
    let mut recent = scope.filter();
    recent.kind = Some(EventKind::Ban);
    recent.since = Some(q.since);
    let scoped = scope.narrow(q.clone());
    let (countries, sample) = tokio::try_join!(
        store.top(&scoped, TopBy::Country, 300),
        store.events(&recent, Page::first(MAP_SAMPLE)),
    )?;
    let mut points: BTreeMap<String, MapPoint> = BTreeMap::new();
    for e in sample.into_iter().map(|s| s.event) {
        let Some(geo) = e.geo.filter(|_| !e.restored) else {
            continue;
        };
        let (Some(lat), Some(lon)) = (geo.latitude, geo.longitude) else {
            continue;
        };
        let label = match (&geo.city, &geo.country) {
            (Some(city), Some(cc)) => format!("{city}, {cc}"),
            (Some(city), None) => city.clone(),
            (None, Some(cc)) => cc.clone(),
            (None, None) => format!("{lat:.2}, {lon:.2}"),
        };
        points
            .entry(format!("{lat:.3},{lon:.3}"))
            .or_insert(MapPoint {
                lat,
                lon,
                label,
                bans: 0,
            })
            .bans += 1;
    }
    let mut points: Vec<MapPoint> = points.into_values().collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.bans));
    points.truncate(300);
    Ok(MapData {
        countries: countries.into_iter().map(|t| (t.key, t.bans)).collect(),
        points,
    })
}

/// The overview of `scope`: rankings over `q`, the chart over `days`.
pub async fn overview(
    store: &dyn Storage,
    clock: Clock,
    scope: Scope,
    range: String,
    q: StatsQuery,
    days: u32,
) -> Result<Overview, WebError> {
    let now = stats_now();
    let scoped = scope.narrow(q.clone());
    let [p1, p2, p3] = PERIODS;
    let (periods, offenders, daily, map, jails, hosts, networks, latest) = tokio::try_join!(
        async {
            Ok::<_, WebError>(vec![
                period(store, &scope, p1, now).await?,
                period(store, &scope, p2, now).await?,
                period(store, &scope, p3, now).await?,
            ])
        },
        async { Ok(store.top_offenders(&scoped, 10).await?) },
        daily(store, &scope, days, clock.0),
        map(store, &scope, &q),
        async { Ok(store.top(&scoped, TopBy::Jail, 10).await?) },
        async { Ok(store.top(&scoped, TopBy::Host, 10).await?) },
        async { Ok(store.top(&scoped, TopBy::Network, 10).await?) },
        async { Ok(store.events(&scope.filter(), Page::first(LATEST)).await?) },
    )?;
    let mut countries: Vec<TopEntry> = map
        .countries
        .iter()
        .map(|(key, bans)| TopEntry {
            key: key.clone(),
            label: None,
            bans: *bans,
            unique_ips: 0,
        })
        .collect();
    countries.sort_by(|a, b| b.bans.cmp(&a.bans).then(a.key.cmp(&b.key)));
    countries.truncate(10);
    Ok(Overview {
        scope: ScopeLabel::from(&scope),
        range,
        periods,
        days,
        daily,
        offenders: offenders.into_iter().map(|o| clock.offender(o)).collect(),
        countries,
        jails,
        hosts,
        networks,
        latest: latest.into_iter().map(|e| clock.event(e)).collect(),
        map,
    })
}

/// Everything known about one address.
#[derive(Serialize)]
pub struct IpDetail {
    pub ip: String,
    pub network: String,
    pub bans: u64,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub first_seen_iso: Option<DateTime<Utc>>,
    pub last_seen_iso: Option<DateTime<Utc>>,
    pub country: Option<String>,
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
    pub jails: BTreeSet<String>,
    pub hosts: BTreeSet<String>,
    /// Distinct matched log lines, newest first.
    pub matches: Vec<String>,
    /// Every stored event of the address.
    pub events_total: u64,
    /// How many newer events `events` skips.
    pub events_offset: u64,
    /// The events asked for, newest first.
    pub events: Vec<EventRow>,
    /// The page's drawing of bans per period (layout, not data: the API
    /// leaves it out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<crate::timeline::Timeline>,
    /// Other addresses of the same network, most bans first.
    pub neighbours: Vec<Neighbour>,
}

/// Another address of the same network.
#[derive(Serialize)]
pub struct Neighbour {
    pub ip: String,
    pub bans: u64,
}

/// The detail of `ip` with `limit` of its events from the `offset`-th newest;
/// `None` when nothing is stored for it.
pub async fn ip_detail(
    store: &dyn Storage,
    clock: Clock,
    ip: IpAddr,
    (offset, limit): (usize, usize),
) -> Result<Option<IpDetail>, WebError> {
    let network = network_of(ip);
    let nearby = EventFilter {
        network: Some(network),
        kind: Some(EventKind::Ban),
        ..EventFilter::default()
    };
    let (history, nearby) = tokio::try_join!(
        store.ip_history(ip),
        store.events(&nearby, Page::first(Page::MAX_LIMIT)),
    )?;
    if history.is_empty() {
        return Ok(None);
    }
    let new_bans: Vec<_> = history.iter().filter(|s| s.event.is_new_ban()).collect();
    let geo = history
        .iter()
        .rev()
        .find_map(|s| s.event.geo.clone())
        .unwrap_or_default();
    let mut matches: Vec<String> = Vec::new();
    for line in history.iter().rev().flat_map(|s| &s.event.matches) {
        if matches.len() < 50 && !matches.contains(line) {
            matches.push(line.clone());
        }
    }
    let mut counts: BTreeMap<IpAddr, u64> = BTreeMap::new();
    for s in nearby
        .iter()
        .filter(|s| s.event.is_new_ban() && s.event.ip != ip)
    {
        *counts.entry(s.event.ip).or_default() += 1;
    }
    let mut neighbours: Vec<Neighbour> = counts
        .into_iter()
        .map(|(ip, bans)| Neighbour {
            ip: ip.to_string(),
            bans,
        })
        .collect();
    neighbours.sort_by_key(|n| std::cmp::Reverse(n.bans));
    neighbours.truncate(20);
    Ok(Some(IpDetail {
        ip: ip.to_string(),
        network: network.to_string(),
        bans: new_bans.len() as u64,
        first_seen: history.first().map(|s| clock.show(s.event.time)),
        last_seen: history.last().map(|s| clock.show(s.event.time)),
        first_seen_iso: history.first().map(|s| s.event.time),
        last_seen_iso: history.last().map(|s| s.event.time),
        country: geo.country,
        city: geo.city,
        latitude: geo.latitude,
        longitude: geo.longitude,
        asn: geo.asn,
        as_org: geo.as_org,
        jails: history.iter().map(|s| s.event.jail.clone()).collect(),
        hosts: history.iter().map(|s| s.event.host.clone()).collect(),
        matches,
        events_total: history.len() as u64,
        events_offset: offset as u64,
        timeline: crate::timeline::of(&history, clock.0),
        events: history
            .into_iter()
            .rev()
            .skip(offset)
            .take(limit)
            .map(|e| clock.event(e))
            .collect(),
        neighbours,
    }))
}

/// One page of an event search, with the total when asked for.
#[derive(Serialize)]
pub struct EventPage {
    pub total: Option<u64>,
    pub offset: u64,
    pub limit: u32,
    /// `after=` for the next page, when this one is full.
    pub next: Option<String>,
    pub events: Vec<EventRow>,
}

/// A page of `filter`'s events; counting them all costs a pass over the
/// matching index entries, so callers that do not show a total skip it.
pub async fn event_page(
    store: &dyn Storage,
    clock: Clock,
    filter: &EventFilter,
    page: Page,
    with_total: bool,
) -> Result<EventPage, WebError> {
    let total = async {
        match with_total {
            true => store.count_events(filter).await.map(Some),
            false => Ok(None),
        }
    };
    let (total, events) = tokio::try_join!(total, store.events(filter, page))?;
    let next = (events.len() == page.limit as usize)
        .then(|| events.last().map(|e| e.cursor().token()))
        .flatten();
    Ok(EventPage {
        total,
        offset: page.offset,
        limit: page.limit,
        next,
        events: events.into_iter().map(|e| clock.event(e)).collect(),
    })
}

/// Newest first, as tables show events.
pub fn newest_first(limit: u32, offset: u64) -> Page {
    Page {
        limit,
        offset,
        order: Order::Desc,
        after: None,
    }
}
