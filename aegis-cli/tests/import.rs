//! Importing fail2ban's history: its database (with its JSON quirks) and its logs.

use std::io::Write;

use aegis_testkit::{text, Sandbox};

/// A fail2ban database (schema 4) as fail2ban 1.0 writes it.
fn fail2ban_db(path: &std::path::Path, rows: &[(&str, &str, i64, i64, i64, &str)]) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL,
            bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON);",
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for (jail, ip, time, bantime, bancount, data) in rows {
        tx.execute(
            "INSERT INTO bans VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![jail, ip, time, bantime, bancount, data],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

#[tokio::test]
async fn fail2ban_db_import_is_idempotent_and_reads_the_quirks() {
    let sb = Sandbox::new();
    let db = sb.path().join("fail2ban.sqlite3");
    let t = chrono::Utc::now().timestamp() - 3600;
    fail2ban_db(
        &db,
        &[
            (
                "sshd",
                "203.0.113.7",
                t,
                600,
                1,
                r#"{"matches": [["Nov 27 19:30:01 ", "host sshd[1]: Failed password for root", " from 203.0.113.7"], "Nov 27 19:30:05 host sshd[2]: Failed password"], "failures": 2, "user": "root", "users": "{'root'}"}"#,
            ),
            ("sshd", "2001:db8::5", t + 1, -1, 3, r#"{"failures": 5}"#),
            ("nginx", "::ffff:198.51.100.9", t + 2, 3600, 1, "not json"),
            ("sshd", "not-an-ip", t + 3, 600, 1, "{}"),
            ("sshd", "198.51.100.10", 12, 600, 1, "{}"),
        ],
    );
    let import = || {
        sb.aegis()
            .args(["import", "fail2ban-db", "--host", "web1"])
            .arg(&db)
            .output()
            .unwrap()
    };
    let out = import();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("read 5, imported 3, duplicates 0, skipped 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("invalid IP address") && stdout.contains("not plausible"),
        "{stdout}"
    );
    let again = import();
    assert!(
        String::from_utf8_lossy(&again.stdout).starts_with("read 5, imported 0, duplicates 3"),
        "{}",
        text(&again)
    );

    let events = sb.all_events().await;
    let first = events
        .iter()
        .find(|e| e.event.ip.to_string() == "203.0.113.7")
        .unwrap();
    assert_eq!(
        first.event.matches,
        [
            "Nov 27 19:30:01 host sshd[1]: Failed password for root from 203.0.113.7",
            "Nov 27 19:30:05 host sshd[2]: Failed password"
        ]
    );
    assert_eq!(
        (first.event.failures, first.event.user.as_deref()),
        (Some(2), Some("root"))
    );
    assert_eq!(first.event.host, "web1");
    let v6 = events
        .iter()
        .find(|e| e.event.ip.to_string() == "2001:db8::5")
        .unwrap();
    assert_eq!((v6.event.bantime, v6.event.bancount), (Some(-1), Some(3)));
    assert!(
        events
            .iter()
            .any(|e| e.event.ip.to_string() == "198.51.100.9"),
        "mapped address normalised"
    );
}

/// More rows than one batch: each batch is stored while the next is read, and
/// every one of them counts.
#[tokio::test]
async fn an_import_of_several_batches_counts_them_all() {
    let sb = Sandbox::new();
    let db = sb.path().join("fail2ban.sqlite3");
    let t = chrono::Utc::now().timestamp() - 86_400;
    let ips: Vec<String> = (0..45_000u32)
        .map(|i| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255))
        .collect();
    let rows: Vec<_> = ips
        .iter()
        .zip(0..)
        .map(|(ip, i)| ("sshd", ip.as_str(), t + i, 600, 1, "{}"))
        .collect();
    fail2ban_db(&db, &rows);
    for (imported, duplicates) in [(45_000, 0), (0, 45_000)] {
        let out = sb
            .aegis()
            .args(["import", "fail2ban-db", "--json"])
            .arg(&db)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (&v["read"], &v["imported"], &v["duplicates"]),
            (&45_000.into(), &imported.into(), &duplicates.into()),
            "{v}"
        );
    }
    let store = sb.store().await;
    let all = aegis_core::EventFilter::default();
    assert_eq!(store.count_events(&all).await.unwrap(), 45_000);
}

#[test]
fn fail2ban_db_errors_are_clear() {
    let sb = Sandbox::new();
    let out = sb
        .aegis()
        .args(["import", "fail2ban-db", "/nonexistent/f2b.sqlite3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dbfile"),
        "{}",
        text(&out)
    );
    let junk = sb.path().join("junk.sqlite3");
    std::fs::write(
        &junk,
        "definitely not sqlite, but long enough to look like a header....",
    )
    .unwrap();
    let out = sb
        .aegis()
        .args(["import", "fail2ban-db"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[tokio::test]
async fn log_import_reads_every_format_and_says_what_it_skipped() {
    let sb = Sandbox::new();
    let day = (chrono::Utc::now() - chrono::Duration::days(2)).format("%Y-%m-%d");
    let log = sb.path().join("fail2ban.log");
    let mut body = format!(
        "{day} 09:00:00,000 fail2ban.actions: WARNING [ssh] Ban 203.0.113.80\n\
         {day} 09:00:01,000 fail2ban.actions: WARNING [ssh] 203.0.113.80 already banned\n\
         {day} 09:10:00,000 fail2ban.actions: WARNING [ssh] Unban 203.0.113.80\n\
         {day} 09:20:00,000 fail2ban.actions [7]: NOTICE [sshd] Ban\n"
    )
    .into_bytes();
    body.extend(format!("{day} 09:30:00,000 fail2ban.filter [7]: INFO [sshd] Found ").as_bytes());
    body.extend(b"\xff\xfe not UTF-8\n");
    body.extend(
        format!("{day} 09:40:00,000 fail2ban.actions [7]: NOTICE  [sshd] Ban 203.0.113.81\n")
            .as_bytes(),
    );
    std::fs::write(&log, body).unwrap();
    let out = sb
        .aegis()
        .args(["import", "log", "--timezone", "UTC"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("imported 3"), "{said}");
    assert!(
        said.contains("already banned") && said.contains("fail2ban.log:2"),
        "{said}"
    );
    assert!(
        said.contains("no format fail2ban writes") && said.contains("fail2ban.log:4"),
        "{said}"
    );
    let events = sb.all_events().await;
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn log_import_reads_plain_and_rotated_gzip_logs() {
    let sb = Sandbox::new();
    let day = (chrono::Utc::now() - chrono::Duration::days(2)).format("%Y-%m-%d");
    let plain = sb.path().join("fail2ban.log");
    std::fs::write(
        &plain,
        format!(
            "{day} 10:00:00,001 fail2ban.filter  [99]: INFO    [sshd] Found 203.0.113.7 - {day} 10:00:00\n\
             {day} 10:00:01,002 fail2ban.actions [99]: NOTICE  [sshd] Ban 203.0.113.7\n\
             {day} 10:10:01,003 fail2ban.actions [99]: NOTICE  [sshd] Unban 203.0.113.7\n\
             {day} 11:00:00,000 fail2ban.actions [99]: NOTICE  [sshd] Ban 999.0.0.1\n"
        ),
    )
    .unwrap();
    let rotated = sb.path().join("fail2ban.log.2.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&rotated).unwrap(),
        flate2::Compression::default(),
    );
    write!(
        gz,
        "{day} 08:00:00,000 fail2ban.actions [98]: NOTICE  [nginx-http-auth] Ban 2001:db8::5\n\
         {day} 08:00:05,000 fail2ban.actions [98]: NOTICE  [sshd] Restore Ban 198.51.100.23\n"
    )
    .unwrap();
    gz.finish().unwrap();
    let import = || {
        sb.aegis()
            .args(["import", "log", "--timezone", "UTC", "--json"])
            .arg(&plain)
            .arg(&rotated)
            .output()
            .unwrap()
    };
    let out = import();
    assert!(out.status.success(), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["read"], 5);
    assert_eq!(summary["imported"], 4);
    assert_eq!(
        summary["skipped"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        1
    );
    let again: serde_json::Value = serde_json::from_slice(&import().stdout).unwrap();
    assert_eq!(
        (again["imported"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(4))
    );
    let events = sb.all_events().await;
    let restored = events
        .iter()
        .find(|e| e.event.ip.to_string() == "198.51.100.23")
        .unwrap();
    assert!(restored.event.restored);
    let ban = events
        .iter()
        .find(|e| {
            e.event.ip.to_string() == "203.0.113.7" && e.event.kind == aegis_core::EventKind::Ban
        })
        .unwrap();
    assert_eq!(
        ban.event.time.format("%H:%M:%S%.3f").to_string(),
        "10:00:01.002"
    );
}
