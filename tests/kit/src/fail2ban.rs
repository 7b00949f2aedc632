//! Private fail2ban servers: each its own configuration, socket, database and
//! log under one directory, so several run side by side and none touches the
//! system's. Needs the Debian `fail2ban` package (`.ci/run` installs it);
//! without it a test fails, never skips.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One private fail2ban server.
pub struct Fail2ban {
    /// Its directory: `etc/`, `run/`, `fail2ban.log`, `fail2ban.sqlite3`.
    pub root: PathBuf,
    /// Its configuration directory.
    pub etc: PathBuf,
    server: Option<Child>,
}

impl Fail2ban {
    /// A configuration under `root` with the stock sshd filter and a
    /// `fail2ban.local` keeping everything inside `root`; write `etc/jail.local`
    /// (and anything else) before [`Fail2ban::start`].
    pub fn prepare(root: &Path) -> Self {
        let etc = root.join("etc");
        for dir in [
            etc.join("filter.d"),
            etc.join("action.d"),
            etc.join("jail.d"),
            root.join("run"),
        ] {
            std::fs::create_dir_all(dir).unwrap();
        }
        for filter in ["sshd.conf", "common.conf"] {
            std::fs::copy(
                Path::new("/etc/fail2ban/filter.d").join(filter),
                etc.join("filter.d").join(filter),
            )
            .expect("the stock sshd filter of the fail2ban package (apt-get install fail2ban)");
        }
        std::fs::write(
            etc.join("fail2ban.local"),
            format!(
                "[Definition]\nloglevel = INFO\nlogtarget = {root}/fail2ban.log\nsocket = {root}/run/f2b.sock\n\
                 pidfile = {root}/run/f2b.pid\ndbfile = {root}/fail2ban.sqlite3\ndbpurgeage = 1d\n",
                root = root.display()
            ),
        )
        .unwrap();
        Fail2ban {
            root: root.to_owned(),
            etc,
            server: None,
        }
    }

    /// Starts the server with `env` added to its environment (its actions
    /// inherit it) and waits until `jail` answers.
    pub fn start(&mut self, jail: &str, env: &[(&str, &OsStr)]) {
        let server = which("fail2ban-server").unwrap_or_else(|| {
            panic!("fail2ban is not installed: `apt-get install fail2ban` (.ci/run does this)")
        });
        let mut cmd = Command::new(server);
        cmd.arg("-c")
            .arg(&self.etc)
            .arg("-s")
            .arg(self.socket())
            .arg("-p")
            .arg(self.root.join("run/f2b.pid"))
            .args(["-xf", "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.server = Some(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.client(&["status", jail]).status.success() {
            assert!(
                Instant::now() < deadline,
                "fail2ban did not start: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its control socket.
    pub fn socket(&self) -> PathBuf {
        self.root.join("run/f2b.sock")
    }

    /// `fail2ban-client` on this server.
    pub fn client(&self, args: &[&str]) -> Output {
        Command::new("fail2ban-client")
            .arg("-c")
            .arg(&self.etc)
            .arg("-s")
            .arg(self.socket())
            .arg("-p")
            .arg(self.root.join("run/f2b.pid"))
            .args(args)
            .output()
            .expect("fail2ban-client runs")
    }

    /// The last lines of its log, for assertion messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.root.join("fail2ban.log")).unwrap_or_default();
        let mut lines: Vec<&str> = log.lines().rev().take(30).collect();
        lines.reverse();
        lines.join("\n")
    }

    /// Stops the server and waits for it.
    pub fn stop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let _ = self.client(&["stop"]);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = server.kill();
        let _ = server.wait();
    }
}

impl Drop for Fail2ban {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Appends sshd failure lines for `ip`; each needs its own sshd pid or the
/// filter merges them. Returns the epoch second of the last.
pub fn inject(authlog: &Path, ip: &str, count: u32, pid: &mut u32) -> i64 {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(authlog)
        .unwrap();
    let mut last = 0;
    for _ in 0..count {
        *pid += 1;
        let now = chrono::Local::now();
        last = now.timestamp();
        writeln!(
            file,
            "{} e2ehost sshd[{pid}]: Failed password for invalid user admin from {ip} port {} ssh2",
            now.format("%b %e %H:%M:%S"),
            40000 + *pid % 20000
        )
        .unwrap();
    }
    last
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/bin", "/usr/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}
