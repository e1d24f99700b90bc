//! The compact, `Copy` summary of one TCP segment that capture hands to flow workers.
//!
//! Capture never hands frames on: everything the engine needs is here, 64 bytes or so.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// TCP header flags (the low byte of the flags field, plus nothing else).
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// An IPv4 or IPv6 address stored in 16 bytes; IPv4 uses the IPv4-mapped form (`::ffff:a.b.c.d`)
/// so keys compare and hash the same way for both families.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    pub fn from_v4(octets: [u8; 4]) -> Self {
        let mut bytes = [0u8; 16];
        bytes[10] = 0xff;
        bytes[11] = 0xff;
        bytes[12..].copy_from_slice(&octets);
        Addr(bytes)
    }

    pub fn from_v6(octets: [u8; 16]) -> Self {
        Addr(octets)
    }

    pub fn is_v4(&self) -> bool {
        self.0[..10] == [0; 10] && self.0[10] == 0xff && self.0[11] == 0xff
    }

    pub fn to_ip(self) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::new(
                self.0[12], self.0[13], self.0[14], self.0[15],
            ))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.0))
        }
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Addr::from_v4(v4.octets()),
            IpAddr::V6(v6) => Addr::from_v6(v6.octets()),
        }
    }
}

/// An (address, port) pair, printed as `10.0.0.7:443` or `[2001:db8::7]:443`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Endpoint {
    pub addr: Addr,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr.to_ip() {
            std::net::IpAddr::V4(v4) => write!(f, "{v4}:{}", self.port),
            std::net::IpAddr::V6(v6) => write!(f, "[{v6}]:{}", self.port),
        }
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(d)?;
        let sa: std::net::SocketAddr = text
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("`{text}` is not an address:port")))?;
        Ok(Endpoint {
            addr: sa.ip().into(),
            port: sa.port(),
        })
    }
}

impl JsonSchema for Endpoint {
    fn schema_name() -> Cow<'static, str> {
        "Endpoint".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An address and port: `10.0.0.7:443` or `[2001:db8::7]:443`."
        })
    }
}

/// Value of `wscale` when the segment carried no window-scale option.
pub const NO_WSCALE: u8 = 0xff;

/// One decoded TCP segment. Sequence arithmetic is left to the flow engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketRecord {
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    /// TCP payload length in bytes, from the IP length fields (not the captured length), so
    /// snaplen-truncated frames still count their full payload.
    pub payload_len: u32,
    /// Raw (unscaled) window field.
    pub window: u16,
    /// MSS option value, 0 when absent.
    pub mss: u16,
    /// Low 8 bits of the TCP flags (see [`flags`]).
    pub flags: u8,
    /// Window-scale shift from the option, [`NO_WSCALE`] when absent.
    pub wscale: u8,
    /// Bit set of [`opt`] describing which options were present.
    pub options: u8,
    /// TSval and TSecr of the timestamps option ([`opt::TIMESTAMP`]); 0 without it.
    pub tsval: u32,
    pub tsecr: u32,
    /// Outermost VLAN id, 0 when untagged.
    pub vlan: u16,
    /// Every encapsulation the frame came through, as [`Encap`] bits.
    pub encaps: u16,
    /// The innermost tunnel, when there was one.
    pub tunnel: Option<Tunnel>,
}

/// Encapsulations a frame can come through, one bit each in [`PacketRecord::encaps`]; counted
/// per kind in interval records (`capture.decapsulated`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Encap {
    Vlan,
    Mpls,
    Pppoe,
    LlcSnap,
    Gre,
    Erspan,
    Vxlan,
    Geneve,
    IpInIp,
    GtpU,
    Teredo,
    Ayiya,
}

impl Encap {
    pub const ALL: [Encap; 12] = [
        Encap::Vlan,
        Encap::Mpls,
        Encap::Pppoe,
        Encap::LlcSnap,
        Encap::Gre,
        Encap::Erspan,
        Encap::Vxlan,
        Encap::Geneve,
        Encap::IpInIp,
        Encap::GtpU,
        Encap::Teredo,
        Encap::Ayiya,
    ];

    /// Stable snake_case name used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Encap::Vlan => "vlan",
            Encap::Mpls => "mpls",
            Encap::Pppoe => "pppoe",
            Encap::LlcSnap => "llc_snap",
            Encap::Gre => "gre",
            Encap::Erspan => "erspan",
            Encap::Vxlan => "vxlan",
            Encap::Geneve => "geneve",
            Encap::IpInIp => "ip_in_ip",
            Encap::GtpU => "gtp_u",
            Encap::Teredo => "teredo",
            Encap::Ayiya => "ayiya",
        }
    }

    pub fn bit(self) -> u16 {
        1 << self as u8
    }

    /// The kind of this name, as records write it.
    pub fn from_name(name: &str) -> Option<Encap> {
        Encap::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// A tunnel a segment came through: its kind, its id where it has one (VXLAN and GENEVE VNI,
/// GRE key, ERSPAN session, GTP-U TEID) and the tunnel's own IP endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tunnel {
    pub kind: Encap,
    pub id: Option<u32>,
    pub outer_src: Addr,
    pub outer_dst: Addr,
}

/// Presence bits for [`PacketRecord::options`].
pub mod opt {
    pub const SACK_PERMITTED: u8 = 0x01;
    pub const SACK: u8 = 0x02;
    pub const TIMESTAMP: u8 = 0x04;
    /// The frame was cut by the snap length before the end of the TCP payload.
    pub const TRUNCATED_PAYLOAD: u8 = 0x08;
    /// The frame was cut inside the TCP options: those before the cut were read.
    pub const TRUNCATED_OPTIONS: u8 = 0x10;
    /// An IP length said more than the frame held on the wire: what was there was used.
    pub const LENGTH_CLIPPED: u8 = 0x20;
    /// The first fragment of a fragmented IP packet: the TCP header is read, the payload
    /// length covers this fragment only.
    pub const FIRST_FRAGMENT: u8 = 0x40;
    /// An IP length of 0 (TSO / BIG TCP captures, or an IPv6 jumbogram) taken from the frame.
    pub const LENGTH_FROM_FRAME: u8 = 0x80;
    /// The bits that note how a segment was read (counted in `capture.decode_notes`).
    pub const NOTES: u8 = TRUNCATED_OPTIONS | LENGTH_CLIPPED | FIRST_FRAGMENT | LENGTH_FROM_FRAME;
}

impl PacketRecord {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}
