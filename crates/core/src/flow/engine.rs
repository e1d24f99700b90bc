//! One worker's flow engine: `on_packet(record)` and `on_tick(now)`, driven by capture time
//! only — no clock, no I/O — so live capture, files and tests run the very same code.

use super::conn::{bit, Conn, FlowStats, C2S, S2C};
use super::key::{FlowHasher, FlowKey, TunnelKeying};
use super::latency::{Latency, LatencyConfig, Leg, PendingEvents, RttSample, SegmentFacts};
use super::segment::{self, IntervalHists, Seen};
use super::servers::{fast, FastHists, ServerSnapshot, ServerTable};
use super::table::{FlowTable, InsertError};
use crate::decode::flags::{ACK, SYN};
use crate::decode::Endpoint;
use crate::decode::PacketRecord;
use crate::schema::counters::Counter;
use crate::schema::flow::{Close, FlowRecord};
use crate::schema::hist::{FastHist, LatencyHist};

/// Flow-table sizing and timeouts, all in capture time.
#[derive(Clone, Debug)]
pub struct FlowConfig {
    /// Flows this worker tracks at most; beyond it flows are evicted (counted).
    pub capacity: usize,
    /// An established or mid-stream flow with no packet for this long ends as `idle_timeout`.
    pub idle_timeout_ns: u64,
    /// A handshake that makes no progress for this long ends (`unanswered` when the SYN never
    /// got any reply).
    pub half_open_timeout_ns: u64,
    /// After FIN from both sides or an RST, stray packets still join the flow for this long.
    pub close_linger_ns: u64,
    /// One side has sent FIN and the other has not for this long: a half-closed stall.
    pub half_closed_stall_ns: u64,
    /// Servers tracked individually per worker; more go to an overflow bucket.
    pub max_servers: usize,
    /// Build a flow record for each ended flow (otherwise only counters are kept).
    pub emit_flows: bool,
    /// The keyed flow hash; the dispatcher's shard choice uses the same one.
    pub hasher: FlowHasher,
    /// Which tunnel ids are part of the flow key.
    pub tunnel_keying: TunnelKeying,
    /// RTT sources and rate limit.
    pub latency: LatencyConfig,
    /// Keep every RTT sample with its time and flow, for [`Engine::take_rtt_samples`]
    /// (comparisons sample by sample; off in the pipeline).
    pub keep_rtt_samples: bool,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            capacity: 1 << 20,
            idle_timeout_ns: 300_000_000_000,
            half_open_timeout_ns: 60_000_000_000,
            close_linger_ns: 60_000_000_000,
            half_closed_stall_ns: 60_000_000_000,
            max_servers: 65_536,
            emit_flows: true,
            hasher: FlowHasher::random(),
            tunnel_keying: TunnelKeying::default(),
            latency: LatencyConfig::default(),
            keep_rtt_samples: false,
        }
    }
}

/// The handshake's latency histograms of one interval.
#[derive(Clone, Debug, Default)]
pub struct HandshakeHists {
    pub total: LatencyHist,
    pub syn_synack: LatencyHist,
    pub synack_ack: LatencyHist,
}

impl HandshakeHists {
    pub fn is_empty(&self) -> bool {
        self.total.is_empty() && self.syn_synack.is_empty() && self.synack_ack.is_empty()
    }

    /// Empties every histogram, keeping its memory.
    pub fn reset(&mut self) {
        self.total.reset();
        self.syn_synack.reset();
        self.synack_ack.reset();
    }

    pub fn merge(&mut self, other: &HandshakeHists) {
        self.total.merge(&other.total);
        self.syn_synack.merge(&other.syn_synack);
        self.synack_ack.merge(&other.synack_ack);
    }
}

/// What a worker hands over when an interval closes.
#[derive(Debug, Default)]
pub struct WorkerInterval {
    pub servers: Vec<ServerSnapshot>,
    /// `None` when no handshake completed in the interval (histograms are large; empty
    /// intervals should cost nothing).
    pub hists: Option<Box<HandshakeHists>>,
    /// RTT legs and response times over every server, as recorded (`servers::fast` order).
    pub fast: FastHists,
    pub flows: Vec<FlowRecord>,
    pub flow_table_full: u64,
    pub flow_probe_limit: u64,
    pub rtt_events_displaced: u64,
    pub active_flows: u64,
    /// Records the worker's merge of several feeders had to release before their turn (set by
    /// the worker, not the engine).
    pub reorder_overflow: u64,
}

