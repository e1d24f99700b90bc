//! Reading pcap and pcapng capture files, zero copy.
//!
//! [`CaptureFile::open`] maps the file and detects its format from the magic number, never from
//! the name (a `.pcap` may hold pcapng). [`CaptureFile::frames`] walks the records; every
//! [`Frame`] borrows its bytes from the mapping, so iteration allocates nothing per frame (pcapng
//! keeps one small entry per interface description, reset at each section).
//!
//! Contract: no input makes this module panic. Every multi-byte field is read through
//! [`Order`] helpers that take a fixed-size chunk with `get`, after the length check of the
//! enclosing record or block; the helpers would yield 0 past the end rather than panic, but the
//! checks mean they never do. A record that does not fit in the file ends iteration with
//! [`CaptureError::Truncated`], an inconsistent one with [`CaptureError::Corrupt`]; frames read
//! before the error stay valid, and the iterator returns `None` afterwards.
//!
//! Timestamps are nanoseconds since the Unix epoch, truncated (never rounded) from the file's
//! resolution, and saturate at the ends of `u64` for absurd values instead of wrapping. The pcap
//! header's `thiszone` field is ignored, as libpcap does.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::iter::FusedIterator;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

mod pcapng;
mod stream;

pub use stream::{CaptureInput, CaptureStream, Compression};

use super::Frame;
use pcapng::{check_shb, ng_block, ng_next, NgState};

/// Largest captured length accepted for one frame. Real snaplens stop at 262144; anything above
/// is a corrupt length field, and rejecting it keeps downstream buffers bounded.
pub const MAX_FRAME_LEN: u32 = 256 * 1024;

/// Magic numbers, as read little-endian from the first four bytes of a file.
pub(crate) mod magic {
    /// Classic pcap, microsecond timestamps.
    pub const PCAP_MICROS: u32 = 0xa1b2_c3d4;
    /// Classic pcap, nanosecond timestamps.
    pub const PCAP_NANOS: u32 = 0xa1b2_3c4d;
    /// pcapng Section Header Block type; the same in both byte orders.
    pub const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
    /// pcapng byte-order magic, inside the Section Header Block.
    pub const PCAPNG_BYTE_ORDER: u32 = 0x1a2b_3c4d;
}

/// pcapng block types tcpulse interprets; all others are skipped by their length.
mod block {
    pub const SHB: u32 = super::magic::PCAPNG_SHB;
    pub const IDB: u32 = 1;
    /// Obsolete Packet Block, still written by old tools.
    pub const PB: u32 = 2;
    pub const SPB: u32 = 3;
    pub const EPB: u32 = 6;
}

/// Interface Description Block option codes.
mod opt {
    pub const END: u16 = 0;
    pub const IF_TSRESOL: u16 = 9;
    pub const IF_TSOFFSET: u16 = 14;
}

/// Fixed sizes of headers and minimum block lengths (pcapng lengths include the 12 bytes of
/// type, leading and trailing length).
mod size {
    pub const PCAP_FILE_HEADER: usize = 24;
    pub const PCAP_RECORD_HEADER: usize = 16;
    pub const BLOCK_MIN: usize = 12;
    pub const SHB_MIN: usize = 28;
    pub const IDB_MIN: usize = 20;
    pub const EPB_MIN: usize = 32;
    pub const PB_MIN: usize = 32;
    pub const SPB_MIN: usize = 16;
    /// Offset of packet data in EPB and PB.
    pub const TIMED_DATA: usize = 28;
    /// Offset of packet data in SPB.
    pub const SPB_DATA: usize = 12;
}

/// Why a capture file cannot be opened or read further. Plain data, so callers can count or
/// match; [`fmt::Display`] gives the operator-facing message.
#[derive(Debug)]
pub enum CaptureError {
    /// The file could not be opened, inspected or mapped.
    Io { path: PathBuf, source: io::Error },
    /// The file has no bytes at all.
    Empty,
    /// The first four bytes are no pcap or pcapng magic. `magic` holds them big-endian, so its
    /// hex reads in file order.
    NotACapture { magic: u32 },
    /// The file ends inside the header, record or block starting at `offset`: `needed` bytes
    /// were required from there, only `available` remain.
    Truncated {
        offset: u64,
        what: &'static str,
        needed: u64,
        available: u64,
    },
    /// The record or block at `offset` is inconsistent.
    Corrupt { offset: u64, reason: &'static str },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            CaptureError::Empty => f.write_str("capture file is empty"),
            CaptureError::NotACapture { magic } => {
                write!(f, "not a pcap or pcapng file (first bytes {magic:08x})")?;
                // The usual mistake is handing over a compressed capture.
                if magic >> 16 == 0x1f8b {
                    f.write_str("; it looks gzip-compressed, decompress it first")?;
                } else if *magic == 0x28b5_2ffd {
                    f.write_str("; it looks zstd-compressed, decompress it first")?;
                }
                Ok(())
            }
            CaptureError::Truncated {
                offset,
                what,
                needed,
                available,
            } => write!(
                f,
                "capture truncated: the {what} at byte offset {offset} needs {needed} bytes, \
                 only {available} remain"
            ),
            CaptureError::Corrupt { offset, reason } => {
                write!(f, "corrupt capture at byte offset {offset}: {reason}")
            }
        }
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaptureError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The container format, as detected from the magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileFormat {
    /// Classic pcap. `nanos`: timestamps are in ns, else µs. `swapped`: fields are big-endian
    /// (written on a big-endian host), the reverse of the little-endian order we run on.
    Pcap { nanos: bool, swapped: bool },
    /// pcapng; byte order and timestamp resolution are per section and per interface.
    PcapNg,
}

/// A capture file mapped into memory, its format known.
pub struct CaptureFile {
    bytes: Storage,
    format: FileFormat,
    /// Link type from the classic pcap header; pcapng carries one per interface instead.
    pcap_link_type: u32,
}

/// Where the bytes live: a mapping for regular files, a buffer for pipes and tests.
enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl CaptureFile {
    /// Opens and memory-maps the file (non-regular files such as pipes are read into memory) and
    /// detects the format from its magic number.
    ///
    /// # Errors
    /// [`CaptureError::Io`] if the file cannot be opened or mapped, [`CaptureError::Empty`],
    /// [`CaptureError::NotACapture`] naming the magic seen, [`CaptureError::Truncated`] if the
    /// file header (pcap) or first section header (pcapng) is cut, [`CaptureError::Corrupt`] if
    /// that section header is invalid.
    pub fn open(path: &Path) -> Result<CaptureFile, CaptureError> {
        let io_err = |source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        let bytes = if meta.is_file() {
            if meta.len() == 0 {
                // Mapping zero bytes fails on some systems; say what is actually wrong.
                return Err(CaptureError::Empty);
            }
            // SAFETY: the mapping is only read. If another process truncates the file while it
            // is mapped, reads past the new end fault (SIGBUS); that is the accepted price of
            // zero-copy reading, shared by every mmap-based capture reader.
            let map = unsafe { Mmap::map(&file) }.map_err(io_err)?;
            #[cfg(unix)]
            {
                // Only a hint for read-ahead; failure changes nothing but speed.
                let _ = map.advise(memmap2::Advice::Sequential);
            }
            Storage::Mapped(map)
        } else {
            let mut buf = Vec::new();
            file.read_to_end(&mut buf).map_err(io_err)?;
            Storage::Owned(buf)
        };
        Self::from_storage(bytes)
    }

    /// Reads a capture held in memory (tests, captures received over the network).
    ///
    /// # Errors
    /// As [`CaptureFile::open`], without `Io`.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<CaptureFile, CaptureError> {
        Self::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(bytes: Storage) -> Result<CaptureFile, CaptureError> {
        let (format, pcap_link_type) = detect(bytes.as_slice())?;
        Ok(CaptureFile {
            bytes,
            format,
            pcap_link_type,
        })
    }

    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// File size in bytes, to turn [`Frames::bytes_read`] into progress.
    pub fn len(&self) -> u64 {
        self.bytes.as_slice().len() as u64
    }

    /// Always false for an opened file (empty files are refused); here for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.bytes.as_slice().is_empty()
    }

