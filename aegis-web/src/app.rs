//! The `aegis-web` command: settings and flags in, a running dashboard out.
// Flag docs are their `--help` text, which names config sections as `[web]`.
#![allow(rustdoc::broken_intra_doc_links)]

use std::io::BufRead;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use aegis_core::{connect_for, Settings, Storage, StorageUrl, Workload};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::{demo, Auth, Dashboard};

/// Exit codes: 0 stopped cleanly, 1 runtime or storage failure, 2 bad arguments,
/// 3 bad configuration or an unsafe binding.
#[derive(Parser)]
#[command(
    name = "aegis-web",
    version = aegis_core::VERSION,
    about = "Serve the Aegis dashboard, JSON API and metrics"
)]
pub struct Cli {
    /// Configuration file (default /etc/aegis/aegis.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Storage URL (overrides [storage] url).
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,
    /// Address to listen on (default [web] bind, else 127.0.0.1:8080; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Fill an empty store with generated attacks (default store: demo.db in the data
    /// directory, never your real one) and keep adding some.
    #[arg(long)]
    pub demo: bool,
    /// Serve a non-loopback address without authentication (behind a proxy that authenticates).
    #[arg(long)]
    pub allow_unauthenticated: bool,
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands besides serving.
#[derive(Subcommand)]
pub enum Command {
    /// Read a password on standard input and print its Argon2 hash for [web] password_hash.
    HashPassword,
    /// Write man pages and shell completions into DIR (for packages).
    #[command(hide = true)]
    GenerateDocs {
        /// Where to write `man/` and `completions/`.
        dir: PathBuf,
    },
}

/// Runs the command: serves until stopped, or prints a password hash.
pub fn run(cli: Cli) -> Result<()> {
    limit_malloc_arenas();
    match cli.command {
        Some(Command::HashPassword) => hash_password_from_stdin(),
        Some(Command::GenerateDocs { dir }) => Ok(aegis_core::docs::write(
            <Cli as clap::CommandFactory>::command(),
            &dir,
        )?),
        None => actix_web::rt::System::new().block_on(serve(cli)),
    }
}

/// glibc gives each busy thread a heap arena of its own and keeps what was
/// freed in it; two arenas keep a long-running server near the memory it uses.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn hash_password_from_stdin() -> Result<()> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.len() < 8 {
        return Err(aegis_core::Error::Invalid(
            "the password on standard input must be at least 8 characters".into(),
        )
        .into());
    }
    println!("{}", crate::hash_password(password)?);
    Ok(())
}

async fn serve(cli: Cli) -> Result<()> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(url) = cli.storage {
        settings.storage.url = Some(url);
    } else if cli.demo {
        let path = Settings::data_dir().join("demo.db");
        settings.storage.url = Some(format!("sqlite://{}", path.display()));
    }
    let bind = cli
        .bind
        .or(settings.web.bind.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let addr: SocketAddr = bind.parse().map_err(|e| {
        aegis_core::Error::Config(format!(
            "cannot listen on {bind:?} ({e}): expected address:port, e.g. 127.0.0.1:8080 or [::1]:8080"
        ))
    })?;
    let auth = Auth::from_settings(&settings.web)?;
    let open_to_all = cli.allow_unauthenticated || settings.web.allow_unauthenticated;
    if !addr.ip().is_loopback() && !auth.is_configured() && !open_to_all {
        return Err(aegis_core::Error::Config(format!(
            "refusing to serve {addr} without authentication: set [web] token, or [web] user and \
             password_hash (aegis-web hash-password), or pass --allow-unauthenticated behind a \
             proxy that authenticates"
        ))
        .into());
    }
    let url: StorageUrl = settings.storage_url()?;
    let storage = connect_for(&url, Workload::Serve).await?;
    if cli.demo {
        demo::fill(storage.as_ref()).await?;
        actix_web::rt::spawn(demo::keep_alive(storage.clone()));
    }
    actix_web::rt::spawn(keep_summaries(storage.clone()));
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let dashboard = Dashboard {
        storage,
        tz: settings.time_zone()?,
        auth,
        demo: cli.demo,
        share: aegis_core::share::SharePolicy::from_settings(&settings.share)?,
    };
    let server = crate::serve(dashboard, listener)?;
    println!("aegis-web: serving {url} on http://{local}/");
    server.await?;
    Ok(())
}

/// Keeps the summaries behind the dashboard's ranges current, so that requests
/// only fold the last minute of bans; until a large store's first pass ends,
/// they answer from the exact range path.
async fn keep_summaries(storage: Arc<dyn Storage>) {
    loop {
        if let Err(e) = storage.maintain().await {
            eprintln!("aegis-web: summaries not updated (figures stay exact, only slower): {e}");
        }
        actix_web::rt::time::sleep(std::time::Duration::from_secs(60)).await;
    }
}
