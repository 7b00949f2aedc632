//! Decisions: ban, unban or allow an address or a network on every host or on
//! some, made by a person or by the sharing policy, and applied by each host's
//! agent through its own fail2ban. A decision is never edited: a later one
//! supersedes it, and a [`Ledger`] folded over them in order says which are in
//! force.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::{check_name, check_text, truncate_ms};
use crate::geo::{overlap, reserved_overlap};
use crate::storage::Storage;
use crate::timearg::parse_age;

/// The widest network the sharing policy may ban: a /24 or a /64.
pub const POLICY_PREFIX: (u8, u8) = (24, 64);
/// The widest network a person may name without `force`: a /16 or a /48.
pub const PERSON_PREFIX: (u8, u8) = (16, 48);
const MAX_REASON: usize = 512;
const MAX_KEY: usize = 128;
const MAX_USER: usize = 64;
const MAX_HOSTS: usize = 256;

/// What a decision does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Ban the target in every host's shared jail.
    Ban,
    /// Unban the target from every jail, whoever banned it.
    Unban,
    /// Never ban the target: an ignoreip on every jail, and unbanned now.
    Allow,
    /// End an earlier ban or allow ([`Decision::revokes`]) before its time.
    Revoke,
}

impl Action {
    /// The lower-case word, as typed and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Ban => "ban",
            Action::Unban => "unban",
            Action::Allow => "allow",
            Action::Revoke => "revoke",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "lowercase")]
pub enum Origin {
    /// A person, by user name (of the CLI's system account or the dashboard's login).
    Person {
        /// The user name.
        user: String,
    },
    /// The sharing policy, from a ban recorded on `host`.
    Policy {
        /// The rule that matched.
        rule: String,
        /// The host whose ban it was.
        host: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Person { user } => write!(f, "{user}"),
            Origin::Policy { rule, host } => write!(f, "policy {rule} ({host})"),
        }
    }
}

/// One decision, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Given by the store, in the order decisions are stored (0 before).
    pub id: u64,
    /// What it does.
    pub action: Action,
    /// An address (a /32 or /128) or a network, in canonical form.
    pub target: IpNetwork,
    /// The hosts it applies to; empty: every host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// When a ban or allow ends; `None`: permanent. Unbans and revokes act at once.
    pub until: Option<DateTime<Utc>>,
    /// Why, in a person's or the policy's words.
    pub reason: String,
    /// Who made it.
    pub origin: Origin,
    /// The decision a revoke ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revokes: Option<u64>,
    /// Makes storing idempotent: a second decision with the same key is not stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// When it was made (the maker's clock).
    pub created: DateTime<Utc>,
}

impl Decision {
    /// A person's decision, for every host and permanent until narrowed with
    /// [`Decision::on_hosts`] and [`Decision::lasting`].
    pub fn by_person(action: Action, target: IpNetwork, user: &str, reason: &str) -> Self {
        Decision::new(
            action,
            target,
            Origin::Person {
                user: user.to_owned(),
            },
            reason,
        )
    }

    /// The sharing policy's ban of `target`, after a ban on `host` (the event
    /// `key` names: one ban makes at most one decision).
    pub fn by_policy(target: IpNetwork, rule: &str, host: &str, key: String) -> Self {
        let mut decision = Decision::new(
            Action::Ban,
            target,
            Origin::Policy {
                rule: rule.to_owned(),
                host: host.to_owned(),
            },
            &format!("banned on {host}"),
        );
        decision.key = Some(key);
        decision
    }

    /// A person's revoke of `earlier`.
    pub fn revoking(earlier: &Decision, user: &str, reason: &str) -> Self {
        let mut decision = Decision::by_person(Action::Revoke, earlier.target, user, reason);
        decision.hosts = earlier.hosts.clone();
        decision.revokes = Some(earlier.id);
        decision
    }

