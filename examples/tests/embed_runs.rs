//! The example must keep building and working: run it and check what it prints.

use std::process::Command;

#[test]
fn embed_example_records_and_reports() {
    let out = Command::new(env!("CARGO_BIN_EXE_embed")).output().unwrap();
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
fn embed_example_works_on_a_file_store() {
    let dir = std::env::temp_dir().join(format!("aegis-embed-{}", std::process::id()));
    let url = format!("sqlite://{}/store.db", dir.display());
    let out = Command::new(env!("CARGO_BIN_EXE_embed"))
        .arg(&url)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_embed"))
        .arg("/not/a/url")
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
