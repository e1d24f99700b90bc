//! Per-connection state: both directions' sequence analysis and counters, the handshake
//! timeline and the teardown, all plain data so the table can hold it in place.

use super::record::{Close, FlowRecord, HandshakeRecord, PerDir};
use super::seq_analysis::DirSeq;
use crate::metrics::servers::Endpoint;

/// Client→server is direction 0, server→client direction 1.
pub const C2S: usize = 0;
pub const S2C: usize = 1;

/// One direction of a connection.
#[derive(Clone, Copy, Default, Debug)]
pub struct Dir {
    pub seq: DirSeq,
    /// First sequence number of this direction (the SYN's, or inferred from the first segment
    /// or the peer's first ACK); a SYN with another number starts a new connection.
    pub base_seq: u32,
    pub base_set: bool,
    pub syn: u8,
    pub fin: u8,
    pub rst: u8,
    pub payload_bytes: u64,
    pub packets: u32,
    pub retransmits: u32,
    pub out_of_order: u32,
    pub dup_acks: u32,
    pub fast_retransmits: u16,
    pub spurious_retransmits: u16,
    pub zero_window: u16,
    pub zero_window_probes: u16,
}

/// Where the handshake stands.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// No SYN seen: picked up mid-stream.
    #[default]
    None,
    SynSent,
    SynAckSent,
    Established,
}

#[derive(Clone, Copy, Default, Debug)]
pub struct Conn {
    pub dir: [Dir; 2],
    pub first_ns: u64,
    pub last_ns: u64,
    /// Most recent SYN (without ACK) — the start of Wireshark's initial RTT.
    pub syn_ns: u64,
    /// Most recent SYN/ACK before the handshake completed.
    pub synack_ns: u64,
    /// SYN → first SYN/ACK, once seen.
    pub syn_synack_ns: Option<u64>,
    pub synack_ack_ns: Option<u64>,
    pub total_ns: Option<u64>,
    /// Wireshark's initial RTT (ns, 0 while unknown): the out-of-order threshold.
    pub first_rtt_ns: u64,
    /// Time the first FIN was seen, for the half-closed stall check.
    pub fin_ns: u64,
    pub server_idx: u32,
    pub handshake: Handshake,
    pub syn_retransmits: u8,
    pub synack_retransmits: u8,
    /// Whether the key's `lo` endpoint is the client.
    pub client_is_lo: bool,
    pub roles_guessed: bool,
    pub half_open: bool,
    pub half_closed_stall: bool,
    pub fin_first: Option<u8>,
    /// Set once an RST or both FINs ended the connection.
    pub closed: Option<Close>,
}

impl Conn {
    /// Both directions have sent FIN, or one sent RST.
    pub fn is_finished(&self) -> bool {
        self.closed.is_some()
    }

    pub fn record(&self, client: Endpoint, server: Endpoint, fallback: Close) -> FlowRecord {
        let per = |f: &dyn Fn(&Dir) -> u32| PerDir {
            c2s: f(&self.dir[C2S]),
            s2c: f(&self.dir[S2C]),
        };
        let close = self.closed.unwrap_or(match self.handshake {
            Handshake::SynSent if self.dir[S2C].packets == 0 => Close::Unanswered,
            _ => fallback,
        });
        FlowRecord {
            kind: "flow",
            client,
            server,
            roles_guessed: self.roles_guessed,
            first_ns: self.first_ns,
            last_ns: self.last_ns,
            handshake: (self.handshake != Handshake::None).then_some(HandshakeRecord {
                syn_synack_ns: self.syn_synack_ns,
                synack_ack_ns: self.synack_ack_ns,
                total_ns: self.total_ns,
                syn_retransmits: u32::from(self.syn_retransmits),
                synack_retransmits: u32::from(self.synack_retransmits),
            }),
            packets: PerDir {
                c2s: u64::from(self.dir[C2S].packets),
                s2c: u64::from(self.dir[S2C].packets),
            },
            payload_bytes: PerDir {
                c2s: self.dir[C2S].payload_bytes,
                s2c: self.dir[S2C].payload_bytes,
            },
            retransmits: per(&|d| d.retransmits),
            fast_retransmits: per(&|d| u32::from(d.fast_retransmits)),
            spurious_retransmits: per(&|d| u32::from(d.spurious_retransmits)),
            out_of_order: per(&|d| d.out_of_order),
            dup_acks: per(&|d| d.dup_acks),
            zero_window: per(&|d| u32::from(d.zero_window)),
            zero_window_probes: per(&|d| u32::from(d.zero_window_probes)),
            syn: per(&|d| u32::from(d.syn)),
            fin: per(&|d| u32::from(d.fin)),
            rst: per(&|d| u32::from(d.rst)),
            fin_first: self.fin_first.map(|d| {
                if d as usize == C2S {
                    "client"
                } else {
                    "server"
                }
            }),
            half_closed_stall: self.half_closed_stall,
            close,
        }
    }
}
