//! Frame decoding: link layer → IP (→ tunnels → ... → IP) → TCP, through checked zero-copy
//! views.
//!
//! `decode_frame` is the only entry point the pipeline uses. It never panics on any input: every
//! frame either becomes a [`PacketRecord`] or a [`DecodeError`] that the caller counts.
//!
//! Each layer is a view over the captured bytes built with `new_checked`/`parse`; once built, its
//! getters cannot fail. Lengths come from the headers (IP total or payload length), never from the
//! captured length, so a snaplen-cut frame still reports its full payload.

mod error;
mod ipv4;
mod ipv6;
mod link;
mod record;
mod tcp;
mod tunnel;

#[cfg(test)]
mod encap_tests;
#[cfg(test)]
mod fixtures;

pub use error::DecodeError;
pub use link::LinkType;
pub use record::{flags, opt, Addr, Encap, Endpoint, PacketRecord, Tunnel, NO_WSCALE};

use ipv4::Ipv4Packet;
use ipv6::Ipv6Packet;
use link::{LinkFrame, Network};
use tcp::TcpSegment;
use tunnel::{decapsulate, Inner};

/// IP protocol number of TCP.
const PROTO_TCP: u8 = tunnel::proto::TCP;

/// Tunnels followed on one frame (`VLAN in VXLAN in VLAN` is one; GRE in IP-in-IP two). More is
/// not a real network, and it bounds the work per frame; the link-level headers inside each
/// layer have their own bound (16, of which at most 8 VLAN tags).
pub const MAX_TUNNELS: usize = 8;

/// Decode one captured frame.
///
/// `wire_len` is the frame's length on the wire (pcap `orig_len`), `data` the captured bytes (may
/// be shorter: snaplen). Tunnels and link-level encapsulations are followed (up to
/// [`MAX_TUNNELS`]) to the innermost TCP segment, whose addresses and ports make the record;
/// the record says which encapsulations it came through and names the innermost tunnel.
/// Lengths come from the headers; when they overrun what the frame held on the wire, what it
/// held is used and the record says so ([`opt`]).
///
/// # Errors
///
/// The [`DecodeError`] of the first layer that cannot be decoded; see its variants.
pub fn decode_frame(
    link: LinkType,
    data: &[u8],
    wire_len: u32,
    ts_ns: u64,
) -> Result<PacketRecord, DecodeError> {
    let frame = LinkFrame::parse(link, data)?;
    // Bytes the IP packet may span: what was on the wire, or what we hold if a writer put a
    // wire_len smaller than the captured length.
    let wire = usize::try_from(wire_len)
        .unwrap_or(usize::MAX)
        .max(data.len())
        .saturating_sub(frame.offset);
    let mut rec = PacketRecord {
        ts_ns,
        vlan: frame.vlan,
        encaps: frame.encaps,
        wscale: NO_WSCALE,
        ..PacketRecord::default()
    };
    let (mut network, mut bytes, mut wire) = (frame.network, frame.payload, wire);
    // The innermost IP layer and up to MAX_TUNNELS outer ones.
    for _ in 0..=MAX_TUNNELS {
        // The IP layer: its addresses, and what it carries.
        let (protocol, upper, upper_len, src, dst) = match network {
            Network::Ipv4 => {
                let ip = Ipv4Packet::new_checked(bytes, wire)?;
                if ip.is_later_fragment() {
                    // Only TCP lost to fragmentation counts as fragments.
                    return Err(if ip.protocol() == PROTO_TCP {
                        DecodeError::Fragment
                    } else {
                        DecodeError::NotTcp
                    });
                }
                if ip.is_fragment() {
                    rec.options |= opt::FIRST_FRAGMENT;
                }
                rec.options |= ip.length_note();
                (
                    ip.protocol(),
                    ip.payload(),
                    ip.payload_len(),
                    Addr::from_v4(ip.src()),
                    Addr::from_v4(ip.dst()),
                )
            }
            Network::Ipv6 => {
                let ip = Ipv6Packet::new_checked(bytes, wire)?;
                let upper = ip.upper_layer()?;
                if upper.first_fragment {
                    rec.options |= opt::FIRST_FRAGMENT;
                }
                rec.options |= ip.length_note();
                (
                    upper.protocol,
                    upper.bytes,
                    upper.len,
                    Addr::from_v6(ip.src()),
                    Addr::from_v6(ip.dst()),
                )
            }
        };
        if protocol == PROTO_TCP {
            rec.src = src;
            rec.dst = dst;
            return tcp_record(rec, upper, upper_len);
        }
        if rec.options & opt::FIRST_FRAGMENT != 0 {
            // A tunnel header in a first fragment: the rest of the frame is elsewhere.
            return Err(DecodeError::NotTcp);
        }
        let tunnel = decapsulate(protocol, upper, upper_len)?;
        rec.encaps |= tunnel.kind.bit();
        rec.tunnel = Some(Tunnel {
            kind: tunnel.kind,
            id: tunnel.id,
            outer_src: src,
            outer_dst: dst,
        });
        (network, bytes, wire) = match tunnel.inner {
            Inner::Ip(network) => (network, tunnel.bytes, tunnel.wire_len),
            Inner::Ethernet | Inner::Mpls => {
                let inner = match tunnel.inner {
                    Inner::Ethernet => link::after_ethernet(tunnel.bytes)?,
                    _ => link::after_mpls(tunnel.bytes)?,
                };
                rec.encaps |= inner.encaps;
                if rec.vlan == 0 {
                    rec.vlan = inner.vlan;
                }
                (
                    inner.network,
                    inner.payload,
                    tunnel.wire_len.saturating_sub(inner.offset),
                )
            }
        };
    }
    Err(DecodeError::EncapTooDeep)
}

