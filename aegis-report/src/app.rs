//! The `aegis-report` command: settings and flags in, a report sent (or shown).
// Flag docs are their `--help` text, which names config sections as `[web]`.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;

use aegis_core::{connect, Settings};
use anyhow::{Context, Result};
use chrono::Utc;
use clap::{Parser, Subcommand};

use crate::{Delivery, Digest, Period, ReportError, Templates};

/// Exit codes: 0 sent (or printed by --dry-run), 1 not sent, 2 invalid arguments,
/// 3 configuration error, 4 skipped (a quiet period with skip_quiet).
#[derive(Parser)]
#[command(
    name = "aegis-report",
    version = aegis_core::VERSION,
    about,
    after_help = "Exit codes: 0 sent (or printed by --dry-run), 1 not sent, 2 invalid arguments, 3 configuration error, 4 skipped: a quiet period with skip_quiet = true."
)]
pub struct Cli {
    /// Configuration file (default: /etc/aegis/aegis.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Storage URL (overrides config and AEGIS_STORAGE_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub storage: Option<String>,
    /// yesterday, last-week (the ISO week before this one), last-month,
    /// today, last24h or last7d; each compared with the period before it.
    #[arg(long, default_value = "yesterday", conflicts_with_all = ["since", "until"])]
    pub period: String,
    /// Start of a custom period (RFC 3339), with --until.
    #[arg(long, requires = "until")]
    pub since: Option<chrono::DateTime<Utc>>,
    /// End of a custom period (RFC 3339).
    #[arg(long, requires = "since")]
    pub until: Option<chrono::DateTime<Utc>>,
    /// Print the complete message (or, for alerts, what each channel would be
    /// sent) instead of sending it.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// With --dry-run: write the message to this .eml file.
    #[arg(long, requires = "dry_run", value_name = "FILE")]
    pub eml: Option<PathBuf>,
    /// What to do instead of sending the report.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands besides sending the report.
#[derive(Subcommand)]
pub enum Command {
    /// Send a short test message through the configured delivery.
    SendTest,
    /// Alerts: the `[[alert]]` rules and `[[channel]]`s of the configuration.
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Write man pages and shell completions into DIR (for packages).
    #[command(hide = true)]
    GenerateDocs {
        /// Where to write `man/` and `completions/`.
        dir: PathBuf,
    },
}

/// `aegis-report alert …`
#[derive(Subcommand)]
pub enum AlertCommand {
    /// Evaluate the rules every minute and send what they find (the service
    /// `aegis-alerts`); with --dry-run, print what would be sent and keep no state.
    Watch {
        /// Evaluate once and exit: 0 when every due message went out, 1 when a channel failed.
        #[arg(long)]
        once: bool,
    },
    /// Send a test message to one channel (or, with --dry-run, print it).
    Test {
        /// The channel's name in `[[channel]]`.
        channel: String,
    },
    /// Check the rules and channels and list them.
    Check,
}

/// How a run that did not fail ended.
pub enum Outcome {
    /// Sent, or printed by `--dry-run`.
    Done,
    /// Nothing sent: a quiet period with `skip_quiet`.
    Skipped,
}

impl Outcome {
    /// 0 done, 4 skipped.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Skipped => 4,
        }
    }
}

/// Runs the command. A failure carries the [`aegis_core::Error`] that decides
/// its exit code ([`aegis_core::exit_code`]) wherever the report has one.
pub fn run(cli: Cli) -> Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(report(cli))
        .map_err(|e| match e.downcast::<ReportError>() {
            Ok(ReportError::Storage(core)) => core.into(),
            Ok(ReportError::Config(advice)) => aegis_core::Error::Config(advice).into(),
            Ok(other) => other.into(),
            Err(other) => other,
        })
}

async fn report(cli: Cli) -> Result<Outcome> {
    if let Some(Command::GenerateDocs { dir }) = &cli.command {
        aegis_core::docs::write(<Cli as clap::CommandFactory>::command(), dir)?;
        return Ok(Outcome::Done);
    }
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(url) = cli.storage {
        settings.storage.url = Some(url);
    }
    if let Some(Command::Alert(command)) = cli.command {
        return crate::alert::command(&settings, command, cli.dry_run).await;
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
