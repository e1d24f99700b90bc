//! TCP header view and option parsing.
//!
//! Once [`TcpSegment::new_checked`] succeeds: the fixed header was captured, the data offset is
//! at least 5 and within the segment length the IP layer declared. Options are parsed on demand by
//! [`TcpSegment::options`], as far as they were captured: a snap length that cuts the options
//! leaves a segment whose header is still read (flagged). The checksum is not verified
//! (offloading, as for IPv4).

use super::{be16, be32, opt, DecodeError, NO_WSCALE};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
}

/// Fixed header length, data offset 5.
const HEADER_LEN: usize = 20;

/// Option kinds we read; others are skipped by their length.
mod kind {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WSCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMP: u8 = 8;
}

/// RFC 7323 §2.3: a larger shift is treated as 14. Clamping here also keeps [`NO_WSCALE`]
/// unambiguous.
const MAX_WSCALE: u8 = 14;

/// A checked view of a TCP segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpSegment<'a> {
    header: &'a [u8; HEADER_LEN],
    options: &'a [u8],
    payload_len: usize,
    truncated: bool,
    /// The capture ends inside the options.
    options_cut: bool,
}

/// What the options said, in the form [`PacketRecord`](super::PacketRecord) stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TcpOptions {
    /// 0 when absent.
    pub mss: u16,
    /// [`NO_WSCALE`] when absent.
    pub wscale: u8,
    /// [`opt`] bits of the options seen.
    pub present: u8,
    /// TSval and TSecr of the timestamps option; 0 when absent.
    pub tsval: u32,
    pub tsecr: u32,
}

impl<'a> TcpSegment<'a> {
    /// Check `captured`, the captured bytes of the segment, against `len`, its length as declared
    /// by the IP layer (`captured` is never longer).
    ///
    /// # Errors
    ///
    /// `MalformedTcp`: fixed header not captured, data offset < 5 or beyond `len`.
    #[inline]
    pub fn new_checked(captured: &'a [u8], len: usize) -> Result<Self, DecodeError> {
        let header = captured
            .first_chunk::<HEADER_LEN>()
            .ok_or(DecodeError::MalformedTcp)?;
        let header_len = usize::from(header[field::DATA_OFFSET] >> 4) * 4;
        if header_len < HEADER_LEN || header_len > len {
            return Err(DecodeError::MalformedTcp);
        }
        let options_end = header_len.min(captured.len());
        let options = captured.get(HEADER_LEN..options_end).unwrap_or_default();
        Ok(TcpSegment {
            header,
            options,
            payload_len: len - header_len,
            truncated: captured.len() < len,
            options_cut: options_end < header_len,
        })
    }

    /// The capture ended inside the options: those before the cut were read.
    pub fn options_cut(&self) -> bool {
        self.options_cut
    }

    pub fn src_port(&self) -> u16 {
        be16(self.header, field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.header, field::DST_PORT)
    }

    pub fn seq(&self) -> u32 {
        be32(self.header, field::SEQ)
    }

    pub fn ack(&self) -> u32 {
        be32(self.header, field::ACK)
    }

    /// The low 8 flag bits (FIN .. CWR); the NS/AE bit beside the data offset is left out.
    pub fn flags(&self) -> u8 {
        self.header[field::FLAGS]
    }

    pub fn window(&self) -> u16 {
        be16(self.header, field::WINDOW)
    }

