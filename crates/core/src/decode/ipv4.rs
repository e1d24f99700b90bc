//! IPv4 header view.
//!
//! Once [`Ipv4Packet::new_checked`] succeeds: the fixed header and its options were captured, the
//! version is 4 and IHL >= 5. The payload is bounded by the total length, so Ethernet padding is
//! never read as TCP; a total length of 0 (TSO and BIG TCP captures) means the frame's length,
//! and one longer than the frame was on the wire is cut to it: both are noted on the view. The
//! header checksum is not verified: offloading leaves it unset in host captures.

use super::{array_at, be16, opt, DecodeError};

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOTAL_LEN: usize = 2;
    pub const FLAGS_FRAG_OFFSET: usize = 6;
    pub const PROTOCOL: usize = 9;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Fixed header length, IHL 5.
const HEADER_LEN: usize = 20;
/// More-fragments flag and fragment offset; DF and the reserved bit do not make a fragment.
const MF_OR_OFFSET: u16 = 0x3fff;
const OFFSET_MASK: u16 = 0x1fff;

/// A checked view of an IPv4 packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ipv4Packet<'a> {
    header: &'a [u8; HEADER_LEN],
    /// Captured payload bytes, at most the declared payload.
    payload: &'a [u8],
    /// Payload length declared by the total length field (or taken from the frame).
    payload_len: usize,
    /// [`opt`] bits about the length: taken from the frame, or clipped to it.
    length_note: u8,
}

impl<'a> Ipv4Packet<'a> {
    /// Check `buf`, the captured bytes from the start of the IP header. `wire_len` is how many
    /// bytes the packet could span on the wire (the frame's original length after the link header).
    ///
    /// # Errors
    ///
    /// `MalformedIpv4`: header or options not captured, version not 4, IHL < 5, a non-zero
    /// total length smaller than the header.
    #[inline]
    pub fn new_checked(buf: &'a [u8], wire_len: usize) -> Result<Self, DecodeError> {
        let header = buf
            .first_chunk::<HEADER_LEN>()
            .ok_or(DecodeError::MalformedIpv4)?;
        let ver_ihl = header[field::VER_IHL];
        let header_len = usize::from(ver_ihl & 0x0f) * 4;
        let declared = usize::from(be16(header, field::TOTAL_LEN));
        let wire_len = wire_len.max(header_len.min(buf.len()));
        let (total_len, length_note) = match declared {
            0 => (wire_len, opt::LENGTH_FROM_FRAME),
            n if n > wire_len => (wire_len, opt::LENGTH_CLIPPED),
            n => (n, 0),
        };
        if ver_ihl >> 4 != 4 || header_len < HEADER_LEN || total_len < header_len {
            return Err(DecodeError::MalformedIpv4);
        }
        // header_len <= total_len, so this range is empty-or-valid unless the options themselves
        // were not captured.
        let payload = buf
            .get(header_len..total_len.min(buf.len()))
            .ok_or(DecodeError::MalformedIpv4)?;
        Ok(Ipv4Packet {
            header,
            payload,
            payload_len: total_len - header_len,
            length_note,
        })
    }

    pub fn src(&self) -> [u8; 4] {
        array_at(self.header, field::SRC)
    }

    pub fn dst(&self) -> [u8; 4] {
        array_at(self.header, field::DST)
    }

    pub fn protocol(&self) -> u8 {
        self.header[field::PROTOCOL]
    }

    /// A first fragment (MF set) or a later one (offset != 0).
    pub fn is_fragment(&self) -> bool {
        be16(self.header, field::FLAGS_FRAG_OFFSET) & MF_OR_OFFSET != 0
    }

    /// A fragment other than the first: its payload does not start with the upper header.
    pub fn is_later_fragment(&self) -> bool {
        be16(self.header, field::FLAGS_FRAG_OFFSET) & OFFSET_MASK != 0
    }

    /// [`opt::LENGTH_FROM_FRAME`] or [`opt::LENGTH_CLIPPED`] when the total length was not
    /// taken as written.
    pub fn length_note(&self) -> u8 {
        self.length_note
    }

    /// Captured payload bytes (shorter than [`payload_len`](Self::payload_len) under snaplen).
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Payload length from the total length field.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::fixtures::IPV4_SYN;

