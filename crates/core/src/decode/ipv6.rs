//! IPv6 header view and extension header walk.
//!
//! Once [`Ipv6Packet::new_checked`] succeeds: the fixed header was captured and the version is 6.
//! [`Ipv6Packet::upper_layer`] then walks the extension header chain, checking every header
//! against both the payload length and the captured bytes.
//!
//! A payload length of 0 announces a jumbogram (RFC 2675), whose real length is in a hop-by-hop
//! option, or a Linux BIG TCP capture, which leaves it out: the length is then the frame's. A
//! payload length longer than the frame was on the wire is cut to it. Both are noted.

use super::tunnel::proto;
use super::{array_at, be16, be32, opt, DecodeError};

mod field {
    pub const VERSION: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
    /// In the fragment header: 13-bit offset, two reserved bits, M flag.
    pub const FRAG_OFFSET_M: usize = 2;
}

const HEADER_LEN: usize = 40;
const FRAGMENT_HEADER_LEN: usize = 8;
const FRAG_OFFSET_OR_M: u16 = 0xfff9;
const FRAG_OFFSET: u16 = 0xfff8;
/// The hop-by-hop Jumbo Payload option (RFC 2675): type, length 4, the 32-bit length.
const JUMBO_OPTION: u8 = 0xc2;
/// Real chains have two or three headers; the bound keeps the work per packet small.
const MAX_EXT_HEADERS: usize = 16;

/// Next-header values of the extension headers we step over, and those we stop at.
mod next {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
}

/// Extension headers we know how to step over.
fn is_extension(next_header: u8) -> bool {
    matches!(
        next_header,
        next::HOP_BY_HOP
            | next::ROUTING
            | next::FRAGMENT
            | next::AH
            | next::DEST_OPTS
            | next::MOBILITY
            | next::HIP
            | next::SHIM6
    )
}

/// A checked view of an IPv6 packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ipv6Packet<'a> {
    header: &'a [u8; HEADER_LEN],
    /// Captured bytes from the start of the header.
    buf: &'a [u8],
    /// End of the packet declared by the payload length, from the start of the header.
    end: usize,
    /// [`opt`] bits about the length: taken from the frame, or clipped to it.
    length_note: u8,
}

/// What an IPv6 packet carries after its extension headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Upper<'a> {
    pub protocol: u8,
    /// Captured bytes of the upper-layer packet.
    pub bytes: &'a [u8],
    /// Its length as declared.
    pub len: usize,
    /// It is the first fragment of a fragmented packet: `len` is this fragment's share.
    pub first_fragment: bool,
}

impl<'a> Ipv6Packet<'a> {
    /// Check `buf`, the captured bytes from the start of the IP header. `wire_len` is how many
    /// bytes the packet could span on the wire (the frame's original length after the link header).
    ///
    /// # Errors
    ///
    /// `MalformedIpv6`: header not captured, version not 6.
    #[inline]
    pub fn new_checked(buf: &'a [u8], wire_len: usize) -> Result<Self, DecodeError> {
        let header = buf
            .first_chunk::<HEADER_LEN>()
            .ok_or(DecodeError::MalformedIpv6)?;
        if header[field::VERSION] >> 4 != 6 {
            return Err(DecodeError::MalformedIpv6);
        }
        let wire_len = wire_len.max(HEADER_LEN);
        let payload_len = usize::from(be16(header, field::PAYLOAD_LEN));
        let (end, length_note) = match payload_len {
            0 => match jumbo_length(header, buf) {
                Some(len) => (
                    HEADER_LEN.saturating_add(len).min(wire_len),
                    opt::LENGTH_FROM_FRAME,
                ),
                None => (wire_len, opt::LENGTH_FROM_FRAME),
            },
            n if HEADER_LEN + n > wire_len => (wire_len, opt::LENGTH_CLIPPED),
            n => (HEADER_LEN + n, 0),
        };
        Ok(Ipv6Packet {
            header,
            buf,
            end,
            length_note,
        })
    }

    /// [`opt::LENGTH_FROM_FRAME`] or [`opt::LENGTH_CLIPPED`] when the payload length was not
    /// taken as written.
    pub fn length_note(&self) -> u8 {
        self.length_note
    }

