//! Settings: defaults, then `/etc/aegis/aegis.toml` (or `--config`), then `AEGIS_*`
//! environment variables; binaries apply their flags last.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::StorageUrl;

/// The system-wide configuration file, read when present.
pub const SYSTEM_CONFIG: &str = "/etc/aegis/aegis.toml";

/// All of Aegis's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Name this machine reports as (default: its host name).
    pub host: Option<String>,
    /// IANA time zone for days in charts and reports (default: UTC).
    pub timezone: Option<String>,
    /// The system log's socket (default `/dev/log`).
    pub syslog_socket: Option<PathBuf>,
    /// Where events are stored.
    pub storage: StorageSettings,
    /// Geolocation sources.
    pub geo: GeoSettings,
    /// The dashboard.
    pub web: WebSettings,
    /// The daily report.
    pub report: ReportSettings,
    /// Which bans recorded here become decisions for every host.
    pub share: ShareSettings,
    /// The agent that applies decisions to this host's fail2ban.
    pub agent: AgentSettings,
    /// `[[alert]]`: the rules `aegis-report watch` evaluates every minute.
    pub alert: Vec<AlertRule>,
    /// `[[channel]]`: where alerts are sent.
    pub channel: Vec<ChannelSettings>,
}

/// One `[[alert]]`: a rule, and the channels its messages go to. Keys other
/// than those of its `kind` are errors that name them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// Its name, in every message and in the watcher's state.
    pub name: String,
    /// The `[[channel]]` names it sends to.
    pub channels: Vec<String>,
    /// One message per `every` at most, gathering what happened (default:
    /// `5m` for `bans`, `1m` for the others).
    pub every: Option<String>,
    /// Messages an hour at most; what waits goes out in the next (default 12).
    pub max_per_hour: Option<u32>,
    /// What it watches for.
    #[serde(flatten)]
    pub when: AlertWhen,
}

/// The kinds of `[[alert]]`, chosen by its `kind` key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AlertWhen {
    /// New bans, optionally narrowed (every key is optional).
    Bans {
        /// Only this jail.
        jail: Option<String>,
        /// Only this reporting host.
        host: Option<String>,
        /// Only addresses located in this country (two letters).
        country: Option<String>,
        /// Only addresses in this network (CIDR).
        network: Option<String>,
        /// Only addresses of this autonomous system (number).
        asn: Option<u32>,
    },
    /// Bans in the last `period` at least `factor` times the median of the same
    /// period on each of the previous `days` days, and at least `min`.
    Spike {
        /// The period counted (default `1h`).
        period: Option<String>,
        /// How many times the usual count (default 3).
        factor: Option<f64>,
        /// The fewest bans that count as a spike (default 20).
        min: Option<u64>,
        /// Days the usual count is taken from (default 7).
        days: Option<u32>,
        /// Only this jail.
        jail: Option<String>,
        /// Only this reporting host.
        host: Option<String>,
    },
    /// An address banned `bans` times, or by `hosts` hosts, within `within`.
    RepeatOffender {
        /// Bans that make an offender (default 10 when `hosts` is not set).
        bans: Option<u64>,
        /// Hosts that make an offender.
        hosts: Option<u64>,
        /// The period counted (default `24h`).
        within: Option<String>,
    },
    /// A country or ASN with a ban and none in the `days` before.
    NewSource {
        /// `country` or `asn`.
        by: String,
        /// Days without a ban from it (default 30).
        days: Option<u32>,
    },
    /// A host that reported within `known_within` and has sent nothing for
    /// `after`; also an agent that stopped applying decisions.
    SilentHost {
        /// Silence that counts (default `1h`).
        after: Option<String>,
        /// Hosts that reported within this period are expected (default `30d`).
        known_within: Option<String>,
    },
}

/// One `[[channel]]`. Its `url`, `token` and `secret` are secrets: written as
/// `"env:NAME"` they are read from the environment variable `NAME`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSettings {
    /// The name rules send to.
    pub name: String,
    /// How to reach it.
    #[serde(flatten)]
    pub via: ChannelVia,
}

