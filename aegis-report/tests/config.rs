//! Bad configuration: a clear error and a non-zero exit, before anything is sent.

use aegis_testkit::{text, ReportWorld};

#[tokio::test]
async fn bad_configuration_is_refused_with_advice() {
    let world = ReportWorld::seeded().await;
    let cases = [
        ("from = \"aegis@example.org\"", "no recipient"),
        ("to = [\"not an address\"]\nfrom = \"aegis@example.org\"", "not a valid address"),
        ("to = [\"a@example.org\"]", "no sender"),
        ("to = [\"a@example.org\"]\nfrom = \"b@example.org\"\nsmtp_tls = \"ssl\"", "starttls"),
        ("to = [\"a@example.org\"]\nfrom = \"b@example.org\"\nsmtp_host = \"mail.example.org\"\nsmtp_tls = \"none\"", "clear text"),
        ("to = [\"a@example.org\"]\nfrom = \"b@example.org\"\nsmtp_user = \"aegis\"", "AEGIS_REPORT_SMTP_PASSWORD"),
        ("to = [\"a@example.org\"]\nfrom = \"b@example.org\"\ntransport = \"mandrill\"", "api_key"),
        ("to = [\"a@example.org\"]\nfrom = \"b@example.org\"\ntransport = \"pigeon\"", "transport"),
        ("to = [\"a@example.org\"]\nfrom = \"b@example.org\"\nsmtp_pasword = \"x\"", "smtp_pasword"),
    ];
    for (config, message) in cases {
        let out = world.report(config, &["send-test"]);
        assert_eq!(out.status.code(), Some(3), "{config}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "{config}: wanted {message:?}: {}",
            text(&out)
        );
    }
    let out = world.report("", &["--period", "fortnight", "--dry-run"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = world.report("", &["--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[tokio::test]
async fn dry_run_writes_an_eml_and_quiet_days_can_be_skipped() {
    let world = ReportWorld::seeded().await;
    let eml = world.path().join("report.eml");
    let out = world.report("", &["--dry-run", "--eml", eml.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let mail = std::fs::read(&eml).unwrap();
    let parsed = mailparse::parse_mail(&mail).unwrap();
    assert_eq!(parsed.subparts.len(), 2);

    let quiet = [
        "--since",
        "2026-01-01T00:00:00Z",
        "--until",
        "2026-01-02T00:00:00Z",
    ];
    let config = "to = [\"a@example.org\"]\nfrom = \"b@example.org\"\nskip_quiet = true";
    let out = world.report(config, &quiet);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let out = world.report("", &[&["--dry-run"][..], &quiet[..]].concat());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("A quiet period: no bans."),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn calendar_periods_name_the_week_and_the_month() {
    let world = ReportWorld::seeded().await;
    let now = chrono::Utc::now();
    let utc: aegis_core::Tz = "UTC".parse().unwrap();
    for period in ["last-week", "last-month"] {
        let out = world.report("", &["--period", period, "--dry-run"]);
        assert!(out.status.success(), "{period}: {}", text(&out));
        let label = aegis_report::Period::named(period, now, utc).unwrap().label;
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&label),
            "{period}: wanted {label:?}: {}",
            text(&out)
        );
    }
}
