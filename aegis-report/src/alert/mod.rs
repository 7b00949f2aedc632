//! Alerts: `[[alert]]` rules evaluated every minute against the store, sent
//! to `[[channel]]`s.
//!
//! One evaluation ([`Watcher::tick`]) reads the bans new since the last one
//! (once, for every rule), lets each rule make its alerts, holds them until
//! the rule may send (`every`, `max_per_hour`), hands them to each channel's
//! outbox, and delivers what the outboxes hold, merged into one message per
//! channel. A channel that fails keeps its alerts and is tried again with
//! backoff, so an hour's outage loses nothing and ends in one message, not a
//! flood. Everything it remembers is kept in the store: a restart repeats
//! nothing, and any machine that reaches the store can run the watcher.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use aegis_core::{EventFilter, EventKind, Order, Page, Scope, Settings, Storage, StoredEvent};
use chrono::{DateTime, Duration, Utc};

mod channel;
mod rules;
mod run;
mod state;

pub use channel::{signature, Channel, Failure};
pub use rules::Rule;
pub use run::command;
pub use state::{Alert, Status};

use crate::error::ReportError;
use state::{Held, State, MAX_LINES, STATE};

/// How far back each read of new bans looks for bans that reached the store late.
const LATE: i64 = 15;

/// Bans read per evaluation at most.
const MAX_FEED: usize = 20_000;

/// One message to a channel: one alert, or several merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The headline.
    pub title: String,
    /// The details, a line each.
    pub text: String,
    /// The dashboard's page, when there is one for the whole message.
    pub link: Option<String>,
    /// The alerts it carries.
    pub alerts: Vec<Alert>,
    /// Alerts that were dropped while waiting (the outbox is bounded).
    pub dropped: u64,
}

impl Message {
    fn of(held: Held) -> Message {
        let Held { alerts, dropped } = merge_bans(held);
        let (title, mut lines, link) = match alerts.as_slice() {
            [one] => (one.title.clone(), one.lines.clone(), one.link.clone()),
            many => {
                let mut lines = Vec::new();
                for a in many {
                    lines.push(format!("• {}", a.title));
                    lines.extend(a.lines.iter().map(|l| format!("  {l}")));
                }
                (format!("Aegis: {} alerts", many.len()), lines, None)
            }
        };
        if lines.len() > MAX_LINES {
            let more = lines.len() - MAX_LINES;
            lines.truncate(MAX_LINES);
            lines.push(format!("… and {more} more lines"));
        }
        if dropped > 0 {
            lines.push(format!(
                "({dropped} older alerts were dropped while this channel was unreachable)"
            ));
        }
        Message {
            title,
            text: lines.join("\n"),
            link,
            alerts,
            dropped,
        }
    }

    /// Whether every alert in it says a condition ended.
    pub fn resolved(&self) -> bool {
        !self.alerts.is_empty() && self.alerts.iter().all(|a| a.status == Status::Resolved)
    }

    /// The message `alert test` sends.
    pub fn test(host: &str, channel: &str) -> Message {
        let alert = Alert {
            rule: "test".into(),
            kind: "test".into(),
            status: Status::Event,
            title: format!("Aegis test message from {host}"),
            lines: vec![format!(
                "The channel {channel:?} works: alerts from this watcher will arrive here."
            )],
            count: 1,
            link: None,
            at: Utc::now(),
        };
        Message::of(Held {
            alerts: vec![alert],
            dropped: 0,
        })
    }
}

/// Links to the dashboard's pages, when `[web] public_url` is set.
#[derive(Debug, Clone, Default)]
pub struct Links(Option<String>);

impl Links {
    /// Links under `public_url`.
    pub fn new(public_url: Option<&str>) -> Links {
        Links(public_url.map(|u| u.trim_end_matches('/').to_owned()))
    }

    fn ip(&self, ip: IpAddr) -> Option<String> {
        self.page("ip", &ip.to_string())
    }

    fn page(&self, kind: &str, value: &str) -> Option<String> {
        let base = self.0.as_ref()?;
        Some(if value.is_empty() {
            format!("{base}/{kind}")
        } else {
            format!("{base}/{kind}/{}", encode(value))
        })
    }

    fn scope(&self, scope: &Scope) -> Option<String> {
        match scope {
            Scope { jail: Some(j), .. } => self.page("jail", j),
            Scope { host: Some(h), .. } => self.page("host", h),
            Scope {
                country: Some(c), ..
            } => self.page("country", c),
            _ => self.0.as_ref().map(|b| format!("{b}/")),
        }
    }
}

