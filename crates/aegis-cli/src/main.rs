//! `aegis`: record fail2ban's bans, import its history, and query attacks.

mod cli;
mod context;
mod exit;
mod geo;
mod import;
mod install;
mod record;
mod show;
mod spool;
mod system_log;
mod table;
mod writer;

use std::process::ExitCode;

use aegis_core::{connect, EventKind};
use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command, ConfigCommand, Fail2banCommand, GeoCommand, ImportCommand};
use context::Context;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        // Before any runtime exists: the ban path may fork.
        Command::Ban(_) | Command::Unban(_) => record(cli),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(run(cli))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aegis: error: {e:#}");
            ExitCode::from(exit::code(&e))
        }
    }
}

fn record(cli: Cli) -> Result<()> {
    let ctx = Context::load(&cli)?;
    match cli.command {
        Command::Ban(args) => record::record(&ctx, EventKind::Ban, args),
        Command::Unban(args) => record::record(&ctx, EventKind::Unban, args),
        _ => unreachable!("only ban and unban are recorded"),
    }
}

async fn run(cli: Cli) -> Result<()> {
    let ctx = Context::load(&cli)?;
    match cli.command {
        Command::Fail2ban(Fail2banCommand::Install {
            dir,
            dry_run,
            force,
        }) => return install::install(&dir, dry_run, force),
        Command::Config(ConfigCommand::Example) => {
            print!("{}", aegis_core::EXAMPLE_CONFIG);
            return Ok(());
        }
        Command::Geo(GeoCommand::Lookup { ips, json }) => {
            return geo::lookup(&ctx.geolocator()?, &ips, json)
        }
        Command::Geo(GeoCommand::Info { json }) => return geo::info(&ctx.geolocator()?, json),
        Command::Config(ConfigCommand::Show) => {
            println!("{}", context::describe(&ctx));
            return Ok(());
        }
        Command::Flush => return record::flush(&ctx).await,
        _ => {}
    }
    let shared = connect(&ctx.storage_url).await?;
    let store = shared.as_ref();
    match cli.command {
        Command::Stats(args) => show::stats(store, &args, ctx.time_zone()?).await,
        Command::Top(args) => show::top(store, &args).await,
        Command::Ip { ip, json } => show::ip(store, &ip, json).await,
        Command::Events(args) => show::events(store, &args).await,
        Command::Prune { older_than, json } => show::prune(store, &older_than, json).await,
        Command::Geo(GeoCommand::Backfill { online, json }) => {
            let online = (online || ctx.settings.geo.online)
                .then(|| geo::online_provider(&ctx.settings.geo))
                .transpose()?;
            geo::backfill(&ctx.geolocator()?, online, store, json).await
        }
        Command::Import(ImportCommand::Fail2banDb { path, host, json }) => {
            let geo = ctx.geolocator_or_builtin();
            let host = host.as_deref().unwrap_or(&ctx.host);
            import::fail2ban_db(shared.clone(), geo.as_ref(), &path, host, json).await
        }
        Command::Import(ImportCommand::Log {
            paths,
            timezone,
            host,
            json,
        }) => {
            let tz = match timezone {
                Some(name) => name.parse().map_err(|_| {
                    aegis_core::Error::Invalid(format!(
                        "unknown time zone {name:?}: use an IANA name such as Europe/Berlin"
                    ))
                })?,
                None => system_time_zone().unwrap_or(ctx.time_zone()?),
            };
            let geo = ctx.geolocator_or_builtin();
            let host = host.as_deref().unwrap_or(&ctx.host);
            import::logs(shared.clone(), geo.as_ref(), &paths, tz, host, json).await
        }
        Command::Ban(_)
        | Command::Unban(_)
        | Command::Flush
        | Command::Fail2ban(_)
        | Command::Config(_)
        | Command::Geo(GeoCommand::Lookup { .. } | GeoCommand::Info { .. }) => {
            unreachable!("handled above")
        }
    }
}

/// The system's zone from `/etc/timezone` or the `/etc/localtime` link (fail2ban logs local time).
fn system_time_zone() -> Option<aegis_core::Tz> {
    if let Ok(name) = std::env::var("TZ") {
        return name.trim_start_matches(':').parse().ok();
    }
    if let Ok(name) = std::fs::read_to_string("/etc/timezone") {
        if let Ok(tz) = name.trim().parse() {
            return Some(tz);
        }
    }
    let link = std::fs::read_link("/etc/localtime").ok()?;
    let link = link.to_string_lossy();
    link.split_once("zoneinfo/")?.1.parse().ok()
}
