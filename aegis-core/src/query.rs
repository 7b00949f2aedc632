//! Plain-data filters and statistics shared by every backend.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::event::{BanEvent, EventId, EventKind};

/// A dimension the data can be narrowed by, one at a time in the dashboard's
/// views (`/country/CN`, `/jail/sshd`, `/host/web1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Facet {
    /// Where banned addresses are located (a country code).
    Country,
    /// The fail2ban jail that banned.
    Jail,
    /// The host that reported the ban.
    Host,
}

impl Facet {
    /// Every facet.
    pub const ALL: [Facet; 3] = [Facet::Country, Facet::Jail, Facet::Host];

    /// The facet's name in URLs, parameters and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Facet::Country => "country",
            Facet::Jail => "jail",
            Facet::Host => "host",
        }
    }

    /// The facet named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

impl fmt::Display for Facet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The part of the data a listing, a statistic or a view looks at: at most one
/// host, one jail and one country; the default is everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    /// Only this reporting host.
    pub host: Option<String>,
    /// Only this jail.
    pub jail: Option<String>,
    /// Only addresses located in this country (a two-letter code).
    pub country: Option<String>,
}

impl Scope {
    /// Everything.
    pub const ALL: Scope = Scope {
        host: None,
        jail: None,
        country: None,
    };

    /// Only `value` of `facet`.
    pub fn of(facet: Facet, value: impl Into<String>) -> Self {
        let mut scope = Scope::default();
        *scope.slot(facet) = Some(value.into());
        scope
    }

    /// The value this scope keeps of `facet`, if it narrows it.
    pub fn get(&self, facet: Facet) -> Option<&str> {
        match facet {
            Facet::Country => self.country.as_deref(),
            Facet::Jail => self.jail.as_deref(),
            Facet::Host => self.host.as_deref(),
        }
    }

    /// The one facet and value of a scope that narrows exactly one (a dashboard view).
    pub fn single(&self) -> Option<(Facet, &str)> {
        let mut given = Facet::ALL
            .into_iter()
            .filter_map(|f| self.get(f).map(|v| (f, v)));
        match (given.next(), given.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    }

    /// Whether nothing is narrowed.
    pub fn is_all(&self) -> bool {
        *self == Scope::ALL
    }

    /// The events in this scope.
    pub fn filter(&self) -> EventFilter {
        EventFilter {
            scope: self.clone(),
            ..EventFilter::default()
        }
    }

    /// `query` narrowed to this scope.
    pub fn narrow(&self, query: StatsQuery) -> StatsQuery {
        StatsQuery {
            scope: self.clone(),
            ..query
        }
    }

    fn slot(&mut self, facet: Facet) -> &mut Option<String> {
        match facet {
            Facet::Country => &mut self.country,
            Facet::Jail => &mut self.jail,
            Facet::Host => &mut self.host,
        }
    }
}

/// Which events to list. Every field narrows the selection; `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Exactly this address.
    pub ip: Option<IpAddr>,
    /// Addresses inside this network (IPv4 or IPv6 CIDR).
    pub network: Option<IpNetwork>,
    /// This host, jail and country.
    #[serde(flatten)]
    pub scope: Scope,
    /// Only bans or only unbans.
    pub kind: Option<EventKind>,
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Strictly before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Sort order by event time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Newest first.
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// A page of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Rows to return (at most [`Page::MAX_LIMIT`]).
    pub limit: u32,
    /// Rows to skip (after `after`, when given).
    pub offset: u64,
    /// Order by time.
    pub order: Order,
    /// Start after this event, in `order`: how to page through many events,
    /// each page costing the same (an offset costs the rows it skips).
    #[serde(default)]
    pub after: Option<Cursor>,
}

/// Where a listing stopped: the time and id of its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The event's time.
    pub time: DateTime<Utc>,
    /// The event's id.
    #[serde(with = "id_hex")]
    pub id: EventId,
}

impl Cursor {
    /// The cursor as text for a URL: milliseconds, a dot, the id in hex.
    pub fn token(&self) -> String {
        format!("{}.{}", self.time.timestamp_millis(), self.id.to_hex())
    }

