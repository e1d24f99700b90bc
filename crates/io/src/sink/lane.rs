//! One sink's queue and delivery thread: batches of what is queued, bounded retries with
//! exponential backoff, then the batch is dropped and counted. Nothing here ever blocks the
//! merger: it only ever `try_send`s.

use std::io;
use std::sync::Arc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};

use tcpulse_core::schema::{IntervalRecord, Record};

use super::account::{Account, Totals};
use super::set::with_accounting;
use super::{reopen_generation, Outgoing, Sink};

/// How a sink's queue and retries behave (`queue`, `batch`, `retries`, `backoff` options).
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// Records the queue holds; when full, new records are dropped and counted.
    pub queue: usize,
    /// Most records per delivery.
    pub batch: usize,
    /// Attempts after the first before a batch is dropped.
    pub retries: u32,
    /// Wait before the first retry; doubles for each further one, up to [`MAX_BACKOFF`].
    pub backoff: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            queue: 8192,
            batch: 512,
            retries: 3,
            backoff: Duration::from_millis(200),
        }
    }
}

pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How often an idle sink thread looks for a SIGHUP.
const TICK: Duration = Duration::from_millis(100);

/// A record on its way to one sink. An interval record comes with every sink's totals at the
/// time it was built, which the sink's thread makes its `sinks` part from, and serialises.
enum Item {
    Ready(Outgoing),
    Interval(Arc<IntervalRecord>, Arc<[Totals]>),
}

/// When the run ends: sinks get until this deadline to deliver what is queued.
#[derive(Default)]
pub(crate) struct Shutdown(Mutex<Option<Instant>>);

impl Shutdown {
    pub fn start(&self, grace: Duration) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now() + grace);
    }

    fn past(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|d| Instant::now() >= d)
    }
}

pub(crate) struct Lane {
    pub intervals: bool,
    pub flows: bool,
    pub account: Arc<Account>,
    tx: Option<Sender<Item>>,
    thread: Option<JoinHandle<()>>,
}

