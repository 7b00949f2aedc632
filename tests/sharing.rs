//! Sharing bans between hosts, end to end: three private fail2ban servers (A, B
//! and C, each its own socket, database, log and jails) on one machine, each
//! with an `aegis agent`, all reporting into one store: the SQLite file, and
//! the MongoDB test server (through a relay that can be cut, as a network
//! outage looks to its clients).
//!
//! Every host's fail2ban runs the shipped action for its sshd jail, the shipped
//! shared jail (`aegis fail2ban install --share`), and a `record` ban action
//! that writes what it bans into `fw.log`: what a firewall would have done.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_core::decision::{parse_target, Action, Decision, Origin};
use aegis_core::fail2ban::control::Control;
use aegis_core::{connect, EventFilter, Page, Storage, StorageUrl};
use aegis_testkit::fail2ban::{inject, Fail2ban};
use aegis_testkit::relay::Relay;
use aegis_testkit::{bin, text};

const SHARED: &str = "aegis-shared";
const HOSTS: [&str; 3] = ["A", "B", "C"];
/// How long a change may take to reach every host in these tests (the
/// benchmark measures the real figure).
const BOUND: Duration = Duration::from_secs(20);
/// Shared bans a minute from one host before its circuit breaker opens.
const PER_MINUTE: u32 = 8;

struct Host {
    name: &'static str,
    dir: PathBuf,
    f2b: Fail2ban,
    agent: Option<Child>,
    pid: u32,
}

impl Host {
    fn config(&self) -> PathBuf {
        self.dir.join("aegis.toml")
    }

    fn aegis(&self) -> Command {
        let mut cmd = Command::new(bin("aegis"));
        cmd.arg("--config")
            .arg(self.config())
            .env_remove("AEGIS_STORAGE_URL")
            .env("USER", "ops");
        cmd
    }

    fn start_agent(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))
            .unwrap();
        let child = self
            .aegis()
            .arg("agent")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    fn kill_agent(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
    }

    fn control(&self) -> Control {
        Control::connect(&self.f2b.socket(), Duration::from_secs(10)).unwrap()
    }

    fn banned(&self, jail: &str) -> Vec<String> {
        let mut c = self.control();
        c.banned(jail)
            .unwrap()
            .iter()
            .map(|ip| ip.to_string())
            .collect()
    }

    fn holds(&self, jail: &str, ip: &str) -> bool {
        self.banned(jail).iter().any(|b| b == ip)
    }

    /// What the ban action did, line by line ("ban IP JAIL", "unban IP JAIL").
    fn firewall(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("fw.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn fail_ssh(&mut self, ip: &str) {
        inject(&self.dir.join("auth.log"), ip, 3, &mut self.pid);
    }

    fn why(&self) -> String {
        format!(
            "{}: agent log:\n{}\nfail2ban log:\n{}",
            self.name,
            std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default(),
            self.f2b.log_tail()
        )
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill_agent();
    }
}

struct Fleet {
    _dir: tempfile::TempDir,
    /// The store as the test reads it (not through the relay).
    url: StorageUrl,
    hosts: Vec<Host>,
}