/// Percent-encodes a path segment (names may hold any printable character).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What one evaluation did.
#[derive(Debug, Default)]
pub struct Tick {
    /// Alerts the rules made.
    pub alerts: usize,
    /// Messages delivered (or printed by a dry run), by channel.
    pub sent: Vec<(String, Message)>,
    /// Channels that failed, with why.
    pub failed: Vec<(String, String)>,
}

/// A channel's alerts that wait to be delivered.
#[derive(Debug)]
pub struct Waiting {
    /// The channel.
    pub channel: String,
    /// Alerts waiting.
    pub alerts: usize,
    /// Not tried again before this time.
    pub retry_at: Option<DateTime<Utc>>,
    /// Why the last try failed.
    pub error: Option<String>,
}

/// The rules and channels, checked, and the store they watch.
pub struct Watcher {
    store: Arc<dyn Storage>,
    rules: Vec<Rule>,
    channels: Vec<Channel>,
    links: Links,
    client: reqwest::Client,
}

impl Watcher {
    /// Checks every `[[alert]]` and `[[channel]]`: a mistake is a configuration
    /// error that names the rule or channel and the key.
    pub fn new(settings: &Settings, store: Arc<dyn Storage>) -> Result<Self, ReportError> {
        let channels = settings
            .channel
            .iter()
            .map(|c| Channel::from_settings(c, &settings.report))
            .collect::<Result<Vec<_>, _>>()?;
        let names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
        unique("[[channel]]", &names)?;
        let rules = settings
            .alert
            .iter()
            .map(|r| Rule::from_settings(r, &names))
            .collect::<Result<Vec<_>, _>>()?;
        unique(
            "[[alert]]",
            &rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        )?;
        Ok(Watcher {
            store,
            rules,
            channels,
            links: Links::new(settings.web.public_url.as_deref()),
            client: reqwest::Client::builder()
                .user_agent(concat!("aegis/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| ReportError::Config(format!("HTTP client: {e}")))?,
        })
    }

    /// The rules, as checked.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The channels, as checked.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// The channel called `name`.
    pub fn channel(&self, name: &str) -> Result<&Channel, ReportError> {
        self.channels
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.channels.iter().map(|c| c.name.as_str()).collect();
                ReportError::Config(format!(
                    "no [[channel]] is named {name:?} (configured: {})",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                ))
            })
    }

    /// Each channel's undelivered alerts, as the store holds them.
    pub async fn waiting(&self) -> Result<Vec<Waiting>, ReportError> {
        Ok(self
            .load()
            .await?
            .outbox
            .into_iter()
            .filter(|(_, o)| !o.held.is_empty())
            .map(|(channel, o)| Waiting {
                channel,
                alerts: o.held.alerts.len(),
                retry_at: o.retry_at,
                error: o.error,
            })
            .collect())
    }

    /// Sends `message` through `channel` now, outside any outbox.
    pub async fn send(&self, channel: &Channel, message: &Message) -> Result<(), Failure> {
        channel.send(&self.client, message).await
    }

    /// Evaluates every rule at `now` and delivers what is due. A dry run
    /// returns the messages instead of sending them and keeps no state.
    pub async fn tick(&self, now: DateTime<Utc>, dry_run: bool) -> Result<Tick, ReportError> {
        let mut state = self.load().await?;
        let new_bans = self.new_bans(&mut state, now).await?;
        let mut tick = Tick::default();
        let mut rule_states = std::mem::take(&mut state.rules);
        for rule in &self.rules {
            let rs = rule_states.entry(rule.name.clone()).or_default();
            let cx = rules::Context {
                rule: &rule.name,
                kind: rule.kind(),
                store: self.store.as_ref(),
                now,
                new_bans: &new_bans,
                links: &self.links,
            };
            let alerts = rule.evaluate(&cx, rs).await?;
            tick.alerts += alerts.len();
            rs.held.push(alerts);
            if rs.held.is_empty() || !rs.may_send(now, rule.every, rule.max_per_hour) {
                continue;
            }
            rs.sent.push(now);
            let held = merge_bans(rs.held.take());
            for channel in &rule.channels {
                let outbox = state.outbox.entry(channel.clone()).or_default();
                outbox.held.push(held.alerts.iter().cloned());
                outbox.held.dropped += held.dropped;
            }
        }
        // Rules and channels no longer configured leave nothing behind.
        rule_states.retain(|name, _| self.rules.iter().any(|r| r.name == *name));
        state.rules = rule_states;
        state
            .outbox
            .retain(|name, _| self.channels.iter().any(|c| c.name == *name));
        for channel in &self.channels {
            let Some(outbox) = state.outbox.get_mut(&channel.name) else {
                continue;
            };
            if outbox.held.is_empty() || outbox.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            let message = Message::of(outbox.held.clone());
            if dry_run {
                tick.sent.push((channel.name.clone(), message));
                continue;
            }
            match channel.send(&self.client, &message).await {
                Ok(()) => {
                    outbox.delivered();
                    tick.sent.push((channel.name.clone(), message));
                }
                Err(failure) => {
                    eprintln!(
                        "aegis-report: {} alert(s) not sent to channel {:?}: {}",
                        message.alerts.len(),
                        channel.name,
                        failure.error
                    );
                    outbox.failed(now, failure.error.clone(), failure.retry_after);
                    tick.failed.push((channel.name.clone(), failure.error));
                }
            }
        }
        if !dry_run {
            let value = serde_json::to_value(&state)
                .map_err(|e| ReportError::Template(format!("alert state: {e}")))?;
            self.store.set_state(STATE, &value).await?;
        }
        Ok(tick)
    }

