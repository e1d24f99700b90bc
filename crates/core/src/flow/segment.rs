//! What one TCP segment does to its connection, in the order the engine applies it: sequence
//! analysis, counting, the handshake's timeline, teardown. The engine owns the table, the
//! timers and the intervals; these steps only see one connection and its server's counters.
//! Each has one call site on the per-packet path, so each is inlined into it.

use super::conn::{bit, Conn, DirCounts, FlowStats, Handshake, C2S, S2C};
use super::engine::HandshakeHists;
use super::seq_analysis::{analyze, verdict as v, Segment};
use crate::decode::flags::{ACK, FIN, RST, SYN};
use crate::decode::PacketRecord;
use crate::schema::counters::{Counter, Counters};
use crate::schema::flow::Close;

/// One segment on its way through the steps.
pub(super) struct Seen<'a> {
    pub conn: &'a mut Conn,
    /// The flow record's counts, when flow records are made.
    pub stats: Option<&'a mut FlowStats>,
    pub rec: &'a PacketRecord,
    pub from_client: bool,
    /// The sequence analysis's verdict bits.
    pub verdict: u16,
}

impl Seen<'_> {
    /// The sender's direction index.
    fn di(&self) -> usize {
        if self.from_client {
            C2S
        } else {
            S2C
        }
    }

    fn retransmitted(&self) -> bool {
        self.verdict & v::RETRANSMISSION != 0
    }
}

/// The interval's handshake histograms, made on first use from a spare when there is one.
pub(super) struct IntervalHists<'a> {
    pub current: &'a mut Option<Box<HandshakeHists>>,
    pub spare: &'a mut Option<Box<HandshakeHists>>,
}

impl IntervalHists<'_> {
    fn get(&mut self) -> &mut HandshakeHists {
        let spare = &mut *self.spare;
        self.current
            .get_or_insert_with(|| spare.take().unwrap_or_default())
    }
}

/// Stamps the connection with the segment and runs the sequence analysis; returns its
/// verdict bits.
#[inline(always)]
pub(super) fn analyse(conn: &mut Conn, rec: &PacketRecord, from_client: bool) -> u16 {
    let (di, ri) = if from_client { (C2S, S2C) } else { (S2C, C2S) };
    conn.last_ns = conn.last_ns.max(rec.ts_ns);
    conn.bits |= bit::SENT[di];
    infer_base_seq(conn, di, ri, rec);
    let seg = Segment {
        seq: rec.seq,
        ack: rec.ack,
        len: rec.payload_len,
        flags: rec.flags,
        window: rec.window,
        time: rec.ts_ns,
    };
    let [c2s, s2c] = &mut conn.seq;
    let (fwd, rev) = if from_client { (c2s, s2c) } else { (s2c, c2s) };
    analyze(fwd, rev, &seg, u64::from(conn.first_rtt_ns))
}

/// Counts the segment for its server and its flow record.
#[inline(always)]
pub(super) fn count(s: &mut Seen<'_>, sc: &mut Counters) {
    let rec = s.rec;
    sc.inc(Counter::packets);
    sc.add(Counter::payload_bytes, u64::from(rec.payload_len));
    if rec.payload_len > 0 {
        sc.inc(Counter::data_segments);
    }
    if rec.flags & RST != 0 {
        sc.inc(Counter::rst);
    }
    if rec.flags & FIN != 0 {
        sc.inc(Counter::fin);
        s.conn.bits |= bit::FIN[s.di()];
    }
    if s.verdict != 0 {
        count_verdict(sc, s.verdict, rec.payload_len);
    }
    let di = s.di();
    if let Some(st) = s.stats.as_deref_mut() {
        count_segment(&mut st.dir[di], rec, s.verdict);
    }
}

/// The handshake's timeline: SYN, SYN/ACK and the completing ACK, with their legs timed (Karn's
/// rule: a leg after a resend is ambiguous and stays out of histograms). Returns whether the
/// connection is half open after it, and the handshake's total time when it completed cleanly
/// (for the server's histogram).
#[inline(always)]
pub(super) fn handshake(
    s: &mut Seen<'_>,
    sc: &mut Counters,
    hists: &mut IntervalHists<'_>,
) -> (bool, Option<u64>) {
    let ts = s.rec.ts_ns;
    let retransmitted = s.retransmitted();
    let conn = &mut *s.conn;
    let mut half_open = conn.half_open();
    let mut total = None;
    match s.rec.flags & (SYN | ACK) {
        SYN => {
            sc.inc(Counter::syn);
            if retransmitted {
                sc.inc(Counter::syn_retransmits);
                conn.bits |= bit::SYN_RESENT;
                if let Some(st) = s.stats.as_deref_mut() {
                    st.syn_retransmits = st.syn_retransmits.saturating_add(1);
                }
            }
            conn.syn_ns = ts;
            if s.from_client && conn.handshake == Handshake::None {
                conn.handshake = Handshake::SynSent;
                half_open = true;
            }
        }
        f if f == SYN | ACK => {
            sc.inc(Counter::synack);
            if retransmitted {
                sc.inc(Counter::synack_retransmits);
                conn.bits |= bit::SYNACK_RESENT;
                if let Some(st) = s.stats.as_deref_mut() {
                    st.synack_retransmits = st.synack_retransmits.saturating_add(1);
                }
            }
            if !s.from_client {
                match conn.handshake {
                    Handshake::SynSent => {
                        // The server leg, measured once, from the latest SYN.
                        let leg = ts.saturating_sub(conn.syn_ns);
                        if let Some(st) = s.stats.as_deref_mut() {
                            st.syn_synack_ns = Some(leg);
                        }
                        if !conn.has(bit::SYN_RESENT) {
                            hists.get().syn_synack.record_ns(leg);
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
            if s.from_client && conn.handshake == Handshake::SynAckSent && s.rec.flags & RST == 0 {
                conn.handshake = Handshake::Established;
                half_open = false;
                sc.inc(Counter::handshakes);
                total = complete_handshake(conn, s.stats.as_deref_mut(), ts, hists.get(), sc);
            }
        }
        _ => {}
    }
    (half_open, total)
}

/// Teardown: who sent the first FIN, and how the connection closed (FIN both ways, an RST, a
/// refusal). Clears `half_open` when it closed.
#[inline(always)]
pub(super) fn teardown(s: &mut Seen<'_>, sc: &mut Counters, half_open: &mut bool) {
    let (ts, flags, di) = (s.rec.ts_ns, s.rec.flags, s.di());
    let conn = &mut *s.conn;
    if flags & FIN != 0 && conn.fin_secs == 0 {
        conn.fin_secs = u32::try_from(ts / 1_000_000_000).unwrap_or(u32::MAX).max(1);
        if let Some(st) = s.stats.as_deref_mut() {
            st.fin_first = Some(di as u8);
        }
    }
    if conn.closed.is_none() {
        if flags & RST != 0 {
            conn.closed = Some(if !s.from_client && conn.handshake == Handshake::SynSent {
                sc.inc(Counter::rst_to_syn);
                Close::Refused
            } else if s.from_client {
                Close::RstClient
            } else {
                Close::RstServer
            });
            *half_open = false;
        } else if conn.has(bit::FIN[C2S]) && conn.has(bit::FIN[S2C]) {
            conn.closed = Some(Close::Fin);
            *half_open = false;
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
