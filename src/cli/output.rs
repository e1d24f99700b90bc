//! The merger thread: waits for every producer's and every worker's share of an interval,
//! merges them and writes the interval record, then the flows that ended in it.
//!
//! Each record is serialised once. Offline (`analyze`) the main outputs (`--output`,
//! `--flows`) are written here, synchronously and losslessly (a failure is exit code 5); live
//! (`run`) they are sinks like the `--sink` ones, which never hold the merger up (docs/sinks.md).

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::{exit, PipelineArgs};
use crate::dispatch::ingest::{Ingest, IntervalMeta};
use crate::dispatch::{Backpressure, Workers};
use crate::flow::WorkerInterval;
use crate::metrics::anonymize::{read_key, Anonymizer};
use crate::metrics::interval::{merge_interval, CaptureStats, Listing};
use crate::sink::account::Totals;
use crate::sink::file::Rotation;
use crate::sink::set::{with_accounting, SinkWatch, SHUTDOWN_GRACE};
use crate::sink::spec::Records;
use crate::sink::{FileSink, JsonLines, Sink, SinkSet, StdoutSink};

/// `--output none`: interval records go to the `--sink` destinations only.
pub const NO_OUTPUT: &str = "none";

/// The main outputs written by the merger itself (`analyze`).
pub struct Sinks {
    /// `None` with `--output none`.
    intervals: Option<JsonLines>,
    /// `None` when flows are not wanted or go to the interval sink.
    flows: Option<JsonLines>,
    flows_to_intervals: bool,
}

impl Sinks {
    /// Opens the outputs now, so a bad path fails before capture starts.
    pub fn open(output: &str, flows: Option<&str>) -> io::Result<Sinks> {
        let separate = flows.filter(|f| *f != output);
        Ok(Sinks {
            intervals: (output != NO_OUTPUT)
                .then(|| JsonLines::open(output))
                .transpose()?,
            flows: separate.map(JsonLines::open).transpose()?,
            flows_to_intervals: flows.is_some() && separate.is_none(),
        })
    }

    fn write_interval(&mut self, json: &str) -> io::Result<()> {
        self.intervals
            .as_mut()
            .map_or(Ok(()), |out| out.write_line(json))
    }

    fn wants_flows(&self) -> bool {
        self.flows.is_some() || self.flows_to_intervals
    }

    fn write_flow(&mut self, json: &str) -> io::Result<()> {
        match (&mut self.flows, self.flows_to_intervals) {
            (Some(f), false) => f.write_line(json),
            _ => self.write_interval(json),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.intervals.as_mut().map_or(Ok(()), JsonLines::flush)?;
        self.flows.as_mut().map_or(Ok(()), JsonLines::flush)
    }
}

/// Every destination of a run.
pub struct Outputs {
    /// `analyze`'s main outputs; `None` live, where they are in `set`.
    direct: Option<Sinks>,
    set: SinkSet,
    /// The sinks' totals as of the last record the main outputs got.
    direct_base: Arc<[Totals]>,
}

impl Outputs {
    /// Opens every output now, so a bad path or spec fails before analysis starts. `live`:
    /// the main outputs become non-blocking sinks too.
    pub fn open(p: &PipelineArgs, live: bool) -> Result<Outputs, String> {
        let mut set = SinkSet::default();
        let direct = if live {
            add_main_outputs(&mut set, p).map_err(|e| e.to_string())?;
            None
        } else {
            Some(Sinks::open(&p.output, p.flows.as_deref()).map_err(|e| e.to_string())?)
        };
        for spec in &p.sink {
            let (sink, settings) = spec.build()?;
            let (intervals, flows) = match settings.records {
                Records::Intervals => (true, false),
                Records::Flows => (false, true),
                Records::All => (true, true),
            };
            set.add(sink, &settings.delivery, intervals, flows)
                .map_err(|e| format!("cannot start a sink thread: {e}"))?;
        }
        let direct_base = vec![Totals::default(); set.names().len()].into();
        Ok(Outputs {
            direct,
            set,
            direct_base,
        })
    }

    /// Whether the flow workers must make flow records.
    pub fn wants_flows(&self) -> bool {
        self.direct.as_ref().is_some_and(Sinks::wants_flows) || self.set.wants_flows()
    }

    pub fn watch(&self) -> SinkWatch {
        self.set.watch()
    }

