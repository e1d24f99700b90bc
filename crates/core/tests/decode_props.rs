//! Property tests for `decode_frame`: exact errors or records for every truncation length and
//! every bad IHL, total length or data offset, and no panic on random or mutated input (plain
//! and tunnelled frames, every link type).

use proptest::prelude::*;
use tcpulse_core::decode::{decode_frame, opt, DecodeError, LinkType, PacketRecord, NO_WSCALE};

#[path = "../src/decode/fixtures.rs"]
mod fixtures;

use fixtures::{ETH, IPV4_DATA, IPV4_SYN, IPV6_HBH_FRAG, IPV6_SYNACK, NULL_BE, NULL_LE, SLL, SLL2};

const ALL_LINKS: [LinkType; 11] = [
    LinkType::Ethernet,
    LinkType::Null,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Ppp,
    LinkType::CiscoHdlc,
    LinkType::Nflog,
    LinkType::IpOverIb,
];

/// Ethernet frames through tunnels: VXLAN (VNI 5) over IPv4/UDP, and ERSPAN II over GRE.
fn tunnelled() -> Vec<Vec<u8>> {
    let inner = [&ETH[..], &IPV4_DATA].concat();
    let outer = |protocol: u8, payload: &[u8]| {
        let total = u16::try_from(20 + payload.len()).unwrap().to_be_bytes();
        let header = [
            0x45, 0, total[0], total[1], 0, 0, 0, 0, 64, protocol, 0, 0, 203, 0, 113, 1, 203, 0,
            113, 2,
        ];
        [&ETH[..], &header, payload].concat()
    };
    let udp_len = u16::try_from(16 + inner.len()).unwrap().to_be_bytes();
    let vxlan = [
        &[0x9c, 0x40, 0x12, 0xb5, udp_len[0], udp_len[1], 0, 0][..],
        &[0x08, 0, 0, 0, 0, 0, 5, 0],
        &inner,
    ]
    .concat();
    let erspan = [
        &[0x10, 0, 0x88, 0xbe, 0, 0, 0, 1][..],
        &[0x10, 0, 0, 7, 0, 0, 0, 0],
        &inner,
    ]
    .concat();
    vec![outer(17, &vxlan), outer(47, &erspan)]
}

/// A valid frame and where each of its layers ends.
struct Case {
    name: &'static str,
    link: LinkType,
    frame: Vec<u8>,
    /// Bytes needed to decode the link layer.
    link_end: usize,
    /// End of the IP header and any extension headers.
    ip_end: usize,
    ip_error: DecodeError,
    /// End of the TCP header (its options included).
    tcp_end: usize,
}

fn cases() -> Vec<Case> {
    let mut eth6 = ETH;
    eth6[12..].copy_from_slice(&[0x86, 0xdd]);
    let mut qinq = ETH;
    qinq[12..].copy_from_slice(&[0x88, 0xa8]);
    let mut sll2_v6 = SLL2;
    sll2_v6[..2].copy_from_slice(&[0x86, 0xdd]);
    let v4 = DecodeError::MalformedIpv4;
    let v6 = DecodeError::MalformedIpv6;
    let case = |name, link, parts: &[&[u8]], link_end, ip_len, ip_error, tcp_len| Case {
        name,
        link,
        frame: parts.concat(),
        link_end,
        ip_end: link_end + ip_len,
        ip_error,
        tcp_end: link_end + ip_len + tcp_len,
    };
    vec![
        case(
            "eth v4 syn",
            LinkType::Ethernet,
            &[&ETH, &IPV4_SYN],
            14,
            20,
            v4,
            40,
        ),
        case(
            "eth v4 data",
            LinkType::Ethernet,
            &[&ETH, &IPV4_DATA],
            14,
            20,
            v4,
            32,
        ),
        case(
            "eth v6 synack",
            LinkType::Ethernet,
            &[&eth6, &IPV6_SYNACK],
            14,
            40,
            v6,
            40,
        ),
        case(
            "qinq v4 data",
            LinkType::Ethernet,
            &[&qinq, &[0, 100, 0x81, 0], &[1, 44, 8, 0], &IPV4_DATA],
            22,
            20,
            v4,
            32,
        ),
        case(
            "sll v4 data",
            LinkType::LinuxSll,
            &[&SLL, &IPV4_DATA],
            16,
            20,
            v4,
            32,
        ),
        case(
            "sll2 v6 chain",
            LinkType::LinuxSll2,
            &[&sll2_v6, &IPV6_HBH_FRAG],
            20,
            56,
            v6,
            20,
        ),
        case(
            "null le v4",
            LinkType::Null,
            &[&NULL_LE, &IPV4_SYN],
            4,
            20,
            v4,
            40,
        ),
        case(
            "null be v4",
            LinkType::Null,
            &[&NULL_BE, &IPV4_DATA],
            4,
            20,
            v4,
            32,
        ),
        case("raw v6", LinkType::Raw, &[&IPV6_HBH_FRAG], 1, 55, v6, 20),
        case("ipv4", LinkType::Ipv4, &[&IPV4_DATA], 0, 20, v4, 32),
    ]
}

