//! `aegis decide` and `aegis decisions`: a person's bans, unbans and allows,
//! the list of decisions, and revokes.

use aegis_core::decision::{self, Action, Decision, Request};
use aegis_core::{Error, Storage};
use anyhow::Result;
use chrono::Utc;

use crate::cli::{DecideAction, DecideArgs, DecisionsArgs};
use crate::table::render;

/// `aegis decide`
pub async fn decide(store: &dyn Storage, args: &DecideArgs) -> Result<()> {
    let action = match args.action {
        DecideAction::Ban => Action::Ban,
        DecideAction::Unban => Action::Unban,
        DecideAction::Allow => Action::Allow,
    };
    let request = Request {
        action: Some(action),
        target: args.target.clone(),
        duration: args.duration.clone(),
        hosts: args.hosts.clone(),
        reason: args.reason.clone(),
        force: args.force,
        revokes: None,
    };
    let stored = request.decide(store, &user()?).await?;
    show_made(&stored, args.json)
}

/// `aegis decisions revoke ID`
pub async fn revoke(store: &dyn Storage, id: u64, reason: &str, json: bool) -> Result<()> {
    let request = Request {
        action: Some(Action::Revoke),
        revokes: Some(id),
        reason: reason.to_owned(),
        ..Request::default()
    };
    let stored = request.decide(store, &user()?).await?;
    show_made(&stored, json)
}

/// `aegis decisions`
pub async fn list(store: &dyn Storage, args: &DecisionsArgs) -> Result<()> {
    let decisions: Vec<Decision> = if args.active {
        decision::active(store).await?
    } else {
        let all = decision::all(store).await?;
        all[all.len().saturating_sub(args.limit)..].to_vec()
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&decisions)?);
        return Ok(());
    }
    if decisions.is_empty() {
        println!("no decisions{}", if args.active { " in force" } else { "" });
        return Ok(());
    }
    print_table(store, &decisions).await
}

/// Decisions as a table, oldest first, with what each host's agent did.
pub async fn print_table(store: &dyn Storage, decisions: &[Decision]) -> Result<()> {
    let ids: Vec<u64> = decisions.iter().map(|d| d.id).collect();
    let applied = store.decision_log().applied(&ids).await?;
    let now = Utc::now();
    let rows: Vec<Vec<String>> = decisions
        .iter()
        .map(|d| {
            let mut row = row(d, now);
            let agents: Vec<String> = applied
                .iter()
                .filter(|a| a.decision == d.id)
                .map(|a| format!("{} {}", a.host, a.outcome.as_str()))
                .collect();
            row.push(agents.join(", "));
            row
        })
        .collect();
    print!(
        "{}",
        render(
            &["id", "action", "target", "hosts", "until", "by", "made", "reason", "agents"],
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
        (_, Some(until)) if until <= now => {
            format!("ended {}", until.format("%Y-%m-%d %H:%M:%S"))
        }
        (_, Some(until)) => until.format("%Y-%m-%d %H:%M:%S").to_string(),
    };
    vec![
        d.id.to_string(),
        action,
        d.target_text(),
        hosts(d),
        until,
        d.origin.to_string(),
        d.created.format("%Y-%m-%d %H:%M:%S").to_string(),
        d.reason.clone(),
    ]
}

fn hosts(d: &Decision) -> String {
    if d.hosts.is_empty() {
        "all".to_owned()
    } else {
        d.hosts.join(",")
    }
}

fn show_made(d: &Decision, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(d)?);
        return Ok(());
    }
    let on = if d.hosts.is_empty() {
        "every host".to_owned()
    } else {
        d.hosts.join(", ")
    };
    let until = d.until.map_or(String::new(), |u| {
        format!(" until {}", u.format("%Y-%m-%d %H:%M:%S UTC"))
    });
    println!(
        "decision #{}: {} {} on {on}{until}; each host's agent applies it",
        d.id,
        d.action,
        d.target_text()
    );
    Ok(())
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
