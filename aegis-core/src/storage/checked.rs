//! The front every backend sits behind: inputs are validated and normalised
//! here, once, so a backend only ever sees canonical addresses, bounded pages,
//! and events and locations that passed their checks. A front may also bound
//! how many calls run at once ([`throttled`]).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{DecisionLog, GeoCache, Storage};
use crate::decision::{AgentReport, Applied, Decision};
use crate::error::Result;
use crate::event::{check_name, check_text};
use crate::event::{BanEvent, Geo};
use crate::query::{
    BatchOutcome, DayCount, EventFilter, Offender, Page, StatsQuery, StoredEvent, Summary, TopBy,
    TopEntry,
};

/// A backend behind the checks. Shown as the backend itself.
pub(super) struct Checked {
    inner: Arc<dyn Storage>,
    calls: Option<Semaphore>,
}

impl Checked {
    /// `backend` behind the checks.
    pub fn new(backend: impl Storage + 'static) -> Self {
        Checked {
            inner: Arc::new(backend),
            calls: None,
        }
    }

    /// Waits for a turn when calls are bounded.
    async fn turn(&self) -> Option<SemaphorePermit<'_>> {
        match &self.calls {
            Some(calls) => calls.acquire().await.ok(),
            None => None,
        }
    }
}

/// `store`, running at most `calls` of its calls at once; the others wait
/// their turn. A server hands this to its expensive work, so that however much
/// of it there is, the store's connections are never all taken and cheap
/// requests (health checks, the latest events) do not wait behind it.
pub fn throttled(store: Arc<dyn Storage>, calls: usize) -> Arc<dyn Storage> {
    Arc::new(Checked {
        inner: store,
        calls: Some(Semaphore::new(calls.max(1))),
    })
}

impl fmt::Debug for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
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
impl Storage for Checked {
    async fn record_batch(&self, events: &[BanEvent]) -> Result<BatchOutcome> {
        let _turn = self.turn().await;
        for e in events {
            e.validate()?;
        }
        self.inner.record_batch(events).await
    }

    async fn events(&self, filter: &EventFilter, page: Page) -> Result<Vec<StoredEvent>> {
        let _turn = self.turn().await;
        self.inner
            .events(&canonical_filter(filter), bounded(page))
            .await
    }

    async fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        let _turn = self.turn().await;
        self.inner.count_events(&canonical_filter(filter)).await
    }

    async fn summary(&self, query: &StatsQuery) -> Result<Summary> {
        let _turn = self.turn().await;
        self.inner.summary(query).await
    }

    async fn ban_count(&self, query: &StatsQuery) -> Result<u64> {
        let _turn = self.turn().await;
        self.inner.ban_count(query).await
    }

    async fn bans_per_day(&self, query: &StatsQuery, tz: Tz) -> Result<Vec<DayCount>> {
        let _turn = self.turn().await;
        self.inner.bans_per_day(query, tz).await
    }

    async fn top_offenders(&self, query: &StatsQuery, limit: u32) -> Result<Vec<Offender>> {
        let _turn = self.turn().await;
        self.inner.top_offenders(query, limit).await
    }

    async fn top(&self, query: &StatsQuery, by: TopBy, limit: u32) -> Result<Vec<TopEntry>> {
        let _turn = self.turn().await;
        self.inner.top(query, by, limit).await
    }

    async fn maintain(&self) -> Result<()> {
        let _turn = self.turn().await;
        self.inner.maintain().await
    }

    async fn expect_bulk(&self, events: u64) -> Result<()> {
        let _turn = self.turn().await;
        self.inner.expect_bulk(events).await
    }

    async fn ip_history(&self, ip: IpAddr) -> Result<Vec<StoredEvent>> {
        let _turn = self.turn().await;
        self.inner.ip_history(ip.to_canonical()).await
    }

    async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        let _turn = self.turn().await;
        self.inner.prune(before).await
    }

    async fn set_geo(&self, ip: IpAddr, geo: &Geo) -> Result<u64> {
        let _turn = self.turn().await;
        geo.validate()?;
        self.inner.set_geo(ip.to_canonical(), geo).await
    }

    async fn set_geo_many(&self, updates: &[(IpAddr, Geo)]) -> Result<u64> {
        let _turn = self.turn().await;
        for (_, geo) in updates {
            geo.validate()?;
        }
        let updates: Vec<(IpAddr, Geo)> = updates
            .iter()
            .map(|(ip, geo)| (ip.to_canonical(), geo.clone()))
            .collect();
        self.inner.set_geo_many(&updates).await
    }

    async fn distinct_ips(&self, after: Option<IpAddr>, limit: u32) -> Result<Vec<IpAddr>> {
        let _turn = self.turn().await;
        self.inner
            .distinct_ips(after.map(|ip| ip.to_canonical()), limit)
            .await
    }

    fn geo_cache(&self) -> &dyn GeoCache {
        self
    }

    fn decision_log(&self) -> &dyn DecisionLog {
        self
    }

    async fn state(&self, name: &str) -> Result<Option<serde_json::Value>> {
        let _turn = self.turn().await;
        check_name("state", name, 128)?;
        self.inner.state(name).await
    }

    async fn set_state(&self, name: &str, value: &serde_json::Value) -> Result<()> {
        let _turn = self.turn().await;
        check_name("state", name, 128)?;
        self.inner.set_state(name, value).await
    }
}

