//! What every command needs: settings, the storage URL and this host's name.

use aegis_core::geo::Geolocator;
use aegis_core::share::SharePolicy;
use aegis_core::{Settings, StorageUrl};
use anyhow::Result;

use crate::cli::Cli;
use crate::spool::Spool;
use crate::system_log::SystemLog;

/// Settings resolved from defaults, file, environment and flags.
pub struct Context {
    /// All settings.
    pub settings: Settings,
    /// Where events are stored.
    pub storage_url: StorageUrl,
    /// The name this machine reports as.
    pub host: String,
}

impl Context {
    /// Loads settings and applies the global flags.
    pub fn load(cli: &Cli) -> Result<Self> {
        let mut settings = Settings::load(cli.globals.config.as_deref())?;
        if let Some(url) = &cli.globals.storage {
            settings.storage.url = Some(url.clone());
        }
        if let Some(path) = &cli.globals.geo.city_db {
            settings.geo.city_db = Some(path.clone());
        }
        if let Some(path) = &cli.globals.geo.asn_db {
            settings.geo.asn_db = Some(path.clone());
        }
        let storage_url = settings.storage_url()?;
        let host = settings.host.clone().unwrap_or_else(|| {
            gethostname::gethostname()
                .into_string()
                .unwrap_or_else(|_| "localhost".into())
        });
        Ok(Context {
            settings,
            storage_url,
            host,
        })
    }

    /// The spool: configured, else `spool/` in Aegis's data directory.
    pub fn spool(&self) -> Spool {
        let log = SystemLog::new(self.settings.syslog_socket.clone());
        // A bad `[share]` must not cost a ban its record: it is said, and nothing is shared.
        let policy = SharePolicy::from_settings(&self.settings.share).unwrap_or_else(|e| {
            log.warning(&format!("not sharing bans: {e}"));
            None
        });
        Spool::new(self.settings.spool_dir(), log)
            .sharing(policy)
            .locating(self.settings.geo.clone())
    }

    /// The configured geolocation sources.
    pub fn geolocator(&self) -> Result<Geolocator> {
        Ok(Geolocator::from_settings(&self.settings.geo)?)
    }

    /// The configured sources, or the built-in country data when they cannot be
    /// opened (with a warning): recording must not fail over geolocation.
    pub fn geolocator_or_builtin(&self) -> Option<Geolocator> {
        Geolocator::from_settings_or_builtin(&self.settings.geo, |e| {
            eprintln!("aegis: warning: {e:#}; using the built-in country data");
        })
    }

    /// The configured time zone.
    pub fn time_zone(&self) -> Result<aegis_core::Tz> {
        Ok(self.settings.time_zone()?)
    }

    /// The zone fail2ban's log lines are in: `name` when given, else the
    /// system's (fail2ban logs local time), else the configured one.
    pub fn log_time_zone(&self, name: Option<&str>) -> Result<aegis_core::Tz> {
        match name {
            Some(name) => Ok(name.parse().map_err(|_| {
                aegis_core::Error::Invalid(format!(
                    "unknown time zone {name:?}: use an IANA name such as Europe/Berlin"
                ))
            })?),
            None => system_time_zone().map_or_else(|| self.time_zone(), Ok),
        }
    }
}

/// For `aegis config show`.
pub fn describe(ctx: &Context) -> String {
    format!(
        "storage url: {}\nspool:       {}\nhost:        {}\ntime zone:   {}\n\n{:#?}",
        ctx.storage_url,
        ctx.spool().dir().display(),
        ctx.host,
        ctx.settings.timezone.as_deref().unwrap_or("UTC"),
        ctx.settings
    )
}

/// The system's zone from `TZ`, `/etc/timezone` or the `/etc/localtime` link.
fn system_time_zone() -> Option<aegis_core::Tz> {
    if let Ok(name) = std::env::var("TZ") {
        return name.trim_start_matches(':').parse().ok();
    }
    if let Ok(name) = std::fs::read_to_string("/etc/timezone") {
        if let Ok(tz) = name.trim().parse() {
            return Some(tz);
        }
    }
    let link = std::fs::read_link("/etc/localtime").ok()?;
    let link = link.to_string_lossy();
    link.split_once("zoneinfo/")?.1.parse().ok()
}
