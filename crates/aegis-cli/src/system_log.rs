//! The system log (syslog; journald reads it), for what happens out of sight.
//!
//! The writer runs detached, and fail2ban logs a successful action's stderr at
//! debug level only: a store that stops taking events would go unnoticed.

use std::os::unix::net::UnixDatagram;

/// Where the system log listens, unless `AEGIS_SYSLOG_SOCKET` says otherwise.
const SOCKET: &str = "/dev/log";
/// The daemon facility (3), shifted as syslog priorities want it.
const DAEMON: u8 = 3 << 3;
const WARNING: u8 = 4;
const NOTICE: u8 = 5;

/// Logs `message` as a warning.
pub fn warning(message: &str) {
    log(WARNING, message);
}

/// Logs `message` as a notice.
pub fn notice(message: &str) {
    log(NOTICE, message);
}

/// Best effort: a machine without a system log loses only the line.
fn log(severity: u8, message: &str) {
    let socket = std::env::var_os("AEGIS_SYSLOG_SOCKET").unwrap_or_else(|| SOCKET.into());
    let line = format!(
        "<{}>aegis[{}]: {message}",
        DAEMON | severity,
        std::process::id()
    );
    if let Ok(sender) = UnixDatagram::unbound() {
        let _ = sender.send_to(line.as_bytes(), socket);
    }
}
