//! Rules: `[[alert]]` checked at start, and what each asks of the store.
//!
//! Every rule reads a bounded slice of the store per evaluation (the bans new
//! since the last one, or counts over its own period), never the history.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use aegis_core::{
    parse_age, parse_country, AlertRule, AlertWhen, EventFilter, EventKind, IpNetwork, Order, Page,
    Scope, StatsQuery, Storage, StoredEvent, TopBy,
};
use chrono::{DateTime, Duration, Utc};

use super::state::{Alert, RuleState, Status, MAX_LINES};
use super::Links;
use crate::error::ReportError;

/// Addresses a repeat-offender rule looks up per evaluation at most.
const MAX_CANDIDATES: usize = 500;

/// Sources or hosts read for a ranking at most.
const MAX_KEYS: u32 = 10_000;

/// One `[[alert]]`, checked.
#[derive(Debug)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// The channels it sends to.
    pub channels: Vec<String>,
    /// One message per `every` at most.
    pub every: Duration,
    /// Messages an hour at most.
    pub max_per_hour: u32,
    check: Check,
}

#[derive(Debug)]
enum Check {
    Bans {
        scope: Scope,
        network: Option<IpNetwork>,
        asn: Option<u32>,
    },
    Spike {
        period: Duration,
        factor: f64,
        min: u64,
        days: u32,
        scope: Scope,
    },
    Repeat {
        bans: Option<u64>,
        hosts: Option<u64>,
        within: Duration,
    },
    NewSource {
        by: TopBy,
        days: u32,
    },
    Silent {
        after: Duration,
        known_within: Duration,
    },
}

/// What an evaluation knows: the rule, the store, the time, and the bans new
/// since the last.
pub(super) struct Context<'a> {
    pub rule: &'a str,
    pub kind: &'static str,
    pub store: &'a dyn Storage,
    pub now: DateTime<Utc>,
    pub new_bans: &'a [StoredEvent],
    pub links: &'a Links,
}

