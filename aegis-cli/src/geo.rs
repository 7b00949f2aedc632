//! `aegis geo`: lookups, sources, and backfilling stored events.

use std::net::IpAddr;
use std::time::Duration;

use aegis_core::geo::online::{self, OnlineProvider};
use aegis_core::geo::{Geolocator, ATTRIBUTION};
use aegis_core::{parse_ip, Geo, Storage};
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
    /// Addresses the online provider completed (asked now or cached before).
    pub online: u64,
    /// Why the online provider stopped early, if it did.
    pub online_stopped: Option<String>,
    /// Events updated.
    pub events_updated: u64,
}

/// The online provider from `[geo]`.
pub fn online_provider(settings: &aegis_core::GeoSettings) -> Result<OnlineProvider> {
    Ok(OnlineProvider::ip_api(
        settings.online_url.as_deref().unwrap_or(online::IP_API_URL),
        settings.online_per_minute.unwrap_or(15),
        Duration::from_secs(10),
        Duration::from_secs(65),
    )?)
}

/// Fills what local data lacks from the provider's cache, then the provider itself.
/// A provider failure ends its part of the backfill; local results still count.
async fn complete_online(
    store: &dyn Storage,
    provider: &mut Option<OnlineProvider>,
    located: &mut Vec<(IpAddr, Geo)>,
    missing: Vec<IpAddr>,
    done: &mut Backfill,
) -> Result<()> {
    let incomplete: Vec<IpAddr> = located
        .iter()
        .filter(|(_, g)| g.city.is_none() || g.asn.is_none())
        .map(|(ip, _)| *ip)
        .chain(missing)
        .collect();
    if provider.is_none() || incomplete.is_empty() {
        return Ok(());
    }
    let mut answers = store.geo_cache().cached_geo(&incomplete).await?;
    let uncached: Vec<IpAddr> = incomplete
        .iter()
        .filter(|ip| !answers.iter().any(|(a, _)| a == *ip))
        .copied()
        .collect();
    if let Some(p) = provider.as_mut().filter(|_| !uncached.is_empty()) {
        match p.locate(&uncached).await {
            Ok(fresh) => {
                store.geo_cache().cache_geo(&fresh).await?;
                answers.extend(fresh);
            }
            Err(e) => {
                done.online_stopped = Some(e.to_string());
                *provider = None;
            }
        }
    }
    for (ip, answer) in answers {
        let Some(online) = answer else { continue };
        done.online += 1;
        match located.iter_mut().find(|(l, _)| *l == ip) {
            // Local data wins; the provider fills the gaps.
            Some((_, local)) => {
                local.country = local.country.take().or(online.country);
                if local.city.is_none() {
                    local.city = online.city;
                    local.latitude = online.latitude;
                    local.longitude = online.longitude;
                }
                local.asn = local.asn.or(online.asn);
                local.as_org = local.as_org.take().or(online.as_org);
            }
            None => {
                done.unknown = done.unknown.saturating_sub(1);
                done.located += 1;
                located.push((ip, online));
            }
        }
    }
    Ok(())
}

/// `aegis geo backfill`: (re)locates every stored address once.
pub async fn backfill(
    geo: &Geolocator,
    mut online: Option<OnlineProvider>,
    store: &dyn Storage,
    json: bool,
) -> Result<()> {
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
        let mut missing = Vec::new();
        for ip in ips {
            done.addresses += 1;
            if aegis_core::geo::reserved_range(ip).is_some() {
                done.reserved += 1;
            } else if let Some(g) = geo.locate(ip) {
                done.located += 1;
                updates.push((ip, g));
            } else {
                done.unknown += 1;
                missing.push(ip);
            }
        }
        complete_online(store, &mut online, &mut updates, missing, &mut done).await?;
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
        if done.online > 0 || done.online_stopped.is_some() {
            println!("online provider: {} addresses completed", done.online);
        }
        if let Some(why) = &done.online_stopped {
            println!("online provider stopped: {why}");
        }
    }
    Ok(())
}
