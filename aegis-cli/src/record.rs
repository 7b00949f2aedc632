//! `aegis ban|unban|flush`: the path fail2ban waits on, so it does as little as it can.
//!
//! fail2ban runs every action under one global lock. `aegis ban` therefore only
//! validates the event, locates it and writes it durably to the spool; a detached
//! writer process (see [`crate::writer`]) moves it into the store. fail2ban never
//! waits on the store, and a store that is down, slow or locked loses nothing.

use std::time::Duration;

use aegis_core::{bound_matches, connect, parse_ip, parse_time, BanEvent, Error, EventKind};
use anyhow::{bail, Result};

use crate::cli::EventArgs;
use crate::context::Context;
use crate::writer;

/// How long a call waits for a local store when it cannot spool, unless configured.
const LOCAL_TIMEOUT: Duration = Duration::from_millis(3_000);
/// A remote store gets a tighter bound: fail2ban waits for every action under one lock.
const REMOTE_TIMEOUT: Duration = Duration::from_millis(800);

/// Records one event: into the spool, from which a writer stores it, or, when the
/// spool cannot be written, straight into the store.
///
/// Runs before any other thread exists, so that it may fork the writer.
pub fn record(ctx: &Context, kind: EventKind, args: EventArgs) -> Result<()> {
    let mut event = build_event(kind, args, &ctx.host)?;
    if let Some(geo) = ctx.geolocator_or_builtin() {
        event.geo = geo.locate(event.ip);
    }
    let spool = ctx.spool();
    if let Some(why) = spool.last_failure() {
        eprintln!(
            "aegis: warning: events wait in {} because the store did not take them: {why} (`aegis flush` retries)",
            spool.dir().display()
        );
    }
    match spool.push(&event) {
        Ok(_) => {
            if !spool.writer_running() {
                writer::start(ctx, &spool);
            }
            Ok(())
        }
        Err(spool_failed) => match store_directly(ctx, &event) {
            Ok(()) => {
                eprintln!(
                    "aegis: warning: {spool_failed:#}; {} {} stored directly",
                    event.kind, event.ip
                );
                Ok(())
            }
            Err(store_failed) => Err(aegis_core::Error::Lost(format!(
                "{spool_failed:#}; and the store: {store_failed:#}"
            ))
            .into()),
        },
    }
}

/// The way round a spool that cannot be written: the store, within a bound.
fn store_directly(ctx: &Context, event: &BanEvent) -> Result<()> {
    let timeout = ctx
        .settings
        .storage
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(if ctx.storage_url.is_remote() {
            REMOTE_TIMEOUT
        } else {
            LOCAL_TIMEOUT
        });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let stored = tokio::time::timeout(timeout, async {
            connect(&ctx.storage_url).await?.record(event).await
        })
        .await;
        match stored {
            Ok(outcome) => Ok(outcome.map(drop)?),
            Err(_) => bail!(
                "no answer from {} within {} ms",
                ctx.storage_url,
                timeout.as_millis()
            ),
        }
    })
}

/// `aegis flush`: stores every spooled event now, waiting for a running writer first.
pub async fn flush(ctx: &Context) -> Result<()> {
    let spool = ctx.spool();
    let drained = spool
        .store_all(&ctx.storage_url, true)
        .await?
        .unwrap_or_default();
    println!(
        "{} stored, {} already stored, {} unreadable (kept as .bad) from {}",
        drained.inserted,
        drained.duplicates,
        drained.unreadable,
        spool.dir().display()
    );
    Ok(())
}

/// A tag value, or `None` when fail2ban passed nothing or left the tag literal (`<port>`).
fn tag(value: Option<String>) -> Option<String> {
    let value = value?;
    let trimmed = value.trim();
    let literal = trimmed.len() > 2
        && trimmed.starts_with('<')
        && trimmed.ends_with('>')
        && trimmed[1..trimmed.len() - 1]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    (!trimmed.is_empty() && !literal).then(|| trimmed.to_owned())
}

