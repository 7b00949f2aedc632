//! Alerts: rules on generated bans with known answers, evaluated at chosen
//! moments, delivered to local HTTP servers that check each service's
//! documented request and answer as the service does (errors and 429 included).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aegis_core::{connect, BanEvent, EventKind, Geo, Settings, Storage, StorageUrl};
use aegis_report::alert::{signature, Message, Watcher};
use aegis_testkit::text;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A fixed moment, a few seconds past a minute, as a real watcher wakes.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 14, 0, 5).unwrap()
}

fn settings(dir: &tempfile::TempDir, toml: &str) -> Settings {
    let path = dir.path().join("aegis.toml");
    std::fs::write(&path, toml).unwrap();
    Settings::load(Some(&path)).unwrap()
}

async fn memory_store() -> Arc<dyn Storage> {
    connect(&StorageUrl::parse("sqlite::memory:").unwrap())
        .await
        .unwrap()
}

fn ban(ip: &str, jail: &str, host: &str, at: DateTime<Utc>, country: &str) -> BanEvent {
    let mut e = BanEvent::new(EventKind::Ban, ip.parse().unwrap(), jail, host, at).unwrap();
    e.geo = Some(Geo {
        country: Some(country.into()),
        asn: Some(64_496),
        ..Geo::default()
    });
    e
}

async fn record(store: &Arc<dyn Storage>, events: &[BanEvent]) {
    store.record_batch(events).await.unwrap();
}

/// A webhook endpoint that answers 200 while `up`, else 503.
async fn hook(up: Arc<AtomicBool>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(move |_: &Request| {
            if up.load(Ordering::SeqCst) {
                ResponseTemplate::new(200)
            } else {
                ResponseTemplate::new(503).set_body_string("maintenance")
            }
        })
        .mount(&server)
        .await;
    server
}

/// The JSON bodies the server accepted (or was sent), in order.
async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn webhook_config(url: &str, rule: &str) -> String {
    format!(
        "[web]\npublic_url = \"https://aegis.example.org/\"\n\
         [[channel]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"s3cret\"\n\
         [[alert]]\nname = \"watch\"\nchannels = [\"hook\"]\n{rule}\n"
    )
}

