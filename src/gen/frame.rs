//! Building one TCP segment as an Ethernet II frame: optional 802.1Q tag, IPv4 or IPv6, TCP
//! with the handshake options, and a payload of a fixed pattern; optionally wrapped the way a
//! mirror session, an overlay or an access network delivers it ([`Wrap`]).
//!
//! Every length and checksum is filled in, so the frames read back as valid in tcpulse, tshark
//! and tcpdump alike. The builder appends to the caller's buffer and allocates nothing else.

use std::net::{IpAddr, Ipv4Addr};

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
    /// 802.1Q VLAN id (12 bits; higher bits are dropped). Under a tunnel that carries
    /// Ethernet the tag is on the inner frame, otherwise on the outer one.
    pub vlan: Option<u16>,
    pub wrap: Option<Wrap>,
}

/// What carries the segment to the tap besides plain Ethernet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrap {
    /// VXLAN (UDP 4789) carrying the Ethernet frame; VNI 24 bits.
    Vxlan { vni: u32, outer: Underlay },
    /// GENEVE (UDP 6081) with one 4-byte option, carrying the Ethernet frame; VNI 24 bits.
    Geneve { vni: u32, outer: Underlay },
    /// GRE with a key, carrying the IP packet.
    Gre { key: u32, outer: Underlay },
    /// ERSPAN type II (GRE protocol 0x88BE with a sequence number) carrying the Ethernet
    /// frame; session id 10 bits.
    Erspan {
        session: u16,
        sequence: u32,
        outer: Underlay,
    },
    /// The IP packet inside IPv4 (protocol 4 for IPv4, 41 for IPv6).
    IpInIp { outer: Underlay },
    /// Two MPLS labels (20 bits each), the IP packet after the bottom one.
    Mpls { labels: [u32; 2] },
    /// A PPPoE session carrying PPP carrying the IP packet.
    Pppoe { session: u16 },
}

/// The IPv4 packet a tunnel travels in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Underlay {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// UDP source port of VXLAN and GENEVE (chosen per flow by the encapsulating end).
    pub udp_sport: u16,
}

impl Wrap {
    /// The name `capture.decapsulated` counts this wrapping under (docs/decode.md).
    pub fn name(&self) -> &'static str {
        match self {
            Wrap::Vxlan { .. } => "vxlan",
            Wrap::Geneve { .. } => "geneve",
            Wrap::Gre { .. } => "gre",
            Wrap::Erspan { .. } => "erspan",
            Wrap::IpInIp { .. } => "ip_in_ip",
            Wrap::Mpls { .. } => "mpls",
            Wrap::Pppoe { .. } => "pppoe",
        }
    }

    /// The tunnel's id as a flow record names it, and its underlay; `None` for MPLS and PPPoE,
    /// which are no tunnels there.
    pub fn tunnel(&self) -> Option<(Option<u32>, Underlay)> {
        match *self {
            Wrap::Vxlan { vni, outer } | Wrap::Geneve { vni, outer } => {
                Some((Some(vni & 0x00ff_ffff), outer))
            }
            Wrap::Gre { key, outer } => Some((Some(key), outer)),
            Wrap::Erspan { session, outer, .. } => Some((Some(u32::from(session & 0x03ff)), outer)),
            Wrap::IpInIp { outer } => Some((None, outer)),
            Wrap::Mpls { .. } | Wrap::Pppoe { .. } => None,
        }
    }

    /// Whether the wrapped content is the Ethernet frame (else the IP packet).
    fn carries_ethernet(&self) -> bool {
        matches!(
            self,
            Wrap::Vxlan { .. } | Wrap::Geneve { .. } | Wrap::Erspan { .. }
        )
    }

    /// Bytes between the outer Ethernet header (its tag included) and the wrapped content.
    fn header_len(&self) -> usize {
        match self {
            Wrap::Vxlan { .. } => IPV4_HEADER_LEN + UDP_LEN + VXLAN_LEN,
            Wrap::Geneve { .. } => IPV4_HEADER_LEN + UDP_LEN + GENEVE_LEN,
            Wrap::Gre { .. } => IPV4_HEADER_LEN + GRE_KEYED_LEN,
            Wrap::Erspan { .. } => IPV4_HEADER_LEN + GRE_KEYED_LEN + ERSPAN_2_LEN,
            Wrap::IpInIp { .. } => IPV4_HEADER_LEN,
            Wrap::Mpls { .. } => 2 * MPLS_LEN,
            Wrap::Pppoe { .. } => PPPOE_LEN + PPP_PROTOCOL_LEN,
        }
    }

    /// Bytes this wrapping adds to the plain frame.
    pub fn overhead(&self) -> usize {
        self.header_len()
            + if self.carries_ethernet() {
                ETHERNET_LEN
            } else {
                0
            }
    }
}

