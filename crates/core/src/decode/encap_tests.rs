//! Tunnels and link-level encapsulations, one frame built per kind from its specification (see
//! the module docs of `tunnel` and `link`), decoded to the same inner segment; and every cut of
//! every such header reported as that header's own error.

use super::fixtures::{ETH, IPV4_SYN, IPV6_SYNACK};
use super::*;

const TS: u64 = 1_700_000_000_000_000_000;
const OUTER_SRC: [u8; 4] = [203, 0, 113, 1];
const OUTER_DST: [u8; 4] = [203, 0, 113, 2];

fn outer_v4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).unwrap();
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, protocol, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&OUTER_SRC);
    ip.extend_from_slice(&OUTER_DST);
    ip.extend_from_slice(payload);
    ip
}

fn outer_v6(next: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len()).unwrap();
    let mut ip = vec![0x60, 0, 0, 0, 0, 0, next, 64];
    ip[4..6].copy_from_slice(&len.to_be_bytes());
    ip.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa1,
    ]);
    ip.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa2,
    ]);
    ip.extend_from_slice(payload);
    ip
}

fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    udp_from(40000, dport, payload)
}

fn udp_from(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).unwrap();
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = ETH[..12].to_vec();
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn vlan(id: u16, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    [&id.to_be_bytes()[..], &ethertype.to_be_bytes(), payload].concat()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn decode(link: LinkType, frame: &[u8]) -> Result<PacketRecord, DecodeError> {
    decode_frame(link, frame, u32::try_from(frame.len()).unwrap(), TS)
}

/// The inner SYN of the fixtures, as decoded plainly.
fn syn() -> PacketRecord {
    decode(LinkType::Raw, &IPV4_SYN).unwrap()
}

fn synack6() -> PacketRecord {
    decode(LinkType::Raw, &IPV6_SYNACK).unwrap()
}

fn tunnel(kind: Encap, id: Option<u32>) -> Option<Tunnel> {
    Some(Tunnel {
        kind,
        id,
        outer_src: Addr::from_v4(OUTER_SRC),
        outer_dst: Addr::from_v4(OUTER_DST),
    })
}

/// `frame` decodes to `inner` seen through `encaps`, with `tunnel` innermost.
fn assert_through(
    frame: &[u8],
    inner: PacketRecord,
    encaps: &[Encap],
    tunnel: Option<Tunnel>,
) -> PacketRecord {
    let rec = decode(LinkType::Ethernet, frame).unwrap();
    let bits = encaps.iter().fold(0, |b, e| b | e.bit());
    assert_eq!(
        rec,
        PacketRecord {
            encaps: bits,
            tunnel,
            vlan: rec.vlan,
            ..inner
        }
    );
    rec
}

/// Every cut of `frame` from `from` to `to` (exclusive), with the full length on the wire,
/// is the error `want`.
fn assert_cuts(frame: &[u8], from: usize, to: usize, want: DecodeError) {
    let wire = u32::try_from(frame.len()).unwrap();
    for cut in from..to {
        assert_eq!(
            decode_frame(LinkType::Ethernet, &frame[..cut], wire, TS),
            Err(want),
            "cut at {cut}"
        );
    }
}

const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;

#[test]
fn ip_in_ip() {
    let frame = eth(IPV4, &outer_v4(4, &IPV4_SYN));
    assert_through(&frame, syn(), &[Encap::IpInIp], tunnel(Encap::IpInIp, None));
    let frame = eth(IPV4, &outer_v4(41, &IPV6_SYNACK));
    assert_through(
        &frame,
        synack6(),
        &[Encap::IpInIp],
        tunnel(Encap::IpInIp, None),
    );
    let frame = eth(IPV6, &outer_v6(4, &IPV4_SYN));
    let rec = decode(LinkType::Ethernet, &frame).unwrap();
    assert_eq!(rec.tunnel.map(|t| t.kind), Some(Encap::IpInIp));
    assert_eq!(
        rec.tunnel.unwrap().outer_src.to_ip().to_string(),
        "2001:db8::a1"
    );
    assert_eq!((rec.src, rec.sport), (syn().src, syn().sport));
}

#[test]
fn gre_plain_and_with_every_optional_field() {
    let frame = eth(IPV4, &outer_v4(47, &cat(&[&[0, 0, 0x08, 0x00], &IPV4_SYN])));
    assert_through(&frame, syn(), &[Encap::Gre], tunnel(Encap::Gre, None));
    // Checksum, key 100, sequence.
    let gre = [
        0xb0, 0, 0x08, 0x00, 0xab, 0xcd, 0, 0, 0, 0, 0, 100, 0, 0, 0, 7,
    ];
    let frame = eth(IPV4, &outer_v4(47, &cat(&[&gre, &IPV4_SYN])));
    assert_through(&frame, syn(), &[Encap::Gre], tunnel(Encap::Gre, Some(100)));
    assert_cuts(
        &frame,
        14 + 20,
        14 + 20 + gre.len(),
        DecodeError::MalformedGre,
    );
    // Transparent Ethernet bridging, with a VLAN inside; an MPLS label stack.
    let inner = eth(0x8100, &vlan(42, IPV4, &IPV4_SYN));
    let frame = eth(
        IPV4,
        &outer_v4(47, &cat(&[&[0x20, 0, 0x65, 0x58, 0, 0, 0, 9], &inner])),
    );
    let rec = assert_through(
        &frame,
        syn(),
        &[Encap::Gre, Encap::Vlan],
        tunnel(Encap::Gre, Some(9)),
    );
    assert_eq!(rec.vlan, 42, "the only VLAN is the inner one");
    let labels = [0, 0x01, 0x20, 0x40, 0, 0x02, 0x01, 0x40];
    let frame = eth(
        IPV4,
        &outer_v4(47, &cat(&[&[0, 0, 0x88, 0x47], &labels, &IPV4_SYN])),
    );
    assert_through(
        &frame,
        syn(),
        &[Encap::Gre, Encap::Mpls],
        tunnel(Encap::Gre, None),
    );
    // PPTP's GRE (version 1), unknown protocols and source routing carry no TCP we follow.
    for gre in [
        [0x30, 0x81, 0x88, 0x0b],
        [0, 0, 0x12, 0x34],
        [0x40, 0, 0x08, 0x00],
    ] {
        let frame = eth(IPV4, &outer_v4(47, &cat(&[&gre, &[0; 8], &IPV4_SYN])));
        assert_eq!(decode(LinkType::Ethernet, &frame), Err(DecodeError::NotIp));
    }
}

#[test]
fn erspan_types() {
    // Type I: no sequence number, no ERSPAN header.
    let mirrored = eth(IPV4, &IPV4_SYN);
    let frame = eth(IPV4, &outer_v4(47, &cat(&[&[0, 0, 0x88, 0xbe], &mirrored])));
    assert_through(&frame, syn(), &[Encap::Erspan], tunnel(Encap::Erspan, None));
    // Type II: version 1, VLAN 5, session 0x123, index 0.
    let header = [0x10, 0x05, 0x01, 0x23, 0, 0, 0, 0];
    let gre = [0x10, 0, 0x88, 0xbe, 0, 0, 0, 1];
    let frame = eth(IPV4, &outer_v4(47, &cat(&[&gre, &header, &mirrored])));
    assert_through(
        &frame,
        syn(),
        &[Encap::Erspan],
        tunnel(Encap::Erspan, Some(0x123)),
    );
    assert_cuts(
        &frame,
        14 + 20 + 8,
        14 + 20 + 16,
        DecodeError::MalformedErspan,
    );
    // Type III: version 2, session 0x3ff, timestamp, SGT, then P/FT/HW/D/Gra/O.
    let header = [0x20, 0, 0x03, 0xff, 1, 2, 3, 4, 0, 0, 0, 0];
    let gre = [0x10, 0, 0x22, 0xeb, 0, 0, 0, 1];
    let frame = eth(IPV4, &outer_v4(47, &cat(&[&gre, &header, &mirrored])));
    assert_through(
        &frame,
        syn(),
        &[Encap::Erspan],
        tunnel(Encap::Erspan, Some(0x3ff)),
    );
    // With the O flag: an 8-byte platform subheader before the frame.
    let mut with_platform = header;
    with_platform[11] = 0x01;
    let frame = eth(
        IPV4,
        &outer_v4(47, &cat(&[&gre, &with_platform, &[7; 8], &mirrored])),
    );
    assert_through(
        &frame,
        syn(),
        &[Encap::Erspan],
        tunnel(Encap::Erspan, Some(0x3ff)),
    );
    assert_cuts(
        &frame,
        14 + 20 + 8,
        14 + 20 + 28,
        DecodeError::MalformedErspan,
    );
    // Frame type 2: an IP packet, no Ethernet header.
    let mut ip_frame = header;
    ip_frame[10] = 0x08;
    let frame = eth(IPV4, &outer_v4(47, &cat(&[&gre, &ip_frame, &IPV4_SYN])));
    assert_through(
        &frame,
        syn(),
        &[Encap::Erspan],
        tunnel(Encap::Erspan, Some(0x3ff)),
    );
}

#[test]
fn vxlan_nested_in_vlans() {
    // VLAN 20 in VXLAN 0x123456 in VLAN 10.
    let inner = eth(0x8100, &vlan(20, IPV4, &IPV4_SYN));
    let vx = cat(&[&[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0], &inner]);
    let frame = eth(0x8100, &vlan(10, IPV4, &outer_v4(17, &udp(4789, &vx))));
    let rec = assert_through(
        &frame,
        syn(),
        &[Encap::Vlan, Encap::Vxlan],
        tunnel(Encap::Vxlan, Some(0x12_3456)),
    );
    assert_eq!(rec.vlan, 10, "the outermost VLAN");
    assert_cuts(
        &frame,
        18 + 20 + 8,
        18 + 20 + 16,
        DecodeError::MalformedVxlan,
    );
    assert_cuts(&frame, 18 + 20, 18 + 20 + 8, DecodeError::MalformedUdp);
    // Without the I flag there is no VNI.
    let vx = cat(&[&[0, 0, 0, 0, 0x12, 0x34, 0x56, 0], &eth(IPV4, &IPV4_SYN)]);
    let frame = eth(IPV4, &outer_v4(17, &udp(4789, &vx)));
    assert_through(&frame, syn(), &[Encap::Vxlan], tunnel(Encap::Vxlan, None));
    // Other UDP is not a tunnel.
    let frame = eth(IPV4, &outer_v4(17, &udp(4790, &vx)));
    assert_eq!(decode(LinkType::Ethernet, &frame), Err(DecodeError::NotTcp));
}

#[test]
fn geneve_with_options() {
    // 8 bytes of options (length 2), Ethernet inside, VNI 77.
    let header = [0x02, 0x40, 0x65, 0x58, 0, 0, 77, 0];
    let options = [0x01, 0x02, 0x80, 0x01, 0xde, 0xad, 0xbe, 0xef];
    let gen = cat(&[&header, &options, &eth(IPV4, &IPV4_SYN)]);
    let frame = eth(IPV4, &outer_v4(17, &udp(6081, &gen)));
    assert_through(
        &frame,
        syn(),
        &[Encap::Geneve],
        tunnel(Encap::Geneve, Some(77)),
    );
    assert_cuts(&frame, 14 + 28, 14 + 28 + 16, DecodeError::MalformedGeneve);
    // IP directly inside; an unknown version is refused.
    let gen = cat(&[&[0, 0, 0x86, 0xdd, 0, 0, 1, 0], &IPV6_SYNACK]);
    let frame = eth(IPV4, &outer_v4(17, &udp(6081, &gen)));
    assert_through(
        &frame,
        synack6(),
        &[Encap::Geneve],
        tunnel(Encap::Geneve, Some(1)),
    );
    let gen = cat(&[&[0x40, 0, 0x86, 0xdd, 0, 0, 1, 0], &IPV6_SYNACK]);
    let frame = eth(IPV4, &outer_v4(17, &udp(6081, &gen)));
    assert_eq!(
        decode(LinkType::Ethernet, &frame),
        Err(DecodeError::MalformedGeneve)
    );
}

#[test]
fn gre_in_udp() {
    let frame = eth(
        IPV4,
        &outer_v4(17, &udp(4754, &cat(&[&[0, 0, 0x08, 0], &IPV4_SYN]))),
    );
    assert_through(&frame, syn(), &[Encap::Gre], tunnel(Encap::Gre, None));
}

#[test]
fn gtp_u_with_and_without_extensions() {
    let len = u16::try_from(IPV4_SYN.len()).unwrap().to_be_bytes();
    let header = [0x30, 0xff, len[0], len[1], 0xca, 0xfe, 0xba, 0xbe];
    let frame = eth(IPV4, &outer_v4(17, &udp(2152, &cat(&[&header, &IPV4_SYN]))));
    assert_through(
        &frame,
        syn(),
        &[Encap::GtpU],
        tunnel(Encap::GtpU, Some(0xcafe_babe)),
    );
    // From port 2152 to any: still GTP-U. E flag: sequence, N-PDU, next type 0x85 (PDU session
    // container, one 4-byte unit), then none.
    let header = [
        0x34, 0xff, 0, 0, 0, 0, 0, 9, 0, 1, 0, 0x85, 1, 0x10, 0x05, 0,
    ];
    let frame = eth(
        IPV4,
        &outer_v4(17, &udp_from(2152, 9999, &cat(&[&header, &IPV4_SYN]))),
    );
    assert_through(&frame, syn(), &[Encap::GtpU], tunnel(Encap::GtpU, Some(9)));
    assert_cuts(&frame, 14 + 28, 14 + 28 + 16, DecodeError::MalformedGtp);
    // Not a G-PDU (an echo request): no user packet.
    let echo = [0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0];
    let frame = eth(IPV4, &outer_v4(17, &udp(2152, &echo)));
    assert_eq!(decode(LinkType::Ethernet, &frame), Err(DecodeError::NotIp));
}

#[test]
fn teredo_and_ayiya() {
    // Origin indication, then IPv6.
    let origin = [0, 0, 0xff, 0xfe, 0x34, 0xff, 0x9b, 0xfd];
    let frame = eth(
        IPV4,
        &outer_v4(17, &udp_from(3544, 50000, &cat(&[&origin, &IPV6_SYNACK]))),
    );
    assert_through(
        &frame,
        synack6(),
        &[Encap::Teredo],
        tunnel(Encap::Teredo, None),
    );
    // Authentication (no id, no value), origin, IPv6.
    let auth = [0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0];
    let frame = eth(
        IPV4,
        &outer_v4(17, &udp(3544, &cat(&[&auth, &origin, &IPV6_SYNACK]))),
    );
    assert_through(
        &frame,
        synack6(),
        &[Encap::Teredo],
        tunnel(Encap::Teredo, None),
    );
    // AYIYA: 16-byte identity (2^4), 20-byte signature (5 units), forward, next header IPv6.
    let header = [0x41, 0x52, 0x11, 41, 0, 0, 0, 0];
    let body = cat(&[&header, &[0xaa; 16], &[0xbb; 20], &IPV6_SYNACK]);
    let frame = eth(IPV4, &outer_v4(17, &udp(5072, &body)));
    assert_through(
        &frame,
        synack6(),
        &[Encap::Ayiya],
        tunnel(Encap::Ayiya, None),
    );
    assert_cuts(&frame, 14 + 28, 14 + 28 + 44, DecodeError::MalformedTeredo);
}

#[test]
fn nesting_is_bounded() {
    let mut packet = IPV4_SYN.to_vec();
    for depth in 1..=MAX_TUNNELS + 1 {
        packet = outer_v4(4, &packet);
        let result = decode(LinkType::Ipv4, &packet);
        if depth <= MAX_TUNNELS {
            assert_eq!(result.map(|r| r.sport), Ok(syn().sport), "{depth}");
        } else {
            assert_eq!(result, Err(DecodeError::EncapTooDeep), "{depth}");
        }
    }
}

#[test]
fn tunnel_in_a_first_fragment_is_not_followed() {
    let mut packet = outer_v4(4, &IPV4_SYN);
    packet[6] = 0x20;
    assert_eq!(decode(LinkType::Ipv4, &packet), Err(DecodeError::NotTcp));
}

#[test]
fn mpls_pppoe_and_llc_on_ethernet() {
    // MPLS in a VLAN: two labels, the bottom one with S set.
    let labels = [0, 0x01, 0x20, 0x40, 0, 0x02, 0x01, 0x40];
    let frame = eth(0x8100, &vlan(7, 0x8847, &cat(&[&labels, &IPV4_SYN])));
    let rec = assert_through(&frame, syn(), &[Encap::Vlan, Encap::Mpls], None);
    assert_eq!(rec.vlan, 7);
    assert_cuts(&frame, 18, 18 + 8, DecodeError::MalformedMpls);
    // An Ethernet pseudowire with a control word.
    let pw = cat(&[&[0, 0x01, 0x21, 0x40], &[0; 4], &eth(IPV4, &IPV4_SYN)]);
    let frame = eth(0x8847, &pw);
    assert_through(&frame, syn(), &[Encap::Mpls], None);
    // PPPoE session over QinQ; the protocol compressed to one byte too.
    let pppoe = [0x11, 0, 0x12, 0x34, 0, 62, 0x00, 0x21];
    let frame = eth(
        0x88a8,
        &vlan(100, 0x8100, &vlan(200, 0x8864, &cat(&[&pppoe, &IPV4_SYN]))),
    );
    let rec = assert_through(&frame, syn(), &[Encap::Vlan, Encap::Pppoe], None);
    assert_eq!(rec.vlan, 100);
    assert_cuts(&frame, 22, 22 + 8, DecodeError::MalformedPppoe);
    let frame = eth(0x8864, &cat(&[&pppoe[..6], &[0x57], &IPV6_SYNACK]));
    assert_through(&frame, synack6(), &[Encap::Pppoe], None);
    // 802.3 with LLC/SNAP (RFC 1042); plain LLC (spanning tree) is not IP.
    let frame = eth(
        68,
        &cat(&[&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00], &IPV4_SYN]),
    );
    assert_through(&frame, syn(), &[Encap::LlcSnap], None);
    assert_cuts(&frame, 14, 14 + 8, DecodeError::MalformedLlc);
    let frame = eth(38, &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0]);
    assert_eq!(decode(LinkType::Ethernet, &frame), Err(DecodeError::NotIp));
    // ... even when it is shorter than a SNAP header (a 20-byte frame in ndpi_alexa-app).
    let frame = eth(3, &[0x42, 0x42, 0x03, 0, 0, 0]);
    assert_eq!(decode(LinkType::Ethernet, &frame), Err(DecodeError::NotIp));
}