/// The kinds of `[[channel]]`, chosen by its `kind` key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ChannelVia {
    /// A JSON POST, signed with HMAC-SHA256 when `secret` is set.
    Webhook {
        /// Where to post.
        url: Secret,
        /// The key of the `X-Aegis-Signature` header.
        secret: Option<Secret>,
    },
    /// A Slack incoming webhook.
    Slack {
        /// The webhook's URL.
        url: Secret,
    },
    /// A Mattermost incoming webhook.
    Mattermost {
        /// The webhook's URL.
        url: Secret,
    },
    /// A Discord webhook.
    Discord {
        /// The webhook's URL.
        url: Secret,
    },
    /// A Microsoft Teams incoming webhook.
    Teams {
        /// The webhook's URL.
        url: Secret,
    },
    /// A Telegram bot.
    Telegram {
        /// The bot's token.
        token: Secret,
        /// The chat it writes to.
        chat_id: String,
        /// The Bot API's address (default `https://api.telegram.org`).
        api_url: Option<String>,
    },
    /// An ntfy topic.
    Ntfy {
        /// The topic's URL (`https://ntfy.sh/mytopic`).
        url: Secret,
        /// An access token.
        token: Option<Secret>,
    },
    /// A Gotify server.
    Gotify {
        /// The server's address.
        url: String,
        /// The application's token.
        token: Secret,
    },
    /// E-mail through `[report]`'s transport.
    Email {
        /// Recipients (default: `[report] to`).
        #[serde(default)]
        to: Vec<String>,
    },
}

/// `[share]`: off unless `enabled`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShareSettings {
    /// Turn bans recorded here into `ban` decisions for every host.
    pub enabled: bool,
    /// The jail agents ban shared addresses in (default `aegis-shared`); its
    /// bans are never shared again.
    pub jail: Option<String>,
    /// Jails whose bans are shared (default: every jail but the shared one).
    pub jails: Vec<String>,
    /// Hosts that must have banned the address within `within` (default 1).
    pub min_hosts: Option<u32>,
    /// Bans of the address needed within `within`, on any host (default 1).
    pub min_bans: Option<u32>,
    /// The period `min_hosts` and `min_bans` count in (default `1h`).
    pub within: Option<String>,
    /// How long a shared ban lasts when fail2ban gave no bantime (default `1h`).
    pub duration: Option<String>,
    /// The longest shared ban, whatever the local bantime (default `7d`).
    pub max_duration: Option<String>,
    /// Automatic decisions a minute from one host before its circuit breaker
    /// stops them (default 30).
    pub per_minute: Option<u32>,
}

/// `[agent]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSettings {
    /// fail2ban's control socket (default `/var/run/fail2ban/fail2ban.sock`).
    pub socket: Option<PathBuf>,
    /// Where the agent keeps what it has applied (default `agent.json` in the data directory).
    pub state_file: Option<PathBuf>,
    /// How often it asks the store for new decisions, in milliseconds (default 1000).
    pub poll_ms: Option<u64>,
    /// This host's addresses beyond its interfaces' (a public address behind NAT):
    /// never banned here, and never banned anywhere by the sharing policy.
    pub addresses: Vec<String>,
}

/// `[storage]`
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Storage URL (default: `aegis.db` in [`Settings::data_dir`]).
    pub url: Option<String>,
    /// Directory of the spool every recorded event passes through.
    pub spool_dir: Option<PathBuf>,
    /// How long `aegis ban` waits for the store when the spool cannot be written, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The MongoDB database when the URL's path names none (default `aegis`).
    pub database: Option<String>,
}

impl fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: show it redacted.
        let url = self.url.as_deref().map(|u| match StorageUrl::parse(u) {
            Ok(url) => url.to_string(),
            Err(_) => "<invalid>".to_owned(),
        });
        f.debug_struct("StorageSettings")
            .field("url", &url)
            .field("spool_dir", &self.spool_dir)
            .field("timeout_ms", &self.timeout_ms)
            .field("database", &self.database)
            .finish()
    }
}

/// `[geo]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoSettings {
    /// MaxMind-format city database.
    pub city_db: Option<PathBuf>,
    /// MaxMind-format ASN database.
    pub asn_db: Option<PathBuf>,
    /// Ask the online provider (ip-api.com) during backfills for what local data lacks.
    pub online: bool,
    /// The provider's address (default `http://ip-api.com`).
    pub online_url: Option<String>,
    /// Requests a minute the provider allows (default 15, ip-api.com's batch limit).
    pub online_per_minute: Option<u32>,
}

/// A password, token or key: its `Debug` shows `****`, so printing settings never reveals it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Secret(secret)
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Secret(secret.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// `[web]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSettings {
    /// Address to listen on (default 127.0.0.1:8080).
    pub bind: Option<String>,
    /// Public URL of the dashboard, for links in reports.
    pub public_url: Option<String>,
    /// A bearer token (also accepted as the password of HTTP basic auth).
    pub token: Option<Secret>,
    /// The user name of HTTP basic auth.
    pub user: Option<String>,
    /// The basic-auth password as an Argon2 PHC string (`aegis-web hash-password`).
    pub password_hash: Option<Secret>,
    /// Serve a non-loopback address without authentication (for a trusted proxy).
    pub allow_unauthenticated: bool,
    /// Let people ban, unban and allow from the dashboard and the API; needs
    /// `write_token` or `user` and `password_hash`, even on loopback.
    pub actions: bool,
    /// A bearer token that may also make decisions (`POST /api/v1/decisions`);
    /// `token` only reads.
    pub write_token: Option<Secret>,
}