    /// The whole file.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Iterates the frames from the start. Each call starts a fresh pass.
    pub fn frames(&self) -> Frames<'_> {
        let buf = self.bytes.as_slice();
        let (pos, kind) = match self.format {
            FileFormat::Pcap { nanos, swapped } => (
                size::PCAP_FILE_HEADER,
                Kind::Pcap {
                    order: Order { big: swapped },
                    frac_to_ns: if nanos { 1 } else { 1_000 },
                    link_type: self.pcap_link_type,
                },
            ),
            // The first section header is parsed again by the iterator, like any later one.
            FileFormat::PcapNg => (
                0,
                Kind::PcapNg(NgState {
                    order: Order::LITTLE,
                    ifaces: Vec::new(),
                    last_ts_ns: 0,
                }),
            ),
        };
        Frames {
            buf,
            pos,
            done: false,
            kind,
        }
    }
}

impl fmt::Debug for CaptureFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureFile")
            .field("format", &self.format)
            .field("len", &self.len())
            .finish()
    }
}

impl Storage {
    fn as_slice(&self) -> &[u8] {
        match self {
            Storage::Mapped(map) => map,
            Storage::Owned(buf) => buf,
        }
    }
}

/// Detects the format and checks the file header (pcap) or first section header (pcapng).
/// Returns the classic pcap link type (0 for pcapng).
fn detect(bytes: &[u8]) -> Result<(FileFormat, u32), CaptureError> {
    if bytes.is_empty() {
        return Err(CaptureError::Empty);
    }
    let Some(first) = bytes.first_chunk::<4>() else {
        return Err(truncated(0, "file header", 4, bytes.len()));
    };
    let pcap = |nanos, swapped| FileFormat::Pcap { nanos, swapped };
    let format = match u32::from_le_bytes(*first) {
        magic::PCAP_MICROS => pcap(false, false),
        magic::PCAP_NANOS => pcap(true, false),
        m if m == magic::PCAP_MICROS.swap_bytes() => pcap(false, true),
        m if m == magic::PCAP_NANOS.swap_bytes() => pcap(true, true),
        magic::PCAPNG_SHB => FileFormat::PcapNg,
        _ => {
            return Err(CaptureError::NotACapture {
                magic: u32::from_be_bytes(*first),
            })
        }
    };
    match format {
        FileFormat::Pcap { swapped, .. } => {
            if bytes.len() < size::PCAP_FILE_HEADER {
                return Err(truncated(
                    0,
                    "pcap file header",
                    size::PCAP_FILE_HEADER,
                    bytes.len(),
                ));
            }
            // The top bits of the link-type field carry FCS information, not the link type.
            let link_type = Order { big: swapped }.u32_at(bytes, 20) & 0xffff;
            Ok((format, link_type))
        }
        FileFormat::PcapNg => {
            let mut order = Order::LITTLE;
            let shb = ng_block(bytes, 0, &mut order)?;
            check_shb(shb, order, 0)?;
            Ok((format, 0))
        }
    }
}

fn truncated(offset: usize, what: &'static str, needed: usize, available: usize) -> CaptureError {
    CaptureError::Truncated {
        offset: offset as u64,
        what,
        needed: needed as u64,
        available: available as u64,
    }
}

fn corrupt(offset: usize, reason: &'static str) -> CaptureError {
    CaptureError::Corrupt {
        offset: offset as u64,
        reason,
    }
}

/// Byte order of the fields being read.
#[derive(Clone, Copy, Debug)]
struct Order {
    big: bool,
}

impl Order {
    const LITTLE: Order = Order { big: false };
    const BIG: Order = Order { big: true };

    /// Takes `N` bytes at `at`. Callers read inside a length they have checked, so the zero
    /// fallback is never produced; it only keeps a wrong check from becoming a panic.
    #[inline]
    fn chunk<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
        match b.get(at..).and_then(<[u8]>::first_chunk::<N>) {
            Some(c) => *c,
            None => [0; N],
        }
    }

    #[inline]
    fn u16_at(self, b: &[u8], at: usize) -> u16 {
        let c = Self::chunk(b, at);
        if self.big {
            u16::from_be_bytes(c)
        } else {
            u16::from_le_bytes(c)
        }
    }

    #[inline]
    fn u32_at(self, b: &[u8], at: usize) -> u32 {
        let c = Self::chunk(b, at);
        if self.big {
            u32::from_be_bytes(c)
        } else {
            u32::from_le_bytes(c)
        }
    }

    #[inline]
    fn u64_at(self, b: &[u8], at: usize) -> u64 {
        let c = Self::chunk(b, at);
        if self.big {
            u64::from_be_bytes(c)
        } else {
            u64::from_le_bytes(c)
        }
    }
}

