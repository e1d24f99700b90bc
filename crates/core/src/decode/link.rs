//! Link layer: where the IP packet starts, which IP version it is, the outermost VLAN id, and
//! the link-level encapsulations on the way (VLAN tags, MPLS labels, PPPoE, LLC/SNAP).
//!
//! [`LinkFrame::parse`] checks that every header byte it reads was captured; the frame it returns
//! holds the captured bytes after the link header (possibly empty), left for the IP layer to check.
//! [`after_ethernet`] does the same for an Ethernet frame carried inside a tunnel.

use super::record::Encap;
use super::{be16, DecodeError};

/// Link types by their pcap LINKTYPE number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II (1), with any stack of 802.1Q / 802.1ad tags, MPLS labels, PPPoE sessions
    /// and 802.3 LLC/SNAP.
    Ethernet,
    /// BSD loopback: `DLT_NULL` (0) and `DLT_LOOP` (108), a 4-byte address family in host or network
    /// byte order.
    Null,
    /// Raw IP (101, also 12 and 14 as written by some systems); the version nibble decides.
    Raw,
    /// Raw IPv4 (228).
    Ipv4,
    /// Raw IPv6 (229).
    Ipv6,
    /// Linux cooked capture v1 (113).
    LinuxSll,
    /// Linux cooked capture v2 (276).
    LinuxSll2,
    /// PPP (9) and PPP in HDLC-like framing (50): optional address and control bytes, then the
    /// PPP protocol (1 or 2 bytes).
    Ppp,
    /// Cisco HDLC (104): address, control, ethertype.
    CiscoHdlc,
    /// Linux NFLOG (239): a family byte, then TLVs, one of which is the IP packet.
    Nflog,
    /// IP over InfiniBand (242): a 40-byte pseudo-header of addresses, then the 4-byte
    /// header of ethertype and reserved bytes.
    IpOverIb,
}

impl LinkType {
    /// The link type of a pcap LINKTYPE number, `None` if tcpulse does not decode it.
    #[must_use]
    pub fn from_linktype(n: u32) -> Option<LinkType> {
        match n {
            1 => Some(LinkType::Ethernet),
            0 | 108 => Some(LinkType::Null),
            12 | 14 | 101 => Some(LinkType::Raw),
            228 => Some(LinkType::Ipv4),
            229 => Some(LinkType::Ipv6),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            9 | 50 => Some(LinkType::Ppp),
            104 => Some(LinkType::CiscoHdlc),
            239 => Some(LinkType::Nflog),
            242 => Some(LinkType::IpOverIb),
            _ => None,
        }
    }
}

/// Header offsets and lengths.
mod field {
    /// Ethernet II: destination, source, ethertype.
    pub const ETH_TYPE: usize = 12;
    pub const ETH_LEN: usize = 14;
    /// An 802.1Q/802.1ad tag sits where the ethertype was: TCI, then the next ethertype.
    pub const TAG_TCI: usize = 0;
    pub const TAG_TYPE: usize = 2;
    pub const TAG_LEN: usize = 4;
    /// Linux SLL: packet type, ARPHRD type, address length, 8 address bytes, protocol.
    pub const SLL_PROTOCOL: usize = 14;
    pub const SLL_LEN: usize = 16;
    /// Linux SLL2: protocol first, then reserved, ifindex, ARPHRD, packet type, address.
    pub const SLL2_PROTOCOL: usize = 0;
    pub const SLL2_LEN: usize = 20;
    /// `DLT_NULL` / `DLT_LOOP`: the address family as a 32-bit integer.
    pub const NULL_LEN: usize = 4;
    /// An MPLS label stack entry: label (20 bits), traffic class, bottom-of-stack, TTL.
    pub const MPLS_LEN: usize = 4;
    pub const MPLS_BOTTOM: u8 = 0x01;
    /// The pseudowire control word before an Ethernet frame carried over MPLS.
    pub const PW_CONTROL_WORD_LEN: usize = 4;
    /// PPPoE session: version/type, code, session id, length; then the PPP protocol.
    pub const PPPOE_LEN: usize = 6;
    /// 802.3 LLC (DSAP, SSAP, control) and SNAP (OUI, ethertype).
    pub const LLC_SNAP_LEN: usize = 8;
    pub const LLC_SNAP: [u8; 3] = [0xaa, 0xaa, 0x03];
    /// Cisco HDLC: address, control, protocol.
    pub const CHDLC_TYPE: usize = 2;
    pub const CHDLC_LEN: usize = 4;
    /// IPoIB: the pseudo-header (destination or GRH addresses), ethertype, reserved.
    pub const IPOIB_TYPE: usize = 40;
    pub const IPOIB_LEN: usize = 44;
    /// NFLOG: family, version, resource id; then TLVs of length (host order), type.
    pub const NFLOG_LEN: usize = 4;
    pub const NFLOG_TLV_LEN: usize = 4;
}

mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    /// Pre-802.1ad vendor `QinQ` tag.
    pub const QINQ_OLD: u16 = 0x9100;
    pub const MPLS: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// Values up to this are 802.3 lengths, not ethertypes.
    pub const MAX_8023_LEN: u16 = 1500;
}

/// PPP protocol numbers of what it carries to IP.
mod ppp {
    pub const IPV4: u16 = 0x0021;
    pub const IPV6: u16 = 0x0057;
    pub const MPLS: u16 = 0x0281;
    pub const MPLS_MULTICAST: u16 = 0x0283;
    /// The address and control bytes of HDLC-like framing.
    pub const ADDRESS_CONTROL: [u8; 2] = [0xff, 0x03];
}

mod chdlc {
    /// Unicast and broadcast address bytes.
    pub const ADDRESSES: [u8; 2] = [0x0f, 0x8f];
}

/// SNAP organisation codes whose protocol id is an ethertype: RFC 1042 and Cisco's
/// 802.1H bridge tunnel.
const SNAP_ETHERTYPE_OUIS: [[u8; 3]; 2] = [[0, 0, 0], [0, 0, 0xf8]];

/// NFLOG TLV type of the packet itself.
const NFULA_PAYLOAD: u16 = 9;

/// Link-level headers (tags, labels, session headers) followed on one frame: more is not a
/// real network, and it bounds the work per frame.
const MAX_L2_HEADERS: usize = 16;

/// More VLAN tags than this is not a real network either.
const MAX_VLAN_TAGS: usize = 8;

const VLAN_ID_MASK: u16 = 0x0fff;

/// Address families of IPv4 and IPv6 in a `DLT_NULL` header. IPv6 differs per OS.
mod family {
    pub const INET: u32 = 2;
    /// Linux (NFLOG).
    pub const INET6_LINUX: u32 = 10;
    /// Windows (Npcap loopback).
    pub const INET6_WINDOWS: u32 = 23;
    /// NetBSD, OpenBSD.
    pub const INET6_BSD: u32 = 24;
    /// FreeBSD, `DragonFly`.
    pub const INET6_FREEBSD: u32 = 28;
    /// macOS.
    pub const INET6_DARWIN: u32 = 30;
}

/// The IP version a link header announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Network {
    Ipv4,
    Ipv6,
}

/// A frame whose link header was decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinkFrame<'a> {
    pub network: Network,
    /// Outermost VLAN id, 0 when untagged.
    pub vlan: u16,
    /// Length of the link header, tags included.
    pub offset: usize,
    /// Captured bytes after the link header.
    pub payload: &'a [u8],
    /// The link-level encapsulations on the way, as [`Encap`] bits.
    pub encaps: u16,
}

