//! Decisions and agents' reports in SQLite.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::key::Stored;
use super::sql_err;
use crate::decision::{AgentReport, Applied, Decision, Origin};
use crate::error::{Error, Result};
use crate::ipkey::network_range;

pub(super) fn decide(conn: &mut Connection, decision: &Decision) -> Result<Decision> {
    // Immediate: the key's check and the insert see the same database.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    if let Some(key) = &decision.key {
        let stored = tx
            .query_row(
                "SELECT id, body FROM decisions WHERE key = ?1",
                [key],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(sql_err)?;
        if let Some((id, body)) = stored {
            return parse(id, &body);
        }
    }
    let (first, last) = network_range(decision.target);
    let policy_host = match &decision.origin {
        Origin::Policy { host, .. } => Some(host.as_str()),
        Origin::Person { .. } => None,
    };
    let mut body = decision.clone();
    body.id = 0;
    let json = serde_json::to_string(&body).map_err(|e| Error::Storage(e.to_string()))?;
    tx.execute(
        "INSERT INTO decisions (key, first_key, last_key, policy_host, created, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            decision.key,
            Stored::of(&first),
            Stored::of(&last),
            policy_host,
            decision.created.timestamp_millis(),
            json
        ],
    )
    .map_err(sql_err)?;
    body.id = tx.last_insert_rowid() as u64;
    tx.commit().map_err(sql_err)?;
    Ok(body)
}

pub(super) fn after(conn: &Connection, after: u64, limit: u32) -> Result<Vec<Decision>> {
    select(
        conn,
        "SELECT id, body FROM decisions WHERE id > ?1 ORDER BY id LIMIT ?2",
        params![after as i64, limit],
    )
}

pub(super) fn on(conn: &Connection, ip: IpAddr) -> Result<Vec<Decision>> {
    select(
        conn,
        "SELECT id, body FROM decisions WHERE first_key <= ?1 AND last_key >= ?1 ORDER BY id",
        params![Stored::ip(ip)],
    )
}

pub(super) fn made_from(conn: &Connection, host: &str, since: DateTime<Utc>) -> Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM decisions WHERE policy_host = ?1 AND created >= ?2",
        params![host, since.timestamp_millis()],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
    .map_err(sql_err)
}

pub(super) fn record_applied(conn: &mut Connection, applied: &[Applied]) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    for a in applied {
        let json = serde_json::to_string(a).map_err(|e| Error::Storage(e.to_string()))?;
        tx.prepare_cached(
            "INSERT INTO decision_applied (decision, host, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (decision, host) DO UPDATE SET body = excluded.body",
        )
        .and_then(|mut s| s.execute(params![a.decision as i64, a.host, json]))
        .map_err(sql_err)?;
    }
    tx.commit().map_err(sql_err)
}

pub(super) fn applied(conn: &Connection, decisions: &[u64]) -> Result<Vec<Applied>> {
    let mut stmt = conn
        .prepare_cached("SELECT body FROM decision_applied WHERE decision = ?1 ORDER BY host")
        .map_err(sql_err)?;
    let mut all = Vec::new();
    for id in decisions {
        let bodies = stmt
            .query_map([*id as i64], |r| r.get::<_, String>(0))
            .and_then(Iterator::collect::<rusqlite::Result<Vec<String>>>)
            .map_err(sql_err)?;
        for body in bodies {
            all.push(
                serde_json::from_str(&body).map_err(|e| Error::Storage(format!("applied: {e}")))?,
            );
        }
    }
    Ok(all)
}

pub(super) fn report_agent(conn: &Connection, report: &AgentReport) -> Result<()> {
    let json = serde_json::to_string(report).map_err(|e| Error::Storage(e.to_string()))?;
    conn.execute(
        "INSERT INTO agents (host, body) VALUES (?1, ?2)
         ON CONFLICT (host) DO UPDATE SET body = excluded.body",
        params![report.host, json],
    )
    .map(drop)
    .map_err(sql_err)
}

pub(super) fn agents(conn: &Connection) -> Result<Vec<AgentReport>> {
    let mut stmt = conn
        .prepare_cached("SELECT body FROM agents ORDER BY host")
        .map_err(sql_err)?;
    let bodies = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(Iterator::collect::<rusqlite::Result<Vec<String>>>)
        .map_err(sql_err)?;
    bodies
        .iter()
        .map(|b| serde_json::from_str(b).map_err(|e| Error::Storage(format!("agent report: {e}"))))
        .collect()
}

fn select(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Decision>> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_err)?;
    let rows = stmt
        .query_map(args, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(sql_err)?;
    rows.iter().map(|(id, body)| parse(*id, body)).collect()
}

fn parse(id: i64, body: &str) -> Result<Decision> {
    let mut decision: Decision = serde_json::from_str(body)
        .map_err(|e| Error::Storage(format!("decision {id} is unreadable: {e}")))?;
    decision.id = id as u64;
    Ok(decision)
}
