//! The ban event: what fail2ban tells us, validated and normalised.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// At most this many matched log lines are kept per event.
pub const MAX_MATCH_LINES: usize = 10;
/// At most this many bytes are kept per matched log line.
pub const MAX_MATCH_BYTES: usize = 1024;
/// Marker appended to a line or list that was cut short.
pub(crate) const TRUNCATED: &str = "…[truncated]";

const MAX_NAME: usize = 128;
const MAX_HOST: usize = 253;
const MAX_FIELD: usize = 256;
const MAX_PROTOCOL: usize = 32;
/// Earliest accepted event time: 2000-01-01T00:00:00Z.
const EARLIEST: i64 = 946_684_800;
/// Latest accepted event time, relative to now: clocks drift, but not by a day.
const FUTURE_SLACK_SECS: i64 = 86_400;

/// Whether fail2ban banned or released the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// `actionban`
    Ban,
    /// `actionunban`
    Unban,
}

impl EventKind {
    /// `"ban"` or `"unban"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Ban => "ban",
            EventKind::Unban => "unban",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ban" => Ok(EventKind::Ban),
            "unban" => Ok(EventKind::Unban),
            other => Err(Error::invalid(format!(
                "unknown event kind {other:?}: expected \"ban\" or \"unban\""
            ))),
        }
    }
}

/// Where an address is, as far as the geolocation sources know.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Geo {
    /// ISO 3166-1 alpha-2 country code, upper case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// City name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Latitude in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Longitude in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// Autonomous system number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_org: Option<String>,
}

/// Parses an ISO 3166-1 alpha-2 country code in any case ("de", " DE ") into
/// its upper-case form.
pub fn parse_country(code: &str) -> Result<String> {
    let upper = code.trim().to_ascii_uppercase();
    if upper.len() == 2 && upper.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(upper)
    } else {
        Err(Error::invalid(format!(
            "invalid country code {:?}: expected a two-letter code such as \"DE\"",
            shorten(code)
        )))
    }
}

impl Geo {
    /// Makes every field storable, so that a bad database file cannot cost an
    /// event its record: a malformed country code is dropped, coordinates out of
    /// range are dropped together, and names are cleaned as
    /// [`BanEvent::clean`] cleans text. Returns one note per change.
    pub fn clean(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(cc) = self.country.take() {
            match parse_country(&cc) {
                Ok(code) if code == cc => self.country = Some(code),
                _ => notes.push(format!("country code {:?} dropped", shorten(&cc))),
            }
        }
        let plausible =
            |v: Option<f64>, limit: f64| v.is_none_or(|v| (-limit..=limit).contains(&v));
        if !plausible(self.latitude, 90.0) || !plausible(self.longitude, 180.0) {
            notes.push(format!(
                "coordinates {:?}, {:?} dropped",
                self.latitude, self.longitude
            ));
            (self.latitude, self.longitude) = (None, None);
        }
        clean_text("city", &mut self.city, MAX_FIELD, &mut notes);
        clean_text("AS organisation", &mut self.as_org, MAX_FIELD, &mut notes);
        notes
    }

    /// Checks codes and coordinates so that a bad source cannot poison the store.
    pub fn validate(&self) -> Result<()> {
        if let Some(cc) = &self.country {
            if parse_country(cc).ok().as_ref() != Some(cc) {
                return Err(Error::invalid(format!(
                    "invalid country code {cc:?}: expected two upper-case letters such as \"DE\""
                )));
            }
        }
        if let Some(lat) = self.latitude {
            if !(-90.0..=90.0).contains(&lat) {
                return Err(Error::invalid(format!("latitude {lat} is outside -90..90")));
            }
        }
        if let Some(lon) = self.longitude {
            if !(-180.0..=180.0).contains(&lon) {
                return Err(Error::invalid(format!(
                    "longitude {lon} is outside -180..180"
                )));
            }
        }
        for (what, value) in [("city", &self.city), ("AS organisation", &self.as_org)] {
            if let Some(v) = value {
                check_text(what, v, MAX_FIELD)?;
            }
        }
        Ok(())
    }
}

/// A stable identifier of an event, derived from (host, jail, ip, kind, time to the second).
///
/// Recording the same event twice (a retried action, a replayed spool, a second
/// import) yields the same id, so stores keep it once. Twelve bytes, so that it
/// also serves as a MongoDB ObjectId.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(pub [u8; 12]);

impl EventId {
    /// Lower-case hex, 24 characters.
    pub fn to_hex(&self) -> String {
        crate::ipkey::hex(&self.0)
    }

    /// The id of 24 hex digits made by [`EventId::to_hex`].
    pub fn from_hex(hex: &str) -> Option<Self> {
        crate::ipkey::unhex(hex)
            .and_then(|bytes| <[u8; 12]>::try_from(bytes).ok())
            .map(EventId)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.to_hex())
    }
}