    pub fn src(&self) -> [u8; 16] {
        array_at(self.header, field::SRC)
    }

    pub fn dst(&self) -> [u8; 16] {
        array_at(self.header, field::DST)
    }

    /// Walk the extension headers to the upper-layer packet (TCP, or a tunnel's protocol).
    ///
    /// # Errors
    ///
    /// `NotTcp` when the chain ends in ESP (opaque) or no-next-header; `Fragment` for a
    /// fragment other than the first; `MalformedIpv6` when a header overruns the payload or
    /// the captured bytes, or the chain is longer than [`MAX_EXT_HEADERS`].
    #[inline]
    pub fn upper_layer(&self) -> Result<Upper<'a>, DecodeError> {
        let mut next_header = self.header[field::NEXT_HEADER];
        let mut offset = HEADER_LEN;
        let mut first_fragment = false;
        for _ in 0..=MAX_EXT_HEADERS {
            match next_header {
                // ESP is opaque and no-next-header ends the packet.
                next::ESP | next::NO_NEXT => return Err(DecodeError::NotTcp),
                n if !is_extension(n) => {
                    let bytes = self
                        .buf
                        .get(offset..self.end.min(self.buf.len()))
                        .unwrap_or_default();
                    return Ok(Upper {
                        protocol: n,
                        bytes,
                        len: self.end - offset.min(self.end),
                        first_fragment,
                    });
                }
                _ => {}
            }
            // Every extension header starts with next header and length; both must be captured
            // and inside the payload before we trust them.
            let &[following, len_field] = self
                .buf
                .get(offset..self.end.min(self.buf.len()))
                .and_then(<[u8]>::first_chunk::<2>)
                .ok_or(DecodeError::MalformedIpv6)?;
            let len_field = usize::from(len_field);
            let len = match next_header {
                next::FRAGMENT => FRAGMENT_HEADER_LEN,
                // RFC 4302: in 4-octet units, minus 2.
                next::AH => (len_field + 2) * 4,
                // In 8-octet units, not counting the first 8.
                _ => (len_field + 1) * 8,
            };
            let ext = self
                .buf
                .get(offset..offset + len)
                .filter(|_| offset + len <= self.end)
                .ok_or(DecodeError::MalformedIpv6)?;
            if next_header == next::FRAGMENT {
                let bits = be16(ext, field::FRAG_OFFSET_M);
                if bits & FRAG_OFFSET != 0 {
                    // A later fragment: as for IPv4, only TCP (or unknown, behind extension
                    // headers) counts as a fragment.
                    return Err(if following == proto::TCP || is_extension(following) {
                        DecodeError::Fragment
                    } else {
                        DecodeError::NotTcp
                    });
                }
                first_fragment = bits & FRAG_OFFSET_OR_M != 0;
            }
            next_header = following;
            offset += len;
        }
        Err(DecodeError::MalformedIpv6)
    }
}