/// How `[report] transport` sends the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum MailTransport {
    /// An SMTP server (the default).
    #[default]
    Smtp,
    /// Mandrill (Mailchimp Transactional), an HTTP mail API.
    Mandrill,
}

/// How `[report] smtp_tls` encrypts the SMTP connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SmtpTls {
    /// Upgrade with STARTTLS (usually port 587; the default).
    #[default]
    StartTls,
    /// TLS from the first byte (usually port 465).
    Implicit,
    /// Plain text: only to a server on this machine.
    None,
}

/// A setting that is one of a few words: parsed when settings load, with advice.
macro_rules! word_setting {
    ($type:ident, $key:literal, $advice:literal, $($variant:ident = $word:literal),+) => {
        impl TryFrom<String> for $type {
            type Error = String;
            fn try_from(word: String) -> std::result::Result<Self, String> {
                match word.as_str() {
                    $($word => Ok($type::$variant),)+
                    other => Err(format!(concat!($key, " = {:?}: ", $advice), other)),
                }
            }
        }

        impl From<$type> for String {
            fn from(value: $type) -> String {
                match value {
                    $($type::$variant => $word.into(),)+
                }
            }
        }
    };
}

word_setting!(
    MailTransport,
    "transport",
    "use \"smtp\" or \"mandrill\"",
    Smtp = "smtp",
    Mandrill = "mandrill"
);
word_setting!(
    SmtpTls,
    "smtp_tls",
    "use \"starttls\" (port 587), \"tls\" (port 465) or \"none\" (localhost only)",
    StartTls = "starttls",
    Implicit = "tls",
    None = "none"
);

/// `[report]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSettings {
    /// Recipients.
    pub to: Vec<String>,
    /// Sender address.
    pub from: Option<String>,
    /// How to send: "smtp" (default) or "mandrill".
    pub transport: MailTransport,
    /// SMTP server (default localhost).
    pub smtp_host: Option<String>,
    /// SMTP port (default: 465 for tls, 587 for starttls, 25 for none).
    pub smtp_port: Option<u16>,
    /// "starttls" (default), "tls" (implicit, port 465) or "none" (localhost only).
    pub smtp_tls: SmtpTls,
    /// SMTP user name.
    pub smtp_user: Option<String>,
    /// SMTP password (config file or AEGIS_REPORT_SMTP_PASSWORD; never a flag).
    pub smtp_password: Option<Secret>,
    /// Mandrill (Mailchimp Transactional) API key (or AEGIS_REPORT_API_KEY).
    pub api_key: Option<Secret>,
    /// The HTTP API's base URL (default `https://mandrillapp.com/api/1.0`).
    pub api_url: Option<String>,
    /// Seconds to wait for the mail server or API (default 30).
    pub timeout_secs: Option<u64>,
    /// Offenders listed (default 10).
    pub top: Option<u32>,
    /// Send nothing on a day without bans.
    pub skip_quiet: bool,
    /// Directory of templates overriding the built-in ones.
    pub templates: Option<PathBuf>,
}

impl Settings {
    /// Loads defaults, the config file (`path`, else [`SYSTEM_CONFIG`] when it exists)
    /// and `AEGIS_*` variables. Unknown keys are errors that name the key.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match path {
            Some(p) if !p.is_file() => {
                return Err(Error::Config(format!(
                    "config file {} does not exist (print an example with `aegis config example`)",
                    p.display()
                )))
            }
            Some(p) => figment = figment.merge(Toml::file_exact(p)),
            None if Path::new(SYSTEM_CONFIG).is_file() => {
                figment = figment.merge(Toml::file_exact(SYSTEM_CONFIG))
            }
            None => {}
        }
        figment = figment.merge(env_provider());
        figment
            .extract()
            .map_err(|e| Error::Config(e.to_string().replace("unknown field", "unknown key")))
    }

    /// The storage URL to use: the configured one, else the embedded default.
    pub fn storage_url(&self) -> Result<StorageUrl> {
        let url = match &self.storage.url {
            Some(url) => StorageUrl::parse(url)?,
            None => StorageUrl::parse(&format!(
                "sqlite://{}",
                Self::data_dir().join("aegis.db").display()
            ))?,
        };
        match &self.storage.database {
            Some(name) => url.with_database(name),
            None => Ok(url),
        }
    }

    /// The spool every recorded event passes through: `[storage] spool_dir`,
    /// else `spool/` in [`Settings::data_dir`].
    pub fn spool_dir(&self) -> PathBuf {
        self.storage
            .spool_dir
            .clone()
            .unwrap_or_else(|| Self::data_dir().join("spool"))
    }

    /// Aegis's data directory, where the embedded store and the spool live by
    /// default: `/var/lib/aegis` for root, else `$XDG_DATA_HOME/aegis` (or
    /// `~/.local/share/aegis`).
    pub fn data_dir() -> PathBuf {
        if is_root() {
            return PathBuf::from("/var/lib/aegis");
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("aegis")
    }

    /// The time zone for days (default UTC).
    pub fn time_zone(&self) -> Result<chrono_tz::Tz> {
        match &self.timezone {
            None => Ok(chrono_tz::UTC),
            Some(name) => name.parse().map_err(|_| {
                Error::Config(format!(
                    "unknown time zone {name:?}: use an IANA name such as \"Europe/Berlin\" or \"UTC\""
                ))
            }),
        }
    }
}