impl Lane {
    /// `account`: this sink's; `names`: every sink's of the set, this one included, in the
    /// order of the totals that come with interval records (the set is complete before the
    /// first record).
    pub fn start(
        sink: Box<dyn Sink>,
        delivery: &Delivery,
        (intervals, flows): (bool, bool),
        account: Arc<Account>,
        names: Arc<std::sync::OnceLock<Vec<String>>>,
        shutdown: Arc<Shutdown>,
    ) -> io::Result<Lane> {
        let name = sink.name();
        let (tx, rx) = bounded(delivery.queue.max(1));
        let worker = Worker {
            sink,
            name,
            account: account.clone(),
            delivery: delivery.clone(),
            shutdown,
            names,
            base: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("tcpulse-sink".into())
            .spawn(move || worker.run(&rx))?;
        Ok(Lane {
            intervals,
            flows,
            account,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues a serialised record; a full queue drops it (and counts it).
    pub fn offer(&self, record: Outgoing) {
        self.queue(Item::Ready(record));
    }

    /// Queues an interval record that still needs its `sinks` part.
    pub fn offer_interval(&self, record: Arc<IntervalRecord>, totals: Arc<[Totals]>) {
        self.queue(Item::Interval(record, totals));
    }

    fn queue(&self, item: Item) {
        let Some(tx) = &self.tx else { return };
        let why = match tx.try_send(item) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => "queue full (the sink is slower than the records)",
            Err(TrySendError::Disconnected(_)) => "the sink's thread has ended",
        };
        self.account.dropped(1, Some(why));
    }

    /// Closes the queue and waits for the thread to deliver (or drop) what is left.
    pub fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker {
    sink: Box<dyn Sink>,
    name: String,
    account: Arc<Account>,
    delivery: Delivery,
    shutdown: Arc<Shutdown>,
    names: Arc<std::sync::OnceLock<Vec<String>>>,
    /// Every sink's totals as of the last interval record this sink delivered.
    base: Vec<Totals>,
}

impl Worker {
    fn run(mut self, rx: &Receiver<Item>) {
        let mut applied = reopen_generation();
        let mut items: Vec<Item> = Vec::with_capacity(self.delivery.batch);
        let mut records: Vec<Outgoing> = Vec::with_capacity(self.delivery.batch);
        // After the run ends, a sink that still fails gets no more attempts: what is left
        // is dropped at once, so a dead collector cannot hold up the exit batch after batch.
        let mut failed_late = false;
        loop {
            let first = match rx.recv_timeout(TICK) {
                Ok(item) => item,
                Err(RecvTimeoutError::Timeout) => {
                    self.reopen_if_asked(&mut applied);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            items.push(first);
            while items.len() < self.delivery.batch {
                match rx.try_recv() {
                    Ok(item) => items.push(item),
                    Err(_) => break,
                }
            }
            self.reopen_if_asked(&mut applied);
            // Each interval record gets the differences since the one before it in this
            // batch, the first since the last one delivered.
            let mut base = self.base.clone();
            for item in &items {
                records.push(match item {
                    Item::Interval(record, totals) => self.account_for(record, totals, &mut base),
                    Item::Ready(record) => record.clone(),
                });
            }
            let n = records.len() as u64;
            let delivered = if self.sink.closed() || (failed_late && self.shutdown.past()) {
                false
            } else {
                self.deliver(&records)
            };
            if delivered {
                self.account.delivered(n);
                self.base = base;
            } else {
                failed_late = self.shutdown.past();
                self.account.dropped(n, None);
            }
            if self.sink.closed() {
                self.account
                    .closed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            items.clear();
            records.clear();
        }
    }

    /// `record` with its `sinks` part (`totals` minus `base`), serialised; `base` moves to
    /// `totals`.
    fn account_for(
        &self,
        record: &IntervalRecord,
        totals: &[Totals],
        base: &mut Vec<Totals>,
    ) -> Outgoing {
        let names = self.names.get().map_or(&[][..], Vec::as_slice);
        base.resize(totals.len(), Totals::default());
        let accounted = with_accounting(record, names, totals, base);
        base.clone_from_slice(totals);
        Outgoing::new(Record::Interval(
            accounted.unwrap_or_else(|| record.clone()).into(),
        ))
    }

    /// One batch: the first attempt and up to `retries` more; true when it arrived.
    fn deliver(&mut self, records: &[Outgoing]) -> bool {
        let mut attempt = 0;
        loop {
            let error = match self.sink.deliver(records) {
                Ok(()) => return true,
                Err(e) => e.to_string(),
            };
            let give_up =
                attempt >= self.delivery.retries || self.sink.closed() || self.shutdown.past();
            self.account.failed(&error, !give_up);
            if self.account.first_warning() {
                eprintln!(
                    "tcpulse: sink {}: {error}; failed batches are retried, then dropped and \
                     counted in the interval records (\"sinks\")",
                    self.name
                );
            }
            if give_up {
                return false;
            }
            self.pause(backoff(self.delivery.backoff, attempt));
            attempt += 1;
        }
    }

    /// Sleeps, but not past the end-of-run deadline.
    fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        while Instant::now() < until && !self.shutdown.past() {
            std::thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
        }
    }

    fn reopen_if_asked(&mut self, applied: &mut u64) {
        let now = reopen_generation();
        if now != *applied {
            *applied = now;
            if let Err(e) = self.sink.reopen() {
                self.account.failed(&format!("reopen: {e}"), false);
                eprintln!("tcpulse: sink {}: cannot reopen: {e}", self.name);
            }
        }
    }
}

/// `base`, doubled per attempt, at most [`MAX_BACKOFF`].
fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1 << attempt.min(16)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let base = Duration::from_millis(200);
        assert_eq!(backoff(base, 0), base);
        assert_eq!(backoff(base, 2), Duration::from_millis(800));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }
}