/// One ban or unban, as reported by one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BanEvent {
    /// Ban or unban.
    pub kind: EventKind,
    /// The address; IPv4-mapped IPv6 is normalised to IPv4.
    pub ip: IpAddr,
    /// fail2ban jail name.
    pub jail: String,
    /// The reporting machine.
    pub host: String,
    /// Protocol as the jail passes it (`tcp`, `udp`, `all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port as given (`22`, `ssh`, `http,https`, `0:65535`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// Failures that led to the ban.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u32>,
    /// Time of the event (fail2ban's `<time>`: the last failure), millisecond precision.
    pub time: DateTime<Utc>,
    /// Ban length in seconds; -1 means permanent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bantime: Option<i64>,
    /// How many times fail2ban has banned this address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bancount: Option<u32>,
    /// A ban re-applied by fail2ban on restart: not a new attack.
    #[serde(default)]
    pub restored: bool,
    /// Matched log lines, bounded (see [`MAX_MATCH_LINES`], [`MAX_MATCH_BYTES`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<String>,
    /// The user name the filter captured (`<F-USER>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Geolocation, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    /// When Aegis received the event, millisecond precision.
    pub received_at: DateTime<Utc>,
}

impl BanEvent {
    /// A minimal valid event received now; set the optional fields directly.
    ///
    /// The address is normalised and the names checked; see [`BanEvent::validate`].
    pub fn new(
        kind: EventKind,
        ip: IpAddr,
        jail: &str,
        host: &str,
        time: DateTime<Utc>,
    ) -> Result<Self> {
        let event = BanEvent {
            kind,
            ip: ip.to_canonical(),
            jail: jail.to_owned(),
            host: host.to_owned(),
            protocol: None,
            port: None,
            failures: None,
            time: truncate_ms(time),
            bantime: None,
            bancount: None,
            restored: false,
            matches: Vec::new(),
            user: None,
            geo: None,
            received_at: truncate_ms(Utc::now()),
        };
        event.validate()?;
        Ok(event)
    }

    /// The stable id of this event.
    pub fn id(&self) -> EventId {
        let mut hasher = Sha256::new();
        for part in [self.host.as_bytes(), self.jail.as_bytes()] {
            hasher.update(part);
            hasher.update([0]);
        }
        hasher.update(self.ip.to_canonical().to_string().as_bytes());
        hasher.update([0]);
        hasher.update(self.kind.as_str().as_bytes());
        hasher.update([0]);
        // Whole seconds, rounded as fail2ban rounds `timeofban` (Python's
        // `int(round(t))`: halves to even): a live event and the same ban
        // imported from fail2ban's database, of any version, share one id.
        let secs = round_half_even_secs(self.time.timestamp_millis());
        hasher.update(secs.to_be_bytes());
        let digest = hasher.finalize();
        let mut id = [0u8; 12];
        id.copy_from_slice(&digest[..12]);
        EventId(id)
    }

    /// Whether this event counts as a new ban in statistics (restored bans do not).
    pub fn is_new_ban(&self) -> bool {
        self.kind == EventKind::Ban && !self.restored
    }

    /// Makes every field but the kind, address, jail and host storable, so that
    /// no value an attacker chose can cost a ban its record: text gets control
    /// characters replaced and is cut to its bound (the cut marked with
    /// `…[truncated]`), matched lines are bounded, an implausible time becomes
    /// the time the event was received, an impossible bantime is dropped, and
    /// the location is cleaned ([`Geo::clean`]). Returns one note per change,
    /// naming the field; the ban path and every import follow this one rule.
    pub fn clean(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        clean_text("protocol", &mut self.protocol, MAX_PROTOCOL, &mut notes);
        clean_text("port", &mut self.port, MAX_NAME, &mut notes);
        clean_text("user", &mut self.user, MAX_FIELD, &mut notes);
        let control = |l: &String| l.chars().any(|c| c.is_control() && c != '\t');
        if !matches_bounded(&self.matches) || self.matches.iter().any(control) {
            self.matches = bound_matches(self.matches.iter().map(String::as_str));
            notes.push("matches bounded and control characters replaced".into());
        }
        if check_time("time", self.time).is_err() {
            notes.push(format!(
                "time {} is not plausible: the time received is recorded instead",
                self.time.to_rfc3339()
            ));
            self.time = self.received_at;
        }
        if let Some(b) = self.bantime.filter(|b| *b < -1) {
            notes.push(format!("bantime {b} dropped: not seconds >= 0 or -1"));
            self.bantime = None;
        }
        if let Some(geo) = &mut self.geo {
            notes.extend(geo.clean().into_iter().map(|n| format!("location: {n}")));
            if *geo == Geo::default() {
                self.geo = None;
            }
        }
        notes
    }

