//! The query commands: stats, top, ip, events, prune.

use std::io::Write;

use aegis_core::{
    parse_age, parse_country, parse_ip, parse_moment, EventFilter, EventKind, IpNetwork, Order,
    Page, Scope, StatsQuery, Storage, StoredEvent, TopBy,
};
use anyhow::Result;
use chrono::Utc;
use serde_json::json;

use aegis_core::calendar::Per;

use crate::cli::{EventsArgs, RangeArgs, StatsArgs, TopArgs, TopKey};
use crate::table::render;

async fn stats_query(store: &dyn Storage, range: &RangeArgs) -> Result<StatsQuery> {
    let now = Utc::now();
    let since = if range.since == "all" {
        // From the first stored event, not from a fixed date long before it.
        let first = Page {
            order: Order::Asc,
            ..Page::first(1)
        };
        match store.events(&EventFilter::default(), first).await?.first() {
            Some(e) => e.event.time,
            None => now - chrono::Duration::days(1),
        }
    } else {
        parse_moment(&range.since, now)?
    };
    let until = match &range.until {
        Some(u) => parse_moment(u, now)?,
        None => now,
    };
    if until <= since {
        anyhow::bail!(aegis_core::Error::Invalid(format!(
            "--until ({until}) must be later than --since ({since})"
        )));
    }
    let scope = Scope {
        host: range.host.clone(),
        jail: range.jail.clone(),
        country: range.country.as_deref().map(parse_country).transpose()?,
    };
    Ok(scope.narrow(StatsQuery::range(since, until)))
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `aegis stats`
pub async fn stats(store: &dyn Storage, args: &StatsArgs, tz: aegis_core::Tz) -> Result<()> {
    let q = stats_query(store, &args.range).await?;
    let summary = store.summary(&q).await?;
    let days = store.bans_per_day(&q, tz).await?;
    let top = store.top_offenders(&q, 5).await?;
    if args.json {
        let mut out = json!({
            "since": q.since, "until": q.until, "summary": summary, "daily": days, "top_offenders": top,
        });
        if let Some(per) = args.per {
            out["per"] = json!(per);
            out["bans"] = json!(per
                .group(&days)
                .into_iter()
                .map(|(start, bans)| json!({ "start": start, "bans": bans }))
                .collect::<Vec<_>>());
        }
        return print_json(&out);
    }
    println!(
        "{} to {}\n  bans {}  unique IPs {}  countries {}  jails {}  hosts {}  currently banned {}\n",
        q.since.format("%Y-%m-%d %H:%M"),
        q.until.format("%Y-%m-%d %H:%M UTC"),
        summary.bans,
        summary.unique_ips,
        summary.countries,
        summary.jails,
        summary.hosts,
        summary.currently_banned
    );
    let per = args.per.unwrap_or_else(|| Per::fitting(days.len() as i64));
    let periods = per.group(&days);
    let peak = periods.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let rows: Vec<Vec<String>> = periods
        .iter()
        .map(|(start, bans)| {
            let bar = "#".repeat(((bans * 40).div_ceil(peak)) as usize);
            vec![per.label(*start), bans.to_string(), bar]
        })
        .collect();
    let heading = match per {
        Per::Day => "day",
        Per::Week => "week of",
        Per::Month => "month",
        Per::Year => "year",
    };
    print!("{}", render(&[heading, "bans", ""], &rows));
    if !top.is_empty() {
        println!();
        print_offenders(&top);
    }
    Ok(())
}

fn print_offenders(top: &[aegis_core::Offender]) {
    let rows: Vec<Vec<String>> = top
        .iter()
        .map(|o| {
            vec![
                o.ip.to_string(),
                o.bans.to_string(),
                o.country.clone().unwrap_or_else(|| "-".into()),
                o.jails.join(","),
                o.last_seen.format("%Y-%m-%d %H:%M").to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        render(&["ip", "bans", "country", "jails", "last seen"], &rows)
    );
}

/// `aegis top`
pub async fn top(store: &dyn Storage, args: &TopArgs) -> Result<()> {
    let q = stats_query(store, &args.range).await?;
    let by = match args.by {
        TopKey::Ip => {
            let top = store.top_offenders(&q, args.limit).await?;
            if args.json {
                return print_json(&top);
            }
            print_offenders(&top);
            return Ok(());
        }
        TopKey::Country => TopBy::Country,
        TopKey::Jail => TopBy::Jail,
        TopKey::Host => TopBy::Host,
        TopKey::Asn => TopBy::Asn,
        TopKey::Network => TopBy::Network,
    };
    let top = store.top(&q, by, args.limit).await?;
    if args.json {
        return print_json(&top);
    }
    let rows: Vec<Vec<String>> = top
        .iter()
        .map(|t| {
            vec![
                t.key.clone(),
                t.bans.to_string(),
                t.unique_ips.to_string(),
                t.label.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!("{}", render(&["key", "bans", "unique IPs", ""], &rows));
    Ok(())
}

/// `aegis ip`
pub async fn ip(store: &dyn Storage, ip: &str, json: bool) -> Result<()> {
    let ip = parse_ip(ip)?;
    let history = store.ip_history(ip).await?;
    let decisions = store.decision_log().on(ip).await?;
    if json {
        return print_json(&json!({ "ip": ip, "events": history, "decisions": decisions }));
    }
    if !decisions.is_empty() {
        crate::decide::print_table(store, &decisions).await?;
        println!();
    }
    if history.is_empty() {
        println!("{ip}: no events stored");
        return Ok(());
    }
    let bans = history.iter().filter(|e| e.event.is_new_ban()).count();
    let geo = history.iter().rev().find_map(|e| e.event.geo.clone());
    println!("{ip}: {bans} bans, {} events", history.len());
    if let Some(g) = geo {
        let place = [g.country, g.city]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
        let asn = g
            .asn
            .map(|a| format!("  AS{a} {}", g.as_org.unwrap_or_default()));
        println!("  {}{}", place.join(", "), asn.unwrap_or_default());
    }
    println!();
    print_events(&history);
    Ok(())
}

fn print_events(events: &[StoredEvent]) {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|s| {
            let e = &s.event;
            let kind = if e.restored {
                "restored".to_owned()
            } else {
                e.kind.to_string()
            };
            vec![
                e.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                kind,
                e.ip.to_string(),
                e.jail.clone(),
                e.host.clone(),
                e.failures.map(|f| f.to_string()).unwrap_or_default(),
                e.geo
                    .as_ref()
                    .and_then(|g| g.country.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        render(
            &[
                "time (UTC)",
                "kind",
                "ip",
                "jail",
                "host",
                "failures",
                "country"
            ],
            &rows
        )
    );
}

/// `aegis events`
pub async fn events(store: &dyn Storage, args: &EventsArgs) -> Result<()> {
    let now = Utc::now();
    let network = args
        .network
        .as_deref()
        .map(|n| {
            n.parse::<IpNetwork>().map_err(|_| {
                aegis_core::Error::Invalid(format!(
                    "invalid --network {n:?}: expected CIDR such as 203.0.113.0/24 or 2001:db8::/32"
                ))
            })
        })
        .transpose()?;
    let filter = EventFilter {
        ip: args.ip.as_deref().map(parse_ip).transpose()?,
        network,
        scope: Scope {
            host: args.host.clone(),
            jail: args.jail.clone(),
            country: args.country.as_deref().map(parse_country).transpose()?,
        },
        kind: args
            .kind
            .as_deref()
            .map(str::parse::<EventKind>)
            .transpose()?,
        since: args
            .since
            .as_deref()
            .map(|s| parse_moment(s, now))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| parse_moment(s, now))
            .transpose()?,
    };
    let page = Page {
        limit: args.limit,
        offset: args.offset,
        order: if args.asc { Order::Asc } else { Order::Desc },
        after: None,
    };
    let events = store.events(&filter, page).await?;
    if args.json {
        return print_json(&events);
    }
    if args.csv {
        return write_csv(&events);
    }
    print_events(&events);
    Ok(())
}

fn write_csv(events: &[StoredEvent]) -> Result<()> {
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record(StoredEvent::CSV_HEADER)?;
    for s in events {
        out.write_record(s.csv_record())?;
    }
    out.flush()?;
    Ok(())
}

/// `aegis prune`
pub async fn prune(store: &dyn Storage, older_than: &str, json: bool) -> Result<()> {
    let age = parse_age(older_than)?;
    let before = Utc::now() - age;
    let removed = store.prune(before).await?;
    if json {
        return print_json(&json!({ "removed": removed, "before": before }));
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "removed {removed} events older than {}",
        before.format("%Y-%m-%d %H:%M UTC")
    )?;
    Ok(())
}
