//! `aegis-report`: sends the digest of a period's bans. Run it from cron or a
//! systemd timer (see contrib/).

use std::path::PathBuf;
use std::process::ExitCode;

use aegis_core::{connect, Settings};
use aegis_report::{Delivery, Digest, Period, ReportError, Templates};
use anyhow::{Context, Result};
use chrono::Utc;
use clap::{Parser, Subcommand};

/// Exit codes: 0 sent (or printed by --dry-run), 1 not sent, 2 invalid arguments,
/// 3 configuration error, 4 skipped (a quiet day with skip_quiet).
#[derive(Parser)]
#[command(
    name = "aegis-report",
    version,
    about,
    after_help = "Exit codes: 0 sent (or printed by --dry-run), 1 not sent, 2 invalid arguments, 3 configuration error, 4 skipped: a quiet day with skip_quiet = true."
)]
struct Cli {
    /// Configuration file (default: /etc/aegis/aegis.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Storage URL (overrides config and AEGIS_STORAGE_URL).
    #[arg(long, global = true, value_name = "URL")]
    storage: Option<String>,
    /// yesterday, today, last24h or last7d.
    #[arg(long, default_value = "yesterday", conflicts_with_all = ["since", "until"])]
    period: String,
    /// Start of a custom period (RFC 3339), with --until.
    #[arg(long, requires = "until")]
    since: Option<chrono::DateTime<Utc>>,
    /// End of a custom period (RFC 3339).
    #[arg(long, requires = "since")]
    until: Option<chrono::DateTime<Utc>>,
    /// Print the complete message instead of sending it.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: write the message to this .eml file.
    #[arg(long, requires = "dry_run", value_name = "FILE")]
    eml: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Send a short test message through the configured delivery.
    SendTest,
}

enum Outcome {
    Done,
    Skipped,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Skipped) => ExitCode::from(4),
        Err(e) => {
            eprintln!("aegis-report: error: {e:#}");
            let code = match e.downcast_ref::<ReportError>() {
                Some(ReportError::Send(_)) => 1,
                Some(ReportError::Config(_)) => 3,
                Some(ReportError::Storage(aegis_core::Error::Invalid(_))) => 2,
                Some(ReportError::Storage(aegis_core::Error::Config(_))) => 3,
                _ => match e.downcast_ref::<aegis_core::Error>() {
                    Some(aegis_core::Error::Config(_)) => 3,
                    Some(aegis_core::Error::Invalid(_)) => 2,
                    _ => 1,
                },
            };
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> Result<Outcome> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(url) = cli.storage {
        settings.storage.url = Some(url);
    }
    let mut report = settings.report.clone();
    if cli.dry_run {
        // A preview needs no mail setup.
        report.to = if report.to.is_empty() {
            vec!["root@localhost".into()]
        } else {
            report.to
        };
        report.from = report.from.or(Some("aegis@localhost".into()));
    }
    let delivery = Delivery::from_settings(&report)?;
    let hostname = settings
        .host
        .clone()
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
    let templates = Templates::load(report.templates.as_deref())?;
    let rendered = if let Some(Command::SendTest) = cli.command {
        templates.render(&Digest::sample(&hostname))?
    } else {
        let tz = settings.time_zone()?;
        let period = match (cli.since, cli.until) {
            (Some(since), Some(until)) if until > since => Period::between(
                format!(
                    "{} to {}",
                    since.format("%Y-%m-%d %H:%M"),
                    until.format("%Y-%m-%d %H:%M UTC")
                ),
                since,
                until,
            ),
            (Some(_), Some(_)) => {
                return Err(ReportError::Config("--until must be later than --since".into()).into())
            }
            _ => Period::named(&cli.period, Utc::now(), tz)?,
        };
        let store = connect(&settings.storage_url()?).await?;
        let top = report.top.unwrap_or(10).clamp(1, 100);
        let digest = Digest::gather(
            store.as_ref(),
            &period,
            &hostname,
            top,
            tz,
            settings.web.public_url.clone(),
        )
        .await?;
        if digest.quiet() && report.skip_quiet && !cli.dry_run {
            println!("no bans in {}: nothing sent (skip_quiet)", period.label);
            return Ok(Outcome::Skipped);
        }
        templates.render(&digest)?
    };
    if cli.dry_run {
        let message = delivery.message(&rendered)?.formatted();
        match cli.eml {
            Some(path) => {
                std::fs::write(&path, &message)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            None => print!("{}", String::from_utf8_lossy(&message)),
        }
        return Ok(Outcome::Done);
    }
    println!("{}", delivery.send(&rendered).await?);
    Ok(Outcome::Done)
}
