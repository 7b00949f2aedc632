//! `aegis-web`: the Aegis dashboard (server-rendered pages, a world map and a
//! daily chart), its JSON API, exports, Prometheus metrics and health check.
//!
//! [`Dashboard`] holds what every request needs; [`serve`] runs it on a
//! listener. Everything it shows comes from the [`Storage`] statistics, so a
//! page costs the same at a thousand events as at ten million.
#![warn(missing_docs)]

mod api;
pub mod app;
mod assets;
mod auth;
mod cache;
mod decide;
mod demo;
mod error;
mod export;
mod metrics;
mod pages;
mod params;
mod timeline;
mod views;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, App, HttpServer};
use aegis_core::{Storage, Tz};

pub use auth::{hash_password, Auth};
pub use demo::{demo_events, live_event, DEMO_HOST_SUFFIX};

/// Everything a request needs: the store, the time zone days are counted in,
/// and who may look.
pub struct Dashboard {
    /// Where events are read from.
    pub storage: Arc<dyn Storage>,
    /// Days in charts and dates in forms are in this zone.
    pub tz: Tz,
    /// Who may look; open when nothing is configured.
    pub auth: Auth,
    /// Show the "demo data" banner.
    pub demo: bool,
    /// `[share]`, when bans are shared: the pages and `/metrics` show whose
    /// circuit breaker is open.
    pub share: Option<aegis_core::share::SharePolicy>,
}

/// Shared state of the running server.
pub(crate) struct State {
    pub dashboard: Dashboard,
    pub templates: tera::Tera,
    pub metrics: metrics::Metrics,
    pub answers: cache::SecondCache,
    /// The store as statistics, address pages and exports see it: a few calls
    /// at a time, so that health checks, metrics and the latest events always
    /// find a free connection.
    pub heavy: Arc<dyn Storage>,
}

/// Store calls of statistics and exports at once (the SQLite backend serves
/// with six read connections).
const HEAVY_CALLS: usize = 3;

/// The Content-Security-Policy: only this server's scripts, styles and data.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Starts serving `dashboard` on `listener` (call inside a Tokio/actix runtime).
///
/// Uses one worker per core; the returned server runs until stopped.
pub fn serve(dashboard: Dashboard, listener: TcpListener) -> anyhow::Result<Server> {
    let heavy = aegis_core::throttled(dashboard.storage.clone(), HEAVY_CALLS);
    let state = web::Data::new(State {
        heavy,
        dashboard,
        templates: pages::templates()?,
        metrics: metrics::Metrics::default(),
        answers: cache::SecondCache::default(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(decide::json_body())
            .app_data(decide::form_body())
            .wrap(from_fn(auth::require))
            .wrap(from_fn(metrics::observe))
            .wrap(from_fn(head_is_get))
            .wrap(
                DefaultHeaders::new()
                    .add(("Content-Security-Policy", CSP))
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("X-Frame-Options", "DENY"))
                    // Nothing leaves for other sites; this dashboard's own
                    // forms keep their Origin (with `no-referrer` it is "null").
                    .add(("Referrer-Policy", "same-origin"))
                    .add((
                        "Permissions-Policy",
                        "geolocation=(), camera=(), microphone=()",
                    )),
            )
            .configure(routes)
    })
    // Store calls run on blocking threads: room for the throttled heavy ones
    // and for cheap ones beside them; more only costs memory.
    .worker_max_blocking_threads(8)
    .listen(listener)?
    .shutdown_timeout(5)
    .run();
    Ok(server)
}

/// `HEAD` answers every `GET` route: routed as `GET`, and the server sends the
/// head of the response without its body.
async fn head_is_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    next.call(req).await
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(pages::overview)
        .service(pages::scoped)
        .service(pages::ip)
        .service(pages::events)
        .service(decide::page)
        .service(decide::page_decide)
        .service(export::events_csv)
        .service(export::events_json)
        .service(export::blocklist)
        .service(assets::asset)
        .service(metrics::health)
        .service(metrics::metrics)
        .service(
            web::scope("/api/v1")
                .service(api::summary)
                .service(api::daily)
                .service(api::top)
                .service(api::events)
                .service(api::ip)
                .service(api::map)
                .service(decide::api_list)
                .service(decide::api_decide)
                .default_service(web::to(api::not_found)),
        )
        .default_service(web::to(pages::not_found));
}
