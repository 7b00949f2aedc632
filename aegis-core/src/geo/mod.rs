//! Geolocation: countries out of the box, cities and ASNs from the user's databases.
//!
//! Lookups are in-process (microseconds): the ban path uses them. Private and
//! reserved ranges are labelled and never looked up.

#[cfg(feature = "geo-online")]
pub mod online;
mod reserved;
mod source;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::GeoSettings;
use crate::error::Result;
use crate::event::Geo;

pub use reserved::{overlap, reserved_overlap, reserved_range};
use source::Source;

/// DB-IP's IP-to-country lite data, built into the binary (CC BY 4.0).
static BUILTIN_COUNTRY: &[u8] = include_bytes!("../../data/dbip-country.mmdb");

/// The attribution the built-in data's licence asks for.
pub const ATTRIBUTION: &str = "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0";

/// Where distributions and geoipupdate put databases, probed when none is configured.
const SEARCH_DIRS: [&str; 2] = ["/usr/share/GeoIP", "/var/lib/GeoIP"];
const CITY_FILES: [&str; 4] = [
    "GeoLite2-City.mmdb",
    "GeoIP2-City.mmdb",
    "dbip-city-lite.mmdb",
    "dbip-city.mmdb",
];
const ASN_FILES: [&str; 4] = [
    "GeoLite2-ASN.mmdb",
    "GeoIP2-ISP.mmdb",
    "dbip-asn-lite.mmdb",
    "asn.mmdb",
];

/// What one source said about an address.
#[derive(Debug, Clone, Serialize)]
pub struct SourceAnswer {
    /// The source: "built-in country", "city" or "asn".
    pub source: String,
    /// Its answer, if it had one.
    pub geo: Option<Geo>,
}

/// The result of a lookup.
#[derive(Debug, Clone, Serialize)]
pub struct Lookup {
    /// The address.
    pub ip: IpAddr,
    /// The private or reserved range it is in, if any (then nothing is looked up).
    pub reserved: Option<&'static str>,
    /// The merged answer: city data first, then the built-in country, then ASN data.
    pub geo: Option<Geo>,
    /// What each source said.
    pub sources: Vec<SourceAnswer>,
}

/// A configured source, for `aegis geo info`.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    /// The source's role.
    pub source: String,
    /// Its file, or `None` when built in.
    pub path: Option<PathBuf>,
    /// The database type from its metadata.
    pub kind: String,
    /// When its data was built.
    pub built: chrono::DateTime<chrono::Utc>,
}

/// Looks addresses up in the built-in country data and the user's databases.
pub struct Geolocator {
    country: Source,
    city: Option<Source>,
    asn: Option<Source>,
}

impl std::fmt::Debug for Geolocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.sources().iter().map(|s| &s.source))
            .finish()
    }
}

impl Geolocator {
    /// The built-in country data only.
    pub fn builtin() -> Result<Self> {
        Ok(Geolocator {
            country: Source::builtin("built-in country", BUILTIN_COUNTRY)?,
            city: None,
            asn: None,
        })
    }

    /// The built-in data plus the configured databases, or those found in the usual
    /// places. A configured file that cannot be opened is an error; a probed one is skipped.
    pub fn from_settings(settings: &GeoSettings) -> Result<Self> {
        let mut geo = Self::builtin()?;
        geo.city = open_or_probe("city", settings.city_db.as_deref(), &CITY_FILES)?;
        geo.asn = open_or_probe("asn", settings.asn_db.as_deref(), &ASN_FILES)?;
        Ok(geo)
    }

    /// Whether the configured databases exist, without opening them: for a
    /// caller that leaves the locating to another process but must still say
    /// what is wrong.
    pub fn check(settings: &GeoSettings) -> Result<()> {
        for (name, path) in [("city", &settings.city_db), ("asn", &settings.asn_db)] {
            if let Some(path) = path {
                Source::exists(name, path)?;
            }
        }
        Ok(())
    }

    /// [`Geolocator::from_settings`], or the built-in country data alone when a
    /// configured database cannot be opened (`warn` is told why): an event is
    /// then located by country rather than not at all.
    pub fn from_settings_or_builtin(
        settings: &GeoSettings,
        warn: impl FnOnce(&crate::Error),
    ) -> Option<Self> {
        Self::from_settings(settings)
            .inspect_err(warn)
            .or_else(|_| Self::builtin())
            .ok()
    }