/// A server that answers every POST with `answer`.
async fn answering(answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

/// Sends a test message through the one channel of `config`.
async fn send_test(config: &str) -> Result<(), aegis_report::alert::Failure> {
    let dir = tempfile::tempdir().unwrap();
    let watcher = Watcher::new(&settings(&dir, config), memory_store().await).unwrap();
    watcher
        .send(&watcher.channels()[0], &Message::test("web1", "x"))
        .await
}

/// A store, a webhook that answers 200, and the settings of one rule sending to it.
async fn watching(rule: &str) -> (tempfile::TempDir, MockServer, Arc<dyn Storage>, Settings) {
    let dir = tempfile::tempdir().unwrap();
    let server = hook(Arc::new(AtomicBool::new(true))).await;
    let s = settings(&dir, &webhook_config(&server.uri(), rule));
    (dir, server, memory_store().await, s)
}

fn bans_in(bodies: &[Value]) -> u64 {
    bodies
        .iter()
        .flat_map(|b| b["alerts"].as_array().unwrap().clone())
        .map(|a| a["count"].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn bans_are_batched_every_period_and_capped_per_hour_without_losing_one() {
    let (_dir, server, store, s) =
        watching("kind = \"bans\"\njail = \"sshd\"\nevery = \"5m\"\nmax_per_hour = 2").await;
    let watcher = Watcher::new(&s, store.clone()).unwrap();
    let t = t0();
    // Another jail's ban never counts; a ban exactly at the tick is seen.
    record(
        &store,
        &[
            ban(
                "203.0.113.1",
                "sshd",
                "web1",
                t - Duration::seconds(30),
                "CN",
            ),
            ban(
                "203.0.113.2",
                "nginx",
                "web1",
                t - Duration::seconds(20),
                "CN",
            ),
        ],
    )
    .await;
    let tick = watcher.tick(t, false).await.unwrap();
    assert_eq!(tick.sent.len(), 1, "the first batch goes at once");
    record(
        &store,
        &[ban(
            "203.0.113.3",
            "sshd",
            "web2",
            t + Duration::seconds(40),
            "BR",
        )],
    )
    .await;
    assert!(
        watcher
            .tick(t + Duration::minutes(1), false)
            .await
            .unwrap()
            .sent
            .is_empty(),
        "within 5m"
    );
    record(
        &store,
        &[ban(
            "203.0.113.4",
            "sshd",
            "web2",
            t + Duration::minutes(3),
            "BR",
        )],
    )
    .await;
    assert!(watcher
        .tick(t + Duration::minutes(4), false)
        .await
        .unwrap()
        .sent
        .is_empty());
    let tick = watcher.tick(t + Duration::minutes(5), false).await.unwrap();
    assert_eq!(tick.sent.len(), 1, "one message for the period");
    assert_eq!(tick.sent[0].1.alerts[0].count, 2);
    assert_eq!(tick.sent[0].1.title, "watch: 2 new bans");
    // The third message of the hour waits until the first is an hour old, then carries all.
    for m in 6..=60 {
        let at = t + Duration::minutes(m);
        record(
            &store,
            &[ban(
                &format!("198.51.100.{m}"),
                "sshd",
                "web1",
                at - Duration::seconds(10),
                "DE",
            )],
        )
        .await;
        let sent = watcher.tick(at, false).await.unwrap().sent.len();
        assert_eq!(sent, usize::from(m == 60), "two an hour, at minute {m}");
    }
    let all = bodies(&server).await;
    assert_eq!(all.len(), 3);
    assert_eq!(bans_in(&all), 1 + 2 + 55, "every ban once");
    let last = &all[2]["alerts"][0];
    assert_eq!(last["title"], "watch: 55 new bans");
    let lines = last["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 41, "40 lines and how many more");
    assert_eq!(lines[40], "… and 15 more");
    assert_eq!(
        all[0]["alerts"][0]["lines"][0],
        "203.0.113.1 CN AS64496: sshd on web1 at 2026-11-20 13:59:35 UTC"
    );
    assert_eq!(all[0]["link"], "https://aegis.example.org/ip/203.0.113.1");
}

#[tokio::test]
async fn a_channel_down_for_an_hour_loses_nothing_and_sends_one_message_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let up = Arc::new(AtomicBool::new(false));
    let server = hook(up.clone()).await;
    let store = memory_store().await;
    let s = settings(
        &dir,
        &webhook_config(
            &server.uri(),
            "kind = \"bans\"\nevery = \"1m\"\nmax_per_hour = 60",
        ),
    );
    let t = t0();
    let mut banned = 0;
    for m in 0..60 {
        let at = t + Duration::minutes(m);
        if m % 3 == 0 {
            record(
                &store,
                &[ban(
                    &format!("192.0.2.{m}"),
                    "sshd",
                    "web1",
                    at - Duration::seconds(5),
                    "CN",
                )],
            )
            .await;
            banned += 1;
        }
        // A new watcher each minute: restarts in the middle keep what waits.
        let watcher = Watcher::new(&s, store.clone()).unwrap();
        watcher.tick(at, false).await.unwrap();
    }
    let tries = server.received_requests().await.unwrap().len();
    assert!(
        (5..=10).contains(&tries),
        "backed off: {tries} tries in an hour"
    );
    let watcher = Watcher::new(&s, store.clone()).unwrap();
    let waiting = watcher.waiting().await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].channel, "hook");
    assert_eq!(
        waiting[0].error.as_deref(),
        Some("webhook answered 503 Service Unavailable (maintenance)")
    );
    up.store(true, Ordering::SeqCst);
    let mut delivered = Vec::new();
    for m in 60..76 {
        let tick = watcher.tick(t + Duration::minutes(m), false).await.unwrap();
        delivered.extend(tick.sent);
    }
    assert_eq!(delivered.len(), 1, "one message, not a flood");
    let message = &delivered[0].1;
    assert_eq!(message.alerts.len(), 1, "one rule's bans are one alert");
    assert_eq!(message.alerts[0].count, banned);
    assert_eq!(message.title, format!("watch: {banned} new bans"));
    assert_eq!(message.dropped, 0);
    // Nothing is sent twice afterwards.
    let tick = watcher
        .tick(t + Duration::minutes(80), false)
        .await
        .unwrap();
    assert!(tick.sent.is_empty());
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "150"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    let store = memory_store().await;
    let s = settings(
        &dir,
        &webhook_config(&server.uri(), "kind = \"bans\"\nevery = \"1m\""),
    );
    let watcher = Watcher::new(&s, store.clone()).unwrap();
    let t = t0();
    record(
        &store,
        &[ban(
            "203.0.113.9",
            "sshd",
            "web1",
            t - Duration::seconds(1),
            "CN",
        )],
    )
    .await;
    let tick = watcher.tick(t, false).await.unwrap();
    assert!(tick.failed[0].1.contains("429"), "{:?}", tick.failed);
    assert!(watcher
        .tick(t + Duration::minutes(2), false)
        .await
        .unwrap()
        .sent
        .is_empty());
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "waited as asked"
    );
    let tick = watcher
        .tick(t + Duration::seconds(155), false)
        .await
        .unwrap();
    assert_eq!(tick.sent.len(), 1);
}

