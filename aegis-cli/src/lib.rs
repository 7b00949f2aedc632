//! The `aegis` command: record fail2ban's bans, import its history, and query
//! attacks. The binary parses [`Cli`] and calls [`run`].

mod agent;
mod cli;
mod context;
mod decide;
mod geo;
mod import;
mod install;
mod record;
mod show;
mod spool;
mod system_log;
mod table;
mod writer;

use std::future::Future;
use std::sync::Arc;

use aegis_core::{connect, EventKind, Storage};
use anyhow::Result;

pub use cli::Cli;
use cli::{
    Action, AgentCommand, Command, ConfigCommand, DecisionsCommand, Fail2banCommand, GeoCommand,
    ImportCommand,
};
use context::Context;

/// The example configuration, with every key documented.
pub const EXAMPLE_CONFIG: &str = include_str!("../contrib/aegis.toml");

/// Runs one command. Exit codes come from the error ([`aegis_core::exit_code`]).
pub fn run(cli: Cli) -> Result<()> {
    let ctx = Context::load(&cli)?;
    match cli.command {
        // Before any runtime exists: the ban path may fork its writer.
        Command::Action(Action::Ban(args)) => record::record(&ctx, EventKind::Ban, args),
        Command::Action(Action::Unban(args)) => record::record(&ctx, EventKind::Unban, args),
        Command::Flush => block_on(record::flush(&ctx)),
        Command::Fail2ban(Fail2banCommand::Install {
            dir,
            dry_run,
            force,
            share,
            jail_dir,
            unit_dir,
        }) => {
            let share = share.then(|| {
                let jails = jail_dir.unwrap_or_else(|| dir.with_file_name("jail.d"));
                (jails, unit_dir)
            });
            let places = install::Places {
                actions: dir,
                share,
                packaged_unit: install::PACKAGED_AGENT_UNIT.into(),
            };
            install::install(&places, dry_run, force)
        }
        Command::Config(ConfigCommand::Example) => {
            print!("{EXAMPLE_CONFIG}");
            Ok(())
        }
        Command::Config(ConfigCommand::Show) => {
            println!("{}", context::describe(&ctx));
            Ok(())
        }
        Command::Geo(GeoCommand::Lookup { ips, json }) => {
            geo::lookup(&ctx.geolocator()?, &ips, json)
        }
        Command::Geo(GeoCommand::Info { json }) => geo::info(&ctx.geolocator()?, json),
        Command::Geo(GeoCommand::Backfill { online, json }) => {
            let online = (online || ctx.settings.geo.online)
                .then(|| geo::online_provider(&ctx.settings.geo))
                .transpose()?;
            let geo = ctx.geolocator()?;
            on_store(&ctx, async |store| {
                geo::backfill(&geo, online, store.as_ref(), json).await
            })
        }
        Command::Stats(args) => {
            let tz = ctx.time_zone()?;
            on_store(&ctx, async |store| {
                show::stats(store.as_ref(), &args, tz).await
            })
        }
        Command::Top(args) => on_store(&ctx, async |store| show::top(store.as_ref(), &args).await),
        Command::Ip { ip, json } => on_store(&ctx, async |store| {
            show::ip(store.as_ref(), &ip, json).await
        }),
        Command::Events(args) => on_store(&ctx, async |store| {
            show::events(store.as_ref(), &args).await
        }),
        Command::Prune { older_than, json } => on_store(&ctx, async |store| {
            show::prune(store.as_ref(), &older_than, json).await
        }),
        Command::Decide(args) => on_store(&ctx, async |store| {
            decide::decide(store.as_ref(), &args).await
        }),
        Command::Decisions(args) => match &args.command {
            Some(DecisionsCommand::Revoke { id, reason, json }) => on_store(&ctx, async |store| {
                decide::revoke(store.as_ref(), *id, reason, *json).await
            }),
            None => on_store(&ctx, async |store| {
                decide::list(store.as_ref(), &args).await
            }),
        },
        Command::Agent(args) => match args.command {
            Some(AgentCommand::Status { json }) => on_store(&ctx, async |store| {
                agent::status(store.as_ref(), json).await
            }),
            None => agent::run(&ctx, args.once),
        },
        Command::Import(ImportCommand::Fail2banDb { path, host, json }) => {
            let geo = ctx.geolocator_or_builtin();
            let host = host.unwrap_or_else(|| ctx.host.clone());
            on_store(&ctx, async |store| {
                import::fail2ban_db(store, geo.as_ref(), &path, &host, json).await
            })
        }
        Command::Import(ImportCommand::Log {
            paths,
            timezone,
            host,
            json,
        }) => {
            let tz = ctx.log_time_zone(timezone.as_deref())?;
            let geo = ctx.geolocator_or_builtin();
            let host = host.unwrap_or_else(|| ctx.host.clone());
            on_store(&ctx, async |store| {
                import::logs(store, geo.as_ref(), &paths, tz, &host, json).await
            })
        }
    }
}

/// Runs `command` on the configured store.
fn on_store(
    ctx: &Context,
    command: impl AsyncFnOnce(Arc<dyn Storage>) -> Result<()>,
) -> Result<()> {
    block_on(async {
        let store = connect(&ctx.storage_url).await?;
        command(store).await
    })
}

/// Every command but the ban path runs on one thread: each waits on one store.
fn block_on(work: impl Future<Output = Result<()>>) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(work)
}

#[cfg(test)]
mod tests {
    #[test]
    fn example_config_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aegis.toml");
        std::fs::write(&path, super::EXAMPLE_CONFIG).unwrap();
        let settings = aegis_core::Settings::load(Some(&path)).unwrap();
        settings.storage_url().unwrap();
        settings.time_zone().unwrap();
    }
}
