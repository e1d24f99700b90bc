//! IPv6 header view and extension header walk.
//!
//! Once [`Ipv6Packet::new_checked`] succeeds: the fixed header was captured, the version is 6 and
//! the payload length is non-zero and fits in the frame as it was on the wire.
//! [`Ipv6Packet::tcp_segment`] then walks the extension header chain, checking every header
//! against both the payload length and the captured bytes.
//!
//! A payload length of 0 announces a jumbogram (RFC 2675), whose real length hides in a hop-by-hop
//! option. Jumbograms need links with an MTU above 64 KiB and do not occur on the links we tap, so
//! they are rejected as malformed rather than decoded.

use super::{array_at, be16, DecodeError, PROTO_TCP};

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
}

impl<'a> Ipv6Packet<'a> {
    /// Check `buf`, the captured bytes from the start of the IP header. `wire_len` is how many
    /// bytes the packet could span on the wire (the frame's original length after the link header).
    ///
    /// # Errors
    ///
    /// `MalformedIpv6`: header not captured, version not 6, payload length 0 (jumbogram) or
    /// larger than `wire_len` allows.
    #[inline]
    pub fn new_checked(buf: &'a [u8], wire_len: usize) -> Result<Self, DecodeError> {
        let header = buf
            .first_chunk::<HEADER_LEN>()
            .ok_or(DecodeError::MalformedIpv6)?;
        let payload_len = usize::from(be16(header, field::PAYLOAD_LEN));
        let end = HEADER_LEN + payload_len;
        if header[field::VERSION] >> 4 != 6 || payload_len == 0 || end > wire_len {
            return Err(DecodeError::MalformedIpv6);
        }
        Ok(Ipv6Packet { header, buf, end })
    }

    pub fn src(&self) -> [u8; 16] {
        array_at(self.header, field::SRC)
    }

    pub fn dst(&self) -> [u8; 16] {
        array_at(self.header, field::DST)
    }

    /// Walk the extension headers to the TCP segment: its captured bytes and its length as
    /// declared by the payload length.
    ///
    /// # Errors
    ///
    /// `NotTcp` when the chain ends in another protocol, ESP (opaque) or no-next-header;
    /// `Fragment` for a TCP fragment (offset != 0 or M set); `MalformedIpv6` when a header overruns
    /// the payload or the captured bytes, or the chain is longer than [`MAX_EXT_HEADERS`].
    #[inline]
    pub fn tcp_segment(&self) -> Result<(&'a [u8], usize), DecodeError> {
        let mut next_header = self.header[field::NEXT_HEADER];
        let mut offset = HEADER_LEN;
        for _ in 0..=MAX_EXT_HEADERS {
            if next_header == PROTO_TCP {
                let captured = self
                    .buf
                    .get(offset..self.end.min(self.buf.len()))
                    .unwrap_or_default();
                return Ok((captured, self.end - offset));
            }
            match next_header {
                // ESP is opaque and no-next-header ends the packet: no TCP behind either.
                next::ESP | next::NO_NEXT => return Err(DecodeError::NotTcp),
                // UDP, ICMPv6, ...
                n if !is_extension(n) => return Err(DecodeError::NotTcp),
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
            if next_header == next::FRAGMENT
                && be16(ext, field::FRAG_OFFSET_M) & FRAG_OFFSET_OR_M != 0
            {
                // As for IPv4, only TCP fragments count as fragments. Behind extension headers
                // the protocol is unknown, so those count too.
                return Err(if following == PROTO_TCP || is_extension(following) {
                    DecodeError::Fragment
                } else {
                    DecodeError::NotTcp
                });
            }
            next_header = following;
            offset += len;
        }
        Err(DecodeError::MalformedIpv6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::fixtures::{IPV6_HBH_FRAG, IPV6_SYNACK};

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

    fn segment(p: &[u8]) -> Result<(usize, usize), DecodeError> {
        let ip = Ipv6Packet::new_checked(p, p.len())?;
        let (captured, len) = ip.tcp_segment()?;
        Ok((captured.len(), len))
    }

    #[test]
    fn fields() {
        let ip = Ipv6Packet::new_checked(&IPV6_SYNACK, IPV6_SYNACK.len()).unwrap();
        assert_eq!(ip.src(), IPV6_SYNACK[8..24]);
        assert_eq!(ip.dst(), IPV6_SYNACK[24..40]);
        assert_eq!(ip.tcp_segment(), Ok((&IPV6_SYNACK[40..], 40)));
    }

    #[test]
    fn hop_by_hop_and_atomic_fragment() {
        let ip = Ipv6Packet::new_checked(&IPV6_HBH_FRAG, IPV6_HBH_FRAG.len()).unwrap();
        assert_eq!(ip.tcp_segment(), Ok((&IPV6_HBH_FRAG[56..], 24)));
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
        let mut jumbo = IPV6_SYNACK;
        jumbo[4..6].copy_from_slice(&[0, 0]);
        assert_eq!(
            Ipv6Packet::new_checked(&jumbo, jumbo.len()).err(),
            Some(DecodeError::MalformedIpv6)
        );
        assert_eq!(
            Ipv6Packet::new_checked(&IPV6_SYNACK, IPV6_SYNACK.len() - 1).err(),
            Some(DecodeError::MalformedIpv6)
        );
    }

    #[test]
    fn snaplen_cut_segment() {
        let ip = Ipv6Packet::new_checked(&IPV6_SYNACK[..50], IPV6_SYNACK.len()).unwrap();
        assert_eq!(ip.tcp_segment(), Ok((&IPV6_SYNACK[40..50], 40)));
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
            (PROTO_TCP, 0x0001u16, Err(DecodeError::Fragment)),
            (PROTO_TCP, 0x0008, Err(DecodeError::Fragment)),
            (60, 0x0001, Err(DecodeError::Fragment)),
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
        assert_eq!(ip.tcp_segment(), Err(DecodeError::MalformedIpv6));
        // The same header fits the payload length but was cut by the snap length.
        let p = packet(0, &hbh, 0);
        let ip = Ipv6Packet::new_checked(&p[..60], p.len()).unwrap();
        assert_eq!(ip.tcp_segment(), Err(DecodeError::MalformedIpv6));
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
            assert_eq!(ip.tcp_segment(), Err(DecodeError::MalformedIpv6), "{len}");
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
