//! `tcpulse analyze`: capture files → decode → dispatch → flow workers → merged JSON records.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use tcpulse_io::capture::CaptureInput;
use tcpulse_io::dispatch::Backpressure;
use tcpulse_io::pipeline::offline::feed_input;
use tcpulse_io::pipeline::Pipeline;

use super::{exit, fail_output, AnalyzeArgs};

/// Runs the analysis and returns the process exit code.
pub fn run(args: &AnalyzeArgs) -> i32 {
    let source = args
        .files
        .first()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let settings = match args.pipeline.settings() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (pipeline, mut ingests) = match Pipeline::start(&settings, 1, Backpressure::Block, source) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("tcpulse: {e}");
            return exit::OUTPUT_FAILED;
        }
    };
    let Some(mut ingest) = ingests.pop() else {
        return exit::OUTPUT_FAILED;
    };
    let mut progress = progress_wanted(args.progress).then(Progress::new);

    let mut code = exit::OK;
    for (i, path) in args.files.iter().enumerate() {
        let mut input = match CaptureInput::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("tcpulse: {}: {e}", path.display());
                code = code.max(exit::INPUT_UNREADABLE);
                continue;
            }
        };
        if let Some(p) = &mut progress {
            p.label = format!("{} ({}/{})", path.display(), i + 1, args.files.len());
        }
        // A stream's length is not known: its progress shows frames only.
        let total = match &input {
            CaptureInput::Mapped(file) => file.len(),
            CaptureInput::Stream(_) => 0,
        };
        let outcome = feed_input(&mut input, &mut ingest, &mut |done, frames| {
            if let Some(p) = progress.as_mut() {
                p.show(done, total, frames);
            }
        });
        if let Some(e) = outcome.error {
            eprintln!(
                "tcpulse: {}: {e}; the frames before it were analysed",
                path.display()
            );
            code = code.max(exit::INPUT_DAMAGED);
        }
        if let Some(n) = outcome.unsupported_link {
            eprintln!(
                "tcpulse: {}: link type {n} is not supported; its frames are counted as \
                 unsupported_link_type",
                path.display()
            );
            code = code.max(exit::INPUT_DAMAGED);
        }
    }
    if progress.is_some_and(|p| p.frames > 0) {
        eprintln!();
    }
    // The last interval closes with the end of input: flows still open end as capture_end.
    ingest.finish(None);
    match pipeline.join() {
        Ok(()) => code,
        Err(e) => fail_output(&e),
    }
}

fn progress_wanted(flag: Option<bool>) -> bool {
    flag.unwrap_or_else(|| std::io::stderr().is_terminal())
}

/// The progress line on stderr.
struct Progress {
    started: Instant,
    last: Instant,
    frames: u64,
    label: String,
}

impl Progress {
    fn new() -> Self {
        let now = Instant::now();
        Progress {
            started: now,
            last: now,
            frames: 0,
            label: String::new(),
        }
    }

    fn show(&mut self, done: u64, total: u64, frames: u64) {
        self.frames += frames;
        let now = Instant::now();
        if now.duration_since(self.last) < Duration::from_millis(500) && done < total {
            return;
        }
        self.last = now;
        let secs = now.duration_since(self.started).as_secs_f64().max(1e-9);
        let share = match total {
            0 => format!("{:.1} MB", done as f64 / 1e6),
            _ => format!("{:>3}%", done * 100 / total),
        };
        eprint!(
            "\r{}: {share}  {:.1} M frames  {:.2} M frames/s ",
            self.label,
            self.frames as f64 / 1e6,
            self.frames as f64 / secs / 1e6
        );
    }
}