    fn new(action: Action, target: IpNetwork, origin: Origin, reason: &str) -> Self {
        Decision {
            id: 0,
            action,
            target: canonical(target),
            hosts: Vec::new(),
            until: None,
            reason: reason.to_owned(),
            origin,
            revokes: None,
            key: None,
            created: truncate_ms(Utc::now()),
        }
    }

    /// The same decision for `hosts` only (empty: every host).
    pub fn on_hosts(mut self, hosts: Vec<String>) -> Self {
        self.hosts = hosts;
        self
    }

    /// The same decision ending `length` after it was made.
    pub fn lasting(mut self, length: Duration) -> Self {
        self.until = Some(self.created + length);
        self
    }

    /// Whether it applies to `host`.
    pub fn applies_to(&self, host: &str) -> bool {
        self.hosts.is_empty() || self.hosts.iter().any(|h| h == host)
    }

    /// Whether the sharing policy made it from a ban on `host` (which has
    /// that ban already).
    pub fn shared_from(&self, host: &str) -> bool {
        matches!(&self.origin, Origin::Policy { host: h, .. } if h == host)
    }

    /// Whether a ban or allow has ended by `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.until.is_some_and(|until| until <= now)
    }

    /// The target as fail2ban and people write it: an address alone, a network with its prefix.
    pub fn target_text(&self) -> String {
        target_text(self.target)
    }

    /// Checks what every stored decision must be; the store's front calls it.
    pub fn validate(&self) -> Result<()> {
        if canonical(self.target) != self.target {
            return Err(Error::invalid(format!(
                "target {} has bits set past its prefix: write {}",
                self.target,
                target_text(canonical(self.target))
            )));
        }
        if self.hosts.len() > MAX_HOSTS {
            return Err(Error::invalid(format!(
                "a decision names at most {MAX_HOSTS} hosts (got {})",
                self.hosts.len()
            )));
        }
        for host in &self.hosts {
            check_name("host", host, 253)?;
        }
        check_text("reason", &self.reason, MAX_REASON)?;
        if let Some(key) = &self.key {
            check_text("key", key, MAX_KEY)?;
        }
        match &self.origin {
            Origin::Person { user } => check_name("user", user, MAX_USER)?,
            Origin::Policy { rule, host } => {
                check_name("rule", rule, MAX_USER)?;
                check_name("host", host, 253)?;
                let (v4, v6) = POLICY_PREFIX;
                if self.action != Action::Ban || prefix_shorter(self.target, v4, v6) {
                    return Err(Error::invalid(format!(
                        "the sharing policy only bans networks of at most /{v4} or /{v6} (got {} {})",
                        self.action,
                        self.target
                    )));
                }
            }
        }
        match (self.action, self.revokes, self.until) {
            (Action::Revoke, None, _) => Err(Error::invalid("a revoke names the decision it ends")),
            (Action::Revoke | Action::Unban, _, Some(_)) => Err(Error::invalid(format!(
                "an {} acts at once: it takes no duration",
                self.action
            ))),
            (Action::Ban | Action::Allow | Action::Unban, Some(_), _) => {
                Err(Error::invalid("only a revoke names another decision"))
            }
            (_, _, Some(until)) if until <= self.created => {
                Err(Error::invalid("a decision must last a moment at least"))
            }
            _ => Ok(()),
        }
    }

    /// Refuses what a person should only do on purpose: a target wider than a
    /// /16 or /48, or a ban touching private or reserved ranges or one of the
    /// `protected` networks (the reporting hosts' own addresses). The message
    /// says why; `--force` (or the API's `force`) skips this check.
    pub fn check_safety(&self, protected: &[IpNetwork]) -> Result<()> {
        let (v4, v6) = PERSON_PREFIX;
        let refuse = |why: String| {
            Err(Error::invalid(format!(
                "refused to {} {}: {why}; if that is what you mean, pass --force (in the API, \"force\": true)",
                self.action,
                self.target_text()
            )))
        };
        if self.action != Action::Revoke && prefix_shorter(self.target, v4, v6) {
            return refuse(format!("it is wider than a /{v4} or /{v6}"));
        }
        if self.action != Action::Ban {
            return Ok(());
        }
        if let Some((range, label)) = reserved_overlap(self.target) {
            return refuse(format!("it touches {range}, {label}"));
        }
        if let Some(own) = protected.iter().find(|p| overlap(**p, self.target)) {
            return refuse(format!(
                "it holds {}, a reporting host's own address",
                target_text(*own)
            ));
        }
        Ok(())
    }
}

