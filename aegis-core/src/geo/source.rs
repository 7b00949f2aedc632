//! One MaxMind-format database, read whatever its record layout.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::{path, PathElement, Reader};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::event::{parse_country, Geo};

/// The database bytes: built in, or mapped from a file.
pub(super) enum Bytes {
    Static(&'static [u8]),
    Mapped(maxminddb::Mmap),
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            Bytes::Static(b) => b,
            Bytes::Mapped(m) => m,
        }
    }
}

/// A database and where it came from.
pub(super) struct Source {
    pub name: String,
    pub path: Option<PathBuf>,
    reader: Reader<Bytes>,
}

/// A value of any scalar type: layouts disagree on types (an ASN may be a u16,
/// a u32 or the string "AS13335"; coordinates a double or a float).
enum Scalar {
    Text(String),
    Int(u64),
    Float(f64),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
                u64::try_from(v).map(Scalar::Int).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                u64::try_from(v).map(Scalar::Int).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Scalar {
    fn text(self) -> Option<String> {
        match self {
            Scalar::Text(t) if !t.trim().is_empty() => Some(t),
            _ => None,
        }
    }

    fn float(self) -> Option<f64> {
        match self {
            Scalar::Float(f) => Some(f),
            Scalar::Int(i) => Some(i as f64),
            Scalar::Text(t) => t.parse().ok(),
        }
    }

    fn asn(self) -> Option<u32> {
        match self {
            Scalar::Int(i) => u32::try_from(i).ok(),
            Scalar::Text(t) => t.trim_start_matches("AS").parse().ok(),
            Scalar::Float(_) => None,
        }
    }
}

/// The built-in country data has one flat field: decoding just it keeps lookups fast.
#[derive(Deserialize)]
struct CountryOnly<'a> {
    #[serde(borrow)]
    country_code: Option<&'a str>,
}

impl Source {
    pub fn builtin(name: &str, bytes: &'static [u8]) -> Result<Self> {
        let reader = Reader::from_source(Bytes::Static(bytes))
            .map_err(|e| Error::Config(format!("built-in {name} database: {e}")))?;
        Ok(Source {
            name: name.to_owned(),
            path: None,
            reader,
        })
    }

    /// `Ok` when `path` is a file: what can be known without opening it.
    pub fn exists(name: &str, path: &Path) -> Result<()> {
        if path.is_file() {
            return Ok(());
        }
        Err(Error::Config(format!(
            "{name} database {} does not exist (set [geo] in the config or pass the path)",
            path.display()
        )))
    }

    pub fn open(name: &str, path: &Path) -> Result<Self> {
        Self::exists(name, path)?;
        let reader = open_mapped(path).map_err(|e| {
            Error::Config(format!(
                "{} is not a readable MaxMind-format (.mmdb) database: {e}",
                path.display()
            ))
        })?;
        Ok(Source {
            name: name.to_owned(),
            path: Some(path.to_owned()),
            reader,
        })
    }

    /// When the data was built.
    pub fn built(&self) -> chrono::DateTime<chrono::Utc> {
        let epoch = i64::try_from(self.reader.metadata().build_epoch).unwrap_or_default();
        chrono::DateTime::from_timestamp(epoch, 0).unwrap_or_default()
    }

    /// The database type from its metadata.
    pub fn kind(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// The country code only (the built-in database's fast path).
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let found = self.reader.lookup(ip).ok()?;
        let record: CountryOnly<'_> = found.decode().ok()??;
        record.country_code.and_then(|c| parse_country(c).ok())
    }

    /// Everything this database knows of `ip`, in either layout. An address the
    /// database cannot hold (IPv6 in an IPv4-only file) is simply unknown.
    pub fn lookup(&self, ip: IpAddr) -> Option<Geo> {
        let found = self.reader.lookup(ip).ok()?;
        if !found.has_data() {
            return None;
        }
        let first = |paths: &[&[PathElement<'_>]]| -> Option<Scalar> {
            paths
                .iter()
                .find_map(|p| found.decode_path::<Scalar>(p).ok().flatten())
        };
        let geo = Geo {
            country: first(&[&path!["country", "iso_code"], &path!["country_code"]])
                .and_then(Scalar::text)
                .and_then(|c| parse_country(&c).ok()),
            city: first(&[&path!["city", "names", "en"], &path!["city"]]).and_then(Scalar::text),
            latitude: first(&[&path!["location", "latitude"], &path!["latitude"]])
                .and_then(Scalar::float)
                .filter(|v| (-90.0..=90.0).contains(v)),
            longitude: first(&[&path!["location", "longitude"], &path!["longitude"]])
                .and_then(Scalar::float)
                .filter(|v| (-180.0..=180.0).contains(v)),
            asn: first(&[&path!["autonomous_system_number"], &path!["asn"]]).and_then(Scalar::asn),
            as_org: first(&[
                &path!["autonomous_system_organization"],
                &path!["as_name"],
                &path!["as_org"],
                &path!["organization"],
            ])
            .and_then(Scalar::text),
        };
        (geo != Geo::default()).then_some(geo)
    }
}

#[allow(unsafe_code)]
fn open_mapped(path: &Path) -> Result<Reader<Bytes>, maxminddb::MaxMindDbError> {
    let file = std::fs::File::open(path)?;
    // SAFETY: the map is read-only. As with every mmdb reader (libmaxminddb maps its
    // files too), replacing a database must be done by renaming a new file into
    // place, never by truncating the mapped one; geoipupdate does exactly that.
    let map = unsafe { maxminddb::Mmap::map(&file) }.map_err(maxminddb::MaxMindDbError::Io)?;
    Reader::from_source(Bytes::Mapped(map))
}
