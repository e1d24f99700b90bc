//! Per-connection state, split in two so the flow table stays small:
//! - [`Conn`] (hot): what the analysis, the handshake timeline, timeouts and per-server counters
//!   need — always kept;
//! - [`FlowStats`] (cold): per-direction counters and handshake legs that only the flow record
//!   reports — kept only when flow records are wanted (`--flows`).

use super::latency::{FlowLatency, Latency};
use super::seq_analysis::DirSeq;
use crate::decode::{Endpoint, Tunnel};
use crate::schema::flow::{Close, FlowRecord, HandshakeRecord, PerDir, Side, TunnelRecord};
use crate::schema::SCHEMA_VERSION;

/// Client→server is direction 0, server→client direction 1.
pub const C2S: usize = 0;
pub const S2C: usize = 1;

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

/// Bits of [`Conn::bits`].
pub mod bit {
    /// The key's `lo` endpoint is the client.
    pub const CLIENT_IS_LO: u16 = 1 << 0;
    pub const ROLES_GUESSED: u16 = 1 << 1;
    /// Counted in its server's half-open gauge.
    pub const HALF_OPEN: u16 = 1 << 2;
    pub const HALF_CLOSED_STALL: u16 = 1 << 3;
    /// `base_seq[d]` holds a value (d = 0, 1).
    pub const BASE_SET: [u16; 2] = [1 << 4, 1 << 5];
    /// Direction d has sent a FIN.
    pub const FIN: [u16; 2] = [1 << 6, 1 << 7];
    /// Direction d has sent anything.
    pub const SENT: [u16; 2] = [1 << 8, 1 << 9];
    pub const SYN_RESENT: u16 = 1 << 10;
    pub const SYNACK_RESENT: u16 = 1 << 11;
}

/// The hot part of a connection.
#[derive(Clone, Copy, Default, Debug)]
pub struct Conn {
    pub seq: [DirSeq; 2],
    /// First sequence number of each direction (the SYN's, or inferred from the first segment or
    /// the peer's first ACK); a SYN with another number starts a new connection.
    pub base_seq: [u32; 2],
    pub last_ns: u64,
    /// Most recent SYN (without ACK) — the start of Wireshark's initial RTT.
    pub syn_ns: u64,
    /// Most recent SYN/ACK before the handshake completed.
    pub synack_ns: u64,
    /// Wireshark's initial RTT (ns, 0 while unknown): the out-of-order threshold. Saturates at
    /// 4.29 s, far above any threshold that matters.
    pub first_rtt_ns: u32,
    /// Capture time of the first FIN in whole seconds since the Unix epoch, for the half-closed
    /// stall check (1 s resolution is plenty there).
    pub fin_secs: u32,
    pub server_idx: u32,
    pub bits: u16,
    pub handshake: Handshake,
    /// Set once an RST or both FINs ended the connection.
    pub closed: Option<Close>,
    /// RTT and response-time state, beside the rest so one fetch brings both.
    pub latency: Latency,
}

impl Conn {
    #[inline]
    pub fn has(&self, b: u16) -> bool {
        self.bits & b != 0
    }

    #[inline]
    pub fn set(&mut self, b: u16, on: bool) {
        if on {
            self.bits |= b;
        } else {
            self.bits &= !b;
        }
    }

    /// Both directions have sent FIN, or one sent RST.
    pub fn is_finished(&self) -> bool {
        self.closed.is_some()
    }

    pub fn client_is_lo(&self) -> bool {
        self.has(bit::CLIENT_IS_LO)
    }

    pub fn half_open(&self) -> bool {
        self.has(bit::HALF_OPEN)
    }

    /// Picked up mid-stream (no SYN seen) and never answered: what a flood of spoofed ACKs or
    /// data segments leaves in the table, the least worth keeping after half-open flows.
    pub fn one_sided_guess(&self) -> bool {
        self.has(bit::ROLES_GUESSED) && !(self.has(bit::SENT[0]) && self.has(bit::SENT[1]))
    }

    /// How the flow ends: an explicit close (FIN, RST) if there was one; an eviction as such
    /// (whether its SYN would have been answered is unknown); otherwise a SYN that never got
    /// any reply is `unanswered`, and anything else ends for `why`.
    pub fn close_reason(&self, why: Close) -> Close {
        match (self.closed, why) {
            (Some(close), _) => close,
            (None, Close::Evicted) => Close::Evicted,
            (None, _) if self.handshake == Handshake::SynSent && !self.has(bit::SENT[S2C]) => {
                Close::Unanswered
            }
            (None, _) => why,
        }
    }
}

/// Counters of one direction, for the flow record.
#[derive(Clone, Copy, Default, Debug)]
pub struct DirCounts {
    pub payload_bytes: u64,
    pub packets: u32,
    pub retransmits: u32,
    pub out_of_order: u32,
    pub dup_acks: u32,
    pub fast_retransmits: u16,
    pub spurious_retransmits: u16,
    pub zero_window: u16,
    pub zero_window_probes: u16,
    pub syn: u8,
    pub fin: u8,
    pub rst: u8,
}

/// The cold part of a connection: only what the flow record reports.
#[derive(Clone, Copy, Default, Debug)]
pub struct FlowStats {
    pub dir: [DirCounts; 2],
    pub first_ns: u64,
    pub syn_synack_ns: Option<u64>,
    pub synack_ack_ns: Option<u64>,
    pub total_ns: Option<u64>,
    pub syn_retransmits: u8,
    pub synack_retransmits: u8,
    pub fin_first: Option<u8>,
    /// The innermost tunnel of the flow's first segment.
    pub tunnel: Option<Tunnel>,
    pub latency: FlowLatency,
}

impl FlowStats {
    pub fn record(
        &self,
        conn: &Conn,
        client: Endpoint,
        server: Endpoint,
        close: Close,
    ) -> FlowRecord {
        let per = |f: &dyn Fn(&DirCounts) -> u32| PerDir {
            c2s: f(&self.dir[C2S]),
            s2c: f(&self.dir[S2C]),
        };
        FlowRecord {
            schema_version: SCHEMA_VERSION,
            client,
            server,
            roles_guessed: conn.has(bit::ROLES_GUESSED),
            first_ns: self.first_ns,
            last_ns: conn.last_ns,
            handshake: (conn.handshake != Handshake::None).then_some(HandshakeRecord {
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
                    Side::Client
                } else {
                    Side::Server
                }
            }),
            half_closed_stall: conn.has(bit::HALF_CLOSED_STALL),
            close,
            tunnel: self.tunnel.map(|t| TunnelRecord {
                kind: t.kind,
                id: t.id,
                outer_src: t.outer_src.to_ip(),
                outer_dst: t.outer_dst.to_ip(),
            }),
            rtt: self.latency.rtt_record(),
            response: self.latency.response_record(),
        }
    }
}
