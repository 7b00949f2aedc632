//! The writer: a detached child of `aegis ban` that moves the spool into the store
//! after fail2ban has its answer.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::context::Context;
use crate::spool::Spool;

/// How long a writer may take: it is off fail2ban's clock, but a hung store must
/// not keep a process alive forever. What it leaves stays spooled, and the next
/// call starts another writer.
const WRITER_TIMEOUT: Duration = Duration::from_secs(60);

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
            // Nobody sees the writer's stderr: a panic, too, is left for the next call to report.
            let stored = std::panic::catch_unwind(|| run(ctx, spool)).unwrap_or_else(|_| {
                spool.set_failure("the writer stopped on an internal error");
                false
            });
            std::process::exit(if stored { 0 } else { 1 })
        }
        _ => {}
    }
}

/// Leaves fail2ban behind: a session of its own, so that a timeout's kill of the
/// action's process group spares it, and stdio on /dev/null, because fail2ban
/// reads the action's output until every copy of its pipes is closed.
#[allow(unsafe_code)]
fn detach() {
    // SAFETY: plain system calls on descriptors this process owns.
    unsafe {
        libc::setsid();
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
    let stored = runtime.block_on(async {
        tokio::time::timeout(WRITER_TIMEOUT, spool.store_all(&ctx.storage_url, false)).await
    });
    match stored {
        Ok(outcome) => outcome.is_ok(),
        Err(_) => {
            spool.set_failure(&format!(
                "no answer from {} within {} s",
                ctx.storage_url,
                WRITER_TIMEOUT.as_secs()
            ));
            false
        }
    }
}
