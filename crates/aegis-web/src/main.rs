//! `aegis-web`: the dashboard. Until it is built, this shell says where to look instead.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "aegis-web: the dashboard is not part of this release yet.\n\
         The same figures are available now from the command line:\n  \
         aegis stats --since 7d\n  aegis top --by country --since 30d\n  aegis events --json"
    );
    ExitCode::from(2)
}
