//! Tunnels an IP packet can carry another frame or packet in: IP in IP, GRE (with ERSPAN), and
//! over UDP VXLAN, GENEVE, GTP-U, GRE-in-UDP, Teredo and AYIYA.
//!
//! [`decapsulate`] takes an IP packet's protocol and payload and returns what is inside: an
//! Ethernet frame, an IP packet or an MPLS label stack, with the tunnel's kind and id. Every
//! header byte read was captured and lies within the declared length; a header cut short is
//! the tunnel's own error. Protocols and ports that carry no tunnel are `NotTcp`.

use super::link::{version_of, Network};
use super::record::Encap;
use super::{be16, be32, DecodeError};

/// IP protocol numbers.
pub(crate) mod proto {
    pub const IPV4: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const GRE: u8 = 47;
}

/// UDP ports of the tunnels recognised over UDP.
mod port {
    pub const TEREDO: u16 = 3544;
    pub const GRE_IN_UDP: u16 = 4754;
    pub const VXLAN: u16 = 4789;
    pub const GTP_U: u16 = 2152;
    pub const AYIYA: u16 = 5072;
    pub const GENEVE: u16 = 6081;
}

/// Protocol types of GRE and GENEVE (ethertypes).
mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    pub const TRANSPARENT_ETHERNET: u16 = 0x6558;
    pub const MPLS: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const ERSPAN_1_2: u16 = 0x88be;
    pub const ERSPAN_3: u16 = 0x22eb;
    /// Cisco WCCP redirection: IPv4, possibly behind a 4-byte redirect header.
    pub const WCCP: u16 = 0x883e;
}

mod gre {
    pub const CHECKSUM: u8 = 0x80;
    pub const ROUTING: u8 = 0x40;
    pub const KEY: u8 = 0x20;
    pub const SEQUENCE: u8 = 0x10;
    pub const VERSION_MASK: u8 = 0x07;
    pub const BASE_LEN: usize = 4;
}

const UDP_LEN: usize = 8;
const VXLAN_LEN: usize = 8;
const GENEVE_BASE_LEN: usize = 8;
const GTP_BASE_LEN: usize = 8;
const ERSPAN_2_LEN: usize = 8;
const ERSPAN_3_LEN: usize = 12;
const ERSPAN_3_PLATFORM_LEN: usize = 8;
const TEREDO_ORIGIN_LEN: usize = 8;
const AYIYA_BASE_LEN: usize = 8;
/// GTP-U extension headers followed; real packets have one or two.
const MAX_GTP_EXTENSIONS: usize = 8;

/// What a tunnel carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inner {
    Ethernet,
    Ip(Network),
    /// An MPLS label stack (GRE protocol 0x8847).
    Mpls,
}

/// A tunnel's content: what it is, its bytes (captured, after the tunnel's headers) and their
/// length on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decapsulated<'a> {
    pub kind: Encap,
    pub id: Option<u32>,
    pub inner: Inner,
    pub bytes: &'a [u8],
    pub wire_len: usize,
}

/// `len` bytes at `at` of a payload whose captured part is `bytes` and declared part `wire`:
/// both must hold them.
fn header(bytes: &[u8], wire: usize, at: usize, len: usize) -> Option<&[u8]> {
    let end = at.checked_add(len)?;
    if end > wire {
        return None;
    }
    bytes.get(at..end)
}

/// What follows `skip` header bytes.
fn after<'a>(
    kind: Encap,
    id: Option<u32>,
    inner: Inner,
    bytes: &'a [u8],
    wire: usize,
    skip: usize,
) -> Decapsulated<'a> {
    Decapsulated {
        kind,
        id,
        inner,
        bytes: bytes.get(skip..).unwrap_or_default(),
        wire_len: wire.saturating_sub(skip),
    }
}

