//! The dashboard in real headless Chromium (Debian's `chromium`, driven by
//! playwright-core from `tests/browser/`): see `tests/browser/check.mjs` for
//! what is checked. Screenshots land in `target/screenshots/`.
//!
//! Needs node, /usr/bin/chromium (or $CHROMIUM) and `npm ci` run in
//! `tests/browser/`; `scripts/install-test-deps` does all three. A missing
//! piece fails the test: it never counts as a pass.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use aegis_core::{parse_ip, BanEvent, EventKind, Geo};
use chrono::{Duration, Utc};

const XSS_IP: &str = "192.0.2.66";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require(what: &str, found: bool, fix: &str) {
    assert!(found, "{what} is missing: {fix}");
}

/// A store like a real one: the demo's ninety days plus an attacker's markup.
async fn fill(db: &Path) {
    let store = aegis_testkit::open_sqlite(db).await;
    let events = aegis_web::demo_events(Utc::now());
    store.record_batch(&events).await.unwrap();
    let payload = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">";
    let mut e = BanEvent::new(
        EventKind::Ban,
        parse_ip(XSS_IP).unwrap(),
        "sshd",
        "web-1.demo.invalid",
        Utc::now() - Duration::minutes(1),
    )
    .unwrap();
    e.matches = vec![payload.into()];
    e.user = Some(payload.into());
    e.geo = Some(Geo {
        country: Some("NL".into()),
        city: Some(payload.into()),
        latitude: Some(52.37),
        longitude: Some(4.9),
        asn: Some(64_500),
        as_org: Some(payload.into()),
    });
    store.record(&e).await.unwrap();
}

/// Chromium and the driver, or a failure that says how to get them.
fn browser() -> (PathBuf, String) {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    require(
        "Chromium",
        Path::new(&chromium).exists(),
        "apt-get install chromium (or set CHROMIUM)",
    );
    require(
        "playwright-core",
        here.join("node_modules/playwright-core").exists(),
        "run `npm ci` in tests/browser",
    );
    (here, chromium)
}