impl Rule {
    /// Checks one `[[alert]]` against the configured channel names; every
    /// problem names the rule and the key.
    pub fn from_settings(r: &AlertRule, channels: &[&str]) -> Result<Self, ReportError> {
        let name = r.name.trim();
        if name.is_empty() {
            return Err(ReportError::Config(
                "an [[alert]] has no name: set name = \"…\" (it heads every message)".into(),
            ));
        }
        let bad = |key: &str, why: String| {
            ReportError::Config(format!("[[alert]] {name:?}: {key}: {why}"))
        };
        if r.channels.is_empty() {
            return Err(bad(
                "channels",
                "no channel: set channels = [\"…\"], naming [[channel]]s".into(),
            ));
        }
        for c in &r.channels {
            if !channels.contains(&c.as_str()) {
                return Err(bad(
                    "channels",
                    format!(
                        "no [[channel]] is named {c:?} (configured: {})",
                        list(channels)
                    ),
                ));
            }
        }
        let age = |key: &str, value: Option<&str>, default: &str, min: Duration, max: Duration| {
            let value = value.unwrap_or(default);
            let age = parse_age(value).map_err(|e| bad(key, e.to_string()))?;
            if age < min || age > max {
                return Err(bad(
                    key,
                    format!(
                        "{value:?} is out of range: use {} to {}",
                        human(min),
                        human(max)
                    ),
                ));
            }
            Ok(age)
        };
        let day = Duration::days(1);
        let scope = |jail: &Option<String>, host: &Option<String>, country: Option<&String>| {
            Ok::<_, ReportError>(Scope {
                jail: jail.clone(),
                host: host.clone(),
                country: country
                    .map(|c| parse_country(c).map_err(|e| bad("country", e.to_string())))
                    .transpose()?,
            })
        };
        let check = match &r.when {
            AlertWhen::Bans {
                jail,
                host,
                country,
                network,
                asn,
            } => Check::Bans {
                scope: scope(jail, host, country.as_ref())?,
                network: network
                    .as_deref()
                    .map(|n| {
                        n.parse().map_err(|e| {
                            bad(
                                "network",
                                format!("{n:?} is not a network ({e}): use 203.0.113.0/24"),
                            )
                        })
                    })
                    .transpose()?,
                asn: *asn,
            },
            AlertWhen::Spike {
                period,
                factor,
                min,
                days,
                jail,
                host,
            } => {
                let factor = factor.unwrap_or(3.0);
                if !factor.is_finite() || factor <= 1.0 {
                    return Err(bad(
                        "factor",
                        format!(
                            "{factor} would call every period a spike: use more than 1, e.g. 3"
                        ),
                    ));
                }
                let min = min.unwrap_or(20);
                if min == 0 {
                    return Err(bad(
                        "min",
                        "0 would call a period without bans a spike: use 1 or more".into(),
                    ));
                }
                let days = days.unwrap_or(7);
                if !(1..=90).contains(&days) {
                    return Err(bad("days", format!("{days}: use 1 to 90")));
                }
                Check::Spike {
                    period: age("period", period.as_deref(), "1h", Duration::minutes(5), day)?,
                    factor,
                    min,
                    days,
                    scope: scope(jail, host, None)?,
                }
            }
            AlertWhen::RepeatOffender {
                bans,
                hosts,
                within,
            } => {
                let bans = bans.or(if hosts.is_none() { Some(10) } else { None });
                for (key, value) in [("bans", bans), ("hosts", *hosts)] {
                    if let Some(n) = value.filter(|n| !(2..=1_000).contains(n)) {
                        return Err(bad(
                            key,
                            format!("{n}: use 2 to 1000 (1 would make every banned address an offender)"),
                        ));
                    }
                }
                Check::Repeat {
                    bans,
                    hosts: *hosts,
                    within: age(
                        "within",
                        within.as_deref(),
                        "24h",
                        Duration::minutes(1),
                        Duration::days(365),
                    )?,
                }
            }
            AlertWhen::NewSource { by, days } => {
                let by = match by.as_str() {
                    "country" => TopBy::Country,
                    "asn" => TopBy::Asn,
                    other => {
                        return Err(bad("by", format!("{other:?}: use \"country\" or \"asn\"")))
                    }
                };
                let days = days.unwrap_or(30);
                if !(1..=365).contains(&days) {
                    return Err(bad("days", format!("{days}: use 1 to 365")));
                }
                Check::NewSource { by, days }
            }
            AlertWhen::SilentHost {
                after,
                known_within,
            } => {
                let known_within = age(
                    "known_within",
                    known_within.as_deref(),
                    "30d",
                    Duration::hours(1),
                    Duration::days(365),
                )?;
                let after = age(
                    "after",
                    after.as_deref(),
                    "1h",
                    Duration::minutes(2),
                    Duration::days(30),
                )?;
                if after >= known_within {
                    return Err(bad(
                        "after",
                        "must be shorter than known_within, or no host could ever be silent".into(),
                    ));
                }
                Check::Silent {
                    after,
                    known_within,
                }
            }
        };
        let default_every = if matches!(check, Check::Bans { .. }) {
            "5m"
        } else {
            "1m"
        };
        let every = age(
            "every",
            r.every.as_deref(),
            default_every,
            Duration::minutes(1),
            day,
        )?;
        let max_per_hour = r.max_per_hour.unwrap_or(12);
        if !(1..=60).contains(&max_per_hour) {
            return Err(bad("max_per_hour", format!("{max_per_hour}: use 1 to 60")));
        }
        Ok(Rule {
            name: name.to_owned(),
            channels: r.channels.clone(),
            every,
            max_per_hour,
            check,
        })
    }

    /// The kind, as the configuration names it.
    pub fn kind(&self) -> &'static str {
        match self.check {
            Check::Bans { .. } => "bans",
            Check::Spike { .. } => "spike",
            Check::Repeat { .. } => "repeat-offender",
            Check::NewSource { .. } => "new-source",
            Check::Silent { .. } => "silent-host",
        }
    }

    /// Evaluates the rule once, returning the alerts it makes.
    pub(super) async fn evaluate(
        &self,
        cx: &Context<'_>,
        state: &mut RuleState,
    ) -> aegis_core::Result<Vec<Alert>> {
        match &self.check {
            Check::Bans {
                scope,
                network,
                asn,
            } => Ok(bans(cx, scope, network, asn)),
            Check::Spike {
                period,
                factor,
                min,
                days,
                scope,
            } => spike(cx, state, period, factor, min, days, scope).await,
            Check::Repeat {
                bans,
                hosts,
                within,
            } => repeat_offender(cx, state, bans, hosts, within).await,
            Check::NewSource { by, days } => new_source(cx, state, by, days).await,
            Check::Silent {
                after,
                known_within,
            } => silent_host(cx, state, after, known_within).await,
        }
    }
}

