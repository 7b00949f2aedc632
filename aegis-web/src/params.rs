//! Query parameters, validated: unknown or repeated keys, bad addresses, dates
//! and numbers are 400s that say what was wrong and what is accepted.

use std::net::IpAddr;

use actix_web::{web, HttpRequest};
use aegis_core::{
    day_start, parse_country, parse_ip, parse_moment, Cursor, EventFilter, EventKind, IpNetwork,
    Order, Page, Scope, StatsQuery, Tz,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::error::WebError;

/// The keys of an event search, shared by the events page, API and exports.
pub const FILTER_KEYS: [&str; 8] = [
    "ip", "cidr", "jail", "host", "country", "kind", "since", "until",
];

/// The longest jail or host name accepted in a filter.
const MAX_NAME: usize = 255;

/// Decoded query parameters; empty values count as absent (as forms send them).
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decodes the request's query string, accepting only `accepted` keys, each once.
    pub fn of(req: &HttpRequest, accepted: &[&str]) -> Result<Self, WebError> {
        Self::parse(req.query_string(), accepted)
    }

    /// [`Params::of`] for a query string.
    fn parse(query: &str, accepted: &[&str]) -> Result<Self, WebError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|e| WebError::bad_request(format!("malformed query string: {e}")))?
            .into_inner();
        for (i, (key, _)) in pairs.iter().enumerate() {
            if !accepted.contains(&key.as_str()) {
                return Err(WebError::bad_request(format!(
                    "unknown parameter {key:?}; accepted here: {}",
                    accepted.join(", ")
                )));
            }
            if pairs[..i].iter().any(|(k, _)| k == key) {
                return Err(WebError::bad_request(format!(
                    "parameter {key:?} given more than once"
                )));
            }
        }
        Ok(Params(pairs))
    }

    /// The trimmed value of `key`, when present and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The present parameters, for links that keep them.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(k, v)| (k.as_str(), v.trim()))
            .filter(|(_, v)| !v.is_empty())
    }

    /// A whole number in `min..=max`, or `default` when absent.
    pub fn number(&self, key: &str, default: u64, min: u64, max: u64) -> Result<u64, WebError> {
        let Some(raw) = self.get(key) else {
            return Ok(default);
        };
        raw.parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                WebError::bad_request(format!(
                    "{key}={raw:?} is not valid: expected a whole number from {min} to {max}"
                ))
            })
    }

    /// A jail or host name.
    pub fn name(&self, key: &str) -> Result<Option<String>, WebError> {
        self.get(key).map(|v| checked_name(key, v)).transpose()
    }

    /// The event search these parameters describe; dates are days in `tz`
    /// (`until` includes its day).
    pub fn filter(&self, tz: Tz) -> Result<EventFilter, WebError> {
        Ok(EventFilter {
            ip: self.get("ip").map(parse_ip).transpose()?,
            network: self.get("cidr").map(parse_cidr).transpose()?,
            scope: self.scope()?,
            kind: self.get("kind").map(parse_kind).transpose()?,
            since: self
                .get("since")
                .map(|v| moment(v, tz, false))
                .transpose()?,
            until: self.get("until").map(|v| moment(v, tz, true)).transpose()?,
        })
    }

    /// `order=asc|desc` (default newest first).
    pub fn order(&self) -> Result<Order, WebError> {
        match self.get("order") {
            None | Some("desc") => Ok(Order::Desc),
            Some("asc") => Ok(Order::Asc),
            Some(other) => Err(WebError::bad_request(format!(
                "order={other:?} is not valid: expected asc or desc"
            ))),
        }
    }

    /// `limit`, `offset` and `after` (the `next` of the page before) as a page.
    pub fn page(&self, default_limit: u64) -> Result<Page, WebError> {
        Ok(Page {
            limit: self.number("limit", default_limit, 1, u64::from(Page::MAX_LIMIT))? as u32,
            offset: self.number("offset", 0, 0, u64::MAX / 2)?,
            order: self.order()?,
            after: self.get("after").map(Cursor::parse).transpose()?,
        })
    }

    /// `range=24h|7d|30d|…` ending now (default `default`).
    pub fn range(&self, default: &str) -> Result<(String, StatsQuery), WebError> {
        let raw = self.get("range").unwrap_or(default);
        let length = parse_range(raw)?;
        let now = crate::views::stats_now();
        Ok((raw.to_owned(), StatsQuery::range(now - length, now)))
    }

    /// The jail, host and country narrowing of statistics.
    pub fn narrow(&self, q: &mut StatsQuery) -> Result<(), WebError> {
        q.scope = self.scope()?;
        Ok(())
    }

    /// The `jail`, `host` and `country` parameters, checked.
    pub fn scope(&self) -> Result<Scope, WebError> {
        Ok(Scope {
            jail: self.name("jail")?,
            host: self.name("host")?,
            country: self.get("country").map(parse_country).transpose()?,
        })
    }
}

