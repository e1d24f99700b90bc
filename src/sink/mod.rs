//! Where records go: JSON lines to stdout or a file. A write failure (closed pipe, full disk)
//! is reported once with the destination named; the caller decides to stop.
//!
//! [`Sink`] is the interface of every other destination (files with rotation, HTTP collectors,
//! ClickHouse, the Prometheus endpoint): records are serialised once, as [`Record`]s, and each
//! sink gets them on a thread of its own, so a slow or failing sink never holds up analysis.

pub mod prometheus;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use serde::Serialize;

/// Which record a [`Record`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Interval,
    Flow,
}

/// One record as it leaves the process: its kind and its JSON text (one line, no newline),
/// shared by every sink it goes to.
#[derive(Clone, Debug)]
pub struct Record {
    pub kind: Kind,
    pub json: Arc<str>,
}

/// A destination for records. It runs on a thread of its own, so it may block and fail.
pub trait Sink: Send {
    /// For messages and for the per-sink counts in interval records: `file:/var/log/x.jsonl`,
    /// `http://127.0.0.1:8123`, `prometheus:127.0.0.1:9187`.
    fn name(&self) -> String;

    /// Delivers `records`, in order. An error means none of them is known to have arrived:
    /// the caller retries the batch with backoff, then drops and counts it.
    fn deliver(&mut self, records: &[Record]) -> io::Result<()>;

    /// Reopens what can be reopened (files after logrotate moved them: SIGHUP).
    fn reopen(&mut self) -> io::Result<()> {
        Ok(())
    }
}

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

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn annotate(e: io::Error, path: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{path}: {e}"))
}
