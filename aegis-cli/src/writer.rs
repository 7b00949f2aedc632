//! The writer: a detached child of `aegis ban` that moves the spool into the store
//! after fail2ban has its answer.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

use crate::context::Context;
use crate::spool::{Drainer, Spool};

/// Forks a writer; the caller returns at once. The process must have one thread.
#[allow(unsafe_code)]
pub fn start(ctx: &Context, spool: &Spool) {
    // SAFETY: the ban path runs before any runtime or other thread exists, so the
    // child is a complete copy of a single-threaded process and may run any code.
    match unsafe { libc::fork() } {
        -1 => eprintln!(
            "aegis: warning: cannot start a writer ({}); the event waits in {} for the next call or `aegis flush`",
            std::io::Error::last_os_error(),
            spool.dir().display()
        ),
        0 => {
            detach();
            // Nobody sees the writer's stderr: a panic, too, is left for the next
            // call to report. Nothing is used after one but the note and the exit.
            let writing = std::panic::AssertUnwindSafe(|| run(ctx, spool));
            let stored = std::panic::catch_unwind(writing).unwrap_or_else(|_| {
                spool.set_failure("the writer stopped on an internal error");
                false
            });
            std::process::exit(if stored { 0 } else { 1 })
        }
        _ => {}
    }
}

/// Leaves fail2ban behind: a session of its own, so that a timeout's kill of the
/// action's process group spares it, stdio on /dev/null and every other
/// inherited descriptor closed, because fail2ban (or any caller) reads the
/// action's output until every copy of its pipes is closed.
#[allow(unsafe_code)]
fn detach() {
    // SAFETY: plain system calls on descriptors this process owns; it holds
    // none of its own beyond stdio yet.
    unsafe {
        libc::setsid();
        libc::close_range(3, libc::c_uint::MAX, 0);
        if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
            for fd in 0..3 {
                libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
}

/// Stores what the spool holds; a failure is left for the next `aegis ban` to report.
fn run(ctx: &Context, spool: &Spool) -> bool {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return false;
    };
    runtime
        .block_on(spool.store_all(&ctx.storage_url, Drainer::Writer))
        .is_ok()
}