/// A person's decision as the CLI, the API and the dashboard take it: checked
/// and made the same way from each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// `ban`, `unban`, `allow`, or `revoke` (with `revokes`).
    pub action: Option<Action>,
    /// An address or a network (not for a revoke).
    #[serde(default)]
    pub target: String,
    /// How long a ban or allow lasts (`5s`, `1h`, `7d`); absent: permanent.
    #[serde(default, rename = "for")]
    pub duration: Option<String>,
    /// Only these hosts; empty: every host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// Make what [`Decision::check_safety`] refuses.
    #[serde(default)]
    pub force: bool,
    /// The ban or allow a revoke ends.
    #[serde(default)]
    pub revokes: Option<u64>,
}

impl Request {
    /// Checks the request, makes the decision as `user` and stores it.
    pub async fn decide(&self, store: &dyn Storage, user: &str) -> Result<Decision> {
        let log = store.decision_log();
        let Some(action) = self.action else {
            return Err(Error::invalid(
                "say what to decide: ban, unban, allow or revoke",
            ));
        };
        let decision = if action == Action::Revoke {
            let id = self
                .revokes
                .ok_or_else(|| Error::invalid("a revoke names the decision it ends"))?;
            Decision::revoking(&in_force(store, id).await?, user, &self.reason)
        } else {
            if self.revokes.is_some() {
                return Err(Error::invalid("only a revoke names another decision"));
            }
            let target = parse_target(&self.target)?;
            let hosts = self.hosts.iter().map(|h| h.trim().to_owned()).collect();
            let mut decision =
                Decision::by_person(action, target, user, &self.reason).on_hosts(hosts);
            if let Some(length) = &self.duration {
                if action == Action::Unban {
                    return Err(Error::invalid(
                        "an unban acts at once: a duration applies to ban and allow",
                    ));
                }
                decision = decision.lasting(parse_age(length)?);
            }
            decision
        };
        decision.validate()?;
        if !self.force {
            let protected: Vec<IpNetwork> = log
                .agents()
                .await?
                .into_iter()
                .flat_map(|a| a.addresses)
                .map(IpNetwork::from)
                .collect();
            decision.check_safety(&protected)?;
        }
        log.decide(&decision).await
    }
}

/// Every decision, oldest first.
pub async fn all(store: &dyn Storage) -> Result<Vec<Decision>> {
    let mut all = Vec::new();
    loop {
        let last = all.last().map_or(0, |d: &Decision| d.id);
        let page = store.decision_log().after(last, 1_000).await?;
        if page.is_empty() {
            return Ok(all);
        }
        all.extend(page);
    }
}

/// The bans and allows in force now, oldest first.
pub async fn active(store: &dyn Storage) -> Result<Vec<Decision>> {
    let now = Utc::now();
    let mut ledger = Ledger::default();
    for d in all(store).await? {
        ledger.apply(&d, now);
    }
    Ok(ledger.in_force(now).into_iter().cloned().collect())
}

/// Decision `id`, when it is a ban or allow still in force.
async fn in_force(store: &dyn Storage, id: u64) -> Result<Decision> {
    let found = store.decision_log().after(id.saturating_sub(1), 1).await?;
    let Some(earlier) = found.into_iter().find(|d| d.id == id) else {
        return Err(Error::invalid(format!("there is no decision #{id}")));
    };
    if !matches!(earlier.action, Action::Ban | Action::Allow) {
        return Err(Error::invalid(format!(
            "decision #{id} is an {}, which acted at once: only bans and allows can be revoked",
            earlier.action
        )));
    }
    if !active(store).await?.iter().any(|d| d.id == id) {
        return Err(Error::invalid(format!(
            "decision #{id} is no longer in force (ended, superseded or revoked)"
        )));
    }
    Ok(earlier)
}