/// Ethertypes and IP protocol numbers used here.
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const ETHERTYPE_TRANSPARENT_ETHERNET: u16 = 0x6558;
const ETHERTYPE_ERSPAN_2: u16 = 0x88be;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const PROTO_IPV4: u8 = 4;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_IPV6: u8 = 41;
const PROTO_GRE: u8 = 47;
const PORT_VXLAN: u16 = 4789;
const PORT_GENEVE: u16 = 6081;

const ETHERNET_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const TCP_HEADER_LEN: usize = 20;
const UDP_LEN: usize = 8;
const VXLAN_LEN: usize = 8;
/// The fixed GENEVE header and one option of 4 data bytes.
const GENEVE_LEN: usize = 16;
/// GRE with the key (or, for ERSPAN, the sequence number) field.
const GRE_KEYED_LEN: usize = 8;
const ERSPAN_2_LEN: usize = 8;
const MPLS_LEN: usize = 4;
const PPPOE_LEN: usize = 6;
const PPP_PROTOCOL_LEN: usize = 2;

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

/// Destination and source MAC (made from the addresses), an optional 802.1Q tag, the ethertype.
fn write_ethernet_header(
    buf: &mut Vec<u8>,
    dst: &IpAddr,
    src: &IpAddr,
    vlan: Option<u16>,
    ethertype: u16,
) {
    buf.extend_from_slice(&mac_of(dst));
    buf.extend_from_slice(&mac_of(src));
    if let Some(vid) = vlan {
        buf.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        buf.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    buf.extend_from_slice(&ethertype.to_be_bytes());
}

/// An IPv4 header of a packet `total` bytes long: id 0, DF, TTL 64, checksum filled in.
fn write_ipv4_header(buf: &mut Vec<u8>, src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, total: usize) {
    let total = u16::try_from(total).expect("segment too long for IPv4");
    let ip_start = buf.len();
    buf.extend_from_slice(&[0x45, 0]);
    buf.extend_from_slice(&total.to_be_bytes());
    buf.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
    buf.extend_from_slice(&src.octets());
    buf.extend_from_slice(&dst.octets());
    let sum = finish_checksum(sum_words(0, &buf[ip_start..]));
    let at = ip_start + field::IPV4_CHECKSUM;
    buf[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

/// A UDP header inside an IPv4 packet `ip_total` bytes long, checksum 0 (none, which IPv4
/// allows and VXLAN and GENEVE senders commonly use).
fn write_udp_header(buf: &mut Vec<u8>, sport: u16, dport: u16, ip_total: usize) {
    let len = u16::try_from(ip_total - IPV4_HEADER_LEN).expect("segment too long for UDP");
    buf.extend_from_slice(&sport.to_be_bytes());
    buf.extend_from_slice(&dport.to_be_bytes());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
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

    /// Bytes of the IP packet: IP header, TCP header and options, payload.
    fn ip_len(&self) -> usize {
        let ip = match self.src {
            IpAddr::V4(_) => IPV4_HEADER_LEN,
            IpAddr::V6(_) => IPV6_HEADER_LEN,
        };
        ip + TCP_HEADER_LEN + self.options_len() + self.payload_len as usize
    }

    /// Bytes `write_ethernet` appends.
    pub fn frame_len(&self) -> usize {
        let tag = if self.vlan.is_some() { VLAN_TAG_LEN } else { 0 };
        let wrap = self.wrap.as_ref().map_or(0, Wrap::overhead);
        ETHERNET_LEN + tag + wrap + self.ip_len()
    }

    /// Appends the frame to `buf`: Ethernet II (802.1Q-tagged when `vlan` is set), the
    /// wrapping if any, IPv4 (DF, TTL 64, header checksum) or IPv6 (hop limit 64), TCP with
    /// options and checksum, payload.
    ///
    /// # Panics
    /// When `src` and `dst` are of different families, or the segment does not fit an IP
    /// packet (65,535 bytes of IPv4 total length or IPv6 payload length).
    pub fn write_ethernet(&self, buf: &mut Vec<u8>) {
        buf.reserve(self.frame_len());
        let Some(wrap) = self.wrap else {
            write_ethernet_header(buf, &self.dst, &self.src, self.vlan, self.ip_ethertype());
            return self.write_ip(buf);
        };
        let content_len = if wrap.carries_ethernet() {
            ETHERNET_LEN + self.vlan.map_or(0, |_| VLAN_TAG_LEN) + self.ip_len()
        } else {
            self.ip_len()
        };
        let outer_tag = if wrap.carries_ethernet() {
            None
        } else {
            self.vlan
        };
        let (outer, ethertype) = match wrap {
            Wrap::Mpls { .. } => (None, ETHERTYPE_MPLS),
            Wrap::Pppoe { .. } => (None, ETHERTYPE_PPPOE_SESSION),
            Wrap::Vxlan { outer, .. }
            | Wrap::Geneve { outer, .. }
            | Wrap::Gre { outer, .. }
            | Wrap::Erspan { outer, .. }
            | Wrap::IpInIp { outer } => (Some(outer), ETHERTYPE_IPV4),
        };
        match outer {
            Some(o) => write_ethernet_header(
                buf,
                &IpAddr::V4(o.dst),
                &IpAddr::V4(o.src),
                outer_tag,
                ethertype,
            ),
            None => write_ethernet_header(buf, &self.dst, &self.src, outer_tag, ethertype),
        }
        // The outer IPv4 packet's length: its header, the tunnel's and the content.
        let outer_total = wrap.header_len() + content_len;
        match wrap {
            Wrap::Vxlan { vni, outer } => {
                write_ipv4_header(buf, outer.src, outer.dst, PROTO_UDP, outer_total);
                write_udp_header(buf, outer.udp_sport, PORT_VXLAN, outer_total);
                // Flags: the I bit (a valid VNI); the VNI in the high 24 bits of the last word.
                buf.extend_from_slice(&[0x08, 0, 0, 0]);
                buf.extend_from_slice(&((vni & 0x00ff_ffff) << 8).to_be_bytes());
            }
            Wrap::Geneve { vni, outer } => {
                write_ipv4_header(buf, outer.src, outer.dst, PROTO_UDP, outer_total);
                write_udp_header(buf, outer.udp_sport, PORT_GENEVE, outer_total);
                // Version 0, options 8 bytes (2 words), no flags, carrying Ethernet.
                buf.extend_from_slice(&[2, 0]);
                buf.extend_from_slice(&ETHERTYPE_TRANSPARENT_ETHERNET.to_be_bytes());
                buf.extend_from_slice(&((vni & 0x00ff_ffff) << 8).to_be_bytes());
                // One option: class 0xffff (experimental), type 1, 1 word of data.
                buf.extend_from_slice(&[0xff, 0xff, 0x01, 0x01, 0xde, 0xad, 0xbe, 0xef]);
            }
            Wrap::Gre { key, outer } => {
                write_ipv4_header(buf, outer.src, outer.dst, PROTO_GRE, outer_total);
                // Key present, version 0.
                buf.extend_from_slice(&[0x20, 0]);
                buf.extend_from_slice(&self.ip_ethertype().to_be_bytes());
                buf.extend_from_slice(&key.to_be_bytes());
            }
            Wrap::Erspan {
                session,
                sequence,
                outer,
            } => {
                write_ipv4_header(buf, outer.src, outer.dst, PROTO_GRE, outer_total);
                // Sequence number present, version 0, ERSPAN type I/II.
                buf.extend_from_slice(&[0x10, 0]);
                buf.extend_from_slice(&ETHERTYPE_ERSPAN_2.to_be_bytes());
                buf.extend_from_slice(&sequence.to_be_bytes());
                // Version 1 (type II), VLAN 0; COS 0, trunk encapsulation 0, session id;
                // reserved, index 0.
                buf.extend_from_slice(&[0x10, 0]);
                buf.extend_from_slice(&(session & 0x03ff).to_be_bytes());
                buf.extend_from_slice(&[0, 0, 0, 0]);
            }
            Wrap::IpInIp { outer } => {
                let protocol = match self.src {
                    IpAddr::V4(_) => PROTO_IPV4,
                    IpAddr::V6(_) => PROTO_IPV6,
                };
                write_ipv4_header(buf, outer.src, outer.dst, protocol, outer_total);
            }
            Wrap::Mpls { labels } => {
                // Traffic class 0, TTL 64; the second entry is the bottom of the stack.
                for (i, label) in labels.iter().enumerate() {
                    let bottom = u32::from(i == labels.len() - 1);
                    let entry = (label & 0x000f_ffff) << 12 | bottom << 8 | 64;
                    buf.extend_from_slice(&entry.to_be_bytes());
                }
            }
            Wrap::Pppoe { session } => {
                // Version 1, type 1, code 0 (session data); the length covers PPP's protocol
                // field and the packet.
                let len = u16::try_from(PPP_PROTOCOL_LEN + content_len)
                    .expect("segment too long for PPPoE");
                buf.extend_from_slice(&[0x11, 0]);
                buf.extend_from_slice(&session.to_be_bytes());
                buf.extend_from_slice(&len.to_be_bytes());
                let ppp = match self.src {
                    IpAddr::V4(_) => PPP_IPV4,
                    IpAddr::V6(_) => PPP_IPV6,
                };
                buf.extend_from_slice(&ppp.to_be_bytes());
            }
        }
        if wrap.carries_ethernet() {
            write_ethernet_header(buf, &self.dst, &self.src, self.vlan, self.ip_ethertype());
        }
        self.write_ip(buf);
    }

    fn ip_ethertype(&self) -> u16 {
        match self.src {
            IpAddr::V4(_) => ETHERTYPE_IPV4,
            IpAddr::V6(_) => ETHERTYPE_IPV6,
        }
    }

    /// Appends the IP packet: header, TCP header with options and checksum, payload.
    fn write_ip(&self, buf: &mut Vec<u8>) {
        let tcp_len = TCP_HEADER_LEN + self.options_len() + self.payload_len as usize;
        // The TCP checksum starts from the pseudo-header's sum.
        let pseudo = match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                write_ipv4_header(buf, src, dst, PROTO_TCP, IPV4_HEADER_LEN + tcp_len);
                let acc = sum_words(0, &src.octets());
                let acc = sum_words(acc, &dst.octets());
                sum_words(acc, &[0, PROTO_TCP]) + tcp_len as u32
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let payload = u16::try_from(tcp_len).expect("segment too long for IPv6");
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
            wrap: None,
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

    /// Every wrapping, over both families, tagged and not: tcpulse's decoder reads the very
    /// segment back, with the tunnel and the encapsulations, and every IPv4 header checksum of
    /// the frame verifies.
    #[test]
    fn wrapped_frames_decode_to_their_segment_and_tunnel() {
        use tcpulse_core::decode::{decode_frame, Encap, LinkType};
        let outer = Underlay {
            src: Ipv4Addr::new(100, 64, 0, 3),
            dst: Ipv4Addr::new(100, 64, 255, 254),
            udp_sport: 50_000,
        };
        let wraps = [
            (
                Wrap::Vxlan {
                    vni: 0x12_3456,
                    outer,
                },
                Encap::Vxlan,
                Some(0x12_3456),
            ),
            (Wrap::Geneve { vni: 77, outer }, Encap::Geneve, Some(77)),
            (
                Wrap::Gre {
                    key: 0xdead_beef,
                    outer,
                },
                Encap::Gre,
                Some(0xdead_beef),
            ),
            (
                Wrap::Erspan {
                    session: 513,
                    sequence: 9,
                    outer,
                },
                Encap::Erspan,
                Some(513),
            ),
            (Wrap::IpInIp { outer }, Encap::IpInIp, None),
            (
                Wrap::Mpls {
                    labels: [16, 1_048_575],
                },
                Encap::Mpls,
                None,
            ),
            (Wrap::Pppoe { session: 0x1234 }, Encap::Pppoe, None),
        ];
        let v6 = (
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 2)),
        );
        for (wrap, kind, id) in wraps {
            for family in [None, Some(v6)] {
                for vlan in [None, Some(42)] {
                    let (src, dst) = family.unwrap_or((syn_v4().src, syn_v4().dst));
                    let f = TcpFrame {
                        src,
                        dst,
                        payload_len: 100,
                        timestamps: Some((5, 6)),
                        vlan,
                        wrap: Some(wrap),
                        ..syn_v4()
                    };
                    let mut buf = Vec::new();
                    f.write_ethernet(&mut buf);
                    let what = format!("{wrap:?} {src} vlan {vlan:?}");
                    assert_eq!(buf.len(), f.frame_len(), "{what}");
                    let len = buf.len() as u32;
                    let rec = decode_frame(LinkType::Ethernet, &buf, len, 1).expect(&what);
                    assert_eq!((rec.src.to_ip(), rec.dst.to_ip()), (src, dst), "{what}");
                    assert_eq!((rec.sport, rec.dport, rec.seq), (40000, 80, 1), "{what}");
                    assert_eq!((rec.payload_len, rec.mss), (100, 1460), "{what}");
                    assert_ne!(rec.encaps & kind.bit(), 0, "{what}");
                    assert_eq!(
                        rec.encaps & Encap::Vlan.bit() != 0,
                        vlan.is_some(),
                        "{what}"
                    );
                    match wrap.tunnel() {
                        Some((want_id, o)) => {
                            let t = rec.tunnel.expect(&what);
                            assert_eq!((t.kind, t.id, want_id), (kind, id, id), "{what}");
                            assert_eq!(
                                (t.outer_src.to_ip(), t.outer_dst.to_ip()),
                                (IpAddr::V4(o.src), IpAddr::V4(o.dst)),
                                "{what}"
                            );
                        }
                        None => assert_eq!(rec.tunnel, None, "{what}"),
                    }
                    // Each IPv4 header, outer and inner, sums to 0xffff.
                    for at in 0..buf.len().saturating_sub(20) {
                        if buf[at] == 0x45 && buf[at + 8] == 64 && buf[at + 6] == 0x40 {
                            assert!(verifies(sum_words(0, &buf[at..at + 20])), "{what} at {at}");
                        }
                    }
                }
            }
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
