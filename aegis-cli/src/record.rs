//! `aegis ban|unban|flush`: the path fail2ban waits on, so it does as little as it can.
//!
//! fail2ban runs every action under one global lock. `aegis ban` therefore only
//! validates the event and writes it durably to the spool; a detached writer
//! process (see [`crate::writer`]) locates it and moves it into the store.
//! fail2ban never waits on the store, and a store that is down, slow or locked
//! loses nothing.

use std::ffi::OsString;
use std::time::Duration;

use aegis_core::geo::Geolocator;
use aegis_core::{bound_matches, connect, parse_ip, parse_time, BanEvent, Error, EventKind};
use anyhow::{bail, Result};

use crate::cli::EventArgs;
use crate::context::Context;
use crate::spool::Drainer;
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
    // Located by the writer, off fail2ban's clock: opening the geolocation
    // data (and the user's city and ASN databases) is much of this call's work.
    let (mut event, notes) = build_event(kind, args, &ctx.host)?;
    if let Err(e) = Geolocator::check(&ctx.settings.geo) {
        eprintln!("aegis: warning: {e:#}; the {kind} is located by the built-in country data");
    }
    for note in notes {
        eprintln!(
            "aegis: warning: {note}; the {kind} of {} is recorded",
            event.ip
        );
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
        Err(spool_failed) => match store_directly(ctx, &mut event) {
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
fn store_directly(ctx: &Context, event: &mut BanEvent) -> Result<()> {
    if let Some(geo) = ctx.geolocator_or_builtin() {
        event.geo = geo.locate(event.ip);
    }
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
        .store_all(&ctx.storage_url, Drainer::Flush)
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

/// A tag value, or `None` when fail2ban passed nothing or left the tag literal
/// (`<port>`). Bytes that are not UTF-8 become U+FFFD, with a note.
fn tag(what: &str, value: Option<OsString>, notes: &mut Vec<String>) -> Option<String> {
    let raw = value?;
    let value = raw.to_string_lossy();
    if raw.to_str().is_none() {
        notes.push(format!("{what}: bytes that are not UTF-8 replaced"));
    }
    let trimmed = value.trim();
    let literal = trimmed.len() > 2
        && trimmed.starts_with('<')
        && trimmed.ends_with('>')
        && trimmed[1..trimmed.len() - 1]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    (!trimmed.is_empty() && !literal).then(|| trimmed.to_owned())
}

/// A count, or `None` with a note when it is not a whole number >= 0.
fn number<T: std::str::FromStr>(
    what: &str,
    value: Option<OsString>,
    notes: &mut Vec<String>,
) -> Option<T> {
    let v = tag(what, value, notes)?;
    // fail2ban passes some counts as floats ("3.0").
    let parsed = v.strip_suffix(".0").unwrap_or(&v).parse().ok();
    if parsed.is_none() {
        notes.push(format!(
            "--{what} {:?} dropped: not a whole number >= 0",
            shown(&v)
        ));
    }
    parsed
}

/// At most 64 characters of a value, for a note.
fn shown(value: &str) -> String {
    value.chars().take(64).collect()
}

/// Builds an event from fail2ban's tags. Only the address and the jail make an
/// event: a missing or invalid one is an error; any other value that cannot be
/// stored as given is cleaned or dropped (see [`BanEvent::clean`]), and the
/// notes returned say what changed.
pub fn build_event(
    kind: EventKind,
    mut args: EventArgs,
    default_host: &str,
) -> Result<(BanEvent, Vec<String>)> {
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
    let mut notes = Vec::new();
    let Some(ip) = tag("ip", args.ip, &mut notes) else {
        bail!(Error::Invalid(
            "no address: pass --ip \"<ip>\" (or the positional form IP PROTOCOL PORT FAILURES TIME)".into()
        ));
    };
    let ip = parse_ip(&ip)?;
    let now = chrono::Utc::now();
    let time = match tag("time", args.time, &mut notes) {
        Some(t) => parse_time(&t).unwrap_or_else(|e| {
            notes.push(format!("{e}; the time received is recorded instead"));
            now
        }),
        None => now,
    };
    let jail = tag("jail", args.jail, &mut notes).unwrap_or_else(|| "unknown".into());
    let host = tag("host", args.host, &mut notes).unwrap_or_else(|| default_host.to_owned());
    let mut event = BanEvent::new(kind, ip, &jail, &host, time)?;
    event.protocol = tag("protocol", args.protocol, &mut notes);
    event.port = tag("port", args.port, &mut notes);
    event.failures = number("failures", args.failures, &mut notes);
    event.bancount = number("bancount", args.bancount, &mut notes);
    event.bantime = tag("bantime", args.bantime, &mut notes).and_then(|b| {
        let seconds = b.strip_suffix(".0").unwrap_or(&b).parse::<i64>().ok();
        if seconds.is_none() {
            notes.push(format!(
                "--bantime {:?} dropped: not a number of seconds",
                shown(&b)
            ));
        }
        seconds
    });
    event.restored = match tag("restored", args.restored, &mut notes).as_deref() {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => {
            notes.push(format!(
                "--restored {:?} read as 0: expected 0 or 1",
                shown(other)
            ));
            false
        }
    };
    if let Some(m) = tag("matches", args.matches, &mut notes) {
        event.matches = bound_matches(m.lines());
    }
    event.user = tag("user", args.user, &mut notes);
    notes.extend(event.clean());
    event.validate()?;
    Ok((event, notes))
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
        let (e, _) = build_event(
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
        let (e, _) = build_event(
            EventKind::Ban,
            args(|a| {
                a.positional = ["203.0.113.7", "tcp", "ssh", "5", "1795807795.0"]
                    .map(OsString::from)
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
    fn a_bad_address_is_an_error_and_other_bad_values_are_notes() {
        let a = args(|a| a.ip = Some("999.1.1.1".into()));
        let err = build_event(EventKind::Ban, a, "h").unwrap_err().to_string();
        assert!(err.contains("IP address"), "{err}");
        type Case = (&'static str, fn(&mut EventArgs));
        let cases: [Case; 7] = [
            ("--failures", |a| a.failures = Some("-3".into())),
            ("bantime", |a| a.bantime = Some("-5".into())),
            ("--restored", |a| a.restored = Some("yes".into())),
            ("time", |a| a.time = Some("yesterday".into())),
            ("user", |a| a.user = Some("admin\tx".into())),
            ("user", |a| a.user = Some("u".repeat(300).into())),
            ("user", |a| {
                use std::os::unix::ffi::OsStringExt;
                a.user = Some(OsString::from_vec(b"r\xffoot".to_vec()))
            }),
        ];
        for (want, f) in cases {
            let a = args(|a| {
                a.ip = Some("203.0.113.7".into());
                f(a)
            });
            let (e, notes) = build_event(EventKind::Ban, a, "h").unwrap();
            assert_eq!(e.ip.to_string(), "203.0.113.7");
            assert!(notes.iter().any(|n| n.contains(want)), "{want}: {notes:?}");
        }
    }

    /// Whatever an attacker puts in any tag: no panic, and when the address
    /// and jail are valid the event is built and stores.
    #[test]
    fn any_tag_values() {
        let samples = [
            "203.0.113.7",
            "sshd",
            "1795807795.0",
            "<port>",
            "-1",
            "3.0",
            "root",
            "line one\nline two",
            "tcp",
        ];
        let mut rng = fastrand::Rng::with_seed(6);
        aegis_testkit::fuzz::run("ban path tags", 6, &samples, |value| {
            let mut other = || {
                Some(OsString::from(aegis_testkit::fuzz::mutate(
                    &mut rng, &samples,
                )))
            };
            let a = EventArgs {
                ip: Some("198.51.100.7".into()),
                jail: Some("sshd".into()),
                protocol: other(),
                port: other(),
                failures: other(),
                time: other(),
                bantime: other(),
                bancount: other(),
                restored: other(),
                matches: other(),
                user: Some(value.into()),
                ..EventArgs::default()
            };
            let (event, _) =
                build_event(EventKind::Ban, a, "web1").expect("a valid ip and jail make an event");
            event.validate().unwrap();
            let b = EventArgs {
                ip: Some(value.into()),
                jail: other(),
                positional: vec![value.into()],
                ..EventArgs::default()
            };
            let _ = build_event(EventKind::Unban, b, "web1");
        });
    }
}
