//! `aegis agent`: follows the store's decisions and applies each, once and in
//! order, to this host's fail2ban. What it has applied (a [`Ledger`]) is kept
//! in a file replaced whole after every batch, so a restart goes on where it
//! stopped; while the store is down it keeps ending bans on time and catches
//! up when the store returns; while fail2ban is down it applies nothing and
//! tries again.

mod local;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_core::decision::{AgentReport, Applied, Change, Ledger};
use aegis_core::fail2ban::control::DEFAULT_SOCKET;
use aegis_core::share::SHARED_JAIL;
use aegis_core::{connect, Error, IpNetwork, Settings, Storage, StorageUrl};
use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::table::render;
use local::Local;

/// A line for the system log (the service's stderr); a closed stderr is no reason to stop.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// Decisions read per batch.
const BATCH: u32 = 1_000;
/// How often allows are checked against every jail's ignoreip.
const ALLOW_CHECK: Duration = Duration::from_secs(5);
/// How often the agent reports to the store when nothing happens.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// What the agent keeps between runs.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    ledger: Ledger,
    applied: u64,
    refused: u64,
    failed: u64,
    error: Option<String>,
}

impl State {
    fn load(path: &Path) -> Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is not the agent's state: move it away to start afresh (every decision is then applied again)", path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Replaces the file whole (written, synced, renamed), so a crash leaves the old or the new.
    fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(&serde_json::to_vec(self)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
    }
}

/// The agent's settings.
struct Agent {
    host: String,
    jail: String,
    socket: PathBuf,
    state_path: PathBuf,
    poll: Duration,
    own: Vec<IpNetwork>,
    url: StorageUrl,
}

impl Agent {
    fn from_context(ctx: &Context) -> Result<Self> {
        let settings = &ctx.settings;
        // The same `[share]` as the writer's; a mistake in it is said here, at start.
        aegis_core::share::SharePolicy::from_settings(&settings.share)?;
        let mut own: Vec<IpNetwork> = if_addrs::get_if_addrs()
            .map(|ifs| {
                ifs.iter()
                    .map(|i| IpNetwork::from(i.ip().to_canonical()))
                    .collect()
            })
            .unwrap_or_default();
        for extra in &settings.agent.addresses {
            own.push(
                aegis_core::decision::parse_target(extra)
                    .map_err(|e| Error::Config(format!("[agent] addresses: {e}")))?,
            );
        }
        Ok(Agent {
            host: ctx.host.clone(),
            jail: settings
                .share
                .jail
                .clone()
                .unwrap_or_else(|| SHARED_JAIL.into()),
            socket: settings
                .agent
                .socket
                .clone()
                .unwrap_or_else(|| DEFAULT_SOCKET.into()),
            state_path: state_path(settings),
            poll: Duration::from_millis(settings.agent.poll_ms.unwrap_or(1_000).clamp(50, 60_000)),
            own,
            url: ctx.storage_url.clone(),
        })
    }

    fn report(&self, state: &State) -> AgentReport {
        AgentReport {
            host: self.host.clone(),
            addresses: self.own.iter().map(|n| n.ip()).collect(),
            seen: Utc::now(),
            last: state.ledger.last,
            applied: state.applied,
            refused: state.refused,
            failed: state.failed,
            error: state.error.clone(),
        }
    }
}

fn state_path(settings: &Settings) -> PathBuf {
    settings
        .agent
        .state_file
        .clone()
        .unwrap_or_else(|| Settings::data_dir().join("agent.json"))
}

/// What the loop is connected to.
#[derive(Default)]
struct Links {
    store: Option<Arc<dyn Storage>>,
    local: Option<Local>,
    allows_checked: Option<Instant>,
    reported: Option<Instant>,
}