/// The tunnel inside an IP packet of protocol `protocol`, whose payload is `bytes` (captured)
/// of `wire` bytes (declared).
///
/// # Errors
///
/// `NotTcp` for a protocol or port that is no tunnel; the tunnel's `Malformed*` error for a
/// header cut short; `NotIp` for a tunnel carrying something other than IP or Ethernet.
pub(crate) fn decapsulate(
    protocol: u8,
    bytes: &[u8],
    wire: usize,
) -> Result<Decapsulated<'_>, DecodeError> {
    match protocol {
        proto::IPV4 => Ok(after(
            Encap::IpInIp,
            None,
            Inner::Ip(Network::Ipv4),
            bytes,
            wire,
            0,
        )),
        proto::IPV6 => Ok(after(
            Encap::IpInIp,
            None,
            Inner::Ip(Network::Ipv6),
            bytes,
            wire,
            0,
        )),
        proto::GRE => gre(bytes, wire, Encap::Gre),
        proto::UDP => udp(bytes, wire),
        _ => Err(DecodeError::NotTcp),
    }
}

fn udp(bytes: &[u8], wire: usize) -> Result<Decapsulated<'_>, DecodeError> {
    let h = header(bytes, wire, 0, UDP_LEN).ok_or(DecodeError::MalformedUdp)?;
    let (sport, dport) = (be16(h, 0), be16(h, 2));
    let (bytes, wire) = (bytes.get(UDP_LEN..).unwrap_or_default(), wire - UDP_LEN);
    let either = |p: u16| sport == p || dport == p;
    match dport {
        port::VXLAN => vxlan(bytes, wire),
        port::GENEVE => geneve(bytes, wire),
        port::GRE_IN_UDP => gre(bytes, wire, Encap::Gre),
        _ if either(port::GTP_U) => gtp_u(bytes, wire),
        _ if either(port::TEREDO) => teredo(bytes, wire),
        _ if either(port::AYIYA) => ayiya(bytes, wire),
        _ => Err(DecodeError::NotTcp),
    }
}

fn gre(bytes: &[u8], wire: usize, kind: Encap) -> Result<Decapsulated<'_>, DecodeError> {
    let base = header(bytes, wire, 0, gre::BASE_LEN).ok_or(DecodeError::MalformedGre)?;
    let flags = base[0];
    if base[1] & gre::VERSION_MASK != 0 {
        // Version 1 is PPTP's enhanced GRE, carrying PPP: no TCP to follow here.
        return Err(DecodeError::NotIp);
    }
    if flags & gre::ROUTING != 0 {
        // Source routing (RFC 1701, deprecated): variable routing entries, not followed.
        return Err(DecodeError::NotIp);
    }
    let protocol = be16(base, 2);
    let mut len = gre::BASE_LEN;
    if flags & (gre::CHECKSUM | gre::ROUTING) != 0 {
        len += 4;
    }
    let key_at = len;
    if flags & gre::KEY != 0 {
        len += 4;
    }
    if flags & gre::SEQUENCE != 0 {
        len += 4;
    }
    let fixed = header(bytes, wire, 0, len).ok_or(DecodeError::MalformedGre)?;
    let key = (flags & gre::KEY != 0).then(|| be32(fixed, key_at));
    match protocol {
        ethertype::IPV4 => Ok(after(kind, key, Inner::Ip(Network::Ipv4), bytes, wire, len)),
        ethertype::IPV6 => Ok(after(kind, key, Inner::Ip(Network::Ipv6), bytes, wire, len)),
        ethertype::TRANSPARENT_ETHERNET => Ok(after(kind, key, Inner::Ethernet, bytes, wire, len)),
        ethertype::MPLS | ethertype::MPLS_MULTICAST => {
            Ok(after(kind, key, Inner::Mpls, bytes, wire, len))
        }
        ethertype::WCCP => {
            let first = *header(bytes, wire, len, 1)
                .and_then(<[u8]>::first)
                .ok_or(DecodeError::MalformedGre)?;
            let skip = if first >> 4 == 4 { len } else { len + 4 };
            Ok(after(
                kind,
                key,
                Inner::Ip(Network::Ipv4),
                bytes,
                wire,
                skip,
            ))
        }
        ethertype::ERSPAN_1_2 if flags & gre::SEQUENCE == 0 => {
            // ERSPAN type I: the mirrored frame right after the GRE header.
            Ok(after(
                Encap::Erspan,
                None,
                Inner::Ethernet,
                bytes,
                wire,
                len,
            ))
        }
        ethertype::ERSPAN_1_2 => {
            let e = header(bytes, wire, len, ERSPAN_2_LEN).ok_or(DecodeError::MalformedErspan)?;
            let session = u32::from(be16(e, 2) & 0x03ff);
            Ok(after(
                Encap::Erspan,
                Some(session),
                Inner::Ethernet,
                bytes,
                wire,
                len + ERSPAN_2_LEN,
            ))
        }
        ethertype::ERSPAN_3 => {
            let e = header(bytes, wire, len, ERSPAN_3_LEN).ok_or(DecodeError::MalformedErspan)?;
            let session = u32::from(be16(e, 2) & 0x03ff);
            // The O flag (last bit of the header) announces an 8-byte platform subheader.
            let mut skip = len + ERSPAN_3_LEN;
            if e[ERSPAN_3_LEN - 1] & 0x01 != 0 {
                header(bytes, wire, skip, ERSPAN_3_PLATFORM_LEN)
                    .ok_or(DecodeError::MalformedErspan)?;
                skip += ERSPAN_3_PLATFORM_LEN;
            }
            // The frame type: 0 a mirrored Ethernet frame, 2 an IP packet.
            let inner = match (be16(e, 10) >> 10) & 0x1f {
                0 => Inner::Ethernet,
                2 => {
                    let first = *header(bytes, wire, skip, 1)
                        .and_then(<[u8]>::first)
                        .ok_or(DecodeError::MalformedErspan)?;
                    Inner::Ip(version_of(first).ok_or(DecodeError::NotIp)?)
                }
                _ => return Err(DecodeError::NotIp),
            };
            Ok(after(
                Encap::Erspan,
                Some(session),
                inner,
                bytes,
                wire,
                skip,
            ))
        }
        _ => Err(DecodeError::NotIp),
    }
}

