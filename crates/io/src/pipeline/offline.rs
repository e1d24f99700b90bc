//! The file reader: a capture file's frames into one producer's [`Ingest`].

use crate::capture::{CaptureError, CaptureFile, CaptureInput, CaptureStream};
use crate::dispatch::ingest::Ingest;

/// Frames between two progress reports.
pub const PROGRESS_EVERY: u64 = 0x10000;

/// How reading one file ended.
#[derive(Debug, Default)]
pub struct FileOutcome {
    /// The file was cut or damaged here; the frames before were analysed.
    pub error: Option<CaptureError>,
    /// A link type tcpulse cannot decode: its frames were counted as `unsupported_link_type`.
    pub unsupported_link: Option<u32>,
}

/// Feeds every frame of `input` to `ingest`; `progress` as for [`feed_file`], with the bytes
/// read so far as the total of a stream.
pub fn feed_input(
    input: &mut CaptureInput,
    ingest: &mut Ingest,
    progress: &mut dyn FnMut(u64, u64),
) -> FileOutcome {
    match input {
        CaptureInput::Mapped(file) => feed_file(file, ingest, progress),
        CaptureInput::Stream(stream) => feed_stream(stream, ingest, progress),
    }
}

/// Feeds every frame of a stream to `ingest`.
pub fn feed_stream(
    stream: &mut CaptureStream,
    ingest: &mut Ingest,
    progress: &mut dyn FnMut(u64, u64),
) -> FileOutcome {
    let mut outcome = FileOutcome::default();
    let mut n: u64 = 0;
    while let Some(frame) = stream.next() {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                outcome.error = Some(e);
                break;
            }
        };
        if let Some(link) = ingest.frame(&frame) {
            outcome.unsupported_link = Some(link);
        }
        n += 1;
        if n % PROGRESS_EVERY == 0 {
            progress(stream.bytes_read(), PROGRESS_EVERY);
        }
    }
    progress(stream.bytes_read(), n % PROGRESS_EVERY);
    outcome
}

/// Feeds every frame of `file` to `ingest`. `progress(bytes_read, frames)` is told every
/// [`PROGRESS_EVERY`] frames and at the end, with the frames since its last call.
pub fn feed_file(
    file: &CaptureFile,
    ingest: &mut Ingest,
    progress: &mut dyn FnMut(u64, u64),
) -> FileOutcome {
    let mut frames = file.frames();
    let mut outcome = FileOutcome::default();
    let mut n: u64 = 0;
    while let Some(frame) = frames.next() {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                outcome.error = Some(e);
                return outcome;
            }
        };
        if let Some(link) = ingest.frame(&frame) {
            outcome.unsupported_link = Some(link);
        }
        n += 1;
        if n % PROGRESS_EVERY == 0 {
            progress(frames.bytes_read(), PROGRESS_EVERY);
        }
    }
    progress(file.len(), n % PROGRESS_EVERY);
    outcome
}