/// The length a hop-by-hop Jumbo Payload option announces, when the first extension header is
/// hop-by-hop and carries one.
fn jumbo_length(header: &[u8; HEADER_LEN], buf: &[u8]) -> Option<usize> {
    if header[field::NEXT_HEADER] != next::HOP_BY_HOP {
        return None;
    }
    let hbh_len = (usize::from(*buf.get(HEADER_LEN + 1)?) + 1) * 8;
    let options = buf.get(HEADER_LEN + 2..HEADER_LEN + hbh_len)?;
    let mut rest = options;
    while let [kind, tail @ ..] = rest {
        match (*kind, tail) {
            (0, tail) => rest = tail,
            (JUMBO_OPTION, [4, value @ ..]) if value.len() >= 4 => {
                return usize::try_from(be32(value, 0)).ok();
            }
            (_, [len, tail @ ..]) => rest = tail.get(usize::from(*len)..)?,
            _ => return None,
        }
    }
    None
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::fixtures::{IPV6_HBH_FRAG, IPV6_SYNACK};
    use crate::decode::PROTO_TCP;

    /// A fixed IPv6 header with the given payload length and next header, then `exts` and a
    /// 20-byte TCP header (the walk does not look inside it).
    fn packet(next_header: u8, exts: &[u8], extra_payload_len: usize) -> Vec<u8> {
        let payload_len = exts.len() + 20 + extra_payload_len;
        let mut p = IPV6_SYNACK[..40].to_vec();
        p[4..6].copy_from_slice(&u16::try_from(payload_len).unwrap().to_be_bytes());
        p[6] = next_header;
        p.extend_from_slice(exts);
        p.extend_from_slice(&IPV6_SYNACK[40..60]);
        p.resize(40 + payload_len, 0);
        p
    }

    /// The TCP segment behind the chain, as bytes and declared length.
    fn tcp<'a>(ip: &Ipv6Packet<'a>) -> Result<(&'a [u8], usize), DecodeError> {
        let upper = ip.upper_layer()?;
        if upper.protocol == PROTO_TCP {
            Ok((upper.bytes, upper.len))
        } else {
            Err(DecodeError::NotTcp)
        }
    }

    fn segment(p: &[u8]) -> Result<(usize, usize), DecodeError> {
        let ip = Ipv6Packet::new_checked(p, p.len())?;
        let (captured, len) = tcp(&ip)?;
        Ok((captured.len(), len))
    }

    #[test]
    fn fields() {
        let ip = Ipv6Packet::new_checked(&IPV6_SYNACK, IPV6_SYNACK.len()).unwrap();
        assert_eq!(ip.src(), IPV6_SYNACK[8..24]);
        assert_eq!(ip.dst(), IPV6_SYNACK[24..40]);
        assert_eq!(tcp(&ip), Ok((&IPV6_SYNACK[40..], 40)));
    }

    #[test]
    fn hop_by_hop_and_atomic_fragment() {
        let ip = Ipv6Packet::new_checked(&IPV6_HBH_FRAG, IPV6_HBH_FRAG.len()).unwrap();
        assert_eq!(tcp(&ip), Ok((&IPV6_HBH_FRAG[56..], 24)));
    }

    #[test]
    fn truncated_or_bad_fixed_header() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Ipv6Packet::new_checked(&IPV6_SYNACK[..len], IPV6_SYNACK.len()).err(),
                Some(DecodeError::MalformedIpv6)
            );
        }
        let mut v4 = IPV6_SYNACK;
        v4[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&v4, v4.len()).err(),
            Some(DecodeError::MalformedIpv6)
        );
    }

    #[test]
    fn payload_length_zero_or_beyond_the_wire_uses_the_frame() {
        let mut big = IPV6_SYNACK;
        big[4..6].copy_from_slice(&[0, 0]);
        let ip = Ipv6Packet::new_checked(&big, big.len()).unwrap();
        assert_eq!(ip.length_note(), opt::LENGTH_FROM_FRAME);
        assert_eq!(tcp(&ip), Ok((&IPV6_SYNACK[40..], 40)));
        let ip = Ipv6Packet::new_checked(&IPV6_SYNACK, IPV6_SYNACK.len() - 1).unwrap();
        assert_eq!(ip.length_note(), opt::LENGTH_CLIPPED);
        assert_eq!(tcp(&ip), Ok((&IPV6_SYNACK[40..79], 39)));
    }

    #[test]
    fn a_jumbogram_takes_its_length_from_the_option() {
        // Hop-by-hop: next TCP, length 0 (8 bytes): Jumbo Payload 0xc2, 4, then 28 (8 + 20).
        let hbh = [PROTO_TCP, 0, 0xc2, 4, 0, 0, 0, 28];
        let mut p = packet(0, &hbh, 0);
        p[4..6].copy_from_slice(&[0, 0]);
        let ip = Ipv6Packet::new_checked(&p, p.len()).unwrap();
        assert_eq!(ip.length_note(), opt::LENGTH_FROM_FRAME);
        assert_eq!(tcp(&ip).map(|(b, len)| (b.len(), len)), Ok((20, 20)));
    }

    #[test]
    fn snaplen_cut_segment() {
        let ip = Ipv6Packet::new_checked(&IPV6_SYNACK[..50], IPV6_SYNACK.len()).unwrap();
        assert_eq!(tcp(&ip), Ok((&IPV6_SYNACK[40..50], 40)));
    }

    #[test]
    fn every_extension_kind() {
        // Routing, destination options, mobility, HIP, shim6: 16 bytes each (length 1).
        for kind in [43u8, 60, 135, 139, 140] {
            let mut ext = [0u8; 16];
            ext[0] = PROTO_TCP;
            ext[1] = 1;
            assert_eq!(segment(&packet(kind, &ext, 0)), Ok((20, 20)), "{kind}");
        }
        // AH with a 12-byte ICV: length field 4 → (4 + 2) * 4 = 24 bytes.
        let mut ah = [0u8; 24];
        ah[0] = PROTO_TCP;
        ah[1] = 4;
        assert_eq!(segment(&packet(51, &ah, 3)), Ok((23, 23)));
    }

    #[test]
    fn chain_ends_elsewhere() {
        for next_header in [17u8, 58, 50, 59, 253] {
            assert_eq!(
                segment(&packet(next_header, &[], 0)),
                Err(DecodeError::NotTcp),
                "{next_header}"
            );
        }
        let dest_opts_then_udp = [17u8, 0, 1, 4, 0, 0, 0, 0];
        assert_eq!(
            segment(&packet(60, &dest_opts_then_udp, 0)),
            Err(DecodeError::NotTcp)
        );
    }

    #[test]
    fn fragments() {
        // (next header after the fragment header, offset/M field, expected)
        for (following, offset_m, expected) in [
            // A first fragment (offset 0, M set): its TCP header is read.
            (PROTO_TCP, 0x0001u16, Ok((20, 20))),
            (PROTO_TCP, 0x0008, Err(DecodeError::Fragment)),
            (60, 0x0008, Err(DecodeError::Fragment)),
            (17, 0x0008, Err(DecodeError::NotTcp)),
            (17, 0x0001, Err(DecodeError::NotTcp)),
            // The reserved bits alone do not make a fragment.
            (PROTO_TCP, 0x0006, Ok((20, 20))),
        ] {
            let mut frag = [following, 0, 0, 0, 0, 0, 0, 1];
            frag[2..4].copy_from_slice(&offset_m.to_be_bytes());
            assert_eq!(segment(&packet(44, &frag, 0)), expected, "{offset_m:#x}");
        }
    }

    #[test]
    fn extension_overruns() {
        // Length 2 = 24 bytes: captured, but past the 20-byte payload length.
        let hbh = [PROTO_TCP, 2, 1, 4, 0, 0, 0, 0];
        let mut p = packet(0, &hbh, 0);
        p[4..6].copy_from_slice(&[0, 20]);
        let ip = Ipv6Packet::new_checked(&p, p.len()).unwrap();
        assert_eq!(tcp(&ip), Err(DecodeError::MalformedIpv6));
        // The same header fits the payload length but was cut by the snap length.
        let p = packet(0, &hbh, 0);
        let ip = Ipv6Packet::new_checked(&p[..60], p.len()).unwrap();
        assert_eq!(tcp(&ip), Err(DecodeError::MalformedIpv6));
        // Payload too short for even the next-header and length bytes.
        let mut p = packet(0, &[], 0);
        p[4..6].copy_from_slice(&[0, 1]);
        p.truncate(41);
        assert_eq!(segment(&p), Err(DecodeError::MalformedIpv6));
    }

    #[test]
    fn truncated_chain() {
        for len in HEADER_LEN..56 {
            let ip = Ipv6Packet::new_checked(&IPV6_HBH_FRAG[..len], IPV6_HBH_FRAG.len()).unwrap();
            assert_eq!(tcp(&ip), Err(DecodeError::MalformedIpv6), "{len}");
        }
    }

    #[test]
    fn chain_length_bound() {
        let mut hdr = [60u8, 0, 1, 4, 0, 0, 0, 0];
        let mut exts = hdr.repeat(MAX_EXT_HEADERS - 1);
        hdr[0] = PROTO_TCP;
        exts.extend_from_slice(&hdr);
        assert_eq!(segment(&packet(60, &exts, 0)), Ok((20, 20)));
        let previous = exts.len() - 8;
        exts[previous] = 60;
        exts.extend_from_slice(&hdr);
        assert_eq!(
            segment(&packet(60, &exts, 0)),
            Err(DecodeError::MalformedIpv6)
        );
    }
}
