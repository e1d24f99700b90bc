//! `tcpulse analyze`: capture files → decode → dispatch → flow workers → merged JSON records.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use super::output::Pipeline;
use super::{exit, AnalyzeArgs};
use crate::capture::{CaptureError, CaptureFile};
use crate::decode::LinkType;
use crate::dispatch::ingest::Ingest;
use crate::dispatch::Backpressure;

/// Runs the analysis and returns the process exit code.
pub fn run(args: &AnalyzeArgs) -> i32 {
    let source = args
        .files
        .first()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let (pipeline, mut ingests) =
        match Pipeline::start(&args.pipeline, 1, Backpressure::Block, source) {
            Ok(started) => started,
            Err(code) => return code,
        };
    let Some(mut ingest) = ingests.pop() else {
        return exit::OUTPUT_FAILED;
    };
    let mut progress = progress_wanted(args.progress).then(Progress::new);

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
        if let Some(p) = &mut progress {
            p.label = format!("{} ({}/{})", path.display(), i + 1, args.files.len());
        }
        let (result, unsupported) = read_file(&file, &mut ingest, progress.as_mut());
        if let Err(e) = result {
            eprintln!(
                "tcpulse: {}: {e}; the frames before it were analysed",
                path.display()
            );
            code = code.max(exit::INPUT_DAMAGED);
        }
        if let Some(n) = unsupported {
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
    pipeline.join(code)
}

/// Feeds one file's frames; returns how reading ended and an unsupported link type, if any.
fn read_file(
    file: &CaptureFile,
    ingest: &mut Ingest,
    mut progress: Option<&mut Progress>,
) -> (Result<(), CaptureError>, Option<u32>) {
    let mut frames = file.frames();
    let mut link_of: Option<(u32, Option<LinkType>)> = None;
    let mut unsupported = None;
    let mut n: u64 = 0;
    while let Some(frame) = frames.next() {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return (Err(e), unsupported),
        };
        let link = match link_of {
            Some((n, link)) if n == frame.link_type => link,
            _ => {
                let link = LinkType::from_linktype(frame.link_type);
                link_of = Some((frame.link_type, link));
                link
            }
        };
        match link {
            Some(link) => ingest.frame(link, frame.data, frame.orig_len, frame.ts_ns),
            None => {
                unsupported = Some(frame.link_type);
                ingest.unsupported(frame.orig_len, frame.ts_ns);
            }
        }
        n += 1;
        if n & 0xffff == 0 {
            if let Some(p) = progress.as_deref_mut() {
                p.show(frames.bytes_read(), file.len(), 0x10000);
            }
        }
    }
    if let Some(p) = progress {
        p.show(file.len(), file.len(), n & 0xffff);
    }
    (Ok(()), unsupported)
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
        eprint!(
            "\r{}: {:>3}%  {:.1} M frames  {:.2} M frames/s ",
            self.label,
            done * 100 / total.max(1),
            self.frames as f64 / 1e6,
            self.frames as f64 / secs / 1e6
        );
    }
}
