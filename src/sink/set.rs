//! Every configured sink of a run: hands each record to each sink that wants its kind, and
//! makes the `"sinks"` part of interval records.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::account::{Account, Counts};
use super::lane::{Delivery, Lane, Shutdown};
use super::{Kind, Record, Sink};

/// How long sinks get, once the run ends, to deliver what is queued (retries included).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct SinkSet {
    lanes: Vec<Lane>,
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

impl SinkSet {
    /// Starts `sink`'s thread; it gets interval and/or flow records.
    pub fn add(
        &mut self,
        sink: Box<dyn Sink>,
        delivery: &Delivery,
        intervals: bool,
        flows: bool,
    ) -> io::Result<()> {
        let lane = Lane::start(sink, delivery, (intervals, flows), self.shutdown.clone())?;
        self.lanes.push(lane);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }

    pub fn wants_flows(&self) -> bool {
        self.lanes.iter().any(|l| l.flows)
    }

    pub fn watch(&self) -> SinkWatch {
        SinkWatch(self.lanes.iter().map(|l| l.account.clone()).collect())
    }

    /// Each sink's counts since the previous interval record that reached it, for the record
    /// being built; pass them back with [`SinkSet::send_interval`].
    pub fn claims(&self) -> Vec<Counts> {
        self.lanes.iter().map(|l| l.account.take()).collect()
    }

    /// `json` (an interval record without its `sinks`) with `"sinks": claims` added.
    pub fn with_accounting(mut json: String, claims: &[Counts]) -> String {
        if claims.is_empty() || !json.ends_with('}') {
            return json;
        }
        json.pop();
        json.push_str(",\"sinks\":");
        // Serialising plain strings and numbers cannot fail; keep the record if it did.
        json.push_str(&serde_json::to_string(claims).unwrap_or_else(|_| "[]".into()));
        json.push('}');
        json
    }

    pub fn send_interval(&self, json: &Arc<str>, claims: Vec<Counts>) {
        for (lane, claim) in self.lanes.iter().zip(claims) {
            if lane.intervals {
                let record = Record {
                    kind: Kind::Interval,
                    json: json.clone(),
                };
                lane.offer(record, Some(claim));
            } else {
                lane.account.give_back(claim);
            }
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
    /// stderr per sink that dropped records.
    pub fn finish(mut self, grace: Duration) {
        self.shutdown.start(grace);
        for lane in &mut self.lanes {
            lane.finish();
        }
        for lane in &self.lanes {
            let dropped = lane.account.dropped_total.load(Ordering::Relaxed);
            if dropped > 0 {
                let last = lane.account.take();
                eprintln!(
                    "tcpulse: sink {}: {} records delivered, {dropped} dropped{}",
                    last.name,
                    lane.account.delivered_total.load(Ordering::Relaxed),
                    last.last_error
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                );
            }
        }
    }
}
