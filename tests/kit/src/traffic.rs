//! Generated attack traffic, seeded so that a failure or a benchmark run
//! reproduces, and small builders of events.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aegis_core::{BanEvent, EventKind, Geo};
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// The one seeded generator of the tests and benchmarks.
pub use fastrand::Rng;

/// Midnight UTC 40 days ago: test times are relative to it, so they stay plausible.
pub fn base_day() -> NaiveDate {
    (Utc::now() - Duration::days(40)).date_naive()
}

/// `day` days after [`base_day`], at `h:m` UTC.
pub fn at(day: i64, h: u32, m: u32) -> DateTime<Utc> {
    (base_day() + Duration::days(day))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        + Duration::hours(h.into())
        + Duration::minutes(m.into())
}

/// An address from its text.
pub fn ip(s: &str) -> IpAddr {
    aegis_core::parse_ip(s).unwrap()
}

/// A ban of `addr` by `jail` on `host` at `time`.
pub fn ban(addr: &str, jail: &str, host: &str, time: DateTime<Utc>) -> BanEvent {
    BanEvent::new(EventKind::Ban, ip(addr), jail, host, time).unwrap()
}

/// A location with only a country.
pub fn geo(country: &str) -> Geo {
    Geo {
        country: Some(country.into()),
        ..Geo::default()
    }
}

/// `n` events in `[from, to)` shaped like attack traffic, small enough to check
/// against a naive model: a few addresses take most of the bans; IPv4 and IPv6;
/// three jails, two hosts, three countries and unlocated addresses; a
/// sprinkling of restored bans and unbans.
pub fn skewed_events(
    rng: &mut Rng,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    n: usize,
) -> Vec<BanEvent> {
    let span = (to - from).num_seconds().max(1) as u64;
    (0..n)
        .map(|i| {
            let k = if rng.u64(..3) == 0 {
                rng.u64(..4)
            } else {
                rng.u64(..150)
            };
            let ip = if k % 7 == 0 {
                format!("2001:db8:{k}::1")
            } else {
                format!("198.51.{}.{}", k / 50, k)
            };
            let mut e = ban(
                &ip,
                ["sshd", "nginx", "postfix"][rng.usize(..3)],
                ["web1", "web2"][rng.usize(..2)],
                from + Duration::seconds(rng.u64(..span) as i64),
            );
            e.geo = [Some("DE"), Some("CN"), Some("US"), None][(k % 4) as usize].map(geo);
            e.restored = i % 31 == 0;
            if i % 29 == 0 {
                e.kind = EventKind::Unban;
            }
            e
        })
        .collect()
}

const JAILS: [&str; 6] = [
    "sshd",
    "sshd",
    "sshd",
    "nginx-http-auth",
    "postfix-sasl",
    "recidive",
];
const HOSTS: [&str; 5] = ["web1", "web2", "mail", "db1", "vpn"];
const COUNTRIES: [&str; 12] = [
    "CN", "US", "RU", "BR", "IN", "VN", "DE", "KR", "NL", "FR", "ID", "TW",
];

/// A year of skewed attack traffic up to `end`, at benchmark scale: a few
/// addresses ban often, most once; every event located with a country and an
/// AS. In time order, as bans arrive and as fail2ban's database holds them.
pub fn year_of_attacks(n: usize, end: DateTime<Utc>, seed: u64) -> impl Iterator<Item = BanEvent> {
    let mut rng = Rng::with_seed(seed);
    let pool = (n / 4).max(10) as f64;
    let span_ms = 365 * 86_400_000i64;
    let start = end - Duration::milliseconds(span_ms);
    (0..n).map(move |i| {
        let idx = (pool * rng.f64().powi(3)) as u64;
        let ip = if idx % 10 == 9 {
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                (idx >> 16) as u16,
                idx as u16,
                0,
                0,
                0,
                1,
            ))
        } else {
            IpAddr::V4(Ipv4Addr::from(
                0x0b00_0000u32 + (idx as u32).wrapping_mul(2_654_435_761) % 0xc000_0000,
            ))
        };
        // One event somewhere in each of `n` equal slices of the year.
        let time = start
            + Duration::milliseconds(((i as f64 + rng.f64()) / n as f64 * span_ms as f64) as i64);
        let mut e = BanEvent::new(
            EventKind::Ban,
            ip,
            JAILS[rng.usize(..JAILS.len())],
            HOSTS[(idx % 5) as usize],
            time,
        )
        .expect("valid generated event");
        e.failures = Some(5);
        e.bantime = Some(600);
        e.geo = Some(Geo {
            country: Some(COUNTRIES[(idx % 12) as usize].into()),
            asn: Some(4000 + (idx % 300) as u32),
            as_org: Some(format!("AS org {}", idx % 300)),
            ..Geo::default()
        });
        e.matches = vec![format!(
            "sshd[{idx}]: Failed password for root from {ip} port 22 ssh2"
        )];
        e
    })
}
