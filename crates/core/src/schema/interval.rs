//! The interval record: what one interval of capture time held, per appliance (or merged).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::counters::Counters;
use super::hist::{HistSummary, LatencyHist};
use crate::decode::{DecodeError, Endpoint};

/// What the capture stage saw in one interval, before any flow analysis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    pub packets: u64,
    pub bytes: u64,
    /// Frames that decoded to no TCP record, by reason (indexed by `DecodeError::index`).
    pub decode: [u64; DecodeError::ALL.len()],
    /// Packets stamped earlier than the interval they arrived in (kept in that interval).
    pub ts_backwards: u64,
    /// Forward jumps in capture time too large to fill with empty intervals.
    pub time_jumps: u64,
    pub drops: Drops,
}

impl CaptureStats {
    pub fn count_error(&mut self, e: DecodeError) {
        self.decode[e.index()] += 1;
    }

    pub fn merge(&mut self, other: &CaptureStats) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        for (a, b) in self.decode.iter_mut().zip(other.decode.iter()) {
            *a += b;
        }
        self.ts_backwards += other.ts_backwards;
        self.time_jumps += other.time_jumps;
        self.drops.merge(&other.drops);
    }

    /// The `capture` object of an interval record: reasons by name, and their two sums.
    pub fn to_json(&self) -> CaptureJson {
        let sum = |malformed: bool| {
            DecodeError::ALL
                .iter()
                .filter(|e| e.is_malformed() == malformed)
                .map(|e| self.decode[e.index()])
                .sum()
        };
        CaptureJson {
            packets: self.packets,
            bytes: self.bytes,
            non_tcp: sum(false),
            malformed: sum(true),
            decode_errors: DecodeError::ALL
                .iter()
                .map(|e| (e.name(), self.decode[e.index()]))
                .collect(),
            ts_backwards: self.ts_backwards,
            time_jumps: self.time_jumps,
            drops: self.drops.clone(),
        }
    }
}

/// The monitor's own losses. Offline analysis never drops; live capture fills the XDP fields.
/// Read back by `tcpulse merge`: a field missing from older records reads as 0.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct Drops {
    pub xdp_rx_dropped: u64,
    pub xdp_rx_ring_full: u64,
    pub xdp_fill_ring_empty: u64,
    pub xdp_invalid_descs: u64,
    /// Frames the kernel could not put in an AF_PACKET ring (`--capture af-packet`).
    pub af_packet_drops: u64,
    pub worker_ring_full: u64,
    /// Flows evicted because the flow table was full.
    pub flow_table_full: u64,
    /// Packets of flows not tracked because every slot within the table's probe bound of
    /// their home was taken. The keyed hash makes this a sign of an attack on a known key,
    /// not of chance.
    pub flow_probe_limit: u64,
    /// Not a loss: records analysed possibly out of capture order because one capture queue
    /// fell more than a worker's merge lane behind the others.
    pub reorder_overflow: u64,
}

impl Drops {
    pub fn merge(&mut self, o: &Drops) {
        self.xdp_rx_dropped += o.xdp_rx_dropped;
        self.xdp_rx_ring_full += o.xdp_rx_ring_full;
        self.xdp_fill_ring_empty += o.xdp_fill_ring_empty;
        self.xdp_invalid_descs += o.xdp_invalid_descs;
        self.af_packet_drops += o.af_packet_drops;
        self.worker_ring_full += o.worker_ring_full;
        self.flow_table_full += o.flow_table_full;
        self.flow_probe_limit += o.flow_probe_limit;
        self.reorder_overflow += o.reorder_overflow;
    }
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct CaptureJson {
    pub packets: u64,
    pub bytes: u64,
    pub non_tcp: u64,
    pub malformed: u64,
    pub decode_errors: BTreeMap<&'static str, u64>,
    pub ts_backwards: u64,
    pub time_jumps: u64,
    pub drops: Drops,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct TcpJson {
    #[serde(flatten)]
    pub counters: Counters,
    pub retransmit_ratio: f64,
    pub backlog_pressure: f64,
    pub active_flows: u64,
    pub half_open: u64,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct HistogramsJson {
    pub handshake_total_us: HistSummary,
    pub syn_synack_us: HistSummary,
    pub synack_ack_us: HistSummary,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ServerJson {
    /// `ip:port`, or `"other"` for the bucket of servers beyond the per-worker server limit.
    pub server: String,
    #[serde(flatten)]
    pub counters: Counters,
    pub half_open: u64,
    pub active_flows: u64,
    pub backlog_pressure: f64,
    pub retransmit_ratio: f64,
    pub handshake_total_us: HistSummary,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct IntervalRecord {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub start_ns: u64,
    pub end_ns: u64,
    pub source: String,
    pub capture: CaptureJson,
    pub tcp: TcpJson,
    pub histograms: HistogramsJson,
    pub servers: Vec<ServerJson>,
    /// Servers active in the interval but not listed (beyond the top-N).
    pub servers_omitted: u64,
    /// Written by `tcpulse merge` only: how many input records this one sums, and their
    /// sources (`source` then names them all, joined by ` + `).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
}

impl TcpJson {
    pub fn new(counters: Counters, active_flows: u64, half_open: u64) -> Self {
        TcpJson {
            counters,
            retransmit_ratio: round4(counters.retransmit_ratio()),
            backlog_pressure: round4(counters.backlog_pressure()),
            active_flows,
            half_open,
        }
    }
}

impl ServerJson {
    /// One server's row; `overflow` is the bucket of servers beyond the per-worker limit.
    pub fn new(
        overflow: bool,
        endpoint: Endpoint,
        counters: Counters,
        half_open: u64,
        active_flows: u64,
        hist: Option<&LatencyHist>,
    ) -> Self {
        ServerJson {
            server: if overflow {
                "other".to_string()
            } else {
                endpoint.to_string()
            },
            counters,
            half_open,
            active_flows,
            backlog_pressure: round4(counters.backlog_pressure()),
            retransmit_ratio: round4(counters.retransmit_ratio()),
            handshake_total_us: hist.map(LatencyHist::summary).unwrap_or_default(),
        }
    }
}

/// Ratios in records carry four decimals.
pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
