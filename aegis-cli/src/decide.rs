//! `aegis decide` and `aegis decisions`: a person's bans, unbans and allows,
//! the list of decisions, and revokes.

use std::collections::VecDeque;

use aegis_core::decision::{parse_target, Action, Decision, Ledger};
use aegis_core::{parse_age, Error, IpNetwork, Storage};
use anyhow::Result;
use chrono::Utc;

use crate::cli::{DecideAction, DecideArgs, DecisionsArgs};
use crate::table::render;

/// Decisions read per request while paging through them all.
const PAGE: u32 = 1_000;

/// `aegis decide`
pub async fn decide(store: &dyn Storage, args: &DecideArgs) -> Result<()> {
    let action = match args.action {
        DecideAction::Ban => Action::Ban,
        DecideAction::Unban => Action::Unban,
        DecideAction::Allow => Action::Allow,
    };
    let target = parse_target(&args.target)?;
    let mut decision = Decision::by_person(action, target, &user()?, &args.reason)
        .on_hosts(args.hosts.iter().map(|h| h.trim().to_owned()).collect());
    if let Some(length) = &args.duration {
        if action == Action::Unban {
            anyhow::bail!(Error::Invalid(
                "an unban acts at once: --for applies to ban and allow".into()
            ));
        }
        decision = decision.lasting(parse_age(length)?);
    }
    decision.validate()?;
    if !args.force {
        decision.check_safety(&protected(store).await?)?;
    }
    let stored = store.decision_log().decide(&decision).await?;
    show_made(&stored, args.json)
}

/// `aegis decisions revoke ID`
pub async fn revoke(store: &dyn Storage, id: u64, reason: &str, json: bool) -> Result<()> {
    let log = store.decision_log();
    let earlier = log
        .after(id.saturating_sub(1), 1)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| {
            Error::Invalid(format!("there is no decision #{id}: see `aegis decisions`"))
        })?;
    if !matches!(earlier.action, Action::Ban | Action::Allow) {
        anyhow::bail!(Error::Invalid(format!(
            "decision #{id} is an {}, which acted at once: only bans and allows can be revoked",
            earlier.action
        )));
    }
    let mut ledger = Ledger::default();
    for d in all(store).await? {
        ledger.apply(&d, Utc::now());
    }
    if !ledger.in_force(Utc::now()).iter().any(|d| d.id == id) {
        anyhow::bail!(Error::Invalid(format!(
            "decision #{id} is no longer in force (ended, superseded or revoked)"
        )));
    }
    let stored = log
        .decide(&Decision::revoking(&earlier, &user()?, reason))
        .await?;
    show_made(&stored, json)
}

/// `aegis decisions`
pub async fn list(store: &dyn Storage, args: &DecisionsArgs) -> Result<()> {
    let now = Utc::now();
    let decisions: Vec<Decision> = if args.active {
        let mut ledger = Ledger::default();
        for d in all(store).await? {
            ledger.apply(&d, now);
        }
        ledger.in_force(now).into_iter().cloned().collect()
    } else {
        let mut latest = VecDeque::with_capacity(args.limit);
        for d in all(store).await? {
            if latest.len() == args.limit {
                latest.pop_front();
            }
            if args.limit > 0 {
                latest.push_back(d);
            }
        }
        latest.into()
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&decisions)?);
        return Ok(());
    }
    if decisions.is_empty() {
        println!("no decisions{}", if args.active { " in force" } else { "" });
        return Ok(());
    }
    let rows: Vec<Vec<String>> = decisions.iter().map(|d| row(d, now)).collect();
    print!(
        "{}",
        render(
            &["id", "action", "target", "hosts", "until", "by", "made", "reason"],
            &rows
        )
    );
    Ok(())
}

fn row(d: &Decision, now: chrono::DateTime<Utc>) -> Vec<String> {
    let action = match d.revokes {
        Some(id) => format!("revoke #{id}"),
        None => d.action.to_string(),
    };
    let until = match (d.action, d.until) {
        (Action::Unban | Action::Revoke, _) => "-".to_owned(),
        (_, None) => "permanent".to_owned(),
        (_, Some(until)) if until <= now => format!("ended {}", until.format("%Y-%m-%d %H:%M:%S")),
        (_, Some(until)) => until.format("%Y-%m-%d %H:%M:%S").to_string(),
    };
    let hosts = if d.hosts.is_empty() {
        "all".to_owned()
    } else {
        d.hosts.join(",")
    };
    vec![
        d.id.to_string(),
        action,
        d.target_text(),
        hosts,
        until,
        d.origin.to_string(),
        d.created.format("%Y-%m-%d %H:%M:%S").to_string(),
        d.reason.clone(),
    ]
}

fn show_made(d: &Decision, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(d)?);
    } else {
        let hosts = if d.hosts.is_empty() {
            "every host".to_owned()
        } else {
            d.hosts.join(", ")
        };
        let until = d.until.map_or(String::new(), |u| {
            format!(" until {}", u.format("%Y-%m-%d %H:%M:%S UTC"))
        });
        println!(
            "decision #{}: {} {} on {hosts}{until}; each host's agent applies it",
            d.id,
            d.action,
            d.target_text()
        );
    }
    Ok(())
}

/// Every decision, oldest first.
pub async fn all(store: &dyn Storage) -> Result<Vec<Decision>> {
    let mut all = Vec::new();
    loop {
        let last = all.last().map_or(0, |d: &Decision| d.id);
        let page = store.decision_log().after(last, PAGE).await?;
        if page.is_empty() {
            return Ok(all);
        }
        all.extend(page);
    }
}

/// The reporting hosts' own addresses, as their agents last reported them.
async fn protected(store: &dyn Storage) -> Result<Vec<IpNetwork>> {
    Ok(store
        .decision_log()
        .agents()
        .await?
        .into_iter()
        .flat_map(|a| a.addresses)
        .map(IpNetwork::from)
        .collect())
}

/// Who is deciding: the user behind `sudo`, else the login.
fn user() -> Result<String> {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|u| !u.is_empty()))
        .ok_or_else(|| {
            Error::Invalid("cannot tell who is deciding: set USER to your user name".into()).into()
        })
}