impl WorkerInterval {
    /// Empties the histograms (keeping their memory) before the share goes back to its worker.
    pub fn empty_histograms(&mut self) {
        if let Some(h) = &mut self.hists {
            h.reset();
        }
        for f in self.fast.iter_mut().flatten() {
            f.reset();
        }
        for s in &mut self.servers {
            if let Some(h) = &mut s.handshake_total {
                h.reset();
            }
            for f in s.fast.iter_mut().flatten() {
                f.reset();
            }
        }
    }
}

/// One RTT sample with what it belongs to: the capture time of the segment that ended it
/// (the answer) and the flow's endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttSampleAt {
    pub ts_ns: u64,
    /// The answering segment's acknowledgment number.
    pub ack: u32,
    pub client: Endpoint,
    pub server: Endpoint,
    pub sample: RttSample,
}

/// Eviction looks at this many entries near the new flow's slot.
const EVICTION_CANDIDATES: usize = 16;

pub struct Engine {
    cfg: FlowConfig,
    table: FlowTable<Conn>,
    /// Flow-record counters, parallel to the table's slab; empty unless `emit_flows`.
    stats: Vec<FlowStats>,
    servers: ServerTable,
    hists: Option<Box<HandshakeHists>>,
    /// Histograms handed back by the merger, emptied: the next interval's, without allocating.
    spare_hists: Option<Box<HandshakeHists>>,
    #[expect(
        clippy::vec_box,
        reason = "the boxes travel to the merger and back inside server snapshots"
    )]
    spare_server_hists: Vec<Box<LatencyHist>>,
    flows: Vec<FlowRecord>,
    rtt_samples: Vec<RttSampleAt>,
    /// This interval's RTT legs and response times over every server (`servers::fast` order),
    /// summed from the servers' when the interval is taken.
    fast: [FastHist; fast::COUNT],
    /// Fast histograms handed back by the merger, emptied.
    spare_fast: Vec<FastHist>,
    flow_table_full: u64,
    flow_probe_limit: u64,
    due: Vec<(u32, Due)>,
    /// Timed segments of every flow waiting for their answer.
    pending: PendingEvents,
    /// The next flow's latency id (its events' tag in `pending`).
    next_flow_id: u32,
}

/// What a timer scan found for a flow.
#[derive(Clone, Copy)]
enum Due {
    Expire,
    Stalled,
}

impl Engine {
    pub fn new(cfg: FlowConfig) -> Self {
        Engine {
            table: FlowTable::with_capacity(cfg.capacity),
            stats: if cfg.emit_flows {
                Vec::with_capacity(cfg.capacity)
            } else {
                Vec::new()
            },
            servers: ServerTable::new(cfg.max_servers, &cfg.hasher),
            hists: None,
            spare_hists: None,
            spare_server_hists: Vec::new(),
            flows: Vec::new(),
            rtt_samples: Vec::new(),
            fast: Default::default(),
            spare_fast: Vec::new(),
            flow_table_full: 0,
            flow_probe_limit: 0,
            pending: PendingEvents::default(),
            next_flow_id: 0,
            due: Vec::new(),
            cfg,
        }
    }

    pub fn active_flows(&self) -> usize {
        self.table.len()
    }

    /// Bytes the flow table and the flow-record counters take when full: the memory that grows
    /// with tracked flows.
    pub fn table_memory_bytes(&self) -> usize {
        let stats = if self.cfg.emit_flows {
            std::mem::size_of::<FlowStats>()
        } else {
            0
        };
        self.table.memory_bytes() + self.table.capacity() * stats
    }

    /// Accounts one TCP segment and returns its analysis verdict bits (`seq_analysis::verdict`).
    pub fn on_packet(&mut self, rec: &PacketRecord) -> u16 {
        let (key, src_is_lo) = FlowKey::of(rec, self.cfg.tunnel_keying);
        let hash = self.cfg.hasher.hash(&key);
        let idx = match self.table.find(&key, hash) {
            Some(idx) if self.starts_new_connection(idx, rec, src_is_lo) => {
                self.close(idx, hash, Close::PortReuse);
                self.open(key, hash, rec, src_is_lo)
            }
            Some(idx) => Some(idx),
            None => self.open(key, hash, rec, src_is_lo),
        };
        match idx {
            Some(idx) => self.update(idx, rec, src_is_lo),
            None => 0,
        }
    }

