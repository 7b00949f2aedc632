//! Who may look: a bearer token and/or HTTP basic auth with an Argon2 hash.
//! `/health` stays open for load balancers, saying only up or down.
//!
//! Argon2 runs off the async workers and under no lock, and a client address
//! that keeps failing is told to wait (429): wrong passwords cannot slow the
//! others. Without credentials, the dashboard answers only to loopback names,
//! address literals and the configured `public_url`, so that a web page the
//! admin visits cannot read it through a rebound DNS name.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::http::uri::Authority;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use aegis_core::WebSettings;
use argon2::Argon2;
use base64::Engine;
use password_hash::rand_core::{OsRng, RngCore};
use password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

use crate::State;

/// Credentials that verified, remembered so that each request does not pay
/// for an Argon2 verification (tens of milliseconds by design).
const REMEMBERED: usize = 32;
/// Failed attempts a client address may make per window before it must wait.
const FAILURES: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);
/// Client addresses whose failures are remembered, at most.
const TRACKED: usize = 10_000;

/// The configured credentials; open when none are.
#[derive(Default)]
pub struct Auth {
    token: Option<[u8; 32]>,
    /// Reads, and makes decisions when `actions` is on.
    write_token: Option<[u8; 32]>,
    /// `[web] actions`: people may make decisions.
    actions: bool,
    /// Signs the forms that make decisions, new at every start.
    form_key: [u8; 32],
    basic: Option<Arc<(String, String)>>,
    verified: Mutex<Vec<[u8; 32]>>,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// The host of `[web] public_url`, lower case.
    public_host: Option<String>,
}

impl Auth {
    /// Reads `[web] token`, `user` and `password_hash`, checking the hash's form.
    pub fn from_settings(web: &WebSettings) -> aegis_core::Result<Self> {
        let config = |m: String| aegis_core::Error::Config(m);
        let digest = |key: &str, value: Option<&aegis_core::Secret>| match value
            .map(|t| t.expose().trim())
        {
            Some(t) if t.len() < 16 => Err(config(format!(
                "[web] {key} must be at least 16 characters; try: openssl rand -hex 24"
            ))),
            Some(t) => Ok(Some(<[u8; 32]>::from(Sha256::digest(t)))),
            None => Ok(None),
        };
        let token = digest("token", web.token.as_ref())?;
        let write_token = digest("write_token", web.write_token.as_ref())?;
        if write_token.is_some() && write_token == token {
            return Err(config(
                "[web] write_token must differ from token, which only reads".into(),
            ));
        }
        let basic = match (&web.user, &web.password_hash) {
            (Some(user), Some(hash)) => {
                PasswordHash::new(hash.expose()).map_err(|e| {
                    config(format!(
                        "[web] password_hash is not an Argon2 PHC string ({e}); make one with: aegis-web hash-password"
                    ))
                })?;
                Some(Arc::new((user.clone(), hash.expose().to_owned())))
            }
            (None, None) => None,
            _ => {
                return Err(config(
                    "[web] user and password_hash go together: set both, or neither".into(),
                ))
            }
        };
        let public_host = web
            .public_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        if web.actions && write_token.is_none() && basic.is_none() {
            return Err(config(
                "[web] actions needs credentials, even on loopback: set [web] write_token, or user and password_hash (aegis-web hash-password)".into(),
            ));
        }
        let mut form_key = [0; 32];
        OsRng.fill_bytes(&mut form_key);
        Ok(Auth {
            token,
            write_token,
            actions: web.actions,
            form_key,
            basic,
            public_host,
            ..Auth::default()
        })
    }

    /// Whether any credential is configured.
    pub fn is_configured(&self) -> bool {
        self.token.is_some() || self.write_token.is_some() || self.basic.is_some()
    }

    /// Whether people may make decisions here at all.
    pub fn actions(&self) -> bool {
        self.actions
    }

