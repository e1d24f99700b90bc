//! The interval record: what one interval of capture time held, per appliance (or merged).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::counters::Counters;
use super::hist::{HistSummary, LatencyHist};
use super::SCHEMA_VERSION;
use crate::decode::{opt, DecodeError, Encap, Endpoint, PacketRecord};

/// What the capture stage saw in one interval, before any flow analysis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    pub packets: u64,
    pub bytes: u64,
    /// Frames that decoded to no TCP record, by reason (indexed by `DecodeError::index`).
    pub decode: [u64; DecodeError::ALL.len()],
    /// TCP segments that came through each encapsulation (indexed by `Encap as usize`).
    pub decapsulated: [u64; Encap::ALL.len()],
    /// TCP segments read despite a cut or odd length.
    pub notes: DecodeNotes,
    /// Frames the capture filter (`--filter`) did not match: not analysed, in no other count.
    pub filtered_out: u64,
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

    /// Counts what a decoded segment came through and how it was read; most segments need
    /// neither, so both are behind one test.
    #[inline]
    pub fn count_segment(&mut self, rec: &PacketRecord) {
        if rec.encaps != 0 {
            let mut bits = rec.encaps;
            while bits != 0 {
                self.decapsulated[bits.trailing_zeros() as usize] += 1;
                bits &= bits - 1;
            }
        }
        if rec.options & opt::NOTES != 0 {
            self.notes.count(rec.options);
        }
    }

    /// Adds `other`; saturating, since merged statistics may come from records read back.
    pub fn merge(&mut self, other: &CaptureStats) {
        self.packets = self.packets.saturating_add(other.packets);
        self.bytes = self.bytes.saturating_add(other.bytes);
        for (a, b) in self.decode.iter_mut().zip(other.decode.iter()) {
            *a = a.saturating_add(*b);
        }
        for (a, b) in self.decapsulated.iter_mut().zip(other.decapsulated.iter()) {
            *a = a.saturating_add(*b);
        }
        self.notes.merge(&other.notes);
        self.filtered_out = self.filtered_out.saturating_add(other.filtered_out);
        self.ts_backwards = self.ts_backwards.saturating_add(other.ts_backwards);
        self.time_jumps = self.time_jumps.saturating_add(other.time_jumps);
        self.drops.merge(&other.drops);
    }

    /// The statistics a record's `capture` object carries. Decode errors of names this
    /// version does not know are returned as their total, for the reader to report.
    pub fn from_record(c: &CaptureRecord) -> (CaptureStats, u64) {
        let mut stats = CaptureStats {
            packets: c.packets,
            bytes: c.bytes,
            filtered_out: c.filtered_out,
            ts_backwards: c.ts_backwards,
            time_jumps: c.time_jumps,
            drops: c.drops.clone(),
            notes: c.decode_notes.clone(),
            ..CaptureStats::default()
        };
        let mut unknown = 0u64;
        for (name, n) in &c.decode_errors {
            match DecodeError::ALL.iter().find(|e| e.name() == name) {
                Some(e) => stats.decode[e.index()] = *n,
                None => unknown = unknown.saturating_add(*n),
            }
        }
        // Decapsulation counts are not losses: a kind this version does not know is left out.
        for (name, n) in &c.decapsulated {
            if let Some(e) = Encap::from_name(name) {
                stats.decapsulated[e as usize] = *n;
            }
        }
        (stats, unknown)
    }

    /// The `capture` object of an interval record: reasons by name, and their two sums.
    pub fn to_record(&self) -> CaptureRecord {
        let sum = |malformed: bool| {
            DecodeError::ALL
                .iter()
                .filter(|e| e.is_malformed() == malformed)
                .map(|e| self.decode[e.index()])
                .fold(0u64, u64::saturating_add)
        };
        CaptureRecord {
            packets: self.packets,
            bytes: self.bytes,
            non_tcp: sum(false),
            malformed: sum(true),
            decode_errors: DecodeError::ALL
                .iter()
                .map(|e| (e.name().to_string(), self.decode[e.index()]))
                .collect(),
            decapsulated: Encap::ALL
                .iter()
                .map(|&e| (e.name().to_string(), self.decapsulated[e as usize]))
                .collect(),
            decode_notes: self.notes.clone(),
            filtered_out: self.filtered_out,
            ts_backwards: self.ts_backwards,
            time_jumps: self.time_jumps,
            drops: self.drops.clone(),
        }
    }
}