#[test]
fn ppp_and_hdlc_links() {
    for header in [
        &[0xff, 0x03, 0x00, 0x21][..],
        &[0x00, 0x21],
        &[0x21],
        &[0xff, 0x03, 0x21],
    ] {
        let frame = cat(&[header, &IPV4_SYN]);
        assert_eq!(decode(LinkType::Ppp, &frame), Ok(syn()), "{header:x?}");
    }
    let frame = cat(&[&[0xff, 0x03, 0x00, 0x57], &IPV6_SYNACK]);
    assert_eq!(decode(LinkType::Ppp, &frame), Ok(synack6()));
    // MPLS over PPP.
    let frame = cat(&[&[0xff, 0x03, 0x02, 0x81, 0, 0x01, 0x21, 0x40], &IPV4_SYN]);
    assert_eq!(
        decode(LinkType::Ppp, &frame).map(|r| r.encaps),
        Ok(Encap::Mpls.bit())
    );
    // LCP is not IP; a header cut short is PPP's error.
    assert_eq!(
        decode(LinkType::Ppp, &[0xff, 0x03, 0xc0, 0x21, 1]),
        Err(DecodeError::NotIp)
    );
    assert_eq!(
        decode(LinkType::Ppp, &[0xff, 0x03, 0x00]),
        Err(DecodeError::MalformedPpp)
    );
    // Cisco HDLC, and Cisco HDLC frames in a PPP-in-HDLC file.
    let frame = cat(&[&[0x0f, 0x00, 0x08, 0x00], &IPV4_SYN]);
    assert_eq!(decode(LinkType::CiscoHdlc, &frame), Ok(syn()));
    assert_eq!(decode(LinkType::Ppp, &frame), Ok(syn()));
    let frame = cat(&[&[0x8f, 0x00, 0x86, 0xdd], &IPV6_SYNACK]);
    assert_eq!(decode(LinkType::CiscoHdlc, &frame), Ok(synack6()));
    assert_eq!(
        decode(LinkType::CiscoHdlc, &frame[..3]),
        Err(DecodeError::MalformedPpp)
    );
    assert_eq!(LinkType::from_linktype(50), Some(LinkType::Ppp));
    assert_eq!(LinkType::from_linktype(104), Some(LinkType::CiscoHdlc));
}