/// The TCP layer of `rec`, from its captured bytes and declared length.
#[inline]
fn tcp_record(
    mut rec: PacketRecord,
    segment: &[u8],
    segment_len: usize,
) -> Result<PacketRecord, DecodeError> {
    let tcp = TcpSegment::new_checked(segment, segment_len)?;
    let options = tcp.options()?;
    rec.sport = tcp.src_port();
    rec.dport = tcp.dst_port();
    rec.seq = tcp.seq();
    rec.ack = tcp.ack();
    rec.flags = tcp.flags();
    rec.window = tcp.window();
    rec.payload_len = u32::try_from(tcp.payload_len()).unwrap_or(u32::MAX);
    rec.mss = options.mss;
    rec.wscale = options.wscale;
    rec.options |= options.present;
    rec.tsval = options.tsval;
    rec.tsecr = options.tsecr;
    if tcp.is_truncated() {
        rec.options |= opt::TRUNCATED_PAYLOAD;
    }
    if tcp.options_cut() {
        rec.options |= opt::TRUNCATED_OPTIONS;
    }
    Ok(rec)
}

/// `N` bytes at `at`, or zeros when out of range. Views only read fixed offsets of headers whose
/// length they checked on construction, so the zeros are never seen; the fallback exists so that
/// no read can panic, and it folds away once inlined over a fixed-size header.
#[inline(always)]
fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    match bytes.get(at..).and_then(<[u8]>::first_chunk::<N>) {
        Some(array) => *array,
        None => [0; N],
    }
}

/// Big-endian `u16` at `at` (see [`array_at`]).
#[inline(always)]
fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(array_at(bytes, at))
}

/// Big-endian `u32` at `at` (see [`array_at`]).
#[inline(always)]
fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(array_at(bytes, at))
}

#[cfg(test)]
mod tests {
    use super::fixtures::{
        ETH, IPV4_DATA, IPV4_SYN, IPV6_HBH_FRAG, IPV6_SYNACK, NULL_BE, SLL, SLL2,
    };
    use super::*;

    const TS: u64 = 1_700_000_000_123_456_789;

