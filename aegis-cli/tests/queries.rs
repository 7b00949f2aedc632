//! The query commands on a small known store: tables, JSON and CSV.

use aegis_testkit::{text, Sandbox};

fn seed(sb: &Sandbox) {
    let now = chrono::Utc::now().timestamp();
    for (ip, jail, ago) in [
        ("203.0.113.7", "sshd", 3600),
        ("203.0.113.7", "nginx", 7200),
        ("203.0.113.8", "sshd", 100),
        ("2001:db8::5", "sshd", 86_400 * 3),
        ("198.51.100.1", "sshd", 86_400 * 400),
    ] {
        let out = sb
            .aegis()
            .args([
                "ban",
                "--ip",
                ip,
                "--jail",
                jail,
                "--time",
                &(now - ago).to_string(),
                "--matches",
                "a \"quoted\", line",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    sb.settle();
}

fn json(sb: &Sandbox, args: &[&str]) -> serde_json::Value {
    let out = sb.aegis().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&out)))
}

#[test]
fn stats_top_ip_events_and_prune() {
    let sb = Sandbox::new();
    seed(&sb);
    let stats = json(&sb, &["stats", "--since", "7d", "--json"]);
    assert_eq!(stats["summary"]["bans"], 4);
    assert_eq!(stats["summary"]["unique_ips"], 3);
    assert_eq!(stats["daily"].as_array().unwrap().len(), 8);
    assert_eq!(stats["top_offenders"][0]["ip"], "203.0.113.7");

    let top = json(&sb, &["top", "--by", "jail", "--since", "30d", "--json"]);
    assert_eq!(top[0]["key"], "sshd");
    assert_eq!(top[0]["bans"], 3);
    let all = json(
        &sb,
        &[
            "top", "--by", "ip", "--since", "all", "--limit", "10", "--json",
        ],
    );
    assert_eq!(all.as_array().unwrap().len(), 4);
    let nets = json(&sb, &["top", "--by", "network", "--since", "7d", "--json"]);
    assert_eq!(nets[0]["key"], "203.0.113.0/24");

    let ip = json(&sb, &["ip", "::ffff:203.0.113.7", "--json"]);
    assert_eq!(ip["events"].as_array().unwrap().len(), 2);

    let listed = json(
        &sb,
        &[
            "events",
            "--network",
            "203.0.113.0/24",
            "--jail",
            "sshd",
            "--json",
        ],
    );
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let out = sb
        .aegis()
        .args(["events", "--csv", "--limit", "1"])
        .output()
        .unwrap();
    let mut reader = csv::Reader::from_reader(&out.stdout[..]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][4], "203.0.113.8");
    assert_eq!(
        &rows[0][19], "a \"quoted\", line",
        "CSV quoting round-trips"
    );

    let table = sb.aegis().args(["stats"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("bans 4  unique IPs 3"),
        "{}",
        text(&table)
    );

    let pruned = json(&sb, &["prune", "--older-than", "365d", "--json"]);
    assert_eq!(pruned["removed"], 1);
    assert_eq!(
        json(&sb, &["events", "--json"]).as_array().unwrap().len(),
        4
    );
}

#[test]
fn helpers_print_the_config_and_the_action() {
    let sb = Sandbox::new();
    let out = sb.aegis().args(["config", "example"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("[storage]"));
    let out = sb
        .aegis()
        .args(["fail2ban", "install", "--dry-run", "--dir"])
        .arg(sb.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("actionban = <aegis> ban"));
    assert!(
        !sb.path().join("aegis.conf").exists(),
        "dry run writes nothing"
    );
    let out = sb
        .aegis()
        .args(["fail2ban", "install", "--dir"])
        .arg(sb.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // The sandbox passes --storage, which outranks AEGIS_STORAGE_URL: hand the
    // password-bearing URL over the same way, so that it really is the one shown.
    let out = sb
        .aegis_with("mongodb://u:pw123@db.example/aegis")
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("db.example"), "the URL is shown: {shown}");
    assert!(!shown.contains("pw123"));
}

#[test]
fn stats_since_all_starts_at_the_first_ban_and_fits_a_screen() {
    let sb = Sandbox::new();
    seed(&sb);
    let out = sb
        .aegis()
        .args(["stats", "--since", "all"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("\nmonth "), "{table}");
    let lines = table.lines().count();
    assert!(lines < 40, "{lines} lines:\n{table}");

    let all = json(&sb, &["stats", "--since", "all", "--json"]);
    let days = all["daily"].as_array().unwrap().len();
    assert!(
        (400..=402).contains(&days),
        "{days} days, from the first ban"
    );
    assert_eq!(all["summary"]["bans"], 5);
    assert!(all.get("per").is_none(), "JSON keeps days unless asked");

    let weeks = json(&sb, &["stats", "--since", "all", "--per", "week", "--json"]);
    assert_eq!(weeks["per"], "week");
    let bans = weeks["bans"].as_array().unwrap();
    assert!((57..=59).contains(&bans.len()), "{} weeks", bans.len());
    assert_eq!(
        bans.iter()
            .map(|w| w["bans"].as_u64().unwrap())
            .sum::<u64>(),
        5
    );
}
