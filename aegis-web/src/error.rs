//! Errors as responses: JSON for the API, a small HTML page for browsers.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// A failed request, answered as JSON (`{"error": …}`).
#[derive(Debug)]
pub struct WebError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds after which a client may try again (503 and 429).
    pub retry_after: Option<u64>,
}

impl WebError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        WebError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// `status` (503 busy, 429 too many attempts), to be tried again in `seconds`.
    pub fn retry(status: StatusCode, seconds: u64, message: impl Into<String>) -> Self {
        WebError {
            retry_after: Some(seconds),
            ..Self::new(status, message)
        }
    }

    /// The response's status and headers, for either form of the body.
    fn response(&self) -> actix_web::HttpResponseBuilder {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header(("Retry-After", seconds.to_string()));
        }
        response
    }
}

impl From<aegis_core::Error> for WebError {
    fn from(e: aegis_core::Error) -> Self {
        use aegis_core::Error;
        let status = match e {
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            eprintln!("aegis-web: {e}");
        }
        WebError::new(status, e.to_string())
    }
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WebError {}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.response().json(json!({ "error": self.message }))
    }
}

/// The same error, answered as an HTML page.
#[derive(Debug)]
pub struct PageError(pub WebError);

impl<E: Into<WebError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for PageError {}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.0.status;
        let title = status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · Aegis</title><link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\">\
             <link rel=\"stylesheet\" href=\"/static/app.css\"></head>\
             <body><main class=\"page\"><h1>{title}</h1><p class=\"error\">{}</p>\
             <p><a href=\"/\">Back to the overview</a></p></main></body></html>",
            tera::escape_html(&self.0.message)
        );
        self.0
            .response()
            .content_type("text/html; charset=utf-8")
            .body(body)
    }
}
