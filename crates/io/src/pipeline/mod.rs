//! The pipeline's threads wired together: producers (the file reader, or one capture thread per
//! live queue) → flow workers → the merger → outputs and sinks.
//!
//! [`Pipeline::start`] opens the outputs and starts the workers and the merger, and hands back
//! one [`Ingest`] per producer; [`offline`] feeds one from capture files, [`live`] runs the
//! capture threads. Errors are values here; the command line turns them into messages and
//! exit codes.

pub mod live;
mod merger;
pub mod offline;
mod outputs;

use crate::capture::filter::{CaptureFilter, FilterError};
use std::fmt;
use std::io;
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Sender};
use tcpulse_core::flow::anonymize::Anonymizer;
use tcpulse_core::flow::FlowConfig;
use tcpulse_core::metrics::interval::Listing;

use crate::dispatch::ingest::{Ingest, IntervalMeta};
use crate::dispatch::Backpressure;
use crate::flow::Workers;
use crate::sink::set::SinkWatch;
use merger::IntervalMerger;
use outputs::Outputs;
pub use outputs::{OutputSettings, NO_OUTPUT};

/// What a run's pipeline is made of.
#[derive(Clone, Debug)]
pub struct Settings {
    pub workers: usize,
    pub interval_ns: u64,
    /// Each worker's engine; `emit_flows` is set from what the outputs want.
    pub flow: FlowConfig,
    /// Which servers interval records list. Watch patterns are given as the operator wrote
    /// them: with `anonymize` they are mapped like the addresses.
    pub listing: Listing,
    /// Prefix-preserving anonymisation key (`--anonymize`), applied in the workers.
    pub anonymize: Option<[u8; 32]>,
    /// Capture filter (`--filter`, pcap-filter syntax), applied by every producer.
    pub filter: Option<String>,
    pub outputs: OutputSettings,
}

/// Why a pipeline could not start.
#[derive(Debug)]
pub enum StartError {
    /// An output or sink could not be opened or built.
    Output(String),
    /// The flow workers could not be started.
    Workers(io::Error),
    /// The merger thread could not be started.
    Merger(io::Error),
    /// The capture filter does not compile.
    Filter(FilterError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Output(e) => write!(f, "cannot open an output: {e}"),
            StartError::Workers(e) => write!(f, "cannot start flow workers: {e}"),
            StartError::Merger(e) => write!(f, "cannot start the output thread: {e}"),
            StartError::Filter(e) => write!(f, "{e}"),
        }
    }
}

/// Why a pipeline's output failed.
#[derive(Debug)]
pub enum OutputError {
    /// A main output of `analyze` could not be written.
    Write(io::Error),
    /// The merger thread panicked.
    MergerFailed,
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputError::Write(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                f.write_str("output closed early (broken pipe)")
            }
            OutputError::Write(e) => write!(f, "cannot write output: {e}"),
            OutputError::MergerFailed => f.write_str("the output thread failed"),
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
    /// Opens the outputs and starts the workers and the merger for `feeders` producers;
    /// returns one [`Ingest`] per producer. `Drop` backpressure is a live run: every output
    /// is then a non-blocking sink. `source` names the input in interval records.
    ///
    /// # Errors
    /// An output that cannot be opened, or a thread that cannot be started.
    pub fn start(
        settings: &Settings,
        feeders: usize,
        mode: Backpressure,
        source: String,
    ) -> Result<(Pipeline, Vec<Ingest>), StartError> {
        let live = mode == Backpressure::Drop;
        // Compiled before anything starts: a typo is a message, not a run without a filter.
        let filter = match &settings.filter {
            Some(expression) => Some(CaptureFilter::new(expression).map_err(StartError::Filter)?),
            None => None,
        };
        let outputs = Outputs::open(&settings.outputs, live).map_err(StartError::Output)?;
        let sinks = outputs.watch();
        let workers = settings.workers.max(1);
        let cfg = FlowConfig {
            emit_flows: outputs.wants_flows(),
            ..settings.flow.clone()
        };
        let (results_tx, results_rx) = unbounded();
        let (meta_tx, meta_rx): (Sender<IntervalMeta>, _) = unbounded();
        let anonymize = settings.anonymize;
        let (pool, feeds, returns) =
            Workers::start(workers, feeders, &cfg, mode, anonymize, &results_tx)
                .map_err(StartError::Workers)?;
        // Addresses are anonymised in the workers; patterns follow them (prefixes are kept).
        let mut anonymizer = anonymize.map(|k| Anonymizer::new(&k));
        let watch = settings
            .listing
            .watch
            .iter()
            .map(|w| anonymizer.as_mut().map_or(*w, |a| w.anonymised(a)))
            .collect();
        let merger = IntervalMerger {
            feeders,
            workers,
            source,
            listing: Listing {
                top_servers: settings.listing.top_servers,
                watch,
            },
            returns,
        };
        let merger = merger
            .spawn(outputs, meta_rx, results_rx)
            .map_err(StartError::Merger)?;
        let ingests = feeds
            .into_iter()
            .enumerate()
            .map(|(i, feeder)| {
                Ingest::new(i, settings.interval_ns, feeder, meta_tx.clone())
                    .with_filter(filter.as_ref().map(CaptureFilter::fresh))
            })
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

    /// Waits for the workers and the merger once every producer has finished.
    ///
    /// # Errors
    /// A main output that could not be written, or a merger that failed.
    pub fn join(self) -> Result<(), OutputError> {
        self.workers.join();
        match self.merger.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(OutputError::Write(e)),
            Err(_) => Err(OutputError::MergerFailed),
        }
    }
}
