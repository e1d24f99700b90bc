//! One worker's flow engine: `on_packet(record)` and `on_tick(now)`, driven by capture time
//! only — no clock, no I/O — so live capture, files and tests run the very same code.

use super::conn::{bit, Conn, DirCounts, FlowStats, Handshake, C2S, S2C};
use super::key::{FlowHasher, FlowKey};
use super::seq_analysis::{analyze, verdict as v, Segment};
use super::servers::{ServerSnapshot, ServerTable};
use super::table::{FlowTable, InsertError};
use crate::decode::flags::{ACK, FIN, RST, SYN};
use crate::decode::Endpoint;
use crate::decode::PacketRecord;
use crate::schema::counters::{Counter, Counters};
use crate::schema::flow::{Close, FlowRecord};
use crate::schema::hist::LatencyHist;

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
    pub flow_probe_limit: u64,
    pub active_flows: u64,
    /// Records the worker's merge of several feeders had to release before their turn (set by
    /// the worker, not the engine).
    pub reorder_overflow: u64,
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
    flows: Vec<FlowRecord>,
    flow_table_full: u64,
    flow_probe_limit: u64,
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
            stats: if cfg.emit_flows {
                Vec::with_capacity(cfg.capacity)
            } else {
                Vec::new()
            },
            servers: ServerTable::new(cfg.max_servers),
            hists: None,
            flows: Vec::new(),
            flow_table_full: 0,
            flow_probe_limit: 0,
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
        let (key, src_is_lo) = FlowKey::of(rec);
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
        let mut conn = Conn {
            last_ns: rec.ts_ns,
            server_idx,
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
        let mut stats = self.stats.get_mut(idx as usize);
        let sc = &mut self.servers.entry(conn.server_idx).counters;
        let from_client = src_is_lo == conn.client_is_lo();
        let (di, ri) = if from_client { (C2S, S2C) } else { (S2C, C2S) };
        let ts = rec.ts_ns;
        let flags = rec.flags;
        conn.last_ns = conn.last_ns.max(ts);
        conn.bits |= bit::SENT[di];

        infer_base_seq(conn, di, ri, rec);
        let seg = Segment {
            seq: rec.seq,
            ack: rec.ack,
            len: rec.payload_len,
            flags,
            window: rec.window,
            time: ts,
        };
        let [c2s, s2c] = &mut conn.seq;
        let (fwd, rev) = if from_client { (c2s, s2c) } else { (s2c, c2s) };
        let verdict = analyze(fwd, rev, &seg, u64::from(conn.first_rtt_ns));

        sc.inc(Counter::packets);
        sc.add(Counter::payload_bytes, u64::from(rec.payload_len));
        if rec.payload_len > 0 {
            sc.inc(Counter::data_segments);
        }
        if flags & RST != 0 {
            sc.inc(Counter::rst);
        }
        if flags & FIN != 0 {
            sc.inc(Counter::fin);
            conn.bits |= bit::FIN[di];
        }
        if verdict != 0 {
            count_verdict(sc, verdict, rec.payload_len);
        }
        if let Some(st) = stats.as_deref_mut() {
            count_segment(&mut st.dir[di], rec, verdict);
        }
        let retransmitted = verdict & v::RETRANSMISSION != 0;

        // Handshake timeline.
        let mut half_open = conn.half_open();
        match flags & (SYN | ACK) {
            SYN => {
                sc.inc(Counter::syn);
                if retransmitted {
                    sc.inc(Counter::syn_retransmits);
                    conn.bits |= bit::SYN_RESENT;
                    if let Some(st) = stats.as_deref_mut() {
                        st.syn_retransmits = st.syn_retransmits.saturating_add(1);
                    }
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
                    conn.bits |= bit::SYNACK_RESENT;
                    if let Some(st) = stats.as_deref_mut() {
                        st.synack_retransmits = st.synack_retransmits.saturating_add(1);
                    }
                }
                if !from_client {
                    match conn.handshake {
                        Handshake::SynSent => {
                            // The server leg, measured once, from the latest SYN. Karn's rule:
                            // after a resent SYN it is ambiguous and stays out of histograms.
                            let leg = ts.saturating_sub(conn.syn_ns);
                            if let Some(st) = stats.as_deref_mut() {
                                st.syn_synack_ns = Some(leg);
                            }
                            if !conn.has(bit::SYN_RESENT) {
                                self.hists
                                    .get_or_insert_with(Box::default)
                                    .syn_synack
                                    .record_ns(leg);
                            }
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
                    let rtt = ts.saturating_sub(conn.syn_ns);
                    conn.first_rtt_ns = u32::try_from(rtt).unwrap_or(u32::MAX);
                }
                if from_client && conn.handshake == Handshake::SynAckSent && flags & RST == 0 {
                    conn.handshake = Handshake::Established;
                    half_open = false;
                    sc.inc(Counter::handshakes);
                    let hists = self.hists.get_or_insert_with(Box::default);
                    let total = complete_handshake(conn, stats.as_deref_mut(), ts, hists, sc);
                    if let Some(total) = total {
                        self.servers
                            .entry(conn.server_idx)
                            .handshake_total
                            .get_or_insert_with(|| Box::new(LatencyHist::per_server()))
                            .record_ns(total);
                    }
                }
            }
            _ => {}
        }
        let sc = &mut self.servers.entry(conn.server_idx).counters;

        // Teardown.
        if flags & FIN != 0 && conn.fin_secs == 0 {
            conn.fin_secs = u32::try_from(ts / 1_000_000_000).unwrap_or(u32::MAX).max(1);
            if let Some(st) = stats {
                st.fin_first = Some(di as u8);
            }
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
            } else if conn.has(bit::FIN[C2S]) && conn.has(bit::FIN[S2C]) {
                conn.closed = Some(Close::Fin);
                half_open = false;
            }
        }
        if half_open != conn.half_open() {
            conn.set(bit::HALF_OPEN, half_open);
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
            let key = self.table.key(idx);
            let lo = Endpoint {
                addr: key.lo_addr,
                port: key.lo_port,
            };
            let hi = Endpoint {
                addr: key.hi_addr,
                port: key.hi_port,
            };
            let (client, server) = if conn.client_is_lo() {
                (lo, hi)
            } else {
                (hi, lo)
            };
            self.flows.push(stats.record(&conn, client, server, close));
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
            flow_probe_limit: std::mem::take(&mut self.flow_probe_limit),
            active_flows: self.table.len() as u64,
            reorder_overflow: 0,
        }
    }
}

