//! Decisions on the web: the list (page and API), and making them (a form on
//! the address and decisions pages, `POST /api/v1/decisions`).
//!
//! Making one needs `[web] actions = true` and write credentials: the write
//! token (the API's user `api`) or the dashboard's login. A browser sends a
//! login with every request, even one another site makes it send, so every
//! write also needs an `Origin` (or `Referer`) of this dashboard when the
//! browser gives one, and a form the token of its user, which only this
//! dashboard's own pages carry. The API takes JSON only, which no other site's
//! form can send. Every decision records who made it and when.

use std::io::Write;

use actix_web::http::{header, StatusCode};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use aegis_core::decision::{self, Action, Decision, Request};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tera::Context;

use crate::error::{PageError, WebError};
use crate::params::Params;
use crate::views::Clock;
use crate::State;

/// Decisions on the decisions page.
const LISTED: usize = 200;

/// A decision as the pages show it.
#[derive(Debug, Serialize)]
pub struct DecisionRow {
    id: u64,
    action: String,
    target: String,
    hosts: String,
    until: String,
    by: String,
    made: String,
    reason: String,
    /// A ban or allow in force, which a person may revoke.
    active: bool,
    /// What the hosts' agents did with it: "web1 applied, web2 refused: …".
    applied: Vec<String>,
}

/// The rows of `decisions`, newest first, marking those in `active`, with
/// what the agents did with each.
pub async fn rows(
    state: &State,
    decisions: &[Decision],
    active: &[Decision],
) -> Result<Vec<DecisionRow>, WebError> {
    let ids: Vec<u64> = decisions.iter().map(|d| d.id).collect();
    let applied = state.heavy.decision_log().applied(&ids).await?;
    let clock = Clock(state.dashboard.tz);
    let now = Utc::now();
    Ok(decisions
        .iter()
        .rev()
        .map(|d| DecisionRow {
            id: d.id,
            action: match d.revokes {
                Some(id) => format!("revoke #{id}"),
                None => d.action.to_string(),
            },
            target: d.target_text(),
            hosts: if d.hosts.is_empty() {
                "every host".into()
            } else {
                d.hosts.join(", ")
            },
            until: match (d.action, d.until) {
                (Action::Unban | Action::Revoke, _) => String::new(),
                (_, None) => "permanent".into(),
                (_, Some(u)) if u <= now => format!("ended {}", clock.show(u)),
                (_, Some(u)) => clock.show(u),
            },
            by: d.origin.to_string(),
            made: clock.show(d.created),
            reason: d.reason.clone(),
            active: active.iter().any(|a| a.id == d.id),
            applied: applied
                .iter()
                .filter(|a| a.decision == d.id)
                .map(|a| match &a.detail {
                    Some(why) => format!("{} {}: {why}", a.host, a.outcome.as_str()),
                    None => format!("{} {}", a.host, a.outcome.as_str()),
                })
                .collect(),
        })
        .collect())
}

/// Whether each of `hosts` has its circuit breaker open (empty when nothing is shared).
pub async fn tripped<'a>(
    state: &State,
    hosts: impl Iterator<Item = &'a str>,
) -> Result<Vec<(String, bool)>, WebError> {
    let Some(policy) = &state.dashboard.share else {
        return Ok(Vec::new());
    };
    let mut tripped = Vec::new();
    for host in hosts {
        let open = policy
            .breaker_open(state.dashboard.storage.as_ref(), host)
            .await?;
        tripped.push((host.to_owned(), open));
    }
    Ok(tripped)
}

/// A decision's body is small: a larger one is refused before it is read.
const MAX_BODY: usize = 16 * 1024;

/// How the API reads a decision: JSON only, errors as JSON that say what was wrong.
pub fn json_body() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY)
        .error_handler(|e, _| {
            WebError::bad_request(format!(
                "the body is not a decision ({e}): send JSON such as {{\"action\": \"ban\", \"target\": \"203.0.113.7\", \"for\": \"1h\"}} with Content-Type: application/json"
            ))
            .into()
        })
}

/// How the pages read a decision form.
pub fn form_body() -> web::FormConfig {
    web::FormConfig::default()
        .limit(MAX_BODY)
        .error_handler(|e, _| {
            PageError(WebError::bad_request(format!(
                "the form is not a decision: {e}"
            )))
            .into()
        })
}

/// Who may decide on this request, if anyone.
pub async fn writer(state: &State, req: &HttpRequest) -> Option<String> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    state.dashboard.auth.writer(authorization).await
}

/// What a page needs for its decision forms: the user's form token, when the
/// user may decide.
pub async fn form(state: &State, req: &HttpRequest) -> Option<String> {
    let user = writer(state, req).await?;
    Some(state.dashboard.auth.form_token(&user))
}

/// Whether the browser says the request comes from a page of this dashboard:
/// its `Origin` (or `Referer`) names the host the request was sent to.
/// `None` when it says nothing (a client that is not a browser).
fn from_here(req: &HttpRequest) -> Option<bool> {
    let given = req
        .headers()
        .get(header::ORIGIN)
        .or_else(|| req.headers().get(header::REFERER))?;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin = given.to_str().ok().and_then(|o| url::Url::parse(o).ok());
    Some(match (origin, host) {
        (Some(origin), Some(host)) => {
            let authority = match (origin.host_str(), origin.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => return Some(false),
            };
            authority.eq_ignore_ascii_case(host)
        }
        _ => false,
    })
}