/// TCP segments read although their headers were cut or their lengths odd (`capture.decode_notes`,
/// docs/schema.md): none of them is lost, each is counted once per reason.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeNotes {
    /// The snap length cut the TCP options: those before the cut were read.
    pub options_cut: u64,
    /// An IP length beyond the frame's wire length: the frame's length was used.
    pub length_clipped: u64,
    /// An IPv4 length of 0 (TSO, BIG TCP) or an IPv6 jumbogram: the length came from the frame.
    pub length_from_frame: u64,
    /// First fragments whose TCP header was analysed (later fragments are `fragment` errors).
    pub first_fragments: u64,
}

impl DecodeNotes {
    fn count(&mut self, options: u8) {
        let add = |n: &mut u64, bit: u8| *n += u64::from(options & bit != 0);
        add(&mut self.options_cut, opt::TRUNCATED_OPTIONS);
        add(&mut self.length_clipped, opt::LENGTH_CLIPPED);
        add(&mut self.length_from_frame, opt::LENGTH_FROM_FRAME);
        add(&mut self.first_fragments, opt::FIRST_FRAGMENT);
    }

    /// Adds `o`; saturating, since merged notes may come from records read back.
    pub fn merge(&mut self, o: &DecodeNotes) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.options_cut, o.options_cut);
        add(&mut self.length_clipped, o.length_clipped);
        add(&mut self.length_from_frame, o.length_from_frame);
        add(&mut self.first_fragments, o.first_fragments);
    }
}

/// The monitor's own losses. Offline analysis never drops; live capture fills the XDP fields.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
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
    /// Not frames but RTT samples: timed events still awaiting their answer that newer ones
    /// displaced from a worker's pending-event table (docs/latency.md).
    #[serde(default)]
    pub rtt_events_displaced: u64,
    /// Not a loss: records analysed possibly out of capture order because one capture queue
    /// fell more than a worker's merge lane behind the others.
    pub reorder_overflow: u64,
}

impl Drops {
    /// Every reason with its count, by the name records use.
    pub fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("xdp_rx_dropped", self.xdp_rx_dropped),
            ("xdp_rx_ring_full", self.xdp_rx_ring_full),
            ("xdp_fill_ring_empty", self.xdp_fill_ring_empty),
            ("xdp_invalid_descs", self.xdp_invalid_descs),
            ("af_packet_drops", self.af_packet_drops),
            ("worker_ring_full", self.worker_ring_full),
            ("flow_table_full", self.flow_table_full),
            ("flow_probe_limit", self.flow_probe_limit),
            ("rtt_events_displaced", self.rtt_events_displaced),
            ("reorder_overflow", self.reorder_overflow),
        ]
    }

    /// Adds `o`; saturating, since merged drops may come from records read back.
    pub fn merge(&mut self, o: &Drops) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.xdp_rx_dropped, o.xdp_rx_dropped);
        add(&mut self.xdp_rx_ring_full, o.xdp_rx_ring_full);
        add(&mut self.xdp_fill_ring_empty, o.xdp_fill_ring_empty);
        add(&mut self.xdp_invalid_descs, o.xdp_invalid_descs);
        add(&mut self.af_packet_drops, o.af_packet_drops);
        add(&mut self.worker_ring_full, o.worker_ring_full);
        add(&mut self.flow_table_full, o.flow_table_full);
        add(&mut self.flow_probe_limit, o.flow_probe_limit);
        add(&mut self.rtt_events_displaced, o.rtt_events_displaced);
        add(&mut self.reorder_overflow, o.reorder_overflow);
    }
}

/// `capture`: what reached the monitor, and what it could not use or lost.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct CaptureRecord {
    pub packets: u64,
    pub bytes: u64,
    /// Frames that are not TCP (every non-malformed decode error).
    pub non_tcp: u64,
    /// Frames cut or damaged (every malformed decode error).
    pub malformed: u64,
    /// Frames that decoded to no TCP record, by reason.
    pub decode_errors: BTreeMap<String, u64>,
    /// TCP segments that came through each encapsulation (a segment in VLAN in VXLAN in VLAN
    /// counts once under `vlan` and once under `vxlan`).
    pub decapsulated: BTreeMap<String, u64>,
    /// TCP segments read despite cut headers or odd lengths.
    pub decode_notes: DecodeNotes,
    /// Frames the capture filter (`--filter`) did not match: not analysed, in no other count.
    pub filtered_out: u64,
    pub ts_backwards: u64,
    pub time_jumps: u64,
    pub drops: Drops,
}

/// `tcp`: the interval's counters over every server, with ratios and gauges.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct TcpRecord {
    #[serde(flatten)]
    pub counters: Counters,
    pub retransmit_ratio: f64,
    pub backlog_pressure: f64,
    pub active_flows: u64,
    pub half_open: u64,
}

