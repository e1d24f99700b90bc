//! The merger thread: waits for every producer's and every worker's share of an interval,
//! merges them and writes the interval record, then the flows that ended in it. Each record
//! is serialised once.

use std::collections::VecDeque;
use std::io;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use tcpulse_core::flow::WorkerInterval;
use tcpulse_core::metrics::interval::{merge_interval, Listing};
use tcpulse_core::schema::interval::CaptureStats;

use super::outputs::Outputs;
use crate::dispatch::ingest::IntervalMeta;
use crate::flow::ShareReturn;

/// The thread that merges every producer's and every worker's share of an interval into its
/// record and writes it, then the flows that ended in it.
pub struct IntervalMerger {
    pub feeders: usize,
    pub workers: usize,
    pub source: String,
    pub listing: Listing,
    /// Where the shares go back to their workers once merged.
    pub returns: ShareReturn,
}

impl IntervalMerger {
    /// Runs the merge loop on its own thread until every producer has finished.
    pub fn spawn(
        self,
        mut outputs: Outputs,
        metas: Receiver<IntervalMeta>,
        results: Receiver<(usize, WorkerInterval)>,
    ) -> io::Result<JoinHandle<io::Result<()>>> {
        std::thread::Builder::new()
            .name("tcpulse-merge".into())
            .spawn(move || {
                let outcome = self.run(&mut outputs, &metas, &results);
                outcome.and(outputs.finish())
            })
    }

    fn run(
        &self,
        outputs: &mut Outputs,
        metas: &Receiver<IntervalMeta>,
        results: &Receiver<(usize, WorkerInterval)>,
    ) -> io::Result<()> {
        let mut fed: Vec<VecDeque<IntervalMeta>> =
            (0..self.feeders).map(|_| VecDeque::new()).collect();
        let mut parts: Vec<VecDeque<WorkerInterval>> =
            (0..self.workers).map(|_| VecDeque::new()).collect();
        let mut failed: Option<io::Error> = None;
        loop {
            while fed.iter().any(VecDeque::is_empty) {
                match metas.recv() {
                    Ok(m) => fed[m.feeder.min(self.feeders - 1)].push_back(m),
                    Err(_) => return failed.map_or(Ok(()), Err),
                }
            }
            while parts.iter().any(VecDeque::is_empty) {
                match results.recv() {
                    Ok((id, part)) => parts[id].push_back(part),
                    Err(_) => return failed.map_or(Ok(()), Err),
                }
            }
            let mut capture = CaptureStats::default();
            let (mut start, mut end) = (u64::MAX, 0);
            for m in fed.iter_mut().filter_map(VecDeque::pop_front) {
                capture.merge(&m.capture);
                start = start.min(m.start_ns);
                end = end.max(m.end_ns);
            }
            let mut shares: Vec<WorkerInterval> =
                parts.iter_mut().filter_map(VecDeque::pop_front).collect();
            let (record, flows) = merge_interval(
                start,
                end,
                &self.source,
                &capture,
                &mut shares,
                &self.listing,
            );
            for (id, mut share) in shares.into_iter().enumerate() {
                share.empty_histograms();
                self.returns.give_back(id, share);
            }
            // After a write error keep draining, so producers never block; report it at the
            // end. Sinks still get every record.
            if let Err(e) = outputs.write(record, flows) {
                failed.get_or_insert(e);
            }
        }
    }
}
