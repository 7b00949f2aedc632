//! `aegis-report`: sends the digest of a period's bans. Run it from cron or a
//! systemd timer (see `contrib/`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    aegis_report::app::run(aegis_report::app::Cli::parse()).map_or_else(
        |e| {
            eprintln!("aegis-report: error: {e:#}");
            ExitCode::from(aegis_core::exit_code(e.as_ref()))
        },
        |outcome| ExitCode::from(outcome.exit_code()),
    )
}
