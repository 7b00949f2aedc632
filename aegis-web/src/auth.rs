//! Who may look: a bearer token and/or HTTP basic auth with an Argon2 hash.
//! `/health` stays open for load balancers.

use std::sync::Mutex;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use aegis_core::WebSettings;
use argon2::Argon2;
use base64::Engine;
use password_hash::rand_core::OsRng;
use password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

use crate::State;

/// Credentials that verified, remembered so that each request does not pay
/// for an Argon2 verification (tens of milliseconds by design).
const REMEMBERED: usize = 32;

/// The configured credentials; open when none are.
#[derive(Default)]
pub struct Auth {
    token: Option<[u8; 32]>,
    basic: Option<(String, String)>,
    verified: Mutex<Vec<[u8; 32]>>,
}

impl Auth {
    /// Reads `[web] token`, `user` and `password_hash`, checking the hash's form.
    pub fn from_settings(web: &WebSettings) -> aegis_core::Result<Self> {
        let config = |m: String| aegis_core::Error::Config(m);
        let token = match web.token.as_ref().map(|t| t.expose().trim()) {
            Some(t) if t.len() < 16 => {
                return Err(config(
                    "[web] token must be at least 16 characters; try: openssl rand -hex 24".into(),
                ))
            }
            Some(t) => Some(Sha256::digest(t).into()),
            None => None,
        };
        let basic = match (&web.user, &web.password_hash) {
            (Some(user), Some(hash)) => {
                PasswordHash::new(hash.expose()).map_err(|e| {
                    config(format!(
                        "[web] password_hash is not an Argon2 PHC string ({e}); make one with: aegis-web hash-password"
                    ))
                })?;
                Some((user.clone(), hash.expose().to_owned()))
            }
            (None, None) => None,
            _ => {
                return Err(config(
                    "[web] user and password_hash go together: set both, or neither".into(),
                ))
            }
        };
        Ok(Auth {
            token,
            basic,
            verified: Mutex::default(),
        })
    }

    /// Whether any credential is configured.
    pub fn is_configured(&self) -> bool {
        self.token.is_some() || self.basic.is_some()
    }

    fn allows(&self, authorization: Option<&str>) -> bool {
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
        let Some((want_user, hash)) = &self.basic else {
            return false;
        };
        if user != want_user {
            return false;
        }
        let key: [u8; 32] = Sha256::digest(decoded.as_bytes()).into();
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.contains(&key) {
            return true;
        }
        let ok = PasswordHash::new(hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        if ok {
            if verified.len() == REMEMBERED {
                verified.remove(0);
            }
            verified.push(key);
        }
        ok
    }

    /// Compares digests, so the time taken says nothing about the token.
    fn token_matches(&self, given: &str) -> bool {
        let given: [u8; 32] = Sha256::digest(given.trim()).into();
        self.token
            .is_some_and(|t| t.iter().zip(given).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0)
    }
}

/// An Argon2id PHC string for `password`, for `[web] password_hash`.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

/// Lets a request through when it carries valid credentials (or none are needed).
pub async fn require(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let open = req.path() == "/health"
        || req
            .app_data::<web::Data<State>>()
            .is_none_or(|s| !s.dashboard.auth.is_configured());
    if open {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let allowed = {
        let state = req.app_data::<web::Data<State>>();
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        state.is_some_and(|s| s.dashboard.auth.allows(authorization))
    };
    if allowed {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let response = HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"Aegis\", charset=\"UTF-8\""))
        .json(serde_json::json!({
            "error": "authentication required: send the configured token (Authorization: Bearer …) or the user and password"
        }));
    Ok(req.into_response(response))
}
