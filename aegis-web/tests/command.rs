//! The `aegis-web` command: safe binding, configuration errors, password
//! hashing and the demo, with their exit codes.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn aegis_web(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aegis-web"));
    cmd.arg("--config").arg(config).args(args);
    cmd.env_remove("AEGIS_STORAGE_URL")
        .env_remove("AEGIS_WEB_BIND");
    cmd
}

fn config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("aegis.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn refuses_to_serve_beyond_loopback_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let out = aegis_web(
        &cfg,
        &["--storage", "sqlite::memory:", "--bind", "0.0.0.0:0"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("refusing to serve 0.0.0.0:0 without authentication"),
        "{err}"
    );
    assert!(err.contains("aegis-web hash-password") && err.contains("--allow-unauthenticated"));

    let out = aegis_web(
        &cfg,
        &["--storage", "sqlite::memory:", "--bind", "localhost"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("expected address:port"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn configuration_mistakes_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[web]\npasword_hash = \"x\"\n");
    let out = aegis_web(&cfg, &["--storage", "sqlite::memory:"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("pasword_hash"), "{}", stderr(&out));

    let cfg = config(dir.path(), "[web]\ntoken = \"short\"\n");
    let out = aegis_web(&cfg, &["--storage", "sqlite::memory:"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("at least 16"), "{}", stderr(&out));
}

#[test]
fn hash_password_prints_an_argon2_hash_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let mut child = aegis_web(&cfg, &["hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let settings = aegis_core::WebSettings {
        user: Some("admin".into()),
        password_hash: Some(hash.into()),
        ..Default::default()
    };
    assert!(aegis_web::Auth::from_settings(&settings)
        .unwrap()
        .is_configured());

    let mut child = aegis_web(&cfg, &["hash-password"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("at least 8"));
}

#[test]
fn demo_fills_an_empty_store_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let db = dir.path().join("demo.db");
    let mut child = aegis_web(
        &cfg,
        &[
            "--demo",
            "--bind",
            "127.0.0.1:0",
            "--storage",
            &format!("sqlite://{}", db.display()),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let html = fetch(&url);
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(err.contains("generated demo events"), "{err}");
    assert!(
        html.contains("class=\"demo-banner\""),
        "the page says it is demo data"
    );
    assert!(html.contains(".demo.invalid"));
}

fn fetch(url: &str) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}
