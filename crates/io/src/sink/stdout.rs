//! JSON lines to standard output. A closed pipe (its reader exited) is permanent: the sink
//! says so, and its records are dropped without retries from then on.

use std::io::{self, Write};

use super::{Outgoing, Sink};

#[derive(Default)]
pub struct StdoutSink {
    buf: Vec<u8>,
    closed: bool,
}

impl Sink for StdoutSink {
    fn name(&self) -> String {
        "stdout".into()
    }

    fn deliver(&mut self, records: &[Outgoing]) -> io::Result<()> {
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "standard output is closed",
            ));
        }
        self.buf.clear();
        for r in records {
            self.buf.extend_from_slice(r.json.as_bytes());
            self.buf.push(b'\n');
        }
        let mut out = io::stdout().lock();
        let written = out.write_all(&self.buf).and_then(|()| out.flush());
        if let Err(e) = &written {
            self.closed = e.kind() == io::ErrorKind::BrokenPipe;
        }
        written
    }

    fn closed(&self) -> bool {
        self.closed
    }
}
