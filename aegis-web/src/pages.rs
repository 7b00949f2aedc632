//! The HTML pages: overview, country/jail/host views, IP detail and event search.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{get, web, HttpRequest, HttpResponse};
use tera::{Context, Tera};

use crate::error::{PageError, WebError};
use crate::params::{address, checked_name, Params, FILTER_KEYS};
use aegis_core::{Facet, Scope};

use crate::views::{self, Clock};
use crate::State;

/// Events per page of a search.
const PER_PAGE: u32 = 50;

/// The built-in templates; `.html` names are escaped automatically.
pub fn templates() -> anyhow::Result<Tera> {
    let mut tera = Tera::default();
    tera.add_raw_templates([
        ("base.html", include_str!("../templates/base.html")),
        ("macros.html", include_str!("../templates/macros.html")),
        ("overview.html", include_str!("../templates/overview.html")),
        ("ip.html", include_str!("../templates/ip.html")),
        ("events.html", include_str!("../templates/events.html")),
        (
            "decisions.html",
            include_str!("../templates/decisions.html"),
        ),
    ])?;
    Ok(tera)
}

fn render_html(state: &State, name: &str, mut ctx: Context) -> Result<String, WebError> {
    ctx.insert("version", env!("CARGO_PKG_VERSION"));
    ctx.insert("tz", state.dashboard.tz.name());
    ctx.insert("demo", &state.dashboard.demo);
    state
        .templates
        .render(name, &ctx)
        .map_err(|e| WebError::internal(format!("rendering {name} failed: {e:?}")))
}

pub(crate) fn render(
    state: &State,
    status: StatusCode,
    name: &str,
    ctx: Context,
) -> Result<HttpResponse, PageError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(render_html(state, name, ctx)?))
}

fn clock(state: &State) -> Clock {
    Clock(state.dashboard.tz)
}

#[get("/")]
pub async fn overview(
    state: web::Data<State>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    show_overview(&state, &req, Scope::ALL).await
}

#[get("/{kind:country|jail|host}/{value}")]
pub async fn scoped(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (kind, value) = path.into_inner();
    let scope = match Facet::parse(&kind) {
        Some(Facet::Country) => Scope::of(Facet::Country, aegis_core::parse_country(&value)?),
        Some(facet) => Scope::of(facet, checked_name(facet.as_str(), &value)?),
        None => unreachable!("the route admits country, jail and host only"),
    };
    show_overview(&state, &req, scope).await
}

async fn show_overview(
    state: &State,
    req: &HttpRequest,
    scope: Scope,
) -> Result<HttpResponse, PageError> {
    let compute = async {
        let params = Params::of(req, &["range", "days"])?;
        let (range, q) = params.range("30d")?;
        let days = params.number("days", 30, 1, 3653)?;
        let o = views::overview(
            state.heavy.as_ref(),
            clock(state),
            scope.clone(),
            range,
            q,
            days as u32,
        )
        .await?;
        let mut ctx = Context::new();
        ctx.insert("scope_query", &scope_query(&scope));
        ctx.insert("o", &o);
        Ok(Bytes::from(render_html(state, "overview.html", ctx)?))
    };
    let html = state.answers.answer(req, compute).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html))
}

/// `kind=value`, URL-encoded, for links and API calls that keep the scope.
pub fn scope_query(scope: &Scope) -> String {
    match scope.single() {
        Some((facet, value)) => encode(&[(facet.as_str(), value)]),
        None => String::new(),
    }
}

fn encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[get("/ip/{ip}")]
pub async fn ip(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let params = Params::of(&req, &["page"])?;
    let ip = address(&path)?;
    let page = params.number("page", 1, 1, 1_000_000)?;
    let offset = (page - 1) * u64::from(PER_PAGE);
    let window = (offset as usize, PER_PAGE as usize);
    let detail = views::ip_detail(state.heavy.as_ref(), clock(&state), ip, window).await?;
    let Some(d) = detail else {
        return Err(WebError::not_found(format!(
            "Nothing is stored for {ip}: it has not been banned on any host reporting here."
        ))
        .into());
    };
    let store = state.heavy.as_ref();
    let (decisions, active) = tokio::try_join!(
        store.decision_log().on(ip),
        aegis_core::decision::active(store)
    )?;
    let mut ctx = Context::new();
    let more = offset + (d.events.len() as u64) < d.events_total;
    ctx.insert("prev_page", &(page > 1).then(|| page - 1));
    ctx.insert("next_page", &more.then(|| page + 1));
    ctx.insert("d", &d);
    ctx.insert(
        "decisions",
        &crate::decide::rows(&state, &decisions, &active).await?,
    );
    ctx.insert("form", &crate::decide::form(&state, &req).await);
    render(&state, StatusCode::OK, "ip.html", ctx)
}

#[get("/events")]
pub async fn events(state: web::Data<State>, req: HttpRequest) -> Result<HttpResponse, PageError> {
    let mut accepted = FILTER_KEYS.to_vec();
    accepted.push("page");
    let params = Params::of(&req, &accepted)?;
    let form: BTreeMap<&str, &str> = params.pairs().collect();
    let mut ctx = Context::new();
    ctx.insert("f", &form);
    let query = params
        .pairs()
        .filter(|(k, _)| *k != "page")
        .collect::<Vec<_>>();
    ctx.insert("query", &encode(&query));
    let searched = async {
        let filter = params.filter(state.dashboard.tz)?;
        let page = params.number("page", 1, 1, 1_000_000)?;
        let offset = (page - 1) * u64::from(PER_PAGE);
        let found = views::event_page(
            state.heavy.as_ref(),
            clock(&state),
            &filter,
            views::newest_first(PER_PAGE, offset),
            true,
        )
        .await?;
        Ok::<_, WebError>((page, found))
    }
    .await;
    match searched {
        Ok((page, found)) => {
            let link = |n: u64| {
                let mut pairs = query.clone();
                let n = n.to_string();
                pairs.push(("page", &n));
                encode(&pairs)
            };
            let more = found.offset + (found.events.len() as u64) < found.total.unwrap_or(0);
            ctx.insert("prev_page", &(page > 1).then(|| link(page - 1)));
            ctx.insert("next_page", &more.then(|| link(page + 1)));
            ctx.insert("p", &found);
            render(&state, StatusCode::OK, "events.html", ctx)
        }
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            ctx.insert("error", &e.message);
            render(&state, StatusCode::BAD_REQUEST, "events.html", ctx)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, PageError> {
    Err(WebError::not_found(format!("There is no page at {}.", req.path())).into())
}
