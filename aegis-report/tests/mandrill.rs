//! The HTTP mail API (Mandrill) against a mock server on 127.0.0.1.

use std::time::Duration;

use aegis_testkit::{text, ReportWorld};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn config(server: &MockServer) -> String {
    format!(
        "to = [\"admin@example.org\", \"ops@example.org\"]\nfrom = \"Aegis <aegis@example.org>\"\n\
         transport = \"mandrill\"\napi_url = \"{}\"\ntimeout_secs = 1\n",
        server.uri()
    )
}

#[tokio::test]
async fn a_report_is_posted_with_the_inline_chart() {
    let world = ReportWorld::seeded().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/messages/send.json"))
        .respond_with(|req: &Request| {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            let m = &body["message"];
            let ok = body["key"] == "md-test-key"
                && m["subject"]
                    .as_str()
                    .unwrap()
                    .starts_with("[Aegis] reporter: 4 bans")
                && m["from_email"] == "aegis@example.org"
                && m["to"][1]["email"] == "ops@example.org"
                && m["html"].as_str().unwrap().contains("cid:chart")
                && m["text"].as_str().unwrap().contains("203.0.113.7")
                && m["images"][0]["name"] == "chart"
                && m["images"][0]["type"] == "image/png";
            if ok {
                ResponseTemplate::new(200).set_body_json(json!([
                    {"email": "admin@example.org", "status": "sent"},
                    {"email": "ops@example.org", "status": "queued"}
                ]))
            } else {
                ResponseTemplate::new(400).set_body_json(
                    json!({"status": "error", "message": format!("unexpected body {body}")}),
                )
            }
        })
        .expect(1)
        .mount(&server)
        .await;
    let out = world.report(
        &format!("{}api_key = \"md-test-key\"", config(&server)),
        &["--period", "yesterday"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("through the mail API"));
}

#[tokio::test]
async fn failures_are_explained_and_exit_non_zero() {
    let world = ReportWorld::seeded().await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"status": "error", "code": -1, "name": "Invalid_Key", "message": "Invalid API key"})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"email": "admin@example.org", "status": "sent"},
            {"email": "ops@example.org", "status": "rejected", "reject_reason": "hard-bounce"}
        ])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "status": "error", "name": "ValidationError", "message": "You must specify a key value"
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let cfg = format!("{}api_key = \"wrong\"", config(&server));
    for want in [
        "check api_key",
        "ops@example.org (hard-bounce)",
        "400 Bad Request: You must specify a key value; check the [report] settings",
        "try again later",
        "did not answer within",
    ] {
        let out = world.report(&cfg, &["send-test"]);
        assert_eq!(out.status.code(), Some(1), "{want}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(want),
            "{want}: {}",
            text(&out)
        );
    }
    // The key is a secret: it may come from the environment, and never shows in errors.
    assert!(
        !String::from_utf8_lossy(&world.report(&cfg, &["send-test"]).stderr).contains("wrong\"")
    );
}