fn decode(link: LinkType, data: &[u8], wire_len: usize) -> Result<PacketRecord, DecodeError> {
    decode_frame(link, data, u32::try_from(wire_len).unwrap(), 42)
}

/// What must hold for any input, valid or not.
fn check_invariants(data: &[u8], wire_len: u32, result: Result<PacketRecord, DecodeError>) {
    let Ok(rec) = result else { return };
    assert!(rec.wscale == NO_WSCALE || rec.wscale <= 14, "{rec:?}");
    assert_eq!(rec.ts_ns, 42);
    let wire = (wire_len as usize).max(data.len());
    assert!((rec.payload_len as usize) < wire, "{rec:?}");
    if wire_len as usize <= data.len() {
        assert_eq!(rec.options & opt::TRUNCATED_PAYLOAD, 0, "{rec:?}");
    }
}

/// Fixed TCP header length.
const TCP_FIXED: usize = 20;

/// `rec` is `full` but for the options a cut made unreadable.
fn same_but_options(rec: &PacketRecord, full: &PacketRecord) -> bool {
    let core = |r: &PacketRecord| {
        (
            r.src, r.dst, r.sport, r.dport, r.seq, r.ack, r.flags, r.window,
        )
    };
    let seen = rec.options & (opt::SACK_PERMITTED | opt::SACK | opt::TIMESTAMP);
    core(rec) == core(full)
        && rec.payload_len == full.payload_len
        && seen & !full.options == 0
        && rec.options & (opt::TRUNCATED_OPTIONS | opt::TRUNCATED_PAYLOAD)
            == opt::TRUNCATED_OPTIONS | opt::TRUNCATED_PAYLOAD
}

#[test]
fn every_truncation_gives_the_layer_error() {
    for case in cases() {
        let len = case.frame.len();
        let full = decode(case.link, &case.frame, len).unwrap();
        assert_eq!(full.options & opt::TRUNCATED_PAYLOAD, 0, "{}", case.name);
        for cut in 0..=len {
            let got = decode(case.link, &case.frame[..cut], len);
            if (case.ip_end + TCP_FIXED..case.tcp_end).contains(&cut) {
                // Cut in the options: a record, flagged, with the options before the cut.
                let rec = got.unwrap();
                assert!(
                    same_but_options(&rec, &full),
                    "{} cut at {cut}: {rec:?}",
                    case.name
                );
                continue;
            }
            let expected = if cut < case.link_end {
                Err(DecodeError::MalformedLink)
            } else if cut < case.ip_end {
                Err(case.ip_error)
            } else if cut < case.ip_end + TCP_FIXED {
                Err(DecodeError::MalformedTcp)
            } else if cut < len {
                Ok(PacketRecord {
                    options: full.options | opt::TRUNCATED_PAYLOAD,
                    ..full
                })
            } else {
                Ok(full)
            };
            assert_eq!(got, expected, "{} cut at {cut}", case.name);
        }
    }
}

#[test]
fn truncation_without_snaplen_is_clipped() {
    // The writer recorded no longer original length: the IP length overruns what was on the
    // wire, and what is there is used, noted.
    for case in cases() {
        let len = case.frame.len();
        let full = decode(case.link, &case.frame, len).unwrap();
        for cut in 0..len {
            let expected = if cut < case.link_end {
                Err(DecodeError::MalformedLink)
            } else if cut < case.ip_end {
                Err(case.ip_error)
            } else if cut < case.tcp_end {
                // The TCP header overruns the segment that was there.
                Err(DecodeError::MalformedTcp)
            } else {
                let clipped = u32::try_from(len - cut).unwrap();
                Ok(PacketRecord {
                    payload_len: full.payload_len - clipped,
                    options: full.options | opt::LENGTH_CLIPPED,
                    ..full
                })
            };
            assert_eq!(
                decode(case.link, &case.frame[..cut], cut),
                expected,
                "{} cut at {cut}",
                case.name
            );
        }
    }
}

/// IPv4 + a 20-byte TCP ACK, no payload (total length 40).
fn ipv4_ack() -> Vec<u8> {
    let mut p = IPV4_SYN[..40].to_vec();
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[32] = 0x50;
    p[33] = 0x10;
    p
}

