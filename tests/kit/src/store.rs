//! A store per test, removed when the test ends.

use std::path::Path;
use std::sync::Arc;

use aegis_core::{Storage, StorageUrl};

/// A store of its own; its database (a temporary file, memory, or a MongoDB
/// database of its own) goes when this is dropped.
pub struct TestStore {
    /// The store, as [`aegis_core::connect`] hands it out.
    pub store: Arc<dyn Storage>,
    /// Where it is.
    pub url: StorageUrl,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    /// A SQLite file in a temporary directory.
    pub async fn sqlite_file() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = StorageUrl::parse(&sqlite_url(dir.path())).unwrap();
        Self::open(url, Some(dir)).await
    }

    /// An in-memory SQLite database.
    pub async fn sqlite_memory() -> Self {
        Self::open(StorageUrl::parse("sqlite::memory:").unwrap(), None).await
    }

    /// A database of its own on the server named by `AEGIS_TEST_MONGODB_URI`.
    pub async fn mongodb() -> Self {
        Self::open(mongodb_url("aegis_test"), None).await
    }

    /// The store at `url`, dropped with this value when it is a MongoDB database.
    pub async fn at(url: StorageUrl) -> Self {
        Self::open(url, None).await
    }

    async fn open(url: StorageUrl, dir: Option<tempfile::TempDir>) -> Self {
        let store = aegis_core::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("the test store at {url} is not usable: {e}"));
        TestStore {
            store,
            url,
            _dir: dir,
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if !self.url.is_remote() {
            return; // the temporary directory or the memory goes by itself
        }
        // Drop may run inside a test's runtime, which cannot block on a future:
        // the database is dropped from a thread with a runtime of its own.
        let url = self.url.clone();
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(aegis_core::destroy(&url))
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!(
                "warning: the test database {} was not dropped: {e}",
                self.url
            );
        }
    }
}

/// The SQLite store in the file `path`, kept after the test (benchmarks reuse theirs).
pub async fn open_sqlite(path: &Path) -> Arc<dyn Storage> {
    let url = StorageUrl::parse(&format!("sqlite://{}", path.display())).unwrap();
    aegis_core::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// The URL of `aegis.db` in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/aegis.db", dir.display())
}

/// A database name of its own (`name`, this process, a counter) on the MongoDB
/// server named by `AEGIS_TEST_MONGODB_URI`.
///
/// Missing the variable is a failure, not a skip: `scripts/test` starts the
/// test server and sets it.
pub fn mongodb_url(name: &str) -> StorageUrl {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let uri = std::env::var("AEGIS_TEST_MONGODB_URI").expect(
        "AEGIS_TEST_MONGODB_URI is not set: start the test server with \
         tests/mongodb-server/install && node tests/mongodb-server/start.mjs (scripts/test does both)",
    );
    let (base, options) = uri.split_once('?').unwrap_or((&uri, ""));
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let db = format!("{name}_{}_{n}", std::process::id());
    StorageUrl::parse(&format!("{}/{db}?{options}", base.trim_end_matches('/'))).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::EventFilter;

    async fn record_one(store: &TestStore) {
        let e = crate::traffic::ban("203.0.113.7", "sshd", "web1", crate::traffic::at(0, 1, 0));
        store.store.record(&e).await.unwrap();
    }

    #[tokio::test]
    async fn a_mongodb_test_store_is_dropped_with_its_test() {
        let store = TestStore::mongodb().await;
        record_one(&store).await;
        let url = store.url.clone();
        drop(store);
        let again = aegis_core::connect(&url).await.unwrap();
        assert_eq!(
            again.count_events(&EventFilter::default()).await.unwrap(),
            0
        );
        aegis_core::destroy(&url).await.unwrap();
    }

    #[tokio::test]
    async fn a_sqlite_test_store_goes_with_its_directory() {
        let store = TestStore::sqlite_file().await;
        record_one(&store).await;
        let path = store
            .url
            .expose()
            .trim_start_matches("sqlite://")
            .to_owned();
        assert!(std::path::Path::new(&path).is_file());
        drop(store);
        assert!(!std::path::Path::new(&path).exists());
    }
}
