//! Geolocation against MaxMind's official test databases and generated fixtures
//! in both record layouts.

use std::path::{Path, PathBuf};

use aegis_core::geo::Geolocator;
use aegis_core::{Geo, GeoSettings};
use mmdb_writer::ipnet::IpNet;
use mmdb_writer::{IpVersion, Value, Writer};

fn maxmind(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/maxmind")
        .join(name)
}

fn locator(city: Option<&Path>, asn: Option<&Path>) -> Geolocator {
    Geolocator::from_settings(&GeoSettings {
        city_db: city.map(Path::to_owned),
        asn_db: asn.map(Path::to_owned),
        ..GeoSettings::default()
    })
    .unwrap()
}

fn write(dir: &Path, name: &str, writer: &Writer) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, writer.to_bytes().unwrap()).unwrap();
    path
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn maxmind_test_databases_give_their_known_answers() {
    let geo = locator(
        Some(&maxmind("GeoIP2-City-Test.mmdb")),
        Some(&maxmind("GeoLite2-ASN-Test.mmdb")),
    );
    let london = geo.locate("81.2.69.142".parse().unwrap()).unwrap();
    assert_eq!(london.country.as_deref(), Some("GB"));
    assert_eq!(london.city.as_deref(), Some("London"));
    assert_eq!(
        (london.latitude, london.longitude),
        (Some(51.5142), Some(-0.0931))
    );
    let sweden = geo.locate("::ffff:89.160.20.128".parse().unwrap()).unwrap();
    assert_eq!(
        (sweden.country.as_deref(), sweden.city.as_deref()),
        (Some("SE"), Some("Linköping"))
    );
    let telstra = geo.locate("1.128.0.1".parse().unwrap()).unwrap();
    assert_eq!(telstra.asn, Some(1221));
    assert_eq!(telstra.as_org.as_deref(), Some("Telstra Pty Ltd"));
    let lookup = geo.lookup("81.2.69.142".parse().unwrap());
    assert_eq!(lookup.sources.len(), 3);
    assert_eq!(
        lookup.sources[1].geo.as_ref().unwrap().city.as_deref(),
        Some("London")
    );
}

#[test]
fn flat_layout_with_string_and_u32_asns() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::new("ip-location-db-city");
    let flat = |cc: &str, city: &str, lat: f64, lon: f64| {
        Value::map([
            ("country_code", Value::from(cc)),
            ("city", Value::from(city)),
            ("latitude", Value::Float(lat as f32)),
            ("longitude", Value::Double(lon)),
        ])
    };
    w.insert_value(net("5.1.0.0/16"), flat("de", "Berlin", 52.5, 13.4))
        .unwrap();
    w.insert_value(
        net("2a01:4f8::/32"),
        flat("DE", "Falkenstein", 50.47, 12.37),
    )
    .unwrap();
    let city = write(dir.path(), "city.mmdb", &w);
    let mut w = Writer::new("ipinfo-lite");
    w.insert_value(
        net("5.1.0.0/16"),
        Value::map([
            ("asn", Value::from("AS24940")),
            ("as_name", Value::from("Hetzner")),
        ]),
    )
    .unwrap();
    w.insert_value(
        net("2a01:4f8::/32"),
        Value::map([
            ("asn", Value::U32(4_200_000_001)),
            ("as_org", Value::from("Big AS")),
        ]),
    )
    .unwrap();
    let asn = write(dir.path(), "asn.mmdb", &w);

    let geo = locator(Some(&city), Some(&asn));
    let berlin = geo.locate("5.1.2.3".parse().unwrap()).unwrap();
    assert_eq!(
        berlin.country.as_deref(),
        Some("DE"),
        "codes are upper-cased"
    );
    assert_eq!(berlin.city.as_deref(), Some("Berlin"));
    assert!(
        (berlin.latitude.unwrap() - 52.5).abs() < 1e-4,
        "floats decode"
    );
    assert_eq!(
        (berlin.asn, berlin.as_org.as_deref()),
        (Some(24940), Some("Hetzner"))
    );
    let v6 = geo.locate("2a01:4f8:1::1".parse().unwrap()).unwrap();
    assert_eq!(
        (v6.city.as_deref(), v6.asn),
        (Some("Falkenstein"), Some(4_200_000_001))
    );
}

#[test]
fn nested_layout_with_u16_asn_and_ipv4_only_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::builder("GeoLite2-City")
        .ip_version(IpVersion::V4)
        .build();
    let nested = Value::map([
        ("country", Value::map([("iso_code", Value::from("FR"))])),
        (
            "city",
            Value::map([(
                "names",
                Value::map([("en", Value::from("Paris")), ("fr", Value::from("Paris"))]),
            )]),
        ),
        (
            "location",
            Value::map([
                ("latitude", Value::Double(48.85)),
                ("longitude", Value::Double(2.35)),
            ]),
        ),
    ]);
    w.insert_value(net("37.0.0.0/8"), nested).unwrap();
    let city = write(dir.path(), "city-v4.mmdb", &w);
    let mut w = Writer::builder("GeoLite2-ASN")
        .ip_version(IpVersion::V4)
        .build();
    w.insert_value(
        net("37.0.0.0/8"),
        Value::map([
            ("autonomous_system_number", Value::U16(3215)),
            ("autonomous_system_organization", Value::from("Orange")),
        ]),
    )
    .unwrap();
    let asn = write(dir.path(), "asn-v4.mmdb", &w);

    let geo = locator(Some(&city), Some(&asn));
    let paris = geo.locate("37.1.2.3".parse().unwrap()).unwrap();
    assert_eq!(paris.country.as_deref(), Some("FR"));
    assert_eq!(paris.city.as_deref(), Some("Paris"));
    assert_eq!(
        (paris.asn, paris.as_org.as_deref()),
        (Some(3215), Some("Orange"))
    );
    // IPv6 in IPv4-only files: unknown there, and the built-in country still answers.
    let v6 = geo.lookup("2a00:1450:4001::1".parse().unwrap());
    assert!(v6.sources[1].geo.is_none() && v6.sources[2].geo.is_none());
    assert!(v6
        .geo
        .is_some_and(|g| g.country.is_some() && g.city.is_none()));
}

#[test]
fn configured_files_that_cannot_be_used_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Geolocator::from_settings(&GeoSettings {
        city_db: Some(dir.path().join("nope.mmdb")),
        ..GeoSettings::default()
    });
    assert!(missing.unwrap_err().to_string().contains("does not exist"));
    let junk = dir.path().join("junk.mmdb");
    std::fs::write(&junk, b"this is not a database").unwrap();
    let bad = Geolocator::from_settings(&GeoSettings {
        asn_db: Some(junk),
        ..GeoSettings::default()
    });
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("not a readable MaxMind-format"));
}

#[test]
fn reserved_ranges_are_never_looked_up() {
    let geo = locator(Some(&maxmind("GeoIP2-City-Test.mmdb")), None);
    for ip in [
        "10.0.0.1",
        "192.168.0.1",
        "100.64.1.1",
        "fd12::1",
        "fe80::1",
        "::1",
        "203.0.113.5",
    ] {
        let l = geo.lookup(ip.parse().unwrap());
        assert!(
            l.reserved.is_some() && l.geo.is_none() && l.sources.iter().all(|s| s.geo.is_none()),
            "{ip}"
        );
    }
    assert_eq!(
        geo.locate("81.2.69.142".parse().unwrap())
            .map(|g: Geo| g.country),
        Some(Some("GB".into()))
    );
}