    /// A SYN whose sequence number differs from the one its sender already used opens another
    /// connection on the same addresses and ports (as tshark starts a new stream).
    fn starts_new_connection(&self, idx: u32, rec: &PacketRecord, src_is_lo: bool) -> bool {
        if rec.flags & (SYN | ACK) != SYN {
            return false;
        }
        let conn = self.table.get(idx);
        let d = if src_is_lo == conn.client_is_lo() {
            C2S
        } else {
            S2C
        };
        conn.has(bit::BASE_SET[d]) && rec.seq != conn.base_seq[d]
    }

    /// Starts tracking a flow; `None` (counted) if the table refuses it: full with nothing
    /// freed (eviction rules that out for any table of at least one entry), or every slot
    /// within the probe bound of its home taken (`flow_probe_limit`).
    fn open(
        &mut self,
        key: FlowKey,
        hash: u64,
        rec: &PacketRecord,
        src_is_lo: bool,
    ) -> Option<u32> {
        if self.table.is_full() {
            self.evict_one(hash);
        }
        // Roles: the SYN sender is the client; without a SYN, the SYN/ACK receiver; without
        // either, guess that the lower port is the server's.
        let (src_is_client, guessed) = match rec.flags & (SYN | ACK) {
            SYN => (true, false),
            f if f == SYN | ACK => (false, false),
            _ => (rec.sport > rec.dport, true),
        };
        let server = if src_is_client {
            Endpoint {
                addr: rec.dst,
                port: rec.dport,
            }
        } else {
            Endpoint {
                addr: rec.src,
                port: rec.sport,
            }
        };
        let server_idx = self.servers.slot(server);
        self.next_flow_id = self.next_flow_id.wrapping_add(1);
        let mut conn = Conn {
            last_ns: rec.ts_ns,
            server_idx,
            latency: Latency::for_flow(self.next_flow_id),
            ..Conn::default()
        };
        conn.set(bit::CLIENT_IS_LO, src_is_client == src_is_lo);
        conn.set(bit::ROLES_GUESSED, guessed);
        let idx = match self.table.insert(key, hash, conn) {
            Ok(idx) => idx,
            Err(InsertError::Full) => {
                self.flow_table_full += 1;
                return None;
            }
            Err(InsertError::ProbeLimit) => {
                self.flow_probe_limit += 1;
                return None;
            }
        };
        let entry = self.servers.entry(server_idx);
        entry.active_flows += 1;
        entry.counters.inc(Counter::new_flows);
        if self.cfg.emit_flows {
            let stats = FlowStats {
                first_ns: rec.ts_ns,
                tunnel: rec.tunnel,
                ..FlowStats::default()
            };
            match self.stats.get_mut(idx as usize) {
                Some(slot) => *slot = stats,
                None => self.stats.push(stats),
            }
        }
        Some(idx)
    }

    /// Frees one entry near `hash`: a half-open flow first (the SYN-flood case) or one picked up
    /// mid-stream and never answered (a flood of spoofed mid-stream segments), then a finished
    /// one, then the least recently active.
    fn evict_one(&mut self, hash: u64) {
        let victim = self
            .table
            .neighbours(hash, EVICTION_CANDIDATES)
            .min_by_key(|&i| {
                let c = self.table.get(i);
                (
                    !(c.half_open() || c.one_sided_guess()),
                    !c.is_finished(),
                    c.last_ns,
                )
            });
        if let Some(idx) = victim {
            let victim_hash = self.cfg.hasher.hash(self.table.key(idx));
            self.flow_table_full += 1;
            self.close(idx, victim_hash, Close::Evicted);
        }
    }

