//! Every destination of a run: `analyze`'s main outputs, written synchronously and without
//! loss by the merger itself, and the sinks (docs/sinks.md), which never hold it up.

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::sink::account::Totals;
use crate::sink::file::Rotation;
use crate::sink::lane::Delivery;
use crate::sink::set::{with_accounting, SinkWatch, SHUTDOWN_GRACE};
use crate::sink::spec::Records;
use crate::sink::{FileSink, JsonLines, Outgoing, Sink, SinkSet, SinkSpec, StdoutSink};
use tcpulse_core::schema::{FlowRecord, IntervalRecord, Record};

/// Where a run's records go: `--output`, `--flows` and every `--sink`.
#[derive(Clone, Debug, Default)]
pub struct OutputSettings {
    /// Interval records: a path, `-` for standard output, or [`NO_OUTPUT`].
    pub output: String,
    /// Flow records: a path or `-`; `None`: no flow records (unless a sink wants them).
    pub flows: Option<String>,
    pub sinks: Vec<SinkSpec>,
}

/// `--output none`: interval records go to the `--sink` destinations only.
pub const NO_OUTPUT: &str = "none";

/// The main outputs written by the merger itself (`analyze`).
pub struct MainOutputs {
    /// `None` with `--output none`.
    intervals: Option<JsonLines>,
    /// `None` when flows are not wanted or go to the interval sink.
    flows: Option<JsonLines>,
    flows_to_intervals: bool,
}

impl MainOutputs {
    /// Opens the outputs now, so a bad path fails before capture starts.
    pub fn open(output: &str, flows: Option<&str>) -> io::Result<MainOutputs> {
        let separate = flows.filter(|f| *f != output);
        Ok(MainOutputs {
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
    direct: Option<MainOutputs>,
    set: SinkSet,
    /// The sinks' totals as of the last record the main outputs got.
    direct_base: Arc<[Totals]>,
}

impl Outputs {
    /// Opens every output now, so a bad path or spec fails before analysis starts. `live`:
    /// the main outputs become non-blocking sinks too.
    pub fn open(p: &OutputSettings, live: bool) -> Result<Outputs, String> {
        let mut set = SinkSet::default();
        let direct = if live {
            add_main_outputs(&mut set, p).map_err(|e| e.to_string())?;
            None
        } else {
            Some(MainOutputs::open(&p.output, p.flows.as_deref()).map_err(|e| e.to_string())?)
        };
        for spec in &p.sinks {
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
        self.direct.as_ref().is_some_and(MainOutputs::wants_flows) || self.set.wants_flows()
    }

    pub fn watch(&self) -> SinkWatch {
        self.set.watch()
    }

    /// Writes or queues one interval record and its flow records. `Err`: a main output of
    /// `analyze` failed.
    pub(crate) fn write(
        &mut self,
        record: IntervalRecord,
        flows: Vec<FlowRecord>,
    ) -> io::Result<()> {
        let totals = self.set.snapshot();
        let mut result = Ok(());
        if let Some(direct) = &mut self.direct {
            let accounted = with_accounting(&record, self.set.names(), &totals, &self.direct_base);
            let json = serde_json::to_string(accounted.as_ref().unwrap_or(&record))
                .map_err(io::Error::from)?;
            result = direct.write_interval(&json);
            self.direct_base = totals.clone();
        }
        if !self.set.is_empty() {
            self.set.send_interval(&Arc::new(record), &totals);
        }
        let direct_flows = self.direct.as_ref().is_some_and(MainOutputs::wants_flows);
        let sink_flows = self.set.wants_flows();
        for flow in flows.into_iter().filter(|_| direct_flows || sink_flows) {
            let outgoing = Outgoing::new(Record::Flow(flow));
            if let (Some(direct), true, true) = (&mut self.direct, direct_flows, result.is_ok()) {
                result = direct.write_flow(&outgoing.json);
            }
            if sink_flows {
                self.set.send_flow(outgoing);
            }
        }
        // Each interval's records leave when it closes, so a reader of a pipe (`tcpdump -w - |
        // tcpulse analyze - | ...`) sees them as they come; one write per interval costs nothing.
        if let (Some(direct), true) = (&mut self.direct, result.is_ok()) {
            result = direct.flush();
        }
        result
    }

    /// Flushes the main outputs and gives the sinks their grace to deliver what is queued.
    pub(crate) fn finish(self) -> io::Result<()> {
        let flushed = self.direct.map_or(Ok(()), |mut d| d.flush());
        self.set.finish(SHUTDOWN_GRACE);
        flushed
    }
}

/// `run`'s `--output` and `--flows` as sinks: standard output or a file (emptied at start, no
/// rotation), the same destination for both when they name the same.
fn add_main_outputs(set: &mut SinkSet, p: &OutputSettings) -> io::Result<()> {
    let open = |path: &str| -> io::Result<Box<dyn Sink>> {
        Ok(if path == "-" {
            Box::new(StdoutSink::default())
        } else {
            Box::new(FileSink::open(Path::new(path), true, Rotation::default())?)
        })
    };
    let delivery = Delivery::default();
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
