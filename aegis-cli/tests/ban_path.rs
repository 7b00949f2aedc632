//! The ban path as fail2ban drives it: the real binary, a real store, a real spool.

use aegis_core::EventKind;
use aegis_testkit::{text, Sandbox};

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
    // What makes an event (the address, the jail) and what is the operator's
    // own (the host, flags, URLs, query arguments): refused with exit 2 or 3.
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
    assert!(big.event.matches[0].len() <= aegis_core::MAX_MATCH_BYTES + "…[truncated]".len());
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
/// Values an attacker chooses (a user name, matched lines) and values a broken
/// filter or database passes: every ban with a valid address and jail is
/// stored, cleaned, and the call says what it changed.
#[tokio::test]
async fn hostile_values_never_cost_a_ban() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    type Check = fn(&aegis_core::BanEvent) -> bool;
    let sb = Sandbox::new();
    let huge = "P".repeat(100 * 1024);
    let not_utf8 = OsString::from_vec(b"r\xffoot".to_vec());
    let cases: Vec<(&str, Vec<OsString>, &str, Check)> = vec![
        (
            "198.51.100.1",
            args(&["--user", "admin\tx"]),
            "user: control characters",
            |e| e.user.as_deref() == Some("admin\u{FFFD}x"),
        ),
        (
            "198.51.100.2",
            args(&["--user", &"u".repeat(300)]),
            "user: 300 bytes cut",
            |e| {
                e.user
                    .as_ref()
                    .is_some_and(|u| u.len() <= 256 && u.ends_with("…[truncated]"))
            },
        ),
        (
            "198.51.100.3",
            vec!["--user".into(), not_utf8.clone()],
            "not UTF-8",
            |e| e.user.as_deref() == Some("r\u{FFFD}oot"),
        ),
        (
            "198.51.100.4",
            args(&["--user", "-rf /", "--matches", "--ip 192.0.2.1"]),
            "",
            |e| e.user.as_deref() == Some("-rf /") && e.matches == ["--ip 192.0.2.1"],
        ),
        ("198.51.100.5", args(&["--port", &huge]), "port:", |e| {
            e.port.as_ref().is_some_and(|p| p.len() <= 128)
        }),
        (
            "198.51.100.6",
            args(&["--time", "soon"]),
            "time received",
            |e| (chrono::Utc::now() - e.time).num_minutes() < 5,
        ),
        (
            "198.51.100.7",
            args(&["--time", "4102444800"]),
            "not plausible",
            |e| (chrono::Utc::now() - e.time).num_minutes() < 5,
        ),
        (
            "198.51.100.8",
            args(&["--failures", "-1", "--bancount", "many"]),
            "--bancount",
            |e| e.failures.is_none() && e.bancount.is_none(),
        ),
        (
            "198.51.100.9",
            args(&["--bantime", "-7"]),
            "bantime -7 dropped",
            |e| e.bantime.is_none(),
        ),
        (
            "198.51.100.10",
            args(&["--bantime", "forever"]),
            "--bantime",
            |e| e.bantime.is_none(),
        ),
        (
            "198.51.100.11",
            args(&["--restored", "maybe"]),
            "--restored",
            |e| !e.restored,
        ),
        (
            "198.51.100.12",
            args(&["--protocol", "tcp\r\nX-Injected: 1"]),
            "protocol",
            |e| {
                e.protocol
                    .as_ref()
                    .is_some_and(|p| !p.chars().any(char::is_control))
            },
        ),
        (
            "198.51.100.13",
            args(&[
                "--user",
                "\u{1b}[31m=cmd|' /C calc'!A0",
                "--matches",
                "a\u{7}\nb\u{8}",
                "--protocol",
                &"t".repeat(40),
                "--port",
                "22\u{1}",
                "--failures",
                "1e9",
                "--bantime",
                "-2",
                "--bancount",
                "-1",
                "--time",
                "12",
                "--restored",
                "2",
            ]),
            "user: control characters",
            |e| {
                e.user
                    .as_ref()
                    .is_some_and(|u| !u.chars().any(char::is_control))
                    && e.matches.iter().all(|l| !l.chars().any(char::is_control))
                    && e.bantime.is_none()
            },
        ),
    ];
    for (ip, extra, note, _) in &cases {
        let mut cmd = sb.aegis();
        cmd.args(["ban", "--jail", "nginx-auth", "--ip", ip])
            .args(extra);
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{ip} {extra:?}: {}", text(&out));
        assert!(stderr.contains(note), "{ip}: wanted {note:?} in {stderr}");
    }
    let events = sb.all_events().await;
    for (ip, extra, _, check) in &cases {
        let stored = events
            .iter()
            .find(|e| e.event.ip.to_string() == *ip)
            .unwrap_or_else(|| panic!("{ip} {extra:?} was not stored"));
        assert!(check(&stored.event), "{ip}: {:?}", stored.event);
    }

    // What argv cannot carry (NUL, a MiB), and a location a bad database gave,
    // arrive through the spool: cleaned on the way to the store, never set aside.
    let spool = sb.spool();
    let mut e = serde_json::to_value(&events[0].event).unwrap();
    e["ip"] = "198.51.100.20".into();
    e["user"] = "ad\u{0}min".into();
    e["matches"] = serde_json::json!(["x".repeat(1 << 20)]);
    e["geo"] = serde_json::json!({"country": "zz", "city": format!("C\u{7}{}", "i".repeat(400)), "latitude": 500.0, "longitude": 1.0});
    std::fs::write(spool.join("hostile.json"), serde_json::to_vec(&e).unwrap()).unwrap();
    std::fs::write(spool.join("garbage.json"), b"{not json").unwrap();
    std::fs::create_dir(spool.join("not-now.json")).unwrap(); // reading it fails, not for good
    let out = sb.aegis().arg("flush").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("cannot be read now"), "{}", text(&out));
    assert!(spool.join("not-now.json").is_dir(), "left in place");
    assert!(
        spool.join("garbage.json.bad").exists(),
        "only the unparsable is set aside"
    );
    std::fs::remove_dir(spool.join("not-now.json")).unwrap();
    let stored = sb
        .store()
        .await
        .ip_history("198.51.100.20".parse().unwrap())
        .await
        .unwrap();
    let stored = &stored[0].event;
    assert_eq!(stored.user.as_deref(), Some("ad\u{FFFD}min"));
    assert!(stored.matches[0].len() <= aegis_core::MAX_MATCH_BYTES + "…[truncated]".len());
    let geo = stored.geo.as_ref().unwrap();
    assert_eq!((geo.country.as_deref(), geo.latitude), (None, None));
    assert!(geo
        .city
        .as_ref()
        .is_some_and(|c| c.len() <= 256 && !c.contains('\u{7}')));
}

fn args(values: &[&str]) -> Vec<std::ffi::OsString> {
    values.iter().map(|v| v.into()).collect()
}

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

/// Tests that time calls, or load the machine with hundreds of processes, run
/// one at a time: on two cores they would otherwise time each other.
async fn timing_sensitive() -> tokio::sync::MutexGuard<'static, ()> {
    static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ALONE.lock().await
}
