//! What each sink did, for the `"sinks"` part of interval records.
//!
//! Each sink keeps running totals. The merger snapshots every sink's totals when it builds an
//! interval record, and each destination gets the record with the differences since the
//! previous interval record *that destination* received (its sink thread adds them when it
//! forms a batch, and moves its base forward only when the batch arrives). So whoever reads
//! one destination sees every delivery, drop, retry and error of every sink exactly once,
//! however many records that destination itself missed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tcpulse_core::schema::interval::SinkCounts;

/// One sink's running totals at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub delivered: u64,
    pub dropped: u64,
    pub retries: u64,
    pub errors: u64,
    pub last_error: Option<Arc<str>>,
}

/// One sink's entry in an interval record: what happened between two snapshots.
pub fn counts_between(name: &str, now: &Totals, base: &Totals) -> SinkCounts {
    let failed = |t: &Totals| t.errors + t.dropped;
    SinkCounts {
        name: name.to_string(),
        delivered: now.delivered.saturating_sub(base.delivered),
        dropped: now.dropped.saturating_sub(base.dropped),
        retries: now.retries.saturating_sub(base.retries),
        errors: now.errors.saturating_sub(base.errors),
        last_error: (failed(now) > failed(base))
            .then(|| now.last_error.as_deref().map(str::to_string))
            .flatten(),
    }
}

/// Shared by a sink's thread, the merger and the set.
pub(crate) struct Account {
    delivered: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<Arc<str>>>,
    /// The one-time "failing" message was printed.
    warned: AtomicBool,
    pub closed: AtomicBool,
}

impl Account {
    pub fn new() -> Account {
        Account {
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
            warned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    fn set_error(&self, why: &str) {
        // A poisoned lock only means a thread panicked while setting it: still a value.
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::from(why));
    }

    /// The error is set before the count it explains, so a snapshot that sees the count
    /// sees the error.
    pub fn snapshot(&self) -> Totals {
        let last_error = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Totals {
            delivered: self.delivered.load(Ordering::Acquire),
            dropped: self.dropped.load(Ordering::Acquire),
            retries: self.retries.load(Ordering::Acquire),
            errors: self.errors.load(Ordering::Acquire),
            last_error,
        }
    }

    pub fn delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Release);
    }

    pub fn dropped(&self, n: u64, why: Option<&str>) {
        if let Some(why) = why {
            self.set_error(why);
        }
        self.dropped.fetch_add(n, Ordering::Release);
    }

    pub fn failed(&self, error: &str, retrying: bool) {
        self.set_error(error);
        self.retries
            .fetch_add(u64::from(retrying), Ordering::Release);
        self.errors.fetch_add(1, Ordering::Release);
    }

    /// True the first time only: the caller prints its one message about this sink failing.
    pub fn first_warning(&self) -> bool {
        !self.warned.swap(true, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_differences_and_name_the_error_only_when_something_failed() {
        let a = Account::new();
        a.delivered(3);
        let base = a.snapshot();
        a.failed("refused", true);
        a.dropped(2, None);
        let e = counts_between("x", &a.snapshot(), &base);
        assert_eq!((e.delivered, e.dropped, e.retries, e.errors), (0, 2, 1, 1));
        assert_eq!(e.last_error.as_deref(), Some("refused"));
        let base = a.snapshot();
        a.delivered(4);
        let e = counts_between("x", &a.snapshot(), &base);
        assert_eq!((e.delivered, e.last_error), (4, None));
    }
}