    fn update(&mut self, idx: u32, rec: &PacketRecord, src_is_lo: bool) -> u16 {
        let conn = self.table.get_mut(idx);
        let from_client = src_is_lo == conn.client_is_lo();
        let prev_last_ns = conn.last_ns;
        let verdict = segment::analyse(conn, rec, from_client);
        let di = if from_client { C2S } else { S2C };
        let facts = SegmentFacts {
            dir: di,
            prev_last_ns,
            verdict,
            peer_next_seq: conn.seq[1 - di].next_seq,
        };
        let samples = conn
            .latency
            .on_segment(&self.cfg.latency, &mut self.pending, rec, &facts);
        let server_idx = conn.server_idx;
        let mut seen = Seen {
            conn,
            stats: self.stats.get_mut(idx as usize),
            rec,
            from_client,
            verdict,
        };
        let sc = &mut self.servers.entry(server_idx).counters;
        segment::count(&mut seen, sc);
        let mut hists = IntervalHists {
            current: &mut self.hists,
            spare: &mut self.spare_hists,
        };
        let (mut half_open, total) = segment::handshake(&mut seen, sc, &mut hists);
        segment::teardown(&mut seen, sc, &mut half_open);
        let was_half_open = seen.conn.half_open();
        seen.conn.set(bit::HALF_OPEN, half_open);
        let entry = self.servers.entry(server_idx);
        if let Some(total) = total {
            let spare = &mut self.spare_server_hists;
            entry
                .handshake_total
                .get_or_insert_with(|| {
                    spare
                        .pop()
                        .unwrap_or_else(|| Box::new(LatencyHist::per_server()))
                })
                .record_ns(total);
        }
        if samples.rtt.is_some() || samples.response_ns.is_some() {
            let spare = &mut self.spare_fast;
            let mut record = |which: usize, ns: u64| {
                entry.fast[which]
                    .get_or_insert_with(|| spare.pop().unwrap_or_default())
                    .record_ns(ns);
            };
            if let Some(rtt) = samples.rtt {
                let which = match rtt.leg {
                    Leg::Server => fast::RTT_SERVER_LEG,
                    Leg::Client => fast::RTT_CLIENT_LEG,
                };
                record(which, rtt.ns);
            }
            if let Some(ns) = samples.response_ns {
                record(fast::RESPONSE, ns);
            }
            if let Some(st) = self.stats.get_mut(idx as usize) {
                st.latency.add(&samples);
            }
        }
        if half_open != was_half_open {
            if half_open {
                entry.half_open += 1;
            } else {
                entry.half_open -= 1;
            }
        }
        if let (true, Some(sample)) = (self.cfg.keep_rtt_samples, samples.rtt) {
            let (client, server) = self.endpoints(idx);
            self.rtt_samples.push(RttSampleAt {
                ts_ns: rec.ts_ns,
                ack: rec.ack,
                client,
                server,
                sample,
            });
        }
        verdict
    }

    /// The RTT samples kept since the last call (only with `keep_rtt_samples`).
    pub fn take_rtt_samples(&mut self) -> Vec<RttSampleAt> {
        std::mem::take(&mut self.rtt_samples)
    }

    /// The client and the server of the flow in slot `idx`.
    fn endpoints(&self, idx: u32) -> (Endpoint, Endpoint) {
        let key = self.table.key(idx);
        let lo = Endpoint {
            addr: key.lo_addr,
            port: key.lo_port,
        };
        let hi = Endpoint {
            addr: key.hi_addr,
            port: key.hi_port,
        };
        if self.table.get(idx).client_is_lo() {
            (lo, hi)
        } else {
            (hi, lo)
        }
    }

    /// Ends flows whose time is up at capture time `now_ns`; flags half-closed stalls.
    pub fn on_tick(&mut self, now_ns: u64) {
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        let now_secs = now_ns / 1_000_000_000;
        let stall_secs = self.cfg.half_closed_stall_ns / 1_000_000_000;
        for idx in self.table.live_indices() {
            let c = self.table.get(idx);
            let timeout = if c.is_finished() {
                self.cfg.close_linger_ns
            } else if c.half_open() {
                self.cfg.half_open_timeout_ns
            } else {
                self.cfg.idle_timeout_ns
            };
            if now_ns.saturating_sub(c.last_ns) > timeout {
                due.push((idx, Due::Expire));
            } else if c.fin_secs != 0
                && !c.is_finished()
                && !c.has(bit::HALF_CLOSED_STALL)
                && now_secs.saturating_sub(u64::from(c.fin_secs)) > stall_secs
            {
                due.push((idx, Due::Stalled));
            }
        }
        // Acted on after the scan, which borrows the table.
        for &(idx, what) in &due {
            match what {
                Due::Expire => {
                    let hash = self.cfg.hasher.hash(self.table.key(idx));
                    self.close(idx, hash, Close::IdleTimeout);
                }
                Due::Stalled => {
                    let c = self.table.get_mut(idx);
                    c.bits |= bit::HALF_CLOSED_STALL;
                    let server = c.server_idx;
                    self.servers
                        .entry(server)
                        .counters
                        .inc(Counter::half_closed_stalls);
                }
            }
        }
        self.due = due;
    }

