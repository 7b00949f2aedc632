//! The JSON API under `/api/v1/`: the same figures as the pages.

use actix_web::{get, web, HttpRequest, HttpResponse};
use aegis_core::{Scope, StatsQuery, TopBy};
use serde_json::json;

use crate::cache::json_body;
use crate::error::WebError;
use crate::params::{address, Params, FILTER_KEYS};
use crate::views::{self, Clock};
use crate::State;

/// A JSON answer that clients revalidate every time (it changes every second).
fn json(body: actix_web::web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

const NARROW: [&str; 3] = ["jail", "host", "country"];

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    NARROW.iter().chain(extra).copied().collect()
}

/// Headline figures of a range ending now, with the bans of the range before it.
#[get("/summary")]
pub async fn summary(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    let compute = async { json_body(&summary_of(&state, &req).await?) };
    Ok(json(state.answers.answer(&req, compute).await?))
}

async fn summary_of(state: &State, req: &HttpRequest) -> Result<serde_json::Value, WebError> {
    let params = Params::of(req, &with(&["range"]))?;
    let (range, mut q) = params.range("24h")?;
    params.narrow(&mut q)?;
    let length = q.until - q.since;
    let mut previous = StatsQuery::range(q.since - length, q.since);
    params.narrow(&mut previous)?;
    let store = state.heavy.as_ref();
    let (s, previous_bans) = tokio::try_join!(store.summary(&q), store.ban_count(&previous))?;
    Ok(json!({
        "range": range,
        "since": q.since,
        "until": q.until,
        "bans": s.bans,
        "unique_ips": s.unique_ips,
        "countries": s.countries,
        "jails": s.jails,
        "hosts": s.hosts,
        "currently_banned": s.currently_banned,
        "previous_bans": previous_bans,
    }))
}

/// New bans per day in the dashboard's zone, zero-filled.
#[get("/daily")]
pub async fn daily(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    let compute = async { json_body(&daily_of(&state, &req).await?) };
    Ok(json(state.answers.answer(&req, compute).await?))
}

async fn daily_of(state: &State, req: &HttpRequest) -> Result<serde_json::Value, WebError> {
    let params = Params::of(req, &with(&["days"]))?;
    let days = params.number("days", 30, 1, 3653)? as u32;
    let scope = scope_of(&params)?;
    let tz = state.dashboard.tz;
    let days = views::daily(state.heavy.as_ref(), &scope, days, tz).await?;
    Ok(json!({ "tz": tz.name(), "days": days }))
}

/// A ranking: `by=ip|country|jail|host|asn|network`.
#[get("/top")]
pub async fn top(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    let compute = async { json_body(&top_of(&state, &req).await?) };
    Ok(json(state.answers.answer(&req, compute).await?))
}

async fn top_of(state: &State, req: &HttpRequest) -> Result<serde_json::Value, WebError> {
    let params = Params::of(req, &with(&["by", "range", "limit"]))?;
    let (range, mut q) = params.range("7d")?;
    params.narrow(&mut q)?;
    let limit = params.number("limit", 10, 1, 1000)? as u32;
    let by = params.get("by").unwrap_or("ip");
    let store = state.heavy.as_ref();
    let entries = if by == "ip" {
        let clock = Clock(state.dashboard.tz);
        let rows: Vec<_> = store
            .top_offenders(&q, limit)
            .await?
            .into_iter()
            .map(|o| clock.offender(o))
            .collect();
        json!(rows)
    } else {
        let by: TopBy = by.parse().map_err(|_| {
            WebError::bad_request(format!(
                "by={by:?} is not valid: expected ip, country, jail, host, asn or network"
            ))
        })?;
        json!(store.top(&q, by, limit).await?)
    };
    Ok(json!({ "by": by, "range": range, "entries": entries }))
}

/// An event search, newest first by default.
#[get("/events")]
pub async fn events(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    let mut accepted = FILTER_KEYS.to_vec();
    accepted.extend(["limit", "offset", "order", "total", "after"]);
    let params = Params::of(&req, &accepted)?;
    let filter = params.filter(state.dashboard.tz)?;
    let page = params.page(100)?;
    let with_total = match params.get("total") {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(WebError::bad_request(format!(
                "total={other:?} is not valid: expected true or false"
            )))
        }
    };
    // The first page alone is cheap (the live table asks it every few seconds):
    // it never waits behind statistics.
    let store = if page.offset == 0 && page.after.is_none() && !with_total {
        state.dashboard.storage.as_ref()
    } else {
        state.heavy.as_ref()
    };
    let found =
        views::event_page(store, Clock(state.dashboard.tz), &filter, page, with_total).await?;
    Ok(HttpResponse::Ok().json(found))
}

/// Everything known about one address.
#[get("/ip/{ip}")]
pub async fn ip(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    Params::of(&req, &[])?;
    let ip = address(&path)?;
    let clock = Clock(state.dashboard.tz);
    match views::ip_detail(state.heavy.as_ref(), clock, ip, (0, views::IP_EVENTS)).await? {
        Some(d) => Ok(HttpResponse::Ok().json(views::IpDetail {
            timeline: None,
            ..d
        })),
        None => Err(WebError::not_found(format!("nothing is stored for {ip}"))),
    }
}

/// Bans per country and the cities of recent bans.
#[get("/map")]
pub async fn map(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    let compute = async {
        let params = Params::of(&req, &with(&["range"]))?;
        let (_, q) = params.range("30d")?;
        let scope = scope_of(&params)?;
        json_body(&views::map(state.heavy.as_ref(), &scope, &q).await?)
    };
    Ok(json(state.answers.answer(&req, compute).await?))
}

/// The one narrowing (jail, host or country) of a chart or map.
fn scope_of(params: &Params) -> Result<Scope, WebError> {
    let scope = params.scope()?;
    if scope.is_all() || scope.single().is_some() {
        Ok(scope)
    } else {
        Err(WebError::bad_request(
            "give at most one of jail, host and country here",
        ))
    }
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, WebError> {
    Err(WebError::not_found(format!(
        "no API endpoint at {}; see the README for /api/v1/summary, daily, top, events, ip/{{ip}} and map",
        req.path()
    )))
}
