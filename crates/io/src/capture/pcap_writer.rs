//! Writing captures: classic pcap and a minimal pcapng, both little-endian.
//!
//! Used to save frames (e.g. samples of malformed traffic) and by tests to build captures that
//! [`CaptureFile`](super::pcap_file::CaptureFile) reads back. Neither writer buffers: wrap the
//! sink in a `BufWriter` when writing many frames, and flush it (or call `flush`) at the end.

use std::io::{self, Write};

use super::pcap_file::{magic, MAX_FRAME_LEN};

/// Snaplen announced in the headers; frames longer than this are refused.
pub const SNAPLEN: u32 = 262_144;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Refuses what the reader would refuse or misread, before anything is written.
fn check_frame(data: &[u8], wire_len: u32) -> io::Result<u32> {
    let len = u32::try_from(data.len())
        .ok()
        .filter(|&l| l <= SNAPLEN && l <= MAX_FRAME_LEN)
        .ok_or_else(|| invalid("frame longer than the 262144-byte snaplen"))?;
    if wire_len < len {
        return Err(invalid("original length shorter than the captured data"));
    }
    Ok(len)
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Writes a classic pcap file: 24-byte header, then 16-byte record headers and data.
pub struct PcapWriter<W: Write> {
    w: W,
    nanos: bool,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header: version 2.4, snaplen 262144, `link_type` (a pcap LINKTYPE
    /// number), timestamps in ns if `nanos`, else in µs.
    ///
    /// # Errors
    /// Whatever writing to `w` returns.
    pub fn new(mut w: W, link_type: u32, nanos: bool) -> io::Result<Self> {
        let magic = if nanos {
            magic::PCAP_NANOS
        } else {
            magic::PCAP_MICROS
        };
        let mut hdr = [0u8; 24];
        hdr[0..4].copy_from_slice(&magic.to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0, as every modern writer leaves them.
        hdr[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        hdr[20..24].copy_from_slice(&link_type.to_le_bytes());
        w.write_all(&hdr)?;
        Ok(PcapWriter { w, nanos })
    }

    /// Writes a frame captured whole. In a µs file the timestamp is truncated to the µs.
    ///
    /// # Errors
    /// `InvalidInput` if the frame exceeds the snaplen or the time is past 2106 (the
    /// 32-bit seconds field); otherwise whatever writing returns.
    pub fn write_frame(&mut self, ts_ns: u64, data: &[u8]) -> io::Result<()> {
        let wire_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.write_frame_truncated(ts_ns, data, wire_len)
    }

    /// Writes a frame of which only `data` was captured out of `wire_len` bytes on the wire.
    ///
    /// # Errors
    /// As [`PcapWriter::write_frame`], plus `InvalidInput` if `wire_len < data.len()`.
    pub fn write_frame_truncated(
        &mut self,
        ts_ns: u64,
        data: &[u8],
        wire_len: u32,
    ) -> io::Result<()> {
        let len = check_frame(data, wire_len)?;
        let secs = u32::try_from(ts_ns / NS_PER_SEC)
            .map_err(|_| invalid("timestamp past the 32-bit seconds of classic pcap"))?;
        let sub_ns = (ts_ns % NS_PER_SEC) as u32;
        let frac = if self.nanos { sub_ns } else { sub_ns / 1_000 };
        let mut hdr = [0u8; 16];
        hdr[0..4].copy_from_slice(&secs.to_le_bytes());
        hdr[4..8].copy_from_slice(&frac.to_le_bytes());
        hdr[8..12].copy_from_slice(&len.to_le_bytes());
        hdr[12..16].copy_from_slice(&wire_len.to_le_bytes());
        self.w.write_all(&hdr)?;
        self.w.write_all(data)
    }

    /// # Errors
    /// Whatever flushing the sink returns.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Returns the sink, unflushed.
    pub fn into_inner(self) -> W {
        self.w
    }
}

/// Writes pcapng: one section, one interface (id 0) at ns resolution, Enhanced Packet Blocks.
pub struct PcapNgWriter<W: Write> {
    w: W,
}

impl<W: Write> PcapNgWriter<W> {
    /// Writes the Section Header Block and one Interface Description Block for `link_type`
    /// (1 for Ethernet; pcapng link types are 16 bits) with `if_tsresol` 9 (ns).
    ///
    /// # Errors
    /// `InvalidInput` if `link_type` does not fit 16 bits; otherwise whatever writing returns.
    pub fn new(mut w: W, link_type: u32) -> io::Result<Self> {
        let link =
            u16::try_from(link_type).map_err(|_| invalid("pcapng link types are 16 bits"))?;
        // Section Header Block: type, length 28, byte-order magic, version 1.0,
        // section length -1 (unknown), no options, length again.
        let mut shb = [0u8; 28];
        shb[0..4].copy_from_slice(&magic::PCAPNG_SHB.to_le_bytes());
        shb[4..8].copy_from_slice(&28u32.to_le_bytes());
        shb[8..12].copy_from_slice(&magic::PCAPNG_BYTE_ORDER.to_le_bytes());
        shb[12..14].copy_from_slice(&1u16.to_le_bytes());
        shb[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        shb[24..28].copy_from_slice(&28u32.to_le_bytes());
        w.write_all(&shb)?;
        // Interface Description Block: link type, reserved, snaplen, then the options
        // if_tsresol = 9 (code 9, length 1, padded to 4) and end-of-options.
        let mut idb = [0u8; 32];
        idb[0..4].copy_from_slice(&1u32.to_le_bytes());
        idb[4..8].copy_from_slice(&32u32.to_le_bytes());
        idb[8..10].copy_from_slice(&link.to_le_bytes());
        idb[12..16].copy_from_slice(&SNAPLEN.to_le_bytes());
        idb[16..18].copy_from_slice(&9u16.to_le_bytes());
        idb[18..20].copy_from_slice(&1u16.to_le_bytes());
        idb[20] = 9;
        // 24..28: end-of-options, all zero.
        idb[28..32].copy_from_slice(&32u32.to_le_bytes());
        w.write_all(&idb)?;
        Ok(PcapNgWriter { w })
    }

    /// Writes a frame captured whole.
    ///
    /// # Errors
    /// `InvalidInput` if the frame exceeds the snaplen; otherwise whatever writing returns.
    pub fn write_frame(&mut self, ts_ns: u64, data: &[u8]) -> io::Result<()> {
        let wire_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.write_frame_truncated(ts_ns, data, wire_len)
    }

    /// Writes an Enhanced Packet Block holding `data` out of `wire_len` bytes on the wire.
    ///
    /// # Errors
    /// As [`PcapNgWriter::write_frame`], plus `InvalidInput` if `wire_len < data.len()`.
    pub fn write_frame_truncated(
        &mut self,
        ts_ns: u64,
        data: &[u8],
        wire_len: u32,
    ) -> io::Result<()> {
        let len = check_frame(data, wire_len)?;
        let pad = len.next_multiple_of(4) - len;
        // 28 bytes of header, data, padding, 4 bytes of trailing length; len <= 262144.
        let total = 32 + len + pad;
        let mut hdr = [0u8; 28];
        hdr[0..4].copy_from_slice(&6u32.to_le_bytes());
        hdr[4..8].copy_from_slice(&total.to_le_bytes());
        // 8..12: interface 0.
        hdr[12..16].copy_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
        hdr[16..20].copy_from_slice(&(ts_ns as u32).to_le_bytes());
        hdr[20..24].copy_from_slice(&len.to_le_bytes());
        hdr[24..28].copy_from_slice(&wire_len.to_le_bytes());
        self.w.write_all(&hdr)?;
        self.w.write_all(data)?;
        let mut tail = [0u8; 7];
        let pad = pad as usize;
        tail[pad..pad + 4].copy_from_slice(&total.to_le_bytes());
        self.w.write_all(&tail[..pad + 4])
    }

    /// # Errors
    /// Whatever flushing the sink returns.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// Returns the sink, unflushed.
    pub fn into_inner(self) -> W {
        self.w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::pcap_file::{CaptureFile, FileFormat};

    #[test]
    fn pcap_header_bytes() {
        let out = PcapWriter::new(Vec::new(), 1, false).unwrap().into_inner();
        assert_eq!(
            out,
            [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0]
        );
        let out = PcapWriter::new(Vec::new(), 113, true).unwrap().into_inner();
        assert_eq!(out[..4], [0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(out[20..24], [113, 0, 0, 0]);
    }

    #[test]
    fn pcap_record_bytes() {
        let mut w = PcapWriter::new(Vec::new(), 1, false).unwrap();
        w.write_frame_truncated(3_000_004_999, b"ab", 60).unwrap();
        let out = w.into_inner();
        assert_eq!(
            out[24..],
            [3, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 60, 0, 0, 0, b'a', b'b']
        );
    }

    #[test]
    fn pcapng_blocks_are_aligned_for_every_padding() {
        let mut w = PcapNgWriter::new(Vec::new(), 1).unwrap();
        let payload = [7u8; 9];
        for len in 0..=8 {
            w.write_frame(len as u64, &payload[..len]).unwrap();
        }
        let out = w.into_inner();
        assert_eq!(out.len() % 4, 0);
        let file = CaptureFile::from_bytes(out).unwrap();
        assert_eq!(file.format(), FileFormat::PcapNg);
        for (i, f) in file.frames().enumerate() {
            let f = f.unwrap();
            assert_eq!(f.data, &payload[..i]);
            assert_eq!(f.ts_ns, i as u64);
        }
        assert_eq!(file.frames().count(), 9);
    }

    #[test]
    fn large_timestamps_survive_pcapng() {
        let mut w = PcapNgWriter::new(Vec::new(), 1).unwrap();
        w.write_frame(u64::MAX - 1, b"x").unwrap();
        let file = CaptureFile::from_bytes(w.into_inner()).unwrap();
        assert_eq!(file.frames().next().unwrap().unwrap().ts_ns, u64::MAX - 1);
    }

    #[test]
    fn refuses_what_the_reader_would_refuse() {
        let mut w = PcapWriter::new(Vec::new(), 1, true).unwrap();
        let big = vec![0u8; SNAPLEN as usize + 1];
        let kind = |r: io::Result<()>| r.unwrap_err().kind();
        assert_eq!(kind(w.write_frame(0, &big)), io::ErrorKind::InvalidInput);
        assert_eq!(
            kind(w.write_frame_truncated(0, b"abc", 2)),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(w.write_frame(u64::from(u32::MAX) * NS_PER_SEC + NS_PER_SEC, b"")),
            io::ErrorKind::InvalidInput
        );
        w.write_frame(0, &big[..SNAPLEN as usize]).unwrap();
        // Nothing was written for the refused frames.
        assert_eq!(w.into_inner().len(), 24 + 16 + SNAPLEN as usize);

        let mut ng = PcapNgWriter::new(Vec::new(), 1).unwrap();
        assert_eq!(kind(ng.write_frame(0, &big)), io::ErrorKind::InvalidInput);
        assert!(PcapNgWriter::new(Vec::new(), 0x1_0000).is_err());
    }
}
