//! Where records go. The merger serialises each record once, as an [`Outgoing`]; a [`SinkSet`]
//! hands it to every configured [`Sink`] through a bounded queue per sink, and each sink
//! delivers on a thread of its own, in batches, with bounded retries (`set.rs`, `lane.rs`). A
//! full queue or a failed batch is dropped and counted (`account.rs`), never waited for, so a
//! slow or failing sink never holds up analysis. The counts travel in the interval records
//! (`"sinks"`, docs/schema.md).
//!
//! Sinks: `file.rs` (JSON lines, rotation, reopen on SIGHUP), `stdout.rs`, `http.rs` (NDJSON
//! POST), `clickhouse.rs` (rows derived from interval records); `spec.rs` reads `--sink SPEC`
//! and `[[sink]]` tables and builds them. [`JsonLines`] is the synchronous, lossless writer of
//! `analyze`'s main outputs (a failure ends the run with exit code 5).

pub mod account;
pub mod clickhouse;
pub mod file;
pub mod http;
pub mod lane;
pub mod set;
pub mod spec;
mod stdout;
mod time;

pub mod prometheus;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use serde::Serialize;
use tcpulse_core::schema::{IntervalRecord, Record};

pub use file::FileSink;
pub use set::SinkSet;
pub use spec::{SinkKind, SinkSpec};
pub use stdout::StdoutSink;

/// One record as it leaves the process: the typed record and its JSON line (one line, no
/// newline), both shared by every sink it goes to. An interval record a sink gets carries that
/// sink's own `sinks` part in both.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub record: Arc<Record>,
    pub json: Arc<str>,
}

impl Outgoing {
    /// Serialises `record` once.
    pub fn new(record: Record) -> Outgoing {
        // Records hold plain numbers, strings and lists: serialising them cannot fail.
        let json = serde_json::to_string(&record).unwrap_or_default();
        Outgoing {
            record: Arc::new(record),
            json: Arc::from(json),
        }
    }

    /// The interval record, if that is what this is.
    pub fn interval(&self) -> Option<&IntervalRecord> {
        match &*self.record {
            Record::Interval(r) => Some(r),
            Record::Flow(_) => None,
        }
    }
}

/// A destination for records. It runs on a thread of its own, so it may block and fail.
pub trait Sink: Send {
    /// For messages and for the per-sink counts in interval records: `file:intervals.jsonl`,
    /// `http://127.0.0.1:8123`, `prometheus:127.0.0.1:9187`.
    fn name(&self) -> String;

    /// Delivers `records`, in order. An error means none of them is known to have arrived:
    /// the caller retries the batch with backoff, then drops and counts it.
    fn deliver(&mut self, records: &[Outgoing]) -> io::Result<()>;

    /// Reopens what can be reopened (files after logrotate moved them: SIGHUP).
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// True once the destination can never take records again (standard output closed by its
    /// reader): retries stop, and `run` ends when every sink is closed.
    fn closed(&self) -> bool {
        false
    }
}

/// Asks every sink to reopen, as SIGHUP does.
pub fn request_reopen() {
    crate::sys::hang_up();
}

/// Each sink thread reopens its sink when it sees a SIGHUP count it has not applied yet.
pub(crate) fn reopen_generation() -> u64 {
    crate::sys::hangups()
}

/// The synchronous writer of `analyze`'s `--output` and `--flows`.
pub struct JsonLines {
    name: String,
    out: BufWriter<Box<dyn Write + Send>>,
}

impl JsonLines {
    /// `-` is standard output; anything else a file, created or truncated.
    pub fn open(path: &str) -> io::Result<JsonLines> {
        let out: Box<dyn Write + Send> = if path == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(File::create(path).map_err(|e| annotate(e, path))?)
        };
        Ok(JsonLines {
            name: path.to_string(),
            out: BufWriter::with_capacity(1 << 16, out),
        })
    }

    pub fn name(&self) -> &str {
        if self.name == "-" {
            "standard output"
        } else {
            &self.name
        }
    }

    pub fn write<T: Serialize>(&mut self, record: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, record).map_err(io::Error::from)?;
        self.out.write_all(b"\n")
    }

    /// Writes one already serialised record and its newline.
    pub fn write_line(&mut self, json: &str) -> io::Result<()> {
        self.out.write_all(json.as_bytes())?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn annotate(e: io::Error, path: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{path}: {e}"))
}
