//! `aegis-web`: serves the Aegis dashboard.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    aegis_web::app::run(aegis_web::app::Cli::parse()).map_or_else(
        |e| {
            eprintln!("aegis-web: error: {e:#}");
            ExitCode::from(aegis_core::exit_code(e.as_ref()))
        },
        |()| ExitCode::SUCCESS,
    )
}
