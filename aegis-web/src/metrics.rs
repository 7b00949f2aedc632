//! `/metrics` in Prometheus text format, `/health`, and the middleware that
//! counts requests and reports each one's server time (`Server-Timing`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{get, web, HttpRequest, HttpResponse};
use aegis_core::{EventFilter, Page, StatsQuery, TopBy};
use serde_json::json;

use crate::error::WebError;
use crate::State;

/// Requests and their total time, by route pattern and status.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    // The pattern, not the path: /ip/{ip} is one series, whatever the address.
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let state = req.app_data::<web::Data<State>>().cloned();
    let mut res = next.call(req).await?;
    let seconds = started.elapsed().as_secs_f64();
    if let Ok(v) = HeaderValue::from_str(&format!("app;dur={:.2}", seconds * 1000.0)) {
        res.headers_mut()
            .insert(HeaderName::from_static("server-timing"), v);
    }
    if let Some(state) = state {
        let mut requests = state
            .metrics
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let entry = requests.entry((route, res.status().as_u16())).or_default();
        entry.0 += 1;
        entry.1 += seconds;
    }
    Ok(res)
}

/// Open to load balancers: 200 when the store answers, 503 when it does not.
/// Up or down, for anyone; why it is down only for a client with credentials
/// (the store's error names paths and hosts), and always on stderr.
#[get("/health")]
pub async fn health(state: web::Data<State>, req: HttpRequest) -> HttpResponse {
    let checked = state
        .dashboard
        .storage
        .events(&EventFilter::default(), Page::first(1))
        .await;
    let Err(e) = checked else {
        return HttpResponse::Ok().json(json!({ "status": "ok" }));
    };
    eprintln!("aegis-web: health check: {e}");
    let auth = &state.dashboard.auth;
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let body = if auth.is_configured() && auth.allows(authorization).await {
        json!({ "status": "unavailable", "error": e.to_string() })
    } else {
        json!({ "status": "unavailable" })
    };
    HttpResponse::ServiceUnavailable().json(body)
}

#[get("/metrics")]
pub async fn metrics(state: web::Data<State>) -> Result<HttpResponse, WebError> {
    let store = state.dashboard.storage.as_ref();
    let now = crate::views::stats_now();
    let day = StatsQuery::range(now - chrono::Duration::hours(24), now);
    let everything = EventFilter::default();
    let (stored, latest, summary, jails, hosts) = tokio::try_join!(
        store.count_events(&everything),
        store.events(&everything, Page::first(1)),
        store.summary(&day),
        store.top(&day, TopBy::Jail, 1000),
        store.top(&day, TopBy::Host, 1000),
    )?;
    let (agents, decisions) = tokio::try_join!(
        store.decision_log().agents(),
        aegis_core::decision::active(store),
    )?;
    let tripped = crate::decide::tripped(&state, hosts.iter().map(|h| h.key.as_str())).await?;
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, rows: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    gauge(
        "aegis_events_stored",
        "Events (bans and unbans) in the store.",
        &[(String::new(), stored as f64)],
    );
    if let Some(e) = latest.first() {
        gauge(
            "aegis_last_event_timestamp_seconds",
            "Time of the newest stored event.",
            &[(
                String::new(),
                e.event.time.timestamp_millis() as f64 / 1000.0,
            )],
        );
    }
    gauge(
        "aegis_currently_banned",
        "Addresses whose latest ban has not expired or been lifted.",
        &[(String::new(), summary.currently_banned as f64)],
    );
    gauge(
        "aegis_bans_24h",
        "New bans in the last 24 hours.",
        &[(String::new(), summary.bans as f64)],
    );
    gauge(
        "aegis_decisions_in_force",
        "Bans and allows decided for the hosts that are in force now.",
        &[(String::new(), decisions.len() as f64)],
    );
    let per_agent = |value: fn(&aegis_core::decision::AgentReport) -> f64| -> Vec<(String, f64)> {
        agents
            .iter()
            .map(|a| (format!("{{host=\"{}\"}}", escape(&a.host)), value(a)))
            .collect()
    };
    gauge(
        "aegis_agent_last_decision",
        "The last decision each host's agent has applied.",
        &per_agent(|a| a.last as f64),
    );
    gauge(
        "aegis_agent_report_timestamp_seconds",
        "When each host's agent last reported.",
        &per_agent(|a| a.seen.timestamp() as f64),
    );
    gauge(
        "aegis_agent_failed",
        "Changes fail2ban refused each host's agent since it started.",
        &per_agent(|a| a.failed as f64),
    );
    if state.dashboard.share.is_some() {
        let rows: Vec<(String, f64)> = tripped
            .iter()
            .map(|(host, open)| {
                (
                    format!("{{host=\"{}\"}}", escape(host)),
                    f64::from(u8::from(*open)),
                )
            })
            .collect();
        gauge(
            "aegis_share_breaker_open",
            "1 when a host's bans are not shared: more shared bans in the last minute than [share] per_minute.",
            &rows,
        );
    }
    let by = |label: &str, rows: Vec<aegis_core::TopEntry>| -> Vec<(String, f64)> {
        rows.into_iter()
            .map(|t| (format!("{{{label}=\"{}\"}}", escape(&t.key)), t.bans as f64))
            .collect()
    };
    gauge(
        "aegis_bans_24h_by_jail",
        "New bans in the last 24 hours by jail.",
        &by("jail", jails),
    );
    gauge(
        "aegis_bans_24h_by_host",
        "New bans in the last 24 hours by reporting host.",
        &by("host", hosts),
    );
    let requests = state
        .metrics
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let _ = writeln!(
        out,
        "# HELP aegis_http_requests_total HTTP requests served.\n# TYPE aegis_http_requests_total counter"
    );
    for ((route, status), (count, _)) in &requests {
        let _ = writeln!(
            out,
            "aegis_http_requests_total{{route=\"{}\",status=\"{status}\"}} {count}",
            escape(route)
        );
    }
    let _ = writeln!(
        out,
        "# HELP aegis_http_request_seconds_total Time spent serving HTTP requests.\n# TYPE aegis_http_request_seconds_total counter"
    );
    for ((route, status), (_, seconds)) in &requests {
        let _ = writeln!(
            out,
            "aegis_http_request_seconds_total{{route=\"{}\",status=\"{status}\"}} {seconds}",
            escape(route)
        );
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out))
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
