//! The real binaries, run against a private configuration, store and spool.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_core::{EventFilter, Page, Storage, StorageUrl, StoredEvent};

/// The workspace binary `name` (`aegis`, `aegis-web`, `aegis-report`), built
/// beside the running test, or in `AEGIS_BIN_DIR` when it is set (the
/// installed package's `/usr/bin`, for `scripts/test-package`).
///
/// Cargo builds a crate's binaries for that crate's own tests only, so the
/// end-to-end crate finds them in the target directory: `scripts/test` builds
/// them first (`cargo build --workspace --bins`).
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("AEGIS_BIN_DIR") {
        let path = Path::new(&dir).join(name);
        assert!(path.is_file(), "AEGIS_BIN_DIR has no {}", path.display());
        return path;
    }
    let test = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let profile = test
        .parent()
        .and_then(Path::parent)
        .expect("a test binary lives in target/<profile>/deps");
    let path = profile.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` first (scripts/test does)",
        path.display()
    );
    path
}

/// A command's status and output, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A private world: config, store and spool in one temporary directory.
pub struct Sandbox {
    /// The directory, removed on drop.
    pub dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A sandbox in a temporary directory.
    pub fn new() -> Self {
        Self::in_dir(tempfile::tempdir().unwrap())
    }

    /// A sandbox in memory (`/dev/shm`), for tests that time calls rather than
    /// the disk: a virtual disk's fsync latency alone can exceed half a second.
    pub fn in_memory() -> Self {
        let shm = Path::new("/dev/shm");
        assert!(shm.is_dir(), "/dev/shm is missing");
        Self::in_dir(tempfile::tempdir_in(shm).unwrap())
    }

    fn in_dir(dir: tempfile::TempDir) -> Self {
        std::fs::write(dir.path().join("aegis.toml"), "host = \"test-host\"\n").unwrap();
        Sandbox { dir }
    }

    /// The sandbox's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The sandbox's SQLite store.
    pub fn db_url(&self) -> String {
        crate::sqlite_url(&self.path().join("store"))
    }

    /// The sandbox's spool.
    pub fn spool(&self) -> PathBuf {
        self.path().join("spool")
    }

    /// `aegis` with this sandbox's config, store and spool.
    pub fn aegis(&self) -> Command {
        self.aegis_with(&self.db_url())
    }

    /// `aegis` with another storage URL.
    pub fn aegis_with(&self, url: &str) -> Command {
        let mut cmd = Command::new(bin("aegis"));
        cmd.arg("--config")
            .arg(self.path().join("aegis.toml"))
            .arg("--storage")
            .arg(url)
            .env("AEGIS_STORAGE_SPOOL_DIR", self.spool())
            .env_remove("AEGIS_STORAGE_URL");
        cmd
    }

    /// The sandbox's store, opened by the test.
    pub async fn store(&self) -> Arc<dyn Storage> {
        aegis_core::connect(&StorageUrl::parse(&self.db_url()).unwrap())
            .await
            .unwrap()
    }

    /// Every stored event, once the writers `aegis ban` started have stored the spool.
    pub async fn all_events(&self) -> Vec<StoredEvent> {
        self.settle();
        let store = self.store().await;
        let page = Page {
            limit: Page::MAX_LIMIT,
            ..Page::default()
        };
        store.events(&EventFilter::default(), page).await.unwrap()
    }

    /// Waits until the writers `aegis ban` started have stored every spooled event.
    pub fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.spooled() > 0 {
            assert!(
                Instant::now() < deadline,
                "{} events still spooled after 10 s; last failure: {:?}",
                self.spooled(),
                std::fs::read_to_string(self.failure_note())
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Where a writer notes why the store did not take spooled events.
    pub fn failure_note(&self) -> PathBuf {
        self.spool().join(".last-failure")
    }

    /// Waits until a writer has noted a failure.
    pub fn wait_for_failure_note(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.failure_note().exists() {
            assert!(Instant::now() < deadline, "the writer noted no failure");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Events waiting in the spool.
    pub fn spooled(&self) -> usize {
        std::fs::read_dir(self.spool())
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "json")
                })
                .count()
            })
            .unwrap_or(0)
    }
}
