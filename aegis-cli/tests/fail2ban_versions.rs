//! Every fail2ban database a user can have, built with the schema fail2ban
//! wrote for its version (from its `server/database.py`): 0.9's versions 1 and
//! 2, 0.10's 3, 0.11 and 1.x's 4, and a database fail2ban upgraded in place.

use std::path::{Path, PathBuf};

use aegis_testkit::{text, Sandbox};
use rusqlite::types::Value;

const JAILS: &str =
    "CREATE TABLE jails(name TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL DEFAULT 1);
    CREATE INDEX jails_name ON jails(name);";
const LOGS_V1: &str = "CREATE TABLE logs(jail TEXT NOT NULL, path TEXT, firstlinemd5 TEXT,
    lastfilepos INTEGER DEFAULT 0, FOREIGN KEY(jail) REFERENCES jails(name) ON DELETE CASCADE,
    UNIQUE(jail, path));";
const LOGS: &str = "CREATE TABLE logs(jail TEXT NOT NULL, path TEXT, firstlinemd5 TEXT,
    lastfilepos INTEGER DEFAULT 0, FOREIGN KEY(jail) REFERENCES jails(name) ON DELETE CASCADE,
    UNIQUE(jail, path), UNIQUE(jail, path, firstlinemd5));
    CREATE INDEX logs_path ON logs(path); CREATE INDEX logs_jail_path ON logs(jail, path);";
/// Before version 3: no bantime, no bancount.
const BANS_V2: &str = "CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL,
    data JSON, FOREIGN KEY(jail) REFERENCES jails(name));
    CREATE INDEX bans_jail_timeofban_ip ON bans(jail, timeofban);
    CREATE INDEX bans_jail_ip ON bans(jail, ip); CREATE INDEX bans_ip ON bans(ip);";
const BANS: &str = "CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL,
    bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON,
    FOREIGN KEY(jail) REFERENCES jails(name));
    CREATE INDEX bans_jail_timeofban_ip ON bans(jail, timeofban);
    CREATE INDEX bans_jail_ip ON bans(jail, ip); CREATE INDEX bans_ip ON bans(ip);";
const BIPS: &str = "CREATE TABLE bips(ip TEXT NOT NULL, jail TEXT NOT NULL,
    timeofban INTEGER NOT NULL, bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1,
    data JSON, PRIMARY KEY(ip, jail), FOREIGN KEY(jail) REFERENCES jails(name));
    CREATE INDEX bips_timeofban ON bips(timeofban); CREATE INDEX bips_ip ON bips(ip);";

/// A database of `version` (None: no version row) with `schema` and `rows` of
/// its `bans` columns.
fn database(
    dir: &Path,
    name: &str,
    version: Option<i64>,
    schema: &[&str],
    rows: &[Vec<Value>],
) -> PathBuf {
    let path = dir.join(name);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE fail2banDb(version INTEGER);")
        .unwrap();
    if let Some(v) = version {
        conn.execute("INSERT INTO fail2banDb VALUES (?1)", [v])
            .unwrap();
    }
    for part in schema {
        conn.execute_batch(part).unwrap();
    }
    for row in rows {
        // fail2ban records a jail before its bans (a foreign key).
        conn.execute("INSERT OR IGNORE INTO jails(name) VALUES (?1)", [&row[0]])
            .unwrap();
        let marks = vec!["?"; row.len()].join(", ");
        conn.execute(
            &format!("INSERT INTO bans VALUES ({marks})"),
            rusqlite::params_from_iter(row.iter()),
        )
        .unwrap();
    }
    path
}

fn txt(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn import(sb: &Sandbox, db: &Path) -> (std::process::Output, serde_json::Value) {
    let out = sb
        .aegis()
        .args(["import", "fail2ban-db", "--json"])
        .arg(db)
        .output()
        .unwrap();
    let summary = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out, summary)
}