    /// The state kept in the store; one that cannot be read (written by a
    /// later version, say) is replaced, and the log says so.
    async fn load(&self) -> Result<State, ReportError> {
        Ok(match self.store.state(STATE).await? {
            Some(value) => serde_json::from_value(value).unwrap_or_else(|e| {
                eprintln!(
                    "aegis-report: the stored alert state is unreadable ({e}): starting afresh"
                );
                State::default()
            }),
            None => State::default(),
        })
    }

    /// The bans stored since the last evaluation, read once for every rule.
    async fn new_bans(
        &self,
        state: &mut State,
        now: DateTime<Utc>,
    ) -> Result<Vec<StoredEvent>, ReportError> {
        let late = Duration::minutes(LATE);
        // The first evaluation starts from now: history is the report's business.
        let since = match state.feed.last {
            Some(last) => (last.min(now) - late).max(now - Duration::days(1)),
            None => now - Duration::minutes(1),
        };
        let filter = EventFilter {
            kind: Some(EventKind::Ban),
            since: Some(since),
            ..EventFilter::default()
        };
        let mut page = Page {
            order: Order::Asc,
            ..Page::first(Page::MAX_LIMIT)
        };
        let mut fresh = Vec::new();
        loop {
            let events = self.store.events(&filter, page).await?;
            let Some(last) = events.last() else { break };
            page.after = Some(last.cursor());
            let full = events.len() == page.limit as usize;
            for e in events {
                let id = e.id.to_hex();
                if !e.event.restored && !state.feed.seen.contains_key(&id) {
                    state.feed.seen.insert(id, e.event.time);
                    fresh.push(e);
                }
            }
            if !full || fresh.len() >= MAX_FEED {
                break;
            }
        }
        // What the next read will not look at again need not be remembered.
        state.feed.seen.retain(|_, t| *t >= now - late);
        state.feed.last = Some(now);
        Ok(fresh)
    }
}

/// Each `bans` rule's alerts as one, in the place of its first: the bans
/// added up, the lines kept up to the bound.
fn merge_bans(held: Held) -> Held {
    let mut alerts: Vec<Alert> = Vec::with_capacity(held.alerts.len());
    for alert in held.alerts {
        let same = alerts
            .iter_mut()
            .find(|a| a.kind == "bans" && alert.kind == "bans" && a.rule == alert.rule);
        let Some(into) = same else {
            alerts.push(alert);
            continue;
        };
        into.count += alert.count;
        let listed = std::mem::take(&mut into.lines)
            .into_iter()
            .chain(alert.lines);
        into.lines = rules::bounded_to(listed, into.count);
        into.title = rules::bans_title(&into.rule, into.count);
        if into.link != alert.link {
            into.link = None;
        }
        into.at = alert.at;
    }
    Held {
        alerts,
        dropped: held.dropped,
    }
}

fn unique(what: &str, names: &[&str]) -> Result<(), ReportError> {
    let mut seen = BTreeMap::new();
    for name in names {
        if seen.insert(*name, ()).is_some() {
            return Err(ReportError::Config(format!(
                "two {what}s are named {name:?}: give each its own name"
            )));
        }
    }
    Ok(())
}
