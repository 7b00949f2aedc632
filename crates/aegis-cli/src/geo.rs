//! `aegis geo`: lookups, sources, and backfilling stored events.

use aegis_core::geo::{Geolocator, ATTRIBUTION};
use aegis_core::{parse_ip, Storage};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::table::render;

/// `aegis geo lookup`
pub fn lookup(geo: &Geolocator, ips: &[String], json: bool) -> Result<()> {
    let lookups = ips
        .iter()
        .map(|ip| parse_ip(ip).map(|ip| geo.lookup(ip)))
        .collect::<Result<Vec<_>, _>>()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&lookups)?);
        return Ok(());
    }
    for l in lookups {
        println!("{}", l.ip);
        if let Some(label) = l.reserved {
            println!("  {label}: not looked up\n");
            continue;
        }
        let mut rows: Vec<Vec<String>> = l
            .sources
            .iter()
            .map(|s| describe(&s.source, s.geo.as_ref()))
            .collect();
        rows.push(describe("=> stored", l.geo.as_ref()));
        print!(
            "{}",
            render(&["source", "country", "city", "lat, lon", "AS"], &rows)
        );
        println!();
    }
    Ok(())
}

fn describe(source: &str, geo: Option<&aegis_core::Geo>) -> Vec<String> {
    let Some(g) = geo else {
        return vec![source.to_owned(), "unknown".into()];
    };
    let coords = match (g.latitude, g.longitude) {
        (Some(lat), Some(lon)) => format!("{lat:.4}, {lon:.4}"),
        _ => String::new(),
    };
    let asn = g
        .asn
        .map(|a| format!("AS{a} {}", g.as_org.clone().unwrap_or_default()))
        .unwrap_or_default();
    vec![
        source.to_owned(),
        g.country.clone().unwrap_or_default(),
        g.city.clone().unwrap_or_default(),
        coords,
        asn,
    ]
}

/// `aegis geo info`
pub fn info(geo: &Geolocator, json: bool) -> Result<()> {
    let sources = geo.sources();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "sources": sources, "attribution": ATTRIBUTION })
            )?
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = sources
        .iter()
        .map(|s| {
            vec![
                s.source.clone(),
                s.path
                    .as_ref()
                    .map_or("built in".into(), |p| p.display().to_string()),
                s.kind.clone(),
                s.built.format("%Y-%m-%d").to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        render(&["source", "file", "type", "data date"], &rows)
    );
    println!("\n{ATTRIBUTION}");
    Ok(())
}

/// What a backfill did.
#[derive(Debug, Default, Serialize)]
pub struct Backfill {
    /// Distinct addresses examined.
    pub addresses: u64,
    /// Addresses located (their events updated).
    pub located: u64,
    /// Addresses in private or reserved ranges.
    pub reserved: u64,
    /// Addresses no source knows.
    pub unknown: u64,
    /// Events updated.
    pub events_updated: u64,
}

/// `aegis geo backfill`: (re)locates every stored address once.
pub async fn backfill(geo: &Geolocator, store: &dyn Storage, json: bool) -> Result<()> {
    const PAGE: u32 = 5_000;
    let bar = ProgressBar::new_spinner();
    if let Ok(style) =
        ProgressStyle::with_template("locating {spinner} {pos} addresses ({per_sec})")
    {
        bar.set_style(style);
    }
    let mut done = Backfill::default();
    let mut after = None;
    loop {
        let ips = store.distinct_ips(after, PAGE).await?;
        let Some(last) = ips.last().copied() else {
            break;
        };
        after = Some(last);
        let mut updates = Vec::with_capacity(ips.len());
        for ip in ips {
            done.addresses += 1;
            if aegis_core::geo::reserved_range(ip).is_some() {
                done.reserved += 1;
            } else if let Some(g) = geo.locate(ip) {
                done.located += 1;
                updates.push((ip, g));
            } else {
                done.unknown += 1;
            }
        }
        done.events_updated += store.set_geo_many(&updates).await?;
        bar.set_position(done.addresses);
    }
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        println!(
            "{} addresses: {} located, {} private or reserved, {} unknown; {} events updated",
            done.addresses, done.located, done.reserved, done.unknown, done.events_updated
        );
    }
    Ok(())
}