#[tokio::test]
async fn every_schema_version_is_read_exactly_and_once() {
    let sb = Sandbox::new();
    // An odd second and a half: fail2ban's int(round()) makes it the even second after.
    let t = (chrono::Utc::now().timestamp() - 2 * 86_400) | 1;
    let data = |user: &str| Value::Text(format!(r#"{{"failures": 4, "user": "{user}"}}"#));
    let old = |jail: &str, ip: &str, time: Value| vec![txt(jail), txt(ip), time, data("root")];
    let new = |jail: &str, ip: &str, time: i64, bantime: i64, bancount: i64| {
        vec![
            txt(jail),
            txt(ip),
            time.into(),
            bantime.into(),
            bancount.into(),
            data("admin"),
        ]
    };
    let float = |s: f64| Value::Real(s);
    let dir = sb.path();
    let v1 = database(
        dir,
        "v1.sqlite3",
        Some(1),
        &[JAILS, LOGS_V1, BANS_V2],
        &[
            old("sshd", "198.51.100.1", float(t as f64 + 0.5)),
            old("nginx http-auth", "198.51.100.2", (t + 10).into()),
        ],
    );
    let v2 = database(
        dir,
        "v2.sqlite3",
        Some(2),
        &[JAILS, LOGS, BANS_V2],
        &[old("jail.d/x:[1]", "2001:db8::2", float(t as f64 + 20.25))],
    );
    let v3 = database(
        dir,
        "v3.sqlite3",
        Some(3),
        &[JAILS, LOGS, BANS],
        &[new("sshd", "198.51.100.3", t + 30, 3600, 2)],
    );
    let v4 = database(
        dir,
        "v4.sqlite3",
        Some(4),
        &[JAILS, LOGS, BANS, BIPS],
        &[
            // The ban of v1's first row, as a newer fail2ban stored it.
            new("sshd", "198.51.100.1", t + 1, 600, 1),
            new("recidive", "198.51.100.4", t + 40, -1, 5),
        ],
    );
    // Upgraded in place from version 2: bantime -2 and bancount 1, floats kept.
    let upgraded = database(
        dir,
        "upgraded.sqlite3",
        Some(4),
        &[JAILS, LOGS, BANS, BIPS],
        &[vec![
            txt("postfix sasl"),
            txt("198.51.100.5"),
            float(t as f64 + 50.75),
            (-2).into(),
            1.into(),
            data("mail"),
        ]],
    );
    let unversioned = database(
        dir,
        "unversioned.sqlite3",
        None,
        &[JAILS, LOGS, BANS_V2],
        &[old("sshd", "198.51.100.6", (t + 60).into())],
    );
    for (db, read, imported, duplicates) in [
        (&v1, 2, 2, 0),
        (&v2, 1, 1, 0),
        (&v3, 1, 1, 0),
        (&v4, 2, 1, 1), // v1's ban again: one id, stored once
        (&upgraded, 1, 1, 0),
        (&unversioned, 1, 1, 0),
    ] {
        let (out, s) = import(&sb, db);
        assert!(out.status.success(), "{}: {}", db.display(), text(&out));
        assert_eq!(
            (
                s["read"].as_u64(),
                s["imported"].as_u64(),
                s["duplicates"].as_u64()
            ),
            (Some(read), Some(imported), Some(duplicates)),
            "{}: {s}",
            db.display()
        );
        let (_, again) = import(&sb, db);
        assert_eq!(
            again["duplicates"].as_u64(),
            Some(read),
            "{} twice: {again}",
            db.display()
        );
    }
    let events = sb.all_events().await;
    assert_eq!(events.len(), 7);
    let of = |ip: &str| {
        &events
            .iter()
            .find(|e| e.event.ip.to_string() == ip)
            .unwrap()
            .event
    };
    let first = of("198.51.100.1");
    assert_eq!(
        (first.bantime, first.bancount),
        (None, None),
        "version 1 knew neither"
    );
    assert_eq!(of("198.51.100.2").jail, "nginx http-auth");
    assert_eq!(of("2001:db8::2").jail, "jail.d/x:[1]");
    assert_eq!(
        of("2001:db8::2").time.timestamp_millis(),
        (t + 20) * 1000 + 250
    );
    assert_eq!(
        (of("198.51.100.3").bantime, of("198.51.100.3").bancount),
        (Some(3600), Some(2))
    );
    assert_eq!(of("198.51.100.4").bantime, Some(-1));
    let upgraded_row = of("198.51.100.5");
    assert_eq!(
        (upgraded_row.bantime, upgraded_row.bancount),
        (None, None),
        "-2 is unknown"
    );
    assert_eq!(upgraded_row.user.as_deref(), Some("mail"));
}

#[test]
fn files_that_are_not_readable_databases_say_what_to_do() {
    let sb = Sandbox::new();
    let dir = sb.path();
    let future = database(dir, "v5.sqlite3", Some(5), &[JAILS, BANS, BIPS], &[]);
    let other = dir.join("other.sqlite3");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t(x);")
        .unwrap();
    let odd = dir.join("odd.sqlite3");
    rusqlite::Connection::open(&odd)
        .unwrap()
        .execute_batch("CREATE TABLE bans(jail TEXT, address TEXT);")
        .unwrap();
    let junk = dir.join("junk.sqlite3");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    for (db, says) in [
        (
            &future,
            "is fail2ban database version 5; this Aegis reads versions 1 to 4",
        ),
        (&other, "without fail2ban's `bans` table"),
        (&odd, "no `ip` column"),
        (&junk, "is not an SQLite database"),
    ] {
        let (out, _) = import(&sb, db);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: {}",
            db.display(),
            text(&out)
        );
        assert!(
            stderr.contains(says) && stderr.contains(&*db.display().to_string()),
            "{stderr}"
        );
        assert!(
            !stderr.contains("SELECT"),
            "no SQL reaches the user: {stderr}"
        );
    }
}
