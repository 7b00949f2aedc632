//! Channels: each service's documented request, built from one [`Message`].
//!
//! Secrets (webhook URLs, tokens, keys) are read once, from the configuration
//! or the environment, and never appear in a log line, an error or `Debug`.

use std::time::Duration;

use aegis_core::{ChannelSettings, ChannelVia, ReportSettings, Secret};
use chrono::Utc;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};
use sha2::Sha256;

use super::Message;
use crate::error::ReportError;
use crate::render::Rendered;
use crate::Delivery;

/// Seconds to wait for a service's answer.
const TIMEOUT: Duration = Duration::from_secs(15);

/// One configured channel, checked.
pub struct Channel {
    /// Its name in `[[channel]]`.
    pub name: String,
    via: Via,
}

enum Via {
    Webhook { url: Url, secret: Option<String> },
    Slack { url: Url },
    Mattermost { url: Url },
    Discord { url: Url },
    Teams { url: Url },
    Telegram { url: Url, chat_id: String },
    Ntfy { url: Url, token: Option<String> },
    Gotify { url: Url, token: String },
    Email(Box<Delivery>),
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} channel {:?}", self.kind(), self.name)
    }
}

/// Why a message was not delivered, and when the service asked to be tried again.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong, without secrets.
    pub error: String,
    /// The service's `Retry-After` (or Telegram's `retry_after`).
    pub retry_after: Option<chrono::Duration>,
}