impl<'a> LinkFrame<'a> {
    /// # Errors
    ///
    /// A `Malformed*` error for a header cut short (or too many tags), `NotIp` for other
    /// payloads.
    #[inline]
    pub fn parse(link: LinkType, data: &'a [u8]) -> Result<Self, DecodeError> {
        match link {
            LinkType::Ethernet => after_ethernet(data),
            LinkType::LinuxSll => {
                let header = data
                    .first_chunk::<{ field::SLL_LEN }>()
                    .ok_or(DecodeError::MalformedLink)?;
                after_ethertype(data, field::SLL_LEN, be16(header, field::SLL_PROTOCOL))
            }
            LinkType::LinuxSll2 => {
                let header = data
                    .first_chunk::<{ field::SLL2_LEN }>()
                    .ok_or(DecodeError::MalformedLink)?;
                after_ethertype(data, field::SLL2_LEN, be16(header, field::SLL2_PROTOCOL))
            }
            LinkType::Null => {
                let header = data
                    .first_chunk::<{ field::NULL_LEN }>()
                    .ok_or(DecodeError::MalformedLink)?;
                // `DLT_NULL` is in the capturing host's byte order, `DLT_LOOP` in network order, and
                // files travel between hosts. Families are small numbers, so a value with its high
                // half set was written in the other order.
                let raw = u32::from_le_bytes(*header);
                let family = if raw > 0xffff { raw.swap_bytes() } else { raw };
                let network = match family {
                    family::INET => Network::Ipv4,
                    family::INET6_WINDOWS
                    | family::INET6_BSD
                    | family::INET6_FREEBSD
                    | family::INET6_DARWIN => Network::Ipv6,
                    _ => return Err(DecodeError::NotIp),
                };
                Ok(Self::at(data, field::NULL_LEN, network, 0, 0))
            }
            LinkType::Raw => {
                // No header to announce the version, so it comes from the IP header itself.
                let [first] = data.first_chunk::<1>().ok_or(DecodeError::MalformedLink)?;
                let network = version_of(*first).ok_or(DecodeError::NotIp)?;
                Ok(Self::at(data, 0, network, 0, 0))
            }
            LinkType::Ipv4 => Ok(Self::at(data, 0, Network::Ipv4, 0, 0)),
            LinkType::Ipv6 => Ok(Self::at(data, 0, Network::Ipv6, 0, 0)),
            // PPP-in-HDLC files may hold Cisco HDLC frames, told apart by their address byte.
            LinkType::Ppp if !data.first().is_some_and(|a| chdlc::ADDRESSES.contains(a)) => {
                let offset = if data.starts_with(&ppp::ADDRESS_CONTROL) {
                    2
                } else {
                    0
                };
                let (protocol, len) =
                    ppp_protocol(data, offset).ok_or(DecodeError::MalformedPpp)?;
                after_ppp(data, offset + len, protocol, 0, 0)
            }
            LinkType::Ppp | LinkType::CiscoHdlc => {
                let header = data
                    .first_chunk::<{ field::CHDLC_LEN }>()
                    .ok_or(DecodeError::MalformedPpp)?;
                after_ethertype(data, field::CHDLC_LEN, be16(header, field::CHDLC_TYPE))
            }
            LinkType::IpOverIb => {
                let header = data
                    .first_chunk::<{ field::IPOIB_LEN }>()
                    .ok_or(DecodeError::MalformedLink)?;
                after_ethertype(data, field::IPOIB_LEN, be16(header, field::IPOIB_TYPE))
            }
            LinkType::Nflog => nflog(data),
        }
    }

    /// The frame whose IP packet starts at `offset`, which the caller checked is within `data`.
    #[inline]
    fn at(data: &'a [u8], offset: usize, network: Network, vlan: u16, encaps: u16) -> Self {
        LinkFrame {
            network,
            vlan,
            offset,
            payload: data.get(offset..).unwrap_or_default(),
            encaps,
        }
    }
}

/// The IP version of a header starting with `first`.
#[inline]
pub(crate) fn version_of(first: u8) -> Option<Network> {
    match first >> 4 {
        4 => Some(Network::Ipv4),
        6 => Some(Network::Ipv6),
        _ => None,
    }
}

/// An Ethernet II frame (the outermost, or one carried in a tunnel).
///
/// # Errors
///
/// As [`LinkFrame::parse`].
#[inline]
pub(crate) fn after_ethernet(data: &[u8]) -> Result<LinkFrame<'_>, DecodeError> {
    let header = data
        .first_chunk::<{ field::ETH_LEN }>()
        .ok_or(DecodeError::MalformedLink)?;
    after_ethertype(data, field::ETH_LEN, be16(header, field::ETH_TYPE))
}

/// The PPP protocol at `at`: 2 bytes, or 1 when compressed (an odd first byte). Returns it and
/// its length.
fn ppp_protocol(data: &[u8], at: usize) -> Option<(u16, usize)> {
    let first = *data.get(at)?;
    if first & 1 == 1 {
        return Some((u16::from(first), 1));
    }
    let second = *data.get(at + 1)?;
    Some((u16::from_be_bytes([first, second]), 2))
}

