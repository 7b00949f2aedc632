//! `aegis-web`: serves the Aegis dashboard.

use std::io::BufRead;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aegis_core::{connect_for, EventFilter, Page, Settings, Storage, StorageUrl, Workload};
use aegis_web::{demo_events, Auth, Dashboard};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// Exit codes: 0 stopped cleanly, 1 runtime or storage failure, 2 bad arguments,
/// 3 bad configuration or an unsafe binding.
#[derive(Parser)]
#[command(
    name = "aegis-web",
    version,
    about = "Serve the Aegis dashboard, JSON API and metrics"
)]
struct Cli {
    /// Configuration file (default /etc/aegis/aegis.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Storage URL (overrides [storage] url).
    #[arg(long, value_name = "URL")]
    storage: Option<String>,
    /// Address to listen on (default [web] bind, else 127.0.0.1:8080; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Fill an empty store with generated attacks (default store: demo.db in the data
    /// directory, never your real one) and keep adding some.
    #[arg(long)]
    demo: bool,
    /// Serve a non-loopback address without authentication (behind a proxy that authenticates).
    #[arg(long)]
    allow_unauthenticated: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Read a password on standard input and print its Argon2 hash for [web] password_hash.
    HashPassword,
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::HashPassword) => hash_password(),
        None => actix_web::rt::System::new().block_on(serve(cli)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aegis-web: error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
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

fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<aegis_core::Error>() {
        Some(aegis_core::Error::Config(_)) => 3,
        Some(aegis_core::Error::Invalid(_)) => 2,
        _ => 1,
    }
}

fn hash_password() -> Result<()> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.len() < 8 {
        return Err(aegis_core::Error::Invalid(
            "the password on standard input must be at least 8 characters".into(),
        )
        .into());
    }
    println!("{}", aegis_web::hash_password(password)?);
    Ok(())
}

async fn serve(cli: Cli) -> Result<()> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    if let Some(url) = cli.storage {
        settings.storage.url = Some(url);
    } else if cli.demo {
        let path = aegis_core::data_dir().join("demo.db");
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
        fill_demo(storage.as_ref()).await?;
        let live = storage.clone();
        actix_web::rt::spawn(keep_demo_alive(live));
    }
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let dashboard = Dashboard {
        storage,
        tz: settings.time_zone()?,
        auth,
        demo: cli.demo,
    };
    let server = aegis_web::serve(dashboard, listener)?;
    println!("aegis-web: serving {url} on http://{local}/");
    server.await?;
    Ok(())
}

/// Fills an empty store; a store with events is left as it is.
async fn fill_demo(storage: &dyn Storage) -> Result<()> {
    let existing = storage
        .events(&EventFilter::default(), Page::first(1))
        .await?;
    if !existing.is_empty() {
        eprintln!("aegis-web: the store already has events; no demo data added");
        return Ok(());
    }
    let events = demo_events(chrono::Utc::now());
    for chunk in events.chunks(5_000) {
        storage.record_batch(chunk).await?;
    }
    eprintln!(
        "aegis-web: added {} generated demo events (hosts *{})",
        events.len(),
        aegis_web::DEMO_HOST_SUFFIX
    );
    Ok(())
}

/// A new demo attack every few seconds, so the latest bans move.
async fn keep_demo_alive(storage: Arc<dyn Storage>) {
    let mut seed = chrono::Utc::now().timestamp_millis() as u64;
    loop {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        actix_web::rt::time::sleep(Duration::from_secs(4 + seed % 8)).await;
        let events = aegis_web::live_event(seed, chrono::Utc::now());
        if let Err(e) = storage.record_batch(&events).await {
            eprintln!("aegis-web: demo event not stored: {e}");
        }
    }
}