/// New bans that match the rule's filter, as one alert.
fn bans(
    cx: &Context<'_>,
    scope: &Scope,
    network: &Option<IpNetwork>,
    asn: &Option<u32>,
) -> Vec<Alert> {
    let matched: Vec<&StoredEvent> = cx
        .new_bans
        .iter()
        .filter(|e| {
            let ev = &e.event;
            scope.jail.as_ref().is_none_or(|j| *j == ev.jail)
                && scope.host.as_ref().is_none_or(|h| *h == ev.host)
                && scope.country.as_ref().is_none_or(|c| Some(c) == country(e))
                && network.is_none_or(|n| n.contains(ev.ip))
                && asn.is_none_or(|a| Some(a) == ev.geo.as_ref().and_then(|g| g.asn))
        })
        .collect();
    if matched.is_empty() {
        return vec![];
    }
    let ips: BTreeSet<IpAddr> = matched.iter().map(|e| e.event.ip).collect();
    let link = match ips.iter().next() {
        Some(ip) if ips.len() == 1 => cx.links.ip(*ip),
        _ => cx.links.scope(scope),
    };
    let mut a = cx.alert(
        Status::Event,
        String::new(),
        bounded(matched.iter().map(|e| ban_line(e))),
        link,
    );
    a.count = matched.len() as u64;
    a.title = bans_title(cx.rule, a.count);
    vec![a]
}

/// The last `period`'s bans against the median of the same period on the days before.
async fn spike(
    cx: &Context<'_>,
    state: &mut RuleState,
    period: &Duration,
    factor: &f64,
    min: &u64,
    days: &u32,
    scope: &Scope,
) -> aegis_core::Result<Vec<Alert>> {
    let ending = |end: DateTime<Utc>| StatsQuery {
        since: end - *period,
        until: end,
        scope: scope.clone(),
    };
    let now_count = cx.store.ban_count(&ending(cx.now)).await?;
    let mut usual = Vec::with_capacity(*days as usize);
    for d in 1..=*days {
        let end = cx.now - Duration::days(d.into());
        usual.push(cx.store.ban_count(&ending(end)).await?);
    }
    let median = median(&mut usual);
    let spiking = now_count >= *min && now_count as f64 >= factor * median;
    let open = state.open.contains_key("spike");
    let what = format!("{now_count} bans in the last {}", human(*period));
    let usual = format!("usually {median} at this time of day over the last {days} days");
    Ok(match (spiking, open) {
        (true, false) => {
            state.open.insert("spike".into(), cx.now);
            vec![cx.alert(
                Status::Firing,
                format!("{}: spike, {what}", cx.rule),
                vec![format!("{what}; {usual}.")],
                cx.links.scope(scope),
            )]
        }
        (false, true) => {
            state.open.remove("spike");
            vec![cx.alert(
                Status::Resolved,
                format!("{}: resolved, {what}", cx.rule),
                vec![format!("{what}; {usual}.")],
                cx.links.scope(scope),
            )]
        }
        _ => vec![],
    })
}

/// Addresses among the new bans that cross `bans` or `hosts` within `within`;
/// a condition ends when the address has had no ban for `within`.
async fn repeat_offender(
    cx: &Context<'_>,
    state: &mut RuleState,
    bans: &Option<u64>,
    hosts: &Option<u64>,
    within: &Duration,
) -> aegis_core::Result<Vec<Alert>> {
    let mut alerts = Vec::new();
    // A condition ends when the address has had no ban for `within`.
    let mut latest: BTreeMap<IpAddr, DateTime<Utc>> = BTreeMap::new();
    for e in cx.new_bans {
        let t = latest.entry(e.event.ip).or_insert(e.event.time);
        *t = (*t).max(e.event.time);
    }
    let mut looked = 0;
    for (ip, last) in &latest {
        let key = ip.to_string();
        if let Some(seen) = state.open.get_mut(&key) {
            *seen = (*seen).max(*last);
            continue;
        }
        if looked == MAX_CANDIDATES {
            break;
        }
        looked += 1;
        let history = cx
            .store
            .events(
                &EventFilter {
                    ip: Some(*ip),
                    kind: Some(EventKind::Ban),
                    since: Some(cx.now - *within),
                    ..EventFilter::default()
                },
                Page::first(1_000),
            )
            .await?;
        let new: Vec<&StoredEvent> = history.iter().filter(|e| !e.event.restored).collect();
        let host_count = new
            .iter()
            .map(|e| &e.event.host)
            .collect::<BTreeSet<_>>()
            .len() as u64;
        let ban_count = new.len() as u64;
        if bans.is_some_and(|b| ban_count >= b) || hosts.is_some_and(|h| host_count >= h) {
            state.open.insert(key, *last);
            alerts.push(cx.alert(
                Status::Firing,
                format!(
                    "{}: {ip} banned {ban_count} times by {host_count} host{} in the last {}",
                    cx.rule,
                    plural(host_count),
                    human(*within)
                ),
                bounded(new.iter().rev().map(|e| ban_line(e))),
                cx.links.ip(*ip),
            ));
        }
    }
    let ended: Vec<String> = state
        .open
        .iter()
        .filter(|(_, last)| cx.now - **last >= *within)
        .map(|(k, _)| k.clone())
        .collect();
    for key in ended {
        state.open.remove(&key);
        alerts.push(cx.alert(
            Status::Resolved,
            format!(
                "{}: resolved, {key} not banned for {}",
                cx.rule,
                human(*within)
            ),
            vec![],
            key.parse().ok().and_then(|ip| cx.links.ip(ip)),
        ));
    }
    Ok(alerts)
}

