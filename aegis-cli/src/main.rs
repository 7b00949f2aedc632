//! `aegis`: record fail2ban's bans, import its history, and query attacks.

use std::process::ExitCode;

fn main() -> ExitCode {
    aegis_cli::run(aegis_cli::Cli::from_env()).map_or_else(
        |e| {
            eprintln!("aegis: error: {e:#}");
            ExitCode::from(aegis_core::exit_code(e.as_ref()))
        },
        |()| ExitCode::SUCCESS,
    )
}