/// IPv4 + TCP whose options and payload are all NOP bytes: any data offset from 5 to 15 parses.
fn ipv4_nops() -> Vec<u8> {
    let mut p = IPV4_SYN[..40].to_vec();
    p.resize(100, 1);
    p[2..4].copy_from_slice(&100u16.to_be_bytes());
    p[32] = 0x50;
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn truncation_with_any_wire_len(case in 0..cases().len(), cut in 0usize..200, extra in 0usize..100) {
        let case = &cases()[case];
        let cut = cut.min(case.frame.len());
        let wire_len = cut + extra;
        let result = decode(case.link, &case.frame[..cut], wire_len);
        check_invariants(&case.frame[..cut], u32::try_from(wire_len).unwrap(), result);
        if let Ok(rec) = result {
            let full = decode(case.link, &case.frame, case.frame.len()).unwrap();
            if wire_len >= case.frame.len() {
                prop_assert_eq!(rec.payload_len, full.payload_len);
            } else {
                // The frame was shorter on the wire than its IP header says.
                let clipped = u32::try_from(case.frame.len() - wire_len).unwrap();
                prop_assert_eq!(rec.payload_len, full.payload_len - clipped);
                prop_assert_eq!(rec.options & opt::LENGTH_CLIPPED, opt::LENGTH_CLIPPED);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..256),
        wire_len in any::<u32>(),
    ) {
        for link in ALL_LINKS {
            check_invariants(&data, wire_len, decode_frame(link, &data, wire_len, 42));
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        case in 0usize..64,
        mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut frames: Vec<Vec<u8>> = cases().into_iter().map(|c| c.frame).collect();
        frames.extend(tunnelled());
        let original = &frames[case % frames.len()];
        let mut frame = original.clone();
        for (at, byte) in mutations {
            let at = at % frame.len();
            frame[at] = byte;
        }
        frame.truncate(cut % (frame.len() + 1));
        let wire_len = u32::try_from(original.len()).unwrap();
        for link in ALL_LINKS {
            check_invariants(&frame, wire_len, decode_frame(link, &frame, wire_len, 42));
        }
    }

    #[test]
    fn bad_ihl_exact_error(ihl in 0u8..16, tos in any::<u8>()) {
        let mut p = ipv4_ack();
        p[0] = 0x40 | ihl;
        p[1] = tos;
        let expected = match ihl {
            0..=4 => Err(DecodeError::MalformedIpv4),
            5 => Ok(0),
            // The TCP header would start inside the 40 bytes but have fewer than 20 left.
            6..=10 => Err(DecodeError::MalformedTcp),
            // The header would be longer than the total length.
            _ => Err(DecodeError::MalformedIpv4),
        };
        prop_assert_eq!(decode(LinkType::Ipv4, &p, p.len()).map(|r| r.payload_len), expected);
    }

    #[test]
    fn bad_version_exact_error(version in 0u8..16) {
        let mut p = ipv4_ack();
        p[0] = version << 4 | 5;
        let expected = if version == 4 { Ok(0) } else { Err(DecodeError::MalformedIpv4) };
        prop_assert_eq!(decode(LinkType::Ipv4, &p, p.len()).map(|r| r.payload_len), expected);
    }

    #[test]
    fn bad_total_length_exact_error(total in any::<u16>()) {
        let mut p = ipv4_nops();
        p[2..4].copy_from_slice(&total.to_be_bytes());
        let expected = match total {
            // 0: the frame's length (TSO, BIG TCP); longer than the frame: clipped to it.
            0 | 101.. => Ok(60),
            // Shorter than the IP header.
            1..=19 => Err(DecodeError::MalformedIpv4),
            // The TCP header (data offset 5) needs 20 bytes.
            20..=39 => Err(DecodeError::MalformedTcp),
            _ => Ok(u32::from(total) - 40),
        };
        prop_assert_eq!(decode(LinkType::Ipv4, &p, p.len()).map(|r| r.payload_len), expected);
    }

    #[test]
    fn bad_data_offset_exact_error(data_offset in 0u8..16, reserved in 0u8..16, short in any::<bool>()) {
        let mut p = ipv4_nops();
        if short {
            // A 32-byte segment: data offsets above 8 overrun it.
            p.truncate(52);
            p[2..4].copy_from_slice(&52u16.to_be_bytes());
        }
        p[32] = data_offset << 4 | reserved;
        let segment = p.len() - 20;
        let header = usize::from(data_offset) * 4;
        let expected = if data_offset < 5 || header > segment {
            Err(DecodeError::MalformedTcp)
        } else {
            Ok(u32::try_from(segment - header).unwrap())
        };
        prop_assert_eq!(decode(LinkType::Ipv4, &p, p.len()).map(|r| r.payload_len), expected);
    }

    #[test]
    fn vlan_ids_outermost(outer in 0u16..4096, inner in 0u16..4096, pcp in 0u16..8) {
        let mut eth = ETH;
        eth[12..].copy_from_slice(&[0x81, 0x00]);
        let outer_tag = [(pcp << 13 | outer).to_be_bytes(), [0x81, 0x00]].concat();
        let inner_tag = [inner.to_be_bytes(), [0x08, 0x00]].concat();
        let frame = [&eth[..], &outer_tag, &inner_tag, &IPV4_SYN].concat();
        let rec = decode(LinkType::Ethernet, &frame, frame.len()).unwrap();
        prop_assert_eq!(rec.vlan, outer);
    }
}

#[test]
fn tunnelled_frames_decode_to_the_inner_segment() {
    let inner = decode(LinkType::Ipv4, &IPV4_DATA, IPV4_DATA.len()).unwrap();
    for frame in tunnelled() {
        let rec = decode(LinkType::Ethernet, &frame, frame.len()).unwrap();
        assert_eq!(
            (rec.src, rec.sport, rec.seq),
            (inner.src, inner.sport, inner.seq)
        );
        assert_eq!(rec.payload_len, inner.payload_len);
        assert!(rec.tunnel.is_some_and(|t| t.id.is_some()), "{rec:?}");
    }
}
