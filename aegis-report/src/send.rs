//! Delivery: SMTP through lettre, or an HTTP mail API (Mandrill). Another API is
//! one more variant of `Transport` and one function.

use std::time::Duration;

use aegis_core::{MailTransport, ReportSettings, SmtpTls};
use base64::Engine;
use lettre::message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::json;

use crate::error::ReportError;
use crate::render::Rendered;

const MANDRILL_URL: &str = "https://mandrillapp.com/api/1.0";

/// Where the report goes, checked before anything is rendered or sent.
#[derive(Debug, Clone)]
pub struct Delivery {
    from: Mailbox,
    to: Vec<Mailbox>,
    transport: Transport,
    timeout: Duration,
}

#[derive(Clone)]
enum Transport {
    Smtp {
        host: String,
        port: u16,
        tls: SmtpTls,
        credentials: Option<(String, String)>,
    },
    Mandrill {
        url: String,
        key: String,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Smtp {
                host,
                port,
                tls,
                credentials,
            } => write!(
                f,
                "smtp {host}:{port} {tls:?}{}",
                if credentials.is_some() {
                    " (authenticated)"
                } else {
                    ""
                }
            ),
            Transport::Mandrill { url, .. } => write!(f, "mandrill {url}"),
        }
    }
}

fn mailbox(what: &str, address: &str) -> Result<Mailbox, ReportError> {
    address.parse().map_err(|e| {
        ReportError::Config(format!(
            "{what} {address:?} is not a valid address ({e}): use name@example.org"
        ))
    })
}

impl Delivery {
    /// Reads `[report]`; every problem is named with the key that fixes it.
    pub fn from_settings(s: &ReportSettings) -> Result<Self, ReportError> {
        if s.to.is_empty() {
            return Err(ReportError::Config(
                "no recipient: set [report] to = [\"you@example.org\"]".into(),
            ));
        }
        let to =
            s.to.iter()
                .map(|a| mailbox("recipient", a))
                .collect::<Result<_, _>>()?;
        let from = mailbox(
            "sender",
            s.from.as_deref().ok_or_else(|| {
                ReportError::Config("no sender: set [report] from = \"aegis@example.org\"".into())
            })?,
        )?;
        let transport = match s.transport {
            MailTransport::Smtp => {
                let tls = s.smtp_tls;
                let host = s.smtp_host.clone().unwrap_or_else(|| "localhost".into());
                if tls == SmtpTls::None && !is_local(&host) {
                    return Err(ReportError::Config(format!(
                        "smtp_tls = \"none\" would send the report and any password in clear text to {host}: use \"starttls\" or \"tls\""
                    )));
                }
                let port = s.smtp_port.unwrap_or(match tls {
                    SmtpTls::StartTls => 587,
                    SmtpTls::Implicit => 465,
                    SmtpTls::None => 25,
                });
                let credentials = match (&s.smtp_user, &s.smtp_password) {
                    (Some(u), Some(p)) => Some((u.clone(), p.expose().to_owned())),
                    (Some(_), None) => {
                        return Err(ReportError::Config(
                            "smtp_user is set but no password: set smtp_password in the config file or AEGIS_REPORT_SMTP_PASSWORD".into(),
                        ))
                    }
                    _ => None,
                };
                Transport::Smtp { host, port, tls, credentials }
            }
            MailTransport::Mandrill => Transport::Mandrill {
                url: s.api_url.clone().unwrap_or_else(|| MANDRILL_URL.into()),
                key: s.api_key.as_ref().map(|k| k.expose().to_owned()).ok_or_else(|| {
                    ReportError::Config(
                        "transport = \"mandrill\" needs api_key in the config file or AEGIS_REPORT_API_KEY".into(),
                    )
                })?,
            },
        };
        let timeout = Duration::from_secs(s.timeout_secs.unwrap_or(30).max(1));
        Ok(Delivery {
            from,
            to,
            transport,
            timeout,
        })
    }