/// What follows a PPP protocol field ending at `offset`: IP, or an MPLS label stack.
fn after_ppp(
    data: &[u8],
    offset: usize,
    protocol: u16,
    vlan: u16,
    encaps: u16,
) -> Result<LinkFrame<'_>, DecodeError> {
    match protocol {
        ppp::IPV4 => Ok(LinkFrame::at(data, offset, Network::Ipv4, vlan, encaps)),
        ppp::IPV6 => Ok(LinkFrame::at(data, offset, Network::Ipv6, vlan, encaps)),
        ppp::MPLS | ppp::MPLS_MULTICAST => {
            let mut inner =
                after_ethertype(data.get(offset..).unwrap_or_default(), 0, ethertype::MPLS)?;
            inner.offset += offset;
            inner.encaps |= encaps;
            if vlan != 0 {
                inner.vlan = vlan;
            }
            Ok(inner)
        }
        _ => Err(DecodeError::NotIp),
    }
}

/// NFLOG: the family byte says the IP version; the packet is the payload TLV.
fn nflog(data: &[u8]) -> Result<LinkFrame<'_>, DecodeError> {
    let header = data
        .first_chunk::<{ field::NFLOG_LEN }>()
        .ok_or(DecodeError::MalformedNflog)?;
    let network = match u32::from(header[0]) {
        family::INET => Network::Ipv4,
        family::INET6_LINUX => Network::Ipv6,
        _ => return Err(DecodeError::NotIp),
    };
    let mut at = field::NFLOG_LEN;
    // TLVs are in the capturing host's byte order, which the file does not record: the first
    // TLV decides, read the way that gives a plausible length and type. Lengths count their
    // own 4-byte header and are padded to 4 bytes.
    let little = data
        .get(at..)
        .and_then(<[u8]>::first_chunk::<{ field::NFLOG_TLV_LEN }>)
        .is_none_or(|tlv| {
            let plausible =
                |len: u16, kind: u16| len >= 4 && kind & 0x7fff != 0 && kind & 0x7fff < 0x100;
            !plausible(
                u16::from_be_bytes([tlv[0], tlv[1]]),
                u16::from_be_bytes([tlv[2], tlv[3]]),
            )
        });
    let read = |a: u8, b: u8| {
        if little {
            u16::from_le_bytes([a, b])
        } else {
            u16::from_be_bytes([a, b])
        }
    };
    while let Some(tlv) = data
        .get(at..)
        .and_then(<[u8]>::first_chunk::<{ field::NFLOG_TLV_LEN }>)
    {
        let len = usize::from(read(tlv[0], tlv[1]));
        let kind = read(tlv[2], tlv[3]) & 0x7fff;
        if len < field::NFLOG_TLV_LEN {
            return Err(DecodeError::MalformedNflog);
        }
        if kind == NFULA_PAYLOAD {
            let start = at + field::NFLOG_TLV_LEN;
            let end = (at + len).min(data.len());
            let payload = data.get(start..end).ok_or(DecodeError::MalformedNflog)?;
            return Ok(LinkFrame {
                network,
                vlan: 0,
                offset: start,
                payload,
                encaps: 0,
            });
        }
        at += len.div_ceil(4) * 4;
    }
    Err(DecodeError::MalformedNflog)
}

/// An MPLS label stack carried in a tunnel (GRE protocol 0x8847).
///
/// # Errors
///
/// As [`LinkFrame::parse`].
pub(crate) fn after_mpls(data: &[u8]) -> Result<LinkFrame<'_>, DecodeError> {
    after_ethertype(data, 0, ethertype::MPLS)
}

