//! The ban path when the store is down, corrupt or unwritable, or the spool is:
//! the real binary keeps every event and says why.

use std::time::{Duration, Instant};

use aegis_testkit::{text, Sandbox};

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
/// A MongoDB test server of this test's own, on a port it can stop and restart.
struct MongoServer {
    child: Option<std::process::Child>,
}

impl MongoServer {
    fn start_on(port: u16) -> Self {
        use std::io::{BufRead, BufReader};
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mongodb-server/start.mjs");
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
