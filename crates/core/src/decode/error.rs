//! Why a frame could not be turned into a [`PacketRecord`](super::PacketRecord).
//!
//! Errors are plain data so the monitor counts them per reason instead of logging per packet.

/// A frame that yields no TCP record. The `Malformed*` variants are counted as malformed; the
/// others are legitimate traffic that tcpulse does not analyse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// Link header shorter than its fixed part, or a VLAN tag cut short.
    MalformedLink,
    /// IPv4 header truncated, bad version, IHL < 5, or total length smaller than the header.
    MalformedIpv4,
    /// IPv6 header or extension header chain truncated or overrunning the packet.
    MalformedIpv6,
    /// TCP header truncated, data offset < 5 or beyond the segment, options overrunning.
    MalformedTcp,
    /// Neither IPv4 nor IPv6 (ARP, LLDP, ...).
    NotIp,
    /// IP, but not TCP (UDP, ICMP, ...).
    NotTcp,
    /// A non-first IP fragment, or a first fragment: counted, not reassembled.
    Fragment,
    /// The capture's link type is not one tcpulse decodes.
    UnsupportedLinkType,
}

impl DecodeError {
    pub const ALL: [DecodeError; 8] = [
        DecodeError::MalformedLink,
        DecodeError::MalformedIpv4,
        DecodeError::MalformedIpv6,
        DecodeError::MalformedTcp,
        DecodeError::NotIp,
        DecodeError::NotTcp,
        DecodeError::Fragment,
        DecodeError::UnsupportedLinkType,
    ];

    /// Stable snake_case name used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            DecodeError::MalformedLink => "malformed_link",
            DecodeError::MalformedIpv4 => "malformed_ipv4",
            DecodeError::MalformedIpv6 => "malformed_ipv6",
            DecodeError::MalformedTcp => "malformed_tcp",
            DecodeError::NotIp => "not_ip",
            DecodeError::NotTcp => "not_tcp",
            DecodeError::Fragment => "fragment",
            DecodeError::UnsupportedLinkType => "unsupported_link_type",
        }
    }

    pub fn is_malformed(self) -> bool {
        matches!(
            self,
            DecodeError::MalformedLink
                | DecodeError::MalformedIpv4
                | DecodeError::MalformedIpv6
                | DecodeError::MalformedTcp
        )
    }

    pub fn index(self) -> usize {
        self as usize
    }
}