impl Fleet {
    /// Three hosts on `url` (the store as the hosts reach it).
    fn start(url: &str, direct: StorageUrl) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let hosts = HOSTS
            .iter()
            .map(|name| {
                let root = dir.path().join(name);
                std::fs::create_dir_all(&root).unwrap();
                host(name, &root, url)
            })
            .collect();
        Fleet {
            _dir: dir,
            url: direct,
            hosts,
        }
    }

    async fn store(&self) -> Arc<dyn Storage> {
        connect(&self.url).await.unwrap()
    }

    async fn decisions(&self) -> Vec<Decision> {
        self.store()
            .await
            .decision_log()
            .after(0, 10_000)
            .await
            .unwrap()
    }

    fn why(&self) -> String {
        self.hosts
            .iter()
            .map(Host::why)
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// Waits until `done` holds, failing with every host's logs after `BOUND`.
    fn wait(&self, what: &str, mut done: impl FnMut(&Fleet) -> bool) {
        let deadline = Instant::now() + BOUND;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {BOUND:?}\n{}",
                self.why()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn decide(&self, host: usize, args: &[&str]) -> String {
        let out = self.hosts[host]
            .aegis()
            .arg("decide")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// One host: its configuration, its fail2ban (started) and its agent (started).
fn host(name: &'static str, root: &Path, url: &str) -> Host {
    let mut f2b = Fail2ban::prepare(&root.join("f2b"));
    std::fs::write(
        root.join("aegis.toml"),
        format!(
            "host = \"{name}\"\n\n[storage]\nurl = \"{url}\"\nspool_dir = \"{spool}\"\n\n\
             [share]\nenabled = true\nper_minute = {PER_MINUTE}\n\n\
             [agent]\nsocket = \"{socket}\"\nstate_file = \"{state}\"\npoll_ms = 100\n",
            spool = root.join("spool").display(),
            socket = f2b.socket().display(),
            state = root.join("agent.json").display(),
        ),
    )
    .unwrap();
    let out = Command::new(bin("aegis"))
        .args(["fail2ban", "install", "--share", "--dir"])
        .arg(f2b.etc.join("action.d"))
        .arg("--unit-dir")
        .arg(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Where the package is installed, its unit is used instead of a copy.
    assert!(
        root.join("aegis-agent.service").is_file() || text(&out).contains("comes with the package"),
        "{}",
        text(&out)
    );
    std::fs::write(
        f2b.etc.join("action.d/record.conf"),
        format!(
            "[Definition]\nactionstart =\nactionstop =\nactioncheck =\n\
             actionban = echo \"ban <ip> <name>\" >> {fw}\n\
             actionunban = echo \"unban <ip> <name>\" >> {fw}\n[Init]\nname = default\n",
            fw = root.join("fw.log").display()
        ),
    )
    .unwrap();
    let aegis = format!(
        "{} --config {}",
        bin("aegis").display(),
        root.join("aegis.toml").display()
    );
    std::fs::write(
        f2b.etc.join("jail.local"),
        format!(
            "[DEFAULT]\nbackend = polling\nusedns = no\nignoreip = 127.0.0.1/8 ::1\n\
             banaction = record\naction_ = %(banaction)s[name=%(__name__)s]\n\n\
             [sshd]\nenabled = true\nfilter = sshd\nlogpath = {log}\nmaxretry = 3\nfindtime = 600\n\
             bantime = 600\nport = ssh\nprotocol = tcp\n\
             action = aegis[aegis=\"{aegis}\", port=\"%(port)s\", protocol=\"%(protocol)s\"]\n         \
             record[name=sshd]\n",
            log = root.join("auth.log").display()
        ),
    )
    .unwrap();
    std::fs::write(root.join("auth.log"), "").unwrap();
    f2b.start(SHARED, &[]);
    let mut host = Host {
        name,
        dir: root.to_owned(),
        f2b,
        agent: None,
        pid: 10_000,
    };
    host.start_agent();
    host
}

/// The story every backend must tell the same way.
async fn bans_are_shared_unbanned_allowed_and_expire(fleet: &mut Fleet) {
    // A bans an sshd attacker; B and C hold the ban in their shared jail.
    let ip = "45.155.205.10";
    fleet.hosts[0].fail_ssh(ip);
    fleet.wait("B and C hold A's ban", |f| {
        f.hosts[1].holds(SHARED, ip) && f.hosts[2].holds(SHARED, ip)
    });
    assert!(fleet.hosts[0].holds("sshd", ip));
    assert!(!fleet.hosts[0].holds(SHARED, ip), "A banned it itself");
    for h in &fleet.hosts[1..] {
        assert!(
            h.firewall().contains(&format!("ban {ip} {SHARED}")),
            "{:?}",
            h.firewall()
        );
    }
    let decisions = fleet.decisions().await;
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    assert_eq!(decisions[0].action, Action::Ban);
    assert!(matches!(&decisions[0].origin, Origin::Policy { host, .. } if host == "A"));
    assert!(decisions[0].until.is_some(), "as long as A's bantime");
    // Each agent records what it did: B and C applied it; A had it already.
    fleet.wait("B and C record the ban as applied", |_| {
        let applied = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                fleet
                    .store()
                    .await
                    .decision_log()
                    .applied(&[decisions[0].id])
                    .await
                    .unwrap()
            })
        });
        let hosts: Vec<(&str, &str)> = applied
            .iter()
            .map(|a| (a.host.as_str(), a.outcome.as_str()))
            .collect();
        hosts == [("B", "applied"), ("C", "applied")]
    });
    // The applied bans are not new attacks, and make no decisions.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fleet.decisions().await.len(), 1);
    let store = fleet.store().await;
    let events = store
        .events(
            &EventFilter {
                ip: Some(ip.parse().unwrap()),
                ..EventFilter::default()
            },
            Page::first(100),
        )
        .await
        .unwrap();
    let hosts: Vec<&str> = events.iter().map(|e| e.event.host.as_str()).collect();
    assert_eq!(hosts, ["A"], "{events:#?}");

    // A person's unban reaches every jail of every host.
    let said = fleet.decide(2, &["unban", ip, "--reason", "false positive"]);
    assert!(said.contains("unban 45.155.205.10 on every host"), "{said}");
    fleet.wait("the unban reaches A, B and C", |f| {
        !f.hosts[0].holds("sshd", ip) && f.hosts.iter().all(|h| !h.holds(SHARED, ip))
    });

    // An allowed network for B and C: A still bans locally, B and C never do,
    // and every jail of theirs ignores it.
    fleet.decide(0, &["allow", "45.155.206.0/24", "--hosts", "B,C"]);
    fleet.wait("the allow reaches every jail of B and C", |f| {
        f.hosts[1..].iter().all(|h| {
            let mut c = h.control();
            ["sshd", SHARED]
                .iter()
                .all(|j| c.ignored(j).unwrap().iter().any(|i| i == "45.155.206.0/24"))
        })
    });
    // fail2ban forgets run-time ignoreip on reload: the agent puts it back.
    let out = fleet.hosts[1].f2b.client(&["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    fleet.wait("the allow is back after B's fail2ban reloads", |f| {
        let mut c = f.hosts[1].control();
        c.ignored("sshd")
            .unwrap()
            .iter()
            .any(|i| i == "45.155.206.0/24")
    });
    let allowed = "45.155.206.5";
    fleet.hosts[0].fail_ssh(allowed);
    fleet.wait("A bans locally", |f| f.hosts[0].holds("sshd", allowed));
    std::thread::sleep(Duration::from_secs(2));
    assert!(fleet.hosts[1..].iter().all(|h| !h.holds(SHARED, allowed)));
    assert!(
        fleet
            .decisions()
            .await
            .iter()
            .all(|d| !d.target.contains(allowed.parse().unwrap()) || d.action == Action::Allow),
        "no decision bans an allowed address"
    );

    // A ban for 5 s is applied everywhere and ends everywhere.
    let brief = "45.155.207.1";
    fleet.decide(1, &["ban", brief, "--for", "5s"]);
    fleet.wait("the 5 s ban reaches every host", |f| {
        f.hosts.iter().all(|h| h.holds(SHARED, brief))
    });
    fleet.wait("the 5 s ban ends everywhere", |f| {
        f.hosts.iter().all(|h| !h.holds(SHARED, brief))
    });
    for h in &fleet.hosts {
        assert!(
            h.firewall().contains(&format!("unban {brief} {SHARED}")),
            "{}",
            h.why()
        );
    }

    // Unsafe decisions are refused with the reason, unless forced.
    let out = fleet.hosts[0]
        .aegis()
        .args(["decide", "ban", "10.0.0.0/8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wider than a /16"),
        "{}",
        text(&out)
    );
}