    fn decode(link: LinkType, parts: &[&[u8]]) -> Result<PacketRecord, DecodeError> {
        let frame = parts.concat();
        decode_frame(link, &frame, u32::try_from(frame.len()).unwrap(), TS)
    }

    fn eth6() -> [u8; 14] {
        let mut eth = ETH;
        eth[12..].copy_from_slice(&[0x86, 0xdd]);
        eth
    }

    fn v6(last: u8) -> Addr {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[15] = last;
        Addr::from_v6(a)
    }

    fn ipv4_syn_record() -> PacketRecord {
        PacketRecord {
            ts_ns: TS,
            src: Addr::from_v4([192, 0, 2, 1]),
            dst: Addr::from_v4([198, 51, 100, 7]),
            sport: 51234,
            dport: 443,
            seq: 0x0102_0304,
            ack: 0,
            payload_len: 0,
            window: 64240,
            mss: 1460,
            flags: flags::SYN,
            wscale: 7,
            options: opt::SACK_PERMITTED | opt::TIMESTAMP,
            tsval: 0x0a0b_0c0d,
            tsecr: 0,
            vlan: 0,
            encaps: 0,
            tunnel: None,
        }
    }

    #[test]
    fn ethernet_ipv4_syn() {
        assert_eq!(
            decode(LinkType::Ethernet, &[&ETH, &IPV4_SYN]),
            Ok(ipv4_syn_record())
        );
    }

    #[test]
    fn ethernet_ipv4_data() {
        let rec = decode(LinkType::Ethernet, &[&ETH, &IPV4_DATA]).unwrap();
        assert_eq!(rec.payload_len, 12);
        assert_eq!(rec.flags, flags::PSH | flags::ACK);
        assert_eq!(
            (rec.seq, rec.ack, rec.window),
            (0x0102_0305, 0x0a00_0001, 502)
        );
        assert_eq!((rec.mss, rec.wscale), (0, NO_WSCALE));
        assert_eq!(rec.options, opt::TIMESTAMP);
    }

    #[test]
    fn ethernet_padding_ignored() {
        // A bare 20-byte ACK is 54 bytes on Ethernet, padded to the 60-byte minimum.
        let mut ack = IPV4_SYN[..40].to_vec();
        ack[2..4].copy_from_slice(&40u16.to_be_bytes());
        ack[32] = 0x50;
        ack[33] = flags::ACK;
        let rec = decode(LinkType::Ethernet, &[&ETH, &ack, &[0xee; 6]]).unwrap();
        assert_eq!(rec.payload_len, 0);
        assert_eq!(rec.options, 0);
    }

    #[test]
    fn vlan_and_qinq() {
        let mut eth = ETH;
        eth[12..].copy_from_slice(&[0x88, 0xa8]);
        let outer = [0x00, 0x64, 0x81, 0x00];
        let inner = [0x01, 0x2c, 0x08, 0x00];
        let rec = decode(LinkType::Ethernet, &[&eth, &outer, &inner, &IPV4_SYN]).unwrap();
        assert_eq!(
            rec,
            PacketRecord {
                vlan: 100,
                encaps: Encap::Vlan.bit(),
                ..ipv4_syn_record()
            }
        );
    }

    #[test]
    fn cooked_and_loopback() {
        assert_eq!(
            decode(LinkType::LinuxSll, &[&SLL, &IPV4_SYN]),
            Ok(ipv4_syn_record())
        );
        assert_eq!(
            decode(LinkType::LinuxSll2, &[&SLL2, &IPV4_SYN]),
            Ok(ipv4_syn_record())
        );
        assert_eq!(
            decode(LinkType::Null, &[&NULL_BE, &IPV4_SYN]),
            Ok(ipv4_syn_record())
        );
        assert_eq!(decode(LinkType::Raw, &[&IPV4_SYN]), Ok(ipv4_syn_record()));
        assert_eq!(decode(LinkType::Ipv4, &[&IPV4_SYN]), Ok(ipv4_syn_record()));
    }

