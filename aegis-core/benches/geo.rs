//! Geolocation benchmark: lookups per second on one core, and a backfill.
//!
//! `cargo bench -p aegis-core --bench geo`. The backfill uses the 1M-event store
//! made by the storage benchmark (`target/aegis-bench/events-1000000.db`) when present.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use aegis_testkit::traffic::Rng;

use aegis_core::geo::Geolocator;
use aegis_core::GeoSettings;
use mmdb_writer::ipnet::{IpNet, Ipv4Net};
use mmdb_writer::{Value, Writer};

/// A random public IPv4 address.
fn public_v4(rng: &mut Rng) -> Ipv4Addr {
    loop {
        let ip = Ipv4Addr::from(rng.u32(..));
        if aegis_core::geo::reserved_range(IpAddr::V4(ip)).is_none() {
            return ip;
        }
    }
}

fn rate(n: usize, f: impl FnMut(usize)) -> f64 {
    let mut f = f;
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// City and ASN databases in GeoLite2's nested layout, with `n` /24 networks each.
fn fixtures(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let mut rng = Rng::with_seed(99);
    let mut city = Writer::new("GeoLite2-City");
    let mut asn = Writer::new("GeoLite2-ASN");
    for i in 0..n {
        let ip = public_v4(&mut rng);
        let net = IpNet::V4(Ipv4Net::new(ip, 24).expect("prefix").trunc());
        let record = Value::map([
            ("country", Value::map([("iso_code", Value::from("DE"))])),
            (
                "city",
                Value::map([(
                    "names",
                    Value::map([("en", Value::from(format!("City {}", i % 5000)))]),
                )]),
            ),
            (
                "location",
                Value::map([
                    ("latitude", Value::Double(50.0)),
                    ("longitude", Value::Double(8.0)),
                ]),
            ),
        ]);
        city.insert_value(net, record).expect("insert");
        let org = Value::map([
            (
                "autonomous_system_number",
                Value::U32(64_000 + (i % 3000) as u32),
            ),
            (
                "autonomous_system_organization",
                Value::from(format!("Org {}", i % 3000)),
            ),
        ]);
        asn.insert_value(net, org).expect("insert");
    }
    let (c, a) = (dir.join("city.mmdb"), dir.join("asn.mmdb"));
    std::fs::write(&c, city.to_bytes().expect("city bytes")).expect("write");
    std::fs::write(&a, asn.to_bytes().expect("asn bytes")).expect("write");
    (c, a)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut rng = Rng::with_seed(7);
    let ips: Vec<IpAddr> = (0..1_000_000)
        .map(|_| IpAddr::V4(public_v4(&mut rng)))
        .collect();
    let builtin = Geolocator::builtin().expect("built-in data");
    let mut found = 0usize;
    let country = rate(ips.len(), |i| {
        found += builtin.country(ips[i]).is_some() as usize
    });
    let merged = rate(ips.len(), |i| {
        found += builtin.locate(ips[i]).is_some() as usize
    });
    println!(
        "built-in country, fast path:     {:>12.0} lookups/s  (target >= 5000000)",
        country
    );
    println!(
        "built-in country, locate():      {:>12.0} lookups/s  (reserved-range check + merge)",
        merged
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let (city, asn) = fixtures(dir.path(), 200_000);
    let full = Geolocator::from_settings(&GeoSettings {
        city_db: Some(city),
        asn_db: Some(asn),
        ..GeoSettings::default()
    })
    .expect("fixtures open");
    // Half the addresses inside the fixture networks, as attack traffic concentrates.
    let hits: Vec<IpAddr> = {
        let mut rng = Rng::with_seed(99);
        (0..500_000)
            .map(|_| IpAddr::V4(public_v4(&mut rng)))
            .chain(ips[..500_000].iter().copied())
            .collect()
    };
    let city_asn = rate(hits.len(), |i| {
        found += full.locate(hits[i]).is_some() as usize
    });
    println!(
        "city + ASN + country, locate():  {:>12.0} lookups/s  (200k-network city and ASN files)",
        city_asn
    );
    std::hint::black_box(found);

    let source =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/aegis-bench/events-1000000.db");
    if !source.is_file() {
        println!(
            "backfill: skipped, run the storage benchmark first to create {}",
            source.display()
        );
        return;
    }
    let copy = dir.path().join("backfill.db");
    std::fs::copy(&source, &copy).expect("copy the store");
    let store = aegis_testkit::open_sqlite(&copy).await;
    let t = Instant::now();
    let (mut addresses, mut events, mut after) = (0u64, 0u64, None);
    loop {
        let page = store.distinct_ips(after, 5_000).await.expect("page");
        let Some(last) = page.last().copied() else {
            break;
        };
        after = Some(last);
        addresses += page.len() as u64;
        let updates: Vec<_> = page
            .into_iter()
            .filter_map(|ip| full.locate(ip).map(|g| (ip, g)))
            .collect();
        events += store.set_geo_many(&updates).await.expect("set geo");
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "backfill of the 1M-event store: {addresses} distinct addresses, {events} events updated in {secs:.1} s ({:.0} addresses/s)",
        addresses as f64 / secs
    );
}
