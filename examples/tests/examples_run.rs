//! The examples must keep building and working: run them and check what they print.

use std::process::Command;

#[test]
fn record_and_query_records_and_reports() {
    let out = Command::new(env!("CARGO_BIN_EXE_record-and-query"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("bans: 3, unique IPs: 2"), "{stdout}");
    assert!(
        stdout.contains("offender: 203.0.113.7 (2 bans)"),
        "{stdout}"
    );
    assert!(stdout.contains("jail: sshd (3 bans)"), "{stdout}");
}

#[test]
fn the_report_reads_a_store_the_other_example_filled() {
    let dir = tempfile::tempdir().unwrap();
    let url = aegis_testkit::sqlite_url(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_record-and-query"))
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", aegis_testkit::text(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_report"))
        .args([url.as_str(), "Europe/Berlin"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", aegis_testkit::text(&out));
    assert!(
        stdout.contains("last 7 days: 3 bans of 2 addresses"),
        "{stdout}"
    );
    // Seven days of Berlin dates (eight when the week started mid-day), summing to the bans.
    let per_day: Vec<u64> = stdout
        .lines()
        .filter(|l| l.starts_with("20"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!((7..=8).contains(&per_day.len()), "{stdout}");
    assert_eq!(per_day.iter().sum::<u64>(), 3, "{stdout}");

    let bad = Command::new(env!("CARGO_BIN_EXE_record-and-query"))
        .arg("/not/a/url")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let missing = Command::new(env!("CARGO_BIN_EXE_report"))
        .arg(aegis_testkit::sqlite_url(&dir.path().join("none")))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        !dir.path().join("none").exists(),
        "the report created a store"
    );
}