#[async_trait]
impl DecisionLog for Checked {
    async fn decide(&self, decision: &Decision) -> Result<Decision> {
        let _turn = self.turn().await;
        decision.validate()?;
        self.inner.decision_log().decide(decision).await
    }

    async fn after(&self, after: u64, limit: u32) -> Result<Vec<Decision>> {
        let _turn = self.turn().await;
        let limit = limit.min(Page::MAX_LIMIT);
        self.inner.decision_log().after(after, limit).await
    }

    async fn on(&self, ip: IpAddr) -> Result<Vec<Decision>> {
        let _turn = self.turn().await;
        self.inner.decision_log().on(ip.to_canonical()).await
    }

    async fn made_from(&self, host: &str, since: DateTime<Utc>) -> Result<u64> {
        let _turn = self.turn().await;
        self.inner.decision_log().made_from(host, since).await
    }

    async fn record_applied(&self, applied: &[Applied]) -> Result<()> {
        let _turn = self.turn().await;
        for a in applied {
            check_name("host", &a.host, 253)?;
            if let Some(detail) = &a.detail {
                check_text("detail", detail, 512)?;
            }
        }
        self.inner.decision_log().record_applied(applied).await
    }

    async fn applied(&self, decisions: &[u64]) -> Result<Vec<Applied>> {
        let _turn = self.turn().await;
        self.inner.decision_log().applied(decisions).await
    }

    async fn report_agent(&self, report: &AgentReport) -> Result<()> {
        let _turn = self.turn().await;
        check_name("host", &report.host, 253)?;
        self.inner.decision_log().report_agent(report).await
    }

    async fn agents(&self) -> Result<Vec<AgentReport>> {
        let _turn = self.turn().await;
        self.inner.decision_log().agents().await
    }
}

#[async_trait]
impl GeoCache for Checked {
    async fn cached_geo(&self, ips: &[IpAddr]) -> Result<Vec<(IpAddr, Option<Geo>)>> {
        let _turn = self.turn().await;
        let ips: Vec<IpAddr> = ips.iter().map(|ip| ip.to_canonical()).collect();
        self.inner.geo_cache().cached_geo(&ips).await
    }

    async fn cache_geo(&self, answers: &[(IpAddr, Option<Geo>)]) -> Result<()> {
        let _turn = self.turn().await;
        for geo in answers.iter().filter_map(|(_, g)| g.as_ref()) {
            geo.validate()?;
        }
        let answers: Vec<(IpAddr, Option<Geo>)> = answers
            .iter()
            .map(|(ip, geo)| (ip.to_canonical(), geo.clone()))
            .collect();
        self.inner.geo_cache().cache_geo(&answers).await
    }
}
