//! The sharing policy: which bans recorded on a host become `ban` decisions
//! for every host. Run by whoever stores the bans (the ban path's writer)
//! right after storing them; a ban makes at most one decision however often it
//! is stored again ([`Decision::key`] is the event's id).

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use ipnetwork::IpNetwork;

use crate::config::ShareSettings;
use crate::decision::{Action, Decision, Ledger};
use crate::error::{Error, Result};
use crate::event::{BanEvent, EventKind};
use crate::geo::reserved_range;
use crate::query::{EventFilter, Page};
use crate::storage::Storage;
use crate::timearg::parse_age;

/// The jail agents ban shared addresses in unless `[share] jail` says otherwise.
pub const SHARED_JAIL: &str = "aegis-shared";
/// The name decisions give the policy in their origin.
const RULE: &str = "share";

/// `[share]`, checked.
#[derive(Debug, Clone)]
pub struct SharePolicy {
    jail: String,
    jails: Vec<String>,
    min_hosts: u32,
    min_bans: u32,
    within: Duration,
    duration: Duration,
    max_duration: Duration,
    per_minute: u32,
}

/// What one pass of the policy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Shared {
    /// Decisions made (or found already made from the same ban).
    pub decided: Vec<Decision>,
    /// Hosts whose circuit breaker is open: their bans were not shared.
    pub tripped: BTreeSet<String>,
}

impl SharePolicy {
    /// The policy `[share]` describes; `None` when sharing is off. A value
    /// that cannot work is a configuration error naming its key.
    pub fn from_settings(settings: &ShareSettings) -> Result<Option<Self>> {
        if !settings.enabled {
            return Ok(None);
        }
        let age = |key: &str, value: &Option<String>, default: &str| {
            parse_age(value.as_deref().unwrap_or(default))
                .map_err(|e| Error::Config(format!("[share] {key}: {e}")))
        };
        let at_least_one = |key: &str, value: Option<u32>, default: u32| match value {
            Some(0) => Err(Error::Config(format!("[share] {key} must be at least 1"))),
            v => Ok(v.unwrap_or(default)),
        };
        let policy = SharePolicy {
            jail: settings.jail.clone().unwrap_or_else(|| SHARED_JAIL.into()),
            jails: settings.jails.clone(),
            min_hosts: at_least_one("min_hosts", settings.min_hosts, 1)?,
            min_bans: at_least_one("min_bans", settings.min_bans, 1)?,
            within: age("within", &settings.within, "1h")?,
            duration: age("duration", &settings.duration, "1h")?,
            max_duration: age("max_duration", &settings.max_duration, "7d")?,
            per_minute: at_least_one("per_minute", settings.per_minute, 30)?,
        };
        if policy.jails.contains(&policy.jail) {
            return Err(Error::Config(format!(
                "[share] jails names {:?}, the shared jail itself: its bans came from other hosts",
                policy.jail
            )));
        }
        if policy.duration > policy.max_duration {
            return Err(Error::Config(
                "[share] duration is longer than max_duration".into(),
            ));
        }
        Ok(Some(policy))
    }

    /// The jail shared bans are applied in.
    pub fn jail(&self) -> &str {
        &self.jail
    }