/// Follow an ethertype found just before `offset` through VLAN tags, MPLS labels (and an
/// Ethernet pseudowire under them), PPPoE sessions and LLC/SNAP, to IP.
#[inline]
fn after_ethertype(
    data: &[u8],
    mut offset: usize,
    mut ethertype: u16,
) -> Result<LinkFrame<'_>, DecodeError> {
    let (mut vlan, mut encaps) = (0, 0u16);
    let mut tags = 0;
    for _ in 0..MAX_L2_HEADERS {
        let rest = data.get(offset..).unwrap_or_default();
        match ethertype {
            ethertype::IPV4 => return Ok(LinkFrame::at(data, offset, Network::Ipv4, vlan, encaps)),
            ethertype::IPV6 => return Ok(LinkFrame::at(data, offset, Network::Ipv6, vlan, encaps)),
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD => {
                if tags == MAX_VLAN_TAGS {
                    return Err(DecodeError::MalformedLink);
                }
                let tag = rest
                    .first_chunk::<{ field::TAG_LEN }>()
                    .ok_or(DecodeError::MalformedLink)?;
                if tags == 0 {
                    vlan = be16(tag, field::TAG_TCI) & VLAN_ID_MASK;
                }
                tags += 1;
                encaps |= Encap::Vlan.bit();
                ethertype = be16(tag, field::TAG_TYPE);
                offset += field::TAG_LEN;
            }
            ethertype::MPLS | ethertype::MPLS_MULTICAST => {
                encaps |= Encap::Mpls.bit();
                let labels = mpls_stack_len(rest)?;
                offset += labels;
                let after = data.get(offset..).unwrap_or_default();
                let first = *after.first().ok_or(DecodeError::MalformedMpls)?;
                match version_of(first) {
                    Some(network) => return Ok(LinkFrame::at(data, offset, network, vlan, encaps)),
                    // A control word of zero nibble: an Ethernet pseudowire follows it.
                    None if first >> 4 == 0 => {
                        let eth = after
                            .get(field::PW_CONTROL_WORD_LEN..)
                            .and_then(<[u8]>::first_chunk::<{ field::ETH_LEN }>)
                            .ok_or(DecodeError::MalformedMpls)?;
                        ethertype = be16(eth, field::ETH_TYPE);
                        offset += field::PW_CONTROL_WORD_LEN + field::ETH_LEN;
                    }
                    None => return Err(DecodeError::NotIp),
                }
            }
            ethertype::PPPOE_SESSION => {
                encaps |= Encap::Pppoe.bit();
                let (protocol, len) =
                    ppp_protocol(rest, field::PPPOE_LEN).ok_or(DecodeError::MalformedPppoe)?;
                return after_ppp(
                    data,
                    offset + field::PPPOE_LEN + len,
                    protocol,
                    vlan,
                    encaps,
                );
            }
            len if len <= ethertype::MAX_8023_LEN => {
                // 802.3: a length, then LLC. Only SNAP carries an ethertype on to IP.
                // A non-SNAP LLC frame (STP, IS-IS, ...) is complete in three bytes and never IP.
                if rest.len() < 3 {
                    return Err(DecodeError::MalformedLlc);
                }
                if rest[..3] != field::LLC_SNAP {
                    return Err(DecodeError::NotIp);
                }
                let llc = rest
                    .first_chunk::<{ field::LLC_SNAP_LEN }>()
                    .ok_or(DecodeError::MalformedLlc)?;
                if !SNAP_ETHERTYPE_OUIS.iter().any(|o| llc[3..6] == *o) {
                    return Err(DecodeError::NotIp);
                }
                encaps |= Encap::LlcSnap.bit();
                ethertype = be16(llc, 6);
                offset += field::LLC_SNAP_LEN;
            }
            // ARP, LLDP, ...
            _ => return Err(DecodeError::NotIp),
        }
    }
    Err(DecodeError::MalformedLink)
}