/// `histograms`: latencies over every server, in µs: the handshake's, the connections' RTT
/// legs all through them, and the servers' response times.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Default, PartialEq)]
pub struct HistogramsRecord {
    pub handshake_total_us: HistSummary,
    pub syn_synack_us: HistSummary,
    pub synack_ack_us: HistSummary,
    /// RTT samples answered by the servers: tap → server → tap.
    pub rtt_server_leg_us: HistSummary,
    /// RTT samples answered by the clients: tap → client → tap.
    pub rtt_client_leg_us: HistSummary,
    /// Server response times per request/response turn.
    pub response_us: HistSummary,
}

impl HistogramsRecord {
    /// Every histogram, in field order.
    pub fn all(&self) -> [&HistSummary; 6] {
        [
            &self.handshake_total_us,
            &self.syn_synack_us,
            &self.synack_ack_us,
            &self.rtt_server_leg_us,
            &self.rtt_client_leg_us,
            &self.response_us,
        ]
    }
}

/// One listed server.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct ServerRecord {
    /// `ip:port`, or `"other"` for the bucket of servers beyond the per-worker server limit.
    pub server: String,
    #[serde(flatten)]
    pub counters: Counters,
    pub half_open: u64,
    pub active_flows: u64,
    pub backlog_pressure: f64,
    pub retransmit_ratio: f64,
    pub handshake_total_us: HistSummary,
    pub rtt_server_leg_us: HistSummary,
    pub rtt_client_leg_us: HistSummary,
    pub response_us: HistSummary,
}

/// What one destination got and lost, since the previous interval record it received
/// (`tcpulse run`'s sinks, docs/sinks.md).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkCounts {
    pub name: String,
    /// Records that reached the destination.
    pub delivered: u64,
    /// Records given up: queue full, or a batch that failed every retry.
    pub dropped: u64,
    /// Attempts beyond the first for a batch.
    pub retries: u64,
    /// Failed attempts.
    pub errors: u64,
    /// The latest error if there was an error or a drop in between, else `null`.
    pub last_error: Option<String>,
}

/// One interval of capture time (`"type": "interval"`).
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename = "interval")]
pub struct IntervalRecord {
    /// [`SCHEMA_VERSION`] when written.
    pub schema_version: u32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub source: String,
    pub capture: CaptureRecord,
    pub tcp: TcpRecord,
    pub histograms: HistogramsRecord,
    pub servers: Vec<ServerRecord>,
    /// Servers active in the interval but not listed (beyond the top-N).
    pub servers_omitted: u64,
    /// Written by `tcpulse merge` only: how many input records this one sums, and their
    /// sources (`source` then names them all, joined by ` + `).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
    /// `tcpulse run` with sinks: each sink's deliveries and losses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sinks: Option<Vec<SinkCounts>>,
}

impl TcpRecord {
    pub fn new(counters: Counters, active_flows: u64, half_open: u64) -> Self {
        TcpRecord {
            counters,
            retransmit_ratio: round4(counters.retransmit_ratio()),
            backlog_pressure: round4(counters.backlog_pressure()),
            active_flows,
            half_open,
        }
    }
}

impl ServerRecord {
    /// One server's row; `overflow` is the bucket of servers beyond the per-worker limit.
    pub fn new(
        overflow: bool,
        endpoint: Endpoint,
        counters: Counters,
        half_open: u64,
        active_flows: u64,
        hists: [Option<&LatencyHist>; 4],
    ) -> Self {
        let summary = |i: usize| hists[i].map(LatencyHist::summary).unwrap_or_default();
        ServerRecord {
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
            handshake_total_us: summary(0),
            rtt_server_leg_us: summary(1),
            rtt_client_leg_us: summary(2),
            response_us: summary(3),
        }
    }

    /// The server this row is about: `Some(None)` for the `other` bucket, `None` when
    /// `server` is neither `ip:port` nor `other`.
    pub fn endpoint(&self) -> Option<Option<Endpoint>> {
        if self.server == "other" {
            return Some(None);
        }
        self.server.parse::<std::net::SocketAddr>().ok().map(|sa| {
            Some(Endpoint {
                addr: sa.ip().into(),
                port: sa.port(),
            })
        })
    }
}

impl IntervalRecord {
    /// An empty record of this version.
    pub fn new(start_ns: u64, end_ns: u64, source: String) -> Self {
        IntervalRecord {
            schema_version: SCHEMA_VERSION,
            start_ns,
            end_ns,
            source,
            capture: CaptureStats::default().to_record(),
            tcp: TcpRecord::new(Counters::default(), 0, 0),
            histograms: HistogramsRecord::default(),
            servers: Vec::new(),
            servers_omitted: 0,
            merged: None,
            sources: None,
            sinks: None,
        }
    }
}

/// Ratios in records carry four decimals.
pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