    /// Payload length: the declared segment length minus the header.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// The capture stopped before the end of the segment (snaplen).
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// Parse the options.
    ///
    /// A known option with the wrong length is ignored, as Linux does, but still skipped by its
    /// length; only lengths that make the list unparsable are errors.
    ///
    /// # Errors
    ///
    /// `MalformedTcp` when an option has no length byte, a length < 2, or overruns the header
    /// (not when the capture cut the options: parsing then stops at the cut).
    #[inline]
    pub fn options(&self) -> Result<TcpOptions, DecodeError> {
        let mut out = TcpOptions {
            mss: 0,
            wscale: NO_WSCALE,
            present: 0,
            tsval: 0,
            tsecr: 0,
        };
        // Past the handshake, stacks with timestamps on (Linux, macOS) send exactly NOP, NOP,
        // timestamps: take that in one comparison instead of three trips round the loop.
        if let [kind::NOP, kind::NOP, kind::TIMESTAMP, 10, v0, v1, v2, v3, e0, e1, e2, e3] =
            *self.options
        {
            out.present = opt::TIMESTAMP;
            out.tsval = u32::from_be_bytes([v0, v1, v2, v3]);
            out.tsecr = u32::from_be_bytes([e0, e1, e2, e3]);
            return Ok(out);
        }
        let mut rest = self.options;
        loop {
            match *rest {
                [] | [kind::EOL, ..] => return Ok(out),
                [kind::NOP, ref tail @ ..] => rest = tail,
                [kind, len, ref tail @ ..] => {
                    let Some(body_len) = usize::from(len).checked_sub(2) else {
                        return Err(DecodeError::MalformedTcp);
                    };
                    let Some((body, tail)) = tail.split_at_checked(body_len) else {
                        // An option the capture cut: what came before it stands.
                        return if self.options_cut {
                            Ok(out)
                        } else {
                            Err(DecodeError::MalformedTcp)
                        };
                    };
                    match (kind, body) {
                        (kind::MSS, &[hi, lo]) => out.mss = u16::from_be_bytes([hi, lo]),
                        (kind::WSCALE, &[shift]) => out.wscale = shift.min(MAX_WSCALE),
                        (kind::SACK_PERMITTED, []) => out.present |= opt::SACK_PERMITTED,
                        (kind::SACK, _) if !body.is_empty() && body.len() % 8 == 0 => {
                            out.present |= opt::SACK;
                        }
                        (kind::TIMESTAMP, &[v0, v1, v2, v3, e0, e1, e2, e3]) => {
                            out.present |= opt::TIMESTAMP;
                            out.tsval = u32::from_be_bytes([v0, v1, v2, v3]);
                            out.tsecr = u32::from_be_bytes([e0, e1, e2, e3]);
                        }
                        _ => {}
                    }
                    rest = tail;
                }
                // A kind with no room left for its length byte (or cut there).
                [_] if self.options_cut => return Ok(out),
                [_] => return Err(DecodeError::MalformedTcp),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TCP SYN 51234 → 443, seq 0x01020304, window 64240, options MSS 1460, SACK permitted,
    /// timestamps, NOP, window scale 7.
    static SYN: [u8; 40] = [
        0xc8, 0x22, 0x01, 0xbb, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0x7c, 0xd7, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x0a, 0x0b,
        0x0c, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    /// TCP ACK with NS set beside the data offset, all 8 flag bits, no options, 3 payload bytes.
    static ACK_ALL_FLAGS: [u8; 23] = [
        0x01, 0xbb, 0xc8, 0x22, 0xff, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x01, 0x51, 0xff, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x61, 0x62, 0x63,
    ];

    /// `SYN`'s fixed header (data offset patched) followed by `options`.
    fn with_options(options: &[u8]) -> Vec<u8> {
        let mut seg = SYN[..20].to_vec();
        seg[12] = u8::try_from((20 + options.len()) / 4).unwrap() << 4;
        seg.extend_from_slice(options);
        seg
    }

    fn options(opts: &[u8]) -> Result<TcpOptions, DecodeError> {
        let seg = with_options(opts);
        TcpSegment::new_checked(&seg, seg.len())?.options()
    }

    #[test]
    fn fields_and_options() {
        let tcp = TcpSegment::new_checked(&SYN, SYN.len()).unwrap();
        assert_eq!(tcp.src_port(), 51234);
        assert_eq!(tcp.dst_port(), 443);
        assert_eq!(tcp.seq(), 0x0102_0304);
        assert_eq!(tcp.ack(), 0);
        assert_eq!(tcp.flags(), crate::decode::flags::SYN);
        assert_eq!(tcp.window(), 64240);
        assert_eq!(tcp.payload_len(), 0);
        assert!(!tcp.is_truncated());
        assert_eq!(
            tcp.options(),
            Ok(TcpOptions {
                mss: 1460,
                wscale: 7,
                present: opt::SACK_PERMITTED | opt::TIMESTAMP,
                tsval: 0x0a0b_0c0d,
                tsecr: 0,
            })
        );
    }

    #[test]
    fn flags_are_the_low_byte() {
        let tcp = TcpSegment::new_checked(&ACK_ALL_FLAGS, ACK_ALL_FLAGS.len()).unwrap();
        assert_eq!(tcp.flags(), 0xff);
        assert_eq!(tcp.payload_len(), 3);
        assert_eq!(tcp.options(), options(&[]));
    }

    #[test]
    fn payload_from_declared_length() {
        let tcp = TcpSegment::new_checked(&ACK_ALL_FLAGS[..21], 1000).unwrap();
        assert_eq!(tcp.payload_len(), 980);
        assert!(tcp.is_truncated());
    }

    #[test]
    fn truncated_header() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                TcpSegment::new_checked(&SYN[..len], SYN.len()).err(),
                Some(DecodeError::MalformedTcp),
                "{len}"
            );
        }
        // The fixed header present, the options cut: a segment, flagged.
        for len in HEADER_LEN..SYN.len() {
            let tcp = TcpSegment::new_checked(&SYN[..len], SYN.len()).unwrap();
            assert!(tcp.options_cut(), "{len}");
            assert_eq!(tcp.payload_len(), 0);
            assert_eq!(tcp.src_port(), 51234);
        }
    }

    #[test]
    fn bad_data_offset() {
        for offset in 0..16u8 {
            let mut seg = SYN;
            seg[12] = offset << 4;
            let result = TcpSegment::new_checked(&seg, seg.len()).map(|tcp| tcp.payload_len());
            let expected = if (5..=10).contains(&offset) {
                Ok(40 - usize::from(offset) * 4)
            } else {
                Err(DecodeError::MalformedTcp)
            };
            assert_eq!(result, expected, "{offset}");
        }
    }

    #[test]
    fn option_lengths() {
        // Length < 2, overrunning, or missing.
        for bad in [
            &[8u8, 0, 0, 0][..],
            &[8, 1, 0, 0],
            &[2, 5, 5, 0xb4],
            &[1, 1, 1, 2],
            &[1, 0xfe, 0, 0],
        ] {
            assert_eq!(options(bad), Err(DecodeError::MalformedTcp), "{bad:?}");
        }
        // Everything after EOL is ignored, even garbage.
        assert_eq!(
            options(&[0, 8, 1, 0xff]).map(|o| o.present),
            Ok(0),
            "after EOL"
        );
    }

    #[test]
    fn unknown_and_wrong_length_options_skipped() {
        // Fast Open cookie (34) of 6 bytes, MSS of length 3, WS of length 4, then MSS 1200 and NOPs.
        let opts = [
            34, 6, 1, 2, 3, 4, 2, 3, 9, 3, 4, 5, 5, 2, 4, 0x04, 0xb0, 1, 1, 1,
        ];
        assert_eq!(
            options(&opts),
            Ok(TcpOptions {
                mss: 1200,
                wscale: NO_WSCALE,
                present: 0,
                tsval: 0,
                tsecr: 0,
            })
        );
    }

    #[test]
    fn sack_blocks() {
        let mut opts = vec![1, 1, 5, 18];
        opts.extend_from_slice(&[0; 16]);
        assert_eq!(options(&opts).map(|o| o.present), Ok(opt::SACK));
        // A SACK with no block or a partial block is ignored.
        assert_eq!(options(&[5, 2, 1, 1]).map(|o| o.present), Ok(0));
        assert_eq!(options(&[5, 6, 0, 0, 0, 0, 1, 1]).map(|o| o.present), Ok(0));
    }

    #[test]
    fn timestamp_layouts_agree() {
        let ts = [8, 10, 1, 2, 3, 4, 5, 6, 7, 8];
        let expected = Ok(TcpOptions {
            mss: 0,
            wscale: NO_WSCALE,
            present: opt::TIMESTAMP,
            tsval: 0x0102_0304,
            tsecr: 0x0506_0708,
        });
        // NOP NOP TS takes the shortcut; the other orders go round the loop.
        assert_eq!(options(&[&[1, 1][..], &ts].concat()), expected);
        assert_eq!(options(&[&ts[..], &[1, 1]].concat()), expected);
        assert_eq!(options(&[&[1][..], &ts, &[0]].concat()), expected);
        // A timestamp of the wrong length in the same position is not one.
        let bad = [1, 1, 8, 9, 1, 2, 3, 4, 5, 6, 7, 0];
        assert_eq!(options(&bad).map(|o| o.present), Ok(0));
    }

    #[test]
    fn wscale_clamped() {
        assert_eq!(options(&[3, 3, 14, 0]).map(|o| o.wscale), Ok(14));
        assert_eq!(options(&[3, 3, 15, 0]).map(|o| o.wscale), Ok(14));
        assert_eq!(options(&[3, 3, 0xff, 0]).map(|o| o.wscale), Ok(14));
        assert_eq!(options(&[3, 3, 0, 0]).map(|o| o.wscale), Ok(0));
    }
}
