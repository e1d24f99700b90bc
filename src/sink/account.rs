//! What each sink did, for the `"sinks"` part of interval records.
//!
//! Each interval record carries, per sink, what happened since the previous interval record
//! that reached that sink. The merger takes a sink's pending counts when it builds a record
//! (the record's "claim"); if the record then fails to reach that sink (queue full, batch
//! dropped), the claim goes back into the pending counts, so the next record that does arrive
//! reports it. A consumer of one sink therefore sees every drop, retry and error exactly once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// One sink's entry in an interval record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub name: String,
    /// Records that reached the destination.
    pub delivered: u64,
    /// Records given up: queue full, or a batch that failed every retry.
    pub dropped: u64,
    /// Attempts beyond the first for a batch.
    pub retries: u64,
    /// Failed attempts.
    pub errors: u64,
    /// The latest error, or `null`.
    pub last_error: Option<String>,
}

impl Counts {
    /// Adds `older` (a claim given back) under these newer counts; a newer error wins.
    pub(crate) fn absorb(&mut self, older: Counts) {
        self.delivered += older.delivered;
        self.dropped += older.dropped;
        self.retries += older.retries;
        self.errors += older.errors;
        if self.last_error.is_none() {
            self.last_error = older.last_error;
        }
    }
}

/// Shared by a sink's thread, the merger and the set.
pub(crate) struct Account {
    pending: Mutex<Counts>,
    /// Totals for the end-of-run summary on stderr.
    pub delivered_total: AtomicU64,
    pub dropped_total: AtomicU64,
    /// The one-time "failing" message was printed.
    warned: AtomicBool,
    pub closed: AtomicBool,
}

impl Account {
    pub fn new(name: &str) -> Account {
        Account {
            pending: Mutex::new(Counts {
                name: name.to_string(),
                ..Counts::default()
            }),
            delivered_total: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            warned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Counts) -> R) -> R {
        // A poisoned lock only means a thread panicked while counting: the counts are still
        // numbers, keep using them.
        let mut guard = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Takes the pending counts for an interval record (the record's claim).
    pub fn take(&self) -> Counts {
        self.with(|c| {
            let name = c.name.clone();
            std::mem::replace(
                c,
                Counts {
                    name,
                    ..Counts::default()
                },
            )
        })
    }

    /// Gives back the claim of a record that did not arrive.
    pub fn give_back(&self, claim: Counts) {
        self.with(|c| c.absorb(claim));
    }

    pub fn delivered(&self, n: u64) {
        self.delivered_total.fetch_add(n, Ordering::Relaxed);
        self.with(|c| c.delivered += n);
    }

    pub fn dropped(&self, n: u64, why: Option<&str>) {
        self.dropped_total.fetch_add(n, Ordering::Relaxed);
        self.with(|c| {
            c.dropped += n;
            if let (None, Some(why)) = (&c.last_error, why) {
                c.last_error = Some(why.to_string());
            }
        });
    }

    pub fn failed(&self, error: &str, retrying: bool) {
        self.with(|c| {
            c.errors += 1;
            c.retries += u64::from(retrying);
            c.last_error = Some(error.to_string());
        });
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
    fn a_claim_given_back_is_reported_with_the_next_record() {
        let a = Account::new("x");
        a.delivered(3);
        a.failed("refused", true);
        let first = a.take();
        assert_eq!((first.delivered, first.errors, first.retries), (3, 1, 1));
        // The record carrying `first` never arrived: its counts come back, plus its own drop.
        a.give_back(first);
        a.dropped(1, Some("queue full"));
        let second = a.take();
        assert_eq!(second.delivered, 3);
        assert_eq!(second.dropped, 1);
        assert_eq!(second.errors, 1);
        assert_eq!(second.last_error.as_deref(), Some("refused"));
        assert_eq!(a.take().delivered, 0, "taken once");
    }
}
