//! Rendering is a pure function of the digest: checked against golden files.
//! Regenerate them with `AEGIS_UPDATE_GOLDEN=1 cargo test -p aegis-report --test render`.

use std::path::PathBuf;

use aegis_core::{Summary, TopEntry};
use aegis_report::{Bar, Digest, OffenderRow, Period, Templates};

fn digest(quiet: bool) -> Digest {
    let since = "2026-11-26T00:00:00Z".parse().unwrap();
    let until = "2026-11-27T00:00:00Z".parse().unwrap();
    let entry = |key: &str, bans| TopEntry {
        key: key.into(),
        label: None,
        bans,
        unique_ips: 2,
    };
    let offender = |ip: &str, bans, hosts: &[&str], repeat| OffenderRow {
        ip: ip.into(),
        bans,
        country: Some("CN".into()),
        asn: Some("AS4134 <script>alert('as')</script>".into()),
        jails: vec!["sshd".into(), "<img src=x onerror=alert(1)>".into()],
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        repeat,
    };
    let mut d = Digest {
        hostname: "web1".into(),
        period: Period::between("2026-11-26".into(), since, until),
        totals: Summary {
            bans: 42,
            unique_ips: 17,
            countries: 5,
            jails: 3,
            hosts: 2,
            currently_banned: 4,
        },
        previous: Summary {
            bans: 30,
            ..Summary::default()
        },
        change_percent: Some(40),
        offenders: vec![
            offender("203.0.113.7", 9, &["web1", "web2"], true),
            offender("198.51.100.9", 1, &["web1"], false),
        ],
        new_offenders: 1,
        repeat_offenders: 1,
        multi_host: vec![offender("203.0.113.7", 9, &["web1", "web2"], true)],
        countries: vec![entry("CN", 30), entry("US", 12)],
        jails: vec![entry("sshd", 40), entry("nginx", 2)],
        hosts: vec![entry("web1", 30), entry("web2", 12)],
        bars: (0..24)
            .map(|h| Bar {
                label: format!("{h:02}:00"),
                bans: h % 5,
            })
            .collect(),
        time_zone: "Europe/Berlin".into(),
        dashboard_url: Some("https://aegis.example.org/".into()),
        attribution: "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0".into(),
    };
    if quiet {
        d.totals = Summary::default();
        d.change_percent = Some(-100);
        d.offenders.clear();
        d.multi_host.clear();
        d.countries.clear();
        d.jails.clear();
        d.hosts.clear();
        d.bars.iter_mut().for_each(|b| b.bans = 0);
    }
    d
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("AEGIS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing golden file {}", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

#[test]
fn busy_day_matches_the_golden_files() {
    let r = Templates::load(None)
        .unwrap()
        .render(&digest(false))
        .unwrap();
    assert_eq!(r.subject, "[Aegis] web1: 42 bans from 17 IPs on 2026-11-26");
    golden("busy.txt", &r.text);
    golden("busy.html", &r.html);
    assert!(r.html.contains("cid:chart"));
    assert!(
        !r.html.contains("<script>") && !r.html.contains("<img src=x"),
        "stored values are escaped"
    );
    assert!(r.html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert_eq!(&r.chart[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(
        &r.chart[16..24],
        &[0, 0, 2, 48, 0, 0, 0, 200],
        "560 x 200 pixels"
    );
}

#[test]
fn quiet_day_says_so() {
    let r = Templates::load(None)
        .unwrap()
        .render(&digest(true))
        .unwrap();
    assert_eq!(r.subject, "[Aegis] web1: no bans on 2026-11-26");
    golden("quiet.txt", &r.text);
    assert!(r.html.contains("A quiet period: no bans."));
}

#[test]
fn user_templates_override_the_built_in_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("report.txt"),
        "{{ hostname }} had {{ totals.bans }} bans",
    )
    .unwrap();
    let r = Templates::load(Some(dir.path()))
        .unwrap()
        .render(&digest(false))
        .unwrap();
    assert_eq!(r.text, "web1 had 42 bans");
    assert!(
        r.html.contains("Top offenders"),
        "the HTML template stays built in"
    );
    std::fs::write(dir.path().join("report.html"), "{% if %}").unwrap();
    let err = Templates::load(Some(dir.path())).err().unwrap().to_string();
    assert!(err.contains("report.html"), "{err}");
}
