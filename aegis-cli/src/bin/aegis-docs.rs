//! `aegis-docs DIR`: writes the man pages and shell completions of `aegis`
//! into DIR (scripts/package runs it; the package does not ship it).

use std::process::ExitCode;

use clap::CommandFactory;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: aegis-docs DIR");
        return ExitCode::from(2);
    };
    match aegis_core::docs::write(aegis_cli::Cli::command(), dir.as_ref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aegis-docs: error: {e}");
            ExitCode::from(aegis_core::exit_code(&e))
        }
    }
}