/// Iterator over the frames of a [`CaptureFile`]. After an `Err` it returns `None`.
pub struct Frames<'a> {
    buf: &'a [u8],
    /// Offset of the next record or block; also the progress reported by `bytes_read`.
    pos: usize,
    done: bool,
    kind: Kind,
}

enum Kind {
    Pcap {
        order: Order,
        /// 1 for ns files, 1000 for µs files.
        frac_to_ns: u64,
        link_type: u32,
    },
    PcapNg(NgState),
}

impl<'a> Frames<'a> {
    /// Byte offset reached so far: the start of the next record, or of the one that failed.
    pub fn bytes_read(&self) -> u64 {
        self.pos as u64
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, CaptureError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        prefetch_ahead(self.buf, self.pos);
        let step = match &mut self.kind {
            Kind::Pcap {
                order,
                frac_to_ns,
                link_type,
            } => pcap_record(self.buf, &mut self.pos, *order, *frac_to_ns, *link_type),
            Kind::PcapNg(state) => ng_next(self.buf, &mut self.pos, state),
        };
        step_outcome(step, &mut self.done)
    }
}

impl FusedIterator for Frames<'_> {}

/// What a reader hands on after one step: the frame, or the end or the error once (`done` then
/// stops it), for the mapped and the streaming reader alike.
#[inline(always)]
fn step_outcome<'a>(
    step: Result<Option<Frame<'a>>, CaptureError>,
    done: &mut bool,
) -> Option<Result<Frame<'a>, CaptureError>> {
    match step {
        Ok(Some(frame)) => Some(Ok(frame)),
        Ok(None) => {
            *done = true;
            None
        }
        Err(e) => {
            *done = true;
            Some(Err(e))
        }
    }
}

