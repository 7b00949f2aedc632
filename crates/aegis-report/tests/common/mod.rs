//! Helpers: a seeded store, a config file, and the real `aegis-report` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aegis_core::{BanEvent, EventKind, Geo, StorageUrl};
use chrono::{Duration, Utc};

pub struct World {
    pub dir: tempfile::TempDir,
}

impl World {
    /// A store with yesterday's bans: three hosts, one address on two of them.
    pub async fn seeded() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url =
            StorageUrl::parse(&format!("sqlite://{}/aegis.db", dir.path().display())).unwrap();
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
        World { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the config file (`host = "web1"` plus `report`).
    pub fn config(&self, report: &str) -> PathBuf {
        let path = self.path().join("aegis.toml");
        std::fs::write(&path, format!("host = \"reporter\"\n[report]\n{report}\n")).unwrap();
        path
    }

    pub fn report(&self, report_config: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_aegis-report"))
            .arg("--config")
            .arg(self.config(report_config))
            .args(args)
            .env(
                "AEGIS_STORAGE_URL",
                format!("sqlite://{}/aegis.db", self.path().display()),
            )
            .env_remove("AEGIS_REPORT_SMTP_PASSWORD")
            .env_remove("AEGIS_REPORT_API_KEY")
            .output()
            .unwrap()
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
