//! The online geolocation provider against a mock ip-api server on 127.0.0.1.

use std::net::IpAddr;
use std::time::Duration;

use aegis_core::geo::online::{OnlineError, OnlineProvider};
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Answers every batch with a success for each address asked.
fn echo(req: &Request) -> ResponseTemplate {
    let asked: Vec<String> = serde_json::from_slice(&req.body).unwrap();
    let answers: Vec<_> = asked
        .iter()
        .map(|ip| json!({"status": "success", "query": ip, "countryCode": "US", "city": "Ashburn", "lat": 39.03, "lon": -77.5, "as": "AS14618 Amazon.com, Inc."}))
        .collect();
    ResponseTemplate::new(200)
        .set_body_json(answers)
        .insert_header("X-Rl", "14")
        .insert_header("X-Ttl", "60")
}

fn provider(server: &MockServer, per_minute: u32, max_wait: Duration) -> OnlineProvider {
    OnlineProvider::ip_api(
        &server.uri(),
        per_minute,
        Duration::from_millis(500),
        max_wait,
    )
    .unwrap()
}

#[tokio::test]
async fn answers_are_matched_to_addresses() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/batch"))
        .and(query_param("fields", "status,message,countryCode,city,lat,lon,as,query"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"status": "success", "query": "8.8.8.8", "countryCode": "US", "city": "Mountain View", "lat": 37.4, "lon": -122.1, "as": "AS15169 Google LLC"},
            {"status": "fail", "message": "reserved range", "query": "1.2.3.4"},
            {"status": "success", "query": "2a00:1450::1", "countryCode": "pl", "city": "", "as": ""}
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let got = provider(&server, 15, Duration::from_secs(1))
        .locate(&ips(&["8.8.8.8", "1.2.3.4", "2a00:1450::1"]))
        .await
        .unwrap();
    let google = got[0].1.as_ref().unwrap();
    assert_eq!(
        (google.country.as_deref(), google.city.as_deref()),
        (Some("US"), Some("Mountain View"))
    );
    assert_eq!(
        (google.asn, google.as_org.as_deref()),
        (Some(15169), Some("Google LLC"))
    );
    assert_eq!(got[1].1, None);
    let pl = got[2].1.as_ref().unwrap();
    assert_eq!(
        (pl.country.as_deref(), pl.city.as_deref(), pl.asn),
        (Some("PL"), None, None)
    );
}

#[tokio::test]
async fn the_token_bucket_stops_before_the_provider_limit() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(echo)
        .expect(2)
        .mount(&server)
        .await;
    let many: Vec<IpAddr> = (0..250)
        .map(|i| format!("11.0.{}.{}", i / 200, i % 200 + 1).parse().unwrap())
        .collect();
    // Two requests a minute: the third batch would wait ~30 s, more than allowed.
    let err = provider(&server, 2, Duration::from_millis(200))
        .locate(&many)
        .await
        .unwrap_err();
    assert!(
        matches!(err, OnlineError::RateLimited { retry_after } if retry_after > Duration::from_secs(20)),
        "{err}"
    );
    assert!(err.to_string().contains("run the backfill again later"));
}

#[tokio::test]
async fn a_429_is_obeyed_then_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("X-Rl", "0")
                .insert_header("X-Ttl", "1"),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(echo)
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let got = provider(&server, 60, Duration::from_secs(5))
        .locate(&ips(&["8.8.4.4"]))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for X-Ttl"
    );
    assert_eq!(got[0].1.as_ref().unwrap().asn, Some(14618));
}

#[tokio::test]
async fn a_long_429_is_reported_not_waited_for() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("X-Ttl", "120"))
        .mount(&server)
        .await;
    let err = provider(&server, 15, Duration::from_secs(1))
        .locate(&ips(&["8.8.4.4"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, OnlineError::RateLimited { retry_after } if retry_after == Duration::from_secs(120)),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_replies_timeouts_and_errors() {
    let server = MockServer::start().await;
    Mock::given(path("/batch"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>not json</html>"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/batch"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"status": "success", "query": "9.9.9.9"}])),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/batch"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/batch"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let mut p = provider(&server, 60, Duration::from_secs(1));
    let one = ips(&["8.8.8.8"]);
    assert!(matches!(
        p.locate(&one).await,
        Err(OnlineError::Malformed(_))
    ));
    assert!(
        matches!(p.locate(&one).await, Err(OnlineError::Malformed(m)) if m.contains("not asked"))
    );
    assert!(matches!(p.locate(&one).await, Err(OnlineError::Timeout(_))));
    assert!(matches!(p.locate(&one).await, Err(OnlineError::Http(m)) if m.contains("503")));
}
