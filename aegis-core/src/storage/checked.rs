//! The front every backend sits behind: inputs are validated and normalised
//! here, once, so a backend only ever sees canonical addresses, bounded pages,
//! and events and locations that passed their checks.

use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{GeoCache, Storage};
use crate::error::Result;
use crate::event::{BanEvent, Geo};
use crate::query::{
    BatchOutcome, DayCount, EventFilter, Offender, Page, StatsQuery, StoredEvent, Summary, TopBy,
    TopEntry,
};

/// A backend behind the checks. Shown as the backend itself.
pub(super) struct Checked<S>(pub S);

impl<S: fmt::Debug> fmt::Debug for Checked<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn canonical_filter(filter: &EventFilter) -> EventFilter {
    let mut filter = filter.clone();
    filter.ip = filter.ip.map(|ip| ip.to_canonical());
    filter
}

fn bounded(page: Page) -> Page {
    Page {
        limit: page.limit.min(Page::MAX_LIMIT),
        ..page
    }
}

#[async_trait]
impl<S: Storage> Storage for Checked<S> {
    async fn record_batch(&self, events: &[BanEvent]) -> Result<BatchOutcome> {
        for e in events {
            e.validate()?;
        }
        self.0.record_batch(events).await
    }

    async fn events(&self, filter: &EventFilter, page: Page) -> Result<Vec<StoredEvent>> {
        self.0
            .events(&canonical_filter(filter), bounded(page))
            .await
    }

    async fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        self.0.count_events(&canonical_filter(filter)).await
    }

    async fn summary(&self, query: &StatsQuery) -> Result<Summary> {
        self.0.summary(query).await
    }

    async fn ban_count(&self, query: &StatsQuery) -> Result<u64> {
        self.0.ban_count(query).await
    }

    async fn bans_per_day(&self, query: &StatsQuery, tz: Tz) -> Result<Vec<DayCount>> {
        self.0.bans_per_day(query, tz).await
    }

    async fn top_offenders(&self, query: &StatsQuery, limit: u32) -> Result<Vec<Offender>> {
        self.0.top_offenders(query, limit).await
    }

    async fn top(&self, query: &StatsQuery, by: TopBy, limit: u32) -> Result<Vec<TopEntry>> {
        self.0.top(query, by, limit).await
    }

    async fn ip_history(&self, ip: IpAddr) -> Result<Vec<StoredEvent>> {
        self.0.ip_history(ip.to_canonical()).await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        self.0.prune(before).await
    }

    async fn set_geo(&self, ip: IpAddr, geo: &Geo) -> Result<u64> {
        geo.validate()?;
        self.0.set_geo(ip.to_canonical(), geo).await
    }

    async fn set_geo_many(&self, updates: &[(IpAddr, Geo)]) -> Result<u64> {
        for (_, geo) in updates {
            geo.validate()?;
        }
        let updates: Vec<(IpAddr, Geo)> = updates
            .iter()
            .map(|(ip, geo)| (ip.to_canonical(), geo.clone()))
            .collect();
        self.0.set_geo_many(&updates).await
    }

    async fn distinct_ips(&self, after: Option<IpAddr>, limit: u32) -> Result<Vec<IpAddr>> {
        self.0
            .distinct_ips(after.map(|ip| ip.to_canonical()), limit)
            .await
    }

    fn geo_cache(&self) -> &dyn GeoCache {
        self
    }
}

#[async_trait]
impl<S: Storage> GeoCache for Checked<S> {
    async fn cached_geo(&self, ips: &[IpAddr]) -> Result<Vec<(IpAddr, Option<Geo>)>> {
        let ips: Vec<IpAddr> = ips.iter().map(|ip| ip.to_canonical()).collect();
        self.0.geo_cache().cached_geo(&ips).await
    }

    async fn cache_geo(&self, answers: &[(IpAddr, Option<Geo>)]) -> Result<()> {
        for geo in answers.iter().filter_map(|(_, g)| g.as_ref()) {
            geo.validate()?;
        }
        let answers: Vec<(IpAddr, Option<Geo>)> = answers
            .iter()
            .map(|(ip, geo)| (ip.to_canonical(), geo.clone()))
            .collect();
        self.0.geo_cache().cache_geo(&answers).await
    }
}
