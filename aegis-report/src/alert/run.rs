//! `aegis-report alert watch|test|check`.

use std::time::Duration;

use aegis_core::{connect, Settings};
use anyhow::Result;
use chrono::Utc;

use super::{Message, Watcher};
use crate::app::{AlertCommand, Outcome};
use crate::error::ReportError;

/// Runs one `alert` subcommand.
pub async fn command(settings: &Settings, command: AlertCommand, dry_run: bool) -> Result<Outcome> {
    let store = connect(&settings.storage_url()?).await?;
    let watcher = Watcher::new(settings, store)?;
    match command {
        AlertCommand::Check => {
            for rule in watcher.rules() {
                println!(
                    "alert {:?}: {} → {}",
                    rule.name,
                    rule.kind(),
                    rule.channels.join(", ")
                );
            }
            for channel in watcher.channels() {
                println!("channel {:?}: {}", channel.name, channel.kind());
            }
            for w in watcher.waiting().await? {
                println!(
                    "channel {:?}: {} alert(s) waiting{}{}",
                    w.channel,
                    w.alerts,
                    w.retry_at
                        .map(|t| format!(", next try {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
                        .unwrap_or_default(),
                    w.error
                        .map(|e| format!(", last error: {e}"))
                        .unwrap_or_default()
                );
            }
            println!(
                "{} alert(s), {} channel(s): the configuration is valid",
                watcher.rules().len(),
                watcher.channels().len()
            );
        }
        AlertCommand::Test { channel } => {
            let channel = watcher.channel(&channel)?;
            let host = settings
                .host
                .clone()
                .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
            let message = Message::test(&host, &channel.name);
            if dry_run {
                println!("{}", channel.preview(&message));
            } else {
                watcher
                    .send(channel, &message)
                    .await
                    .map_err(|f| ReportError::Send(f.error))?;
                println!(
                    "sent a test message to {:?} ({})",
                    channel.name,
                    channel.kind()
                );
            }
        }
        AlertCommand::Watch { once: true } => {
            let tick = watcher.tick(Utc::now(), dry_run).await?;
            for (name, message) in &tick.sent {
                if dry_run {
                    let channel = watcher.channel(name)?;
                    println!(
                        "--- to {name:?} ({}):\n{}\n",
                        channel.kind(),
                        channel.preview(message)
                    );
                } else {
                    println!("sent {} alert(s) to {name:?}", message.alerts.len());
                }
            }
            println!(
                "{} alert(s) made, {} message(s) {}",
                tick.alerts,
                tick.sent.len(),
                if dry_run { "due" } else { "sent" }
            );
            if let Some((name, error)) = tick.failed.first() {
                return Err(ReportError::Send(format!(
                    "channel {name:?}: {error} (kept; sent on a later run)"
                ))
                .into());
            }
        }
        AlertCommand::Watch { once: false } => {
            eprintln!(
                "aegis-report: watching with {} alert(s) and {} channel(s)",
                watcher.rules().len(),
                watcher.channels().len()
            );
            loop {
                match watcher.tick(Utc::now(), dry_run).await {
                    Ok(tick) if dry_run => {
                        for (name, message) in &tick.sent {
                            println!("--- to {name:?}:\n{}\n", message.text);
                        }
                    }
                    Ok(_) => {}
                    // The store may be away for a while: try again next minute.
                    Err(e) => eprintln!("aegis-report: this evaluation failed: {e}"),
                }
                let second = Utc::now().timestamp().rem_euclid(60) as u64;
                tokio::time::sleep(Duration::from_secs(60 - second)).await;
            }
        }
    }
    Ok(Outcome::Done)
}
