use std::path::Path;

use chrono::{TimeZone, Utc};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::ImportItem;
use crate::error::{Error, Result};
use crate::event::{bound_matches, parse_ip, BanEvent, EventKind};

/// fail2ban's database (schema 4), opened read-only; fail2ban may keep running.
pub struct Fail2banDb {
    conn: Connection,
    host: String,
}

impl Fail2banDb {
    /// Opens `path`; events are attributed to `host`.
    pub fn open(path: &Path, host: &str) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Invalid(format!(
                "{} is not a file: pass the path of fail2ban's database (see `dbfile` in fail2ban.conf)",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| Error::Unavailable(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| Error::Storage(e.to_string()))?;
        let has_bans: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'bans'",
                [],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )
            .map_err(|e| {
                Error::Invalid(format!("{} is not a SQLite database: {e}", path.display()))
            })?;
        if !has_bans {
            return Err(Error::Invalid(format!(
                "{} has no `bans` table: is it fail2ban's database?",
                path.display()
            )));
        }
        Ok(Fail2banDb {
            conn,
            host: host.to_owned(),
        })
    }

    /// Rows in the `bans` table.
    pub fn count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM bans", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| Error::Storage(e.to_string()))
    }

    /// Up to `limit` rows after row id `after`, with the row id to continue from.
    pub fn read_page(&self, after: i64, limit: u32) -> Result<(Vec<ImportItem>, Option<i64>)> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT rowid, jail, ip, timeofban, bantime, bancount, data FROM bans
                 WHERE rowid > ? ORDER BY rowid LIMIT ?",
            )
            .map_err(|e| Error::Storage(e.to_string()))?;
        let mut rows = stmt
            .query(rusqlite::params![after, limit])
            .map_err(|e| Error::Storage(e.to_string()))?;
        let mut items = Vec::new();
        let mut last = None;
        while let Some(row) = rows.next().map_err(|e| Error::Storage(e.to_string()))? {
            let rowid: i64 = row.get(0).map_err(|e| Error::Storage(e.to_string()))?;
            last = Some(rowid);
            items.push(
                self.event(row)
                    .map_err(|reason| format!("row {rowid}: {reason}")),
            );
        }
        Ok((items, last))
    }

    fn event(&self, row: &rusqlite::Row<'_>) -> std::result::Result<BanEvent, String> {
        let text = |i| row.get::<_, Option<String>>(i).ok().flatten();
        let jail = text(1).ok_or("no jail")?;
        let ip = parse_ip(&text(2).ok_or("no ip")?).map_err(|e| e.to_string())?;
        let time: i64 = row
            .get::<_, Option<i64>>(3)
            .ok()
            .flatten()
            .ok_or("no timeofban")?;
        let time = Utc
            .timestamp_opt(time, 0)
            .single()
            .ok_or("timeofban out of range")?;
        let mut event = BanEvent::new(EventKind::Ban, ip, &jail, &self.host, time)
            .map_err(|e| e.to_string())?;
        event.bantime = row.get::<_, Option<i64>>(4).ok().flatten();
        event.bancount = row
            .get::<_, Option<i64>>(5)
            .ok()
            .flatten()
            .and_then(|n| u32::try_from(n).ok());
        if let Some(data) = text(6) {
            apply_data(&mut event, &data);
        }
        event.clean();
        event.validate().map_err(|e| e.to_string())?;
        Ok(event)
    }
}

/// Reads the `data` JSON: `matches` (the first entry may be `[prefix, date, rest]`),
/// `failures`, `user`. Unreadable data leaves the event as it is.
fn apply_data(event: &mut BanEvent, data: &str) {
    let Ok(Value::Object(data)) = serde_json::from_str::<Value>(data) else {
        return;
    };
    if let Some(Value::Array(matches)) = data.get("matches") {
        let lines: Vec<String> = matches
            .iter()
            .map(|m| match m {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .concat(),
                other => other.to_string(),
            })
            .collect();
        event.matches = bound_matches(lines.iter().map(String::as_str));
    }
    event.failures = data
        .get("failures")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok());
    event.user = data.get("user").and_then(Value::as_str).map(str::to_owned);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fail2ban's `data` column holds what its filters captured: any JSON, any
    /// text. Read into an event and cleaned, it always stores.
    #[test]
    fn data_json_of_any_shape() {
        let samples = [
            r#"{"matches": ["2026-11-27 sshd[1]: Failed password for root"], "failures": 3, "user": "root"}"#,
            r#"{"matches": [["2026-11-27 ", "19:30:01", " sshd: fail"]], "failures": 5.5}"#,
            r#"{"user": "\u0000admin\u001b[31m", "matches": [1, null, {"a": []}]}"#,
            r#"[1, 2, 3]"#,
        ];
        let base = BanEvent::new(
            EventKind::Ban,
            "203.0.113.7".parse().unwrap(),
            "sshd",
            "web1",
            Utc::now(),
        )
        .unwrap();
        aegis_testkit::fuzz::run("fail2ban database data", 5, &samples, |data| {
            let mut event = base.clone();
            apply_data(&mut event, data);
            event.clean();
            event.validate().unwrap();
        });
    }
}