#[tokio::test]
async fn telegrams_flood_control_says_how_long_to_wait() {
    let server = answering(ResponseTemplate::new(429).set_body_json(serde_json::json!({
        "ok": false,
        "error_code": 429,
        "description": "Too Many Requests: retry after 30",
        "parameters": { "retry_after": 30 }
    })))
    .await;
    let failure = send_test(&format!(
        "[[channel]]\nname = \"tg\"\nkind = \"telegram\"\ntoken = \"1:x\"\nchat_id = \"7\"\napi_url = \"{}\"\n",
        server.uri()
    ))
    .await
    .unwrap_err();
    assert_eq!(failure.retry_after, Some(Duration::seconds(30)));
    assert!(
        failure
            .error
            .starts_with("telegram answered 429 Too Many Requests"),
        "{}",
        failure.error
    );
}

#[tokio::test]
async fn a_spike_fires_once_and_resolves() {
    let (_dir, _server, store, s) =
        watching("kind = \"spike\"\nperiod = \"1h\"\nfactor = 3\nmin = 10\ndays = 7").await;
    let t = t0();
    let mut events = Vec::new();
    // The usual hour: 4 bans on each of the last 7 days, at the edges of the hour.
    for d in 1..=7 {
        let end = t - Duration::days(d);
        for (i, offset) in [3600, 1800, 60, 1].iter().enumerate() {
            events.push(ban(
                &format!("198.51.{d}.{i}"),
                "sshd",
                "web1",
                end - Duration::seconds(*offset),
                "CN",
            ));
        }
        // Just outside the hour: not counted.
        events.push(ban(
            &format!("198.51.{d}.9"),
            "sshd",
            "web1",
            end - Duration::seconds(3601),
            "CN",
        ));
    }
    // This hour: 12 bans, from the first second of the hour on (3 x 4 = 12: exactly a spike).
    for i in 0..12 {
        events.push(ban(
            &format!("203.0.113.{i}"),
            "sshd",
            "web1",
            t - Duration::seconds(3600 - i * 300),
            "CN",
        ));
    }
    // One at the tick itself: the range ends before it.
    events.push(ban("203.0.113.99", "sshd", "web1", t, "CN"));
    record(&store, &events).await;
    let watcher = Watcher::new(&s, store.clone()).unwrap();
    let tick = watcher.tick(t, false).await.unwrap();
    assert_eq!(tick.sent.len(), 1);
    let m = &tick.sent[0].1;
    assert_eq!(m.title, "watch: spike, 12 bans in the last 1h");
    assert_eq!(m.alerts[0].status, aegis_report::alert::Status::Firing);
    assert!(
        m.text
            .contains("usually 4 at this time of day over the last 7 days"),
        "{}",
        m.text
    );
    assert!(
        watcher
            .tick(t + Duration::minutes(1), false)
            .await
            .unwrap()
            .sent
            .is_empty(),
        "once"
    );
    let tick = watcher.tick(t + Duration::hours(2), false).await.unwrap();
    assert_eq!(tick.sent.len(), 1);
    assert_eq!(
        tick.sent[0].1.alerts[0].status,
        aegis_report::alert::Status::Resolved
    );
}