/// Bytes of the MPLS label stack at the start of `data`, through its bottom label.
fn mpls_stack_len(data: &[u8]) -> Result<usize, DecodeError> {
    let mut at = 0;
    for _ in 0..MAX_L2_HEADERS {
        let entry = data
            .get(at..)
            .and_then(<[u8]>::first_chunk::<{ field::MPLS_LEN }>)
            .ok_or(DecodeError::MalformedMpls)?;
        at += field::MPLS_LEN;
        if entry[2] & field::MPLS_BOTTOM != 0 {
            return Ok(at);
        }
    }
    Err(DecodeError::MalformedMpls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::fixtures::{ETH, IPV4_SYN, IPV6_SYNACK, NULL_BE, NULL_LE, SLL, SLL2};

    fn parse(link: LinkType, parts: &[&[u8]]) -> Result<(Network, u16, usize), DecodeError> {
        let frame = parts.concat();
        let parsed = LinkFrame::parse(link, &frame)?;
        assert_eq!(parsed.payload, &frame[parsed.offset..]);
        Ok((parsed.network, parsed.vlan, parsed.offset))
    }

    /// Ethernet addresses then an ethertype; tags are appended as separate parts.
    static ETH_VLAN: [u8; 14] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x81, 0x00,
    ];
    /// 802.1ad outer tag: PCP 3, VID 100, inner 802.1Q.
    static TAG_S100: [u8; 4] = [0x60, 0x64, 0x81, 0x00];
    /// 802.1Q tag: VID 300 (0x12c), IPv4 follows.
    static TAG_C300_V4: [u8; 4] = [0x01, 0x2c, 0x08, 0x00];
    /// 802.1Q tag: VID 50, IPv6 follows.
    static TAG_C50_V6: [u8; 4] = [0x00, 0x32, 0x86, 0xdd];
    /// 802.1Q tag: VID 7, another 802.1Q tag follows.
    static TAG_C7_Q: [u8; 4] = [0x00, 0x07, 0x81, 0x00];

    #[test]
    fn linktype_numbers() {
        assert_eq!(LinkType::from_linktype(1), Some(LinkType::Ethernet));
        assert_eq!(LinkType::from_linktype(0), Some(LinkType::Null));
        assert_eq!(LinkType::from_linktype(108), Some(LinkType::Null));
        for n in [12, 14, 101] {
            assert_eq!(LinkType::from_linktype(n), Some(LinkType::Raw));
        }
        assert_eq!(LinkType::from_linktype(228), Some(LinkType::Ipv4));
        assert_eq!(LinkType::from_linktype(229), Some(LinkType::Ipv6));
        assert_eq!(LinkType::from_linktype(113), Some(LinkType::LinuxSll));
        assert_eq!(LinkType::from_linktype(276), Some(LinkType::LinuxSll2));
        assert_eq!(LinkType::from_linktype(105), None);
        assert_eq!(LinkType::from_linktype(u32::MAX), None);
    }

    #[test]
    fn ethernet() {
        assert_eq!(
            parse(LinkType::Ethernet, &[&ETH, &IPV4_SYN]),
            Ok((Network::Ipv4, 0, 14))
        );
        let mut eth6 = ETH;
        eth6[12..].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(
            parse(LinkType::Ethernet, &[&eth6, &IPV6_SYNACK]),
            Ok((Network::Ipv6, 0, 14))
        );
    }

    #[test]
    fn ethernet_not_ip() {
        for ethertype in [[0x08, 0x06], [0x88, 0xcc], [0x00, 0x2e], [0x05, 0xdc]] {
            let mut eth = ETH;
            eth[12..].copy_from_slice(&ethertype);
            assert_eq!(
                parse(LinkType::Ethernet, &[&eth, &IPV4_SYN]),
                Err(DecodeError::NotIp)
            );
        }
    }

    #[test]
    fn ethernet_truncated() {
        for len in 0..ETH.len() {
            assert_eq!(
                LinkFrame::parse(LinkType::Ethernet, &ETH[..len]),
                Err(DecodeError::MalformedLink)
            );
        }
        // A header with nothing after it is the IP layer's problem.
        assert_eq!(
            parse(LinkType::Ethernet, &[&ETH]),
            Ok((Network::Ipv4, 0, 14))
        );
    }

    #[test]
    fn vlan() {
        assert_eq!(
            parse(LinkType::Ethernet, &[&ETH_VLAN, &TAG_C300_V4, &IPV4_SYN]),
            Ok((Network::Ipv4, 300, 18))
        );
        assert_eq!(
            parse(LinkType::Ethernet, &[&ETH_VLAN, &TAG_C50_V6, &IPV6_SYNACK]),
            Ok((Network::Ipv6, 50, 18))
        );
    }

    #[test]
    fn qinq_records_outer_vlan() {
        let mut eth_ad = ETH_VLAN;
        eth_ad[12..].copy_from_slice(&[0x88, 0xa8]);
        assert_eq!(
            parse(
                LinkType::Ethernet,
                &[&eth_ad, &TAG_S100, &TAG_C300_V4, &IPV4_SYN]
            ),
            Ok((Network::Ipv4, 100, 22))
        );
        let mut eth_old = ETH_VLAN;
        eth_old[12..].copy_from_slice(&[0x91, 0x00]);
        assert_eq!(
            parse(
                LinkType::Ethernet,
                &[&eth_old, &TAG_S100, &TAG_C50_V6, &IPV6_SYNACK]
            ),
            Ok((Network::Ipv6, 100, 22))
        );
    }

    #[test]
    fn vlan_depth_bound() {
        let mut parts: Vec<&[u8]> = vec![&ETH_VLAN];
        parts.extend([&TAG_C7_Q[..]; MAX_VLAN_TAGS - 1]);
        parts.push(&TAG_C300_V4);
        parts.push(&IPV4_SYN);
        assert_eq!(
            parse(LinkType::Ethernet, &parts),
            Ok((Network::Ipv4, 7, 14 + 4 * MAX_VLAN_TAGS))
        );
        parts.insert(1, &TAG_C7_Q);
        assert_eq!(
            parse(LinkType::Ethernet, &parts),
            Err(DecodeError::MalformedLink)
        );
    }

    #[test]
    fn vlan_truncated() {
        let frame = [&ETH_VLAN[..], &TAG_S100, &TAG_C300_V4].concat();
        for len in ETH_VLAN.len()..frame.len() {
            assert_eq!(
                LinkFrame::parse(LinkType::Ethernet, &frame[..len]),
                Err(DecodeError::MalformedLink),
                "len {len}"
            );
        }
    }

    #[test]
    fn sll() {
        assert_eq!(
            parse(LinkType::LinuxSll, &[&SLL, &IPV4_SYN]),
            Ok((Network::Ipv4, 0, 16))
        );
        let mut sll_vlan = SLL;
        sll_vlan[14..].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            parse(LinkType::LinuxSll, &[&sll_vlan, &TAG_C50_V6, &IPV6_SYNACK]),
            Ok((Network::Ipv6, 50, 20))
        );
        assert_eq!(
            LinkFrame::parse(LinkType::LinuxSll, &SLL[..15]),
            Err(DecodeError::MalformedLink)
        );
    }

    #[test]
    fn sll2() {
        assert_eq!(
            parse(LinkType::LinuxSll2, &[&SLL2, &IPV4_SYN]),
            Ok((Network::Ipv4, 0, 20))
        );
        let mut sll2_vlan = SLL2;
        sll2_vlan[..2].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            parse(LinkType::LinuxSll2, &[&sll2_vlan, &TAG_C300_V4, &IPV4_SYN]),
            Ok((Network::Ipv4, 300, 24))
        );
        assert_eq!(
            LinkFrame::parse(LinkType::LinuxSll2, &SLL2[..19]),
            Err(DecodeError::MalformedLink)
        );
    }

    #[test]
    fn null_both_byte_orders() {
        assert_eq!(
            parse(LinkType::Null, &[&NULL_LE, &IPV4_SYN]),
            Ok((Network::Ipv4, 0, 4))
        );
        assert_eq!(
            parse(LinkType::Null, &[&NULL_BE, &IPV4_SYN]),
            Ok((Network::Ipv4, 0, 4))
        );
        for family in [23u32, 24, 28, 30] {
            for header in [family.to_le_bytes(), family.to_be_bytes()] {
                assert_eq!(
                    parse(LinkType::Null, &[&header, &IPV6_SYNACK]),
                    Ok((Network::Ipv6, 0, 4))
                );
            }
        }
        for family in [0u32, 1, 7, 10, 0x0200] {
            assert_eq!(
                parse(LinkType::Null, &[&family.to_le_bytes(), &IPV4_SYN]),
                Err(DecodeError::NotIp)
            );
        }
        assert_eq!(
            LinkFrame::parse(LinkType::Null, &NULL_LE[..3]),
            Err(DecodeError::MalformedLink)
        );
    }

    #[test]
    fn raw() {
        assert_eq!(
            parse(LinkType::Raw, &[&IPV4_SYN]),
            Ok((Network::Ipv4, 0, 0))
        );
        assert_eq!(
            parse(LinkType::Raw, &[&IPV6_SYNACK]),
            Ok((Network::Ipv6, 0, 0))
        );
        assert_eq!(parse(LinkType::Raw, &[&[0x50]]), Err(DecodeError::NotIp));
        assert_eq!(
            LinkFrame::parse(LinkType::Raw, &[]),
            Err(DecodeError::MalformedLink)
        );
        // The typed raw link types trust their header and leave the version to the IP layer.
        assert_eq!(
            parse(LinkType::Ipv4, &[&IPV6_SYNACK]),
            Ok((Network::Ipv4, 0, 0))
        );
        assert_eq!(parse(LinkType::Ipv6, &[]), Ok((Network::Ipv6, 0, 0)));
    }
}
