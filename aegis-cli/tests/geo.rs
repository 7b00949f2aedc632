//! Geolocation on the ban path, in imports and by backfill, through the real binary.

use std::path::PathBuf;

use aegis_testkit::{text, Sandbox};

fn maxmind(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../aegis-core/tests/data/maxmind")
        .join(name)
}

#[tokio::test]
async fn bans_are_located_at_record_time_and_backfilled_later() {
    let sb = Sandbox::new();
    // Built-in country data only.
    for ip in ["81.2.69.142", "8.8.8.8", "10.0.0.7"] {
        let out = sb
            .aegis()
            .args(["ban", "--ip", ip, "--jail", "sshd"])
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            text(&out)
        );
    }
    let events = sb.all_events().await;
    let geo_of = |ip: &str| {
        events
            .iter()
            .find(|e| e.event.ip.to_string() == ip)
            .unwrap()
            .event
            .geo
            .clone()
    };
    assert_eq!(
        geo_of("81.2.69.142").and_then(|g| g.country).as_deref(),
        Some("GB")
    );
    assert_eq!(
        geo_of("8.8.8.8").and_then(|g| g.country).as_deref(),
        Some("US")
    );
    assert_eq!(
        geo_of("10.0.0.7"),
        None,
        "private addresses are not located"
    );

    // A city database added later: backfill fills in the city for stored events.
    let city = maxmind("GeoIP2-City-Test.mmdb");
    let out = sb
        .aegis()
        .args(["geo", "backfill", "--json", "--city-db"])
        .arg(&city)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["addresses"].as_u64(), summary["reserved"].as_u64()),
        (Some(3), Some(1))
    );
    let london = sb
        .all_events()
        .await
        .into_iter()
        .find(|e| e.event.ip.to_string() == "81.2.69.142")
        .unwrap();
    assert_eq!(london.event.geo.unwrap().city.as_deref(), Some("London"));

    // With the databases configured, the ban path records city and AS at once.
    let out = sb
        .aegis()
        .args(["ban", "--ip", "1.128.0.1", "--jail", "sshd", "--asn-db"])
        .arg(maxmind("GeoLite2-ASN-Test.mmdb"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let telstra = sb
        .all_events()
        .await
        .into_iter()
        .find(|e| e.event.ip.to_string() == "1.128.0.1")
        .unwrap();
    assert_eq!(telstra.event.geo.unwrap().asn, Some(1221));
}

/// A configured database that is missing costs no ban: the call says so, the
/// writer locates by the built-in country data and tells the system log (it
/// has no terminal).
#[tokio::test]
async fn a_broken_geo_database_never_blocks_a_ban() {
    let sb = Sandbox::new();
    let socket = sb.path().join("log.sock");
    let log = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    log.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let out = sb
        .aegis()
        .env("AEGIS_SYSLOG_SOCKET", &socket)
        .args([
            "ban",
            "--ip",
            "8.8.8.8",
            "--jail",
            "sshd",
            "--city-db",
            "/nonexistent/city.mmdb",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("/nonexistent/city.mmdb does not exist")
            && warning.contains("the ban is located by the built-in country data"),
        "{warning}"
    );
    let events = sb.all_events().await;
    assert_eq!(
        events[0]
            .event
            .geo
            .as_ref()
            .and_then(|g| g.country.as_deref()),
        Some("US")
    );
    let mut line = [0u8; 4096];
    let n = log.recv(&mut line).expect("a line in the system log");
    let line = String::from_utf8_lossy(&line[..n]);
    assert!(
        line.starts_with("<28>aegis[") && line.contains("/nonexistent/city.mmdb does not exist"),
        "{line}"
    );
    let out = sb
        .aegis()
        .args([
            "geo",
            "lookup",
            "8.8.8.8",
            "--city-db",
            "/nonexistent/city.mmdb",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[test]
fn lookup_shows_every_source_and_the_attribution() {
    let sb = Sandbox::new();
    let out = sb
        .aegis()
        .args([
            "geo",
            "lookup",
            "89.160.20.128",
            "192.168.1.1",
            "--json",
            "--city-db",
        ])
        .arg(maxmind("GeoIP2-City-Test.mmdb"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["geo"]["city"], "Linköping");
    assert_eq!(v[0]["sources"].as_array().unwrap().len(), 2);
    assert_eq!(v[1]["reserved"], "private (RFC 1918)");
    let info = sb.aegis().args(["geo", "info"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&info.stdout).contains("DB-IP"),
        "{}",
        text(&info)
    );
}

#[tokio::test]
async fn online_backfill_fills_gaps_once_and_caches() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(|req: &Request| {
            let asked: Vec<String> = serde_json::from_slice(&req.body).unwrap();
            let answers: Vec<_> = asked
                .iter()
                .map(|ip| serde_json::json!({"status": "success", "query": ip, "countryCode": "US", "city": "Ashburn", "lat": 39.0, "lon": -77.5, "as": "AS14618 Amazon"}))
                .collect();
            ResponseTemplate::new(200).set_body_json(answers)
        })
        .expect(1)
        .mount(&server)
        .await;
    let sb = Sandbox::new();
    for ip in ["8.8.8.8", "10.0.0.1"] {
        assert!(sb
            .aegis()
            .args(["ban", "--ip", ip, "--jail", "sshd"])
            .output()
            .unwrap()
            .status
            .success());
    }
    sb.settle();
    let backfill = || {
        sb.aegis()
            .args(["geo", "backfill", "--online", "--json"])
            .env("AEGIS_GEO_ONLINE_URL", server.uri())
            .output()
            .unwrap()
    };
    let out = backfill();
    assert!(out.status.success(), "{}", text(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["online"].as_u64(), summary["reserved"].as_u64()),
        (Some(1), Some(1)),
        "{summary}"
    );
    let g = sb
        .all_events()
        .await
        .into_iter()
        .find(|e| e.event.ip.to_string() == "8.8.8.8")
        .unwrap()
        .event
        .geo
        .unwrap();
    assert_eq!(
        (g.country.as_deref(), g.city.as_deref(), g.asn),
        (Some("US"), Some("Ashburn"), Some(14618))
    );
    // Second run: answered from the cache (the mock allows one request only).
    let again: serde_json::Value = serde_json::from_slice(&backfill().stdout).unwrap();
    assert_eq!(again["online"].as_u64(), Some(1));
}