    /// IPv4 with IHL 6 (one 4-byte option: NOP NOP NOP EOL), protocol UDP, 4 payload bytes, then
    /// two bytes of link padding outside the total length (28).
    static IPV4_OPTS_UDP: [u8; 30] = [
        0x46, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0x00, 0x02,
        0x01, 0xc6, 0x33, 0x64, 0x07, 0x01, 0x01, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x00,
    ];

    fn with(base: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut packet = base.to_vec();
        packet[at..at + bytes.len()].copy_from_slice(bytes);
        packet
    }

    #[test]
    fn fields() {
        let ip = Ipv4Packet::new_checked(&IPV4_SYN, IPV4_SYN.len()).unwrap();
        assert_eq!(ip.src(), [192, 0, 2, 1]);
        assert_eq!(ip.dst(), [198, 51, 100, 7]);
        assert_eq!(ip.protocol(), 6);
        assert!(!ip.is_fragment(), "DF alone is not a fragment");
        assert_eq!(ip.payload(), &IPV4_SYN[20..]);
        assert_eq!(ip.payload_len(), 40);
    }

    #[test]
    fn options_skipped_and_padding_ignored() {
        let ip = Ipv4Packet::new_checked(&IPV4_OPTS_UDP, IPV4_OPTS_UDP.len()).unwrap();
        assert_eq!(ip.protocol(), 17);
        assert_eq!(ip.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(ip.payload_len(), 4);
    }

    #[test]
    fn truncated_header() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Ipv4Packet::new_checked(&IPV4_SYN[..len], IPV4_SYN.len()).err(),
                Some(DecodeError::MalformedIpv4)
            );
        }
        // Options not captured.
        assert_eq!(
            Ipv4Packet::new_checked(&IPV4_OPTS_UDP[..22], IPV4_OPTS_UDP.len()).err(),
            Some(DecodeError::MalformedIpv4)
        );
    }

    #[test]
    fn snaplen_cut_payload() {
        let ip = Ipv4Packet::new_checked(&IPV4_SYN[..30], IPV4_SYN.len()).unwrap();
        assert_eq!(ip.payload(), &IPV4_SYN[20..30]);
        assert_eq!(ip.payload_len(), 40);
    }

    #[test]
    fn total_length_beyond_the_wire_is_cut_to_it() {
        let ip = Ipv4Packet::new_checked(&IPV4_SYN, IPV4_SYN.len() - 1).unwrap();
        assert_eq!(ip.payload_len(), 40 - 1);
        assert_eq!(ip.length_note(), opt::LENGTH_CLIPPED);
    }

    #[test]
    fn total_length_zero_is_the_frames() {
        let packet = with(&IPV4_SYN, 2, &[0, 0]);
        let ip = Ipv4Packet::new_checked(&packet, packet.len()).unwrap();
        assert_eq!(ip.payload_len(), 40);
        assert_eq!(ip.length_note(), opt::LENGTH_FROM_FRAME);
    }

    #[test]
    fn bad_version_and_ihl() {
        for ver_ihl in [0x65, 0x05, 0x40, 0x44] {
            let packet = with(&IPV4_SYN, 0, &[ver_ihl]);
            assert_eq!(
                Ipv4Packet::new_checked(&packet, packet.len()).err(),
                Some(DecodeError::MalformedIpv4),
                "{ver_ihl:#x}"
            );
        }
        // IHL 15 = 60 bytes, exactly the total length: valid, with an empty payload.
        let packet = with(&IPV4_SYN, 0, &[0x4f]);
        let ip = Ipv4Packet::new_checked(&packet, packet.len()).unwrap();
        assert_eq!(ip.payload_len(), 0);
    }

    #[test]
    fn total_length_below_header() {
        for total in [19u16, 20, 23] {
            let packet = with(&IPV4_OPTS_UDP, 2, &total.to_be_bytes());
            assert_eq!(
                Ipv4Packet::new_checked(&packet, packet.len()).err(),
                Some(DecodeError::MalformedIpv4),
                "{total}"
            );
        }
    }

    #[test]
    fn fragments() {
        for (flags_offset, fragment) in [
            (0x4000u16, false),
            (0x8000, false),
            (0x2000, true),
            (0x0001, true),
            (0x1fff, true),
            (0x6000, true),
        ] {
            let packet = with(&IPV4_SYN, 6, &flags_offset.to_be_bytes());
            let ip = Ipv4Packet::new_checked(&packet, packet.len()).unwrap();
            assert_eq!(ip.is_fragment(), fragment, "{flags_offset:#x}");
        }
    }
}
