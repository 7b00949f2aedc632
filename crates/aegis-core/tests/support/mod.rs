//! Helpers shared by the conformance suite: stores with their own database, and events.
#![allow(dead_code)] // each test file uses its own share of the helpers

use std::net::IpAddr;
use std::sync::Arc;

use aegis_core::{BanEvent, EventKind, Geo, SqliteStorage, Storage};
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// A SQLite file in its own temporary directory, removed on drop.
pub struct SqliteFile {
    pub store: Arc<dyn Storage>,
    _dir: tempfile::TempDir,
}

pub async fn sqlite_file() -> SqliteFile {
    let dir = tempfile::tempdir().unwrap();
    let url = aegis_core::StorageUrl::parse(&format!("sqlite://{}/aegis.db", dir.path().display()))
        .unwrap();
    SqliteFile {
        store: aegis_core::connect(&url).await.unwrap(),
        _dir: dir,
    }
}

pub async fn sqlite_memory() -> Arc<dyn Storage> {
    Arc::new(SqliteStorage::open_in_memory().unwrap())
}

/// A database of its own on the MongoDB server named by `AEGIS_TEST_MONGODB_URI`.
///
/// Missing the variable is a failure, not a skip: `scripts/test` starts the
/// test server and sets it.
pub fn mongodb_url(name: &str) -> aegis_core::StorageUrl {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let uri = std::env::var("AEGIS_TEST_MONGODB_URI").expect(
        "AEGIS_TEST_MONGODB_URI is not set: start the test server with \
         tests/mongodb-server/install && node tests/mongodb-server/start.mjs (scripts/test does both)",
    );
    let (base, options) = uri.split_once('?').unwrap_or((&uri, ""));
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let db = format!("{name}_{}_{n}", std::process::id());
    aegis_core::StorageUrl::parse(&format!("{}/{db}?{options}", base.trim_end_matches('/')))
        .unwrap()
}

/// A fresh MongoDB database.
pub async fn mongodb() -> Arc<dyn Storage> {
    let url = mongodb_url("aegis_test");
    aegis_core::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("the MongoDB test server at {url} is not usable: {e}"))
}

/// Midnight UTC 40 days ago: every test time is relative to it, so it stays plausible.
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

pub fn ip(s: &str) -> IpAddr {
    aegis_core::parse_ip(s).unwrap()
}

pub fn ban(addr: &str, jail: &str, host: &str, time: DateTime<Utc>) -> BanEvent {
    BanEvent::new(EventKind::Ban, ip(addr), jail, host, time).unwrap()
}

pub fn geo(country: &str) -> Geo {
    Geo {
        country: Some(country.into()),
        ..Geo::default()
    }
}

/// A small deterministic generator (xorshift), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// `n` events in `[from, to)` shaped like attack traffic: a few addresses take most
/// of the bans; IPv4 and IPv6; three jails, two hosts, three countries and
/// unlocated addresses; a sprinkling of restored bans and unbans.
pub fn skewed_events(
    rng: &mut Rng,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    n: usize,
) -> Vec<BanEvent> {
    let span = (to - from).num_seconds().max(1) as u64;
    (0..n)
        .map(|i| {
            let k = if rng.below(3) == 0 {
                rng.below(4)
            } else {
                rng.below(150)
            };
            let ip = if k % 7 == 0 {
                format!("2001:db8:{k}::1")
            } else {
                format!("198.51.{}.{}", k / 50, k)
            };
            let mut e = ban(
                &ip,
                ["sshd", "nginx", "postfix"][rng.below(3) as usize],
                ["web1", "web2"][rng.below(2) as usize],
                from + Duration::seconds(rng.below(span) as i64),
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