/// A burst of decisions; B's agent is killed in the middle and started again:
/// every address is banned once, none twice.
async fn a_restarted_agent_applies_nothing_twice(fleet: &mut Fleet) {
    let store = fleet.store().await;
    let targets: Vec<String> = (0..300)
        .map(|i| format!("45.156.{}.{}", i / 200, i % 200 + 1))
        .collect();
    for t in &targets {
        let d = Decision::by_person(Action::Ban, parse_target(t).unwrap(), "ops", "burst")
            .on_hosts(vec!["B".into()]);
        store.decision_log().decide(&d).await.unwrap();
    }
    fleet.wait("B starts applying", |f| f.hosts[1].firewall().len() > 20);
    fleet.hosts[1].kill_agent();
    fleet.hosts[1].start_agent();
    fleet.wait("B holds all 300", |f| {
        let banned = f.hosts[1].banned(SHARED);
        targets.iter().all(|t| banned.contains(t))
    });
    let mut bans: BTreeMap<String, usize> = BTreeMap::new();
    for line in fleet.hosts[1].firewall() {
        if let Some(ip) = line
            .strip_prefix("ban ")
            .and_then(|l| l.strip_suffix(&format!(" {SHARED}")))
        {
            *bans.entry(ip.to_owned()).or_default() += 1;
        }
    }
    for t in &targets {
        assert_eq!(bans.get(t), Some(&1), "{t} banned {:?} times", bans.get(t));
    }
    assert!(
        fleet.hosts[0]
            .banned(SHARED)
            .iter()
            .all(|b| !b.starts_with("45.156.")),
        "for B only"
    );
}