fn vxlan(bytes: &[u8], wire: usize) -> Result<Decapsulated<'_>, DecodeError> {
    let h = header(bytes, wire, 0, VXLAN_LEN).ok_or(DecodeError::MalformedVxlan)?;
    // The I flag says the VNI is valid; without it there is no VNI to key on.
    let vni = (h[0] & 0x08 != 0).then(|| be32(h, 4) >> 8);
    Ok(after(
        Encap::Vxlan,
        vni,
        Inner::Ethernet,
        bytes,
        wire,
        VXLAN_LEN,
    ))
}

fn geneve(bytes: &[u8], wire: usize) -> Result<Decapsulated<'_>, DecodeError> {
    let h = header(bytes, wire, 0, GENEVE_BASE_LEN).ok_or(DecodeError::MalformedGeneve)?;
    if h[0] >> 6 != 0 {
        // An unknown version: its layout is not ours to guess.
        return Err(DecodeError::MalformedGeneve);
    }
    let len = GENEVE_BASE_LEN + usize::from(h[0] & 0x3f) * 4;
    header(bytes, wire, 0, len).ok_or(DecodeError::MalformedGeneve)?;
    let vni = Some(be32(h, 4) >> 8);
    let inner = match be16(h, 2) {
        ethertype::TRANSPARENT_ETHERNET => Inner::Ethernet,
        ethertype::IPV4 => Inner::Ip(Network::Ipv4),
        ethertype::IPV6 => Inner::Ip(Network::Ipv6),
        _ => return Err(DecodeError::NotIp),
    };
    Ok(after(Encap::Geneve, vni, inner, bytes, wire, len))
}