    /// Who may make decisions with `authorization`: the dashboard's user, or
    /// `api` for the write token; `None` for readers, and for everyone while
    /// actions are off.
    pub(crate) async fn writer(&self, authorization: Option<&str>) -> Option<String> {
        if !self.actions {
            return None;
        }
        let value = authorization?;
        if let Some(token) = value.strip_prefix("Bearer ") {
            return matches(self.write_token, token).then(|| "api".to_owned());
        }
        let basic = self.basic.as_ref()?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.strip_prefix("Basic ")?.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())?;
        let (user, password) = decoded.split_once(':')?;
        if user != basic.0 || matches(self.token, password) || matches(self.write_token, password) {
            return None;
        }
        // The middleware verified these credentials for this very request.
        self.verify(authorization, false)
            .await
            .then(|| user.to_owned())
    }

    /// The token a form that makes decisions carries for `user`: forged forms
    /// from other sites cannot know it.
    pub(crate) fn form_token(&self, user: &str) -> String {
        hmac(&self.form_key, user.as_bytes())
    }

    /// Whether `given` is `user`'s form token.
    pub(crate) fn form_token_matches(&self, user: &str, given: &str) -> bool {
        let want = self.form_token(user);
        want.len() == given.len()
            && want
                .bytes()
                .zip(given.bytes())
                .fold(0, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Whether `authorization` carries valid credentials.
    pub(crate) async fn allows(&self, authorization: Option<&str>) -> bool {
        self.verify(authorization, true).await
    }

    /// [`Auth::allows`], running Argon2 only when `hash` is set: otherwise only
    /// the token and passwords verified before are recognised.
    async fn verify(&self, authorization: Option<&str>, hash: bool) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        if let Some(token) = value.strip_prefix("Bearer ") {
            return self.token_matches(token);
        }
        let Some(encoded) = value.strip_prefix("Basic ") else {
            return false;
        };
        let Some(decoded) = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        if self.token_matches(password) {
            return true;
        }
        let Some(basic) = self.basic.clone() else {
            return false;
        };
        if user != basic.0 {
            return false;
        }
        let key: [u8; 32] = Sha256::digest(decoded.as_bytes()).into();
        if lock(&self.verified).contains(&key) {
            return true;
        }
        if !hash {
            return false;
        }
        let password = password.to_owned();
        let ok = actix_web::rt::task::spawn_blocking(move || {
            PasswordHash::new(&basic.1).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        if ok {
            let mut verified = lock(&self.verified);
            if verified.len() == REMEMBERED {
                verified.remove(0);
            }
            verified.push(key);
        }
        ok
    }

    /// How long `client` must wait before it may try again, if it failed too often.
    fn must_wait(&self, client: IpAddr) -> Option<Duration> {
        let failures = lock(&self.failures);
        let (since, n) = failures.get(&client)?;
        let left = WINDOW.checked_sub(since.elapsed())?;
        (*n >= FAILURES).then_some(left)
    }

    /// Counts a failed attempt of `client`.
    fn failed(&self, client: IpAddr) {
        let mut failures = lock(&self.failures);
        if failures.len() >= TRACKED {
            failures.retain(|_, (since, _)| since.elapsed() < WINDOW);
            if failures.len() >= TRACKED {
                failures.clear();
            }
        }
        let entry = failures.entry(client).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    /// Whether an unauthenticated dashboard may answer a request for `host`
    /// (the `Host` header, with or without a port).
    fn answers_to(&self, host: &str) -> bool {
        let Ok(authority) = host.parse::<Authority>() else {
            return false;
        };
        let name = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        // A rebinding attack needs a name: an address literal is safe.
        name.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.public_host.as_deref() == Some(name.as_str())
    }

    /// Whether `given` is the read token or the write token.
    fn token_matches(&self, given: &str) -> bool {
        matches(self.token, given) | matches(self.write_token, given)
    }
}

/// Compares digests, so the time taken says nothing about the token.
fn matches(token: Option<[u8; 32]>, given: &str) -> bool {
    let given: [u8; 32] = Sha256::digest(given.trim()).into();
    token.is_some_and(|t| t.iter().zip(given).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0)
}

/// HMAC-SHA256 of `message` under `key`, in hex.
fn hmac(key: &[u8; 32], message: &[u8]) -> String {
    let pad = |byte: u8| {
        let mut block = [byte; 64];
        block.iter_mut().zip(key).for_each(|(b, k)| *b ^= k);
        block
    };
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

/// An Argon2id PHC string for `password`, for `[web] password_hash`.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

/// Lets a request through when it carries valid credentials (or none are
/// needed and it names a host the dashboard answers to).
pub async fn require(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<State>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let auth = &state.dashboard.auth;
    if req.path() == "/health" {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    if !auth.is_configured() {
        // The Host header itself: forwarding headers are the client's to invent.
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or(req.uri().authority().map(|a| a.as_str()))
            .unwrap_or_default()
            .to_owned();
        if !auth.answers_to(&host) {
            let response = HttpResponse::MisdirectedRequest().json(serde_json::json!({
                "error": format!(
                    "this dashboard does not answer to {host:?}: open it by a loopback name or \
                     address, or set [web] public_url (or configure credentials)"
                )
            }));
            return Ok(req.into_response(response));
        }
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let client = req.peer_addr().map(|a| a.ip().to_canonical());
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // An address that failed too often may still pass with the token or a
    // password verified before (cheap to check): behind a proxy every client
    // shares one address, and one guesser must not lock the others out.
    if let Some(wait) = client.and_then(|c| auth.must_wait(c)) {
        if auth.verify(authorization.as_deref(), false).await {
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
        let seconds = wait.as_secs().max(1);
        let response = HttpResponse::TooManyRequests()
            .insert_header((header::RETRY_AFTER, seconds.to_string()))
            .json(serde_json::json!({
                "error": format!("too many failed attempts from this address: try again in {seconds} s")
            }));
        return Ok(req.into_response(response));
    }
    if auth.allows(authorization.as_deref()).await {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    // A browser's first request carries no credentials: only wrong ones count.
    if let (Some(client), Some(_)) = (client, &authorization) {
        auth.failed(client);
    }
    let response = HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"Aegis\", charset=\"UTF-8\""))
        .json(serde_json::json!({
            "error": "authentication required: send the configured token (Authorization: Bearer …) or the user and password"
        }));
    Ok(req.into_response(response))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