    /// The complete MIME message: text, and HTML with the chart inline (when
    /// there is one: alerts have none).
    pub fn message(&self, report: &Rendered) -> Result<Message, ReportError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(&report.subject);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        if report.chart.is_empty() {
            return builder
                .multipart(MultiPart::alternative_plain_html(
                    report.text.clone(),
                    report.html.clone(),
                ))
                .map_err(|e| ReportError::Template(format!("building the message: {e}")));
        }
        let chart = Attachment::new_inline("chart".into()).body(
            report.chart.clone(),
            ContentType::parse("image/png").map_err(|e| ReportError::Template(e.to_string()))?,
        );
        builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::plain(report.text.clone()))
                    .multipart(
                        MultiPart::related()
                            .singlepart(SinglePart::html(report.html.clone()))
                            .singlepart(chart),
                    ),
            )
            .map_err(|e| ReportError::Template(format!("building the message: {e}")))
    }

    /// Sends `report`; errors say what to change.
    pub async fn send(&self, report: &Rendered) -> Result<String, ReportError> {
        match &self.transport {
            Transport::Smtp {
                host,
                port,
                tls,
                credentials,
            } => {
                let message = self.message(report)?;
                let params = || {
                    TlsParameters::new(host.clone())
                        .map_err(|e| ReportError::Config(format!("TLS for {host}: {e}")))
                };
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                        .port(*port)
                        .timeout(Some(self.timeout));
                builder = match tls {
                    SmtpTls::StartTls => builder.tls(Tls::Required(params()?)),
                    SmtpTls::Implicit => builder.tls(Tls::Wrapper(params()?)),
                    SmtpTls::None => builder.tls(Tls::None),
                };
                if let Some((user, password)) = credentials {
                    builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
                }
                builder
                    .build()
                    .send(message)
                    .await
                    .map_err(|e| ReportError::Send(smtp_advice(&e, host, *port, *tls)))?;
                Ok(format!(
                    "sent to {} through {host}:{port}",
                    self.recipients()
                ))
            }
            Transport::Mandrill { url, key } => self.mandrill(url, key, report).await,
        }
    }

    fn recipients(&self) -> String {
        self.to
            .iter()
            .map(|m| m.email.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    async fn mandrill(
        &self,
        url: &str,
        key: &str,
        report: &Rendered,
    ) -> Result<String, ReportError> {
        let mut body = json!({
            "key": key,
            "message": {
                "subject": report.subject,
                "text": report.text,
                "html": report.html,
                "from_email": self.from.email.to_string(),
                "from_name": self.from.name,
                "to": self.to.iter().map(|m| json!({"email": m.email.to_string(), "name": m.name, "type": "to"})).collect::<Vec<_>>(),
            }
        });
        if !report.chart.is_empty() {
            body["message"]["images"] = json!([{
                "type": "image/png",
                "name": "chart",
                "content": base64::engine::general_purpose::STANDARD.encode(&report.chart),
            }]);
        }
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|e| ReportError::Send(e.to_string()))?;
        let reply = client
            .post(format!("{}/messages/send.json", url.trim_end_matches('/')))
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                ReportError::Send(if e.is_timeout() {
                    format!(
                        "the mail API at {url} did not answer within {:?}: try again later",
                        self.timeout
                    )
                } else {
                    format!("cannot reach the mail API at {url}: {e}")
                })
            })?;
        let status = reply.status();
        let answer: serde_json::Value = reply.json().await.unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let detail = answer["message"].as_str().unwrap_or("no detail");
            let advice = match answer["name"].as_str() {
                Some("Invalid_Key") => "check api_key (or AEGIS_REPORT_API_KEY)",
                _ if status.is_server_error() => "the provider failed: try again later",
                _ => "check the [report] settings",
            };
            return Err(ReportError::Send(format!(
                "mail API answered {status}: {detail}; {advice}"
            )));
        }
        let results = answer.as_array().cloned().unwrap_or_default();
        let refused: Vec<String> = results
            .iter()
            .filter(|r| !matches!(r["status"].as_str(), Some("sent" | "queued" | "scheduled")))
            .map(|r| {
                format!(
                    "{} ({})",
                    r["email"].as_str().unwrap_or("?"),
                    r["reject_reason"]
                        .as_str()
                        .or(r["status"].as_str())
                        .unwrap_or("?")
                )
            })
            .collect();
        if results.is_empty() || !refused.is_empty() {
            return Err(ReportError::Send(format!(
                "the mail API did not accept every recipient: {}",
                if refused.is_empty() {
                    "empty answer".into()
                } else {
                    refused.join(", ")
                }
            )));
        }
        Ok(format!(
            "sent to {} through the mail API",
            self.recipients()
        ))
    }
}

fn is_local(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]")
}

/// Turns an SMTP failure into advice.
fn smtp_advice(e: &lettre::transport::smtp::Error, host: &str, port: u16, tls: SmtpTls) -> String {
    // The error chain, each message once (lettre repeats its causes in its own text).
    let text = {
        let mut parts: Vec<String> = vec![e.to_string()];
        let mut s = std::error::Error::source(e);
        while let Some(inner) = s {
            let msg = inner.to_string();
            if !parts.iter().any(|p| p.contains(&msg)) {
                parts.push(msg);
            }
            s = inner.source();
        }
        parts.join(": ")
    };
    let tls_failure = e.is_tls()
        || [
            "tls",
            "TLS",
            "handshake",
            "corrupt message",
            "InvalidContentType",
            "certificate",
        ]
        .iter()
        .any(|needle| text.contains(needle));
    let code = e.status().map(|c| c.to_string());
    let advice = if text.contains("Connection refused") {
        format!("nothing listens on {host}:{port}: check smtp_host and smtp_port")
    } else if e.is_timeout() {
        format!("{host}:{port} did not answer: check the address and any firewall")
    } else if code
        .as_deref()
        .is_some_and(|c| c.starts_with("535") || c.starts_with("534"))
    {
        "authentication refused: check smtp_user and smtp_password (AEGIS_REPORT_SMTP_PASSWORD)"
            .into()
    } else if code
        .as_deref()
        .is_some_and(|c| c.starts_with("550") || c.starts_with("554") || c.starts_with("551"))
        || text.contains("relay")
    {
        "the server refused to relay the message: authenticate (smtp_user) or use your provider's relay, and check that from is an address it accepts".into()
    } else if tls_failure {
        match (tls, port) {
            (SmtpTls::StartTls, 465) => "port 465 expects TLS from the start: set smtp_tls = \"tls\"".into(),
            (SmtpTls::Implicit, 587 | 25) => format!("port {port} expects STARTTLS: set smtp_tls = \"starttls\""),
            (SmtpTls::Implicit, _) => "the server did not speak TLS: if it offers STARTTLS set smtp_tls = \"starttls\" (usually port 587), else use port 465 with smtp_tls = \"tls\"".into(),
            _ => "TLS failed: use smtp_tls = \"tls\" on port 465 or \"starttls\" on 587, and check the server's certificate".into(),
        }
    } else {
        "check the [report] SMTP settings".into()
    };
    format!("{text} ({advice})")
}
