//! `tcpulse analyze`: capture files → decode → dispatch → flow workers → merged JSON records.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};

use super::{exit, AnalyzeArgs};
use crate::capture::{CaptureError, CaptureFile};
use crate::decode::{decode_frame, DecodeError, LinkType};
use crate::dispatch::clock::{IntervalClock, Step};
use crate::dispatch::{Backpressure, Dispatcher};
use crate::flow::WorkerInterval;
use crate::metrics::interval::{merge_interval, CaptureStats};
use crate::sink::JsonLines;

/// One closed interval as the reader saw it; the workers' shares follow on their own channel.
struct IntervalMeta {
    start_ns: u64,
    end_ns: u64,
    capture: CaptureStats,
}

/// Runs the analysis and returns the process exit code.
pub fn run(args: &AnalyzeArgs) -> i32 {
    let workers = usize::from(args.workers);
    let flows_separate = args.flows.as_deref().filter(|f| *f != args.output);
    let mut intervals_out = match JsonLines::open(&args.output) {
        Ok(s) => s,
        Err(e) => return fail_output(&e),
    };
    let mut flows_out = match flows_separate.map(JsonLines::open).transpose() {
        Ok(s) => s,
        Err(e) => return fail_output(&e),
    };
    let flows_to_intervals = args.flows.is_some() && flows_separate.is_none();

    let cfg = args.table.flow_config(workers, args.flows.is_some());
    let (results_tx, results_rx) = unbounded();
    let (meta_tx, meta_rx) = unbounded::<IntervalMeta>();
    let mut dispatcher = match Dispatcher::start(workers, &cfg, Backpressure::Block, results_tx) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tcpulse: cannot start flow workers: {e}");
            return exit::OUTPUT_FAILED;
        }
    };
    let source = args
        .files
        .first()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let top = args.top_servers;
    let merger = std::thread::spawn(move || {
        let mut write = |rec: &dyn ErasedRecord, flow: bool| -> std::io::Result<()> {
            match (&mut flows_out, flow && !flows_to_intervals) {
                (Some(f), true) => rec.write_to(f),
                _ => rec.write_to(&mut intervals_out),
            }
        };
        let outcome = merge_loop(workers, &meta_rx, &results_rx, &source, top, &mut write);
        let flushed = intervals_out
            .flush()
            .and(flows_out.as_mut().map_or(Ok(()), JsonLines::flush));
        outcome.and(flushed)
    });

    let mut reader = Reader::new(args.interval, progress_wanted(args.progress));
    let mut code = exit::OK;
    for (i, path) in args.files.iter().enumerate() {
        let file = match CaptureFile::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("tcpulse: {}: {e}", path.display());
                code = code.max(exit::INPUT_UNREADABLE);
                continue;
            }
        };
        reader.label = format!("{} ({}/{})", path.display(), i + 1, args.files.len());
        if let Err(e) = reader.read(&file, &mut dispatcher, &meta_tx) {
            eprintln!(
                "tcpulse: {}: {e}; the frames before it were analysed",
                path.display()
            );
            code = code.max(exit::INPUT_DAMAGED);
        }
        if let Some(n) = reader.unsupported_link.take() {
            eprintln!(
                "tcpulse: {}: link type {n} is not supported; its frames are counted as \
                 unsupported_link_type",
                path.display()
            );
            code = code.max(exit::INPUT_DAMAGED);
        }
    }
    reader.finish(dispatcher, &meta_tx);
    drop(meta_tx);
    match merger.join() {
        Ok(Ok(())) => code,
        Ok(Err(e)) => fail_output(&e),
        Err(_) => {
            eprintln!("tcpulse: the output thread failed");
            exit::OUTPUT_FAILED
        }
    }
}

fn fail_output(e: &std::io::Error) -> i32 {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        eprintln!("tcpulse: output closed early (broken pipe)");
    } else {
        eprintln!("tcpulse: cannot write output: {e}");
    }
    exit::OUTPUT_FAILED
}

fn progress_wanted(flag: Option<bool>) -> bool {
    flag.unwrap_or_else(|| std::io::stderr().is_terminal())
}

/// Reads frames, keeps the interval clock, decodes and dispatches.
struct Reader {
    clock: IntervalClock,
    stats: CaptureStats,
    progress: Option<Progress>,
    label: String,
    unsupported_link: Option<u32>,
}

struct Progress {
    started: Instant,
    last: Instant,
    frames: u64,
}