    /// A cursor from [`Cursor::token`].
    pub fn parse(token: &str) -> crate::Result<Self> {
        let bad = || {
            crate::Error::Invalid(
                "invalid cursor: pass the `next` value of the previous page as it is".into(),
            )
        };
        let (ms, id) = token.split_once('.').ok_or_else(bad)?;
        let time = ms
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(bad)?;
        let id = EventId::from_hex(id).ok_or_else(bad)?;
        Ok(Cursor { time, id })
    }
}

impl Page {
    /// The largest page a backend returns.
    pub const MAX_LIMIT: u32 = 10_000;

    /// The first `limit` rows, newest first.
    pub fn first(limit: u32) -> Self {
        Page {
            limit: limit.min(Self::MAX_LIMIT),
            offset: 0,
            order: Order::Desc,
            after: None,
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::first(100)
    }
}

/// An event as stored, with its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// The stable id (hex in JSON).
    #[serde(with = "id_hex")]
    pub id: EventId,
    /// The event.
    #[serde(flatten)]
    pub event: BanEvent,
}

impl StoredEvent {
    /// Where a page that ends with this event stopped.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            time: self.event.time,
            id: self.id,
        }
    }

    /// Column names of [`StoredEvent::csv_record`].
    pub const CSV_HEADER: [&'static str; 20] = [
        "id",
        "time",
        "kind",
        "restored",
        "ip",
        "jail",
        "host",
        "protocol",
        "port",
        "failures",
        "bantime",
        "bancount",
        "user",
        "country",
        "city",
        "latitude",
        "longitude",
        "asn",
        "as_org",
        "matches",
    ];

    /// The event as one CSV row (empty fields for absent values; matches one per
    /// line). Text a spreadsheet would run as a formula is neutralised
    /// ([`spreadsheet_safe`]): much of it is chosen by attackers.
    pub fn csv_record(&self) -> [String; 20] {
        let e = &self.event;
        let g = e.geo.clone().unwrap_or_default();
        let text = |v: &Option<String>| spreadsheet_safe(v.clone().unwrap_or_default());
        let show = |v: Option<&dyn ToString>| v.map(|v| v.to_string()).unwrap_or_default();
        [
            self.id.to_hex(),
            e.time.to_rfc3339(),
            e.kind.to_string(),
            e.restored.to_string(),
            e.ip.to_string(),
            spreadsheet_safe(e.jail.clone()),
            spreadsheet_safe(e.host.clone()),
            text(&e.protocol),
            text(&e.port),
            show(e.failures.as_ref().map(|v| v as _)),
            show(e.bantime.as_ref().map(|v| v as _)),
            show(e.bancount.as_ref().map(|v| v as _)),
            text(&e.user),
            text(&g.country),
            text(&g.city),
            show(g.latitude.as_ref().map(|v| v as _)),
            show(g.longitude.as_ref().map(|v| v as _)),
            show(g.asn.as_ref().map(|v| v as _)),
            text(&g.as_org),
            spreadsheet_safe(e.matches.join("\n")),
        ]
    }
}

/// A CSV cell that no spreadsheet runs as a formula: text starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return gets a leading `'` (the OWASP
/// rule); plain numbers such as `-1` or `-33.9` stay numbers.
pub fn spreadsheet_safe(cell: String) -> String {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let number = cell.parse::<f64>().is_ok_and(f64::is_finite);
    if risky && !number {
        format!("'{cell}")
    } else {
        cell
    }
}

mod id_hex {
    use super::EventId;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &EventId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EventId, D::Error> {
        let hex = String::deserialize(d)?;
        EventId::from_hex(&hex).ok_or_else(|| D::Error::custom("event id must be 24 hex digits"))
    }
}

/// What `record` did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recorded {
    /// Stored now.
    Inserted,
    /// Already stored (same id); nothing changed.
    Duplicate,
}

/// What `record_batch` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    /// Events stored now.
    pub inserted: u64,
    /// Events already stored, left unchanged.
    pub duplicates: u64,
}

/// The scope of a statistic: a time range and optional narrowing.
///
/// Statistics count new bans only: unbans and restored bans are not attacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsQuery {
    /// At or after this time.
    pub since: DateTime<Utc>,
    /// Strictly before this time.
    pub until: DateTime<Utc>,
    /// Only this host, jail and country.
    #[serde(flatten)]
    pub scope: Scope,
}

