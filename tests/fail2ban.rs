//! End to end with a real fail2ban: a private server (own config, socket, database
//! and log; no firewall) whose only action is Aegis's own action file.
//!
//! Needs the Debian `fail2ban` package; `.ci/run` installs it. Without it this test
//! fails: it is never skipped.

use std::path::Path;
use std::time::{Duration, Instant};

use aegis_core::fail2ban::control::Control;
use aegis_core::{EventKind, IpNetwork};
use aegis_testkit::fail2ban::{inject, Fail2ban};
use aegis_testkit::{text, Sandbox};

const BAN_IPS: [&str; 3] = ["203.0.113.7", "198.51.100.23", "2001:db8::5"];
const BANTIME: u64 = 5;
/// A jail that only receives bans (no filter, no log, no action).
const SHARED: &str = "aegis-shared";

fn write(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
}

fn start_fail2ban(sb: &Sandbox, authlog: &Path) -> Fail2ban {
    let mut f2b = Fail2ban::prepare(&sb.path().join("f2b"));
    let actions = f2b.etc.join("action.d");
    match std::env::var_os("AEGIS_ACTION_FILE") {
        // The installed package's action file, unchanged (scripts/test-package).
        Some(installed) => {
            std::fs::copy(&installed, actions.join("aegis.conf"))
                .expect("the installed action file");
        }
        // The shipped action file, unchanged, installed by the shipped command.
        None => {
            let out = sb
                .aegis()
                .args(["fail2ban", "install", "--dir"])
                .arg(&actions)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out));
        }
    }
    let aegis = format!(
        "{} --config {}/aegis.toml",
        aegis_testkit::bin("aegis").display(),
        sb.path().display()
    );
    write(
        &f2b.etc.join("jail.local"),
        &format!(
            "[DEFAULT]\nbackend = polling\nusedns = no\nignoreip = 127.0.0.1/8 ::1\n\n\
             [sshd]\nenabled = true\nfilter = sshd\nlogpath = {log}\nmaxretry = 3\nfindtime = 60\n\
             bantime = {BANTIME}\nport = ssh\nprotocol = tcp\n\
             action = aegis[aegis=\"{aegis}\", port=\"%(port)s\", protocol=\"%(protocol)s\"]\n\n\
             [{SHARED}]\nenabled = true\nfilter =\naction =\nbantime = 3600\n",
            log = authlog.display()
        ),
    );
    let url = sb.db_url();
    let spool = sb.spool();
    f2b.start(
        "sshd",
        &[
            ("AEGIS_STORAGE_URL", url.as_ref()),
            ("AEGIS_STORAGE_SPOOL_DIR", spool.as_os_str()),
        ],
    );
    f2b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail2ban_bans_and_unbans_reach_aegis() {
    let sb = Sandbox::new();
    let authlog = sb.path().join("auth.log");
    write(&authlog, "");
    let mut f2b = start_fail2ban(&sb, &authlog);

    let mut pid = 30_000;
    let mut last_failure = std::collections::HashMap::new();
    for ip in BAN_IPS {
        last_failure.insert(ip, inject(&authlog, ip, 3, &mut pid));
    }
    inject(&authlog, "192.0.2.200", 2, &mut pid); // below maxretry: never banned

    let wait_for = |kind: EventKind, timeout: u64| {
        let sb = &sb;
        async move {
            let deadline = Instant::now() + Duration::from_secs(timeout);
            loop {
                let events = sb.all_events().await;
                let n = events.iter().filter(|e| e.event.kind == kind).count();
                if n >= BAN_IPS.len() || Instant::now() > deadline {
                    return events;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let events = wait_for(EventKind::Ban, 30).await;
    let bans: Vec<_> = events
        .iter()
        .filter(|e| e.event.kind == EventKind::Ban)
        .collect();
    assert_eq!(
        bans.len(),
        BAN_IPS.len(),
        "bans seen: {events:#?}\n{}",
        f2b.log_tail()
    );
    for b in &bans {
        let e = &b.event;
        let ip = e.ip.to_string();
        assert!(BAN_IPS.contains(&ip.as_str()), "unexpected ban of {ip}");
        assert_eq!(e.jail, "sshd");
        assert_eq!(e.host, "test-host");
        assert_eq!(e.failures, Some(3), "{e:?}");
        assert_eq!(e.bantime, Some(BANTIME as i64));
        assert_eq!(e.bancount, Some(1));
        assert!(!e.restored);
        assert_eq!(
            (e.protocol.as_deref(), e.port.as_deref()),
            (Some("tcp"), Some("ssh"))
        );
        assert_eq!(e.user.as_deref(), Some("admin"));
        assert_eq!(
            e.time.timestamp(),
            last_failure[ip.as_str()],
            "time of the last failure, {e:?}"
        );
        assert_eq!(e.matches.len(), 3, "{:?}", e.matches);
        assert!(e
            .matches
            .iter()
            .all(|m| m.contains(&ip) && m.contains("Failed password")));
    }

    let events = wait_for(EventKind::Unban, BANTIME + 25).await;
    let unbans = events
        .iter()
        .filter(|e| e.event.kind == EventKind::Unban)
        .count();
    assert_eq!(unbans, BAN_IPS.len(), "{events:#?}");
    f2b.stop();
    assert_eq!(sb.spooled(), 0, "the store was up: nothing spooled");

    // fail2ban's own table agrees, and importing it adds nothing: same events, same ids.
    let f2b_db = sb.path().join("f2b/fail2ban.sqlite3");
    let rows: i64 = rusqlite::Connection::open(&f2b_db)
        .unwrap()
        .query_row("SELECT count(*) FROM bans WHERE jail = 'sshd'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let store = sb.store().await;
    let mut q = aegis_core::StatsQuery::last_days(1);
    q.scope.jail = Some("sshd".into());
    assert_eq!(store.summary(&q).await.unwrap().bans, rows as u64);
    let out = sb
        .aegis()
        .args(["import", "fail2ban-db", "--host", "test-host"])
        .arg(&f2b_db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with(&format!("read {rows}, imported 0, duplicates {rows}")),
        "{}",
        text(&out)
    );
}

#[test]
fn the_control_socket_bans_unbans_and_ignores_like_fail2ban_client() {
    let sb = Sandbox::new();
    let authlog = sb.path().join("auth.log");
    write(&authlog, "");
    let f2b = start_fail2ban(&sb, &authlog);
    let socket = f2b.socket();
    let mut c = Control::connect(&socket, Duration::from_secs(10)).unwrap();
    c.ping().unwrap();
    let jails = c.jails().unwrap();
    assert!(
        jails.iter().any(|j| j == "sshd") && jails.iter().any(|j| j == SHARED),
        "{jails:?}"
    );

    let ips: Vec<IpNetwork> = ["203.0.113.50", "2001:db8::50"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(c.ban(SHARED, &ips).unwrap(), 2);
    assert_eq!(c.ban(SHARED, &ips).unwrap(), 0, "already banned");
    let mut banned = c.banned(SHARED).unwrap();
    banned.sort();
    assert_eq!(banned, ips.iter().map(|n| n.ip()).collect::<Vec<_>>());
    // fail2ban's own client sees the same bans.
    let shown = text(&f2b.client(&["get", SHARED, "banned"]));
    assert!(
        shown.contains("203.0.113.50") && shown.contains("2001:db8::50"),
        "{shown}"
    );
    assert_eq!(c.unban(SHARED, &ips[..1]).unwrap(), 1);

    // A burst, in commands of ADDRESSES_PER_COMMAND addresses.
    let many: Vec<std::net::IpAddr> = (0..1000u32)
        .map(|i| std::net::Ipv4Addr::from(0x0a01_0000 + i).into())
        .collect();
    let many_targets: Vec<IpNetwork> = many.iter().map(|ip| IpNetwork::from(*ip)).collect();
    let started = Instant::now();
    assert_eq!(c.ban(SHARED, &many_targets).unwrap(), 1000);
    eprintln!("1,000 bans through the socket: {:?}", started.elapsed());
    assert_eq!(c.banned(SHARED).unwrap().len(), 1001);
    assert_eq!(c.unban_everywhere(&many[..500]).unwrap(), 500);
    // A network unbans every address banned inside it.
    assert_eq!(
        c.unban(SHARED, &["10.1.0.0/16".parse().unwrap()]).unwrap(),
        500
    );
    assert_eq!(c.banned(SHARED).unwrap(), vec![ips[1].ip()]);

    let allowed: Vec<IpNetwork> = ["192.0.2.0/24", "198.51.100.9/32", "2001:db8:1::/48"]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    c.ignore(SHARED, &allowed).unwrap();
    let ignored = c.ignored(SHARED).unwrap();
    for want in ["192.0.2.0/24", "198.51.100.9", "2001:db8:1::/48"] {
        assert!(ignored.iter().any(|i| i == want), "{want} in {ignored:?}");
    }
    assert!(c.unignore(SHARED, allowed[1]).unwrap());
    assert!(!c.unignore(SHARED, allowed[1]).unwrap(), "no longer there");
    assert!(!c
        .ignored(SHARED)
        .unwrap()
        .iter()
        .any(|i| i == "198.51.100.9"));

    // fail2ban's refusals and a missing server are errors that say so.
    let err = c.ban("nosuchjail", &ips).unwrap_err();
    assert!(
        matches!(err, aegis_core::Error::Fail2ban(_)) && err.to_string().contains("nosuchjail"),
        "{err}"
    );
    c.ping().unwrap();
    let err = Control::connect(&sb.path().join("none.sock"), Duration::from_secs(1)).unwrap_err();
    assert!(err.to_string().contains("is fail2ban running"), "{err}");
}