    /// Writes or queues one interval record and its flow records. `Err`: a main output of
    /// `analyze` failed.
    fn write<T: serde::Serialize, F: serde::Serialize>(
        &mut self,
        record: &T,
        flows: &[F],
    ) -> io::Result<()> {
        let json = serde_json::to_string(record).map_err(io::Error::from)?;
        let totals = self.set.snapshot();
        let mut result = Ok(());
        if let Some(direct) = &mut self.direct {
            let names = self.set.names();
            result = if names.is_empty() {
                direct.write_interval(&json)
            } else {
                direct.write_interval(&with_accounting(&json, names, &totals, &self.direct_base))
            };
            self.direct_base = totals.clone();
        }
        if !self.set.is_empty() {
            self.set.send_interval(&Arc::from(json), &totals);
        }
        let direct_flows = self.direct.as_ref().is_some_and(Sinks::wants_flows);
        if direct_flows || self.set.wants_flows() {
            for f in flows {
                let json = serde_json::to_string(f).map_err(io::Error::from)?;
                if let (Some(direct), true, true) = (&mut self.direct, direct_flows, result.is_ok())
                {
                    result = direct.write_flow(&json);
                }
                if self.set.wants_flows() {
                    self.set.send_flow(&Arc::from(json));
                }
            }
        }
        result
    }

    /// Flushes the main outputs and gives the sinks their grace to deliver what is queued.
    fn finish(self) -> io::Result<()> {
        let flushed = self.direct.map_or(Ok(()), |mut d| d.flush());
        self.set.finish(SHUTDOWN_GRACE);
        flushed
    }
}

/// `run`'s `--output` and `--flows` as sinks: standard output or a file (emptied at start, no
/// rotation), the same destination for both when they name the same.
fn add_main_outputs(set: &mut SinkSet, p: &PipelineArgs) -> io::Result<()> {
    let open = |path: &str| -> io::Result<Box<dyn Sink>> {
        Ok(if path == "-" {
            Box::new(StdoutSink::default())
        } else {
            Box::new(FileSink::open(Path::new(path), true, Rotation::default())?)
        })
    };
    let delivery = crate::sink::lane::Delivery::default();
    let flows = p.flows.as_deref();
    if p.output != NO_OUTPUT {
        let together = flows == Some(p.output.as_str());
        set.add(open(&p.output)?, &delivery, true, together)?;
    }
    if let Some(path) = flows.filter(|f| *f != p.output) {
        set.add(open(path)?, &delivery, false, true)?;
    }
    Ok(())
}

pub struct Merger {
    pub feeders: usize,
    pub workers: usize,
    pub source: String,
    pub listing: Listing,
}

impl Merger {
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
            let shares = parts.iter_mut().filter_map(VecDeque::pop_front).collect();
            let (record, flows) =
                merge_interval(start, end, &self.source, &capture, shares, &self.listing);
            // After a write error keep draining, so producers never block; report it at the
            // end. Sinks still get every record.
            if let Err(e) = outputs.write(&record, &flows) {
                failed.get_or_insert(e);
            }
        }
    }
}

/// The running pipeline behind the producers: flow workers and the merger thread.
pub struct Pipeline {
    workers: Workers,
    merger: JoinHandle<io::Result<()>>,
    /// Whether every sink is closed for good (`run` then stops).
    pub sinks: SinkWatch,
}

impl Pipeline {
    /// Opens the outputs and starts W workers and the merger for `feeders` producers; returns
    /// one [`Ingest`] per producer. `live`: every output is a non-blocking sink. Errors are
    /// printed; the `Err` is the exit code.
    pub fn start(
        p: &PipelineArgs,
        feeders: usize,
        mode: Backpressure,
        source: String,
    ) -> Result<(Pipeline, Vec<Ingest>), i32> {
        let live = mode == Backpressure::Drop;
        let outputs = Outputs::open(p, live).map_err(|e| {
            eprintln!("tcpulse: cannot open an output: {e}");
            exit::OUTPUT_FAILED
        })?;
        let sinks = outputs.watch();
        let workers = usize::from(p.workers);
        let cfg = p.table.flow_config(workers, outputs.wants_flows());
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
        // Addresses are anonymised in the workers; patterns follow them (prefixes are kept).
        let mut anonymizer = anonymize.map(|k| Anonymizer::new(&k));
        let watch = p
            .watch
            .iter()
            .map(|w| anonymizer.as_mut().map_or(*w, |a| w.anonymised(a)))
            .collect();
        let merger = Merger {
            feeders,
            workers,
            source,
            listing: Listing {
                top_servers: p.top_servers,
                watch,
            },
        };
        let merger = merger.spawn(outputs, meta_rx, results_rx).map_err(|e| {
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
                sinks,
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
