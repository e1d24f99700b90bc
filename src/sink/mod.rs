//! Where records go: JSON lines to stdout or a file. A write failure (closed pipe, full disk)
//! is reported once with the destination named; the caller decides to stop.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use serde::Serialize;

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
