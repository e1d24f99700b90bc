//! Building one TCP segment as an Ethernet II frame: optional 802.1Q tag, IPv4 or IPv6, TCP
//! with the handshake options, and a payload of a fixed pattern.
//!
//! Every length and checksum is filled in, so the frames read back as valid in tcpulse, tshark
//! and tcpdump alike. The builder appends to the caller's buffer and allocates nothing else.

use std::net::IpAddr;

/// One TCP segment to be written as a frame. Flags are the low byte of the TCP flags field
/// (`tcpulse_core::decode::flags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFrame {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Payload bytes after the TCP header; their content is [`payload_byte`] of the offset.
    pub payload_len: u32,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// TSval, TSecr.
    pub timestamps: Option<(u32, u32)>,
    /// 802.1Q VLAN id (12 bits; higher bits are dropped).
    pub vlan: Option<u16>,
}

/// Ethertypes and IP protocol numbers used here.
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const PROTO_TCP: u8 = 6;

const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const TCP_HEADER_LEN: usize = 20;

/// Header offsets, relative to the start of each header.
mod field {
    pub const IPV4_CHECKSUM: usize = 10;
    pub const TCP_CHECKSUM: usize = 16;
}

/// Byte `offset` of a segment's payload: the low byte of the sequence number it occupies, so a
/// resent segment carries the very bytes of the original.
pub fn payload_byte(seq: u32, offset: u32) -> u8 {
    seq.wrapping_add(offset) as u8
}

/// A locally administered MAC address made from the low 32 bits of an IP address.
fn mac_of(ip: &IpAddr) -> [u8; 6] {
    let low = match ip {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x00, low[0], low[1], low[2], low[3]]
}

