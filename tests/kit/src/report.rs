//! The real `aegis-report` binary over a seeded store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aegis_core::{BanEvent, EventKind, Geo, StorageUrl};
use chrono::{Duration, Utc};

/// A store with a day of bans, and a configuration file beside it.
pub struct ReportWorld {
    /// The directory of both, removed on drop.
    pub dir: tempfile::TempDir,
}

impl ReportWorld {
    /// A store with yesterday's bans: three hosts, one address on two of them.
    pub async fn seeded() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = StorageUrl::parse(&crate::sqlite_url(dir.path())).unwrap();
        let store = aegis_core::connect(&url).await.unwrap();
        let noon = (Utc::now() - Duration::days(1))
            .date_naive()
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc();
        let mut events = Vec::new();
        for (i, (ip, host, jail)) in [
            ("203.0.113.7", "web1", "sshd"),
            ("203.0.113.7", "web2", "sshd"),
            ("203.0.113.7", "web1", "nginx"),
            ("198.51.100.9", "mail", "postfix"),
        ]
        .iter()
        .enumerate()
        {
            let mut e = BanEvent::new(
                EventKind::Ban,
                ip.parse().unwrap(),
                jail,
                host,
                noon + Duration::minutes(i as i64),
            )
            .unwrap();
            e.geo = Some(Geo {
                country: Some("CN".into()),
                asn: Some(4134),
                as_org: Some("<b>Chinanet</b>".into()),
                ..Geo::default()
            });
            events.push(e);
        }
        store.record_batch(&events).await.unwrap();
        ReportWorld { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the config file (`host = "web1"` plus `report`).
    pub fn config(&self, report: &str) -> PathBuf {
        let path = self.path().join("aegis.toml");
        std::fs::write(&path, format!("host = \"reporter\"\n[report]\n{report}\n")).unwrap();
        path
    }

    /// Runs `aegis-report` with `report_config` as its `[report]` section.
    pub fn report(&self, report_config: &str, args: &[&str]) -> Output {
        Command::new(crate::bin("aegis-report"))
            .arg("--config")
            .arg(self.config(report_config))
            .args(args)
            .env("AEGIS_STORAGE_URL", crate::sqlite_url(self.path()))
            .env_remove("AEGIS_REPORT_SMTP_PASSWORD")
            .env_remove("AEGIS_REPORT_API_KEY")
            .output()
            .unwrap()
    }
}
