//! The merger thread: waits for every producer's and every worker's share of an interval,
//! merges them and writes the interval record, then the flows that ended in it.

use std::collections::VecDeque;
use std::io;
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::{exit, PipelineArgs};
use crate::dispatch::ingest::{Ingest, IntervalMeta};
use crate::dispatch::{Backpressure, Workers};
use crate::flow::WorkerInterval;
use crate::metrics::anonymize::read_key;
use crate::metrics::interval::{merge_interval, CaptureStats};
use crate::sink::JsonLines;

/// Where records go.
pub struct Sinks {
    intervals: JsonLines,
    /// `None` when flows are not wanted or go to the interval sink.
    flows: Option<JsonLines>,
    flows_to_intervals: bool,
}

impl Sinks {
    /// Opens the outputs now, so a bad path fails before capture starts.
    pub fn open(output: &str, flows: Option<&str>) -> io::Result<Sinks> {
        let separate = flows.filter(|f| *f != output);
        Ok(Sinks {
            intervals: JsonLines::open(output)?,
            flows: separate.map(JsonLines::open).transpose()?,
            flows_to_intervals: flows.is_some() && separate.is_none(),
        })
    }

    fn write_flow<T: serde::Serialize>(&mut self, record: &T) -> io::Result<()> {
        match (&mut self.flows, self.flows_to_intervals) {
            (Some(f), false) => f.write(record),
            _ => self.intervals.write(record),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.intervals.flush()?;
        self.flows.as_mut().map_or(Ok(()), JsonLines::flush)
    }
}

pub struct Merger {
    pub feeders: usize,
    pub workers: usize,
    pub source: String,
    pub top_servers: usize,
}

impl Merger {
    /// Runs the merge loop on its own thread until every producer has finished.
    pub fn spawn(
        self,
        mut sinks: Sinks,
        metas: Receiver<IntervalMeta>,
        results: Receiver<(usize, WorkerInterval)>,
    ) -> io::Result<JoinHandle<io::Result<()>>> {
        std::thread::Builder::new()
            .name("tcpulse-merge".into())
            .spawn(move || {
                let outcome = self.run(&mut sinks, &metas, &results);
                outcome.and(sinks.flush())
            })
    }

    fn run(
        &self,
        sinks: &mut Sinks,
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
            let shares = parts.iter_mut().filter_map(VecDeque::pop_front).collect();
            let (record, flows) =
                merge_interval(start, end, &self.source, &capture, shares, self.top_servers);
            // After a write error keep draining, so producers never block; report it at the end.
            if failed.is_none() {
                let written = sinks
                    .intervals
                    .write(&record)
                    .and_then(|()| flows.iter().try_for_each(|f| sinks.write_flow(f)));
                if let Err(e) = written {
                    failed = Some(e);
                }
            }
        }
    }
}

/// The running pipeline behind the producers: flow workers and the merger thread.
pub struct Pipeline {
    workers: Workers,
    merger: JoinHandle<io::Result<()>>,
}

impl Pipeline {
    /// Opens the outputs and starts W workers and the merger for `feeders` producers; returns
    /// one [`Ingest`] per producer. Errors are printed; the `Err` is the exit code.
    pub fn start(
        p: &PipelineArgs,
        feeders: usize,
        mode: Backpressure,
        source: String,
    ) -> Result<(Pipeline, Vec<Ingest>), i32> {
        let sinks = Sinks::open(&p.output, p.flows.as_deref()).map_err(|e| fail_output(&e))?;
        let workers = usize::from(p.workers);
        let cfg = p.table.flow_config(workers, p.flows.is_some());
        let (results_tx, results_rx) = unbounded();
        let (meta_tx, meta_rx): (Sender<IntervalMeta>, _) = unbounded();
        let anonymize = match &p.anonymize {
            Some(path) => Some(read_key(path).map_err(|e| {
                eprintln!("tcpulse: {e}");
                exit::USAGE
            })?),
            None => None,
        };
        let started = Workers::start(workers, feeders, &cfg, mode, anonymize, &results_tx);
        let (pool, feeds) = started.map_err(|e| {
            eprintln!("tcpulse: cannot start flow workers: {e}");
            exit::OUTPUT_FAILED
        })?;
        let merger = Merger {
            feeders,
            workers,
            source,
            top_servers: p.top_servers,
        };
        let merger = merger.spawn(sinks, meta_rx, results_rx).map_err(|e| {
            eprintln!("tcpulse: cannot start the output thread: {e}");
            exit::OUTPUT_FAILED
        })?;
        let interval_ns = u64::try_from(p.interval.as_nanos()).unwrap_or(u64::MAX);
        let ingests = feeds
            .into_iter()
            .enumerate()
            .map(|(i, feeder)| Ingest::new(i, interval_ns, feeder, meta_tx.clone()))
            .collect();
        Ok((
            Pipeline {
                workers: pool,
                merger,
            },
            ingests,
        ))
    }

    /// Waits for the workers and the merger once every producer has finished; returns `code`,
    /// or the output failure's code.
    pub fn join(self, code: i32) -> i32 {
        self.workers.join();
        match self.merger.join() {
            Ok(Ok(())) => code,
            Ok(Err(e)) => fail_output(&e),
            Err(_) => {
                eprintln!("tcpulse: the output thread failed");
                exit::OUTPUT_FAILED
            }
        }
    }
}

/// Prints why output failed and returns the exit code.
pub fn fail_output(e: &io::Error) -> i32 {
    if e.kind() == io::ErrorKind::BrokenPipe {
        eprintln!("tcpulse: output closed early (broken pipe)");
    } else {
        eprintln!("tcpulse: cannot write output: {e}");
    }
    exit::OUTPUT_FAILED
}
