use std::path::Path;

use chrono::{TimeZone, Utc};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::ImportItem;
use crate::error::{Error, Result};
use crate::event::{bound_matches, parse_ip, BanEvent, EventKind};

/// The schema versions this reader knows: fail2ban 0.9 wrote 1 and 2 (`bans`
/// without `bantime` and `bancount`, `timeofban` sometimes a float), 0.10 wrote
/// 3, and 0.11 and 1.x write 4 (`bips` beside `bans`: a copy of the latest ban
/// per address and jail, not more bans).
const VERSIONS: std::ops::RangeInclusive<i64> = 1..=4;

/// fail2ban's bantime of rows it upgraded from before version 3: unknown.
const UNKNOWN_BANTIME: i64 = -2;

/// fail2ban's database, any schema version from 1 to 4, opened read-only;
/// fail2ban may keep running.
pub struct Fail2banDb {
    conn: Connection,
    host: String,
    path: String,
    /// The `bans` columns this version has: `bantime`, `bancount`.
    has_bantime: bool,
    has_bancount: bool,
}

impl Fail2banDb {
    /// Opens `path`; events are attributed to `host`.
    pub fn open(path: &Path, host: &str) -> Result<Self> {
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(Error::Invalid(format!(
                "{shown} is not a file: pass the path of fail2ban's database (`dbfile` in fail2ban.conf)"
            )));
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| db_error(&shown, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| db_error(&shown, e))?;
        let tables = names(&conn, "SELECT name FROM sqlite_master WHERE type = 'table'")
            .map_err(|e| db_error(&shown, e))?;
        if !tables.iter().any(|t| t == "bans") {
            return Err(Error::Invalid(format!(
                "{shown} is an SQLite database without fail2ban's `bans` table: pass fail2ban's \
                 database (`dbfile` in fail2ban.conf, usually {})",
                super::DEFAULT_DB
            )));
        }
        let columns = names(&conn, "SELECT name FROM pragma_table_info('bans')")
            .map_err(|e| db_error(&shown, e))?;
        let has = |c: &str| columns.iter().any(|n| n == c);
        for needed in ["jail", "ip", "timeofban"] {
            if !has(needed) {
                return Err(Error::Invalid(format!(
                    "{shown}: its `bans` table has no `{needed}` column, which every fail2ban \
                     database has: is it fail2ban's?"
                )));
            }
        }
        let declared = if tables.iter().any(|t| t == "fail2banDb") {
            conn.query_row("SELECT version FROM fail2banDb LIMIT 1", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .ok()
            .flatten()
        } else {
            None
        };
        if let Some(v) = declared.filter(|v| !VERSIONS.contains(v)) {
            return Err(Error::Invalid(format!(
                "{shown} is fail2ban database version {v}; this Aegis reads versions {} to {}: \
                 import its log files instead (`aegis import log`), or use a newer Aegis",
                VERSIONS.start(),
                VERSIONS.end()
            )));
        }
        // The columns decide what is read, whatever the version row says (or
        // when it is missing): a half-upgraded file is read as it is.
        Ok(Fail2banDb {
            conn,
            host: host.to_owned(),
            path: shown,
            has_bantime: has("bantime"),
            has_bancount: has("bancount"),
        })
    }

    /// Rows in the `bans` table.
    pub fn count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM bans", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| db_error(&self.path, e))
    }

