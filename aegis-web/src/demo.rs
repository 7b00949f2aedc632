//! Generated attacks for `aegis-web --demo`: ninety days of bans and unbans
//! with realistic shapes (a few persistent offenders, many one-off scanners,
//! weekly rhythm, bursts), located in real cities. Every demo host name ends in
//! [`DEMO_HOST_SUFFIX`] so demo data can never pass for real data.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use aegis_core::{BanEvent, EventFilter, EventKind, Geo, Page, Storage};
use chrono::{DateTime, Duration, Utc};

/// The end of every demo host name (`.invalid` is reserved: RFC 2606).
pub const DEMO_HOST_SUFFIX: &str = ".demo.invalid";

const HOSTS: [&str; 3] = [
    "web-1.demo.invalid",
    "web-2.demo.invalid",
    "mail.demo.invalid",
];

/// Jails with their share of attacks.
const JAILS: [(&str, u32); 5] = [
    ("sshd", 60),
    ("nginx-http-auth", 15),
    ("postfix-sasl", 12),
    ("dovecot", 8),
    ("nginx-botsearch", 5),
];

/// (country, city, latitude, longitude, weight); ASNs are from the range set
/// aside for documentation (RFC 5398).
const PLACES: [(&str, &str, f64, f64, u32); 16] = [
    ("CN", "Beijing", 39.9042, 116.4074, 18),
    ("CN", "Shanghai", 31.2304, 121.4737, 10),
    ("US", "Ashburn", 39.0438, -77.4874, 10),
    ("RU", "Moscow", 55.7558, 37.6173, 9),
    ("BR", "São Paulo", -23.5505, -46.6333, 7),
    ("IN", "Mumbai", 19.0760, 72.8777, 7),
    ("VN", "Hanoi", 21.0278, 105.8342, 6),
    ("DE", "Frankfurt am Main", 50.1109, 8.6821, 6),
    ("NL", "Amsterdam", 52.3676, 4.9041, 5),
    ("KR", "Seoul", 37.5665, 126.9780, 5),
    ("ID", "Jakarta", -6.2088, 106.8456, 4),
    ("SG", "Singapore", 1.3521, 103.8198, 4),
    ("FR", "Paris", 48.8566, 2.3522, 3),
    ("GB", "London", 51.5074, -0.1278, 3),
    ("IR", "Tehran", 35.6892, 51.3890, 2),
    ("ZA", "Johannesburg", -26.2041, 28.0473, 1),
];

const ORGS: [&str; 6] = [
    "Example Cloud Hosting",
    "Sample Broadband",
    "Demo Datacenter",
    "Placeholder Telecom",
    "Illustrative VPS",
    "Fictional Mobile",
];

/// The demo is the same every time: one seeded generator makes it.
type Rng = fastrand::Rng;

/// An item picked by weight.
fn weighted<T: Copy>(rng: &mut Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut pick = rng.u32(..total.max(1));
    for (item, w) in items {
        if pick < *w {
            return *item;
        }
        pick -= w;
    }
    items[0].0
}

/// An attacking address with where it is.
struct Attacker {
    ip: IpAddr,
    geo: Geo,
}

fn attacker(rng: &mut Rng) -> Attacker {
    let weights: Vec<(usize, u32)> = PLACES.iter().enumerate().map(|(i, p)| (i, p.4)).collect();
    let (country, city, lat, lon, _) = PLACES[weighted(rng, &weights)];
    let ip = if rng.u64(..10) == 0 {
        let mut segs = [0u16; 8];
        segs[0] = 0x2400 + rng.u64(..0x300) as u16;
        for s in segs.iter_mut().skip(1) {
            *s = rng.u64(..0x10000) as u16;
        }
        IpAddr::V6(Ipv6Addr::from(segs))
    } else {
        // Public unicast space only: skip 0/8, 10/8, 100/8, 127/8, 169/8, 172/8, 192/8 and up.
        let first = loop {
            let o = 1 + rng.u64(..190) as u8;
            if ![10, 100, 127, 169, 172].contains(&o) {
                break o;
            }
        };
        let rest = rng.u64(..).to_be_bytes();
        IpAddr::V4(Ipv4Addr::new(first, rest[0], rest[1], 1 + rest[2] % 254))
    };
    let asn = 64_496 + rng.u64(..16) as u32;
    Attacker {
        ip,
        geo: Geo {
            country: Some(country.into()),
            city: Some(city.into()),
            latitude: Some(lat),
            longitude: Some(lon),
            asn: Some(asn),
            as_org: Some(ORGS[asn as usize % ORGS.len()].into()),
        },
    }
}

fn log_line(jail: &str, host: &str, ip: IpAddr, at: DateTime<Utc>, n: u64) -> String {
    let stamp = at.format("%b %e %H:%M:%S");
    let short = host.split('.').next().unwrap_or(host);
    let users = [
        "root", "admin", "ubuntu", "test", "oracle", "postgres", "git",
    ];
    let user = users[(n % users.len() as u64) as usize];
    match jail {
        "sshd" => format!(
            "{stamp} {short} sshd[{}]: Failed password for invalid user {user} from {ip} port {} ssh2",
            1000 + n % 60000,
            1024 + n % 64000
        ),
        "postfix-sasl" => format!(
            "{stamp} {short} postfix/smtpd[{}]: warning: unknown[{ip}]: SASL LOGIN authentication failed",
            1000 + n % 60000
        ),
        "dovecot" => format!(
            "{stamp} {short} dovecot: imap-login: Disconnected (auth failed, 1 attempts): user=<{user}>, rip={ip}"
        ),
        _ => format!(
            "{ip} - {user} [{}] \"GET /wp-login.php HTTP/1.1\" 401 188",
            at.format("%d/%b/%Y:%H:%M:%S +0000")
        ),
    }
}