impl Channel {
    /// Checks `[[channel]]` (URLs, tokens, `env:` secrets); e-mail uses `[report]`.
    pub fn from_settings(
        s: &ChannelSettings,
        report: &ReportSettings,
    ) -> Result<Self, ReportError> {
        let name = s.name.trim();
        if name.is_empty() {
            return Err(ReportError::Config(
                "a [[channel]] has no name: set name = \"ops\" and use it in an alert's channels"
                    .into(),
            ));
        }
        let at = |key: &str| format!("[[channel]] {name:?}: {key}");
        let secret = |key: &str, s: &Secret| reveal(&at(key), s);
        let url = |key: &str, s: &Secret| parse_url(&at(key), &secret(key, s)?);
        let via = match &s.via {
            ChannelVia::Webhook {
                url: u,
                secret: key,
            } => Via::Webhook {
                url: url("url", u)?,
                secret: key.as_ref().map(|k| secret("secret", k)).transpose()?,
            },
            ChannelVia::Slack { url: u } => Via::Slack {
                url: url("url", u)?,
            },
            ChannelVia::Mattermost { url: u } => Via::Mattermost {
                url: url("url", u)?,
            },
            ChannelVia::Discord { url: u } => Via::Discord {
                url: url("url", u)?,
            },
            ChannelVia::Teams { url: u } => Via::Teams {
                url: url("url", u)?,
            },
            ChannelVia::Telegram {
                token,
                chat_id,
                api_url,
            } => {
                let token = secret("token", token)?;
                if token.is_empty()
                    || !token
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ":_-".contains(c))
                {
                    return Err(ReportError::Config(format!(
                        "{}: a bot token looks like 123456:ABC-DEF… (from @BotFather)",
                        at("token")
                    )));
                }
                if chat_id.trim().is_empty() {
                    return Err(ReportError::Config(format!(
                        "{}: set the chat's id (a number, or @channelname)",
                        at("chat_id")
                    )));
                }
                let base = api_url.as_deref().unwrap_or("https://api.telegram.org");
                let url = parse_url(
                    &at("api_url"),
                    &format!("{}/bot{token}/sendMessage", base.trim_end_matches('/')),
                )?;
                Via::Telegram {
                    url,
                    chat_id: chat_id.trim().to_owned(),
                }
            }
            ChannelVia::Ntfy { url: u, token } => Via::Ntfy {
                url: url("url", u)?,
                token: token.as_ref().map(|t| secret("token", t)).transpose()?,
            },
            ChannelVia::Gotify { url: u, token } => Via::Gotify {
                url: parse_url(&at("url"), &format!("{}/message", u.trim_end_matches('/')))?,
                token: secret("token", token)?,
            },
            ChannelVia::Email { to } => {
                let mut report = report.clone();
                if !to.is_empty() {
                    report.to = to.clone();
                }
                let delivery = Delivery::from_settings(&report).map_err(|e| match e {
                    ReportError::Config(why) => {
                        ReportError::Config(format!("{}: {why}", at("kind = \"email\"")))
                    }
                    other => other,
                })?;
                Via::Email(Box::new(delivery))
            }
        };
        Ok(Channel {
            name: name.to_owned(),
            via,
        })
    }

    /// The kind, as the configuration names it.
    pub fn kind(&self) -> &'static str {
        match self.via {
            Via::Webhook { .. } => "webhook",
            Via::Slack { .. } => "slack",
            Via::Mattermost { .. } => "mattermost",
            Via::Discord { .. } => "discord",
            Via::Teams { .. } => "teams",
            Via::Telegram { .. } => "telegram",
            Via::Ntfy { .. } => "ntfy",
            Via::Gotify { .. } => "gotify",
            Via::Email(_) => "email",
        }
    }

    /// What would be sent, for `--dry-run`: the body (and the headers that are
    /// not secrets), never the URL or a token.
    pub fn preview(&self, message: &Message) -> String {
        match self.request(message) {
            Request::Http { headers, body, .. } => {
                let mut out = String::new();
                for (name, value) in &headers {
                    if name != "authorization" && name != "x-gotify-key" {
                        out += &format!("{name}: {}\n", value.to_str().unwrap_or("?"));
                    }
                }
                out + "\n" + &String::from_utf8_lossy(&body)
            }
            Request::Email(_, rendered) => {
                format!("Subject: {}\n\n{}", rendered.subject, rendered.text)
            }
        }
    }

    /// Sends `message`.
    pub async fn send(&self, client: &reqwest::Client, message: &Message) -> Result<(), Failure> {
        let (url, headers, body) = match self.request(message) {
            Request::Http { url, headers, body } => (url, headers, body),
            Request::Email(delivery, rendered) => {
                return delivery
                    .send(&rendered)
                    .await
                    .map(drop)
                    .map_err(|e| Failure {
                        error: e.to_string(),
                        retry_after: None,
                    });
            }
        };
        let answer = client
            .post(url)
            .headers(headers)
            .body(body)
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| Failure {
                // reqwest's message names the URL, which is a secret here.
                error: format!("{} unreachable: {}", self.kind(), without_url(&e)),
                retry_after: None,
            })?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let header_wait = answer
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        let text = answer.text().await.unwrap_or_default();
        // Telegram says how long to wait in its JSON body.
        let body_wait = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.pointer("/parameters/retry_after").and_then(Value::as_i64));
        let said: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
        Err(Failure {
            error: format!("{} answered {status}{}", self.kind(), advice(status, &said)),
            retry_after: header_wait
                .or(body_wait)
                .filter(|s| (0..=86_400).contains(s))
                .map(chrono::Duration::seconds),
        })
    }

    fn request(&self, message: &Message) -> Request<'_> {
        let json_body = |value: Value| (json_headers(), value.to_string().into_bytes());
        let (url, (headers, body)) = match &self.via {
            Via::Webhook { url, secret } => {
                let body = json!({
                    "version": 1,
                    "sent_at": Utc::now(),
                    "title": message.title,
                    "text": message.text,
                    "link": message.link,
                    "alerts": message.alerts,
                    "dropped": message.dropped,
                })
                .to_string()
                .into_bytes();
                let mut headers = json_headers();
                if let Some(secret) = secret {
                    headers.insert("x-aegis-signature", header(&signature(secret, &body)));
                }
                (url, (headers, body))
            }
            Via::Slack { url } => (url, json_body(json!({ "text": slack_text(message) }))),
            Via::Mattermost { url } => (url, json_body(json!({ "text": markdown_text(message) }))),
            Via::Discord { url } => (
                url,
                json_body(json!({
                    "content": clip(&markdown_text(message), 2000),
                    // Stored names must never ping @everyone.
                    "allowed_mentions": { "parse": [] },
                })),
            ),
            Via::Teams { url } => (url, json_body(teams_card(message))),
            Via::Telegram { url, chat_id } => (
                url,
                json_body(json!({
                    "chat_id": chat_id,
                    "text": clip(&format!("{}\n\n{}", message.title, message.text), 4096),
                    "disable_web_page_preview": true,
                })),
            ),
            Via::Ntfy { url, token } => {
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_TYPE, header("text/plain; charset=utf-8"));
                headers.insert("title", header(&ascii(&message.title)));
                headers.insert(
                    "tags",
                    header(if message.resolved() {
                        "white_check_mark"
                    } else {
                        "rotating_light"
                    }),
                );
                if let Some(link) = &message.link {
                    headers.insert("click", header(link));
                }
                if let Some(token) = token {
                    headers.insert("authorization", header(&format!("Bearer {token}")));
                }
                (url, (headers, message.text.clone().into_bytes()))
            }
            Via::Gotify { url, token } => {
                let mut extras = json!({ "client::display": { "contentType": "text/plain" } });
                if let Some(link) = &message.link {
                    extras["client::notification"] = json!({ "click": { "url": link } });
                }
                let (mut headers, body) = json_body(json!({
                    "title": message.title,
                    "message": message.text,
                    "priority": if message.resolved() { 4 } else { 7 },
                    "extras": extras,
                }));
                headers.insert("x-gotify-key", header(token));
                (url, (headers, body))
            }
            Via::Email(delivery) => return Request::Email(delivery, email(message)),
        };
        Request::Http {
            url: url.clone(),
            headers,
            body,
        }
    }
}

/// What a channel sends: an HTTP request, or a mail and its delivery.
enum Request<'a> {
    Http {
        url: Url,
        headers: HeaderMap,
        body: Vec<u8>,
    },
    Email(&'a Delivery, Rendered),
}

