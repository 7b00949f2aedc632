//! Stylesheets, scripts and the world map, compiled into the binary: the
//! dashboard needs no CDN and works offline.

use std::sync::LazyLock;

use actix_web::http::header::{self, EntityTag};
use actix_web::{get, web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::error::WebError;

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $path:literal, $mime:expr) => {
        Asset {
            name: $name,
            mime: $mime,
            body: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: [Asset; 8] = [
    asset!("favicon.svg", "favicon.svg", "image/svg+xml"),
    asset!("app.css", "app.css", CSS),
    asset!("app.js", "app.js", JS),
    asset!("uPlot.min.css", "vendor/uPlot.min.css", CSS),
    asset!("uPlot.iife.min.js", "vendor/uPlot.iife.min.js", JS),
    asset!("jsvectormap.min.css", "vendor/jsvectormap.min.css", CSS),
    asset!("jsvectormap.min.js", "vendor/jsvectormap.min.js", JS),
    asset!("jsvectormap-world.js", "vendor/jsvectormap-world.js", JS),
];

/// Content hashes, so browsers revalidate cheaply after an upgrade.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            digest[..12].iter().map(|b| format!("{b:02x}")).collect()
        })
        .collect()
});

#[get("/static/{name}")]
pub async fn asset(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, WebError> {
    let Some(i) = ASSETS.iter().position(|a| a.name == name.as_str()) else {
        return Err(WebError::not_found(format!("no asset named {name:?}")));
    };
    let (asset, etag) = (&ASSETS[i], EntityTag::new_strong(ETAGS[i].clone()));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag.to_string()));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"));
    Ok(if fresh {
        response.finish()
    } else {
        response.content_type(asset.mime).body(asset.body)
    })
}
