use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::ImportItem;
use crate::error::{Error, Result};
use crate::event::{parse_ip, BanEvent, EventKind};

/// Opens a log file for reading lines, decompressing `.gz` files.
pub fn open_log(path: &Path) -> Result<Box<dyn BufRead>> {
    let file =
        File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            file,
        ))))
    } else {
        Ok(Box::new(BufReader::new(file)))
    }
}

/// Parses a ban line of `fail2ban.log` as every fail2ban since 0.8 writes it:
///
/// - 0.9 and later: `2026-11-27 19:30:01,123 fail2ban.actions [1234]: NOTICE  [sshd] Ban 203.0.113.7`
/// - 0.8: `2013-11-27 19:30:01,123 fail2ban.actions: WARNING [ssh] Ban 203.0.113.7`
///
/// with `Ban`, `Unban` and `Restore Ban`. `… 203.0.113.7 already banned` is a
/// note, not a new ban, and any other line of the actions logger that speaks of
/// a ban is one that cannot be read: both come back as reasons to skip. `None`
/// for every other line. fail2ban logs local time: `tz` says which.
pub fn parse_log_line(line: &str, tz: Tz, host: &str) -> Option<ImportItem> {
    let (_, rest) = line.split_once(" fail2ban.actions")?;
    let message = match rest.split_once("]: ") {
        Some((pid, message)) if pid.trim_start().starts_with('[') => message,
        _ => rest.strip_prefix(": ")?,
    };
    let words: Vec<&str> = message.split_whitespace().collect();
    let (jail, kind, restored, ip) = match words.as_slice() {
        [_level, jail, "Ban", ip] => (jail, EventKind::Ban, false, ip),
        [_level, jail, "Unban", ip] => (jail, EventKind::Unban, false, ip),
        [_level, jail, "Restore", "Ban", ip] => (jail, EventKind::Ban, true, ip),
        [_level, _jail, _ip, "already", "banned"] => {
            return Some(Err(
                "already banned (a note of fail2ban's, not a new ban)".into()
            ))
        }
        _ if words.iter().any(|w| ["Ban", "Unban", "banned"].contains(w)) => {
            return Some(Err("a ban line in no format fail2ban writes".into()))
        }
        _ => return None,
    };
    let Some(jail) = jail.strip_prefix('[').and_then(|j| j.strip_suffix(']')) else {
        return Some(Err("a ban line in no format fail2ban writes".into()));
    };
    Some(event(line, tz, host, jail, kind, restored, ip))
}

fn event(
    line: &str,
    tz: Tz,
    host: &str,
    jail: &str,
    kind: EventKind,
    restored: bool,
    ip: &str,
) -> ImportItem {
    let stamp = line.get(..23).ok_or("no timestamp")?;
    let time = local_time(stamp, tz).ok_or_else(|| format!("unreadable timestamp {stamp:?}"))?;
    let ip = parse_ip(ip).map_err(|e| e.to_string())?;
    let mut event = BanEvent::new(kind, ip, jail, host, time).map_err(|e| e.to_string())?;
    event.restored = restored;
    Ok(event)
}

fn local_time(stamp: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S,%3f").ok()?;
    // In the repeated hour of a DST change, take the earlier instant.
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Option<ImportItem> {
        parse_log_line(line, chrono_tz::Europe::Berlin, "web1")
    }

    #[test]
    fn ban_unban_and_restore_lines() {
        let Some(Ok(ban)) =
            parse("2026-01-27 19:30:01,123 fail2ban.actions        [1234]: NOTICE  [sshd] Ban 203.0.113.7")
        else {
            panic!("ban line")
        };
        assert_eq!(
            (ban.kind, ban.jail.as_str(), ban.restored),
            (EventKind::Ban, "sshd", false)
        );
        assert_eq!(ban.time.to_rfc3339(), "2026-01-27T18:30:01.123+00:00");
        let Some(Ok(restore)) =
            parse("2026-01-27 19:30:02,000 fail2ban.actions [1]: NOTICE  [nginx-http-auth] Restore Ban 2001:db8::5")
        else {
            panic!("restore line")
        };
        assert!(restore.restored);
        let Some(Ok(unban)) =
            parse("2026-01-27 19:40:01,000 fail2ban.actions [1]: NOTICE  [sshd] Unban 203.0.113.7")
        else {
            panic!("unban line")
        };
        assert_eq!(unban.kind, EventKind::Unban);
    }

    #[test]
    fn every_format_since_0_8() {
        for (line, kind, restored) in [
            ("2013-11-27 19:30:01,123 fail2ban.actions: WARNING [ssh] Ban 203.0.113.7", EventKind::Ban, false),
            ("2013-11-27 19:40:01,123 fail2ban.actions: WARNING [ssh] Unban 203.0.113.7", EventKind::Unban, false),
            ("2016-03-01 10:00:00,001 fail2ban.actions        [871]: NOTICE  [sshd] Ban 198.51.100.9", EventKind::Ban, false),
            ("2021-03-01 10:00:00,001 fail2ban.actions        [871]: NOTICE  [sshd] Restore Ban 198.51.100.9", EventKind::Ban, true),
        ] {
            let Some(Ok(e)) = parse(line) else { panic!("{line}") };
            assert_eq!((e.kind, e.restored), (kind, restored), "{line}");
        }
        for line in [
            "2013-11-27 19:30:01,123 fail2ban.actions: WARNING [ssh] 203.0.113.7 already banned",
            "2026-01-27 19:30:01,123 fail2ban.actions [1]: NOTICE [sshd] 203.0.113.7 already banned",
            "2026-01-27 19:30:01,123 fail2ban.actions [1]: NOTICE [sshd] Ban",
            "2026-01-27 19:30:01,123 fail2ban.actions [1]: NOTICE sshd Ban 203.0.113.7",
        ] {
            assert!(matches!(parse(line), Some(Err(_))), "{line}");
        }
    }

    #[test]
    fn other_lines_and_bad_values() {
        for line in [
            "2026-01-27 19:30:01,123 fail2ban.filter [1]: INFO [sshd] Found 203.0.113.7",
            "2026-01-27 19:30:01,123 fail2ban.actions [1]: ERROR Failed to execute ban jail 'sshd'",
            "",
            "garbage",
        ] {
            assert!(parse(line).is_none(), "{line}");
        }
        assert!(matches!(
            parse("2026-01-27 19:30:01,123 fail2ban.actions [1]: NOTICE  [sshd] Ban not-an-ip"),
            Some(Err(_))
        ));
        assert!(matches!(
            parse("2026-13-27 19:30:01,123 fail2ban.actions [1]: NOTICE  [sshd] Ban 203.0.113.7"),
            Some(Err(_))
        ));
    }
}
