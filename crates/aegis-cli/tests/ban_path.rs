//! The ban path as fail2ban drives it: the real binary, a real store, a real spool.

mod common;

use std::time::{Duration, Instant};

use aegis_core::EventKind;
use common::{text, Sandbox};

#[tokio::test]
async fn records_every_tag() {
    let sb = Sandbox::new();
    let out = sb
        .aegis()
        .args([
            "ban",
            "--ip",
            "2001:db8::5",
            "--jail",
            "sshd",
            "--protocol",
            "tcp",
            "--port",
            "ssh",
        ])
        .args([
            "--failures",
            "3",
            "--time",
            "1795807795.0",
            "--bantime",
            "600",
            "--bancount",
            "2",
        ])
        .args([
            "--restored",
            "0",
            "--user",
            "admin",
            "--matches",
            "line one\nline two",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "the ban path is silent: {}",
        text(&out)
    );
    let events = sb.all_events().await;
    assert_eq!(events.len(), 1);
    let e = &events[0].event;
    assert_eq!(e.ip.to_string(), "2001:db8::5");
    assert_eq!((e.jail.as_str(), e.host.as_str()), ("sshd", "test-host"));
    assert_eq!(
        (e.protocol.as_deref(), e.port.as_deref()),
        (Some("tcp"), Some("ssh"))
    );
    assert_eq!(
        (e.failures, e.bantime, e.bancount),
        (Some(3), Some(600), Some(2))
    );
    assert_eq!(e.time.timestamp(), 1_795_807_795);
    assert_eq!(e.matches, ["line one", "line two"]);
    assert_eq!(e.user.as_deref(), Some("admin"));
}

#[tokio::test]
async fn retried_and_restored_calls() {
    let sb = Sandbox::new();
    let ban = |restored: &str| {
        sb.aegis()
            .args([
                "ban",
                "--ip",
                "203.0.113.7",
                "--jail",
                "sshd",
                "--time",
                "1795807795.0",
            ])
            .args(["--restored", restored, "--port", "<port>", "--user", ""])
            .output()
            .unwrap()
    };
    for _ in 0..2 {
        assert!(ban("0").status.success());
    }
    // The restore after a restart carries fail2ban's integer time of the same ban.
    let restored = sb
        .aegis()
        .args([
            "ban",
            "--ip",
            "203.0.113.8",
            "--jail",
            "sshd",
            "--time",
            "1795807000",
            "--restored",
            "1",
        ])
        .output()
        .unwrap();
    assert!(restored.status.success(), "{}", text(&restored));
    let events = sb.all_events().await;
    assert_eq!(events.len(), 2, "a retried call is stored once");
    let first = events
        .iter()
        .find(|e| e.event.ip.to_string() == "203.0.113.7")
        .unwrap();
    assert_eq!(
        (first.event.port.as_ref(), first.event.user.as_ref()),
        (None, None),
        "literal and empty tags are absent"
    );
    let store = sb.store().await;
    let q = aegis_core::StatsQuery::range(
        chrono::DateTime::from_timestamp(1_795_800_000, 0).unwrap(),
        chrono::DateTime::from_timestamp(1_795_900_000, 0).unwrap(),
    );
    assert_eq!(
        store.summary(&q).await.unwrap().bans,
        1,
        "restored bans are not new bans"
    );
}

#[tokio::test]
async fn positional_form_and_unban() {
    let sb = Sandbox::new();
    let out = sb
        .aegis()
        .args(["ban", "198.51.100.4", "tcp", "22", "5", "1795807795.25"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = sb
        .aegis()
        .args(["unban", "198.51.100.4", "tcp", "22", "5", "1795808395"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let events = sb.all_events().await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event.kind, EventKind::Unban);
    assert_eq!(events[1].event.failures, Some(5));
    assert_eq!(events[1].event.port.as_deref(), Some("22"));
}

/// Bad input: a clear message and a documented exit code, or safe storage; never a panic.
#[tokio::test]
async fn bad_inputs_table() {
    let sb = Sandbox::new();
    let huge = "A".repeat(100 * 1024); // near the 128 KiB limit of one argument
    let binary = "ok\u{1}\u{7f}\u{1b}[31mred\u{8}\r".to_owned(); // argv cannot carry NUL
    let db_url = sb.db_url();
    let cases: Vec<(&str, Vec<&str>, i32, &str)> = vec![
        (
            &db_url,
            vec!["ban", "--ip", "999.1.1.1"],
            2,
            "invalid IP address",
        ),
        (
            &db_url,
            vec!["ban", "--ip", "203.0.113.7/24"],
            2,
            "invalid IP address",
        ),
        (&db_url, vec!["ban", "--ip", "<ip>"], 2, "no address"),
        (&db_url, vec!["ban"], 2, "no address"),
        (&db_url, vec!["ban", "--ip", "0.0.0.0"], 2, "unspecified"),
        (
            &db_url,
            vec!["ban", "--ip", "203.0.113.7", "--time", "soon"],
            2,
            "invalid time",
        ),
        (
            &db_url,
            vec!["ban", "--ip", "203.0.113.7", "--time", "4102444800"],
            2,
            "not plausible",
        ),
        (
            &db_url,
            vec!["ban", "--ip", "203.0.113.7", "--time", "12"],
            2,
            "not plausible",
        ),
        (
            &db_url,
            vec!["ban", "--ip", "203.0.113.7", "--failures", "-1"],
            2,
            "--failures",
        ),
        (
            &db_url,
            vec!["ban", "--ip", "203.0.113.7", "--failures", "lots"],
            2,
            "--failures",
        ),
        (
            &db_url,
            vec!["ban", "--ip", "203.0.113.7", "--bantime", "-7"],
            2,
            "--bantime",
        ),
        (
            &db_url,
            vec!["ban", "--ip", "203.0.113.7", "--restored", "maybe"],
            2,
            "--restored",
        ),
        (
            &db_url,
            vec!["ban", "--ip", "203.0.113.7", "--jail", "ss\nhd"],
            2,
            "control characters",
        ),
        (
            &db_url,
            vec!["ban", "--ip", "203.0.113.7", "--host", "web\t1"],
            2,
            "control characters",
        ),
        (
            &db_url,
            vec!["ban", "--ip", "203.0.113.7", "--port", &huge],
            2,
            "at most",
        ),
        (
            &db_url,
            vec!["ban", "--ip", "203.0.113.7", "--bogus", "1"],
            2,
            "--bogus",
        ),
        (
            &db_url,
            vec!["ban", "1.2.3.4", "tcp", "22", "5", "1795807795", "extra"],
            2,
            "no more were expected",
        ),
        (
            "postgres://db/aegis",
            vec!["ban", "--ip", "203.0.113.7"],
            3,
            "sqlite::memory:",
        ),
        ("/var/lib/aegis.db", vec!["stats"], 3, "accepted forms"),
        (
            &db_url,
            vec!["stats", "--since", "yesterday-ish"],
            2,
            "invalid time",
        ),
        (&db_url, vec!["top", "--by", "planet"], 2, "invalid value"),
        (
            &db_url,
            vec!["events", "--network", "10.0.0.0/33"],
            2,
            "CIDR",
        ),
        (
            &db_url,
            vec!["events", "--country", "Germany"],
            2,
            "two-letter",
        ),
        (
            &db_url,
            vec!["prune", "--older-than", "forever"],
            2,
            "invalid age",
        ),
        (&db_url, vec!["ip", "localhost"], 2, "invalid IP address"),
        // Stored safely: markup and shell metacharacters are text; matches are bounded.
        (
            &db_url,
            vec![
                "ban",
                "--ip",
                "203.0.113.7",
                "--jail",
                "<script>alert(1)</script>",
                "--host",
                "$(reboot);`id`",
            ],
            0,
            "",
        ),
        (
            &db_url,
            vec!["ban", "--ip", "203.0.113.8", "--matches", &huge],
            0,
            "",
        ),
        (
            &db_url,
            vec![
                "ban",
                "--ip",
                "203.0.113.9",
                "--matches",
                &binary,
                "--user",
                "'; DROP TABLE events; --",
            ],
            0,
            "",
        ),
    ];
    for (url, args, code, message) in &cases {
        let out = sb.aegis_with(url).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {}", text(&out));
        assert!(
            stderr.contains(message),
            "{args:?}: wanted {message:?} in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let events = sb.all_events().await;
    assert_eq!(events.len(), 3);
    let xss = events
        .iter()
        .find(|e| e.event.ip.to_string() == "203.0.113.7")
        .unwrap();
    assert_eq!(xss.event.jail, "<script>alert(1)</script>");
    assert_eq!(xss.event.host, "$(reboot);`id`");
    let big = events
        .iter()
        .find(|e| e.event.ip.to_string() == "203.0.113.8")
        .unwrap();
    assert_eq!(big.event.matches.len(), 1);
    assert!(
        big.event.matches[0].len() <= aegis_core::MAX_MATCH_BYTES + aegis_core::TRUNCATED.len()
    );
    let bin = events
        .iter()
        .find(|e| e.event.ip.to_string() == "203.0.113.9")
        .unwrap();
    assert!(!bin.event.matches[0].chars().any(char::is_control));
    assert!(
        sb.spooled() == 0 && !sb.failure_note().exists(),
        "the writers stored every event"
    );
}

/// With the store unavailable every call still returns at once, its event
/// spooled; the next call reports why the writers could not store them; once the
/// store is back, `aegis flush` stores exactly what was spooled.
#[tokio::test]
async fn store_down_spools_everything_and_flush_restores_it() {
    let _alone = timing_sensitive().await;
    let sb = Sandbox::new();
    // A file where the database's directory should be: the store cannot be opened.
    let blocker = sb.path().join("store");
    std::fs::write(&blocker, "not a directory").unwrap();
    let ban = |i: u32| {
        sb.aegis()
            .args(["ban", "--ip", &format!("10.0.{}.{}", i / 250, i % 250 + 1)])
            .args([
                "--jail",
                "sshd",
                "--time",
                &format!("{}", 1_795_807_795 + i),
            ])
            .output()
            .unwrap()
    };
    let mut slowest = Duration::ZERO;
    for i in 0..1000u32 {
        let started = Instant::now();
        let out = ban(i);
        slowest = slowest.max(started.elapsed());
        assert!(out.status.success(), "{}", text(&out));
    }
    assert!(
        slowest < Duration::from_secs(1),
        "slowest call took {slowest:?}"
    );
    assert_eq!(sb.spooled(), 1000);
    // A retried call is spooled once, and says why events are waiting.
    let again = ban(0);
    assert!(again.status.success(), "{}", text(&again));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("events wait in")
            && stderr.contains("cannot create")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert_eq!(sb.spooled(), 1000);
    // `aegis flush` says why, too, and keeps everything.
    let out = sb.aegis().arg("flush").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot create"),
        "{}",
        text(&out)
    );
    assert_eq!(sb.spooled(), 1000);

    std::fs::remove_file(&blocker).unwrap();
    let out = sb.aegis().arg("flush").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sb.spooled(), 0);
    assert_eq!(sb.all_events().await.len(), 1000);
    assert!(!sb.failure_note().exists());
    let out = sb.aegis().arg("flush").output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("0 stored"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn a_corrupt_database_spools_and_the_next_call_after_repair_stores_all() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("store")).unwrap();
    let db = sb.path().join("store/aegis.db");
    std::fs::write(&db, vec![0x42u8; 8192]).unwrap();
    let ban = |ip: &str| {
        let out = sb
            .aegis()
            .args(["ban", "--ip", ip, "--jail", "sshd"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_eq!(ban("192.0.2.1"), "");
    assert_eq!(sb.spooled(), 1);
    sb.wait_for_failure_note();
    std::fs::remove_file(&db).unwrap();
    let warning = ban("192.0.2.2");
    assert!(
        warning.contains("events wait in") && warning.contains("not a database"),
        "{warning}"
    );
    assert_eq!(sb.all_events().await.len(), 2, "the writer stored both");
    assert!(!sb.failure_note().exists(), "a success clears the failure");
}

/// The system log hears once when the store stops taking events, and once
/// when it takes them again (fail2ban shows an action's stderr only at debug level).
#[tokio::test]
async fn the_system_log_hears_of_a_store_down_and_back() {
    let sb = Sandbox::new();
    let socket = sb.path().join("log.sock");
    let log = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    log.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let next_line = || {
        let mut buf = [0u8; 4096];
        let n = log.recv(&mut buf).expect("a line in the system log");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ban = |ip: &str| {
        let out = sb
            .aegis()
            .env("AEGIS_SYSLOG_SOCKET", &socket)
            .args(["ban", "--ip", ip, "--jail", "sshd"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    };
    let blocker = sb.path().join("store");
    std::fs::write(&blocker, "not a directory").unwrap();
    ban("192.0.2.1");
    let down = next_line();
    assert!(
        down.starts_with("<28>aegis[") && down.contains("events wait in"),
        "{down}"
    );
    assert!(down.contains("cannot create"), "{down}");
    sb.wait_for_failure_note();

    std::fs::remove_file(&blocker).unwrap();
    ban("192.0.2.2");
    let back = next_line();
    assert!(
        back.starts_with("<29>aegis[") && back.contains("the store takes events again; 2 waiting"),
        "{back}"
    );
    assert_eq!(sb.all_events().await.len(), 2);
}

#[tokio::test]
async fn an_unwritable_spool_stores_directly() {
    let sb = Sandbox::new();
    std::fs::write(sb.spool(), "a file where the spool should be").unwrap();
    let out = sb
        .aegis()
        .args(["ban", "--ip", "192.0.2.1", "--jail", "sshd"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stored directly"),
        "{}",
        text(&out)
    );
    let store = sb.store().await;
    let page = aegis_core::Page::default();
    let events = store
        .events(&aegis_core::EventFilter::default(), page)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn when_even_the_spool_fails_the_exit_code_says_so() {
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("store"), "x").unwrap();
    std::fs::write(sb.spool(), "x").unwrap();
    let out = sb
        .aegis()
        .args(["ban", "--ip", "192.0.2.1", "--jail", "sshd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("event lost"),
        "{}",
        text(&out)
    );
}

/// Two hundred calls at once: each returns at once, the writers take turns on
/// the spool, and every event is stored exactly once without any flush.
#[tokio::test]
async fn two_hundred_concurrent_processes() {
    let _alone = timing_sensitive().await;
    let sb = Sandbox::new();
    let children: Vec<_> = (0..200)
        .map(|i| {
            sb.aegis()
                .args([
                    "ban",
                    "--ip",
                    &format!("172.16.{}.{}", i / 200, i % 200 + 1),
                    "--jail",
                    "sshd",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            text(&out)
        );
    }
    let events = sb.all_events().await;
    assert_eq!(events.len(), 200);
    let ips: std::collections::HashSet<_> = events.iter().map(|e| e.event.ip).collect();
    assert_eq!(ips.len(), 200);
    assert!(!sb.failure_note().exists());
}

/// A MongoDB test server of this test's own, on a port it can stop and restart.
struct MongoServer {
    child: Option<std::process::Child>,
}

impl MongoServer {
    fn start_on(port: u16) -> Self {
        use std::io::{BufRead, BufReader};
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/mongodb-server/start.mjs");
        assert!(
            script.exists() && script.with_file_name("node_modules").exists(),
            "the MongoDB test server is not installed: run tests/mongodb-server/install"
        );
        let mut child = std::process::Command::new("node")
            .arg(&script)
            .arg(port.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("node runs the MongoDB test server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("READY "), "test server said {line:?}");
        MongoServer { child: Some(child) }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MongoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn mongodb_down_spools_everything_and_flush_restores_it() {
    let _alone = timing_sensitive().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = MongoServer::start_on(port);
    server.stop();
    let url = format!("mongodb://127.0.0.1:{port}/aegis");
    // On memory: concurrent fsyncs on a virtual disk alone can take longer than
    // the bound (the embedded store-down test above times the spool on disk).
    let sb = Sandbox::in_memory();
    let slowest = std::sync::Mutex::new(Duration::ZERO);
    std::thread::scope(|scope| {
        for worker in 0..4u32 {
            let (sb, slowest, url) = (&sb, &slowest, &url);
            scope.spawn(move || {
                for i in (worker..1000).step_by(4) {
                    let started = Instant::now();
                    let out = sb
                        .aegis_with(url)
                        .args(["ban", "--ip", &format!("10.1.{}.{}", i / 250, i % 250 + 1)])
                        .args([
                            "--jail",
                            "sshd",
                            "--time",
                            &format!("{}", 1_795_807_795 + i),
                        ])
                        .output()
                        .unwrap();
                    let took = started.elapsed();
                    assert!(out.status.success(), "{}", text(&out));
                    let mut s = slowest.lock().unwrap();
                    *s = (*s).max(took);
                }
            });
        }
    });
    let slowest = *slowest.lock().unwrap();
    assert!(
        slowest < Duration::from_secs(1),
        "slowest call took {slowest:?}"
    );
    assert_eq!(sb.spooled(), 1000);
    // Waits for the writer that holds the spool, then fails as it did.
    let out = sb.aegis_with(&url).arg("flush").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(sb.spooled(), 1000);

    let _server = MongoServer::start_on(port);
    let out = sb.aegis_with(&url).arg("flush").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sb.spooled(), 0);
    let store = aegis_core::connect(&aegis_core::StorageUrl::parse(&url).unwrap())
        .await
        .unwrap();
    let all = aegis_core::EventFilter::default();
    assert_eq!(store.count_events(&all).await.unwrap(), 1000);
    // Replaying a ban (a retried action) stores nothing new.
    let out = sb
        .aegis_with(&url)
        .args([
            "ban",
            "--ip",
            "10.1.0.1",
            "--jail",
            "sshd",
            "--time",
            "1795807795",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    sb.settle();
    assert_eq!(store.count_events(&all).await.unwrap(), 1000);
}

/// Tests that time calls, or load the machine with hundreds of processes, run
/// one at a time: on two cores they would otherwise time each other.
async fn timing_sensitive() -> tokio::sync::MutexGuard<'static, ()> {
    static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ALONE.lock().await
}