/// A flood of bans from A: its circuit breaker opens after `PER_MINUTE`.
async fn a_flood_trips_the_circuit_breaker(fleet: &mut Fleet) {
    let store = fleet.store().await;
    let before = store
        .decision_log()
        .made_from("A", chrono::Utc::now() - chrono::Duration::minutes(1))
        .await
        .unwrap();
    for i in 0..(PER_MINUTE + 4) {
        let out = fleet.hosts[0]
            .aegis()
            .args(["ban", "--jail", "sshd", "--bantime", "600", "--ip"])
            .arg(format!("45.157.0.{}", i + 1))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = fleet.hosts[0].aegis().arg("flush").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let flood = fleet
        .decisions()
        .await
        .into_iter()
        .filter(|d| d.target.to_string().starts_with("45.157.0."))
        .count() as u64;
    assert_eq!(
        flood,
        (u64::from(PER_MINUTE)).saturating_sub(before),
        "the breaker stops the rest"
    );
}

/// `aegis agent status` shows every host's agent, up to date.
async fn every_agent_reports(fleet: &Fleet) {
    let latest = fleet.decisions().await.last().map(|d| d.id).unwrap();
    fleet.wait("every agent reports the latest decision", |f| {
        let out = f.hosts[0]
            .aegis()
            .args(["agent", "status", "--json"])
            .output()
            .unwrap();
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let agents = status["agents"].as_array().cloned().unwrap_or_default();
        agents.len() == 3 && agents.iter().all(|a| a["last"].as_u64() == Some(latest))
    });
    let out = fleet.hosts[0]
        .aegis()
        .args(["agent", "status"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!("latest decision #{latest}")),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_share_bans_through_the_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let url = aegis_testkit::sqlite_url(&store_dir);
    let mut fleet = Fleet::start(&url, StorageUrl::parse(&url).unwrap());
    bans_are_shared_unbanned_allowed_and_expire(&mut fleet).await;

    // The store's directory is gone while A bans (a file stands in its way,
    // so nothing can create it again); once it is back, B and C catch up.
    let away = dir.path().join("store.away");
    std::fs::rename(&store_dir, &away).unwrap();
    std::fs::write(&store_dir, "not a directory").unwrap();
    store_outage_while_a_bans(&mut fleet, || {
        std::fs::remove_file(&store_dir).unwrap();
        std::fs::rename(&away, &store_dir).unwrap();
    });

    a_restarted_agent_applies_nothing_twice(&mut fleet).await;
    a_flood_trips_the_circuit_breaker(&mut fleet).await;
    every_agent_reports(&fleet).await;
}

/// A bans while the store is away: the ban is spooled and nothing reaches B
/// and C; once `restore` brings the store back and A's spool is flushed, B and
/// C hold the ban.
fn store_outage_while_a_bans(fleet: &mut Fleet, restore: impl FnOnce()) {
    let ip = "45.155.208.1";
    fleet.hosts[0].fail_ssh(ip);
    fleet.wait("A bans while the store is away", |f| {
        f.hosts[0].holds("sshd", ip)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(fleet.hosts[1..].iter().all(|h| !h.holds(SHARED, ip)));
    let spooled = std::fs::read_dir(fleet.hosts[0].dir.join("spool"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert!(spooled >= 1, "the ban waits in A's spool");
    restore();
    let out = fleet.hosts[0].aegis().arg("flush").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    fleet.wait("B and C catch up", |f| {
        f.hosts[1..].iter().all(|h| h.holds(SHARED, ip))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_share_bans_through_mongodb_and_catch_up_after_an_outage() {
    let direct = aegis_testkit::mongodb_url("sharing");
    let server: SocketAddr = direct
        .expose()
        .trim_start_matches("mongodb://")
        .split(['/', '?'])
        .next()
        .unwrap()
        .parse()
        .expect("the test server's URI names an address and port");
    let relay = Relay::start(server);
    let relayed =
        direct
            .expose()
            .replacen(&server.to_string(), &format!("127.0.0.1:{}", relay.port), 1);
    let mut fleet = Fleet::start(&relayed, direct.clone());
    bans_are_shared_unbanned_allowed_and_expire(&mut fleet).await;

    // The store goes away while A bans; B and C catch up once it is back.
    relay.cut();
    let ip = "45.155.208.1";
    fleet.hosts[0].fail_ssh(ip);
    fleet.wait("A bans while the store is away", |f| {
        f.hosts[0].holds("sshd", ip)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(fleet.hosts[1..].iter().all(|h| !h.holds(SHARED, ip)));
    relay.restore();
    let out = fleet.hosts[0].aegis().arg("flush").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    fleet.wait("B and C catch up", |f| {
        f.hosts[1..].iter().all(|h| h.holds(SHARED, ip))
    });

    a_restarted_agent_applies_nothing_twice(&mut fleet).await;
    a_flood_trips_the_circuit_breaker(&mut fleet).await;
    every_agent_reports(&fleet).await;
    drop(fleet);
    aegis_core::destroy(&direct).await.unwrap();
}
