//! Why a frame could not be turned into a [`PacketRecord`](super::PacketRecord).
//!
//! Errors are plain data so the monitor counts them per reason instead of logging per packet.
//! Every layer has its own: a GRE header cut short is `malformed_gre`, not a vague failure.

macro_rules! decode_errors {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal, $malformed:literal;)*) => {
        /// A frame that yields no TCP record. The `Malformed*` variants (and a stack of layers
        /// too deep to follow) are counted as malformed; the others are legitimate traffic that
        /// tcpulse does not analyse.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum DecodeError {
            $($(#[doc = $doc])* $variant),*
        }

        impl DecodeError {
            pub const ALL: [DecodeError; [$($name),*].len()] = [$(DecodeError::$variant),*];

            /// Stable snake_case name used in JSON output.
            pub fn name(self) -> &'static str {
                match self { $(DecodeError::$variant => $name),* }
            }

            pub fn is_malformed(self) -> bool {
                match self { $(DecodeError::$variant => $malformed),* }
            }
        }
    };
}

decode_errors! {
    /// Link header shorter than its fixed part, or a VLAN tag cut short.
    MalformedLink = "malformed_link", true;
    /// IPv4 header truncated, bad version, IHL < 5, or total length smaller than the header.
    MalformedIpv4 = "malformed_ipv4", true;
    /// IPv6 header or extension header chain truncated or overrunning the packet.
    MalformedIpv6 = "malformed_ipv6", true;
    /// The fixed TCP header not captured, or a data offset < 5 or beyond the segment.
    MalformedTcp = "malformed_tcp", true;
    /// A UDP header (of a UDP-borne tunnel) cut short.
    MalformedUdp = "malformed_udp", true;
    /// An MPLS label stack cut short or without a bottom label within bounds.
    MalformedMpls = "malformed_mpls", true;
    /// A PPPoE session header or its PPP protocol field cut short.
    MalformedPppoe = "malformed_pppoe", true;
    /// An 802.3 LLC/SNAP header cut short.
    MalformedLlc = "malformed_llc", true;
    /// A PPP, PPP-in-HDLC or Cisco HDLC header cut short.
    MalformedPpp = "malformed_ppp", true;
    /// An NFLOG header or its TLVs cut short or inconsistent.
    MalformedNflog = "malformed_nflog", true;
    /// A GRE header (with its optional fields) cut short.
    MalformedGre = "malformed_gre", true;
    /// An ERSPAN header cut short.
    MalformedErspan = "malformed_erspan", true;
    /// A VXLAN header cut short.
    MalformedVxlan = "malformed_vxlan", true;
    /// A GENEVE header or its options cut short.
    MalformedGeneve = "malformed_geneve", true;
    /// A GTP-U header or its extension headers cut short.
    MalformedGtp = "malformed_gtp", true;
    /// A Teredo or AYIYA header cut short.
    MalformedTeredo = "malformed_teredo", true;
    /// More tunnels inside one another than tcpulse follows (`MAX_TUNNELS`, 8).
    EncapTooDeep = "encap_too_deep", true;
    /// Neither IPv4 nor IPv6 (ARP, LLDP, ...), also inside a tunnel.
    NotIp = "not_ip", false;
    /// IP, but not TCP (UDP, ICMP, ...), also inside a tunnel.
    NotTcp = "not_tcp", false;
    /// A non-first IP fragment: counted, not reassembled.
    Fragment = "fragment", false;
    /// The capture's link type is not one tcpulse decodes.
    UnsupportedLinkType = "unsupported_link_type", false;
}

impl DecodeError {
    pub fn index(self) -> usize {
        self as usize
    }
}