    /// Ends every flow still tracked (end of the capture or shutdown).
    pub fn finish(&mut self) {
        let live: Vec<u32> = self.table.live_indices().collect();
        for idx in live {
            let hash = self.cfg.hasher.hash(self.table.key(idx));
            self.close(idx, hash, Close::CaptureEnd);
        }
    }

    fn close(&mut self, idx: u32, hash: u64, fallback: Close) {
        let conn = *self.table.get(idx);
        let close = conn.close_reason(fallback);
        let entry = self.servers.entry(conn.server_idx);
        entry.counters.inc(Counter::closed_flows);
        if close == Close::Unanswered {
            entry.counters.inc(Counter::unanswered_syn);
        }
        entry.active_flows -= 1;
        if conn.half_open() {
            entry.half_open -= 1;
        }
        if let Some(stats) = self.stats.get(idx as usize) {
            let (client, server) = self.endpoints(idx);
            self.flows.push(stats.record(&conn, client, server, close));
        }
        self.table.remove(idx, hash);
    }

    /// Hands over this interval's figures and starts the next interval.
    /// This interval's figures, in a new [`WorkerInterval`].
    pub fn take_interval(&mut self) -> WorkerInterval {
        let mut part = WorkerInterval::default();
        self.take_interval_into(&mut part);
        part
    }

