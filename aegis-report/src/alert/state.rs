//! What the watcher remembers between evaluations, kept in the store (one JSON
//! value) so that a restart, or a watcher moved to another machine, neither
//! repeats an alert nor forgets one that waits for its channel.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The name of the watcher's state in the store.
pub(super) const STATE: &str = "alerts";

/// Alerts a rule or a channel holds at most; older ones are counted, not kept.
const MAX_HELD: usize = 500;

/// Lines of one message at most; the rest are counted.
pub(super) const MAX_LINES: usize = 40;

/// Whether an alert reports something that happened, or a condition that
/// began or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Something happened (new bans, a new source).
    Event,
    /// A condition began.
    Firing,
    /// A condition that fired has ended.
    Resolved,
}

/// One alert, as every channel receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The rule's name.
    pub rule: String,
    /// The rule's kind (`bans`, `spike`, `repeat-offender`, `new-source`, `silent-host`).
    pub kind: String,
    /// Event, firing or resolved.
    pub status: Status,
    /// One line that says it all.
    pub title: String,
    /// The details, a line each.
    pub lines: Vec<String>,
    /// How many things it reports (bans, for `bans`).
    pub count: u64,
    /// The dashboard's page of what it reports, when `[web] public_url` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// When it was made.
    pub at: DateTime<Utc>,
}

/// The watcher's whole state.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct State {
    /// The bans already seen: one read of the store serves every rule.
    #[serde(default)]
    pub feed: Feed,
    /// Each rule's state, by rule name.
    #[serde(default)]
    pub rules: BTreeMap<String, RuleState>,
    /// Each channel's undelivered alerts, by channel name.
    #[serde(default)]
    pub outbox: BTreeMap<String, Outbox>,
}

/// Where the read of new bans stopped.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Feed {
    /// The last evaluation.
    pub last: Option<DateTime<Utc>>,
    /// Ids (hex) of bans already handed to the rules, with their times: bans
    /// reach the store late (spooled while it was down), so each read looks
    /// back and skips these.
    #[serde(default)]
    pub seen: BTreeMap<String, DateTime<Utc>>,
}

/// What one rule remembers.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct RuleState {
    /// Alerts made and not yet sent (`every`, `max_per_hour`).
    #[serde(default)]
    pub held: Held,
    /// When its messages went out, over the last hour.
    #[serde(default)]
    pub sent: Vec<DateTime<Utc>>,
    /// Conditions in force, by what they are about, with when they began.
    #[serde(default)]
    pub open: BTreeMap<String, DateTime<Utc>>,
    /// new-source: each source seen, with the last day (Unix days) it was.
    #[serde(default)]
    pub known: BTreeMap<String, i64>,
    /// new-source: whether `known` has been filled from the store.
    #[serde(default)]
    pub primed: bool,
}

impl RuleState {
    /// Whether the rule may send now: `every` since its last message, and fewer
    /// than `max_per_hour` in the last hour.
    pub fn may_send(&mut self, now: DateTime<Utc>, every: Duration, max_per_hour: u32) -> bool {
        self.sent.retain(|t| now - *t < Duration::hours(1));
        let rested = self.sent.last().is_none_or(|last| now - *last >= every);
        rested && self.sent.len() < max_per_hour as usize
    }
}

/// Alerts waiting, bounded: beyond [`MAX_HELD`] the oldest are dropped and counted.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(super) struct Held {
    /// The alerts, oldest first.
    pub alerts: Vec<Alert>,
    /// Alerts dropped to keep the bound.
    #[serde(default)]
    pub dropped: u64,
}

impl Held {
    pub fn push(&mut self, alerts: impl IntoIterator<Item = Alert>) {
        self.alerts.extend(alerts);
        let over = self.alerts.len().saturating_sub(MAX_HELD);
        if over > 0 {
            self.alerts.drain(..over);
            self.dropped += over as u64;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.dropped == 0
    }

    pub fn take(&mut self) -> Held {
        std::mem::take(self)
    }
}

/// A channel's alerts that have not been delivered, and when to try again.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Outbox {
    /// Alerts waiting for this channel.
    #[serde(default)]
    pub held: Held,
    /// Failed attempts in a row.
    #[serde(default)]
    pub failures: u32,
    /// Not before this time (backoff, or the channel's `Retry-After`).
    pub retry_at: Option<DateTime<Utc>>,
    /// The last failure, as the log and `watch --once` tell it.
    pub error: Option<String>,
}

impl Outbox {
    /// After a failure: wait 1, 2, 4 … minutes, at most 15, or what the
    /// channel asked for.
    pub fn failed(&mut self, now: DateTime<Utc>, error: String, retry_after: Option<Duration>) {
        self.failures = self.failures.saturating_add(1);
        let backoff = Duration::minutes(1 << self.failures.saturating_sub(1).min(4))
            .min(Duration::minutes(15));
        self.retry_at = Some(now + retry_after.unwrap_or(backoff).max(Duration::seconds(1)));
        self.error = Some(error);
    }

    pub fn delivered(&mut self) {
        *self = Outbox::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(n: usize) -> Alert {
        Alert {
            rule: "r".into(),
            kind: "bans".into(),
            status: Status::Event,
            title: format!("alert {n}"),
            lines: vec![],
            count: 1,
            link: None,
            at: Utc::now(),
        }
    }

    #[test]
    fn held_alerts_are_bounded_and_counted() {
        let mut held = Held::default();
        held.push((0..MAX_HELD + 7).map(alert));
        assert_eq!(held.alerts.len(), MAX_HELD);
        assert_eq!(held.dropped, 7);
        assert_eq!(held.alerts[0].title, "alert 7");
    }

    #[test]
    fn backoff_doubles_to_fifteen_minutes_and_honours_retry_after() {
        let now = Utc::now();
        let mut outbox = Outbox::default();
        let waits: Vec<i64> = (0..7)
            .map(|_| {
                outbox.failed(now, "down".into(), None);
                (outbox.retry_at.unwrap() - now).num_minutes()
            })
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 15, 15, 15]);
        outbox.failed(now, "slow down".into(), Some(Duration::seconds(90)));
        assert_eq!((outbox.retry_at.unwrap() - now).num_seconds(), 90);
    }

    #[test]
    fn a_rule_rests_between_messages_and_keeps_its_hourly_cap() {
        let now = Utc::now();
        let mut rule = RuleState::default();
        let every = Duration::minutes(5);
        assert!(rule.may_send(now, every, 2));
        rule.sent.push(now);
        assert!(!rule.may_send(now + Duration::minutes(4), every, 2));
        assert!(rule.may_send(now + Duration::minutes(5), every, 2));
        rule.sent.push(now + Duration::minutes(5));
        assert!(
            !rule.may_send(now + Duration::minutes(30), every, 2),
            "two an hour"
        );
        assert!(rule.may_send(now + Duration::minutes(61), every, 2));
    }
}
