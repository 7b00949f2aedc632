//! Property tests of every parser that reads what an attacker can reach:
//! fail2ban's log lines, times, addresses, codes, ages, cursors, storage URLs,
//! and the cleaning of events. None may panic; a cleaned event always stores.
//! `scripts/fuzz` runs a million inputs each.

use aegis_core::fail2ban::parse_log_line;
use aegis_core::{
    parse_age, parse_country, parse_ip, parse_moment, parse_time, BanEvent, Cursor, EventKind, Geo,
    StorageUrl, Utc,
};
use aegis_testkit::fuzz;

#[test]
fn log_lines() {
    let samples = [
        "2026-11-27 19:30:01,123 fail2ban.actions [1234]: NOTICE  [sshd] Ban 203.0.113.7",
        "2026-11-27 19:30:01,123 fail2ban.actions [1]: NOTICE  [nginx] Restore Ban 2001:db8::5",
        "2013-11-27 19:30:01,123 fail2ban.actions: WARNING [ssh] Unban 203.0.113.7",
        "2013-11-27 19:30:01,123 fail2ban.actions: WARNING [ssh] 203.0.113.7 already banned",
        "2026-11-27 19:30:01,123 fail2ban.filter [1]: INFO [sshd] Found 203.0.113.7",
    ];
    let tz = "Europe/Berlin".parse().unwrap();
    fuzz::run("fail2ban log lines", 1, &samples, |line| {
        if let Some(Ok(e)) = parse_log_line(line, tz, "web1") {
            e.validate().unwrap();
        }
    });
}

#[test]
fn times_addresses_codes_ages_and_cursors() {
    let samples = [
        "1795807795.25",
        "2026-11-01T10:00:00Z",
        "203.0.113.7",
        "::ffff:203.0.113.7",
        "2001:db8::5",
        "de",
        "7d",
        "24h",
        "2026-11-01",
        "all",
        "1795807795000.00112233445566778899aabb",
    ];
    let now = Utc::now();
    fuzz::run("times, addresses, codes, ages, cursors", 2, &samples, |s| {
        let _ = parse_time(s);
        let _ = parse_ip(s);
        let _ = parse_country(s);
        let _ = parse_age(s);
        let _ = parse_moment(s, now);
        if let Ok(c) = Cursor::parse(s) {
            assert_eq!(Cursor::parse(&c.token()).unwrap(), c);
        }
    });
}

#[test]
fn storage_urls_never_show_a_secret() {
    let samples = [
        "mongodb://u:s3cret@db1,db2/aegis?replicaSet=rs0&authSource=admin",
        "mongodb+srv://u:s3cret@cluster0.example.net/?tlsCertificateKeyFilePassword=s3cret",
        "sqlite:///var/lib/aegis/aegis.db",
        "sqlite::memory:",
    ];
    fuzz::run("storage URLs", 3, &samples, |raw| {
        if let Ok(url) = StorageUrl::parse(raw) {
            let _ = (url.to_string(), format!("{url:?}"), url.is_remote());
            let _ = url.scrub(raw);
        }
    });
}

#[test]
fn a_cleaned_event_always_stores() {
    let samples = [
        "admin",
        "root\tx",
        "sshd[1]: Failed password for root from 203.0.113.7 port 22 ssh2",
        "tcp",
        "22,80",
        "Beijing",
        "AS4134 Chinanet",
        "DE",
    ];
    let base = BanEvent::new(
        EventKind::Ban,
        parse_ip("203.0.113.7").unwrap(),
        "sshd",
        "web1",
        Utc::now(),
    )
    .unwrap();
    let mut rng = fastrand::Rng::with_seed(4);
    let mut n = 0;
    fuzz::run("event cleaning", 4, &samples, |s| {
        n += 1;
        let mut e = base.clone();
        let mut text = || Some(fuzz::mutate(&mut rng, &samples));
        e.user = text();
        e.protocol = text();
        e.port = text();
        e.matches = vec![s.to_owned(); n % 13];
        e.bantime = Some(i64::from(n as i32 % 7) - 3);
        e.time = Utc::now() - chrono::Duration::days((n as i64 % 20_000) - 5);
        e.geo = Some(Geo {
            country: text(),
            city: text(),
            as_org: text(),
            latitude: Some(n as f64 - 100.0),
            longitude: Some(f64::NAN),
            asn: None,
        });
        e.clean();
        e.validate().unwrap_or_else(|err| panic!("{err}: {e:?}"));
    });
}