/// `AEGIS_SECTION_KEY` maps to `section.key` for the known sections, `AEGIS_KEY` to a
/// top-level key; other `AEGIS_*` variables (e.g. for tests) are ignored.
fn env_provider() -> Env {
    const SECTIONS: [&str; 6] = ["storage", "geo", "web", "report", "share", "agent"];
    const TOP: [&str; 3] = ["host", "timezone", "syslog_socket"];
    Env::prefixed("AEGIS_")
        .filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            TOP.contains(&key.as_str())
                || SECTIONS.iter().any(|s| {
                    key.strip_prefix(s)
                        .is_some_and(|rest| rest.starts_with('_'))
                })
        })
        .map(|key| {
            let key = key.as_str().to_ascii_lowercase();
            match SECTIONS.iter().find_map(|s| {
                key.strip_prefix(s)
                    .and_then(|r| r.strip_prefix('_'))
                    .map(|r| (s, r))
            }) {
                Some((section, rest)) => format!("{section}.{rest}").into(),
                None => key.into(),
            }
        })
        .split("__")
}

/// Creates `dir` and its parents, owner-only (0700) where newly made: the store and
/// the spool hold attackers' addresses and the hosts they hit.
#[cfg(feature = "sqlite")]
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))
}

fn is_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata("/proc/self") {
            return meta.uid() == 0;
        }
    }
    std::env::var("USER").is_ok_and(|u| u == "root")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_setting_completes_a_mongodb_url() {
        let mut settings = Settings::default();
        settings.storage.url = Some("mongodb://u:pw@db1,db2/?replicaSet=rs0".into());
        settings.storage.database = Some("attacks".into());
        assert_eq!(
            settings.storage_url().unwrap().expose(),
            "mongodb://u:pw@db1,db2/attacks?replicaSet=rs0"
        );
        settings.storage.url = Some("mongodb+srv://cluster0.example.net".into());
        assert_eq!(
            settings.storage_url().unwrap().expose(),
            "mongodb+srv://cluster0.example.net/attacks"
        );
        settings.storage.url = Some("mongodb://db1/attacks".into());
        assert!(
            settings.storage_url().is_ok(),
            "the same name twice is fine"
        );
        settings.storage.url = Some("mongodb://db1/other".into());
        let err = settings.storage_url().unwrap_err().to_string();
        assert!(err.contains("other") && err.contains("attacks"), "{err}");
        settings.storage.url = Some("mongodb://db1".into());
        settings.storage.database = Some("a/b".into());
        assert!(settings.storage_url().is_err());
        settings.storage.url = Some("sqlite::memory:".into());
        settings.storage.database = Some("attacks".into());
        let err = settings.storage_url().unwrap_err().to_string();
        assert!(err.contains("MongoDB"), "{err}");
    }

    #[test]
    fn unknown_keys_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aegis.toml");
        std::fs::write(&path, "[storage]\nurll = \"sqlite::memory:\"\n").unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("urll"), "{err}");
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = Settings::load(Some(Path::new("/nonexistent/aegis.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn debug_hides_secrets() {
        let mut s = Settings::default();
        s.storage.url =
            Some("mongodb://u:hunter2@db/aegis?tlsCertificateKeyFilePassword=k3yp4ss".into());
        s.report.smtp_password = Some("swordfish".into());
        s.report.api_key = Some("md-secret".into());
        s.web.token = Some("t0ken".into());
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2")
                && !shown.contains("swordfish")
                && !shown.contains("md-secret")
                && !shown.contains("t0ken")
                && !shown.contains("k3yp4ss")
        );
    }
}
