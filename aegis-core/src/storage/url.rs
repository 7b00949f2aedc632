//! Storage URLs: which backend, where, and a password that never shows.

use std::fmt;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};

/// A storage URL whose `Debug` and `Display` never show a password.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageUrl(String);

/// The accepted URL forms, quoted in errors.
pub const ACCEPTED_URLS: &str = "sqlite:///absolute/path.db, sqlite://relative/path.db, \
sqlite::memory:, mongodb://[user:pass@]host[:port][/db][?options], mongodb+srv://…";

impl StorageUrl {
    /// Checks the form (scheme and path) without opening anything.
    pub fn parse(raw: &str) -> Result<Self> {
        let url = StorageUrl(raw.trim().to_owned());
        url.backend()?;
        Ok(url)
    }

    /// Whether the store is reached over the network (MongoDB), not a local file.
    pub fn is_remote(&self) -> bool {
        matches!(self.backend(), Ok(Backend::Mongo))
    }

    /// A MongoDB URL with `name` as its database (the path), unless it names one.
    pub fn with_database(&self, name: &str) -> Result<Self> {
        if !self.is_remote() {
            return Err(Error::Config(
                "[storage] database applies to MongoDB URLs only".into(),
            ));
        }
        let bad = |c: char| "/\\. \"$".contains(c) || c.is_control();
        if name.is_empty() || name.len() > 63 || name.chars().any(bad) {
            return Err(Error::Config(format!(
                "[storage] database {name:?} is not a MongoDB database name: \
                 up to 63 characters, none of / \\ . space \" $"
            )));
        }
        let raw = self.0.as_str();
        let (base, query) = match raw.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (raw, None),
        };
        let hosts_start = raw.find("://").map_or(0, |i| i + 3);
        let (authority, path) = match base[hosts_start..].find('/') {
            Some(i) => base.split_at(hosts_start + i),
            None => (base, ""),
        };
        match path.trim_start_matches('/') {
            "" => {}
            same if same == name => return Ok(self.clone()),
            other => {
                return Err(Error::Config(format!(
                    "the storage URL names database {other:?} and [storage] database says {name:?}: keep one"
                )))
            }
        }
        let mut url = format!("{authority}/{name}");
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        Ok(StorageUrl(url))
    }

    /// The URL with its password, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(super) fn backend(&self) -> Result<Backend> {
        let raw = self.0.as_str();
        if raw == "sqlite::memory:" {
            return Ok(Backend::SqliteMemory);
        }
        if let Some(path) = raw.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path == "/" {
                return Err(Error::Config(format!(
                    "storage URL {self} has no database path; accepted forms: {ACCEPTED_URLS}"
                )));
            }
            return Ok(Backend::SqliteFile(PathBuf::from(path)));
        }
        if raw.starts_with("mongodb://") || raw.starts_with("mongodb+srv://") {
            return Ok(Backend::Mongo);
        }
        Err(Error::Config(format!(
            "unsupported storage URL {self}: accepted forms are {ACCEPTED_URLS}"
        )))
    }

    fn redacted(&self) -> String {
        let shown = match url::Url::parse(&self.0) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("****"));
                u.to_string()
            }
            Ok(_) => self.0.clone(),
            // Unparseable: hide anything between "://" and the last '@'.
            Err(_) => match (self.0.find("://"), self.0.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    format!("{}****{}", &self.0[..s + 3], &self.0[at..])
                }
                _ => self.0.clone(),
            },
        };
        let Some((base, query)) = shown.split_once('?') else {
            return shown;
        };
        let options: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_option(key) => format!("{key}=****"),
                _ => pair.to_owned(),
            })
            .collect();
        format!("{base}?{}", options.join("&"))
    }

    /// `text` with every secret of this URL (its password, the values of its
    /// secret-bearing options, as written and percent-decoded) replaced by
    /// `****`: for messages of drivers that quote what they were given.
    pub fn scrub(&self, text: &str) -> String {
        let mut secrets: Vec<String> = Vec::new();
        if let Ok(u) = url::Url::parse(&self.0) {
            secrets.extend(u.password().map(str::to_owned));
        }
        if let Some((_, query)) = self.0.split_once('?') {
            for pair in query.split('&') {
                if let Some((key, value)) = pair.split_once('=') {
                    if is_secret_option(key) {
                        secrets.push(value.to_owned());
                    }
                }
            }
        }
        let decoded: Vec<String> = secrets
            .iter()
            .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        secrets.extend(decoded);
        // Longest first, so that a secret containing another is hidden whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets
            .iter()
            .filter(|s| s.len() >= 3)
            .fold(text.to_owned(), |t, secret| {
                t.replace(secret.as_str(), "****")
            })
    }
}

/// URI options whose values are secrets (MongoDB reads option names in any case).
fn is_secret_option(key: &str) -> bool {
    const SECRET: [&str; 4] = [
        "tlscertificatekeyfilepassword",
        "sslpemkeypassword",
        "authmechanismproperties",
        "password",
    ];
    SECRET.contains(&key.to_ascii_lowercase().as_str())
}

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageUrl({})", self.redacted())
    }
}

impl std::str::FromStr for StorageUrl {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// The backend a URL names.
pub(super) enum Backend {
    SqliteMemory,
    SqliteFile(PathBuf),
    Mongo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let url =
            StorageUrl::parse("mongodb://aegis:s3cret@db.example:27017/aegis?authSource=admin")
                .unwrap();
        for shown in [format!("{url}"), format!("{url:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("db.example"), "{shown}");
        }
        assert!(url.expose().contains("s3cret"));
    }

    #[test]
    fn secret_options_never_show() {
        let url = StorageUrl::parse(
            "mongodb://db.example/aegis?tls=true&tlsCertificateKeyFilePassword=k3yp4ss\
             &authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:t0k3n%2Fx",
        )
        .unwrap();
        for shown in [format!("{url}"), format!("{url:?}")] {
            assert!(
                !shown.contains("k3yp4ss") && !shown.contains("t0k3n"),
                "{shown}"
            );
            assert!(
                shown.contains("tls=true") && shown.contains("MONGODB-AWS"),
                "{shown}"
            );
        }
        let said = "invalid authMechanismProperties AWS_SESSION_TOKEN:t0k3n/x; key k3yp4ss";
        let scrubbed = url.scrub(said);
        assert!(
            !scrubbed.contains("t0k3n") && !scrubbed.contains("k3yp4ss"),
            "{scrubbed}"
        );
    }

    #[test]
    fn url_forms() {
        assert!(matches!(
            StorageUrl::parse("sqlite::memory:").unwrap().backend(),
            Ok(Backend::SqliteMemory)
        ));
        match StorageUrl::parse("sqlite:///var/lib/aegis/aegis.db")
            .unwrap()
            .backend()
        {
            Ok(Backend::SqliteFile(p)) => assert_eq!(p, PathBuf::from("/var/lib/aegis/aegis.db")),
            _ => panic!("absolute path"),
        }
        match StorageUrl::parse("sqlite://data/aegis.db")
            .unwrap()
            .backend()
        {
            Ok(Backend::SqliteFile(p)) => assert_eq!(p, PathBuf::from("data/aegis.db")),
            _ => panic!("relative path"),
        }
        for bad in ["/var/lib/aegis.db", "postgres://x", "sqlite://", ""] {
            let err = StorageUrl::parse(bad).unwrap_err().to_string();
            assert!(err.contains("sqlite::memory:"), "{bad}: {err}");
        }
    }
}
