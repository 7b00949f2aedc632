//! An optional online provider (ip-api.com's batch API) for users without city or
//! ASN files. Used by backfills only, never on the ban path: it honours the
//! provider's rate limit with a token bucket, obeys 429 replies, and stops with a
//! clear message rather than wait too long.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::event::Geo;

/// ip-api.com's free batch endpoint allows 15 requests a minute, 100 addresses each.
pub const IP_API_URL: &str = "http://ip-api.com";
const BATCH: usize = 100;
const FIELDS: &str = "status,message,countryCode,city,lat,lon,as,query";

/// Why the provider could not answer.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    /// The provider's limit is reached and waiting for it would exceed the allowed wait.
    #[error("the provider's rate limit is reached (retry in {retry_after:?}); answers so far are cached, run the backfill again later")]
    RateLimited {
        /// When the provider says it will accept requests again.
        retry_after: Duration,
    },
    /// No answer in time.
    #[error("the provider did not answer within {0:?}")]
    Timeout(Duration),
    /// The provider answered something unusable.
    #[error("unusable answer from the provider: {0}")]
    Malformed(String),
    /// Any other HTTP or network failure.
    #[error("provider request failed: {0}")]
    Http(String),
}

/// A token bucket: `per_minute` requests, refilled continuously.
struct Bucket {
    capacity: f64,
    tokens: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_minute: u32) -> Self {
        let capacity = f64::from(per_minute.max(1));
        Bucket {
            capacity,
            tokens: capacity,
            per_sec: capacity / 60.0,
            last: Instant::now(),
        }
    }

    /// Reserves a token; returns how long to wait before using it.
    fn reserve(&mut self) -> Duration {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_sec)
            .min(self.capacity);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_sec)
        }
    }

    /// Gives back a reserved token that was not used.
    fn refund(&mut self) {
        self.tokens += 1.0;
    }

    fn drain(&mut self) {
        self.tokens = 0.0;
        self.last = Instant::now();
    }
}

/// The client of ip-api.com's batch API (or a server speaking it).
pub struct OnlineProvider {
    client: reqwest::Client,
    base: String,
    bucket: Bucket,
    timeout: Duration,
    max_wait: Duration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status: String,
    query: String,
    country_code: Option<String>,
    city: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    #[serde(rename = "as")]
    as_field: Option<String>,
}

impl OnlineProvider {
    /// A client of `base` (ip-api.com: [`IP_API_URL`]) allowed `per_minute` requests,
    /// each bounded by `timeout`, waiting at most `max_wait` for the rate limit.
    pub fn ip_api(
        base: &str,
        per_minute: u32,
        timeout: Duration,
        max_wait: Duration,
    ) -> Result<Self, OnlineError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("aegis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OnlineError::Http(e.to_string()))?;
        Ok(OnlineProvider {
            client,
            base: base.trim_end_matches('/').to_owned(),
            bucket: Bucket::new(per_minute),
            timeout,
            max_wait,
        })
    }

    /// Locates up to 100 addresses per request; an address the provider does not
    /// know comes back as `None`.
    pub async fn locate(
        &mut self,
        ips: &[IpAddr],
    ) -> Result<Vec<(IpAddr, Option<Geo>)>, OnlineError> {
        let mut out = Vec::with_capacity(ips.len());
        for chunk in ips.chunks(BATCH) {
            out.extend(self.batch(chunk).await?);
        }
        Ok(out)
    }

