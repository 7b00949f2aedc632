//! Versioned schema migrations, applied in order and recorded in `PRAGMA user_version`.

use rusqlite::Connection;

use super::sql_err;
use crate::error::{Error, Result};

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_geo_cache.sql"),
    include_str!("migrations/0003_windows_at_read.sql"),
];

/// Brings the schema up to date; refuses a database written by a newer Aegis.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let current: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(sql_err)? as usize;
    if current == MIGRATIONS.len() {
        return Ok(());
    }
    if current > MIGRATIONS.len() {
        return Err(Error::Storage(format!(
            "the database has schema version {current}, newer than this Aegis knows ({}): upgrade Aegis",
            MIGRATIONS.len()
        )));
    }
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .map_err(sql_err)?;
    // Another process may have migrated while we waited for the lock.
    let current: usize = tx
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(sql_err)? as usize;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql).map_err(sql_err)?;
        tx.pragma_update(None, "user_version", (version + 1) as i64)
            .map_err(sql_err)?;
    }
    tx.commit().map_err(sql_err)
}