    /// The merged geolocation of `ip`, or `None` (reserved ranges included).
    pub fn locate(&self, ip: IpAddr) -> Option<Geo> {
        let ip = ip.to_canonical();
        if reserved_range(ip).is_some() {
            return None;
        }
        let city = self.city.as_ref().and_then(|s| s.lookup(ip));
        // The built-in data is asked only when the city data has no country.
        let country = match city.as_ref().and_then(|g| g.country.clone()) {
            Some(c) => Some(c),
            None => self.country.country(ip),
        };
        let asn = self.asn.as_ref().and_then(|s| s.lookup(ip));
        merge(country, city, asn)
    }

    /// The country code of `ip` from the built-in data alone (the fastest lookup).
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        self.country.country(ip.to_canonical())
    }

    /// What every source says about `ip`, and the merged answer.
    pub fn lookup(&self, ip: IpAddr) -> Lookup {
        let ip = ip.to_canonical();
        let reserved = reserved_range(ip);
        let ask = |s: &Source| {
            if reserved.is_some() {
                None
            } else {
                s.lookup(ip)
            }
        };
        let country = if reserved.is_some() {
            None
        } else {
            self.country.country(ip)
        };
        let city = self.city.as_ref().and_then(ask);
        let asn = self.asn.as_ref().and_then(ask);
        let mut sources = vec![SourceAnswer {
            source: self.country.name.clone(),
            geo: country.clone().map(|c| Geo {
                country: Some(c),
                ..Geo::default()
            }),
        }];
        for (s, geo) in [(&self.city, &city), (&self.asn, &asn)] {
            if let Some(s) = s {
                sources.push(SourceAnswer {
                    source: s.name.clone(),
                    geo: geo.clone(),
                });
            }
        }
        let country = city.as_ref().and_then(|g| g.country.clone()).or(country);
        Lookup {
            ip,
            reserved,
            geo: merge(country, city, asn),
            sources,
        }
    }

    /// The sources in use.
    pub fn sources(&self) -> Vec<SourceInfo> {
        [Some(&self.country), self.city.as_ref(), self.asn.as_ref()]
            .into_iter()
            .flatten()
            .map(|s| SourceInfo {
                source: s.name.clone(),
                path: s.path.clone(),
                kind: s.kind().to_owned(),
                built: s.built(),
            })
            .collect()
    }
}

/// City data first, then the built-in country, then ASN data for the AS.
fn merge(country: Option<String>, city: Option<Geo>, asn: Option<Geo>) -> Option<Geo> {
    let mut geo = city.unwrap_or_default();
    geo.country = geo.country.or(country);
    if let Some(asn) = asn {
        geo.asn = asn.asn.or(geo.asn);
        geo.as_org = asn.as_org.or(geo.as_org);
    }
    // A database file is data like any other: a bad field is dropped or
    // cleaned, never a reason to lose the event it locates.
    geo.clean();
    (geo != Geo::default()).then_some(geo)
}

fn open_or_probe(name: &str, configured: Option<&Path>, files: &[&str]) -> Result<Option<Source>> {
    if let Some(path) = configured {
        return Source::open(name, path).map(Some);
    }
    let found = SEARCH_DIRS
        .iter()
        .flat_map(|dir| files.iter().map(move |f| Path::new(dir).join(f)))
        .find(|p| p.is_file());
    Ok(found.and_then(|p| Source::open(name, &p).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_countries() {
        let geo = Geolocator::builtin().unwrap();
        assert_eq!(
            geo.country("8.8.8.8".parse().unwrap()).as_deref(),
            Some("US")
        );
        assert_eq!(
            geo.country("::ffff:8.8.8.8".parse().unwrap()).as_deref(),
            Some("US")
        );
        assert!(geo.country("2a00:1450:4001::1".parse().unwrap()).is_some());
        assert_eq!(geo.locate("192.168.1.1".parse().unwrap()), None);
        let lookup = geo.lookup("10.0.0.1".parse().unwrap());
        assert_eq!(lookup.reserved, Some("private (RFC 1918)"));
        assert!(lookup.geo.is_none());
        assert!(geo.sources()[0].built.timestamp() > 1_700_000_000);
    }
}