/// `aegis agent [--once]`
pub fn run(ctx: &Context, once: bool) -> Result<()> {
    let agent = Agent::from_context(ctx)?;
    let mut state = State::load(&agent.state_path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    say!(
        "aegis agent: {} applies decisions after #{} to {} (jail {})",
        agent.host,
        state.ledger.last,
        agent.socket.display(),
        agent.jail
    );
    let mut links = Links::default();
    loop {
        let caught_up = runtime.block_on(tick(&agent, &mut state, &mut links));
        match caught_up {
            Ok(true) if once => return Ok(()),
            Ok(false) if once && links.store.is_none() => {
                anyhow::bail!(Error::Unavailable(state.error.clone().unwrap_or_default()))
            }
            // More decisions wait: the next batch at once.
            Ok(false) if links.store.is_some() => continue,
            Ok(_) => {}
            Err(e) if once => return Err(e),
            Err(e) => note(&mut state, &format!("{e:#}")),
        }
        std::thread::sleep(agent.poll);
    }
}

/// One round: end what has ended, apply what is new, restore allows, report.
/// Returns whether every decision stored has been applied.
async fn tick(agent: &Agent, state: &mut State, links: &mut Links) -> Result<bool> {
    let local = match &mut links.local {
        Some(local) => local,
        None => {
            let mut local = Local::connect(&agent.socket, &agent.jail, agent.own.clone())?;
            let bantime = local.shared_bantime()?;
            if bantime != -1 {
                say!(
                    "aegis agent: warning: jail {} has bantime {bantime}: fail2ban ends its bans then, whatever the decision said; set bantime = -1 and the agent ends them on time",
                    agent.jail
                );
            }
            links.allows_checked = None;
            links.local.insert(local)
        }
    };
    let now = Utc::now();
    let mut next = state.ledger.clone();
    // What to change, decision by decision (the first: bans and allows that ended).
    let mut work: Vec<(Option<u64>, Vec<Change>)> = vec![(None, next.expire(now))];
    let mut caught_up = true;
    if links.store.is_none() {
        match connect(&agent.url).await {
            Ok(store) => links.store = Some(store),
            Err(e) => note(state, &format!("store: {e}")),
        }
    }
    if let Some(store) = &links.store {
        match store.decision_log().after(next.last, BATCH).await {
            Ok(batch) => {
                caught_up = (batch.len() as u32) < BATCH;
                for decision in &batch {
                    if decision.applies_to(&agent.host) && !decision.shared_from(&agent.host) {
                        work.push((Some(decision.id), next.apply(decision, now)));
                    } else {
                        next.last = decision.id;
                    }
                }
            }
            Err(e) => {
                links.store = None;
                caught_up = false;
                note(state, &format!("store: {e}"));
            }
        }
    }
    if next != state.ledger {
        let mut applied = Vec::new();
        for (decision, changes) in work.iter().filter(|(_, c)| !c.is_empty()) {
            // One decision at a time: fail2ban's socket thread is never held
            // for long, and each outcome belongs to its decision.
            let outcome = match local.apply(changes) {
                Ok(outcome) => outcome,
                Err(e) => {
                    links.local = None;
                    return Err(e.into());
                }
            };
            changes.iter().for_each(log_change);
            for why in &outcome.refused {
                say!("aegis agent: refused {why}");
            }
            for why in &outcome.failed {
                say!("aegis agent: fail2ban refused {why}");
            }
            state.applied += outcome.applied;
            state.refused += outcome.refused.len() as u64;
            state.failed += outcome.failed.len() as u64;
            if let Some(last) = outcome.failed.last() {
                state.error = Some(last.clone());
            }
            if let Some(id) = decision {
                let (verdict, detail) = outcome.verdict();
                applied.push(Applied {
                    decision: *id,
                    host: agent.host.clone(),
                    at: Utc::now(),
                    outcome: verdict,
                    detail,
                });
            }
        }
        state.ledger = next;
        state.save(&agent.state_path)?;
        // Shown beside each decision; lost with the store's outage, which
        // changes nothing that was applied.
        if let Some(store) = &links.store {
            if let Err(e) = store.decision_log().record_applied(&applied).await {
                note(state, &format!("store: {e}"));
            }
        }
        links.reported = None;
    }
    if links
        .allows_checked
        .is_none_or(|t| t.elapsed() >= ALLOW_CHECK)
    {
        let allowed: Vec<IpNetwork> = state.ledger.allowed().collect();
        let restored = match local.restore_allows(&allowed) {
            Ok(n) => n,
            Err(e) => {
                links.local = None;
                return Err(e.into());
            }
        };
        if restored > 0 {
            say!("aegis agent: {restored} allowed networks put back into fail2ban's ignoreip (it had reloaded)");
        }
        links.allows_checked = Some(Instant::now());
    }
    if let Some(store) = &links.store {
        if links.reported.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            match store
                .decision_log()
                .report_agent(&agent.report(state))
                .await
            {
                Ok(()) => links.reported = Some(Instant::now()),
                Err(e) => note(state, &format!("store: {e}")),
            }
        }
    }
    Ok(caught_up && links.store.is_some())
}

fn log_change(change: &Change) {
    match change {
        Change::Ban(d) => say!(
            "aegis agent: #{} ban {}{}",
            d.id,
            d.target_text(),
            d.until.map_or(" (permanent)".into(), |u| format!(
                " until {}",
                u.format("%Y-%m-%d %H:%M:%S UTC")
            ))
        ),
        Change::Unban { target, everywhere } => say!(
            "aegis agent: unban {} from {}",
            aegis_core::decision::target_text(*target),
            if *everywhere {
                "every jail"
            } else {
                "the shared jail"
            }
        ),
        Change::Allow(target) => {
            say!(
                "aegis agent: allow {}",
                aegis_core::decision::target_text(*target)
            )
        }
        Change::Disallow(target) => say!(
            "aegis agent: allow of {} ended",
            aegis_core::decision::target_text(*target)
        ),
        Change::Refused(..) => {}
    }
}

/// Says a failure once, not once a round.
fn note(state: &mut State, what: &str) {
    if state.error.as_deref() != Some(what) {
        say!("aegis agent: {what}");
        state.error = Some(what.to_owned());
    }
}

/// `aegis agent status`: every agent's last report.
pub async fn status(store: &dyn Storage, json: bool) -> Result<()> {
    let agents = store.decision_log().agents().await?;
    let latest = aegis_core::decision::all(store)
        .await?
        .last()
        .map_or(0, |d| d.id);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "latest": latest, "agents": agents })
            )?
        );
        return Ok(());
    }
    if agents.is_empty() {
        println!("no agent has reported yet (latest decision #{latest})");
        return Ok(());
    }
    let now = Utc::now();
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            vec![
                a.host.clone(),
                ago(a.seen, now),
                format!(
                    "#{}{}",
                    a.last,
                    if a.last < latest { " (behind)" } else { "" }
                ),
                a.applied.to_string(),
                a.refused.to_string(),
                a.failed.to_string(),
                a.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    println!("latest decision #{latest}");
    print!(
        "{}",
        render(
            &[
                "host",
                "reported",
                "applied up to",
                "changes",
                "refused",
                "failed",
                "last error"
            ],
            &rows
        )
    );
    Ok(())
}

fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds().max(0);
    match secs {
        0..=119 => format!("{secs} s ago"),
        120..=7_199 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3_600),
    }
}