/// A range length: an age such as `24h`, `7d`, `90d`, at most ten years.
pub fn parse_range(raw: &str) -> Result<Duration, WebError> {
    aegis_core::parse_age(raw)
        .ok()
        .filter(|d| *d >= Duration::hours(1) && *d <= Duration::days(3653))
        .ok_or_else(|| {
            WebError::bad_request(format!(
                "range={raw:?} is not valid: expected an age from 1h to 3653d, e.g. 24h, 7d, 30d"
            ))
        })
}

/// A path or query address.
pub fn address(raw: &str) -> Result<IpAddr, WebError> {
    parse_ip(raw).map_err(WebError::from)
}

fn parse_cidr(raw: &str) -> Result<IpNetwork, aegis_core::Error> {
    raw.parse::<IpNetwork>().map_err(|e| {
        aegis_core::Error::Invalid(format!(
            "cidr={raw:?} is not a network ({e}): expected e.g. 203.0.113.0/24 or 2001:db8::/32"
        ))
    })
}

fn parse_kind(raw: &str) -> Result<EventKind, aegis_core::Error> {
    match raw {
        "ban" => Ok(EventKind::Ban),
        "unban" => Ok(EventKind::Unban),
        other => Err(aegis_core::Error::Invalid(format!(
            "kind={other:?} is not valid: expected ban or unban"
        ))),
    }
}

/// A jail or host name: bounded, no control characters.
pub fn checked_name(key: &str, value: &str) -> Result<String, WebError> {
    if value.len() > MAX_NAME || value.chars().any(char::is_control) {
        return Err(WebError::bad_request(format!(
            "{key} must be at most {MAX_NAME} bytes without control characters"
        )));
    }
    Ok(value.to_owned())
}

/// A date (a day in `tz`; with `end`, the end of that day), an age or RFC 3339.
fn moment(raw: &str, tz: Tz, end: bool) -> Result<DateTime<Utc>, WebError> {
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let day = if end {
            day.succ_opt().unwrap_or(day)
        } else {
            day
        };
        return Ok(day_start(tz, day));
    }
    parse_moment(raw, Utc::now()).map_err(WebError::from)
}

#[cfg(test)]
mod fuzz {
    use super::*;

    /// Any query string a client sends: an answer or a 400, never a panic.
    #[test]
    fn any_query_string() {
        let samples = [
            "ip=203.0.113.7&cidr=203.0.113.0/24&jail=sshd&host=web1&country=DE",
            "kind=ban&since=2026-11-01&until=2026-11-30&limit=50&offset=100&order=asc",
            "range=365d&days=90&after=1795807795000.00112233445566778899aabb",
            "jail=%00%ff&host=a%2Fb&country=%E4%B8%AD&since=-1&limit=99999999999999999999",
        ];
        let mut keys: Vec<&str> = FILTER_KEYS.to_vec();
        keys.extend([
            "limit", "offset", "order", "range", "days", "after", "total",
        ]);
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        aegis_testkit::fuzz::run("dashboard query strings", 7, &samples, |query| {
            let Ok(p) = Params::parse(query, &keys) else {
                return;
            };
            let _ = p.filter(tz);
            let _ = p.page(100);
            let _ = p.range("30d");
            let _ = p.scope();
            let _ = p.number("days", 30, 1, 3653);
            let mut q = StatsQuery::last_days(1);
            let _ = p.narrow(&mut q);
        });
    }
}
