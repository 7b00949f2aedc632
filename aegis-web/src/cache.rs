//! Answers kept for the second they describe, computed once per question, and
//! the admission of the computations that may be expensive.
//!
//! Every "last …" range ends at [`stats_now`](crate::views::stats_now), the end
//! of the current second, so answers to the same question within one second
//! are alike: however many dashboards and scrapers ask, the store computes
//! each at most once a second, and concurrent askers of a question not yet
//! answered wait for the one computation instead of repeating it. A request
//! with `Cache-Control: no-cache` gets a fresh answer, but forces at most one
//! computation per question per second.
//!
//! Computations run a few at a time; a bounded number wait their turn for a
//! bounded time, and the rest are told to come back (503 with `Retry-After`):
//! no client can queue work that starves the others, and no one client address
//! may hold more than a share of the places. Memory is bounded too:
//! by the bytes of answers kept, and by removing a question's gate as soon as
//! nobody waits at it, answered or not.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::web::Bytes;
use actix_web::HttpRequest;
use tokio::sync::Semaphore;

use crate::error::WebError;
use crate::views::stats_now;

/// Bytes of answers kept at most; older seconds are dropped first.
const MAX_KEPT_BYTES: usize = 32 << 20;
/// Computations at once: each may run several store queries in parallel.
const RUNNING: usize = 2;
/// Computations waiting for their turn, at most.
const WAITING: usize = 32;
/// How long a computation waits for its turn.
const WAIT: Duration = Duration::from_secs(10);
/// What a client told to come back is told to wait, in seconds.
const RETRY_AFTER: u64 = 2;
/// Computations (running or waiting) one client address may have at once, so
/// that no one client fills the queue.
const PER_CLIENT: usize = 8;

pub struct SecondCache {
    answers: Mutex<Kept>,
    /// One gate per question being computed.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    running: Semaphore,
    waiting: AtomicUsize,
    /// Computations per client address.
    clients: Mutex<HashMap<IpAddr, usize>>,
}

#[derive(Default)]
struct Kept {
    /// Per question: the second it answers, the second a `no-cache` request
    /// last forced it, and the answer.
    by_question: HashMap<String, Answer>,
    bytes: usize,
}

struct Answer {
    second: i64,
    forced: Option<i64>,
    body: Bytes,
}

impl Default for SecondCache {
    fn default() -> Self {
        SecondCache {
            answers: Mutex::default(),
            gates: Mutex::default(),
            running: Semaphore::new(RUNNING),
            waiting: AtomicUsize::new(0),
            clients: Mutex::default(),
        }
    }
}

impl SecondCache {
    /// The answer to `req`: this second's, or a new one from `compute`.
    pub async fn answer<F>(&self, req: &HttpRequest, compute: F) -> Result<Bytes, WebError>
    where
        F: Future<Output = Result<Bytes, WebError>>,
    {
        let second = stats_now().timestamp();
        let key = format!("{}?{}", req.path(), req.query_string());
        let forced = req
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("no-cache"));
        if let Some(body) = self.kept(&key, second, forced) {
            return Ok(body);
        }
        let gate = lock(&self.gates).entry(key.clone()).or_default().clone();
        let answered = async {
            let _turn = gate.lock().await;
            // Computed by whoever held the gate before us.
            if let Some(body) = self.kept(&key, second, forced) {
                return Ok(body);
            }
            let client = req.peer_addr().map(|a| a.ip().to_canonical());
            let body = self.admitted(client, compute).await?;
            self.keep(&key, second, forced, body.clone());
            Ok(body)
        }
        .await;
        let mut gates = lock(&self.gates);
        // Ours and the map's: nobody else waits at this gate.
        if Arc::strong_count(&gate) <= 2 {
            gates.remove(&key);
        }
        answered
    }

    /// Runs `compute` when its turn comes, or says to come back.
    async fn admitted<F>(&self, client: Option<IpAddr>, compute: F) -> Result<Bytes, WebError>
    where
        F: Future<Output = Result<Bytes, WebError>>,
    {
        let busy = || {
            WebError::retry(
                StatusCode::SERVICE_UNAVAILABLE,
                RETRY_AFTER,
                "the dashboard is busy with other statistics: try again in a moment",
            )
        };
        let _share = match client {
            Some(client) => Some(ClientShare::take(self, client).ok_or_else(busy)?),
            None => None,
        };
        let permit = match self.running.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= WAITING {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(busy());
                }
                let turn = tokio::time::timeout(WAIT, self.running.acquire()).await;
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                match turn {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(busy()),
                }
            }
        };
        let body = compute.await;
        drop(permit);
        body
    }

    /// This second's answer; for a forced request only when one was forced already.
    fn kept(&self, key: &str, second: i64, forced: bool) -> Option<Bytes> {
        lock(&self.answers)
            .by_question
            .get(key)
            .filter(|a| a.second == second && (!forced || a.forced == Some(second)))
            .map(|a| a.body.clone())
    }

    fn keep(&self, key: &str, second: i64, forced: bool, body: Bytes) {
        let mut kept = lock(&self.answers);
        let size = key.len() + body.len();
        if kept.bytes + size > MAX_KEPT_BYTES {
            kept.by_question.retain(|_, a| a.second == second);
            kept.bytes = kept
                .by_question
                .iter()
                .map(|(k, a)| k.len() + a.body.len())
                .sum();
            if kept.bytes + size > MAX_KEPT_BYTES {
                kept.by_question.clear();
                kept.bytes = 0;
            }
        }
        let forced = forced.then_some(second);
        let answer = Answer {
            second,
            forced,
            body,
        };
        if let Some(old) = kept.by_question.insert(key.to_owned(), answer) {
            kept.bytes -= key.len() + old.body.len();
        }
        kept.bytes += size;
    }

    /// Questions with a gate or an answer kept, for tests of the bounds.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        (
            lock(&self.gates).len(),
            lock(&self.answers).by_question.len(),
        )
    }
}

