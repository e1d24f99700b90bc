//! The process and its threads: signals, CPU affinity.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Set by SIGINT and SIGTERM.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
/// Bumped by each SIGHUP.
static HANGUPS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_stop(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP_REQUESTED.store(true, Ordering::Relaxed);
}

extern "C" fn on_hangup(_: libc::c_int) {
    // Only an atomic add: async-signal-safe.
    HANGUPS.fetch_add(1, Ordering::Relaxed);
}

/// SIGINT and SIGTERM ask the run to stop ([`stop_requested`]); SIGHUP asks sinks to reopen
/// their files ([`hangups`]).
pub fn install_signal_handlers() {
    // SAFETY: both handlers only touch atomics, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, on_hangup as *const () as libc::sighandler_t);
    }
}

/// Whether SIGINT or SIGTERM arrived.
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::Relaxed)
}

/// SIGHUPs so far (plus [`hang_up`] calls): a count, so that each of several threads can
/// notice one signal.
pub fn hangups() -> u64 {
    HANGUPS.load(Ordering::Relaxed)
}

/// What a SIGHUP does, without the signal.
pub fn hang_up() {
    HANGUPS.fetch_add(1, Ordering::Relaxed);
}

/// Pins the calling thread to `cpu`.
///
/// # Errors
/// The kernel's, e.g. a CPU that does not exist or is not allowed.
pub fn pin_thread_to(cpu: u32) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // read and write that local set.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sleeps of the calling thread end within a nanosecond of their deadline instead of the
/// default 50 µs timer slack (the generator's pacing).
pub fn tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}