    #[test]
    fn ipv6_synack() {
        let expected = PacketRecord {
            ts_ns: TS,
            src: v6(7),
            dst: v6(1),
            sport: 443,
            dport: 51234,
            seq: 0xa000_0000,
            ack: 0x0102_0305,
            payload_len: 0,
            window: 65160,
            mss: 1440,
            flags: flags::SYN | flags::ACK,
            wscale: 9,
            options: opt::SACK_PERMITTED | opt::TIMESTAMP,
            tsval: 0x1122_3344,
            tsecr: 0x0a0b_0c0d,
            vlan: 0,
            encaps: 0,
            tunnel: None,
        };
        assert_eq!(
            decode(LinkType::Ethernet, &[&eth6(), &IPV6_SYNACK]),
            Ok(expected)
        );
        assert_eq!(decode(LinkType::Raw, &[&IPV6_SYNACK]), Ok(expected));
        assert_eq!(decode(LinkType::Ipv6, &[&IPV6_SYNACK]), Ok(expected));
        assert_eq!(
            decode(LinkType::Null, &[&30u32.to_le_bytes(), &IPV6_SYNACK]),
            Ok(expected)
        );
    }

    #[test]
    fn ipv6_extension_chain() {
        let mut sll2 = SLL2;
        sll2[..2].copy_from_slice(&[0x86, 0xdd]);
        let rec = decode(LinkType::LinuxSll2, &[&sll2, &IPV6_HBH_FRAG]).unwrap();
        assert_eq!((rec.src, rec.dst), (v6(1), v6(7)));
        assert_eq!((rec.sport, rec.dport), (51234, 443));
        assert_eq!(rec.payload_len, 4);
        assert_eq!(rec.flags, flags::PSH | flags::ACK);
    }

    #[test]
    fn snaplen_truncated_payload() {
        let frame = [&ETH[..], &IPV4_DATA].concat();
        let wire_len = u32::try_from(frame.len()).unwrap();
        let full = decode_frame(LinkType::Ethernet, &frame, wire_len, TS).unwrap();
        // Cut anywhere in the payload: same record, payload still counted in full, flagged.
        for cut in 14 + 52..frame.len() {
            let rec = decode_frame(LinkType::Ethernet, &frame[..cut], wire_len, TS).unwrap();
            assert_eq!(
                rec,
                PacketRecord {
                    options: full.options | opt::TRUNCATED_PAYLOAD,
                    ..full
                },
                "{cut}"
            );
        }
        // Cut in the options: the fixed header is read, the options before the cut too.
        for cut in 14 + 40..14 + 52 {
            let rec = decode_frame(LinkType::Ethernet, &frame[..cut], wire_len, TS).unwrap();
            // The timestamp option ends the options: it is never whole here.
            assert_eq!(
                rec,
                PacketRecord {
                    options: opt::TRUNCATED_PAYLOAD | opt::TRUNCATED_OPTIONS,
                    tsval: 0,
                    tsecr: 0,
                    ..full
                },
                "{cut}"
            );
        }
        // Cut in the fixed TCP header.
        assert_eq!(
            decode_frame(LinkType::Ethernet, &frame[..14 + 39], wire_len, TS),
            Err(DecodeError::MalformedTcp)
        );
    }