    /// This interval's figures, into `part`: a share an earlier interval filled and the merger
    /// handed back. Its vectors and histograms are reused (emptied), so a steady run allocates
    /// nothing per interval once its server set is known.
    pub fn take_interval_into(&mut self, part: &mut WorkerInterval) {
        // The merger empties what it hands back (off this thread's critical path); a share
        // handed back as it was is emptied here.
        for s in part.servers.drain(..) {
            if let Some(mut h) = s.handshake_total {
                if !h.is_empty() {
                    h.reset();
                }
                self.spare_server_hists.push(h);
            }
            for mut f in s.fast.into_iter().flatten() {
                f.reset();
                self.spare_fast.push(f);
            }
        }
        for mut f in part.fast.iter_mut().filter_map(Option::take) {
            f.reset();
            self.spare_fast.push(f);
        }
        if let Some(mut h) = part.hists.take() {
            if !h.is_empty() {
                h.reset();
            }
            self.spare_hists.get_or_insert(h);
        }
        part.flows.clear();
        self.servers
            .take_interval(&mut part.servers, &mut self.spare_fast);
        // The interval's totals are the sum of its servers' (every sample is recorded in its
        // server's, once: summing here, per interval, saves a second record per sample).
        for snap in &part.servers {
            for (total, theirs) in self.fast.iter_mut().zip(&snap.fast) {
                if let Some(h) = theirs {
                    total.merge(h);
                }
            }
        }
        part.hists = self.hists.take();
        for (mine, theirs) in self.fast.iter_mut().zip(&mut part.fast) {
            if !mine.is_empty() {
                let fresh = self.spare_fast.pop().unwrap_or_default();
                *theirs = Some(std::mem::replace(mine, fresh));
            }
        }
        std::mem::swap(&mut self.flows, &mut part.flows);
        part.flow_table_full = std::mem::take(&mut self.flow_table_full);
        part.flow_probe_limit = std::mem::take(&mut self.flow_probe_limit);
        part.rtt_events_displaced = self.pending.take_displaced();
        part.active_flows = self.table.len() as u64;
        part.reorder_overflow = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::flags::{FIN, RST};
    use crate::decode::Addr;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    /// One segment from `from` (0 = client, 1 = server) of connection `n`.
    fn seg(n: u32, from: usize, t: u64, flags: u8, seq: u32, ack: u32, len: u32) -> PacketRecord {
        let client = (
            Addr::from_v4([192, 0, 2, (n >> 16) as u8]),
            1024 + (n & 0xffff) as u16,
        );
        let server = (Addr::from_v4([198, 51, 100, 7]), 443);
        let ((src, sport), (dst, dport)) = if from == 0 {
            (client, server)
        } else {
            (server, client)
        };
        PacketRecord {
            ts_ns: t,
            src,
            dst,
            sport,
            dport,
            seq,
            ack,
            payload_len: len,
            window: 1000,
            flags,
            ..PacketRecord::default()
        }
    }

    fn feed(e: &mut Engine, rec: PacketRecord) -> u16 {
        e.on_packet(&rec)
    }

    fn handshake(e: &mut Engine, n: u32, t: u64) {
        feed(e, seg(n, 0, t, SYN, 100, 0, 0));
        feed(e, seg(n, 1, t + MS, SYN | ACK, 500, 101, 0));
        feed(e, seg(n, 0, t + 2 * MS, ACK, 101, 501, 0));
    }

    fn total(iv: &WorkerInterval, c: Counter) -> u64 {
        iv.servers.iter().map(|s| s.counters.get(c)).sum()
    }

    /// One connection (handshake, a data segment each way, FIN both ways) mirrored three
    /// times: plainly and under VXLAN VNIs 7 and 8, interleaved as a tap would see them.
    fn mirrored_three_times(keying: TunnelKeying) -> WorkerInterval {
        use crate::decode::{Encap, Tunnel};
        let mut e = Engine::new(FlowConfig {
            tunnel_keying: keying,
            ..FlowConfig::default()
        });
        let conversation = [
            (0, SYN, 100, 0, 0),
            (1, SYN | ACK, 500, 101, 0),
            (0, ACK, 101, 501, 0),
            (0, ACK | PSH_FLAG, 101, 501, 10),
            (1, ACK | PSH_FLAG, 501, 111, 20),
            (0, FIN | ACK, 111, 521, 0),
            (1, FIN | ACK, 521, 112, 0),
            (0, ACK, 112, 522, 0),
        ];
        let copies = [None, Some(7), Some(8)].map(|vni| {
            vni.map(|id| Tunnel {
                kind: Encap::Vxlan,
                id: Some(id),
                outer_src: Addr::from_v4([10, 0, 0, 1]),
                outer_dst: Addr::from_v4([10, 0, 0, 2]),
            })
        });
        for (i, &(from, flags, seq, ack, len)) in conversation.iter().enumerate() {
            for (c, tunnel) in copies.iter().enumerate() {
                let t = S + i as u64 * MS + c as u64 * 1000;
                let mut rec = seg(1, from, t, flags, seq, ack, len);
                rec.tunnel = *tunnel;
                feed(&mut e, rec);
            }
        }
        e.finish();
        e.take_interval()
    }

    #[test]
    fn vni_keying_keeps_mirror_copies_apart_and_exact() {
        let iv = mirrored_three_times(TunnelKeying::Vni);
        assert_eq!(iv.flows.len(), 3);
        let mut vnis: Vec<_> = iv
            .flows
            .iter()
            .map(|f| f.tunnel.and_then(|t| t.id))
            .collect();
        vnis.sort();
        assert_eq!(vnis, [None, Some(7), Some(8)]);
        for f in &iv.flows {
            assert_eq!(f.close, Close::Fin);
            assert_eq!((f.packets.c2s, f.packets.s2c), (5, 3));
            assert_eq!((f.retransmits.c2s, f.retransmits.s2c), (0, 0));
            assert_eq!(f.handshake.and_then(|h| h.total_ns), Some(2 * MS));
        }
        assert_eq!(total(&iv, Counter::retransmits), 0);
        // Without the VNI in the key the copies are one flow full of false retransmissions.
        let iv = mirrored_three_times(TunnelKeying::None);
        assert_eq!(iv.flows.len(), 1);
        assert_eq!(iv.flows[0].packets.c2s, 15);
        assert!(total(&iv, Counter::retransmits) > 0);
    }

    #[test]
    fn syn_flood_evicts_half_open_flows_and_spares_established_ones() {
        // A fixed key: eviction looks at 16 neighbours only, and with a random key the 16
        // established flows of this 64-entry table end up side by side about once in 50 runs,
        // when one of them is (rightly) the one to go.
        let mut e = Engine::new(FlowConfig {
            capacity: 64,
            hasher: FlowHasher::with_key([0x5eed, 0x7ab1e]),
            ..FlowConfig::default()
        });
        for n in 0..16 {
            handshake(&mut e, n, 0);
        }
        for n in 1000..11_000 {
            feed(&mut e, seg(n, 0, S, SYN, 7, 0, 0));
        }
        assert_eq!(e.active_flows(), 64);
        // Every established flow is still tracked: its next segment is not a new flow.
        for n in 0..16 {
            feed(&mut e, seg(n, 0, 2 * S, ACK | PSH_FLAG, 101, 501, 10));
        }
        let iv = e.take_interval();
        assert_eq!(total(&iv, Counter::new_flows), 16 + 10_000);
        assert_eq!(iv.flow_table_full, 10_000 - (64 - 16));
        let evicted = iv
            .flows
            .iter()
            .filter(|f| f.close == Close::Evicted)
            .count() as u64;
        assert_eq!(evicted, iv.flow_table_full);
        assert!(iv
            .flows
            .iter()
            .all(|f| f.handshake.is_some_and(|h| h.total_ns.is_none())));
        let half_open: u32 = iv.servers.iter().map(|s| s.half_open).sum();
        assert_eq!(half_open, 64 - 16);
    }

    #[test]
    fn refused_unanswered_and_port_reuse() {
        let mut e = Engine::new(FlowConfig::default());
        // Refused: SYN answered by RST/ACK.
        feed(&mut e, seg(1, 0, 0, SYN, 100, 0, 0));
        feed(&mut e, seg(1, 1, MS, RST | ACK, 0, 101, 0));
        // Unanswered: SYN resent twice, never answered.
        for i in 0..3 {
            feed(&mut e, seg(2, 0, i * S, SYN, 100, 0, 0));
        }
        // Port reuse: a completed connection, then a SYN with a new ISN on the same ports.
        handshake(&mut e, 3, 0);
        feed(&mut e, seg(3, 0, 5 * S, SYN, 9000, 0, 0));
        e.on_tick(200 * S);
        e.finish();
        let iv = e.take_interval();
        let closes: Vec<Close> = iv.flows.iter().map(|f| f.close).collect();
        assert!(closes.contains(&Close::Refused));
        assert!(closes.contains(&Close::PortReuse));
        assert_eq!(
            closes.iter().filter(|&&c| c == Close::Unanswered).count(),
            2,
            "{closes:?}"
        );
        assert_eq!(total(&iv, Counter::rst_to_syn), 1);
        assert_eq!(total(&iv, Counter::syn_retransmits), 2);
        assert_eq!(total(&iv, Counter::unanswered_syn), 2);
        assert_eq!(total(&iv, Counter::handshakes), 1);
    }

    #[test]
    fn half_closed_stall_is_flagged_once_and_idle_flows_expire() {
        let cfg = FlowConfig {
            half_closed_stall_ns: 10 * S,
            idle_timeout_ns: 100 * S,
            ..FlowConfig::default()
        };
        let mut e = Engine::new(cfg);
        handshake(&mut e, 1, 0);
        feed(&mut e, seg(1, 1, S, FIN | ACK, 501, 101, 0));
        feed(&mut e, seg(1, 0, S + MS, ACK, 101, 502, 0));
        e.on_tick(5 * S);
        e.on_tick(20 * S);
        e.on_tick(30 * S);
        let iv = e.take_interval();
        assert_eq!(total(&iv, Counter::half_closed_stalls), 1);
        assert!(iv.flows.is_empty());
        e.on_tick(200 * S);
        let iv = e.take_interval();
        assert_eq!(iv.flows.len(), 1);
        let f = &iv.flows[0];
        assert_eq!(f.close, Close::IdleTimeout);
        assert!(f.half_closed_stall);
        assert_eq!(f.fin_first, Some(crate::schema::flow::Side::Server));
        assert_eq!(iv.active_flows, 0);
    }

    const PSH_FLAG: u8 = crate::decode::flags::PSH;
}