    async fn batch(&mut self, ips: &[IpAddr]) -> Result<Vec<(IpAddr, Option<Geo>)>, OnlineError> {
        let body: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
        let mut retried = false;
        loop {
            let wait = self.bucket.reserve();
            if wait > self.max_wait {
                self.bucket.refund();
                return Err(OnlineError::RateLimited { retry_after: wait });
            }
            tokio::time::sleep(wait).await;
            let reply = self
                .client
                .post(format!("{}/batch?fields={FIELDS}", self.base))
                .json(&body)
                .send()
                .await
                .map_err(|e| self.request_error(e))?;
            let remaining = header_secs(&reply, "x-rl");
            let reset = header_secs(&reply, "x-ttl").map(Duration::from_secs);
            if reply.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                let retry_after = reset.unwrap_or(Duration::from_secs(60));
                self.bucket.drain();
                if retried || retry_after > self.max_wait {
                    return Err(OnlineError::RateLimited { retry_after });
                }
                retried = true;
                tokio::time::sleep(retry_after).await;
                continue;
            }
            if !reply.status().is_success() {
                return Err(OnlineError::Http(format!("HTTP {}", reply.status())));
            }
            if remaining == Some(0) {
                // The provider's own count says stop: no token until its window resets.
                self.bucket.drain();
            }
            let answers: Vec<Answer> = reply.json().await.map_err(|e| {
                if e.is_timeout() {
                    OnlineError::Timeout(self.timeout)
                } else {
                    OnlineError::Malformed(e.to_string())
                }
            })?;
            return answers_for(ips, answers);
        }
    }

    fn request_error(&self, e: reqwest::Error) -> OnlineError {
        if e.is_timeout() {
            OnlineError::Timeout(self.timeout)
        } else {
            OnlineError::Http(e.to_string())
        }
    }
}

fn header_secs(reply: &reqwest::Response, name: &str) -> Option<u64> {
    reply
        .headers()
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Matches answers to the addresses asked, by their `query` field.
fn answers_for(
    ips: &[IpAddr],
    answers: Vec<Answer>,
) -> Result<Vec<(IpAddr, Option<Geo>)>, OnlineError> {
    if answers.len() != ips.len() {
        return Err(OnlineError::Malformed(format!(
            "{} answers for {} addresses",
            answers.len(),
            ips.len()
        )));
    }
    let mut out = Vec::with_capacity(ips.len());
    for a in answers {
        let ip: IpAddr = crate::event::parse_ip(&a.query).map_err(|_| {
            OnlineError::Malformed(format!("unknown address {:?} in the answer", a.query))
        })?;
        if !ips.contains(&ip) {
            return Err(OnlineError::Malformed(format!("{ip} was not asked for")));
        }
        let geo = (a.status == "success").then(|| {
            let (asn, as_org) = split_as(a.as_field.as_deref().unwrap_or_default());
            Geo {
                country: a
                    .country_code
                    .filter(|c| c.len() == 2)
                    .map(|c| c.to_ascii_uppercase()),
                city: a.city.filter(|c| {
                    !c.is_empty() && c.len() <= 256 && !c.chars().any(char::is_control)
                }),
                latitude: a.lat.filter(|v| (-90.0..=90.0).contains(v)),
                longitude: a.lon.filter(|v| (-180.0..=180.0).contains(v)),
                asn,
                as_org,
            }
        });
        out.push((
            ip,
            geo.filter(|g| g.validate().is_ok() && *g != Geo::default()),
        ));
    }
    Ok(out)
}

/// `"AS15169 Google LLC"` into (15169, "Google LLC").
fn split_as(field: &str) -> (Option<u32>, Option<String>) {
    let Some(rest) = field.strip_prefix("AS") else {
        return (None, None);
    };
    let (number, org) = rest.split_once(' ').unwrap_or((rest, ""));
    let org = org.trim();
    (
        number.parse().ok(),
        (!org.is_empty() && org.len() <= 256 && !org.chars().any(char::is_control))
            .then(|| org.to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_field() {
        assert_eq!(
            split_as("AS15169 Google LLC"),
            (Some(15169), Some("Google LLC".into()))
        );
        assert_eq!(split_as("AS64500"), (Some(64500), None));
        assert_eq!(split_as(""), (None, None));
    }

    #[test]
    fn bucket_refills_at_its_rate() {
        let mut b = Bucket::new(60);
        for _ in 0..60 {
            assert_eq!(b.reserve(), Duration::ZERO);
        }
        let next = b.reserve();
        assert!(
            next > Duration::from_millis(900) && next <= Duration::from_secs(1),
            "{next:?}"
        );
        let after = b.reserve();
        assert!(
            after > Duration::from_millis(1900),
            "reservations queue up: {after:?}"
        );
        b.refund();
        b.refund();
        assert!(b.reserve() <= next);
    }
}