    /// Decides on `events` just stored: every new ban from a shared jail that
    /// meets the thresholds becomes a ban for every host, unless its address is
    /// private or reserved, a reporting host's own, or allowed, or its host's
    /// circuit breaker is open.
    pub async fn share(&self, store: &dyn Storage, events: &[BanEvent]) -> Result<Shared> {
        let mut shared = Shared::default();
        let candidates: Vec<&BanEvent> = events.iter().filter(|e| self.shares(e)).collect();
        if candidates.is_empty() {
            return Ok(shared);
        }
        let log = store.decision_log();
        let protected: Vec<IpAddr> = log
            .agents()
            .await?
            .into_iter()
            .flat_map(|a| a.addresses)
            .collect();
        let now = Utc::now();
        for event in candidates {
            if protected.contains(&event.ip) || shared.tripped.contains(&event.host) {
                continue;
            }
            let mut ledger = Ledger::default();
            for decision in log.on(event.ip).await? {
                ledger.apply(&decision, now);
            }
            let until = Some(now + self.length(event));
            if ledger.allow_of(IpNetwork::from(event.ip)).is_some()
                || self.already_banned(&ledger, event.ip, until, now)
                || !self.meets_thresholds(store, event, now).await?
            {
                continue;
            }
            if log
                .made_from(&event.host, now - Duration::minutes(1))
                .await?
                >= u64::from(self.per_minute)
            {
                tracing::warn!(
                    host = %event.host,
                    per_minute = self.per_minute,
                    "circuit breaker open: more than {} shared bans a minute from {}; its bans are not shared until the rate falls",
                    self.per_minute,
                    event.host
                );
                shared.tripped.insert(event.host.clone());
                continue;
            }
            let mut decision = Decision::by_policy(
                IpNetwork::from(event.ip),
                RULE,
                &event.host,
                format!("ban:{}", event.id()),
            );
            decision.reason = format!("banned by {} on {}", event.jail, event.host);
            decision = decision.lasting(self.length(event));
            shared.decided.push(log.decide(&decision).await?);
        }
        Ok(shared)
    }

    /// Whether `host`'s circuit breaker is open: its bans made `per_minute`
    /// decisions in the last minute, and the next are not shared.
    pub async fn breaker_open(&self, store: &dyn Storage, host: &str) -> Result<bool> {
        let made = store
            .decision_log()
            .made_from(host, Utc::now() - Duration::minutes(1))
            .await?;
        Ok(made >= u64::from(self.per_minute))
    }

    /// Whether `event` is a ban this policy considers at all.
    fn shares(&self, event: &BanEvent) -> bool {
        event.kind == EventKind::Ban
            && !event.restored
            && event.jail != self.jail
            && (self.jails.is_empty() || self.jails.contains(&event.jail))
            && reserved_range(event.ip).is_none()
    }

    /// The shared ban's length: the local ban's, capped; permanent bans get the cap.
    fn length(&self, event: &BanEvent) -> Duration {
        match event.bantime {
            Some(secs) if secs > 0 => Duration::seconds(secs).min(self.max_duration),
            Some(_) => self.max_duration,
            None => self.duration,
        }
    }

    /// A ban for every host in force that lasts about as long already (to
    /// within a tenth of the new ban, or a minute): a new decision would only
    /// repeat it.
    fn already_banned(
        &self,
        ledger: &Ledger,
        ip: IpAddr,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> bool {
        let wanted = until.map(|u| u - ((u - now) / 10).max(Duration::minutes(1)));
        ledger.in_force(now).iter().any(|d| {
            d.action == Action::Ban
                && d.hosts.is_empty()
                && d.target.contains(ip)
                && (d.until.is_none() || d.until >= wanted)
        })
    }

    async fn meets_thresholds(
        &self,
        store: &dyn Storage,
        event: &BanEvent,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        if self.min_hosts <= 1 && self.min_bans <= 1 {
            return Ok(true);
        }
        let filter = EventFilter {
            ip: Some(event.ip),
            kind: Some(EventKind::Ban),
            since: Some(now - self.within),
            ..EventFilter::default()
        };
        let recent = store.events(&filter, Page::first(Page::MAX_LIMIT)).await?;
        let bans = recent.iter().filter(|e| self.shares(&e.event)).count() as u32;
        let hosts: BTreeSet<&str> = recent
            .iter()
            .filter(|e| self.shares(&e.event))
            .map(|e| e.event.host.as_str())
            .collect();
        Ok(bans >= self.min_bans && hosts.len() as u32 >= self.min_hosts)
    }
}