/// Wireshark infers a direction's first sequence number when its SYN was not seen; port reuse
/// detection compares later SYNs against it.
fn infer_base_seq(conn: &mut Conn, di: usize, ri: usize, rec: &PacketRecord) {
    if !conn.has(bit::BASE_SET[di]) {
        conn.base_seq[di] = if rec.flags & SYN != 0 {
            rec.seq
        } else {
            rec.seq.wrapping_sub(1)
        };
        conn.bits |= bit::BASE_SET[di];
    } else if rec.flags & SYN != 0 {
        if rec.flags & ACK == 0 {
            // A resent SYN: tshark rewinds to the end of the contiguous data first, so the
            // resend is judged against the SYN itself.
            conn.seq[di].next_seq = conn.seq[di].max_seq_to_ack;
        } else if rec.seq != conn.base_seq[di] {
            conn.base_seq[di] = rec.seq;
        }
    }
    if !conn.has(bit::BASE_SET[ri]) && rec.flags & ACK != 0 {
        conn.base_seq[ri] = rec.ack.wrapping_sub(1);
        conn.bits |= bit::BASE_SET[ri];
    }
}

/// Interval counters of a segment's analysis verdict.
fn count_verdict(sc: &mut Counters, verdict: u16, len: u32) {
    if verdict & v::RETRANSMISSION != 0 {
        sc.inc(Counter::retransmits);
        if len > 0 {
            sc.inc(Counter::data_retransmits);
            sc.add(Counter::retransmitted_bytes, u64::from(len));
        }
    }
    for (bit, counter) in [
        (v::FAST_RETRANSMISSION, Counter::fast_retransmits),
        (v::SPURIOUS_RETRANSMISSION, Counter::spurious_retransmits),
        (v::OUT_OF_ORDER, Counter::out_of_order),
        (v::DUP_ACK, Counter::dup_acks),
        (v::ZERO_WINDOW, Counter::zero_window),
        (v::ZERO_WINDOW_PROBE, Counter::zero_window_probes),
        (v::LOST_SEGMENT, Counter::lost_segments),
        (v::ACKED_UNSEEN, Counter::acked_unseen),
        (v::KEEP_ALIVE, Counter::keep_alives),
    ] {
        if verdict & bit != 0 {
            sc.inc(counter);
        }
    }
}