impl Reader {
    fn new(interval: Duration, progress: bool) -> Self {
        let now = Instant::now();
        Reader {
            clock: IntervalClock::new(u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX)),
            stats: CaptureStats::default(),
            progress: progress.then_some(Progress {
                started: now,
                last: now,
                frames: 0,
            }),
            label: String::new(),
            unsupported_link: None,
        }
    }

    fn read(
        &mut self,
        file: &CaptureFile,
        dispatcher: &mut Dispatcher,
        meta: &crossbeam_channel::Sender<IntervalMeta>,
    ) -> Result<(), CaptureError> {
        let mut frames = file.frames();
        let mut link_of: Option<(u32, Option<LinkType>)> = None;
        let mut n: u64 = 0;
        while let Some(frame) = frames.next() {
            let frame = frame?;
            self.tick_clock(frame.ts_ns, dispatcher, meta);
            self.stats.packets += 1;
            self.stats.bytes += u64::from(frame.orig_len);
            let link = match link_of {
                Some((n, link)) if n == frame.link_type => link,
                _ => {
                    let link = LinkType::from_linktype(frame.link_type);
                    link_of = Some((frame.link_type, link));
                    link
                }
            };
            let Some(link) = link else {
                self.unsupported_link = Some(frame.link_type);
                self.stats.count_error(DecodeError::UnsupportedLinkType);
                continue;
            };
            match decode_frame(link, frame.data, frame.orig_len, frame.ts_ns) {
                Ok(rec) => dispatcher.push(rec),
                Err(e) => self.stats.count_error(e),
            }
            n += 1;
            if n & 0xffff == 0 {
                self.show_progress(frames.bytes_read(), file.len(), 0x10000);
            }
        }
        self.show_progress(file.len(), file.len(), n & 0xffff);
        Ok(())
    }

    fn tick_clock(
        &mut self,
        ts: u64,
        dispatcher: &mut Dispatcher,
        meta: &crossbeam_channel::Sender<IntervalMeta>,
    ) {
        loop {
            match self.clock.step(ts) {
                Step::Same => return,
                Step::Backwards => {
                    self.stats.ts_backwards += 1;
                    return;
                }
                Step::Close { end } => {
                    self.close_interval(end, dispatcher, meta);
                    if self.clock.advance(ts) {
                        self.stats.time_jumps += 1;
                    }
                }
            }
        }
    }

    fn close_interval(
        &mut self,
        end: u64,
        dispatcher: &mut Dispatcher,
        meta: &crossbeam_channel::Sender<IntervalMeta>,
    ) {
        let start = self.clock.start().unwrap_or(end);
        dispatcher.close_interval(end);
        let _ = meta.send(IntervalMeta {
            start_ns: start,
            end_ns: end,
            capture: std::mem::take(&mut self.stats),
        });
    }

    fn finish(mut self, dispatcher: Dispatcher, meta: &crossbeam_channel::Sender<IntervalMeta>) {
        if let Some(p) = &self.progress {
            if p.frames > 0 {
                eprintln!();
            }
        }
        let start = self.clock.start().unwrap_or(0);
        let end = self.clock.end().unwrap_or(0);
        // The last interval closes with the end of input: flows still open end as capture_end.
        dispatcher.finish();
        let _ = meta.send(IntervalMeta {
            start_ns: start,
            end_ns: end,
            capture: std::mem::take(&mut self.stats),
        });
    }

    fn show_progress(&mut self, done: u64, total: u64, frames: u64) {
        let Some(p) = &mut self.progress else { return };
        p.frames += frames;
        let now = Instant::now();
        if now.duration_since(p.last) < Duration::from_millis(500) && done < total {
            return;
        }
        p.last = now;
        let secs = now.duration_since(p.started).as_secs_f64().max(1e-9);
        eprint!(
            "\r{}: {:>3}%  {:.1} M frames  {:.2} M frames/s ",
            self.label,
            done * 100 / total.max(1),
            p.frames as f64 / 1e6,
            p.frames as f64 / secs / 1e6
        );
    }
}

/// Lets the merger write interval and flow records through one closure.
trait ErasedRecord {
    fn write_to(&self, sink: &mut JsonLines) -> std::io::Result<()>;
}

impl<T: serde::Serialize> ErasedRecord for T {
    fn write_to(&self, sink: &mut JsonLines) -> std::io::Result<()> {
        sink.write(self)
    }
}

/// Collects each interval's share from every worker (each worker's shares arrive in order),
/// merges, and writes the interval record followed by the flows that ended in it.
fn merge_loop(
    workers: usize,
    meta_rx: &Receiver<IntervalMeta>,
    results_rx: &Receiver<(usize, WorkerInterval)>,
    source: &str,
    top_servers: usize,
    write: &mut dyn FnMut(&dyn ErasedRecord, bool) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut queues: Vec<VecDeque<WorkerInterval>> = (0..workers).map(|_| VecDeque::new()).collect();
    let mut failed: Option<std::io::Error> = None;
    while let Ok(meta) = meta_rx.recv() {
        while queues.iter().any(VecDeque::is_empty) {
            match results_rx.recv() {
                Ok((id, part)) => queues[id].push_back(part),
                Err(_) => return failed.map_or(Ok(()), Err),
            }
        }
        let parts = queues.iter_mut().filter_map(VecDeque::pop_front).collect();
        let (record, flows) = merge_interval(
            meta.start_ns,
            meta.end_ns,
            source,
            &meta.capture,
            parts,
            top_servers,
        );
        // After a write error keep draining the channels so the reader never blocks; report
        // the first error at the end.
        if failed.is_none() {
            let mut result = write(&record, false);
            for f in &flows {
                if result.is_ok() {
                    result = write(f, true);
                }
            }
            if let Err(e) = result {
                failed = Some(e);
            }
        }
    }
    failed.map_or(Ok(()), Err)
}