/// One of a client's computations, given back on drop.
struct ClientShare<'a> {
    cache: &'a SecondCache,
    client: IpAddr,
}

impl<'a> ClientShare<'a> {
    fn take(cache: &'a SecondCache, client: IpAddr) -> Option<Self> {
        let mut clients = lock(&cache.clients);
        let held = clients.entry(client).or_default();
        if *held >= PER_CLIENT {
            return None;
        }
        *held += 1;
        Some(ClientShare { cache, client })
    }
}

impl Drop for ClientShare<'_> {
    fn drop(&mut self) {
        let mut clients = lock(&self.cache.clients);
        if let Some(held) = clients.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                clients.remove(&self.client);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A value as a JSON body.
pub fn json_body<T: serde::Serialize>(value: &T) -> Result<Bytes, WebError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| WebError::internal(format!("encoding the answer failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[actix_web::test]
    async fn failed_questions_leave_nothing_behind() {
        let cache = SecondCache::default();
        for n in 0..1_000 {
            let req = TestRequest::get()
                .uri(&format!("/api/v1/summary?range=bad{n}"))
                .to_http_request();
            let failed = cache
                .answer(&req, async { Err(WebError::bad_request("bad range")) })
                .await;
            assert!(failed.is_err());
        }
        assert_eq!(cache.held(), (0, 0));
    }

    #[actix_web::test]
    async fn no_cache_forces_one_computation_per_second() {
        let cache = SecondCache::default();
        let req = TestRequest::get()
            .uri("/api/v1/summary")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .to_http_request();
        let computed = AtomicUsize::new(0);
        let started = stats_now().timestamp();
        for _ in 0..50 {
            cache
                .answer(&req, async {
                    computed.fetch_add(1, Ordering::SeqCst);
                    Ok(Bytes::from_static(b"{}"))
                })
                .await
                .unwrap();
        }
        let seconds = (stats_now().timestamp() - started + 1) as usize;
        assert!(computed.load(Ordering::SeqCst) <= seconds, "{computed:?}");
    }

    type Asked = actix_web::rt::task::JoinHandle<Result<Bytes, WebError>>;

    /// A question `n` from `peer` whose computation lasts until `hold` says go.
    fn slow(
        cache: &Arc<SecondCache>,
        hold: &tokio::sync::watch::Receiver<bool>,
        n: usize,
        peer: Option<std::net::SocketAddr>,
    ) -> Asked {
        let (cache, mut hold) = (cache.clone(), hold.clone());
        actix_web::rt::spawn(async move {
            let mut req = TestRequest::get().uri(&format!("/?range={n}d"));
            if let Some(peer) = peer {
                req = req.peer_addr(peer);
            }
            let req = req.to_http_request();
            cache
                .answer(&req, async move {
                    let _ = hold.wait_for(|go| *go).await;
                    Ok(Bytes::new())
                })
                .await
        })
    }

    #[actix_web::test]
    async fn one_client_cannot_fill_the_queue() {
        let cache = Arc::new(SecondCache::default());
        let (release, hold) = tokio::sync::watch::channel(false);
        let greedy = Some("198.51.100.1:40000".parse().unwrap());
        let ask = |n: usize, peer| slow(&cache, &hold, n, peer);
        let held: Vec<_> = (0..PER_CLIENT).map(|n| ask(n, greedy)).collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let more = ask(100, greedy).await.unwrap().unwrap_err();
        assert_eq!(more.status, StatusCode::SERVICE_UNAVAILABLE);
        let other = ask(101, Some("203.0.113.9:40000".parse().unwrap()));
        release.send(true).unwrap();
        assert!(
            other.await.unwrap().is_ok(),
            "another client still gets its turn"
        );
        for h in held {
            assert!(h.await.unwrap().is_ok());
        }
        assert!(lock(&cache.clients).is_empty());
    }

    #[actix_web::test]
    async fn beyond_the_queue_clients_are_told_to_come_back() {
        let cache = Arc::new(SecondCache::default());
        let (release, hold) = tokio::sync::watch::channel(false);
        let held: Vec<_> = (0..RUNNING + WAITING)
            .map(|n| slow(&cache, &hold, n, None))
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let req = TestRequest::get().uri("/?range=365d").to_http_request();
        let refused = cache.answer(&req, async { Ok(Bytes::new()) }).await;
        let refused = refused.unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.retry_after, Some(RETRY_AFTER));
        release.send(true).unwrap();
        for s in held {
            assert!(s.await.unwrap().is_ok());
        }
    }
}
