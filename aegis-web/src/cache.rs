//! Answers kept for the second they describe, computed once per question.
//!
//! Every "last …" range ends at [`stats_now`](crate::views::stats_now), the end
//! of the current second, so answers to the same question within one second
//! are alike: however many dashboards and scrapers ask, the store computes
//! each at most once a second, and concurrent askers of a question not yet
//! answered wait for the one computation instead of repeating it. A request
//! with `Cache-Control: no-cache` always gets a fresh answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::HttpRequest;

use crate::error::WebError;
use crate::views::stats_now;

/// Answers kept at most; older seconds are dropped first.
const CAPACITY: usize = 512;

#[derive(Default)]
pub struct SecondCache {
    answers: Mutex<HashMap<String, (i64, Bytes)>>,
    /// One gate per question being computed.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl SecondCache {
    /// The answer to `req`: this second's, or a new one from `compute`.
    pub async fn answer<F>(&self, req: &HttpRequest, compute: F) -> Result<Bytes, WebError>
    where
        F: Future<Output = Result<Bytes, WebError>>,
    {
        let second = stats_now().timestamp();
        let key = format!("{}?{}", req.path(), req.query_string());
        let fresh = req
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("no-cache"));
        if !fresh {
            if let Some(body) = self.kept(&key, second) {
                return Ok(body);
            }
        }
        let gate = lock(&self.gates).entry(key.clone()).or_default().clone();
        let _turn = gate.lock().await;
        if !fresh {
            // Computed by whoever held the gate before us.
            if let Some(body) = self.kept(&key, second) {
                return Ok(body);
            }
        }
        let body = compute.await?;
        self.keep(key, second, body.clone());
        Ok(body)
    }

    fn kept(&self, key: &str, second: i64) -> Option<Bytes> {
        lock(&self.answers)
            .get(key)
            .filter(|(at, _)| *at == second)
            .map(|(_, body)| body.clone())
    }

    fn keep(&self, key: String, second: i64, body: Bytes) {
        let mut answers = lock(&self.answers);
        if answers.len() >= CAPACITY {
            answers.retain(|_, (at, _)| *at == second);
            if answers.len() >= CAPACITY {
                answers.clear();
            }
            // Gates nobody waits at go too.
            lock(&self.gates).retain(|_, gate| Arc::strong_count(gate) > 1);
        }
        answers.insert(key, (second, body));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A value as a JSON body.
pub fn json_body<T: serde::Serialize>(value: &T) -> Result<Bytes, WebError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| WebError {
            status: actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("encoding the answer failed: {e}"),
        })
}