#[tokio::test]
async fn a_repeat_offender_fires_on_the_crossing_ban_and_resolves_after_a_quiet_period() {
    let (_dir, _server, store, s) =
        watching("kind = \"repeat-offender\"\nhosts = 3\nwithin = \"24h\"").await;
    let t = t0();
    let ip = "203.0.113.50";
    record(
        &store,
        &[
            // Older than the period: does not count.
            ban(ip, "sshd", "web3", t - Duration::hours(25), "CN"),
            ban(ip, "sshd", "web1", t - Duration::hours(5), "CN"),
            ban(ip, "nginx", "web1", t - Duration::hours(4), "CN"),
        ],
    )
    .await;
    let watcher = Watcher::new(&s, store.clone()).unwrap();
    record(
        &store,
        &[ban(ip, "sshd", "web2", t - Duration::seconds(20), "CN")],
    )
    .await;
    assert!(
        watcher.tick(t, false).await.unwrap().sent.is_empty(),
        "two hosts in 24 h"
    );
    let at = t + Duration::minutes(1);
    record(
        &store,
        &[ban(ip, "sshd", "web4", at - Duration::seconds(20), "CN")],
    )
    .await;
    let tick = watcher.tick(at, false).await.unwrap();
    assert_eq!(tick.sent.len(), 1);
    assert_eq!(
        tick.sent[0].1.title,
        "watch: 203.0.113.50 banned 4 times by 3 hosts in the last 1d"
    );
    let at = t + Duration::minutes(2);
    record(
        &store,
        &[ban(ip, "sshd", "web5", at - Duration::seconds(20), "CN")],
    )
    .await;
    assert!(
        watcher.tick(at, false).await.unwrap().sent.is_empty(),
        "once per condition"
    );
    let tick = watcher.tick(at + Duration::hours(24), false).await.unwrap();
    assert_eq!(
        tick.sent[0].1.title,
        "watch: resolved, 203.0.113.50 not banned for 1d"
    );
}

#[tokio::test]
async fn a_new_country_is_told_once() {
    let (_dir, _server, store, s) =
        watching("kind = \"new-source\"\nby = \"country\"\ndays = 30").await;
    let t = t0();
    record(
        &store,
        &[
            ban("203.0.113.1", "sshd", "web1", t - Duration::days(10), "CN"),
            ban("203.0.113.2", "sshd", "web1", t - Duration::days(31), "BR"),
        ],
    )
    .await;
    let watcher = Watcher::new(&s, store.clone()).unwrap();
    assert!(
        watcher.tick(t, false).await.unwrap().sent.is_empty(),
        "the first run learns"
    );
    let at = t + Duration::minutes(1);
    record(
        &store,
        &[
            ban(
                "203.0.113.3",
                "sshd",
                "web1",
                at - Duration::seconds(9),
                "CN",
            ),
            ban(
                "203.0.113.4",
                "sshd",
                "web1",
                at - Duration::seconds(8),
                "BR",
            ),
            ban(
                "203.0.113.5",
                "sshd",
                "web2",
                at - Duration::seconds(7),
                "BR",
            ),
        ],
    )
    .await;
    let tick = watcher.tick(at, false).await.unwrap();
    assert_eq!(tick.sent.len(), 1);
    let m = &tick.sent[0].1;
    assert_eq!(m.title, "watch: first bans from BR in 30 days");
    assert_eq!(m.alerts[0].lines.len(), 2);
    assert_eq!(
        m.link.as_deref(),
        Some("https://aegis.example.org/country/BR")
    );
    let at = t + Duration::minutes(2);
    record(
        &store,
        &[ban(
            "203.0.113.6",
            "sshd",
            "web1",
            at - Duration::seconds(5),
            "BR",
        )],
    )
    .await;
    assert!(watcher.tick(at, false).await.unwrap().sent.is_empty());
}