    /// Up to `limit` rows after row id `after`, with the row id to continue from.
    pub fn read_page(&self, after: i64, limit: u32) -> Result<(Vec<ImportItem>, Option<i64>)> {
        let column = |present: bool, name: &str| {
            if present {
                name.to_owned()
            } else {
                "NULL".into()
            }
        };
        let sql = format!(
            "SELECT rowid, jail, ip, timeofban, {}, {}, data FROM bans WHERE rowid > ? ORDER BY rowid LIMIT ?",
            column(self.has_bantime, "bantime"),
            column(self.has_bancount, "bancount"),
        );
        let error = |e| db_error(&self.path, e);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(error)?;
        let mut rows = stmt.query(rusqlite::params![after, limit]).map_err(error)?;
        let mut items = Vec::new();
        let mut last = None;
        while let Some(row) = rows.next().map_err(error)? {
            let rowid: i64 = row.get(0).map_err(error)?;
            last = Some(rowid);
            items.push(
                self.event(row)
                    .map_err(|reason| format!("row {rowid}: {reason}")),
            );
        }
        Ok((items, last))
    }

    fn event(&self, row: &rusqlite::Row<'_>) -> std::result::Result<BanEvent, String> {
        let text = |i| match row.get_ref(i) {
            Ok(ValueRef::Text(t)) => Some(String::from_utf8_lossy(t).into_owned()),
            _ => None,
        };
        let jail = text(1).ok_or("no jail")?;
        let ip = parse_ip(&text(2).ok_or("no ip")?).map_err(|e| e.to_string())?;
        // Older fail2ban stored the float it had; a live ban carries the same
        // float, and the event id rounds both as fail2ban rounds `timeofban`.
        let millis = match row.get_ref(3) {
            Ok(ValueRef::Integer(s)) => s.checked_mul(1000),
            Ok(ValueRef::Real(s)) if s.is_finite() => Some((s * 1000.0).round() as i64),
            Ok(ValueRef::Text(t)) => std::str::from_utf8(t)
                .ok()
                .and_then(|t| t.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite())
                .map(|s| (s * 1000.0).round() as i64),
            _ => None,
        }
        .ok_or("no usable timeofban")?;
        let time = Utc
            .timestamp_millis_opt(millis)
            .single()
            .ok_or("timeofban out of range")?;
        let mut event = BanEvent::new(EventKind::Ban, ip, &jail, &self.host, time)
            .map_err(|e| e.to_string())?;
        let integer = |i| match row.get_ref(i) {
            Ok(ValueRef::Integer(n)) => Some(n),
            Ok(ValueRef::Real(n)) if n.fract() == 0.0 => Some(n as i64),
            _ => None,
        };
        // -2 is fail2ban's "unknown" for rows it upgraded, whose bancount of 1
        // it set without knowing either: both are unknown, not invented.
        let bantime = integer(4);
        if bantime != Some(UNKNOWN_BANTIME) {
            event.bantime = bantime;
            event.bancount = integer(5).and_then(|n| u32::try_from(n).ok());
        }
        if let Some(data) = text(6) {
            apply_data(&mut event, &data);
        }
        event.clean();
        event.validate().map_err(|e| e.to_string())?;
        Ok(event)
    }
}

/// Text values of the first column of `sql`.
fn names(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    names.collect()
}

/// An SQLite failure reading `path`, said as what it means for the user; never
/// the SQL.
fn db_error(path: &str, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    };
    match code {
        Some(ErrorCode::NotADatabase) => Error::Invalid(format!(
            "{path} is not an SQLite database: pass fail2ban's database (`dbfile` in fail2ban.conf)"
        )),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Unavailable(format!(
            "{path} stayed locked by another process for 10 s: try again, or import a copy \
             (sqlite3 {path} \".backup /tmp/f2b.sqlite3\")"
        )),
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
            Error::Invalid(format!(
                "cannot read {path}: fail2ban's database is readable by root only, so run the import as root"
            ))
        }
        Some(ErrorCode::DatabaseCorrupt) => Error::Invalid(format!(
            "{path} is damaged (SQLite says it is malformed): import fail2ban's log files \
             instead (`aegis import log`)"
        )),
        _ => Error::Storage(format!(
            "cannot read {path}: {}",
            match e {
                rusqlite::Error::SqliteFailure(f, _) => f.to_string(),
                other => other.to_string().split(" in ").next().unwrap_or_default().to_owned(),
            }
        )),
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