fn refused(message: &str) -> WebError {
    WebError::new(StatusCode::FORBIDDEN, message)
}

/// Checks who writes, and returns the user.
async fn writing(state: &State, req: &HttpRequest) -> Result<String, WebError> {
    if !state.dashboard.auth.actions() {
        return Err(refused(
            "making decisions is off: set [web] actions = true and write credentials",
        ));
    }
    if from_here(req) == Some(false) {
        return Err(refused(
            "this request comes from another site's page: decisions are made from this dashboard only",
        ));
    }
    writer(state, req).await.ok_or_else(|| {
        refused("making decisions needs [web] write_token (as a bearer token) or the dashboard's login; [web] token only reads")
    })
}

async fn made(state: &State, request: &Request, user: &str) -> Result<Decision, WebError> {
    let stored = request
        .decide(state.dashboard.storage.as_ref(), user)
        .await?;
    // The audit trail's line; a closed stdout must not cost the answer.
    let _ = writeln!(
        std::io::stdout().lock(),
        "aegis-web: {user} decided #{}: {} {}",
        stored.id,
        stored.action,
        stored.target_text()
    );
    Ok(stored)
}

/// `GET /api/v1/decisions[?active=true]`: oldest first.
#[get("/decisions")]
pub async fn api_list(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    let params = Params::of(&req, &["active"])?;
    let store = state.heavy.as_ref();
    let decisions = match params.get("active") {
        Some("true") => decision::active(store).await?,
        None | Some("false") => decision::all(store).await?,
        Some(other) => {
            return Err(WebError::bad_request(format!(
                "active={other:?}: expected true or false"
            )))
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-cache"))
        .json(decisions))
}

/// `POST /api/v1/decisions` with a JSON [`Request`]: 201 and the decision.
#[post("/decisions")]
pub async fn api_decide(
    state: web::Data<State>,
    req: HttpRequest,
    body: web::Json<Request>,
) -> Result<HttpResponse, WebError> {
    let user = writing(&state, &req).await?;
    let stored = made(&state, &body, &user).await?;
    Ok(HttpResponse::Created().json(stored))
}

/// `GET /decisions`: those in force, then the latest, with a form.
#[get("/decisions")]
pub async fn page(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    Params::of(&req, &[])?;
    let store = state.heavy.as_ref();
    let all = decision::all(store).await?;
    let active = decision::active(store).await?;
    let latest = &all[all.len().saturating_sub(LISTED)..];
    let mut ctx = Context::new();
    ctx.insert("active", &rows(&state, &active, &active).await?);
    ctx.insert("latest", &rows(&state, latest, &active).await?);
    ctx.insert("total", &all.len());
    ctx.insert("form", &form(&state, &req).await);
    ctx.insert("actions", &state.dashboard.auth.actions());
    let reporting = store
        .top(
            &aegis_core::StatsQuery::last_days(1),
            aegis_core::TopBy::Host,
            1000,
        )
        .await?;
    let open: Vec<String> = tripped(&state, reporting.iter().map(|h| h.key.as_str()))
        .await?
        .into_iter()
        .filter_map(|(host, open)| open.then_some(host))
        .collect();
    ctx.insert("tripped", &open);
    crate::pages::render(&state, StatusCode::OK, "decisions.html", ctx)
}

/// The fields of a decision form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideForm {
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default, rename = "for")]
    duration: String,
    #[serde(default)]
    hosts: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    revokes: Option<u64>,
    /// The user's form token.
    csrf: String,
    /// The page to return to: an address page or the decisions page.
    #[serde(default)]
    back: String,
}

/// `POST /decisions` from a form: makes the decision, then shows the page it came from.
#[post("/decisions")]
pub async fn page_decide(
    state: web::Data<State>,
    req: HttpRequest,
    form: web::Form<DecideForm>,
) -> Result<HttpResponse, PageError> {
    let user = writing(&state, &req).await?;
    if from_here(&req).is_none() {
        return Err(refused("a browser's form says where it comes from: this one did not").into());
    }
    if !state.dashboard.auth.form_token_matches(&user, &form.csrf) {
        return Err(refused(
            "this form is out of date (the dashboard restarted) or was not made by this dashboard: reload the page and try again",
        )
        .into());
    }
    let action = match form.action.as_str() {
        "ban" => Action::Ban,
        "unban" => Action::Unban,
        "allow" => Action::Allow,
        "revoke" => Action::Revoke,
        other => {
            return Err(WebError::bad_request(format!(
                "action {other:?}: expected ban, unban, allow or revoke"
            ))
            .into())
        }
    };
    let request = Request {
        action: Some(action),
        target: form.target.clone(),
        duration: Some(form.duration.trim().to_owned()).filter(|d| !d.is_empty()),
        hosts: form
            .hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
        reason: form.reason.trim().to_owned(),
        force: false,
        revokes: form.revokes,
    };
    made(&state, &request, &user).await?;
    let address = form.back.strip_prefix("/ip/").filter(|a| {
        !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
    });
    let back = address.map_or("/decisions".to_owned(), |a| format!("/ip/{a}"));
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, back))
        .finish())
}