#[tokio::test]
async fn a_silent_host_fires_and_resolves_and_a_restart_repeats_nothing() {
    let (_dir, server, store, s) =
        watching("kind = \"silent-host\"\nafter = \"1h\"\nknown_within = \"30d\"").await;
    let t = t0();
    record(
        &store,
        &[
            ban(
                "203.0.113.1",
                "sshd",
                "web1",
                t - Duration::seconds(59 * 60 + 30),
                "CN",
            ),
            ban(
                "203.0.113.2",
                "sshd",
                "web2",
                t - Duration::minutes(61),
                "CN",
            ),
            // Silent for longer than `known_within`: no longer expected.
            ban("203.0.113.3", "sshd", "old", t - Duration::days(31), "CN"),
        ],
    )
    .await;
    let tick = Watcher::new(&s, store.clone())
        .unwrap()
        .tick(t, false)
        .await
        .unwrap();
    assert_eq!(tick.sent.len(), 1);
    assert_eq!(
        tick.sent[0].1.title,
        "watch: host web2 has sent nothing for 1h (last event 2026-11-20 12:59 UTC)"
    );
    assert_eq!(
        tick.sent[0].1.link.as_deref(),
        Some("https://aegis.example.org/host/web2")
    );
    // A restarted watcher remembers what it told.
    let watcher = Watcher::new(&s, store.clone()).unwrap();
    let at = t + Duration::minutes(1);
    let tick = watcher.tick(at, false).await.unwrap();
    assert_eq!(tick.sent.len(), 1, "web1 went quiet too");
    assert!(
        tick.sent[0].1.title.starts_with("watch: host web1 "),
        "{}",
        tick.sent[0].1.title
    );
    record(&store, &[ban("203.0.113.4", "sshd", "web2", at, "CN")]).await;
    let tick = watcher.tick(t + Duration::minutes(2), false).await.unwrap();
    assert_eq!(
        tick.sent[0].1.title,
        "watch: resolved, the host web2 reports again"
    );
    assert_eq!(bodies(&server).await.len(), 3);
}

/// Each channel's request, as its service documents it.
#[tokio::test]
async fn every_channel_sends_what_its_service_expects() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"ok\":true}"))
        .mount(&server)
        .await;
    let u = server.uri();
    let s = settings(
        &dir,
        &format!(
            "[[channel]]\nname = \"webhook\"\nkind = \"webhook\"\nurl = \"{u}/hook\"\nsecret = \"env:AEGIS_TEST_HOOK_SECRET\"\n\
             [[channel]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{u}/services/T0/B0/x\"\n\
             [[channel]]\nname = \"mattermost\"\nkind = \"mattermost\"\nurl = \"{u}/hooks/mm\"\n\
             [[channel]]\nname = \"discord\"\nkind = \"discord\"\nurl = \"{u}/api/webhooks/1/t\"\n\
             [[channel]]\nname = \"teams\"\nkind = \"teams\"\nurl = \"{u}/workflows/teams\"\n\
             [[channel]]\nname = \"telegram\"\nkind = \"telegram\"\ntoken = \"123456:ABC-def\"\nchat_id = \"-100200\"\napi_url = \"{u}\"\n\
             [[channel]]\nname = \"ntfy\"\nkind = \"ntfy\"\nurl = \"{u}/aegis-alerts\"\ntoken = \"tk_ntfy\"\n\
             [[channel]]\nname = \"gotify\"\nkind = \"gotify\"\nurl = \"{u}/\"\ntoken = \"AgotifyToken\"\n"
        ),
    );
    std::env::set_var("AEGIS_TEST_HOOK_SECRET", "hook-key");
    let watcher = Watcher::new(&s, memory_store().await).unwrap();
    let mut message = Message::test("web1", "x");
    message.title = "bans <!channel> & @everyone".into();
    message.link = Some("https://aegis.example.org/ip/203.0.113.7".into());
    for channel in watcher.channels() {
        watcher.send(channel, &message).await.unwrap();
    }
    let requests = server.received_requests().await.unwrap();
    let by_path = |p: &str| -> &Request {
        requests
            .iter()
            .find(|r| r.url.path() == p)
            .unwrap_or_else(|| panic!("nothing posted to {p}"))
    };
    let json = |r: &Request| serde_json::from_slice::<Value>(&r.body).unwrap();
    let header = |r: &Request, name: &str| {
        r.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };

    let hook = by_path("/hook");
    assert_eq!(header(hook, "content-type"), "application/json");
    assert_eq!(
        header(hook, "x-aegis-signature"),
        signature("hook-key", &hook.body)
    );
    let body = json(hook);
    assert_eq!(body["version"], 1);
    assert_eq!(body["alerts"][0]["kind"], "test");
    assert_eq!(body["link"], "https://aegis.example.org/ip/203.0.113.7");

    let slack = json(by_path("/services/T0/B0/x"));
    assert!(slack["text"]
        .as_str()
        .unwrap()
        .starts_with("*bans &lt;!channel&gt; &amp; @everyone*\n"));
    assert!(slack["text"]
        .as_str()
        .unwrap()
        .ends_with("<https://aegis.example.org/ip/203.0.113.7|Open in Aegis>"));

    let mm = json(by_path("/hooks/mm"));
    assert!(mm["text"]
        .as_str()
        .unwrap()
        .starts_with("**bans \\<!channel\\> & @\u{2060}everyone**\n"));

    let discord = json(by_path("/api/webhooks/1/t"));
    assert_eq!(discord["allowed_mentions"]["parse"], Value::Array(vec![]));
    assert!(discord["content"].as_str().unwrap().starts_with("**bans"));

    let teams = json(by_path("/workflows/teams"));
    assert_eq!(teams["type"], "message");
    let card = &teams["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert_eq!(
        card["content"]["body"][0]["text"],
        "bans <!channel> & @everyone"
    );
    assert_eq!(
        card["content"]["body"][2]["actions"][0]["url"],
        "https://aegis.example.org/ip/203.0.113.7"
    );

    let telegram = json(by_path("/bot123456:ABC-def/sendMessage"));
    assert_eq!(telegram["chat_id"], "-100200");
    assert!(telegram["text"]
        .as_str()
        .unwrap()
        .starts_with("bans <!channel>"));

    let ntfy = by_path("/aegis-alerts");
    assert_eq!(header(ntfy, "authorization"), "Bearer tk_ntfy");
    assert_eq!(header(ntfy, "title"), "bans <!channel> & @everyone");
    assert_eq!(
        header(ntfy, "click"),
        "https://aegis.example.org/ip/203.0.113.7"
    );
    assert!(String::from_utf8_lossy(&ntfy.body).starts_with("The channel \"x\" works"));

    let gotify = by_path("/message");
    assert_eq!(header(gotify, "x-gotify-key"), "AgotifyToken");
    let g = json(gotify);
    assert_eq!(g["title"], "bans <!channel> & @everyone");
    assert_eq!(
        g["extras"]["client::notification"]["click"]["url"],
        "https://aegis.example.org/ip/203.0.113.7"
    );
    assert_eq!(requests.len(), 8);
}