fn gtp_u(bytes: &[u8], wire: usize) -> Result<Decapsulated<'_>, DecodeError> {
    let h = header(bytes, wire, 0, GTP_BASE_LEN).ok_or(DecodeError::MalformedGtp)?;
    let flags = h[0];
    // Version 1, protocol type GTP (not GTP'); only G-PDUs carry user packets.
    if flags >> 5 != 1 || flags & 0x10 == 0 {
        return Err(DecodeError::MalformedGtp);
    }
    if h[1] != 0xff {
        return Err(DecodeError::NotIp);
    }
    let teid = Some(be32(h, 4));
    let mut len = GTP_BASE_LEN;
    if flags & 0x07 != 0 {
        // Sequence number, N-PDU number, next extension header type: present if any is.
        let opt = header(bytes, wire, len, 4).ok_or(DecodeError::MalformedGtp)?;
        let mut next = opt[3];
        len += 4;
        for _ in 0..MAX_GTP_EXTENSIONS {
            if next == 0 {
                break;
            }
            // Length in 4-byte units, the last byte the next type.
            let units = *header(bytes, wire, len, 1)
                .and_then(<[u8]>::first)
                .ok_or(DecodeError::MalformedGtp)?;
            let ext_len = usize::from(units) * 4;
            if ext_len == 0 {
                return Err(DecodeError::MalformedGtp);
            }
            let ext = header(bytes, wire, len, ext_len).ok_or(DecodeError::MalformedGtp)?;
            next = ext[ext_len - 1];
            len += ext_len;
        }
        if next != 0 {
            return Err(DecodeError::MalformedGtp);
        }
    }
    let first = *header(bytes, wire, len, 1)
        .and_then(<[u8]>::first)
        .ok_or(DecodeError::MalformedGtp)?;
    let network = version_of(first).ok_or(DecodeError::NotIp)?;
    Ok(after(
        Encap::GtpU,
        teid,
        Inner::Ip(network),
        bytes,
        wire,
        len,
    ))
}

fn teredo(bytes: &[u8], wire: usize) -> Result<Decapsulated<'_>, DecodeError> {
    let mut at = 0;
    // An authentication indicator, then an origin indication, each optional, in that order.
    if header(bytes, wire, 0, 2) == Some(&[0x00, 0x01]) {
        let h = header(bytes, wire, 0, 4).ok_or(DecodeError::MalformedTeredo)?;
        // Indicator, id length, auth length, id, auth value, nonce (8), confirmation (1).
        at = 4 + usize::from(h[2]) + usize::from(h[3]) + 8 + 1;
        header(bytes, wire, 0, at).ok_or(DecodeError::MalformedTeredo)?;
    }
    if header(bytes, wire, at, 2) == Some(&[0x00, 0x00]) {
        header(bytes, wire, at, TEREDO_ORIGIN_LEN).ok_or(DecodeError::MalformedTeredo)?;
        at += TEREDO_ORIGIN_LEN;
    }
    let first = *header(bytes, wire, at, 1)
        .and_then(<[u8]>::first)
        .ok_or(DecodeError::MalformedTeredo)?;
    match version_of(first) {
        Some(Network::Ipv6) => Ok(after(
            Encap::Teredo,
            None,
            Inner::Ip(Network::Ipv6),
            bytes,
            wire,
            at,
        )),
        _ => Err(DecodeError::NotIp),
    }
}

fn ayiya(bytes: &[u8], wire: usize) -> Result<Decapsulated<'_>, DecodeError> {
    let h = header(bytes, wire, 0, AYIYA_BASE_LEN).ok_or(DecodeError::MalformedTeredo)?;
    let identity = 1usize << (h[0] >> 4);
    let signature = usize::from(h[1] >> 4) * 4;
    let len = AYIYA_BASE_LEN + identity + signature;
    header(bytes, wire, 0, len).ok_or(DecodeError::MalformedTeredo)?;
    let network = match h[3] {
        proto::IPV4 => Network::Ipv4,
        proto::IPV6 => Network::Ipv6,
        _ => return Err(DecodeError::NotIp),
    };
    Ok(after(
        Encap::Ayiya,
        None,
        Inner::Ip(network),
        bytes,
        wire,
        len,
    ))
}
