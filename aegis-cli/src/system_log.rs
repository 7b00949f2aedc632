//! The system log (syslog; journald reads it), for what happens out of sight.
//!
//! The writer runs detached, and fail2ban logs a successful action's stderr at
//! debug level only: a store that stops taking events would go unnoticed.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// Where the system log listens unless `syslog_socket` says otherwise.
const SOCKET: &str = "/dev/log";
/// The daemon facility (3), shifted as syslog priorities want it.
const DAEMON: u8 = 3 << 3;
const WARNING: u8 = 4;
const NOTICE: u8 = 5;

/// The system log's socket.
pub struct SystemLog {
    socket: PathBuf,
}

impl SystemLog {
    /// The log at `socket`, else at `/dev/log`.
    pub fn new(socket: Option<PathBuf>) -> Self {
        SystemLog {
            socket: socket.unwrap_or_else(|| SOCKET.into()),
        }
    }

    /// Logs `message` as a warning.
    pub fn warning(&self, message: &str) {
        self.log(WARNING, message);
    }

    /// Logs `message` as a notice.
    pub fn notice(&self, message: &str) {
        self.log(NOTICE, message);
    }

    /// Best effort: a machine without a system log loses only the line.
    fn log(&self, severity: u8, message: &str) {
        let line = format!(
            "<{}>aegis[{}]: {message}",
            DAEMON | severity,
            std::process::id()
        );
        if let Ok(sender) = UnixDatagram::unbound() {
            let _ = sender.send_to(line.as_bytes(), &self.socket);
        }
    }
}