fn number<T: std::str::FromStr>(what: &str, value: Option<String>) -> Result<Option<T>> {
    let Some(v) = tag(value) else { return Ok(None) };
    // fail2ban passes some counts as floats ("3.0").
    let v = v.strip_suffix(".0").unwrap_or(&v).to_owned();
    v.parse().map(Some).map_err(|_| {
        Error::Invalid(format!(
            "invalid --{what} {v:?}: expected a whole number >= 0"
        ))
        .into()
    })
}

/// Builds a validated event from fail2ban's tags.
pub fn build_event(kind: EventKind, mut args: EventArgs, default_host: &str) -> Result<BanEvent> {
    let positional = std::mem::take(&mut args.positional);
    let slots = [
        &mut args.ip,
        &mut args.protocol,
        &mut args.port,
        &mut args.failures,
        &mut args.time,
    ];
    for (value, slot) in positional.into_iter().zip(slots) {
        if slot.is_some() {
            bail!(Error::Invalid(
                "a tag was given both by position and by name: use one form".into()
            ));
        }
        *slot = Some(value);
    }
    let Some(ip) = tag(args.ip) else {
        bail!(Error::Invalid(
            "no address: pass --ip \"<ip>\" (or the positional form IP PROTOCOL PORT FAILURES TIME)".into()
        ));
    };
    let ip = parse_ip(&ip)?;
    let time = match tag(args.time) {
        Some(t) => parse_time(&t)?,
        None => chrono::Utc::now(),
    };
    let jail = tag(args.jail).unwrap_or_else(|| "unknown".into());
    let host = tag(args.host).unwrap_or_else(|| default_host.to_owned());
    let mut event = BanEvent::new(kind, ip, &jail, &host, time)?;
    event.protocol = tag(args.protocol);
    event.port = tag(args.port);
    event.failures = number("failures", args.failures)?;
    event.bancount = number("bancount", args.bancount)?;
    event.bantime = match tag(args.bantime) {
        None => None,
        Some(b) => Some(
            b.strip_suffix(".0")
                .unwrap_or(&b)
                .parse::<i64>()
                .ok()
                .filter(|b| *b >= -1)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "invalid --bantime {b:?}: expected seconds >= 0, or -1 for permanent"
                    ))
                })?,
        ),
    };
    event.restored = match tag(args.restored).as_deref() {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => bail!(Error::Invalid(format!(
            "invalid --restored {other:?}: expected 0 or 1"
        ))),
    };
    if let Some(m) = tag(args.matches) {
        event.matches = bound_matches(m.lines());
    }
    event.user = tag(args.user);
    event.validate()?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut EventArgs)) -> EventArgs {
        let mut a = EventArgs::default();
        f(&mut a);
        a
    }

    #[test]
    fn literal_tags_are_absent() {
        let e = build_event(
            EventKind::Ban,
            args(|a| {
                a.ip = Some("203.0.113.7".into());
                a.port = Some("<port>".into());
                a.user = Some("".into());
                a.failures = Some("<failures>".into());
            }),
            "web1",
        )
        .unwrap();
        assert_eq!((e.port, e.user, e.failures), (None, None, None));
        assert_eq!(e.host, "web1");
    }

    #[test]
    fn positional_form_of_the_seed() {
        let e = build_event(
            EventKind::Ban,
            args(|a| {
                a.positional = ["203.0.113.7", "tcp", "ssh", "5", "1795807795.0"]
                    .map(String::from)
                    .to_vec();
                a.jail = Some("sshd".into());
            }),
            "h",
        )
        .unwrap();
        assert_eq!(e.port.as_deref(), Some("ssh"));
        assert_eq!(e.failures, Some(5));
        assert_eq!(e.time.timestamp(), 1_795_807_795);
    }

    #[test]
    fn bad_values_are_named() {
        type Case = (&'static str, fn(&mut EventArgs));
        let cases: [Case; 5] = [
            ("IP address", |a| a.ip = Some("999.1.1.1".into())),
            ("--failures", |a| a.failures = Some("-3".into())),
            ("--bantime", |a| a.bantime = Some("-5".into())),
            ("--restored", |a| a.restored = Some("yes".into())),
            ("time", |a| a.time = Some("yesterday".into())),
        ];
        for (want, f) in cases {
            let a = args(|a| {
                a.ip = Some("203.0.113.7".into());
                f(a)
            });
            let err = build_event(EventKind::Ban, a, "h").unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }
}