/// Flow-record counters of one segment.
fn count_segment(d: &mut DirCounts, rec: &PacketRecord, verdict: u16) {
    d.packets = d.packets.saturating_add(1);
    d.payload_bytes += u64::from(rec.payload_len);
    if rec.flags & SYN != 0 {
        d.syn = d.syn.saturating_add(1);
    }
    if rec.flags & FIN != 0 {
        d.fin = d.fin.saturating_add(1);
    }
    if rec.flags & RST != 0 {
        d.rst = d.rst.saturating_add(1);
    }
    if verdict == 0 {
        return;
    }
    let add = |bit: u16| u32::from(verdict & bit != 0);
    d.retransmits = d.retransmits.saturating_add(add(v::RETRANSMISSION));
    d.out_of_order = d.out_of_order.saturating_add(add(v::OUT_OF_ORDER));
    d.dup_acks = d.dup_acks.saturating_add(add(v::DUP_ACK));
    let add16 = |bit: u16| u16::from(verdict & bit != 0);
    d.fast_retransmits = d
        .fast_retransmits
        .saturating_add(add16(v::FAST_RETRANSMISSION));
    d.spurious_retransmits = d
        .spurious_retransmits
        .saturating_add(add16(v::SPURIOUS_RETRANSMISSION));
    d.zero_window = d.zero_window.saturating_add(add16(v::ZERO_WINDOW));
    d.zero_window_probes = d
        .zero_window_probes
        .saturating_add(add16(v::ZERO_WINDOW_PROBE));
}

/// Measures the client leg and the total when the client's ACK completes the handshake, and
/// returns the total if Karn's rule lets it into histograms: a leg that starts at a resent SYN or
/// SYN/ACK is ambiguous (which copy was answered?), so it goes in the flow record only.
fn complete_handshake(
    conn: &Conn,
    stats: Option<&mut FlowStats>,
    ts: u64,
    hists: &mut HandshakeHists,
    sc: &mut Counters,
) -> Option<u64> {
    let synack_ack = ts.saturating_sub(conn.synack_ns);
    let total = (conn.syn_ns != 0).then(|| ts.saturating_sub(conn.syn_ns));
    if let Some(st) = stats {
        st.synack_ack_ns = Some(synack_ack);
        st.total_ns = total;
    }
    let syn_clean = !conn.has(bit::SYN_RESENT);
    let synack_clean = !conn.has(bit::SYNACK_RESENT);
    if synack_clean {
        hists.synack_ack.record_ns(synack_ack);
    }
    match total {
        Some(total) if syn_clean && synack_clean => {
            hists.total.record_ns(total);
            Some(total)
        }
        _ => {
            sc.inc(Counter::handshake_ambiguous);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn syn_flood_evicts_half_open_flows_and_spares_established_ones() {
        let mut e = Engine::new(FlowConfig {
            capacity: 64,
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