#[test]
fn nflog_in_either_byte_order() {
    // Family IPv4, version 0, resource 0; a prefix TLV (5 bytes, padded to 8); the payload.
    let tlvs = |to: fn(u16) -> [u8; 2]| {
        let payload_len = u16::try_from(4 + IPV4_SYN.len()).unwrap();
        cat(&[
            &[2, 0, 0, 0],
            &to(5),
            &to(10),
            &[b'x', 0, 0, 0],
            &to(payload_len),
            &to(9),
            &IPV4_SYN,
        ])
    };
    let little = tlvs(u16::to_le_bytes);
    assert_eq!(decode(LinkType::Nflog, &little), Ok(syn()));
    let big = tlvs(u16::to_be_bytes);
    assert_eq!(decode(LinkType::Nflog, &big), Ok(syn()));
    // No payload TLV; a TLV length below its own header.
    assert_eq!(
        decode(LinkType::Nflog, &little[..12]),
        Err(DecodeError::MalformedNflog)
    );
    let mut bad = little.clone();
    bad[4] = 2;
    assert_eq!(
        decode(LinkType::Nflog, &bad),
        Err(DecodeError::MalformedNflog)
    );
    assert_eq!(LinkType::from_linktype(239), Some(LinkType::Nflog));
}

#[test]
fn ip_over_infiniband() {
    let mut header = [0u8; 44];
    header[40..42].copy_from_slice(&IPV4.to_be_bytes());
    let frame = cat(&[&header, &IPV4_SYN]);
    assert_eq!(decode(LinkType::IpOverIb, &frame), Ok(syn()));
    assert_eq!(
        decode(LinkType::IpOverIb, &frame[..43]),
        Err(DecodeError::MalformedLink)
    );
    assert_eq!(LinkType::from_linktype(242), Some(LinkType::IpOverIb));
}
