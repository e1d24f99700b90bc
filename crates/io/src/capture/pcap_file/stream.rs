//! Reading pcap and pcapng from a stream: standard input, pipes, and gzip- or zstd-compressed
//! files and streams (detected from the magic number, never from the name).
//!
//! The records are parsed by the same functions as a mapped file's, over a buffer refilled in
//! large reads: before each record the reader makes sure the whole record (pcap) or block
//! (pcapng) is loaded, so a record is only ever "truncated" at the real end of the stream.
//! Frames borrow the buffer until the next call.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::pcapng::{ng_block_len, ng_step, NgState, NgStep};
use super::{
    block, detect, magic, pcap_record, size, step_outcome, CaptureError, FileFormat, Order,
    MAX_FRAME_LEN,
};
use crate::capture::Frame;

/// Bytes asked for in one read; the buffer grows beyond it only for a larger block.
const READ_SIZE: usize = 1 << 20;

/// A pcapng block longer than this is not waited for: the parser reports it as cut or corrupt
/// instead of the reader buffering an absurd length.
const MAX_BLOCK_LEN: usize = 64 << 20;

/// Compression of a stream, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression whose magic number `head` starts with.
    pub fn of(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// A capture read from a stream, decompressed on the way if it is compressed.
pub struct CaptureStream {
    source: Box<dyn Read + Send>,
    /// What error messages call the stream.
    name: PathBuf,
    buf: Vec<u8>,
    /// Next unread byte, and the end of what was read, in `buf`.
    pos: usize,
    filled: usize,
    /// Stream offset of `buf[0]` (for error offsets and progress).
    base: u64,
    eof: bool,
    done: bool,
    kind: StreamKind,
}

enum StreamKind {
    Pcap {
        order: Order,
        frac_to_ns: u64,
        link_type: u32,
    },
    PcapNg(NgState),
}

impl CaptureStream {
    /// Starts reading `source` (called `name` in messages): detects compression, then the
    /// capture format from the decompressed header.
    ///
    /// # Errors
    /// As [`super::CaptureFile::open`]: an unreadable, empty, cut or foreign header; a
    /// corrupt compressed stream as [`CaptureError::Io`].
    pub fn new(
        source: impl Read + Send + 'static,
        name: impl Into<PathBuf>,
    ) -> Result<CaptureStream, CaptureError> {
        let name = name.into();
        let mut raw: Box<dyn Read + Send> = Box::new(source);
        let head = peek(&mut raw, 4).map_err(|e| io_error(&name, e))?;
        let compression = Compression::of(&head);
        let chained: Box<dyn Read + Send> = Box::new(io::Cursor::new(head).chain(raw));
        let source: Box<dyn Read + Send> = match compression {
            Compression::None => chained,
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(chained)),
            Compression::Zstd => {
                Box::new(zstd::stream::read::Decoder::new(chained).map_err(|e| io_error(&name, e))?)
            }
        };
        let mut stream = CaptureStream {
            source,
            name,
            buf: vec![0; READ_SIZE],
            pos: 0,
            filled: 0,
            base: 0,
            eof: false,
            done: false,
            kind: StreamKind::Pcap {
                order: Order::LITTLE,
                frac_to_ns: 1,
                link_type: 0,
            },
        };
        // The file header (pcap) or the first section header (pcapng), whole.
        stream.fill(size::PCAP_FILE_HEADER)?;
        let is_ng = stream.buf[..stream.filled].starts_with(&magic::PCAPNG_SHB.to_le_bytes());
        if let (true, Some(len)) = (is_ng, ng_block_len(stream.unread(), Order::LITTLE)) {
            if len <= MAX_BLOCK_LEN {
                stream.fill(len)?;
            }
        }
        let (format, link_type) = detect(stream.unread())?;
        stream.kind = match format {
            FileFormat::Pcap { nanos, swapped } => {
                stream.pos = size::PCAP_FILE_HEADER;
                StreamKind::Pcap {
                    order: Order { big: swapped },
                    frac_to_ns: if nanos { 1 } else { 1_000 },
                    link_type,
                }
            }
            // The section header is parsed again as the first block, as a mapped file's is.
            FileFormat::PcapNg => StreamKind::PcapNg(NgState {
                order: Order::LITTLE,
                ifaces: Vec::new(),
                last_ts_ns: 0,
            }),
        };
        Ok(stream)
    }

    /// Bytes of the (decompressed) capture read so far.
    pub fn bytes_read(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// What was read and not yet parsed.
    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    /// The next frame; `None` at the end of the stream or after an error (returned once).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<Frame<'_>, CaptureError>> {
        if self.done {
            return None;
        }
        // Blocks without a packet are read here; the loop ends at a packet record.
        loop {
            if let Err(e) = self.load_record() {
                self.done = true;
                return Some(Err(e));
            }
            let StreamKind::PcapNg(st) = &mut self.kind else {
                break;
            };
            let rest = &self.buf[self.pos..self.filled];
            let block_type = rest.get(..4).map(|t| st.order.u32_at(t, 0));
            if block_type.is_none() || is_packet_block(block_type.unwrap_or(0)) {
                break;
            }
            let mut pos = self.pos;
            match ng_step(&self.buf[..self.filled], &mut pos, st) {
                Ok(NgStep::End) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => self.pos = pos,
                Err(e) => {
                    self.done = true;
                    return Some(Err(rebase(e, self.base)));
                }
            }
        }
        let buf = &self.buf[..self.filled];
        let mut pos = self.pos;
        let step = match &mut self.kind {
            StreamKind::Pcap {
                order,
                frac_to_ns,
                link_type,
            } => pcap_record(buf, &mut pos, *order, *frac_to_ns, *link_type),
            StreamKind::PcapNg(st) => ng_step(buf, &mut pos, st).map(|s| match s {
                NgStep::Frame(f) => Some(f),
                _ => None,
            }),
        };
        self.pos = pos;
        let base = self.base;
        step_outcome(step.map_err(|e| rebase(e, base)), &mut self.done)
    }

    /// Makes sure the next record or block is in the buffer whole, unless the stream ends first
    /// (the parser then reports the cut).
    fn load_record(&mut self) -> Result<(), CaptureError> {
        loop {
            let rest = self.unread();
            let need = match &self.kind {
                StreamKind::Pcap { order, .. } => match rest.get(8..12) {
                    Some(len) if order.u32_at(len, 0) <= MAX_FRAME_LEN => {
                        size::PCAP_RECORD_HEADER + order.u32_at(len, 0) as usize
                    }
                    _ => size::PCAP_RECORD_HEADER,
                },
                StreamKind::PcapNg(st) => match ng_block_len(rest, st.order) {
                    Some(len) if (size::BLOCK_MIN..=MAX_BLOCK_LEN).contains(&len) => len,
                    _ => size::BLOCK_MIN,
                },
            };
            if rest.len() >= need || self.eof {
                return Ok(());
            }
            self.fill(need)?;
        }
    }

    /// Reads until `need` unread bytes are buffered or the source ends.
    fn fill(&mut self, need: usize) -> Result<(), CaptureError> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.base += self.pos as u64;
            self.filled -= self.pos;
            self.pos = 0;
        }
        if need > self.buf.len() {
            self.buf.resize(need, 0);
        }
        while self.filled < need && !self.eof {
            match self.source.read(&mut self.buf[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(&self.name, e)),
            }
        }
        Ok(())
    }
}