/// `X-Aegis-Signature`: `sha256=` and the hex HMAC-SHA256 of the exact body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A secret's value: itself, or the environment variable an `env:NAME` names.
fn reveal(key: &str, secret: &Secret) -> Result<String, ReportError> {
    let value = secret.expose().trim();
    let value = match value.strip_prefix("env:") {
        Some(var) => std::env::var(var).map_err(|_| {
            ReportError::Config(format!(
                "{key} = \"env:{var}\", but the environment variable {var} is not set"
            ))
        })?,
        None => value.to_owned(),
    };
    if value.trim().is_empty() {
        return Err(ReportError::Config(format!("{key} is empty")));
    }
    Ok(value.trim().to_owned())
}

fn parse_url(key: &str, value: &str) -> Result<Url, ReportError> {
    // The value may be a secret: the message names the key, not the URL.
    let url = Url::parse(value)
        .map_err(|e| ReportError::Config(format!("{key} is not a URL ({e}): use https://…")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ReportError::Config(format!(
            "{key} must be an http:// or https:// URL with a host"
        )));
    }
    Ok(url)
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, header("application/json"));
    headers
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("?"))
}

/// Header values are ASCII: anything else becomes `?`.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn clip(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max_chars - 1).collect();
    out.push('…');
    out
}

/// Slack's mrkdwn reads `<…>` as links and mentions: escape what Slack says to.
fn slack_text(message: &Message) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut text = format!("*{}*\n{}", escape(&message.title), escape(&message.text));
    if let Some(link) = &message.link {
        text += &format!("\n<{}|Open in Aegis>", escape(link));
    }
    text
}

/// The message in Mattermost's and Discord's Markdown: the title bold, and
/// stored names (a host called `@all`, a rule named `[x](https://…)`) shown
/// as written: Markdown's punctuation escaped, and a word joiner after each
/// `@`, which no mention starts with.
fn markdown_text(message: &Message) -> String {
    let escape = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if "\\`*_[]()<>#~|".contains(c) {
                out.push('\\');
            }
            out.push(c);
            if c == '@' {
                out.push('\u{2060}');
            }
        }
        out
    };
    format!("**{}**\n{}", escape(&message.title), escape(&message.text))
}

/// An Adaptive Card, which Teams' Workflows webhooks (and the older connectors) take.
fn teams_card(message: &Message) -> Value {
    let mut body = vec![
        json!({ "type": "TextBlock", "text": message.title, "weight": "Bolder", "wrap": true }),
        json!({ "type": "TextBlock", "text": message.text, "wrap": true }),
    ];
    if let Some(link) = &message.link {
        body.push(json!({
            "type": "ActionSet",
            "actions": [{ "type": "Action.OpenUrl", "title": "Open in Aegis", "url": link }],
        }));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

fn email(message: &Message) -> Rendered {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let link = message
        .link
        .as_ref()
        .map(|l| format!("<p><a href=\"{}\">Open in Aegis</a></p>", escape(l)))
        .unwrap_or_default();
    let text = match &message.link {
        Some(l) => format!("{}\n\n{l}\n", message.text),
        None => format!("{}\n", message.text),
    };
    Rendered {
        subject: message.title.clone(),
        html: format!(
            "<!DOCTYPE html><html><body><h1 style=\"font-size:1.2em\">{}</h1><pre style=\"font-family:monospace;white-space:pre-wrap\">{}</pre>{link}</body></html>",
            escape(&message.title),
            escape(&message.text)
        ),
        text,
        chart: Vec::new(),
    }
}

fn advice(status: StatusCode, said: &str) -> String {
    let hint = match status.as_u16() {
        401 | 403 => ": check the channel's token or URL",
        404 => ": the webhook or topic does not exist (was it deleted?)",
        413 => ": the message was too large",
        429 => ": too many messages; waiting as asked",
        _ => "",
    };
    if said.is_empty() {
        hint.to_owned()
    } else {
        format!("{hint} ({said})")
    }
}

/// reqwest's error without the URL it carries.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut cause = String::new();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind} ({cause})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_the_documented_hmac() {
        // RFC 4231, test case 2.
        let mac = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            mac,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn slack_text_escapes_its_markup() {
        let message = Message {
            title: "bans <!channel>".into(),
            text: "a & b <https://evil|x>".into(),
            link: None,
            alerts: vec![],
            dropped: 0,
        };
        assert_eq!(
            slack_text(&message),
            "*bans &lt;!channel&gt;*\na &amp; b &lt;https://evil|x&gt;"
        );
    }

    #[test]
    fn markdown_text_neither_mentions_nor_links() {
        let message = Message {
            title: "bans @all".into(),
            text: "host [x](https://evil) *b* a\\_b `c`".into(),
            link: None,
            alerts: vec![],
            dropped: 0,
        };
        assert_eq!(
            markdown_text(&message),
            "**bans @\u{2060}all**\nhost \\[x\\]\\(https://evil\\) \\*b\\* a\\\\\\_b \\`c\\`"
        );
    }

    #[test]
    fn clip_counts_characters_not_bytes() {
        assert_eq!(clip("ééé", 3), "ééé");
        assert_eq!(clip("éééé", 3), "éé…");
    }
}