    /// Checks every field; the message names the field and what would be accepted.
    ///
    /// Stores call this before writing, so an event built by hand cannot bypass it.
    pub fn validate(&self) -> Result<()> {
        if self.ip.is_unspecified() {
            return Err(Error::invalid(format!(
                "invalid IP {}: the unspecified address cannot be banned",
                self.ip
            )));
        }
        check_name("jail", &self.jail, MAX_NAME)?;
        check_name("host", &self.host, MAX_HOST)?;
        for (what, value, max) in [
            ("protocol", &self.protocol, MAX_PROTOCOL),
            ("port", &self.port, MAX_NAME),
            ("user", &self.user, MAX_FIELD),
        ] {
            if let Some(v) = value {
                check_text(what, v, max)?;
            }
        }
        check_time("time", self.time)?;
        if let Some(b) = self.bantime {
            if b < -1 {
                return Err(Error::invalid(format!(
                    "invalid bantime {b}: expected seconds >= 0, or -1 for a permanent ban"
                )));
            }
        }
        if !matches_bounded(&self.matches) {
            return Err(Error::invalid(
                "matches exceed the stored bounds: pass them through bound_matches()",
            ));
        }
        if let Some(geo) = &self.geo {
            geo.validate()?;
        }
        Ok(())
    }
}

/// Parses an IP address as fail2ban passes it, normalising IPv4-mapped IPv6.
pub fn parse_ip(s: &str) -> Result<IpAddr> {
    let trimmed = s.trim();
    let ip: IpAddr = trimmed.parse().map_err(|_| {
        Error::invalid(format!(
            "invalid IP address {:?}: expected IPv4 (203.0.113.7) or IPv6 (2001:db8::5)",
            shorten(trimmed)
        ))
    })?;
    let ip = ip.to_canonical();
    if ip.is_unspecified() {
        return Err(Error::invalid(format!(
            "invalid IP address {ip}: the unspecified address cannot be banned"
        )));
    }
    Ok(ip)
}

/// Parses fail2ban's `<time>` (a float epoch in seconds) or an RFC 3339 timestamp.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    let s = s.trim();
    let parsed = if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() {
            None
        } else {
            let ms = (secs * 1000.0).round();
            if ms.abs() < 9.0e15 {
                Utc.timestamp_millis_opt(ms as i64).single()
            } else {
                None
            }
        }
    } else {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let time = parsed.ok_or_else(|| {
        Error::invalid(format!(
            "invalid time {:?}: expected seconds since the epoch (1795807795.0) or RFC 3339 (2026-11-27T19:30:01Z)",
            shorten(s)
        ))
    })?;
    check_time("time", time)?;
    Ok(truncate_ms(time))
}

/// Bounds matched log lines: at most [`MAX_MATCH_LINES`] lines of [`MAX_MATCH_BYTES`],
/// control characters replaced, cuts marked with `…[truncated]`.
pub fn bound_matches<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut extra = 0usize;
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        if out.len() == MAX_MATCH_LINES {
            extra += 1;
            continue;
        }
        let clean: String = line
            .chars()
            .map(|c| {
                if c.is_control() && c != '\t' {
                    '\u{FFFD}'
                } else {
                    c
                }
            })
            .collect();
        out.push(truncate_str(&clean, MAX_MATCH_BYTES));
    }
    if extra > 0 {
        out.push(format!("{TRUNCATED} {extra} more lines"));
    }
    out
}

fn truncate_str(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATED}", &s[..end])
}

/// Milliseconds to whole seconds, halves to the even second.
pub(crate) fn round_half_even_secs(ms: i64) -> i64 {
    let (secs, rest) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    match rest.cmp(&500) {
        std::cmp::Ordering::Less => secs,
        std::cmp::Ordering::Greater => secs + 1,
        std::cmp::Ordering::Equal => secs + secs.rem_euclid(2),
    }
}

/// Whether matched lines are within the bounds [`bound_matches`] leaves.
fn matches_bounded(lines: &[String]) -> bool {
    lines.len() <= MAX_MATCH_LINES + 1
        && lines
            .iter()
            .all(|l| l.len() <= MAX_MATCH_BYTES + TRUNCATED.len())
}

/// Makes one line of text storable: control characters replaced, at most
/// `max` bytes with the cut marked; nothing left is `None`. Notes what changed.
fn clean_text(what: &str, value: &mut Option<String>, max: usize, notes: &mut Vec<String>) {
    let Some(text) = value.take() else { return };
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if clean != text {
        notes.push(format!("{what}: control characters replaced"));
    }
    if clean.len() > max {
        notes.push(format!("{what}: {} bytes cut to {max}", clean.len()));
        let mut end = max - TRUNCATED.len();
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
        clean.push_str(TRUNCATED);
    }
    *value = (!clean.trim().is_empty()).then_some(clean);
}