#[tokio::test]
async fn a_service_error_says_what_it_answered_and_never_the_secret_url() {
    let server = answering(ResponseTemplate::new(404).set_body_string("no_service")).await;
    let config = format!(
        "[[channel]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{}/services/SECRETPART\"\n",
        server.uri()
    );
    let err = send_test(&config).await.unwrap_err();
    assert_eq!(
        err.error,
        "slack answered 404 Not Found: the webhook or topic does not exist (was it deleted?) (no_service)"
    );
    let dir = tempfile::tempdir().unwrap();
    let s = settings(&dir, &config);
    let watcher = Watcher::new(&s, memory_store().await).unwrap();
    assert!(!format!("{:?} {:?}", s, watcher.channels()).contains("SECRETPART"));
    // Unreachable: the message names neither the URL nor its secret part.
    let err = send_test(
        "[[channel]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:9/services/SECRETPART\"\n",
    )
    .await
    .unwrap_err();
    assert!(
        err.error
            .starts_with("slack unreachable: connection failed"),
        "{}",
        err.error
    );
    assert!(!err.error.contains("SECRETPART"));
}

/// Mistakes in the configuration stop the watcher at start with exit code 3
/// and the key to fix.
#[test]
fn configuration_mistakes_are_refused_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let channel = "[[channel]]\nname = \"ops\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/SECRET\"\n";
    let cases = [
        ("[[alert]]\nname = \"a\"\nchannels = [\"ops\"]\nkind = \"bans\"\njails = \"sshd\"\n", "unknown key: found `jails`"),
        ("[[alert]]\nname = \"a\"\nchannels = [\"ops\"]\nkind = \"flood\"\n", "unknown variant: found `flood`"),
        ("[[alert]]\nname = \"a\"\nchannels = [\"pager\"]\nkind = \"bans\"\n", "[[alert]] \"a\": channels: no [[channel]] is named \"pager\" (configured: ops)"),
        ("[[alert]]\nname = \"a\"\nchannels = [\"ops\"]\nkind = \"spike\"\nfactor = 1.0\n", "[[alert]] \"a\": factor: 1 would call every period a spike"),
        ("[[alert]]\nname = \"a\"\nchannels = [\"ops\"]\nkind = \"silent-host\"\nafter = \"31d\"\nknown_within = \"90d\"\n", "[[alert]] \"a\": after: \"31d\" is out of range: use 2m to 30d"),
        ("[[alert]]\nname = \"a\"\nchannels = [\"ops\"]\nkind = \"silent-host\"\nafter = \"8d\"\nknown_within = \"7d\"\n", "[[alert]] \"a\": after: must be shorter than known_within"),
        ("[[alert]]\nname = \"a\"\nchannels = [\"ops\"]\nkind = \"repeat-offender\"\nbans = 1\n", "[[alert]] \"a\": bans: 1: use 2 to 1000"),
        ("[[alert]]\nname = \"a\"\nchannels = [\"ops\"]\nkind = \"bans\"\nevery = \"soon\"\n", "[[alert]] \"a\": every: invalid age \"soon\""),
        ("[[channel]]\nname = \"tg\"\nkind = \"telegram\"\nchat_id = \"1\"\n", "missing field `token`"),
        ("[[channel]]\nname = \"tg\"\nkind = \"telegram\"\ntoken = \"env:AEGIS_TEST_UNSET_TOKEN\"\nchat_id = \"1\"\n", "[[channel]] \"tg\": token = \"env:AEGIS_TEST_UNSET_TOKEN\", but the environment variable AEGIS_TEST_UNSET_TOKEN is not set"),
        ("[[channel]]\nname = \"h\"\nkind = \"webhook\"\nurl = \"ftp://x/SECRET\"\n", "[[channel]] \"h\": url must be an http:// or https:// URL with a host"),
        ("[[channel]]\nname = \"h\"\nkind = \"discord\"\nurl = \"not a url SECRET\"\n", "[[channel]] \"h\": url is not a URL"),
        ("[[channel]]\nname = \"ops\"\nkind = \"ntfy\"\nurl = \"https://ntfy.sh/x\"\n", "two [[channel]]s are named \"ops\""),
    ];
    for (config, expected) in cases {
        let path = dir.path().join("aegis.toml");
        std::fs::write(&path, format!("{channel}{config}")).unwrap();
        let out = std::process::Command::new(aegis_testkit::bin("aegis-report"))
            .arg("--config")
            .arg(&path)
            .args(["alert", "check"])
            .env("AEGIS_STORAGE_URL", "sqlite::memory:")
            .env_remove("AEGIS_TEST_UNSET_TOKEN")
            .output()
            .unwrap();
        let said = text(&out);
        assert_eq!(out.status.code(), Some(3), "{config}: {said}");
        assert!(
            said.contains(expected),
            "{config}:\nexpected {expected:?} in\n{said}"
        );
        assert!(!said.contains("SECRET"), "a secret was shown: {said}");
    }
}

#[test]
fn a_test_message_is_shown_by_a_dry_run_without_secrets_and_an_unknown_channel_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aegis.toml");
    std::fs::write(
        &path,
        "host = \"web1\"\n[[channel]]\nname = \"ops\"\nkind = \"ntfy\"\nurl = \"https://ntfy.example.org/SECRETTOPIC\"\ntoken = \"env:AEGIS_TEST_NTFY\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(aegis_testkit::bin("aegis-report"))
        .arg("--config")
        .arg(&path)
        .args(["alert", "test", "ops", "--dry-run"])
        .env("AEGIS_STORAGE_URL", "sqlite::memory:")
        .env("AEGIS_TEST_NTFY", "tk_SECRET")
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("title: Aegis test message from web1"),
        "{said}"
    );
    assert!(!said.contains("SECRET"), "{said}");
    let out = std::process::Command::new(aegis_testkit::bin("aegis-report"))
        .arg("--config")
        .arg(&path)
        .args(["alert", "test", "nope"])
        .env("AEGIS_STORAGE_URL", "sqlite::memory:")
        .env("AEGIS_TEST_NTFY", "tk_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).contains("no [[channel]] is named \"nope\" (configured: ops)"));
}
