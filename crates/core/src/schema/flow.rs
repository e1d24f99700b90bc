//! The flow record emitted when a connection ends (see docs/schema.md).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use std::net::IpAddr;

use crate::decode::{Encap, Endpoint};

/// A value per direction: client→server and server→client.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerDir<T> {
    pub c2s: T,
    pub s2c: T,
}

/// How a flow ended.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Close {
    /// Both sides sent FIN.
    Fin,
    RstClient,
    RstServer,
    /// The server answered the SYN with RST.
    Refused,
    /// SYN never answered before the half-open timeout or the end of the capture.
    Unanswered,
    IdleTimeout,
    /// Removed to make room in a full flow table.
    Evicted,
    CaptureEnd,
    /// A new SYN on the same addresses and ports started another connection.
    PortReuse,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandshakeRecord {
    /// SYN → SYN/ACK seen at the tap: the server side of the path plus the server's SYN handling.
    pub syn_synack_ns: Option<u64>,
    /// SYN/ACK → ACK seen at the tap: the client side of the path.
    pub synack_ack_ns: Option<u64>,
    /// Latest SYN → handshake-completing ACK (Wireshark's `tcp.analysis.initial_rtt`).
    pub total_ns: Option<u64>,
    pub syn_retransmits: u32,
    pub synack_retransmits: u32,
}

/// A side of a connection.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Client,
    Server,
}

/// One connection, written when it ends (`"type": "flow"`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename = "flow")]
pub struct FlowRecord {
    /// [`SCHEMA_VERSION`](super::SCHEMA_VERSION) when written.
    pub schema_version: u32,
    pub client: Endpoint,
    pub server: Endpoint,
    /// True when no SYN told who the client is and the roles were guessed from the ports.
    pub roles_guessed: bool,
    pub first_ns: u64,
    pub last_ns: u64,
    pub handshake: Option<HandshakeRecord>,
    pub packets: PerDir<u64>,
    pub payload_bytes: PerDir<u64>,
    pub retransmits: PerDir<u32>,
    pub fast_retransmits: PerDir<u32>,
    pub spurious_retransmits: PerDir<u32>,
    pub out_of_order: PerDir<u32>,
    pub dup_acks: PerDir<u32>,
    pub zero_window: PerDir<u32>,
    pub zero_window_probes: PerDir<u32>,
    pub syn: PerDir<u32>,
    pub fin: PerDir<u32>,
    pub rst: PerDir<u32>,
    /// Who sent the first FIN, when any.
    pub fin_first: Option<Side>,
    /// One side closed and the other kept it open past the stall threshold (CLOSE_WAIT suspect).
    pub half_closed_stall: bool,
    pub close: Close,
    /// The tunnel the flow came through (the innermost, as in its first segment); absent for
    /// flows seen without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelRecord>,
    /// Round-trip times all through the connection, per leg; absent when none was sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt: Option<RttRecord>,
    /// The server's response times per request/response turn; absent when no turn ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseRecord>,
}

/// The samples of one latency: how many, the least, the median and the most. The median is
/// that of a log histogram of 4 buckets per octave (the middle of the median's bucket, within
/// the least and the most): within 10 % of the exact median.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySummary {
    pub samples: u64,
    pub min_ns: Option<u64>,
    pub p50_ns: Option<u64>,
    pub max_ns: Option<u64>,
}

/// Where a flow's RTT samples came from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RttSourceName {
    Timestamps,
    SeqAck,
    Both,
}

/// RTT samples of a flow, split at the tap: `server_leg` tap → server → tap, `client_leg`
/// tap → client → tap.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttRecord {
    pub server_leg: LatencySummary,
    pub client_leg: LatencySummary,
    pub source: RttSourceName,
}

/// Response times of a flow's request/response turns.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseRecord {
    pub turns: u64,
    pub min_ns: Option<u64>,
    pub p50_ns: Option<u64>,
    pub max_ns: Option<u64>,
}

/// A tunnel a flow came through.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelRecord {
    /// `gre`, `erspan`, `vxlan`, `geneve`, `ip_in_ip`, `gtp_u`, `teredo` or `ayiya`.
    pub kind: Encap,
    /// VXLAN or GENEVE VNI, GRE key, ERSPAN session id or GTP-U TEID; absent when the tunnel
    /// has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// The tunnel's own addresses in the flow's first segment. A mirror session's copies all
    /// travel from the mirror source to the monitor, whichever way the flow's segment went.
    pub outer_src: IpAddr,
    pub outer_dst: IpAddr,
}