fn is_packet_block(block_type: u32) -> bool {
    matches!(block_type, block::EPB | block::PB | block::SPB)
}

fn io_error(name: &Path, source: io::Error) -> CaptureError {
    CaptureError::Io {
        path: name.to_path_buf(),
        source,
    }
}

/// An input of `analyze`, opened the fastest way it allows.
pub enum CaptureInput {
    /// An uncompressed regular file, mapped: zero copy.
    Mapped(super::CaptureFile),
    /// Standard input (`-`), a pipe or device, or a compressed file: read as a stream.
    Stream(CaptureStream),
}

impl CaptureInput {
    /// Opens `path`; `-` is standard input.
    ///
    /// # Errors
    /// As [`super::CaptureFile::open`] and [`CaptureStream::new`].
    pub fn open(path: &Path) -> Result<CaptureInput, CaptureError> {
        if path.as_os_str() == "-" {
            return CaptureStream::new(io::stdin(), "standard input").map(CaptureInput::Stream);
        }
        let mut file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
        let meta = file.metadata().map_err(|e| io_error(path, e))?;
        if meta.is_file() {
            let mut head = [0u8; 4];
            let n = peek_into(&mut file, &mut head).map_err(|e| io_error(path, e))?;
            if Compression::of(&head[..n]) == Compression::None {
                return super::CaptureFile::open(path).map(CaptureInput::Mapped);
            }
            io::Seek::rewind(&mut file).map_err(|e| io_error(path, e))?;
        }
        CaptureStream::new(file, path).map(CaptureInput::Stream)
    }
}

fn peek_into(r: &mut dyn Read, head: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads `n` bytes from `r` (fewer only at its end).
fn peek(r: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = vec![0; n];
    let got = peek_into(r, &mut head)?;
    head.truncate(got);
    Ok(head)
}

/// An error's offset within the stream rather than the buffer.
fn rebase(e: CaptureError, base: u64) -> CaptureError {
    match e {
        CaptureError::Truncated {
            offset,
            what,
            needed,
            available,
        } => CaptureError::Truncated {
            offset: offset + base,
            what,
            needed,
            available,
        },
        CaptureError::Corrupt { offset, reason } => CaptureError::Corrupt {
            offset: offset + base,
            reason,
        },
        other => other,
    }
}
