//! Exports: any event search as CSV or JSON (streamed page by page, so size
//! is not bounded by memory), and a plain-text blocklist of top offenders.

use std::sync::Arc;

use actix_web::web::Bytes;
use actix_web::{get, web, HttpRequest, HttpResponse};
use aegis_core::{Cursor, EventFilter, Order, Page, Storage, StoredEvent};
use chrono::Utc;
use futures_util::stream::{self, Stream};

use crate::error::WebError;
use crate::params::{Params, FILTER_KEYS};
use crate::State;

/// How an export writes rows.
#[derive(Clone, Copy)]
enum Format {
    Csv,
    Json,
}

impl Format {
    fn head(self) -> Result<Vec<u8>, WebError> {
        match self {
            Format::Csv => csv_line(StoredEvent::CSV_HEADER),
            Format::Json => Ok(b"[".to_vec()),
        }
    }

    fn rows(self, events: &[StoredEvent], first: bool) -> Result<Vec<u8>, WebError> {
        let mut out = Vec::new();
        for (i, e) in events.iter().enumerate() {
            match self {
                Format::Csv => out.extend(csv_line(e.csv_record())?),
                Format::Json => {
                    if !(first && i == 0) {
                        out.push(b',');
                    }
                    out.push(b'\n');
                    serde_json::to_writer(&mut out, e).map_err(internal)?;
                }
            }
        }
        Ok(out)
    }

    fn tail(self) -> &'static [u8] {
        match self {
            Format::Csv => b"",
            Format::Json => b"\n]\n",
        }
    }
}

fn csv_line<I: IntoIterator<Item = T>, T: AsRef<[u8]>>(fields: I) -> Result<Vec<u8>, WebError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(fields).map_err(internal)?;
    w.into_inner().map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> WebError {
    WebError::internal(format!("export failed: {e}"))
}

/// Pages of the search, oldest first, rendered as they are read.
fn rows(
    store: Arc<dyn Storage>,
    filter: EventFilter,
    format: Format,
) -> impl Stream<Item = Result<Bytes, WebError>> {
    // Paged by key, each page after the last event of the one before: a page
    // costs the same at the millionth event as at the first.
    let start = (store, filter, Some(None::<Cursor>));
    stream::try_unfold(start, move |(store, filter, after)| async move {
        let Some(after) = after else {
            return Ok(None);
        };
        let page = Page {
            limit: Page::MAX_LIMIT,
            order: Order::Asc,
            after,
            ..Page::default()
        };
        let events = store.events(&filter, page).await?;
        let first = after.is_none();
        let mut chunk = if first { format.head()? } else { Vec::new() };
        chunk.extend(format.rows(&events, first)?);
        let next = match events.last() {
            Some(last) if events.len() == Page::MAX_LIMIT as usize => Some(Some(last.cursor())),
            _ => {
                chunk.extend(format.tail());
                None
            }
        };
        Ok(Some((Bytes::from(chunk), (store, filter, next))))
    })
}

async fn export(
    state: web::Data<State>,
    req: HttpRequest,
    format: Format,
) -> Result<HttpResponse, WebError> {
    let params = Params::of(&req, &FILTER_KEYS)?;
    let filter = params.filter(state.dashboard.tz)?;
    // Fail before streaming when the store is down or the filter is refused.
    state
        .dashboard
        .storage
        .events(&filter, Page::first(1))
        .await?;
    let stamp = Utc::now().format("%Y%m%d-%H%M%S");
    let (mime, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    Ok(HttpResponse::Ok()
        .content_type(mime)
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"aegis-events-{stamp}.{ext}\""),
        ))
        .streaming(rows(state.heavy.clone(), filter, format)))
}

#[get("/events.csv")]
pub async fn events_csv(
    state: web::Data<State>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    export(state, req, Format::Csv).await
}

#[get("/events.json")]
pub async fn events_json(
    state: web::Data<State>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    export(state, req, Format::Json).await
}

/// Top offenders, one address per line, for firewalls and ipsets.
#[get("/blocklist.txt")]
pub async fn blocklist(
    state: web::Data<State>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let params = Params::of(
        &req,
        &["range", "limit", "min_bans", "jail", "host", "country"],
    )?;
    let (range, mut q) = params.range("30d")?;
    params.narrow(&mut q)?;
    let limit = params.number("limit", 1000, 1, u64::from(Page::MAX_LIMIT))? as u32;
    let min_bans = params.number("min_bans", 1, 1, u64::from(u32::MAX))?;
    let offenders = state.heavy.top_offenders(&q, limit).await?;
    let mut body = format!(
        "# Aegis blocklist: addresses with at least {min_bans} ban(s) in the last {range}, most bans first\n# generated {}\n",
        Utc::now().to_rfc3339()
    );
    for o in offenders.iter().filter(|o| o.bans >= min_bans) {
        body.push_str(&o.ip.to_string());
        body.push('\n');
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(body))
}