/// A network with the bits past its prefix cleared.
pub fn canonical(net: IpNetwork) -> IpNetwork {
    let address = match net.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let prefix = match (net.ip(), address) {
        (IpAddr::V6(_), IpAddr::V4(_)) => net.prefix().saturating_sub(96),
        _ => net.prefix(),
    };
    IpNetwork::new(address, prefix)
        .and_then(|n| IpNetwork::new(n.network(), prefix))
        .unwrap_or(net)
}

/// An address alone when the network holds one, else the network with its prefix.
pub fn target_text(net: IpNetwork) -> String {
    let single = match net {
        IpNetwork::V4(n) => n.prefix() == 32,
        IpNetwork::V6(n) => n.prefix() == 128,
    };
    if single {
        net.ip().to_string()
    } else {
        net.to_string()
    }
}

/// Parses a decision's target: an address or a network in CIDR form.
pub fn parse_target(s: &str) -> Result<IpNetwork> {
    let net: IpNetwork = s.trim().parse().map_err(|_| {
        Error::invalid(format!(
            "invalid target {s:?}: expected an address (203.0.113.7, 2001:db8::1) or a network (203.0.113.0/24)"
        ))
    })?;
    let fixed = canonical(net);
    if fixed.ip() != canonical(IpNetwork::from(net.ip())).ip() {
        return Err(Error::invalid(format!(
            "target {s} has bits set past its prefix: did you mean {}?",
            target_text(fixed)
        )));
    }
    Ok(fixed)
}

fn prefix_shorter(net: IpNetwork, v4: u8, v6: u8) -> bool {
    match net {
        IpNetwork::V4(n) => n.prefix() < v4,
        IpNetwork::V6(n) => n.prefix() < v6,
    }
}

/// What one host's agent last said about itself: the sharing policy never
/// bans its addresses, and `aegis agent status` and the dashboard show the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentReport {
    /// The host, as it reports events.
    pub host: String,
    /// Its own addresses.
    pub addresses: Vec<IpAddr>,
    /// When it said so.
    pub seen: DateTime<Utc>,
    /// The last decision it has applied.
    pub last: u64,
    /// Changes made in fail2ban since it started.
    pub applied: u64,
    /// Bans it refused (allowed, ignored or its own addresses) since it started.
    pub refused: u64,
    /// Changes fail2ban refused since it started.
    pub failed: u64,
    /// The last failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What became of a decision on one host, as its agent recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The decision.
    pub decision: u64,
    /// The host.
    pub host: String,
    /// When the agent applied (or refused) it.
    pub at: DateTime<Utc>,
    /// What happened.
    pub outcome: Outcome,
    /// Why it was refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What an agent did with a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Applied to the host's fail2ban.
    Applied,
    /// Not applied on purpose (allowed, ignored, this host's own address).
    Refused,
    /// fail2ban refused it.
    Failed,
}

impl Outcome {
    /// The lower-case word.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// What applying one decision (or the passing of time) changes on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Ban the target in the shared jail.
    Ban(Decision),
    /// Unban the target: from every jail, or from the shared jail only (a shared
    /// ban that ended or was revoked).
    Unban {
        /// The address or network.
        target: IpNetwork,
        /// Every jail, not only the shared one.
        everywhere: bool,
    },
    /// Add the target to every jail's ignoreip.
    Allow(IpNetwork),
    /// Take the target out of every jail's ignoreip.
    Disallow(IpNetwork),
    /// A ban not applied, and why.
    Refused(Decision, String),
}

/// The bans and allows in force, folded from decisions in the order they were
/// stored. Applying a decision twice changes nothing, so a host's agent that
/// keeps its ledger can restart anywhere in the stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// The last decision applied.
    pub last: u64,
    bans: BTreeMap<u64, Decision>,
    allows: BTreeMap<u64, Decision>,
}