/// Countries or ASNs among the new bans not seen in the `days` before; the
/// first evaluation learns the sources from the store.
async fn new_source(
    cx: &Context<'_>,
    state: &mut RuleState,
    by: &TopBy,
    days: &u32,
) -> aegis_core::Result<Vec<Alert>> {
    let today = cx.now.timestamp().div_euclid(86_400);
    let source = |e: &StoredEvent| match by {
        TopBy::Asn => e
            .event
            .geo
            .as_ref()
            .and_then(|g| g.asn)
            .map(|a| format!("AS{a}")),
        _ => country(e).cloned(),
    };
    if !state.primed {
        let known = cx
            .store
            .top(
                &StatsQuery::range(cx.now - Duration::days((*days).into()), cx.now),
                *by,
                MAX_KEYS,
            )
            .await?;
        state.known = known.into_iter().map(|t| (t.key, today)).collect();
        state
            .known
            .extend(cx.new_bans.iter().filter_map(source).map(|k| (k, today)));
        state.primed = true;
        return Ok(vec![]);
    }
    state
        .known
        .retain(|_, day| today - *day <= i64::from(*days));
    let mut fresh: BTreeMap<String, Vec<&StoredEvent>> = BTreeMap::new();
    for e in cx.new_bans {
        let Some(key) = source(e) else { continue };
        if !state.known.contains_key(&key) || fresh.contains_key(&key) {
            fresh.entry(key).or_default().push(e);
        } else {
            state.known.insert(key, today);
        }
    }
    Ok(fresh
        .into_iter()
        .map(|(key, events)| {
            state.known.insert(key.clone(), today);
            let link = match by {
                TopBy::Country => cx.links.page("country", &key),
                _ => cx.links.ip(events[0].event.ip),
            };
            cx.alert(
                Status::Event,
                format!("{}: first bans from {key} in {days} days", cx.rule),
                bounded(events.iter().map(|e| ban_line(e))),
                link,
            )
        })
        .collect())
}

/// Hosts (and agents) that reported within `known_within` and not for `after`.
async fn silent_host(
    cx: &Context<'_>,
    state: &mut RuleState,
    after: &Duration,
    known_within: &Duration,
) -> aegis_core::Result<Vec<Alert>> {
    let hosts = |since: DateTime<Utc>| async move {
        let top = cx
            .store
            .top(&StatsQuery::range(since, cx.now), TopBy::Host, MAX_KEYS)
            .await?;
        Ok::<BTreeSet<String>, aegis_core::Error>(top.into_iter().map(|t| t.key).collect())
    };
    let known = hosts(cx.now - *known_within).await?;
    let recent = hosts(cx.now - *after).await?;
    let mut quiet: BTreeMap<String, (Option<DateTime<Utc>>, &str)> = BTreeMap::new();
    for host in known.difference(&recent) {
        quiet.insert(format!("host {host}"), (None, host));
    }
    for agent in cx.store.decision_log().agents().await? {
        let age = cx.now - agent.seen;
        if age >= *after && age < *known_within {
            quiet.insert(format!("agent {}", agent.host), (Some(agent.seen), ""));
        }
    }
    let mut alerts = Vec::new();
    for (key, (seen, host)) in &quiet {
        if state.open.contains_key(key) {
            continue;
        }
        state.open.insert(key.clone(), cx.now);
        let (title, link) = match seen {
            Some(seen) => (
                format!(
                    "{}: the {key} stopped reporting (last report {})",
                    cx.rule,
                    seen.format("%Y-%m-%d %H:%M UTC")
                ),
                cx.links.page("decisions", ""),
            ),
            None => (
                format!(
                    "{}: {key} has sent nothing for {}{}",
                    cx.rule,
                    human(*after),
                    last_event(cx, host, *known_within).await?
                ),
                cx.links.page("host", host),
            ),
        };
        alerts.push(cx.alert(Status::Firing, title, vec![], link));
    }
    let ended: Vec<String> = state
        .open
        .keys()
        .filter(|k| !quiet.contains_key(*k))
        .cloned()
        .collect();
    for key in ended {
        state.open.remove(&key);
        let host = key.split_once(' ').map_or("", |(_, h)| h);
        // A host that fell out of `known_within` is no longer expected, not back.
        if key.starts_with("host ") && !recent.contains(host) {
            continue;
        }
        alerts.push(cx.alert(
            Status::Resolved,
            format!("{}: resolved, the {key} reports again", cx.rule),
            vec![],
            cx.links.page("host", host),
        ));
    }
    Ok(alerts)
}

