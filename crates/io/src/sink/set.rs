//! Every configured sink of a run: hands each record to each sink that wants its kind, and
//! makes the `"sinks"` part of interval records (`account.rs`).

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::account::{Account, Counts, Totals};
use super::lane::{Delivery, Lane, Shutdown};
use super::{Kind, Record, Sink};

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

/// `json` (an interval record without `"sinks"`) with `"sinks"`: for each sink, `now` minus
/// `base`.
pub fn with_accounting(json: &str, names: &[String], now: &[Totals], base: &[Totals]) -> String {
    let counts: Vec<Counts> = names
        .iter()
        .zip(now)
        .zip(base)
        .map(|((name, now), base)| Counts::between(name, now, base))
        .collect();
    let Some(body) = json.strip_suffix('}').filter(|_| !counts.is_empty()) else {
        return json.to_string();
    };
    // Plain strings and numbers always serialise; keep the record whole if not.
    let list = serde_json::to_string(&counts).unwrap_or_else(|_| "[]".into());
    format!("{body},\"sinks\":{list}}}")
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

    /// Queues an interval record (`json` without `"sinks"`; each sink adds its own, from
    /// `totals`, taken with [`SinkSet::snapshot`] when the record was built).
    pub fn send_interval(&self, json: &Arc<str>, totals: &Arc<[Totals]>) {
        let _ = self.shared_names.set(self.names.clone());
        for lane in self.lanes.iter().filter(|l| l.intervals) {
            let record = Record {
                kind: Kind::Interval,
                json: json.clone(),
            };
            lane.offer(record, Some(totals.clone()));
        }
    }

    pub fn send_flow(&self, json: &Arc<str>) {
        for lane in self.lanes.iter().filter(|l| l.flows) {
            let record = Record {
                kind: Kind::Flow,
                json: json.clone(),
            };
            lane.offer(record, None);
        }
    }

    /// Ends the run: each sink gets up to `grace` to deliver what is queued; then one line on
    /// stderr per sink that dropped records. Returns each sink's totals for the whole run.
    pub fn finish(mut self, grace: Duration) -> Vec<Counts> {
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
            let mut c = Counts::between(name, &t, &zero);
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