/// Records are read strictly in order, but each one's length is only known once its header is
/// read, and the hardware prefetcher stops at page boundaries: ask for the bytes a few records
/// ahead now so they are in cache when their turn comes.
#[inline(always)]
fn prefetch_ahead(buf: &[u8], pos: usize) {
    const AHEAD: usize = 4096;
    #[cfg(target_arch = "x86_64")]
    if let Some(byte) = buf.get(pos + AHEAD) {
        // SAFETY: the pointer comes from a live reference into `buf`; a prefetch only hints
        // the cache and never faults, reads or writes memory visible to the program.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                (byte as *const u8).cast::<i8>(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (buf, pos);
}

/// Reads the classic pcap record at `*pos`; `Ok(None)` at a clean end of file.
#[inline]
fn pcap_record<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    order: Order,
    frac_to_ns: u64,
    link_type: u32,
) -> Result<Option<Frame<'a>>, CaptureError> {
    let start = *pos;
    let rest = buf.get(start..).unwrap_or_default();
    if rest.is_empty() {
        return Ok(None);
    }
    let Some(hdr) = rest.first_chunk::<{ size::PCAP_RECORD_HEADER }>() else {
        return Err(truncated(
            start,
            "record header",
            size::PCAP_RECORD_HEADER,
            rest.len(),
        ));
    };
    let ts_sec = order.u32_at(hdr, 0);
    let ts_frac = order.u32_at(hdr, 4);
    let incl_len = order.u32_at(hdr, 8);
    let wire_len = order.u32_at(hdr, 12);
    // incl_len above the header's snaplen is tolerated (some writers do it); only an absurd
    // value is treated as corruption.
    if incl_len > MAX_FRAME_LEN {
        return Err(corrupt(start, "captured length above 256 KiB"));
    }
    let end = size::PCAP_RECORD_HEADER + incl_len as usize;
    let Some(data) = rest.get(size::PCAP_RECORD_HEADER..end) else {
        return Err(truncated(start, "record", end, rest.len()));
    };
    *pos = start + end;
    // Cannot overflow: (2^32-1) * 10^9 + (2^32-1) * 1000 < 2^64.
    let ts_ns = u64::from(ts_sec) * 1_000_000_000 + u64::from(ts_frac) * frac_to_ns;
    Ok(Some(Frame {
        ts_ns,
        link_type,
        data,
        wire_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::pcapng::TsScale;
    use super::*;
    use crate::capture::pcap_writer::{PcapNgWriter, PcapWriter};

    const ETHERNET: u32 = 1;

    /// Builds classic pcap bytes in either byte order; records are (sec, frac, data, wire_len).
    fn pcap_bytes(
        big: bool,
        nanos: bool,
        link_field: u32,
        records: &[(u32, u32, &[u8], u32)],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let magic = if nanos {
            magic::PCAP_NANOS
        } else {
            magic::PCAP_MICROS
        };
        put32(&mut out, magic, big);
        put16(&mut out, 2, big);
        put16(&mut out, 4, big);
        put32(&mut out, 0, big);
        put32(&mut out, 0, big);
        put32(&mut out, 65535, big);
        put32(&mut out, link_field, big);
        for &(sec, frac, data, orig) in records {
            put32(&mut out, sec, big);
            put32(&mut out, frac, big);
            put32(&mut out, data.len() as u32, big);
            put32(&mut out, orig, big);
            out.extend_from_slice(data);
        }
        out
    }

    fn put16(out: &mut Vec<u8>, v: u16, big: bool) {
        out.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }

    fn put32(out: &mut Vec<u8>, v: u32, big: bool) {
        out.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }

    fn put64(out: &mut Vec<u8>, v: u64, big: bool) {
        out.extend_from_slice(&if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }

    /// Hand-written pcapng, in either byte order, one block at a time.
    struct Ng {
        big: bool,
        out: Vec<u8>,
        /// Offset of every block written, to check error offsets.
        offsets: Vec<usize>,
    }

    impl Ng {
        fn new(big: bool) -> Ng {
            let mut ng = Ng {
                big,
                out: Vec::new(),
                offsets: Vec::new(),
            };
            ng.shb();
            ng
        }

        fn block(&mut self, block_type: u32, body: &[u8]) -> &mut Self {
            let total = 12 + body.len().next_multiple_of(4);
            self.offsets.push(self.out.len());
            put32(&mut self.out, block_type, self.big);
            put32(&mut self.out, total as u32, self.big);
            self.out.extend_from_slice(body);
            self.out.resize(
                self.out.len() + body.len().next_multiple_of(4) - body.len(),
                0,
            );
            put32(&mut self.out, total as u32, self.big);
            self
        }

        fn shb(&mut self) -> &mut Self {
            let mut body = Vec::new();
            put32(&mut body, magic::PCAPNG_BYTE_ORDER, self.big);
            put16(&mut body, 1, self.big);
            put16(&mut body, 0, self.big);
            put64(&mut body, u64::MAX, self.big); // section length unknown
            self.block(block::SHB, &body)
        }

        fn idb(&mut self, link: u16, snaplen: u32, opts: &[(u16, &[u8])]) -> &mut Self {
            let mut body = Vec::new();
            put16(&mut body, link, self.big);
            put16(&mut body, 0, self.big);
            put32(&mut body, snaplen, self.big);
            for &(code, value) in opts {
                put16(&mut body, code, self.big);
                put16(&mut body, value.len() as u16, self.big);
                body.extend_from_slice(value);
                body.resize(body.len().next_multiple_of(4), 0);
            }
            if !opts.is_empty() {
                put32(&mut body, 0, self.big);
            }
            self.block(block::IDB, &body)
        }

        fn epb(&mut self, iface: u32, units: u64, data: &[u8], orig: u32) -> &mut Self {
            let mut body = Vec::new();
            put32(&mut body, iface, self.big);
            put32(&mut body, (units >> 32) as u32, self.big);
            put32(&mut body, units as u32, self.big);
            put32(&mut body, data.len() as u32, self.big);
            put32(&mut body, orig, self.big);
            body.extend_from_slice(data);
            self.block(block::EPB, &body)
        }

        fn pb(&mut self, iface: u16, units: u64, data: &[u8]) -> &mut Self {
            let mut body = Vec::new();
            put16(&mut body, iface, self.big);
            put16(&mut body, 0, self.big);
            put32(&mut body, (units >> 32) as u32, self.big);
            put32(&mut body, units as u32, self.big);
            put32(&mut body, data.len() as u32, self.big);
            put32(&mut body, data.len() as u32, self.big);
            body.extend_from_slice(data);
            self.block(block::PB, &body)
        }

        fn spb(&mut self, orig: u32, data: &[u8]) -> &mut Self {
            let mut body = Vec::new();
            put32(&mut body, orig, self.big);
            body.extend_from_slice(data);
            self.block(block::SPB, &body)
        }

        fn bytes(&self) -> Vec<u8> {
            self.out.clone()
        }
    }

    /// A frame copied out for comparison: (ts_ns, link_type, data, wire_len).
    type Owned = (u64, u32, Vec<u8>, u32);

    /// Reads every frame; the error, if any, is returned beside the frames before it.
    fn read_all(bytes: &[u8]) -> (Vec<Owned>, Option<CaptureError>) {
        let file = CaptureFile::from_bytes(bytes.to_vec()).expect("header should parse");
        let mut frames = Vec::new();
        let mut it = file.frames();
        for item in it.by_ref() {
            match item {
                Ok(f) => frames.push((f.ts_ns, f.link_type, f.data.to_vec(), f.wire_len)),
                Err(e) => {
                    assert!(it.next().is_none(), "iterator must stop after an error");
                    return (frames, Some(e));
                }
            }
        }
        (frames, None)
    }

    fn corrupt_reason(err: Option<CaptureError>) -> (u64, &'static str) {
        match err {
            Some(CaptureError::Corrupt { offset, reason }) => (offset, reason),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn pcap_all_four_magics() {
        let rec: &[(u32, u32, &[u8], u32)] = &[(10, 7, b"abc", 3), (11, 999, b"", 60)];
        for big in [false, true] {
            for nanos in [false, true] {
                let bytes = pcap_bytes(big, nanos, 113, rec);
                let file = CaptureFile::from_bytes(bytes).unwrap();
                assert_eq!(
                    file.format(),
                    FileFormat::Pcap {
                        nanos,
                        swapped: big
                    }
                );
                let (frames, err) = read_all(file.as_bytes());
                assert!(err.is_none());
                let unit = if nanos { 1 } else { 1_000 };
                assert_eq!(
                    frames,
                    vec![
                        (10_000_000_000 + 7 * unit, 113, b"abc".to_vec(), 3),
                        (11_000_000_000 + 999 * unit, 113, vec![], 60),
                    ]
                );
            }
        }
    }

    #[test]
    fn pcap_link_type_fcs_bits_masked() {
        // FCS present, 4 bytes: bit 28 'F' flag plus length in the top bits.
        let bytes = pcap_bytes(
            false,
            false,
            0x1000_0000 | 0x0400_0000 | ETHERNET,
            &[(1, 0, b"x", 1)],
        );
        let (frames, _) = read_all(&bytes);
        assert_eq!(frames[0].1, ETHERNET);
    }

    #[test]
    fn pcap_incl_len_above_snaplen_is_tolerated() {
        let big = vec![0xaa; 70_000]; // snaplen in the header is 65535
        let bytes = pcap_bytes(false, false, 1, &[(1, 0, &big, 70_000)]);
        let (frames, err) = read_all(&bytes);
        assert!(err.is_none());
        assert_eq!(frames[0].2.len(), 70_000);
    }

    #[test]
    fn pcap_absurd_incl_len_is_corrupt() {
        let mut bytes = pcap_bytes(false, false, 1, &[(1, 0, b"ok", 2), (2, 0, b"zz", 2)]);
        let second = 24 + 16 + 2;
        bytes[second + 8..second + 12].copy_from_slice(&(MAX_FRAME_LEN + 1).to_le_bytes());
        let (frames, err) = read_all(&bytes);
        assert_eq!(frames.len(), 1);
        assert_eq!(corrupt_reason(err).0, second as u64);
    }

    #[test]
    fn pcap_every_truncation_length() {
        let records: &[(u32, u32, &[u8], u32)] = &[
            (1, 1, b"first", 5),
            (2, 2, b"", 0),
            (3, 3, b"third frame", 11),
        ];
        let full = pcap_bytes(false, true, 1, records);
        // Record boundaries: where a cut leaves a valid, shorter file.
        let mut bounds = vec![24];
        for r in records {
            bounds.push(bounds.last().unwrap() + 16 + r.2.len());
        }
        assert_eq!(*bounds.last().unwrap(), full.len());
        for cut in 0..full.len() {
            let part = full[..cut].to_vec();
            match CaptureFile::from_bytes(part) {
                Err(CaptureError::Empty) => assert_eq!(cut, 0),
                Err(CaptureError::Truncated { offset: 0, .. }) => assert!(cut > 0 && cut < 24),
                Err(e) => panic!("cut {cut}: unexpected {e}"),
                Ok(file) => {
                    assert!(cut >= 24);
                    let (frames, err) = read_all(file.as_bytes());
                    let whole = bounds.iter().filter(|&&b| b <= cut).count() - 1;
                    assert_eq!(frames.len(), whole, "cut {cut}");
                    for (f, r) in frames.iter().zip(records) {
                        assert_eq!(f.2, r.2);
                    }
                    if bounds.contains(&cut) {
                        assert!(err.is_none(), "cut {cut} on a boundary");
                    } else {
                        match err {
                            Some(CaptureError::Truncated { offset, .. }) => {
                                assert_eq!(offset, bounds[whole] as u64, "cut {cut}")
                            }
                            other => panic!("cut {cut}: expected Truncated, got {other:?}"),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn open_errors() {
        assert!(matches!(
            CaptureFile::from_bytes(vec![]),
            Err(CaptureError::Empty)
        ));
        let gz = vec![0x1f, 0x8b, 0x08, 0x00, 1, 2, 3];
        let err = CaptureFile::from_bytes(gz).unwrap_err();
        assert!(matches!(
            err,
            CaptureError::NotACapture { magic: 0x1f8b_0800 }
        ));
        assert!(err.to_string().contains("1f8b0800"));
        assert!(err.to_string().contains("gzip"));
        let missing = Path::new("/nonexistent/tcpulse/x.pcap");
        let err = CaptureFile::open(missing).unwrap_err();
        assert!(matches!(err, CaptureError::Io { .. }));
        assert!(err.to_string().contains("/nonexistent/tcpulse/x.pcap"));
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn open_from_disk_empty_and_valid() {
        let dir = std::env::temp_dir();
        let empty = dir.join(format!("tcpulse-capture-empty-{}.pcap", std::process::id()));
        std::fs::write(&empty, b"").unwrap();
        let res = CaptureFile::open(&empty);
        std::fs::remove_file(&empty).unwrap();
        assert!(matches!(res, Err(CaptureError::Empty)));

        // Misnamed on purpose: pcapng content behind a .pcap name.
        let path = dir.join(format!("tcpulse-capture-ng-{}.pcap", std::process::id()));
        let mut w = PcapNgWriter::new(Vec::new(), ETHERNET).unwrap();
        w.write_frame(5, b"hello").unwrap();
        std::fs::write(&path, w.into_inner()).unwrap();
        let file = CaptureFile::open(&path);
        std::fs::remove_file(&path).unwrap();
        let file = file.unwrap();
        assert_eq!(file.format(), FileFormat::PcapNg);
        let frames: Vec<_> = file.frames().collect::<Result<_, _>>().unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].data, b"hello");
        assert_eq!(frames[0].ts_ns, 5);
    }

    #[test]
    fn writer_round_trips_both_formats_and_resolutions() {
        let ts = [1_700_000_000_123_456_789u64, 1_700_000_001_000_000_001];
        let payloads: [&[u8]; 2] = [b"one", b"second frame, padded"];
        for nanos in [false, true] {
            let mut w = PcapWriter::new(Vec::new(), 113, nanos).unwrap();
            w.write_frame(ts[0], payloads[0]).unwrap();
            w.write_frame_truncated(ts[1], payloads[1], 1500).unwrap();
            let file = CaptureFile::from_bytes(w.into_inner()).unwrap();
            assert_eq!(
                file.format(),
                FileFormat::Pcap {
                    nanos,
                    swapped: false
                }
            );
            let frames: Vec<_> = file.frames().collect::<Result<_, _>>().unwrap();
            assert_eq!(frames.len(), 2);
            for (i, f) in frames.iter().enumerate() {
                let want = if nanos { ts[i] } else { ts[i] / 1_000 * 1_000 };
                assert_eq!(f.ts_ns, want);
                assert_eq!(f.data, payloads[i]);
                assert_eq!(f.link_type, 113);
            }
            assert!(!frames[0].is_truncated());
            assert!(frames[1].is_truncated());
            assert_eq!(frames[1].wire_len, 1500);
        }
        let mut w = PcapNgWriter::new(Vec::new(), ETHERNET).unwrap();
        w.write_frame(ts[0], payloads[0]).unwrap();
        w.write_frame_truncated(ts[1], payloads[1], 1500).unwrap();
        let file = CaptureFile::from_bytes(w.into_inner()).unwrap();
        assert_eq!(file.format(), FileFormat::PcapNg);
        let frames: Vec<_> = file.frames().collect::<Result<_, _>>().unwrap();
        assert_eq!(frames.len(), 2);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.ts_ns, ts[i]);
            assert_eq!(f.data, payloads[i]);
            assert_eq!(f.link_type, ETHERNET);
        }
        assert_eq!(frames[1].wire_len, 1500);
    }

    #[test]
    fn pcapng_both_byte_orders_default_resolution() {
        for big in [false, true] {
            let mut ng = Ng::new(big);
            ng.idb(1, 0, &[]).epb(0, 1_234_567, b"abcde", 5);
            let (frames, err) = read_all(&ng.bytes());
            assert!(err.is_none(), "{err:?}");
            // Default resolution is microseconds.
            assert_eq!(frames, vec![(1_234_567_000, 1, b"abcde".to_vec(), 5)]);
        }
    }

    #[test]
    fn pcapng_tsresol_powers_of_ten_and_two() {
        let units = 3u64 << 40 | 12345;
        let cases: &[(u8, u64)] = &[
            (6, units * 1_000),
            (9, units),
            (3, units * 1_000_000),
            (12, units / 1_000),
            (0, u64::MAX), // whole seconds: saturates
            (
                0x80 | 30,
                ((u128::from(units) * 1_000_000_000) >> 30) as u64,
            ),
            (
                0x80 | 10,
                ((u128::from(units) * 1_000_000_000) >> 10) as u64,
            ),
            (0x80, u64::MAX),
            (127, 0),
            (0x80 | 127, 0),
        ];
        for big in [false, true] {
            for &(resol, want) in cases {
                let mut ng = Ng::new(big);
                ng.idb(1, 0, &[(opt::IF_TSRESOL, &[resol])])
                    .epb(0, units, b"x", 1);
                let (frames, err) = read_all(&ng.bytes());
                assert!(err.is_none());
                assert_eq!(frames[0].0, want, "tsresol {resol:#x}");
            }
        }
    }

    #[test]
    fn pcapng_two_to_the_minus_k_is_exact() {
        // 2^-20 s units: 1 unit = 953.674316... ns; 2^20 units = 1 s exactly.
        assert_eq!(
            TsScale::from_tsresol(0x80 | 20).to_ns(1 << 20),
            1_000_000_000
        );
        assert_eq!(TsScale::from_tsresol(0x80 | 20).to_ns(1), 953);
        assert_eq!(
            TsScale::from_tsresol(0x80 | 20).to_ns(3 << 20 | 1),
            3_000_000_953
        );
        assert_eq!(TsScale::from_tsresol(0x80 | 10).to_ns(u64::MAX), u64::MAX);
        assert_eq!(TsScale::from_tsresol(28), TsScale::Div(10u64.pow(19)));
        assert_eq!(TsScale::from_tsresol(29), TsScale::Zero);
        assert_eq!(TsScale::from_tsresol(6).to_ns(u64::MAX), u64::MAX);
    }

    #[test]
    fn pcapng_tsoffset_applies_both_signs() {
        for (secs, want) in [(100i64, 100_000_000_001u64), (-1, 0), (0, 1)] {
            let mut ng = Ng::new(false);
            let offset = secs.to_le_bytes();
            ng.idb(
                1,
                0,
                &[(opt::IF_TSRESOL, &[9]), (opt::IF_TSOFFSET, &offset)],
            )
            .epb(0, 1, b"x", 1);
            let (frames, _) = read_all(&ng.bytes());
            // A negative offset below the epoch saturates at 0 rather than wrapping.
            assert_eq!(frames[0].0, want);
        }
    }

    #[test]
    fn pcapng_simple_and_obsolete_packet_blocks() {
        for big in [false, true] {
            // The first SPB has no earlier packet to borrow a timestamp from: 0.
            let mut ng = Ng::new(big);
            ng.idb(113, 3, &[(opt::IF_TSRESOL, &[9])])
                .spb(4, b"none")
                .pb(0, 77, b"pb-data")
                .spb(10, b"abcdefghij") // snaplen 3 cuts it
                .spb(2, b"xy");
            let (frames, err) = read_all(&ng.bytes());
            assert!(err.is_none(), "{err:?}");
            assert_eq!(
                frames,
                vec![
                    (0, 113, b"non".to_vec(), 4),
                    (77, 113, b"pb-data".to_vec(), 7),
                    (77, 113, b"abc".to_vec(), 10),
                    (77, 113, b"xy".to_vec(), 2),
                ]
            );
        }
    }

    #[test]
    fn pcapng_spb_before_interface_is_corrupt() {
        let mut ng = Ng::new(false);
        ng.spb(2, b"xy");
        let (frames, err) = read_all(&ng.bytes());
        assert!(frames.is_empty());
        assert_eq!(corrupt_reason(err).0, ng.offsets[1] as u64);
    }

    #[test]
    fn pcapng_unknown_blocks_are_skipped() {
        let mut ng = Ng::new(false);
        ng.block(4, &[0; 8]) // name resolution
            .idb(1, 0, &[(2, b"eth0"), (opt::IF_TSRESOL, &[9])])
            .block(5, &[0; 20]) // interface statistics
            .block(0x0000_0bad, b"custom!")
            .epb(0, 9, b"p", 1);
        let (frames, err) = read_all(&ng.bytes());
        assert!(err.is_none());
        assert_eq!(frames, vec![(9, 1, b"p".to_vec(), 1)]);
    }

    #[test]
    fn pcapng_sections_reset_interfaces_and_byte_order() {
        let mut first = Ng::new(false);
        first
            .idb(1, 0, &[(opt::IF_TSRESOL, &[9])])
            .idb(113, 0, &[(opt::IF_TSRESOL, &[9])])
            .epb(1, 10, b"a", 1);
        let mut second = Ng::new(true);
        second.idb(101, 0, &[]).epb(0, 20, b"b", 1);
        let mut bytes = first.bytes();
        bytes.extend(second.bytes());
        let (frames, err) = read_all(&bytes);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            frames,
            vec![(10, 113, b"a".to_vec(), 1), (20_000, 101, b"b".to_vec(), 1)]
        );

        // Interface 1 existed in the first section only.
        let mut third = Ng::new(false);
        third.epb(1, 30, b"c", 1);
        let at = bytes.len() + third.offsets[1];
        bytes.extend(third.bytes());
        let (frames, err) = read_all(&bytes);
        assert_eq!(frames.len(), 2);
        assert_eq!(
            corrupt_reason(err),
            (
                at as u64,
                "packet refers to an interface not described in this section"
            )
        );
    }

    #[test]
    fn pcapng_corrupt_block_lengths() {
        let mut ng = Ng::new(false);
        ng.idb(1, 0, &[])
            .epb(0, 1, b"good", 4)
            .epb(0, 2, b"bad!", 4);
        let good = ng.bytes();
        let at = ng.offsets[3];
        let set = |bytes: &mut Vec<u8>, pos: usize, v: u32| {
            bytes[pos..pos + 4].copy_from_slice(&v.to_le_bytes());
        };
        let total = good.len() - at;
        // (byte position to overwrite, u32 value, expected reason)
        let cases = [
            (at + 4, 8, "block length below the 12-byte minimum"),
            (at + 4, 30, "block length not a multiple of 4"),
            (
                at + total - 4,
                40,
                "trailing block length differs from the leading one",
            ),
            (at + 20, 9, "captured length runs past the end of its block"),
            (at + 20, u32::MAX, "captured length above 256 KiB"),
            (
                at + 8,
                1,
                "packet refers to an interface not described in this section",
            ),
        ];
        for (pos, value, reason) in cases {
            let mut bytes = good.clone();
            set(&mut bytes, pos, value);
            let (frames, err) = read_all(&bytes);
            assert_eq!(frames.len(), 1, "{reason}");
            assert_eq!(corrupt_reason(err), (at as u64, reason));
        }
        // A length reaching past the end of the file is a truncation.
        let mut bytes = good.clone();
        set(&mut bytes, at + 4, 0x1000);
        let (_, err) = read_all(&bytes);
        assert!(
            matches!(err, Some(CaptureError::Truncated { offset, needed: 0x1000, .. }) if offset == at as u64)
        );
    }

    #[test]
    fn pcapng_bad_section_headers() {
        let mut ng = Ng::new(false);
        ng.idb(1, 0, &[]);
        let mut bytes = ng.bytes();
        bytes[8..12].copy_from_slice(&[1, 2, 3, 4]);
        assert!(matches!(
            CaptureFile::from_bytes(bytes),
            Err(CaptureError::Corrupt { offset: 0, .. })
        ));
        let mut bytes = ng.bytes();
        bytes[12] = 2; // major version 2
        let err = CaptureFile::from_bytes(bytes).unwrap_err();
        assert!(err.to_string().contains("major version"), "{err}");
        let mut with_bad_opt = Ng::new(false);
        with_bad_opt.idb(1, 0, &[(opt::IF_TSRESOL, &[6, 6])]);
        let (_, err) = read_all(&with_bad_opt.bytes());
        assert_eq!(
            corrupt_reason(err).1,
            "if_tsresol option is not 1 byte long"
        );
    }

    #[test]
    fn pcapng_every_truncation_length() {
        for big in [false, true] {
            let mut ng = Ng::new(big);
            ng.idb(1, 0, &[(opt::IF_TSRESOL, &[9])])
                .epb(0, 1, b"first", 5)
                .block(5, &[0; 12])
                .spb(3, b"spb")
                .epb(0, 2, b"", 0)
                .pb(0, 3, b"last one");
            let full = ng.bytes();
            let shb_len = ng.offsets[1];
            let mut bounds = ng.offsets.clone();
            bounds.push(full.len());
            // Number of frames in the complete blocks that end at or before each boundary.
            let is_packet = [false, false, true, false, true, true, true];
            for cut in 0..full.len() {
                match CaptureFile::from_bytes(full[..cut].to_vec()) {
                    Err(CaptureError::Empty) => assert_eq!(cut, 0),
                    Err(CaptureError::Truncated { offset: 0, .. }) => assert!(cut < shb_len),
                    Err(e) => panic!("cut {cut}: unexpected {e}"),
                    Ok(file) => {
                        assert!(cut >= shb_len);
                        let (frames, err) = read_all(file.as_bytes());
                        let complete = bounds.iter().skip(1).filter(|&&b| b <= cut).count();
                        let want = is_packet[..complete].iter().filter(|&&p| p).count();
                        assert_eq!(frames.len(), want, "cut {cut}");
                        if bounds.contains(&cut) {
                            assert!(err.is_none(), "cut {cut}: {err:?}");
                        } else {
                            match err {
                                Some(CaptureError::Truncated { offset, .. }) => {
                                    assert_eq!(offset, bounds[complete] as u64, "cut {cut}")
                                }
                                other => panic!("cut {cut}: expected Truncated, got {other:?}"),
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn bytes_read_tracks_progress() {
        let bytes = pcap_bytes(false, false, 1, &[(1, 0, b"abcd", 4), (2, 0, b"ef", 2)]);
        let file = CaptureFile::from_bytes(bytes).unwrap();
        let mut it = file.frames();
        assert_eq!(it.bytes_read(), 24);
        let f = it.next().unwrap().unwrap();
        assert_eq!(f.data, b"abcd");
        assert_eq!(it.bytes_read(), 24 + 16 + 4);
        it.next().unwrap().unwrap();
        assert_eq!(it.bytes_read(), file.len());
        assert!(it.next().is_none());
    }

    #[test]
    fn error_messages_name_the_offset() {
        let e = CaptureError::Truncated {
            offset: 4242,
            what: "record",
            needed: 100,
            available: 10,
        };
        assert_eq!(
            e.to_string(),
            "capture truncated: the record at byte offset 4242 needs 100 bytes, only 10 remain"
        );
        let e = CaptureError::Corrupt {
            offset: 77,
            reason: "block length not a multiple of 4",
        };
        assert_eq!(
            e.to_string(),
            "corrupt capture at byte offset 77: block length not a multiple of 4"
        );
    }

    mod prop {
        use proptest::prelude::*;

        use super::*;

        fn drain(bytes: Vec<u8>) {
            if let Ok(file) = CaptureFile::from_bytes(bytes) {
                let len = file.len();
                let mut it = file.frames();
                let mut steps = 0u64;
                while let Some(item) = it.next() {
                    steps += 1;
                    // Every step consumes at least one 12-byte block or 16-byte record header.
                    assert!(steps <= len);
                    if let Ok(f) = item {
                        assert!(f.data.len() <= MAX_FRAME_LEN as usize);
                    }
                    assert!(it.bytes_read() <= len);
                }
            }
        }

        proptest! {
            #[test]
            fn random_bytes_after_a_magic_never_panic(
                which in 0usize..5,
                tail in proptest::collection::vec(any::<u8>(), 0..600),
            ) {
                let heads: [&[u8]; 5] = [
                    &[0xd4, 0xc3, 0xb2, 0xa1],
                    &[0xa1, 0xb2, 0x3c, 0x4d],
                    &[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a],
                    &[0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 28, 0x1a, 0x2b, 0x3c, 0x4d],
                    &[],
                ];
                let mut bytes = heads[which].to_vec();
                bytes.extend(tail);
                drain(bytes);
            }

            #[test]
            fn mutated_valid_files_never_panic(
                edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                cut in any::<usize>(),
                ng in any::<bool>(),
            ) {
                let mut bytes = if ng {
                    let mut b = Ng::new(false);
                    b.idb(1, 0, &[(opt::IF_TSRESOL, &[0x85])])
                        .epb(0, 5, b"abcdef", 6)
                        .spb(3, b"xyz")
                        .pb(0, 9, b"q");
                    b.bytes()
                } else {
                    pcap_bytes(true, false, 1, &[(1, 2, b"abc", 3), (4, 5, b"defgh", 9)])
                };
                for (at, v) in edits {
                    let n = bytes.len();
                    bytes[at % n] = v;
                }
                bytes.truncate(cut % (bytes.len() + 1));
                drain(bytes);
            }
        }
    }

    /// Every shared capture: frame count, format, link type, size and snaplen cuts as tshark
    /// saw them (summary.tsv), and the first timestamp exactly as tshark printed it.
    #[test]
    fn shared_captures_match_tshark_summary() {
        let dir = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/pcaps"
        ));
        let summary = std::fs::read_to_string(dir.join("summary.tsv")).expect("summary.tsv");
        let mut lines = summary.lines();
        let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (c_packets, c_format, c_link, c_bytes, c_trunc) = (
            col("packets"),
            col("file_format"),
            col("link_type"),
            col("bytes"),
            col("truncated_packets"),
        );
        let rows: std::collections::HashMap<&str, Vec<&str>> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let fields: Vec<&str> = l.split('\t').collect();
                (fields[0], fields)
            })
            .collect();

        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if !(name.ends_with(".pcap") || name.ends_with(".pcapng")) {
                continue;
            }
            let row = rows
                .get(name.as_str())
                .unwrap_or_else(|| panic!("{name} not in summary"));
            let file = CaptureFile::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(file.len(), row[c_bytes].parse::<u64>().unwrap(), "{name}");
            let want_format = match row[c_format] {
                "pcap" => FileFormat::Pcap {
                    nanos: false,
                    swapped: false,
                },
                "nsecpcap" => FileFormat::Pcap {
                    nanos: true,
                    swapped: false,
                },
                "pcapng" => FileFormat::PcapNg,
                other => panic!("{name}: format {other}"),
            };
            assert_eq!(file.format(), want_format, "{name}");
            let want_link = match row[c_link] {
                "ether" => 1,
                "linux-sll" => 113,
                "null" => 0,
                other => panic!("{name}: link type {other}"),
            };
            let (mut count, mut cut, mut first_ts) = (0u64, 0u64, None);
            for frame in file.frames() {
                let frame = frame.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(frame.link_type, want_link, "{name}");
                count += 1;
                cut += u64::from(frame.is_truncated());
                first_ts.get_or_insert(frame.ts_ns);
            }
            assert_eq!(count, row[c_packets].parse::<u64>().unwrap(), "{name}");
            assert_eq!(cut, row[c_trunc].parse::<u64>().unwrap(), "{name}");
            let want_ts = FIRST_TS
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{name}: no expected first timestamp"))
                .1;
            assert_eq!(first_ts, Some(want_ts), "{name}");
            checked += 1;
        }
        assert_eq!(checked, rows.len(), "every file in summary.tsv is present");
    }

    /// First frame time, ns, from `tshark -c1 -T fields -e frame.time_epoch`. gnutella's first
    /// frame really is 22 µs after the epoch (its capture clock was not set).
    const FIRST_TS: &[(&str, u64)] = &[
        ("ndpi_KakaoTalk_chat.pcap", 1_430_069_021_959_113_000),
        ("ndpi_dnp3.pcap", 1_097_501_938_503_079_000),
        ("ndpi_ethereum.pcap", 1_578_508_362_274_369_000),
        ("ndpi_fix2.pcap", 1_614_758_889_587_624_000),
        ("ndpi_gnutella.pcap", 22_000),
        (
            "ndpi_heuristic_tcp_ack_payload.pcap",
            1_681_478_090_730_262_000,
        ),
        ("ndpi_mongodb.pcap", 1_483_459_978_959_064_000),
        ("ndpi_reddit.pcap", 1_605_291_684_451_133_000),
        ("ndpi_ultrasurf.pcap", 1_656_652_731_609_846_000),
        ("ndpi_webex.pcap", 1_444_570_624_853_841_000),
        ("ndpi_wechat.pcap", 1_492_167_337_792_745_000),
        ("ndpi_whatsapp.pcap", 1_655_030_801_747_000_000),
        (
            "suricata_bug-4376_syn_retransmit_with_ts.pcap",
            1_540_604_430_000_524_000,
        ),
        (
            "suricata_http-range-multiflows_input.pcap",
            1_626_248_509_579_093_000,
        ),
        (
            "suricata_mime-stream-depth_input.pcap",
            1_568_828_042_564_656_000,
        ),
        (
            "suricata_output-eve-ftp-data_input.pcap",
            1_371_506_299_036_212_000,
        ),
        (
            "suricata_tcp-session-syn-flood-drop-precedence_input.pcap",
            1_700_000_000_000_000_000,
        ),
        (
            "suricata_tls-subjectaltname_input.pcap",
            1_647_506_328_746_977_000,
        ),
        ("tcpdump_resp_3_malicious.pcap", 1_453_924_860_856_800_000),
        ("tcpdump_tcp-handshake-nano.pcap", 1_418_145_369_924_505_488),
        ("tcpreplay_test.pcap", 1_278_472_579_466_743_000),
        (
            "chrissanders_http_ip4and6.pcapng",
            1_448_215_091_400_170_000,
        ),
        (
            "chrissanders_nowebaccess2.pcapng",
            1_268_912_535_790_688_000,
        ),
        ("chrissanders_synscan.pcapng", 1_278_275_056_274_870_000),
        ("chrissanders_tcp_dupack.pcapng", 1_236_095_711_960_416_000),
        (
            "chrissanders_tcp_handshake.pcapng",
            1_262_893_114_341_715_000,
        ),
        (
            "chrissanders_tcp_refuseconnection.pcapng",
            1_246_561_549_394_749_000,
        ),
        (
            "chrissanders_tcp_retransmissions.pcapng",
            979_489_081_289_000_000,
        ),
        (
            "chrissanders_tcp_teardown.pcapng",
            1_262_904_550_425_302_000,
        ),
        (
            "chrissanders_tcp_zerowindowdead.pcapng",
            1_236_095_716_488_634_000,
        ),
        (
            "chrissanders_tcp_zerowindowrecovery.pcapng",
            1_276_375_699_407_973_000,
        ),
        ("ndpi_alexa-app.pcapng", 1_490_976_022_526_783_000),
        ("ndpi_sites.pcapng", 1_595_957_694_169_758_000),
    ];
}
