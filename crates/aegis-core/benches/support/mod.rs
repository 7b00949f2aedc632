//! Shared by the benchmarks: a small deterministic generator, so runs compare,
//! and the generated attack traffic.
#![allow(dead_code)] // each benchmark uses its own share

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aegis_core::{BanEvent, EventKind, Geo};
use chrono::{DateTime, Utc};

/// xorshift64: fast, seedable, good enough for generated traffic.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
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

/// Skewed attack traffic over the year up to `end`: a few addresses ban often, most once.
pub fn generate(n: usize, end: DateTime<Utc>, seed: u64) -> impl Iterator<Item = BanEvent> {
    let mut rng = Rng(seed);
    let pool = (n / 4).max(10) as f64;
    let span_ms = 365 * 86_400_000i64;
    (0..n).map(move |_| {
        let idx = (pool * rng.unit().powi(3)) as u64;
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
        let time = end - chrono::Duration::milliseconds((rng.unit() * span_ms as f64) as i64);
        let mut e = BanEvent::new(
            EventKind::Ban,
            ip,
            JAILS[(rng.next() % 6) as usize],
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