/// Adds `data` as big-endian 16-bit words to a one's-complement running sum (odd length padded
/// with a zero byte, as RFC 1071 says).
fn sum_words(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// Folds a running sum to 16 bits and complements it.
fn finish_checksum(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

impl TcpFrame {
    /// Length of the TCP options, padded to a multiple of 4.
    pub fn options_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.timestamps.is_some() {
            n += 12;
        } else if self.sack_permitted {
            n += 4;
        }
        if self.wscale.is_some() {
            n += 4;
        }
        n
    }

    /// Bytes `write_ethernet` appends.
    pub fn frame_len(&self) -> usize {
        let link = if self.vlan.is_some() { 18 } else { 14 };
        let ip = match self.src {
            IpAddr::V4(_) => IPV4_HEADER_LEN,
            IpAddr::V6(_) => IPV6_HEADER_LEN,
        };
        link + ip + TCP_HEADER_LEN + self.options_len() + self.payload_len as usize
    }

    /// Appends the frame to `buf`: Ethernet II (802.1Q-tagged when `vlan` is set), IPv4 (DF,
    /// TTL 64, header checksum) or IPv6 (hop limit 64), TCP with options and checksum, payload.
    ///
    /// # Panics
    /// When `src` and `dst` are of different families, or the segment does not fit an IP
    /// packet (65,535 bytes of IPv4 total length or IPv6 payload length).
    pub fn write_ethernet(&self, buf: &mut Vec<u8>) {
        let tcp_len = TCP_HEADER_LEN + self.options_len() + self.payload_len as usize;
        buf.reserve(self.frame_len());

        buf.extend_from_slice(&mac_of(&self.dst));
        buf.extend_from_slice(&mac_of(&self.src));
        if let Some(vid) = self.vlan {
            buf.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            buf.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
        }
        // The TCP checksum starts from the pseudo-header's sum.
        let pseudo = match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let total =
                    u16::try_from(IPV4_HEADER_LEN + tcp_len).expect("segment too long for IPv4");
                buf.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                let ip_start = buf.len();
                buf.extend_from_slice(&[0x45, 0]);
                buf.extend_from_slice(&total.to_be_bytes());
                // Identification 0, DF set, no fragment offset.
                buf.extend_from_slice(&[0, 0, 0x40, 0, 64, PROTO_TCP, 0, 0]);
                buf.extend_from_slice(&src.octets());
                buf.extend_from_slice(&dst.octets());
                let sum = finish_checksum(sum_words(0, &buf[ip_start..]));
                let at = ip_start + field::IPV4_CHECKSUM;
                buf[at..at + 2].copy_from_slice(&sum.to_be_bytes());
                let acc = sum_words(0, &src.octets());
                let acc = sum_words(acc, &dst.octets());
                sum_words(acc, &[0, PROTO_TCP]) + tcp_len as u32
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let payload = u16::try_from(tcp_len).expect("segment too long for IPv6");
                buf.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
                buf.extend_from_slice(&[0x60, 0, 0, 0]);
                buf.extend_from_slice(&payload.to_be_bytes());
                buf.extend_from_slice(&[PROTO_TCP, 64]);
                buf.extend_from_slice(&src.octets());
                buf.extend_from_slice(&dst.octets());
                let acc = sum_words(0, &src.octets());
                let acc = sum_words(acc, &dst.octets());
                sum_words(acc, &[0, PROTO_TCP]) + tcp_len as u32
            }
            _ => panic!("TcpFrame: source and destination of different address families"),
        };

        let tcp_start = buf.len();
        let data_offset = ((TCP_HEADER_LEN + self.options_len()) / 4) as u8;
        buf.extend_from_slice(&self.sport.to_be_bytes());
        buf.extend_from_slice(&self.dport.to_be_bytes());
        buf.extend_from_slice(&self.seq.to_be_bytes());
        buf.extend_from_slice(&self.ack.to_be_bytes());
        buf.extend_from_slice(&[data_offset << 4, self.flags]);
        buf.extend_from_slice(&self.window.to_be_bytes());
        // Checksum (filled below) and urgent pointer.
        buf.extend_from_slice(&[0, 0, 0, 0]);
        self.write_options(buf);
        let payload_start = buf.len();
        buf.extend((0..self.payload_len).map(|i| payload_byte(self.seq, i)));
        debug_assert_eq!(buf.len() - tcp_start, tcp_len);
        debug_assert_eq!(payload_start - tcp_start, usize::from(data_offset) * 4);

        let sum = finish_checksum(sum_words(pseudo, &buf[tcp_start..]));
        let at = tcp_start + field::TCP_CHECKSUM;
        buf[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }

    /// Options in the order Linux sends them: MSS, SACK permitted with timestamps, window scale;
    /// NOPs keep each on its usual alignment, so the total is a multiple of 4.
    fn write_options(&self, buf: &mut Vec<u8>) {
        const NOP: u8 = 1;
        if let Some(mss) = self.mss {
            buf.extend_from_slice(&[2, 4]);
            buf.extend_from_slice(&mss.to_be_bytes());
        }
        match (self.sack_permitted, self.timestamps) {
            (sack, Some((val, ecr))) => {
                buf.extend_from_slice(&if sack { [4, 2] } else { [NOP, NOP] });
                buf.extend_from_slice(&[8, 10]);
                buf.extend_from_slice(&val.to_be_bytes());
                buf.extend_from_slice(&ecr.to_be_bytes());
            }
            (true, None) => buf.extend_from_slice(&[NOP, NOP, 4, 2]),
            (false, None) => {}
        }
        if let Some(shift) = self.wscale {
            buf.extend_from_slice(&[NOP, 3, 3, shift]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn syn_v4() -> TcpFrame {
        TcpFrame {
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
            sport: 40000,
            dport: 80,
            seq: 1,
            ack: 0,
            flags: 0x02,
            window: 64240,
            payload_len: 0,
            mss: Some(1460),
            wscale: None,
            sack_permitted: false,
            timestamps: None,
            vlan: None,
        }
    }

    /// The SYN of `syn_v4`, checksums worked out by hand:
    /// IPv4: 4500 + 002c + 0000 + 4000 + 4006 + c000 + 0201 + cb00 + 7105 = 0x2_c338, folded
    /// 0xc33a, complement 0x3cc5.
    /// TCP: pseudo-header c000 + 0201 + cb00 + 7105 + 0006 + 0018 = 0x1_fe24; header and MSS
    /// 9c40 + 0050 + 0000 + 0001 + 0000 + 0000 + 6002 + faf0 + 0204 + 05b4 = 0x1_ff3b; together
    /// 0x3_fd5f, folded 0xfd62, complement 0x029d.
    static SYN_V4: [u8; 58] = [
        // Ethernet: dst 02:00:cb:00:71:05, src 02:00:c0:00:02:01, IPv4.
        0x02, 0x00, 0xcb, 0x00, 0x71, 0x05, 0x02, 0x00, 0xc0, 0x00, 0x02, 0x01, 0x08, 0x00,
        // IPv4: 20 bytes, total 44, id 0, DF, TTL 64, TCP, checksum, addresses.
        0x45, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x3c, 0xc5, 0xc0, 0x00, 0x02,
        0x01, 0xcb, 0x00, 0x71, 0x05,
        // TCP: ports, seq 1, ack 0, data offset 6, SYN, window 64240, checksum, urgent 0.
        0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xfa,
        0xf0, 0x02, 0x9d, 0x00, 0x00, // MSS 1460.
        0x02, 0x04, 0x05, 0xb4,
    ];

    /// The sum of a header including its checksum field must fold to 0xffff.
    fn verifies(acc: u32) -> bool {
        finish_checksum(acc) == 0
    }

    #[test]
    fn syn_matches_hand_computed_fixture() {
        let mut buf = Vec::new();
        syn_v4().write_ethernet(&mut buf);
        assert_eq!(buf, SYN_V4);
        assert_eq!(buf.len(), syn_v4().frame_len());
    }

    #[test]
    fn appends_without_touching_what_is_there() {
        let mut buf = vec![0xaa; 3];
        syn_v4().write_ethernet(&mut buf);
        assert_eq!(buf[..3], [0xaa; 3]);
        assert_eq!(buf[3..], SYN_V4);
    }

    #[test]
    fn ipv4_data_with_all_options_and_vlan_verifies() {
        let f = TcpFrame {
            flags: 0x18,
            seq: 0xffff_fff0,
            ack: 77,
            payload_len: 333,
            wscale: Some(7),
            sack_permitted: true,
            timestamps: Some((0x0102_0304, 0x0506_0708)),
            vlan: Some(0x1234),
            ..syn_v4()
        };
        let mut buf = Vec::new();
        f.write_ethernet(&mut buf);
        assert_eq!(buf.len(), f.frame_len());
        assert_eq!(buf[12..16], [0x81, 0x00, 0x02, 0x34]);
        assert_eq!(buf[16..18], [0x08, 0x00]);
        let ip = &buf[18..];
        assert!(verifies(sum_words(0, &ip[..20])));
        assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len());
        let tcp = &ip[20..];
        let opts = f.options_len();
        assert_eq!(opts, 20);
        assert_eq!(usize::from(tcp[12] >> 4) * 4, 20 + opts);
        assert_eq!(
            tcp[20..40],
            [2, 4, 5, 180, 4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 7]
        );
        let payload = &tcp[40..];
        assert_eq!(payload.len(), 333);
        assert_eq!(payload[..2], [0xf0, 0xf1]);
        assert_eq!(payload[16], 0x00);
        let pseudo = sum_words(sum_words(0, &ip[12..20]), &[0, 6]) + tcp.len() as u32;
        assert!(verifies(sum_words(pseudo, tcp)));
    }

    #[test]
    fn ipv6_frame_verifies() {
        let f = TcpFrame {
            src: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            dst: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53)),
            flags: 0x10,
            payload_len: 7,
            timestamps: Some((1, 2)),
            ..syn_v4()
        };
        let mut buf = Vec::new();
        f.write_ethernet(&mut buf);
        assert_eq!(buf.len(), f.frame_len());
        assert_eq!(buf[12..14], [0x86, 0xdd]);
        let ip = &buf[14..];
        assert_eq!(ip[0] >> 4, 6);
        assert_eq!(ip[6], 6);
        assert_eq!(ip[7], 64);
        let tcp = &ip[40..];
        assert_eq!(usize::from(u16::from_be_bytes([ip[4], ip[5]])), tcp.len());
        assert_eq!(
            tcp[20..36],
            [2, 4, 5, 180, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]
        );
        let pseudo = sum_words(sum_words(0, &ip[8..40]), &[0, 6]) + tcp.len() as u32;
        assert!(verifies(sum_words(pseudo, tcp)));
    }

    #[test]
    fn options_are_padded_to_words() {
        for mask in 0..16u8 {
            let f = TcpFrame {
                mss: (mask & 1 != 0).then_some(1400),
                wscale: (mask & 2 != 0).then_some(9),
                sack_permitted: mask & 4 != 0,
                timestamps: (mask & 8 != 0).then_some((5, 6)),
                ..syn_v4()
            };
            let mut buf = Vec::new();
            f.write_ethernet(&mut buf);
            assert_eq!(f.options_len() % 4, 0);
            assert_eq!(buf.len(), f.frame_len());
            assert_eq!(
                usize::from(buf[14 + 20 + 12] >> 4) * 4,
                20 + f.options_len()
            );
        }
    }

    #[test]
    #[should_panic(expected = "different address families")]
    fn mixed_families_are_refused() {
        let f = TcpFrame {
            dst: IpAddr::V6(Ipv6Addr::LOCALHOST),
            ..syn_v4()
        };
        f.write_ethernet(&mut Vec::new());
    }
}
