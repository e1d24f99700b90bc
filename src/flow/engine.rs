//! One worker's flow engine: `on_packet(record)` and `on_tick(now)`, driven by capture time
//! only — no clock, no I/O — so live capture, files and tests run the very same code.

use super::conn::{Conn, Dir, Handshake, C2S, S2C};
use super::key::FlowKey;
use super::record::{Close, FlowRecord};
use super::seq_analysis::{analyze, verdict as v, Segment};
use super::table::FlowTable;
use crate::decode::flags::{ACK, FIN, RST, SYN};
use crate::decode::PacketRecord;
use crate::metrics::counters::Counter;
use crate::metrics::hist::LatencyHist;
use crate::metrics::servers::{Endpoint, ServerSnapshot, ServerTable};

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
        }
    }
}

/// Latency histograms of one interval.
#[derive(Clone, Debug, Default)]
pub struct HandshakeHists {
    pub total: LatencyHist,
    pub syn_synack: LatencyHist,
    pub synack_ack: LatencyHist,
}

impl HandshakeHists {
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
    pub flows: Vec<FlowRecord>,
    pub flow_table_full: u64,
    pub active_flows: u64,
}

/// Eviction looks at this many entries near the new flow's slot.
const EVICTION_CANDIDATES: usize = 16;

pub struct Engine {
    cfg: FlowConfig,
    table: FlowTable<Conn>,
    servers: ServerTable,
    hists: Option<Box<HandshakeHists>>,
    flows: Vec<FlowRecord>,
    flow_table_full: u64,
    due: Vec<(u32, Due)>,
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
            servers: ServerTable::new(cfg.max_servers),
            hists: None,
            flows: Vec::new(),
            flow_table_full: 0,
            due: Vec::new(),
            cfg,
        }
    }

    pub fn active_flows(&self) -> usize {
        self.table.len()
    }

    /// Bytes held by the flow table (the part that grows with tracked flows).
    pub fn table_memory_bytes(&self) -> usize {
        self.table.memory_bytes()
    }

    /// Accounts one TCP segment and returns its analysis verdict bits (`seq_analysis::verdict`).
    /// `hash` is `FlowKey::of(rec).0.hash()`, computed once by capture.
    pub fn on_packet(&mut self, rec: &PacketRecord, hash: u64) -> u16 {
        let (key, src_is_lo) = FlowKey::of(rec);
        let idx = match self.table.find(&key, hash) {
            Some(idx) if self.starts_new_connection(idx, rec, src_is_lo) => {
                self.close(idx, hash, Close::PortReuse);
                self.open(key, hash, rec, src_is_lo)
            }
            Some(idx) => idx,
            None => self.open(key, hash, rec, src_is_lo),
        };
        self.update(idx, rec, src_is_lo)
    }

    /// A SYN whose sequence number differs from the one its sender already used opens another
    /// connection on the same addresses and ports (as tshark starts a new stream).
    fn starts_new_connection(&self, idx: u32, rec: &PacketRecord, src_is_lo: bool) -> bool {
        if rec.flags & (SYN | ACK) != SYN {
            return false;
        }
        let conn = self.table.get(idx);
        let sender = &conn.dir[if src_is_lo == conn.client_is_lo {
            C2S
        } else {
            S2C
        }];
        sender.base_set && rec.seq != sender.base_seq
    }

    fn open(&mut self, key: FlowKey, hash: u64, rec: &PacketRecord, src_is_lo: bool) -> u32 {
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
        let entry = self.servers.entry(server_idx);
        entry.active_flows += 1;
        entry.counters.inc(Counter::new_flows);
        let conn = Conn {
            first_ns: rec.ts_ns,
            last_ns: rec.ts_ns,
            server_idx,
            client_is_lo: src_is_client == src_is_lo,
            roles_guessed: guessed,
            ..Conn::default()
        };
        match self.table.insert(key, hash, conn) {
            Ok(idx) => idx,
            // evict_one always frees an entry when the table is full.
            Err(_) => unreachable!("flow table full after eviction"),
        }
    }

    /// Frees one entry near `hash`: a half-open flow first (the SYN-flood case), then a finished
    /// one, then the least recently active.
    fn evict_one(&mut self, hash: u64) {
        let victim = self
            .table
            .neighbours(hash, EVICTION_CANDIDATES)
            .min_by_key(|&i| {
                let c = self.table.get(i);
                (!c.half_open, !c.is_finished(), c.last_ns)
            });
        if let Some(idx) = victim {
            let victim_hash = self.table.key(idx).hash();
            self.flow_table_full += 1;
            self.close(idx, victim_hash, Close::Evicted);
        }
    }

    fn update(&mut self, idx: u32, rec: &PacketRecord, src_is_lo: bool) -> u16 {
        let conn = self.table.get_mut(idx);
        let sc = &mut self.servers.entry(conn.server_idx).counters;
        let from_client = src_is_lo == conn.client_is_lo;
        let di = if from_client { C2S } else { S2C };
        conn.last_ns = conn.last_ns.max(rec.ts_ns);

        let [c2s, s2c] = &mut conn.dir;
        let (fwd, rev): (&mut Dir, &mut Dir) = if from_client { (c2s, s2c) } else { (s2c, c2s) };
        infer_base_seq(fwd, rev, rec);
        let seg = Segment {
            seq: rec.seq,
            ack: rec.ack,
            len: rec.payload_len,
            flags: rec.flags,
            window: rec.window,
            time: rec.ts_ns,
        };
        let verdict = analyze(&mut fwd.seq, &mut rev.seq, &seg, conn.first_rtt_ns);

        fwd.packets = fwd.packets.saturating_add(1);
        fwd.payload_bytes += u64::from(rec.payload_len);
        sc.inc(Counter::packets);
        sc.add(Counter::payload_bytes, u64::from(rec.payload_len));
        if rec.payload_len > 0 {
            sc.inc(Counter::data_segments);
        }
        if verdict != 0 {
            count_verdict(fwd, sc, verdict, rec.payload_len);
        }
        let retransmitted = verdict & v::RETRANSMISSION != 0;
        let flags = rec.flags;
        if flags & RST != 0 {
            fwd.rst = fwd.rst.saturating_add(1);
            sc.inc(Counter::rst);
        }
        if flags & FIN != 0 {
            fwd.fin = fwd.fin.saturating_add(1);
            sc.inc(Counter::fin);
        }
        if flags & SYN != 0 {
            fwd.syn = fwd.syn.saturating_add(1);
        }
        let fins_both = conn.dir[C2S].fin > 0 && conn.dir[S2C].fin > 0;

        // Handshake timeline.
        let ts = rec.ts_ns;
        let mut half_open = conn.half_open;
        match flags & (SYN | ACK) {
            SYN => {
                sc.inc(Counter::syn);
                if retransmitted {
                    sc.inc(Counter::syn_retransmits);
                    conn.syn_retransmits = conn.syn_retransmits.saturating_add(1);
                }
                conn.syn_ns = ts;
                if from_client && conn.handshake == Handshake::None {
                    conn.handshake = Handshake::SynSent;
                    half_open = true;
                }
            }
            f if f == SYN | ACK => {
                sc.inc(Counter::synack);
                if retransmitted {
                    sc.inc(Counter::synack_retransmits);
                    conn.synack_retransmits = conn.synack_retransmits.saturating_add(1);
                }
                if !from_client {
                    match conn.handshake {
                        Handshake::SynSent => {
                            conn.syn_synack_ns = Some(ts.saturating_sub(conn.syn_ns));
                            conn.handshake = Handshake::SynAckSent;
                            conn.synack_ns = ts;
                        }
                        Handshake::None => {
                            conn.handshake = Handshake::SynAckSent;
                            conn.synack_ns = ts;
                            half_open = true;
                        }
                        Handshake::SynAckSent => conn.synack_ns = ts,
                        Handshake::Established => {}
                    }
                }
            }
            ACK => {
                // Wireshark's initial RTT: latest SYN to the first ACK-bearing non-SYN segment.
                if conn.syn_ns != 0 && conn.first_rtt_ns == 0 {
                    conn.first_rtt_ns = ts.saturating_sub(conn.syn_ns);
                }
                if from_client && conn.handshake == Handshake::SynAckSent && flags & RST == 0 {
                    conn.handshake = Handshake::Established;
                    half_open = false;
                    sc.inc(Counter::handshakes);
                    let hists = self.hists.get_or_insert_with(Box::default);
                    complete_handshake(conn, ts, hists, sc);
                    let entry = self.servers.entry(conn.server_idx);
                    if conn.syn_retransmits == 0 && conn.synack_retransmits == 0 {
                        if let Some(total) = conn.total_ns {
                            entry
                                .handshake_total
                                .get_or_insert_with(|| Box::new(LatencyHist::per_server()))
                                .record_ns(total);
                        }
                    }
                }
            }
            _ => {}
        }
        let sc = &mut self.servers.entry(conn.server_idx).counters;

        // Teardown.
        if flags & FIN != 0 && conn.fin_first.is_none() {
            conn.fin_first = Some(di as u8);
            conn.fin_ns = ts;
        }
        if conn.closed.is_none() {
            if flags & RST != 0 {
                conn.closed = Some(if !from_client && conn.handshake == Handshake::SynSent {
                    sc.inc(Counter::rst_to_syn);
                    Close::Refused
                } else if from_client {
                    Close::RstClient
                } else {
                    Close::RstServer
                });
                half_open = false;
            } else if fins_both {
                conn.closed = Some(Close::Fin);
                half_open = false;
            }
        }
        if half_open != conn.half_open {
            conn.half_open = half_open;
            let entry = self.servers.entry(conn.server_idx);
            if half_open {
                entry.half_open += 1;
            } else {
                entry.half_open -= 1;
            }
        }
        verdict
    }

    /// Ends flows whose time is up at capture time `now_ns`; flags half-closed stalls.
    pub fn on_tick(&mut self, now_ns: u64) {
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        for idx in self.table.live_indices() {
            let c = self.table.get(idx);
            let timeout = if c.is_finished() {
                self.cfg.close_linger_ns
            } else if c.half_open {
                self.cfg.half_open_timeout_ns
            } else {
                self.cfg.idle_timeout_ns
            };
            if now_ns.saturating_sub(c.last_ns) > timeout {
                due.push((idx, Due::Expire));
            } else if c.fin_first.is_some()
                && !c.is_finished()
                && !c.half_closed_stall
                && now_ns.saturating_sub(c.fin_ns) > self.cfg.half_closed_stall_ns
            {
                due.push((idx, Due::Stalled));
            }
        }
        // Acted on after the scan, which borrows the table.
        for &(idx, what) in &due {
            match what {
                Due::Expire => {
                    let hash = self.table.key(idx).hash();
                    self.close(idx, hash, Close::IdleTimeout);
                }
                Due::Stalled => {
                    let c = self.table.get_mut(idx);
                    c.half_closed_stall = true;
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
            let hash = self.table.key(idx).hash();
            self.close(idx, hash, Close::CaptureEnd);
        }
    }

    fn close(&mut self, idx: u32, hash: u64, fallback: Close) {
        let conn = *self.table.get(idx);
        let key = *self.table.key(idx);
        let (lo, hi) = (
            Endpoint {
                addr: key.lo_addr,
                port: key.lo_port,
            },
            Endpoint {
                addr: key.hi_addr,
                port: key.hi_port,
            },
        );
        let (client, server) = if conn.client_is_lo {
            (lo, hi)
        } else {
            (hi, lo)
        };
        let record = conn.record(client, server, fallback);
        let entry = self.servers.entry(conn.server_idx);
        entry.counters.inc(Counter::closed_flows);
        if record.close == Close::Unanswered {
            entry.counters.inc(Counter::unanswered_syn);
        }
        entry.active_flows -= 1;
        if conn.half_open {
            entry.half_open -= 1;
        }
        if self.cfg.emit_flows {
            self.flows.push(record);
        }
        self.table.remove(idx, hash);
    }

    /// Hands over this interval's figures and starts the next interval.
    pub fn take_interval(&mut self) -> WorkerInterval {
        let mut servers = Vec::new();
        self.servers.take_interval(&mut servers);
        WorkerInterval {
            servers,
            hists: self.hists.take(),
            flows: std::mem::take(&mut self.flows),
            flow_table_full: std::mem::take(&mut self.flow_table_full),
            active_flows: self.table.len() as u64,
        }
    }
}

/// Wireshark infers a direction's first sequence number when its SYN was not seen; port reuse
/// detection compares later SYNs against it.
fn infer_base_seq(fwd: &mut Dir, rev: &mut Dir, rec: &PacketRecord) {
    if !fwd.base_set {
        fwd.base_seq = if rec.flags & SYN != 0 {
            rec.seq
        } else {
            rec.seq.wrapping_sub(1)
        };
        fwd.base_set = true;
    } else if rec.flags & SYN != 0 {
        if rec.flags & ACK == 0 {
            // A resent SYN: tshark rewinds to the end of the contiguous data first, so the
            // resend is judged against the SYN itself.
            fwd.seq.next_seq = fwd.seq.max_seq_to_ack;
        } else if rec.seq != fwd.base_seq {
            fwd.base_seq = rec.seq;
        }
    }
    if !rev.base_set && rec.flags & ACK != 0 {
        rev.base_seq = rec.ack.wrapping_sub(1);
        rev.base_set = true;
    }
}

fn count_verdict(
    fwd: &mut Dir,
    sc: &mut crate::metrics::counters::Counters,
    verdict: u16,
    len: u32,
) {
    if verdict & v::RETRANSMISSION != 0 {
        fwd.retransmits = fwd.retransmits.saturating_add(1);
        sc.inc(Counter::retransmits);
        if len > 0 {
            sc.inc(Counter::data_retransmits);
            sc.add(Counter::retransmitted_bytes, u64::from(len));
        }
    }
    if verdict & v::FAST_RETRANSMISSION != 0 {
        fwd.fast_retransmits = fwd.fast_retransmits.saturating_add(1);
        sc.inc(Counter::fast_retransmits);
    }
    if verdict & v::SPURIOUS_RETRANSMISSION != 0 {
        fwd.spurious_retransmits = fwd.spurious_retransmits.saturating_add(1);
        sc.inc(Counter::spurious_retransmits);
    }
    if verdict & v::OUT_OF_ORDER != 0 {
        fwd.out_of_order = fwd.out_of_order.saturating_add(1);
        sc.inc(Counter::out_of_order);
    }
    if verdict & v::DUP_ACK != 0 {
        fwd.dup_acks = fwd.dup_acks.saturating_add(1);
        sc.inc(Counter::dup_acks);
    }
    if verdict & v::ZERO_WINDOW != 0 {
        fwd.zero_window = fwd.zero_window.saturating_add(1);
        sc.inc(Counter::zero_window);
    }
    if verdict & v::ZERO_WINDOW_PROBE != 0 {
        fwd.zero_window_probes = fwd.zero_window_probes.saturating_add(1);
        sc.inc(Counter::zero_window_probes);
    }
    if verdict & v::LOST_SEGMENT != 0 {
        sc.inc(Counter::lost_segments);
    }
    if verdict & v::ACKED_UNSEEN != 0 {
        sc.inc(Counter::acked_unseen);
    }
    if verdict & v::KEEP_ALIVE != 0 {
        sc.inc(Counter::keep_alives);
    }
}

/// Records the handshake legs. Karn's rule: a leg that starts at a resent SYN or SYN/ACK is
/// ambiguous (which copy was answered?), so it goes in the flow record but not in histograms.
fn complete_handshake(
    conn: &mut Conn,
    ts: u64,
    hists: &mut HandshakeHists,
    sc: &mut crate::metrics::counters::Counters,
) {
    conn.synack_ack_ns = Some(ts.saturating_sub(conn.synack_ns));
    conn.total_ns = (conn.syn_ns != 0).then(|| ts.saturating_sub(conn.syn_ns));
    let syn_clean = conn.syn_retransmits == 0;
    let synack_clean = conn.synack_retransmits == 0;
    if let (true, Some(leg)) = (syn_clean, conn.syn_synack_ns) {
        hists.syn_synack.record_ns(leg);
    }
    if let (true, Some(leg)) = (synack_clean, conn.synack_ack_ns) {
        hists.synack_ack.record_ns(leg);
    }
    match conn.total_ns {
        Some(total) if syn_clean && synack_clean => hists.total.record_ns(total),
        _ => sc.inc(Counter::handshake_ambiguous),
    }
}
