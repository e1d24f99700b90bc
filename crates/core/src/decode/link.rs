//! Link layer: where the IP packet starts, which IP version it is, and the outermost VLAN id.
//!
//! [`LinkFrame::parse`] checks that every header byte it reads was captured; the frame it returns
//! holds the captured bytes after the link header (possibly empty), left for the IP layer to check.

use super::{be16, DecodeError};

/// Link types by their pcap LINKTYPE number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II (1), with any stack of 802.1Q / 802.1ad tags.
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
}

mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    /// Pre-802.1ad vendor `QinQ` tag.
    pub const QINQ_OLD: u16 = 0x9100;
}

/// More tags than this is not a real network, and bounds the work per frame.
const MAX_VLAN_TAGS: usize = 8;

const VLAN_ID_MASK: u16 = 0x0fff;

/// Address families of IPv4 and IPv6 in a `DLT_NULL` header. IPv6 differs per OS.
mod family {
    pub const INET: u32 = 2;
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
}

impl<'a> LinkFrame<'a> {
    /// # Errors
    ///
    /// `MalformedLink` for a header or tag cut short or too many tags, `NotIp` for other payloads.
    #[inline]
    pub fn parse(link: LinkType, data: &'a [u8]) -> Result<Self, DecodeError> {
        match link {
            LinkType::Ethernet => {
                let header = data
                    .first_chunk::<{ field::ETH_LEN }>()
                    .ok_or(DecodeError::MalformedLink)?;
                after_ethertype(data, field::ETH_LEN, be16(header, field::ETH_TYPE))
            }
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
                Ok(Self::at(data, field::NULL_LEN, network, 0))
            }
            LinkType::Raw => {
                // No header to announce the version, so it comes from the IP header itself.
                let [first] = data.first_chunk::<1>().ok_or(DecodeError::MalformedLink)?;
                let network = match first >> 4 {
                    4 => Network::Ipv4,
                    6 => Network::Ipv6,
                    _ => return Err(DecodeError::NotIp),
                };
                Ok(Self::at(data, 0, network, 0))
            }
            LinkType::Ipv4 => Ok(Self::at(data, 0, Network::Ipv4, 0)),
            LinkType::Ipv6 => Ok(Self::at(data, 0, Network::Ipv6, 0)),
        }
    }

    /// The frame whose IP packet starts at `offset`, which the caller checked is within `data`.
    #[inline]
    fn at(data: &'a [u8], offset: usize, network: Network, vlan: u16) -> Self {
        LinkFrame {
            network,
            vlan,
            offset,
            payload: data.get(offset..).unwrap_or_default(),
        }
    }
}

/// Follow an ethertype (and any VLAN tags after it) found just before `offset`.
#[inline]
fn after_ethertype(
    data: &[u8],
    mut offset: usize,
    mut ethertype: u16,
) -> Result<LinkFrame<'_>, DecodeError> {
    let mut vlan = 0;
    let mut tags = 0;
    while matches!(
        ethertype,
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD
    ) {
        if tags == MAX_VLAN_TAGS {
            return Err(DecodeError::MalformedLink);
        }
        let tag = data
            .get(offset..)
            .and_then(<[u8]>::first_chunk::<{ field::TAG_LEN }>)
            .ok_or(DecodeError::MalformedLink)?;
        if tags == 0 {
            vlan = be16(tag, field::TAG_TCI) & VLAN_ID_MASK;
        }
        ethertype = be16(tag, field::TAG_TYPE);
        tags += 1;
        offset += field::TAG_LEN;
    }
    let network = match ethertype {
        ethertype::IPV4 => Network::Ipv4,
        ethertype::IPV6 => Network::Ipv6,
        // ARP, LLDP, 802.3 length fields (<= 1500), ...
        _ => return Err(DecodeError::NotIp),
    };
    Ok(LinkFrame::at(data, offset, network, vlan))
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