impl Context<'_> {
    fn alert(
        &self,
        status: Status,
        title: String,
        lines: Vec<String>,
        link: Option<String>,
    ) -> Alert {
        Alert {
            rule: self.rule.to_owned(),
            kind: self.kind.into(),
            status,
            title,
            count: lines.len().max(1) as u64,
            lines,
            link,
            at: self.now,
        }
    }
}

async fn last_event(cx: &Context<'_>, host: &str, within: Duration) -> aegis_core::Result<String> {
    let last = cx
        .store
        .events(
            &EventFilter {
                scope: Scope {
                    host: Some(host.to_owned()),
                    ..Scope::ALL
                },
                since: Some(cx.now - within),
                ..EventFilter::default()
            },
            Page {
                order: Order::Desc,
                ..Page::first(1)
            },
        )
        .await?;
    Ok(last
        .first()
        .map(|e| {
            format!(
                " (last event {})",
                e.event.time.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .unwrap_or_default())
}

fn country(e: &StoredEvent) -> Option<&String> {
    e.event.geo.as_ref().and_then(|g| g.country.as_ref())
}

/// One ban, as every message lists it. Only names and numbers: no matched
/// line or user name (attacker-chosen text) ever reaches a channel.
pub(super) fn ban_line(e: &StoredEvent) -> String {
    let ev = &e.event;
    let mut place = String::new();
    if let Some(geo) = &ev.geo {
        if let Some(c) = &geo.country {
            place += &format!(" {c}");
        }
        if let Some(a) = geo.asn {
            place += &format!(" AS{a}");
        }
    }
    let failures = ev
        .failures
        .map(|f| format!(", {f} failure{}", plural(f.into())))
        .unwrap_or_default();
    format!(
        "{}{place}: {} on {} at {}{failures}",
        ev.ip,
        ev.jail,
        ev.host,
        ev.time.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// At most [`MAX_LINES`] lines, the last saying how many more there were.
pub(super) fn bounded(lines: impl ExactSizeIterator<Item = String>) -> Vec<String> {
    let total = lines.len() as u64;
    bounded_to(lines, total)
}

/// The first [`MAX_LINES`] of `lines`, which list some of `total` things,
/// and a last line saying how many are not listed.
pub(super) fn bounded_to(lines: impl Iterator<Item = String>, total: u64) -> Vec<String> {
    let mut out: Vec<String> = lines.filter(|l| !is_more(l)).take(MAX_LINES).collect();
    if total > out.len() as u64 {
        out.push(format!("{MORE}{} more", total - out.len() as u64));
    }
    out
}

/// How the line that counts what a list leaves out begins.
const MORE: &str = "… and ";

/// Whether `line` is that line rather than one of the list.
fn is_more(line: &str) -> bool {
    line.starts_with(MORE)
}

pub(super) fn bans_title(rule: &str, count: u64) -> String {
    format!("{rule}: {count} new ban{}", plural(count))
}

fn median(values: &mut [u64]) -> f64 {
    values.sort_unstable();
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2] as f64,
        n => (values[n / 2 - 1] + values[n / 2]) as f64 / 2.0,
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `90m` as "1h 30m", `7d` as "7d".
pub(super) fn human(d: Duration) -> String {
    let s = d.num_seconds();
    let parts = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut out = Vec::new();
    let mut rest = s;
    for (unit, name) in parts {
        if rest >= unit {
            out.push(format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    if out.is_empty() {
        "0s".into()
    } else {
        out.join(" ")
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [5, 1, 3]), 3.0);
        assert_eq!(median(&mut [4, 1, 3, 2]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::minutes(90)), "1h 30m");
        assert_eq!(human(Duration::days(7)), "7d");
        assert_eq!(human(Duration::seconds(5)), "5s");
    }

    #[test]
    fn long_lists_say_how_many_more() {
        let lines = bounded((0..MAX_LINES + 3).map(|i| i.to_string()));
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert_eq!(lines.last().unwrap(), "… and 3 more");
    }
}