/// Runs `script` (in `tests/browser/`) with `args` in Chromium, prints what it
/// said, and fails with `what` unless it succeeded; returns what it said.
fn node<I: AsRef<std::ffi::OsStr>>(
    (here, chromium): &(PathBuf, String),
    script: &str,
    args: impl IntoIterator<Item = I>,
    what: &str,
) -> String {
    let run = Command::new("node")
        .current_dir(here)
        .arg(script)
        .args(args)
        .env("CHROMIUM", chromium)
        .output()
        .expect("node runs (apt-get install nodejs npm)");
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    println!("{out}");
    assert!(
        run.status.success(),
        "{what}:\n{out}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

/// `aegis-web` on a free port with `config` and the store `db`: the server and its base URL.
fn serve(config: &Path, db: &Path) -> (Killed, String) {
    let mut server = Killed(
        Command::new(aegis_testkit::bin("aegis-web"))
            .args(["--bind", "127.0.0.1:0", "--config"])
            .arg(config)
            .arg("--storage")
            .arg(format!("sqlite://{}", db.display()))
            .env_remove("AEGIS_STORAGE_URL")
            .stdout(Stdio::piped())
            .spawn()
            .expect("aegis-web starts"),
    );
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    (server, base)
}

/// Every kind of page, light and dark, through axe-core: no serious or
/// critical accessibility violation (tests/browser/axe.mjs).
#[tokio::test(flavor = "multi_thread")]
async fn every_page_passes_axe_core() {
    let browser = browser();
    require(
        "axe-core",
        browser.0.join("node_modules/axe-core").exists(),
        "run `npm ci` in tests/browser",
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    fill(&db).await;
    let config = dir.path().join("aegis.toml");
    std::fs::write(&config, "").unwrap();
    let (_server, base) = serve(&config, &db);
    let ip = format!("/ip/{XSS_IP}");
    node(
        &browser,
        "axe.mjs",
        [
            base.as_str(),
            "/",
            "/?range=90d",
            ip.as_str(),
            "/events",
            "/events?jail=sshd&limit=20",
            "/country/NL",
            "/jail/sshd",
            "/host/web-1.demo.invalid",
            "/decisions",
            "/no-such-page",
            "/events?ip=not-an-address",
        ],
        "accessibility violations",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_works_in_chromium() {
    let browser = browser();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    fill(&db).await;
    let config = dir.path().join("aegis.toml");
    std::fs::write(&config, "timezone = \"Europe/Berlin\"\n").unwrap();
    let (_server, base) = serve(&config, &db);

    let screenshots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    node(
        &browser,
        "check.mjs",
        [base.as_ref(), screenshots.as_os_str(), XSS_IP.as_ref()],
        "browser checks failed",
    );
    assert!(screenshots.join("overview.png").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn decisions_are_made_from_the_dashboard_and_not_from_other_sites() {
    let browser = browser();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    fill(&db).await;
    let config = dir.path().join("aegis.toml");
    let password = "correct horse battery";
    std::fs::write(
        &config,
        format!(
            "[web]\nuser = \"alice\"\npassword_hash = \"{}\"\nactions = true\n",
            aegis_web::hash_password(password).unwrap()
        ),
    )
    .unwrap();
    let (_server, base) = serve(&config, &db);
    let target = "45.155.205.7";
    let store = aegis_testkit::open_sqlite(&db).await;
    let mut e = BanEvent::new(
        EventKind::Ban,
        parse_ip(target).unwrap(),
        "sshd",
        "web-1.demo.invalid",
        Utc::now() - Duration::minutes(2),
    )
    .unwrap();
    e.bantime = Some(600);
    store.record(&e).await.unwrap();

    node(
        &browser,
        "decide.mjs",
        [base.as_str(), "alice", password, target],
        "browser checks failed",
    );
    let made = store.decision_log().after(0, 100).await.unwrap();
    let actions: Vec<String> = made
        .iter()
        .map(|d| format!("{} {}", d.action, d.target_text()))
        .collect();
    assert_eq!(
        actions,
        [format!("ban {target}"), format!("unban {target}")],
        "nothing from the other site"
    );
    assert!(made.iter().all(|d| d.origin.to_string() == "alice"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_chart_reads_on_its_own() {
    let browser = browser();
    let world = aegis_testkit::ReportWorld::seeded().await;
    let screenshots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    // Hours for a day, days for a week.
    for (period, out) in [("yesterday", "report-day"), ("last7d", "report-week")] {
        let eml = world.path().join(format!("{out}.eml"));
        let run = world.report(
            "",
            &[
                "--period",
                period,
                "--dry-run",
                "--eml",
                eml.to_str().unwrap(),
            ],
        );
        assert!(run.status.success(), "{}", aegis_testkit::text(&run));
        let raw = std::fs::read(&eml).unwrap();
        let mail = mailparse::parse_mail(&raw).unwrap();
        let mut parts = vec![&mail];
        let (mut html, mut png) = (None, None);
        while let Some(part) = parts.pop() {
            parts.extend(part.subparts.iter());
            match part.ctype.mimetype.as_str() {
                "text/html" => html = Some(part.get_body().unwrap()),
                "image/png" => match part.get_body_encoded() {
                    mailparse::body::Body::Base64(b) => {
                        png = Some(
                            String::from_utf8_lossy(b.get_raw())
                                .split_whitespace()
                                .collect::<String>(),
                        )
                    }
                    _ => panic!("the chart is not base64"),
                },
                _ => {}
            }
        }
        let (html, png) = (html.expect("an HTML part"), png.expect("the chart"));
        assert!(html.contains("cid:chart"));
        let page = world.path().join(format!("{out}.html"));
        std::fs::write(
            &page,
            html.replace("cid:chart", &format!("data:image/png;base64,{png}")),
        )
        .unwrap();
        let shots = screenshots.join(out);
        std::fs::create_dir_all(&shots).unwrap();
        node(
            &browser,
            "report.mjs",
            [page.as_os_str(), shots.as_os_str()],
            &format!("{period}: browser checks failed"),
        );
    }
}
