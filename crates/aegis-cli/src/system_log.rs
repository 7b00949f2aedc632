//! The system log (syslog; journald reads it), for what happens out of sight.
//!
//! The writer runs detached, and fail2ban logs a successful action's stderr at
//! debug level only: a store that stops taking events would go unnoticed.

use std::ffi::CString;

/// Logs `message` as a warning.
pub fn warning(message: &str) {
    log(libc::LOG_WARNING, message);
}

/// Logs `message` as a notice.
pub fn notice(message: &str) {
    log(libc::LOG_NOTICE, message);
}

#[allow(unsafe_code)]
fn log(priority: libc::c_int, message: &str) {
    let Ok(message) = CString::new(message) else {
        return;
    };
    // SAFETY: both strings are NUL-terminated and outlive the calls; the
    // message goes through "%s", never as a format.
    unsafe {
        libc::openlog(c"aegis".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON);
        libc::syslog(priority, c"%s".as_ptr(), message.as_ptr());
        libc::closelog();
    }
}
