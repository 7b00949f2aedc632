//! End to end with a real fail2ban: a private server (own config, socket, database
//! and log; no firewall) whose only action is Aegis's own action file.
//!
//! Needs the Debian `fail2ban` package; `.ci/run` installs it. Without it this test
//! fails: it is never skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aegis_core::fail2ban::control::Control;
use aegis_core::{EventKind, IpNetwork};
use aegis_testkit::{text, Sandbox};

const BAN_IPS: [&str; 3] = ["203.0.113.7", "198.51.100.23", "2001:db8::5"];
const BANTIME: u64 = 5;
/// A jail that only receives bans (no filter, no log, no action).
const SHARED: &str = "aegis-shared";

struct Fail2ban {
    etc: PathBuf,
    run: PathBuf,
    server: Child,
}

impl Fail2ban {
    fn client(&self, args: &[&str]) -> std::process::Output {
        Command::new("fail2ban-client")
            .arg("-c")
            .arg(&self.etc)
            .arg("-s")
            .arg(self.run.join("f2b.sock"))
            .arg("-p")
            .arg(self.run.join("f2b.pid"))
            .args(args)
            .output()
            .expect("fail2ban-client runs")
    }

    fn stop(&mut self) {
        let _ = self.client(&["stop"]);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.server.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Drop for Fail2ban {
    fn drop(&mut self) {
        if let Ok(None) = self.server.try_wait() {
            self.stop();
        }
    }
}

fn write(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
}

fn start_fail2ban(sb: &Sandbox, authlog: &Path) -> Fail2ban {
    let server = which("fail2ban-server").unwrap_or_else(|| {
        panic!("fail2ban is not installed: `apt-get install fail2ban` (.ci/run does this)")
    });
    let root = sb.path().join("f2b");
    let (etc, run) = (root.join("etc"), root.join("run"));
    for dir in [etc.join("filter.d"), etc.join("action.d"), run.clone()] {
        std::fs::create_dir_all(dir).unwrap();
    }
    for filter in ["sshd.conf", "common.conf"] {
        std::fs::copy(
            Path::new("/etc/fail2ban/filter.d").join(filter),
            etc.join("filter.d").join(filter),
        )
        .expect("the stock sshd filter of the fail2ban package");
    }
    // The shipped action file, unchanged, installed by the shipped command.
    let out = sb
        .aegis()
        .args(["fail2ban", "install", "--dir"])
        .arg(etc.join("action.d"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    write(
        &etc.join("fail2ban.local"),
        &format!(
            "[Definition]\nloglevel = INFO\nlogtarget = {root}/fail2ban.log\nsocket = {run}/f2b.sock\n\
             pidfile = {run}/f2b.pid\ndbfile = {root}/fail2ban.sqlite3\ndbpurgeage = 1d\n",
            root = root.display(),
            run = run.display()
        ),
    );
    let aegis = format!(
        "{} --config {}/aegis.toml",
        aegis_testkit::bin("aegis").display(),
        sb.path().display()
    );
    write(
        &etc.join("jail.local"),
        &format!(
            "[DEFAULT]\nbackend = polling\nusedns = no\nignoreip = 127.0.0.1/8 ::1\n\n\
             [sshd]\nenabled = true\nfilter = sshd\nlogpath = {log}\nmaxretry = 3\nfindtime = 60\n\
             bantime = {BANTIME}\nport = ssh\nprotocol = tcp\n\
             action = aegis[aegis=\"{aegis}\", port=\"%(port)s\", protocol=\"%(protocol)s\"]\n\n\
             [{SHARED}]\nenabled = true\nfilter =\naction =\nbantime = 3600\n",
            log = authlog.display()
        ),
    );
    let server = Command::new(server)
        .arg("-c")
        .arg(&etc)
        .arg("-s")
        .arg(run.join("f2b.sock"))
        .arg("-p")
        .arg(run.join("f2b.pid"))
        .args(["-xf", "start"])
        .env("AEGIS_STORAGE_URL", sb.db_url())
        .env("AEGIS_STORAGE_SPOOL_DIR", sb.spool())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let f2b = Fail2ban { etc, run, server };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if f2b.client(&["status", "sshd"]).status.success() {
            return f2b;
        }
        assert!(
            Instant::now() < deadline,
            "fail2ban did not start: {}",
            log_tail(&root)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_tail(root: &Path) -> String {
    let log = std::fs::read_to_string(root.join("fail2ban.log")).unwrap_or_default();
    log.lines().rev().take(30).collect::<Vec<_>>().join("\n")
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/bin", "/usr/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Appends sshd failure lines; each needs its own sshd pid or the filter merges them.
fn inject(authlog: &Path, ip: &str, count: u32, pid: &mut u32) -> i64 {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(authlog)
        .unwrap();
    let mut last = 0;
    for _ in 0..count {
        *pid += 1;
        let now = chrono::Local::now();
        last = now.timestamp();
        writeln!(
            file,
            "{} e2ehost sshd[{pid}]: Failed password for invalid user admin from {ip} port {} ssh2",
            now.format("%b %e %H:%M:%S"),
            40000 + *pid % 20000
        )
        .unwrap();
    }
    last
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
        log_tail(&f2b.etc.join(".."))
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
    let socket = f2b.run.join("f2b.sock");
    let mut c = Control::connect(&socket, Duration::from_secs(10)).unwrap();
    c.ping().unwrap();
    let jails = c.jails().unwrap();
    assert!(
        jails.iter().any(|j| j == "sshd") && jails.iter().any(|j| j == SHARED),
        "{jails:?}"
    );

    let ips: Vec<std::net::IpAddr> = ["203.0.113.50", "2001:db8::50"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(c.ban(SHARED, &ips).unwrap(), 2);
    assert_eq!(c.ban(SHARED, &ips).unwrap(), 0, "already banned");
    let mut banned = c.banned(SHARED).unwrap();
    banned.sort();
    assert_eq!(banned, ips);
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
    let started = Instant::now();
    assert_eq!(c.ban(SHARED, &many).unwrap(), 1000);
    eprintln!("1,000 bans through the socket: {:?}", started.elapsed());
    assert_eq!(c.banned(SHARED).unwrap().len(), 1001);
    assert_eq!(c.unban_everywhere(&many).unwrap(), 1000);
    assert_eq!(c.banned(SHARED).unwrap(), vec![ips[1]]);

    let allowed: Vec<IpNetwork> = ["192.0.2.0/24", "198.51.100.9/32", "2001:db8:1::/48"]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    c.ignore(SHARED, &allowed).unwrap();
    let ignored = c.ignored(SHARED).unwrap();
    for want in ["192.0.2.0/24", "198.51.100.9", "2001:db8:1::/48"] {
        assert!(ignored.iter().any(|i| i == want), "{want} in {ignored:?}");
    }

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