    #[test]
    fn ip_length_beyond_the_wire() {
        // Not cut by snaplen (wire_len = captured), yet the IP header claims more: what the
        // frame held is used, and the record says so.
        let rec = decode(LinkType::Ethernet, &[&ETH, &IPV4_DATA[..60]]).unwrap();
        assert_eq!(rec.payload_len, 12 - 4);
        assert_eq!(rec.options, opt::TIMESTAMP | opt::LENGTH_CLIPPED);
        // Clipped inside the TCP options: the header overruns the segment that was there.
        assert_eq!(
            decode(LinkType::Ethernet, &[&ETH, &IPV4_DATA[..48]]),
            Err(DecodeError::MalformedTcp)
        );
        let frame = [&eth6()[..], &IPV6_SYNACK[..70]].concat();
        assert_eq!(
            decode(LinkType::Ethernet, &[&frame]),
            Err(DecodeError::MalformedTcp)
        );
        let mut synack = IPV6_SYNACK;
        synack[5] += 8;
        let rec = decode(LinkType::Ethernet, &[&eth6(), &synack]).unwrap();
        assert_eq!(rec.options & opt::LENGTH_CLIPPED, opt::LENGTH_CLIPPED);
        assert_eq!(rec.payload_len, 0);
        // An wire_len below the captured length is taken as the captured length.
        let frame = [&ETH[..], &IPV4_SYN].concat();
        assert_eq!(
            decode_frame(LinkType::Ethernet, &frame, 0, TS),
            Ok(ipv4_syn_record())
        );
    }

    #[test]
    fn not_tcp_before_fragment() {
        let mut udp_fragment = IPV4_SYN;
        udp_fragment[9] = 17;
        udp_fragment[6] = 0x20;
        assert_eq!(
            decode(LinkType::Raw, &[&udp_fragment]),
            Err(DecodeError::NotTcp)
        );
        // A first fragment: its TCP header is read.
        let mut tcp_fragment = IPV4_SYN;
        tcp_fragment[6] = 0x20;
        assert_eq!(
            decode(LinkType::Raw, &[&tcp_fragment]),
            Ok(PacketRecord {
                options: ipv4_syn_record().options | opt::FIRST_FRAGMENT,
                ..ipv4_syn_record()
            })
        );
        let mut later_fragment = IPV4_SYN;
        later_fragment[7] = 0xb9;
        assert_eq!(
            decode(LinkType::Raw, &[&later_fragment]),
            Err(DecodeError::Fragment)
        );
        let mut v6_first = IPV6_HBH_FRAG;
        v6_first[51] = 0x01;
        let rec = decode(LinkType::Raw, &[&v6_first]).unwrap();
        assert_eq!(rec.options & opt::FIRST_FRAGMENT, opt::FIRST_FRAGMENT);
        assert_eq!(rec.payload_len, 4);
        let mut v6_later = IPV6_HBH_FRAG;
        v6_later[51] = 0x08;
        assert_eq!(
            decode(LinkType::Raw, &[&v6_later]),
            Err(DecodeError::Fragment)
        );
    }

    #[test]
    fn every_layer_reports_its_own_error() {
        assert_eq!(
            decode(LinkType::Ethernet, &[&ETH[..13]]),
            Err(DecodeError::MalformedLink)
        );
        assert_eq!(
            decode(LinkType::Ethernet, &[&ETH]),
            Err(DecodeError::MalformedIpv4)
        );
        assert_eq!(
            decode(LinkType::Ethernet, &[&eth6()]),
            Err(DecodeError::MalformedIpv6)
        );
        assert_eq!(
            decode(LinkType::Ethernet, &[&ETH, &IPV4_SYN[..19]]),
            Err(DecodeError::MalformedIpv4)
        );
        assert_eq!(
            decode(LinkType::Ethernet, &[&ETH, &IPV4_SYN[..39]]),
            Err(DecodeError::MalformedTcp)
        );
        let mut arp = ETH;
        arp[12..].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(
            decode(LinkType::Ethernet, &[&arp, &IPV4_SYN]),
            Err(DecodeError::NotIp)
        );
        let mut icmp = IPV4_SYN;
        icmp[9] = 1;
        assert_eq!(decode(LinkType::Ipv4, &[&icmp]), Err(DecodeError::NotTcp));
        let mut bad_option = IPV4_SYN;
        bad_option[41] = 1;
        assert_eq!(
            decode(LinkType::Ipv4, &[&bad_option]),
            Err(DecodeError::MalformedTcp)
        );
    }
}