impl Ledger {
    /// Applies `decision` (if it is newer than the last applied) and says what changes.
    pub fn apply(&mut self, decision: &Decision, now: DateTime<Utc>) -> Vec<Change> {
        if decision.id <= self.last {
            return Vec::new();
        }
        self.last = decision.id;
        if decision.expired(now) {
            return Vec::new();
        }
        let target = decision.target;
        match decision.action {
            Action::Ban => {
                if let Some(allow) = self.allow_of(target) {
                    let why = format!(
                        "{} is allowed by decision #{}",
                        allow.target_text(),
                        allow.id
                    );
                    return vec![Change::Refused(decision.clone(), why)];
                }
                self.bans
                    .retain(|_, b| !(b.target == target && b.hosts == decision.hosts));
                self.bans.insert(decision.id, decision.clone());
                vec![Change::Ban(decision.clone())]
            }
            Action::Unban => {
                self.bans.retain(|_, b| {
                    !target.contains(b.target.network()) || b.target.prefix() < target.prefix()
                });
                vec![Change::Unban {
                    target,
                    everywhere: true,
                }]
            }
            Action::Allow => {
                self.bans.retain(|_, b| !overlap(b.target, target));
                self.allows.insert(decision.id, decision.clone());
                vec![
                    Change::Allow(target),
                    Change::Unban {
                        target,
                        everywhere: true,
                    },
                ]
            }
            Action::Revoke => {
                let Some(id) = decision.revokes else {
                    return Vec::new();
                };
                if let Some(ban) = self.bans.remove(&id) {
                    vec![Change::Unban {
                        target: ban.target,
                        everywhere: false,
                    }]
                } else if let Some(allow) = self.allows.remove(&id) {
                    vec![Change::Disallow(allow.target)]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Ends the bans and allows whose time has come.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<Change> {
        let mut changes = Vec::new();
        self.bans.retain(|_, b| {
            let keep = !b.expired(now);
            if !keep {
                changes.push(Change::Unban {
                    target: b.target,
                    everywhere: false,
                });
            }
            keep
        });
        self.allows.retain(|_, a| {
            let keep = !a.expired(now);
            if !keep {
                changes.push(Change::Disallow(a.target));
            }
            keep
        });
        changes
    }

    /// The bans and allows in force at `now`, oldest first.
    pub fn in_force(&self, now: DateTime<Utc>) -> Vec<&Decision> {
        let mut all: Vec<&Decision> = self
            .bans
            .values()
            .chain(self.allows.values())
            .filter(|d| !d.expired(now))
            .collect();
        all.sort_by_key(|d| d.id);
        all
    }

    /// The networks allowed now.
    pub fn allowed(&self) -> impl Iterator<Item = IpNetwork> + '_ {
        self.allows.values().map(|a| a.target)
    }

    /// The allow covering any address of `target`, if one is in force.
    pub fn allow_of(&self, target: IpNetwork) -> Option<&Decision> {
        self.allows.values().find(|a| overlap(a.target, target))
    }

    /// The earliest end of a ban or allow in force.
    pub fn next_expiry(&self) -> Option<DateTime<Utc>> {
        self.bans
            .values()
            .chain(self.allows.values())
            .filter_map(|d| d.until)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        parse_target(s).unwrap()
    }

    fn stored(mut d: Decision, id: u64) -> Decision {
        d.id = id;
        d
    }

    #[test]
    fn targets_are_canonical() {
        assert_eq!(target_text(net("203.0.113.7")), "203.0.113.7");
        assert_eq!(target_text(net("::ffff:203.0.113.7")), "203.0.113.7");
        assert_eq!(target_text(net("2001:db8::/64")), "2001:db8::/64");
        let err = parse_target("203.0.113.7/24").unwrap_err().to_string();
        assert!(err.contains("did you mean 203.0.113.0/24"), "{err}");
        assert!(parse_target("example.com").is_err());
    }

    #[test]
    fn people_are_stopped_from_wide_and_reserved_bans() {
        let own = [net("8.8.4.4")];
        let check = |action, target: &str| {
            Decision::by_person(action, net(target), "alice", "")
                .check_safety(&own)
                .map_err(|e| e.to_string())
        };
        assert!(check(Action::Ban, "45.155.205.0/24").is_ok());
        assert!(check(Action::Ban, "45.0.0.0/8")
            .unwrap_err()
            .contains("wider than a /16"));
        assert!(check(Action::Allow, "45.0.0.0/8").is_err());
        assert!(check(Action::Ban, "10.1.2.3")
            .unwrap_err()
            .contains("10.0.0.0/8, private"));
        assert!(check(Action::Allow, "10.1.2.3").is_ok());
        assert!(check(Action::Ban, "8.8.4.0/24")
            .unwrap_err()
            .contains("8.8.4.4, a reporting host"));
        assert!(check(Action::Ban, "2a00:1450::/48").is_ok());
        assert!(check(Action::Ban, "2a00::/32").is_err());
    }

    #[test]
    fn malformed_decisions_are_refused() {
        let ban = Decision::by_person(Action::Ban, net("45.155.205.1"), "alice", "ssh");
        assert!(ban.validate().is_ok());
        let mut bad = ban.clone();
        bad.reason = "a\u{1b}[31m".into();
        assert!(bad.validate().is_err());
        let unban = Decision::by_person(Action::Unban, net("45.155.205.1"), "a", "")
            .lasting(Duration::hours(1));
        assert!(unban.validate().is_err());
        let wide = Decision::by_policy(net("45.155.0.0/16"), "all", "web1", "k".into());
        assert!(wide.validate().unwrap_err().to_string().contains("/24"));
        assert!(
            Decision::by_policy(net("45.155.205.0/24"), "all", "web1", "k".into())
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn later_decisions_supersede_and_allows_win() {
        let now = Utc::now();
        let mut ledger = Ledger::default();
        let ban = stored(
            Decision::by_person(Action::Ban, net("45.155.205.7"), "a", ""),
            1,
        );
        assert_eq!(ledger.apply(&ban, now), [Change::Ban(ban.clone())]);
        assert!(ledger.apply(&ban, now).is_empty(), "applied once");
        let allow = stored(
            Decision::by_person(Action::Allow, net("45.155.205.0/24"), "a", ""),
            2,
        );
        let target = allow.target;
        assert_eq!(
            ledger.apply(&allow, now),
            [
                Change::Allow(target),
                Change::Unban {
                    target,
                    everywhere: true
                }
            ]
        );
        let again = stored(
            Decision::by_person(Action::Ban, net("45.155.205.9"), "a", ""),
            3,
        );
        assert!(
            matches!(&ledger.apply(&again, now)[..], [Change::Refused(_, why)] if why.contains("#2"))
        );
        let revoke = stored(Decision::revoking(&allow, "a", ""), 4);
        assert_eq!(ledger.apply(&revoke, now), [Change::Disallow(target)]);
        assert!(ledger.in_force(now).is_empty());
    }

    #[test]
    fn bans_end_on_time() {
        let now = Utc::now();
        let mut ledger = Ledger::default();
        let ban = stored(
            Decision::by_person(Action::Ban, net("45.155.205.7"), "a", "")
                .lasting(Duration::seconds(5)),
            1,
        );
        ledger.apply(&ban, now);
        assert_eq!(ledger.next_expiry(), ban.until);
        assert!(ledger.expire(now).is_empty());
        let later = now + Duration::seconds(6);
        assert_eq!(
            ledger.expire(later),
            [Change::Unban {
                target: ban.target,
                everywhere: false
            }]
        );
        let late = stored(ban.clone(), 2);
        assert!(
            ledger.apply(&late, later).is_empty(),
            "an expired ban is not applied"
        );
    }
}