/// The ban (and, when it has expired, the unban) of one attack.
fn attack(rng: &mut Rng, who: &Attacker, at: DateTime<Utc>, now: DateTime<Utc>) -> Vec<BanEvent> {
    let jails: Vec<(&str, u32)> = JAILS.to_vec();
    let jail = weighted(rng, &jails);
    let host = HOSTS[rng.u64(..HOSTS.len() as u64) as usize];
    let Ok(mut ban) = BanEvent::new(EventKind::Ban, who.ip, jail, host, at) else {
        return Vec::new();
    };
    let failures = 3 + rng.u64(..5) as u32;
    let n = rng.u64(..);
    ban.failures = Some(failures);
    ban.protocol = Some("tcp".into());
    ban.port = Some(if jail == "sshd" { "ssh" } else { "http,https" }.into());
    ban.bantime = Some(600 * (1 + rng.u64(..6) as i64));
    ban.matches = (0..failures.min(3))
        .map(|i| {
            let t = at - Duration::seconds(i64::from(3 - i) * 17);
            log_line(jail, host, who.ip, t, n + u64::from(i))
        })
        .collect();
    ban.geo = Some(who.geo.clone());
    ban.received_at = at;
    let mut events = vec![ban.clone()];
    let lifted = at + Duration::seconds(ban.bantime.unwrap_or(600));
    if lifted < now {
        if let Ok(mut unban) = BanEvent::new(EventKind::Unban, who.ip, jail, host, lifted) {
            unban.geo = Some(who.geo.clone());
            unban.bantime = ban.bantime;
            unban.received_at = lifted;
            events.push(unban);
        }
    }
    events
}

/// Ninety days of generated attacks ending at `now`, oldest first.
pub fn demo_events(now: DateTime<Utc>) -> Vec<BanEvent> {
    let mut rng = Rng::with_seed(0xAE61_5DE0);
    // A few persistent offenders come back every few hours; most appear once.
    let regulars: Vec<Attacker> = (0..40).map(|_| attacker(&mut rng)).collect();
    let mut events = Vec::new();
    for day in (0..90).rev() {
        let start = now - Duration::days(day + 1);
        let weekday = (start.timestamp() / 86_400 + 4) % 7;
        let trend = 80 + (90 - day) as u64;
        let burst = if rng.u64(..12) == 0 { 3 } else { 1 };
        let weekend = if weekday >= 5 { 70 } else { 100 };
        let count = trend * weekend / 100 * burst + rng.u64(..40);
        for _ in 0..count {
            let at = start + Duration::seconds(rng.u64(..86_400) as i64);
            if at > now {
                continue;
            }
            let who = if rng.u64(..4) == 0 {
                let i = (rng.u64(..40) * rng.u64(..40) / 40) as usize;
                Attacker {
                    ip: regulars[i].ip,
                    geo: regulars[i].geo.clone(),
                }
            } else {
                attacker(&mut rng)
            };
            events.extend(attack(&mut rng, &who, at, now));
        }
    }
    events.sort_by_key(|e| e.time);
    events
}

/// One new attack happening now, for a demo that keeps moving.
pub fn live_event(seed: u64, now: DateTime<Utc>) -> Vec<BanEvent> {
    let mut rng = Rng::with_seed(seed);
    let who = attacker(&mut rng);
    attack(&mut rng, &who, now, now)
}

/// Fills an empty store; a store with events is left as it is.
pub(crate) async fn fill(storage: &dyn Storage) -> anyhow::Result<()> {
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
        DEMO_HOST_SUFFIX
    );
    Ok(())
}

/// A new demo attack every few seconds, so the latest bans move.
pub(crate) async fn keep_alive(storage: Arc<dyn Storage>) {
    let mut seed = chrono::Utc::now().timestamp_millis() as u64;
    loop {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        actix_web::rt::time::sleep(std::time::Duration::from_secs(4 + seed % 8)).await;
        let events = live_event(seed, chrono::Utc::now());
        if let Err(e) = storage.record_batch(&events).await {
            eprintln!("aegis-web: demo event not stored: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_data_is_valid_marked_and_shaped() {
        let now = Utc::now();
        let events = demo_events(now);
        assert!(events.len() > 10_000, "{}", events.len());
        for e in &events {
            e.validate().unwrap();
            assert!(e.host.ends_with(DEMO_HOST_SUFFIX));
            assert!(e.time <= now);
        }
        let mut per_ip = std::collections::HashMap::<IpAddr, u32>::new();
        for e in events.iter().filter(|e| e.is_new_ban()) {
            *per_ip.entry(e.ip).or_default() += 1;
        }
        let max = per_ip.values().max().copied().unwrap_or(0);
        assert!(max > 50, "a persistent offender stands out: {max}");
        assert!(per_ip.values().filter(|n| **n == 1).count() > 1000);
        assert_eq!(demo_events(now), events, "deterministic");
    }
}
