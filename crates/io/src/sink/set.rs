//! Every configured sink of a run: hands each record to each sink that wants its kind, and
//! makes the `"sinks"` part of interval records (`account.rs`).

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tcpulse_core::schema::interval::SinkCounts;
use tcpulse_core::schema::IntervalRecord;

use super::account::{counts_between, Account, Totals};
use super::lane::{Delivery, Lane, Shutdown};
use super::{Outgoing, Sink};

/// How long sinks get, once the run ends, to deliver what is queued (retries included).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct SinkSet {
    lanes: Vec<Lane>,
    accounts: Vec<Arc<Account>>,
    names: Vec<String>,
    /// `names`, handed to the sink threads once the set is complete.
    shared_names: Arc<OnceLock<Vec<String>>>,
    shutdown: Arc<Shutdown>,
}

/// Whether every sink of a set is closed for good, readable from another thread.
#[derive(Clone, Default)]
pub struct SinkWatch(Vec<Arc<Account>>);

impl SinkWatch {
    /// True when there are sinks and none can ever take a record again.
    pub fn all_closed(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|a| a.closed.load(Ordering::Relaxed))
    }
}

/// `record` (an interval record) with its `sinks` part: for each sink, `now` minus `base`;
/// `None` when there are no sinks to account for.
pub fn with_accounting(
    record: &IntervalRecord,
    names: &[String],
    now: &[Totals],
    base: &[Totals],
) -> Option<IntervalRecord> {
    if names.is_empty() {
        return None;
    }
    let counts: Vec<SinkCounts> = names
        .iter()
        .zip(now)
        .zip(base)
        .map(|((name, now), base)| counts_between(name, now, base))
        .collect();
    let mut record = record.clone();
    record.sinks = Some(counts);
    Some(record)
}

impl SinkSet {
    /// Starts `sink`'s thread; it gets interval and/or flow records. Every sink is added
    /// before the first record is sent.
    pub fn add(
        &mut self,
        sink: Box<dyn Sink>,
        delivery: &Delivery,
        intervals: bool,
        flows: bool,
    ) -> io::Result<()> {
        let account = Arc::new(Account::new());
        self.names.push(sink.name());
        let lane = Lane::start(
            sink,
            delivery,
            (intervals, flows),
            account.clone(),
            self.shared_names.clone(),
            self.shutdown.clone(),
        )?;
        self.lanes.push(lane);
        self.accounts.push(account);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn wants_flows(&self) -> bool {
        self.lanes.iter().any(|l| l.flows)
    }

    pub fn watch(&self) -> SinkWatch {
        SinkWatch(self.accounts.clone())
    }

    /// Every sink's totals now, for the interval record being built.
    pub fn snapshot(&self) -> Arc<[Totals]> {
        self.accounts.iter().map(|a| a.snapshot()).collect()
    }

    /// Queues an interval record (without `sinks`; each sink's thread adds its own, from
    /// `totals`, taken with [`SinkSet::snapshot`] when the record was built).
    pub fn send_interval(&self, record: &Arc<IntervalRecord>, totals: &Arc<[Totals]>) {
        let _ = self.shared_names.set(self.names.clone());
        for lane in self.lanes.iter().filter(|l| l.intervals) {
            lane.offer_interval(record.clone(), totals.clone());
        }
    }

    /// Queues a flow record (serialised once, for every sink).
    pub fn send_flow(&self, record: Outgoing) {
        for lane in self.lanes.iter().filter(|l| l.flows) {
            lane.offer(record.clone());
        }
    }

    /// Ends the run: each sink gets up to `grace` to deliver what is queued; then one line on
    /// stderr per sink that dropped records. Returns each sink's totals for the whole run.
    pub fn finish(mut self, grace: Duration) -> Vec<SinkCounts> {
        self.shutdown.start(grace);
        for lane in &mut self.lanes {
            lane.finish();
        }
        let zero = Totals::default();
        let mut totals = Vec::new();
        for (name, account) in self.names.iter().zip(&self.accounts) {
            let mut t = account.snapshot();
            let error = t.last_error.clone();
            t.last_error = None;
            let mut c = counts_between(name, &t, &zero);
            c.last_error = error.as_deref().map(str::to_string);
            if c.dropped > 0 {
                eprintln!(
                    "tcpulse: sink {name}: {} records delivered, {} dropped{}",
                    c.delivered,
                    c.dropped,
                    c.last_error
                        .as_ref()
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                );
            }
            totals.push(c);
        }
        totals
    }
}