/// Drops sub-millisecond precision so that stored and original events compare equal.
pub(crate) fn truncate_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(t.timestamp_millis())
        .single()
        .unwrap_or(t)
}

fn check_time(what: &str, t: DateTime<Utc>) -> Result<()> {
    let secs = t.timestamp();
    let latest = Utc::now().timestamp() + FUTURE_SLACK_SECS;
    if secs < EARLIEST || secs > latest {
        return Err(Error::invalid(format!(
            "{what} {} is not plausible: expected a moment between 2000-01-01 and tomorrow",
            t.to_rfc3339()
        )));
    }
    Ok(())
}

pub(crate) fn check_name(what: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(format!("{what} name is empty")));
    }
    if value.trim() != value {
        return Err(Error::invalid(format!(
            "{what} name {value:?} has leading or trailing spaces"
        )));
    }
    check_text(what, value, max)
}

pub(crate) fn check_text(what: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(format!(
            "{what} is {} bytes long: at most {max} are accepted",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{what} {:?} contains control characters",
            shorten(value)
        )));
    }
    Ok(())
}

/// Quotes at most 64 characters of user input in an error message.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BanEvent {
        BanEvent::new(
            EventKind::Ban,
            "203.0.113.7".parse().unwrap(),
            "sshd",
            "web1",
            parse_time("1795807795.25").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn mapped_ipv6_becomes_ipv4() {
        assert_eq!(
            parse_ip("::ffff:192.0.2.1").unwrap().to_string(),
            "192.0.2.1"
        );
        assert_eq!(
            parse_ip(" 2001:db8::5 ").unwrap().to_string(),
            "2001:db8::5"
        );
    }

    #[test]
    fn bad_ips_are_rejected_with_advice() {
        for bad in [
            "",
            "<ip>",
            "1.2.3",
            "300.1.1.1",
            "0.0.0.0",
            "::",
            "1.2.3.4/24",
        ] {
            let err = parse_ip(bad).unwrap_err().to_string();
            assert!(err.contains("IP address"), "{bad}: {err}");
        }
    }

    #[test]
    fn times_parse_as_fail2ban_passes_them() {
        assert_eq!(
            parse_time("1795807795.0").unwrap().timestamp(),
            1_795_807_795
        );
        assert_eq!(
            parse_time("1795807795.123456").unwrap().timestamp_millis(),
            1_795_807_795_123
        );
        assert_eq!(
            parse_time("2026-11-27T19:30:01Z").unwrap().timestamp(),
            1_795_807_801
        );
        for bad in ["", "soon", "NaN", "inf", "1e300", "12", "99999999999"] {
            assert!(parse_time(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn id_is_stable_and_ignores_enrichment() {
        let a = sample();
        let mut b = a.clone();
        b.failures = Some(9);
        b.geo = Some(Geo {
            country: Some("DE".into()),
            ..Geo::default()
        });
        assert_eq!(a.id(), b.id());
        b.kind = EventKind::Unban;
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().to_hex().len(), 24);
    }

    #[test]
    fn seconds_round_as_pythons_round() {
        // int(round(t)) in fail2ban: halves go to the even second.
        for (ms, secs) in [
            (1_499, 1),
            (1_500, 2),
            (2_500, 2),
            (2_501, 3),
            (3_500, 4),
            (-500, 0),
        ] {
            assert_eq!(round_half_even_secs(ms), secs, "{ms}");
        }
    }

    #[test]
    fn names_are_checked() {
        let mut e = sample();
        e.jail = String::new();
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("jail name is empty"));
        e.jail = "ss\nhd".into();
        assert!(e.validate().unwrap_err().to_string().contains("control"));
        e.jail = "x".repeat(129);
        assert!(e
            .validate()
            .unwrap_err()
            .to_string()
            .contains("at most 128"));
        e.jail = "<script>alert(1)</script>".into();
        assert!(
            e.validate().is_ok(),
            "markup is stored as text and escaped on output"
        );
        e.bantime = Some(-2);
        assert!(e.validate().is_err());
    }

    #[test]
    fn matches_are_bounded_and_marked() {
        let long = "é".repeat(2000);
        let many: Vec<String> = (0..15).map(|i| format!("line {i}\u{7}")).collect();
        let mut input: Vec<&str> = vec![long.as_str()];
        input.extend(many.iter().map(String::as_str));
        let out = bound_matches(input);
        assert_eq!(out.len(), MAX_MATCH_LINES + 1);
        assert!(out[0].ends_with(TRUNCATED) && out[0].len() <= MAX_MATCH_BYTES + TRUNCATED.len());
        assert_eq!(out[1], "line 0\u{FFFD}");
        assert_eq!(out[10], format!("{TRUNCATED} 6 more lines"));
        let mut e = sample();
        e.matches = out;
        assert!(e.validate().is_ok());
    }
}