impl StatsQuery {
    /// Everything in `[since, until)`.
    pub fn range(since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        StatsQuery {
            since,
            until,
            scope: Scope::ALL,
        }
    }

    /// The last `days` days up to now.
    pub fn last_days(days: i64) -> Self {
        let now = Utc::now();
        Self::range(now - chrono::Duration::days(days), now)
    }
}

/// Headline figures for a range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// New bans.
    pub bans: u64,
    /// Distinct banned addresses.
    pub unique_ips: u64,
    /// Distinct countries of banned addresses (known ones).
    pub countries: u64,
    /// Distinct jails that banned.
    pub jails: u64,
    /// Distinct hosts that banned.
    pub hosts: u64,
    /// Addresses banned now (latest event a ban that has not expired); ignores the range.
    pub currently_banned: u64,
}

/// Bans on one local calendar day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCount {
    /// The day in the requested time zone.
    pub day: NaiveDate,
    /// New bans that day.
    pub bans: u64,
}

/// One of the most banned addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offender {
    /// The address.
    pub ip: IpAddr,
    /// New bans in the range.
    pub bans: u64,
    /// First ban in the range.
    pub first_seen: DateTime<Utc>,
    /// Last ban in the range.
    pub last_seen: DateTime<Utc>,
    /// Jails that banned it, sorted.
    pub jails: Vec<String>,
    /// Its country, when known.
    pub country: Option<String>,
}

/// What to rank in [`crate::Storage::top`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TopBy {
    /// Country code.
    Country,
    /// Jail name.
    Jail,
    /// Reporting host.
    Host,
    /// Autonomous system.
    Asn,
    /// Network: /24 for IPv4, /64 for IPv6.
    Network,
}

impl std::str::FromStr for TopBy {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        Ok(match s {
            "country" => TopBy::Country,
            "jail" => TopBy::Jail,
            "host" => TopBy::Host,
            "asn" => TopBy::Asn,
            "network" => TopBy::Network,
            other => {
                return Err(crate::Error::Invalid(format!(
                    "cannot rank by {other:?}: expected country, jail, host, asn or network"
                )))
            }
        })
    }
}

/// One row of a ranking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopEntry {
    /// The key: country code, jail, host, `AS64496`, or network in CIDR form.
    pub key: String,
    /// A readable label where there is one (the AS organisation).
    pub label: Option<String>,
    /// New bans in the range.
    pub bans: u64,
    /// Distinct addresses in the range.
    pub unique_ips: u64,
}

/// The UTC instant a local day starts: midnight, or the first instant after a DST
/// gap that swallows it.
pub fn day_start(tz: chrono_tz::Tz, day: NaiveDate) -> DateTime<Utc> {
    use chrono::{LocalResult, TimeZone};
    let mut local = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    loop {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => return t.with_timezone(&Utc),
            LocalResult::None => local += chrono::Duration::minutes(15),
        }
    }
}

/// The network an address is ranked under: /24 for IPv4, /64 for IPv6.
pub fn network_of(ip: IpAddr) -> IpNetwork {
    let prefix = if ip.is_ipv4() { 24 } else { 64 };
    let net = IpNetwork::new(ip, prefix).expect("prefix fits the family");
    IpNetwork::new(net.network(), prefix).expect("prefix fits the family")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_text_and_numbers_stay_numbers() {
        for risky in [
            "=1+1",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(spreadsheet_safe(risky.into()), format!("'{risky}"));
        }
        for risky in ["-inf", "-NaN"] {
            assert_eq!(spreadsheet_safe(risky.into()), format!("'{risky}"));
        }
        for fine in ["-1", "-33.9", "+49", "sshd", "", "a=b"] {
            assert_eq!(spreadsheet_safe(fine.into()), fine);
        }
    }

    #[test]
    fn networks_are_24_and_64() {
        assert_eq!(
            network_of("203.0.113.77".parse().unwrap()).to_string(),
            "203.0.113.0/24"
        );
        assert_eq!(
            network_of("2001:db8:1:2:3::9".parse().unwrap()).to_string(),
            "2001:db8:1:2::/64"
        );
    }
}
