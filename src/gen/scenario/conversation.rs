//! One connection played out: its handshake, its request/response exchanges with their
//! anomalies (resends, reordering, zero windows), its teardown, and the truth it must yield.

use super::*;

/// What goes wrong in one flight of data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Anomaly {
    None,
    /// The last segment is lost after the tap and resent after the RTO.
    Timeout,
    /// The first segment is lost after the tap; each later one draws a duplicate ACK; the
    /// sender resends it quickly.
    Fast,
    /// The receiver's ACK is lost after the tap; the sender resends the last segment after the
    /// RTO; the receiver answers it with a duplicate ACK.
    Spurious,
    /// Two neighbouring segments reach the tap swapped.
    OutOfOrder,
    /// The receiver acknowledges with window 0, answers probes with window 0, then reopens.
    ZeroWindow,
}

impl Anomaly {
    fn min_segments(self) -> u32 {
        match self {
            Anomaly::Fast => 4,
            Anomaly::OutOfOrder => 2,
            _ => 1,
        }
    }
}

pub(super) const CLIENT: usize = 0;
pub(super) const SERVER: usize = 1;

/// One segment before addresses and initial sequence numbers are applied: `seq` is relative to
/// the sender's ISN, `ack` to the receiver's.
#[derive(Clone, Copy, Debug)]
pub(super) struct Seg {
    ts: u64,
    from: usize,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    len: u32,
    /// A resend of data (or SYN) the tap saw before.
    resend: bool,
    /// Lost after the tap: the receiver never gets it.
    lost: bool,
    /// The tap's first copy of a range, after later data.
    out_of_order: bool,
    /// A zero-window probe: its byte is not taken, so it does not advance its sender.
    probe: bool,
}

/// Linux's shortest delayed-ACK timer (`TCP_DELACK_MIN`): a receiver that acknowledges every
/// second segment waits this long before acknowledging an odd last one.
pub(super) const DELAYED_ACK: u64 = 40 * MS;

/// Counts per direction (index [`CLIENT`] = client→server).
#[derive(Default)]
pub(super) struct Tally {
    packets: [u64; 2],
    bytes: [u64; 2],
    retransmits: [u32; 2],
    fast: [u32; 2],
    spurious: [u32; 2],
    ooo: [u32; 2],
    dup_acks: [u32; 2],
    zero_window: [u32; 2],
    probes: [u32; 2],
    syn: [u32; 2],
    fin: [u32; 2],
    rst: [u32; 2],
}

pub(super) fn pair32(v: [u32; 2]) -> (u32, u32) {
    (v[0], v[1])
}

/// One connection being played.
pub(super) struct Conv<'a> {
    sc: &'a Scenario,
    index: u32,
    rng: Rng,
    pub(super) t: u64,
    segs: Vec<Seg>,
    /// Next relative sequence number of each side.
    next: [u32; 2],
    window: [u16; 2],
    /// Tap → side → tap: the client's leg is SYN/ACK → ACK, the server's SYN → SYN/ACK.
    leg: [u64; 2],
    /// Initial RTT (latest SYN → handshake ACK), once established.
    rtt: u64,
    /// Receivers acknowledge every second segment of a flight and an odd last one late.
    delayed_acks: bool,
    /// When the last flight's last data segment passed the tap: answers are timed from it.
    flight_end: u64,
    tally: Tally,
}

impl<'a> Conv<'a> {
    pub(super) fn new(sc: &'a Scenario, index: u32) -> Self {
        // Each connection has its own stream, so connections do not depend on one another.
        let mut seed = Rng::new(sc.seed ^ u64::from(index).wrapping_mul(0xd1b5_4a32_d192_ed03));
        let mut rng = Rng::new(seed.next_u64());
        let t = sc.start_ns + rng.range(&(0..=sc.arrival_spread_ns));
        let leg = [rng.range(&sc.synack_ack_ns), rng.range(&sc.syn_synack_ns)];
        let window = [
            1000 + rng.below(64_536) as u16,
            1000 + rng.below(64_536) as u16,
        ];
        // Drawn only when asked for, so scenarios without it stay what they were.
        let delayed_acks =
            sc.delayed_acks_per_mille > 0 && rng.per_mille(sc.delayed_acks_per_mille);
        Conv {
            sc,
            index,
            rng,
            t,
            segs: Vec::new(),
            next: [0; 2],
            window,
            leg,
            rtt: 0,
            delayed_acks,
            flight_end: 0,
            tally: Tally::default(),
        }
    }

    /// The time `dt` after the last segment (at least 1 ns, so times strictly increase).
    fn after(&self, dt: u64) -> u64 {
        self.t + dt.max(1)
    }

    fn emit(&mut self, seg: Seg) {
        debug_assert!(self.segs.is_empty() || seg.ts > self.t);
        self.t = seg.ts;
        self.segs.push(seg);
        let t = &mut self.tally;
        t.packets[seg.from] += 1;
        t.bytes[seg.from] += u64::from(seg.len);
        for (bit, count) in [(SYN, &mut t.syn), (FIN, &mut t.fin), (RST, &mut t.rst)] {
            if seg.flags & bit != 0 {
                count[seg.from] += 1;
            }
        }
    }

    /// A segment without data.
    fn control(&mut self, ts: u64, from: usize, seq: u32, ack: u32, flags: u8, window: u16) {
        self.emit(Seg {
            ts,
            from,
            seq,
            ack,
            flags,
            window,
            len: 0,
            resend: false,
            lost: false,
            out_of_order: false,
            probe: false,
        });
    }

    /// Data from `from` at relative `seq`, acknowledging everything the peer sent.
    fn data(&mut self, ts: u64, from: usize, seq: u32, len: u32, psh: bool) {
        let flags = if psh { ACK | PSH } else { ACK };
        let (ack, window) = (self.next[1 - from], self.window[from]);
        self.emit(Seg {
            ts,
            from,
            seq,
            ack,
            flags,
            window,
            len,
            resend: false,
            lost: false,
            out_of_order: false,
            probe: false,
        });
    }

    /// Marks the segment just emitted.
    fn mark(&mut self, edit: impl FnOnce(&mut Seg)) {
        if let Some(seg) = self.segs.last_mut() {
            edit(seg);
        }
    }

    /// A segment without data from `from`, acknowledging `ack`.
    fn bare_ack(&mut self, ts: u64, from: usize, ack: u32, window: u16) {
        let seq = self.next[from];
        self.control(ts, from, seq, ack, ACK, window);
    }

    /// A retransmission timeout: past 200 ms and twice the initial RTT.
    fn rto(&mut self) -> u64 {
        (200 * MS).max(2 * self.rtt) + self.rng.range(&(0..=20 * MS))
    }

    pub(super) fn play(mut self) -> (Vec<(u64, TcpFrame)>, Truth) {
        let mut truth_hs = (None, None, None);
        let (close, fin_first) = match self.handshake(&mut truth_hs) {
            Some(close) => (close, None),
            None => {
                self.exchanges();
                self.teardown()
            }
        };
        self.finish(truth_hs, close, fin_first)
    }

    /// SYN (and resends), then refusal, silence or SYN/ACK (and resends) and ACK. Returns the
    /// close reason when the connection ends here.
    fn handshake(
        &mut self,
        legs: &mut (Option<u64>, Option<u64>, Option<u64>),
    ) -> Option<&'static str> {
        let syn_resends = self.sc.syn_retransmits.draw(&mut self.rng);
        let kind = self.rng.below(1000);
        let (wc, ws) = (self.window[CLIENT], self.window[SERVER]);
        self.control(self.t, CLIENT, 0, 0, SYN, wc);
        for k in 0..syn_resends {
            self.control(self.after(SEC << k), CLIENT, 0, 0, SYN, wc);
            self.mark(|s| s.resend = true);
            self.tally.retransmits[CLIENT] += 1;
        }
        self.next[CLIENT] = 1;
        let last_syn = self.t;
        let refused = u64::from(self.sc.refused_per_mille);
        if kind < refused {
            // The server's ISN is taken as 0 for this connection: the RST's sequence number.
            self.control(self.after(self.leg[SERVER]), SERVER, 0, 1, RST | ACK, 0);
            return Some("refused");
        }
        if kind < refused + u64::from(self.sc.unanswered_per_mille) {
            return Some("unanswered");
        }
        self.control(self.after(self.leg[SERVER]), SERVER, 0, 1, SYN | ACK, ws);
        let first_synack = self.t;
        let synack_resends = self.sc.synack_retransmits.draw(&mut self.rng);
        for k in 0..synack_resends {
            self.control(self.after(SEC << k), SERVER, 0, 1, SYN | ACK, ws);
            self.mark(|s| s.resend = true);
            self.tally.retransmits[SERVER] += 1;
        }
        self.next[SERVER] = 1;
        let last_synack = self.t;
        self.control(self.after(self.leg[CLIENT]), CLIENT, 1, 1, ACK, wc);
        self.rtt = self.t - last_syn;
        *legs = (
            Some(first_synack - last_syn),
            Some(self.t - last_synack),
            Some(self.rtt),
        );
        None
    }

    /// Which flight gets which anomaly: `[request, response]` per exchange.
    fn plan(&mut self) -> Vec<[Anomaly; 2]> {
        let n = self.rng.range32(&self.sc.exchanges) as usize;
        let mut plan = vec![[Anomaly::None; 2]; n];
        let sc = self.sc;
        // Out-of-order needs a swap gap under the initial RTT, by a margin (here at least
        // 1.5 ms) that a live tap's timestamp jitter on a busy machine cannot eat: otherwise a
        // capture of the same frames may see a retransmission instead.
        let ooo_possible = self.rtt >= 2 * MS;
        let episodes = [
            (&sc.timeout_retransmits, Anomaly::Timeout),
            (&sc.fast_retransmits, Anomaly::Fast),
            (&sc.spurious_retransmits, Anomaly::Spurious),
            (&sc.out_of_order, Anomaly::OutOfOrder),
            (&sc.zero_window, Anomaly::ZeroWindow),
        ];
        for (feature, anomaly) in episodes {
            let count = feature.draw(&mut self.rng);
            if anomaly == Anomaly::OutOfOrder && !ooo_possible {
                continue;
            }
            for _ in 0..count {
                let dir = self.rng.below(2) as usize;
                let start = self.rng.below(plan.len() as u64) as usize;
                let free = (0..plan.len())
                    .map(|k| (start + k) % plan.len())
                    .find(|&e| plan[e][dir] == Anomaly::None);
                match free {
                    Some(e) => plan[e][dir] = anomaly,
                    None => {
                        let mut flights = [Anomaly::None; 2];
                        flights[dir] = anomaly;
                        plan.push(flights);
                    }
                }
            }
        }
        plan
    }

    fn exchanges(&mut self) {
        for [request, response] in self.plan() {
            let think = self.rng.range(&self.sc.think_ns);
            let n = self
                .rng
                .range32(&self.sc.request_segments)
                .max(request.min_segments());
            let server_owes_ack = self.flight(CLIENT, n, request, self.t + think);
            let delay = self.leg[SERVER] + self.rng.range(&(0..=500 * US));
            let mut n = self.rng.range32(&self.sc.response_segments);
            if response != Anomaly::None {
                n = n.max(response.min_segments());
            }
            let answer_at = self.flight_end + delay;
            if n == 0 {
                if server_owes_ack {
                    let ack = self.next[CLIENT];
                    let at = self.at_least(answer_at + self.delayed_ack_wait());
                    self.bare_ack(at, SERVER, ack, self.window[SERVER]);
                }
            } else if self.flight(SERVER, n, response, answer_at) {
                let ack = self.next[SERVER];
                let at = self.flight_end + self.leg[CLIENT] + self.delayed_ack_wait();
                self.bare_ack(self.at_least(at), CLIENT, ack, self.window[CLIENT]);
            }
        }
    }

    /// `at`, or just after the last segment if that is later (times strictly increase).
    fn at_least(&self, at: u64) -> u64 {
        at.max(self.t + 1)
    }

    /// How long a receiver that owes an ACK for an odd last segment holds it back.
    fn delayed_ack_wait(&self) -> u64 {
        if self.delayed_acks {
            DELAYED_ACK
        } else {
            0
        }
    }

    /// A clean flight to a receiver that acknowledges every second segment as it arrives: the
    /// ACKs pass the tap the receiver's leg later, in among the flight's later segments.
    /// Returns whether the receiver still owes an ACK (for an odd last segment).
    fn flight_with_delayed_acks(
        &mut self,
        from: usize,
        seqs: &[u32],
        lens: &[u32],
        first_at: u64,
    ) -> bool {
        let to = 1 - from;
        let n = seqs.len();
        let mut at = first_at;
        let mut sent = Vec::with_capacity(n);
        for j in 0..n {
            if j > 0 {
                at += self.rng.range(&(5 * US..=50 * US));
            }
            sent.push(at);
        }
        let acks: Vec<(u64, u32)> = (1..n)
            .step_by(2)
            .map(|j| {
                let jitter = self.rng.range(&(0..=20 * US));
                (
                    sent[j] + self.leg[to] + jitter,
                    seqs[j].wrapping_add(lens[j]),
                )
            })
            .collect();
        let (mut j, mut k) = (0, 0);
        while j < n || k < acks.len() {
            if j < n && (k == acks.len() || sent[j] <= acks[k].0) {
                self.data(self.at_least(sent[j]), from, seqs[j], lens[j], j == n - 1);
                self.flight_end = self.t;
                j += 1;
            } else {
                let (ack_at, ack) = acks[k];
                self.bare_ack(self.at_least(ack_at), to, ack, self.window[to]);
                k += 1;
            }
        }
        n % 2 == 1
    }

    /// `n` data segments from `from`, the first at `first_at` (or just after the last segment),
    /// with `anomaly` played out. Returns whether the receiver still owes an ACK for them;
    /// `flight_end` is when the answer is timed from.
    fn flight(&mut self, from: usize, n: u32, anomaly: Anomaly, first_at: u64) -> bool {
        let to = 1 - from;
        let min_len = (*self.sc.segment_len.start()).max(2);
        let len_range = min_len..=(*self.sc.segment_len.end()).max(min_len);
        let start = self.next[from];
        let mut seqs = Vec::with_capacity(n as usize);
        let mut lens = Vec::with_capacity(n as usize);
        let mut end = start;
        for _ in 0..n {
            let len = self.rng.range32(&len_range);
            seqs.push(end);
            lens.push(len);
            end = end.wrapping_add(len);
        }
        self.next[from] = end;
        let n = n as usize;
        let last = n - 1;
        if self.delayed_acks && anomaly == Anomaly::None && n >= 2 {
            return self.flight_with_delayed_acks(from, &seqs, &lens, first_at);
        }

        // The tap sees segment `swap + 1` just before segment `swap`.
        let swap = (anomaly == Anomaly::OutOfOrder).then(|| self.rng.below(last as u64) as usize);
        let swap_gap = self.rng.range(&(US..=500 * US));
        for j in 0..n {
            let idx = match swap {
                Some(s) if j == s => s + 1,
                Some(s) if j == s + 1 => s,
                _ => j,
            };
            let at = match swap {
                _ if j == 0 => self.at_least(first_at),
                Some(s) if j == s + 1 => self.after(swap_gap),
                _ => {
                    let gap = self.rng.range(&(5 * US..=50 * US));
                    self.after(gap)
                }
            };
            self.data(at, from, seqs[idx], lens[idx], idx == last);
            let lost = match anomaly {
                Anomaly::Timeout => idx == last,
                Anomaly::Fast => idx == 0,
                _ => false,
            };
            let late = swap.is_some_and(|s| j == s + 1);
            self.mark(|s| (s.lost, s.out_of_order) = (lost, late));
        }
        if swap.is_some() {
            self.tally.ooo[from] += 1;
        }

        let (w_from, w_to) = (self.window[from], self.window[to]);
        let owes = match anomaly {
            Anomaly::None | Anomaly::OutOfOrder => true,
            Anomaly::Timeout => {
                let rto = self.rto();
                self.data(self.after(rto), from, seqs[last], lens[last], true);
                self.mark(|s| s.resend = true);
                self.tally.retransmits[from] += 1;
                true
            }
            Anomaly::Fast => {
                // Segment 0 is lost after the tap: one duplicate ACK for each later segment.
                let mut dt = self.leg[to];
                for _ in 1..n {
                    self.bare_ack(self.after(dt), to, start, w_to);
                    self.tally.dup_acks[to] += 1;
                    dt = self.rng.range(&(10 * US..=100 * US));
                }
                let react = self
                    .rng
                    .range(&(20 * US..=(15 * MS).min(self.leg[from]).max(20 * US)));
                self.data(self.after(react), from, seqs[0], lens[0], last == 0);
                self.mark(|s| s.resend = true);
                self.tally.retransmits[from] += 1;
                self.tally.fast[from] += 1;
                true
            }
            Anomaly::Spurious => {
                self.bare_ack(self.after(self.leg[to]), to, end, w_to);
                self.mark(|s| s.lost = true);
                let rto = self.rto();
                self.data(self.after(rto), from, seqs[last], lens[last], true);
                self.mark(|s| s.resend = true);
                self.tally.retransmits[from] += 1;
                self.tally.spurious[from] += 1;
                self.bare_ack(self.after(self.leg[to]), to, end, w_to);
                self.tally.dup_acks[to] += 1;
                false
            }
            Anomaly::ZeroWindow => {
                self.bare_ack(self.after(self.leg[to]), to, end, 0);
                self.tally.zero_window[to] += 1;
                let probes = self.rng.range32(&self.sc.zero_window_probes);
                for k in 0..probes {
                    let wait = ((200 * MS) << k.min(20)) + self.rng.range(&(0..=10 * MS));
                    let ack = self.next[to];
                    let ts = self.after(wait);
                    self.emit(Seg {
                        ts,
                        from,
                        seq: end,
                        ack,
                        flags: ACK,
                        window: w_from,
                        len: 1,
                        resend: false,
                        lost: false,
                        out_of_order: false,
                        probe: true,
                    });
                    self.tally.probes[from] += 1;
                    self.bare_ack(self.after(self.leg[to]), to, end, 0);
                    self.tally.zero_window[to] += 1;
                }
                let reopen = self.rng.range(&(MS..=100 * MS));
                self.bare_ack(self.after(reopen), to, end, w_to);
                false
            }
        };
        self.flight_end = self.t;
        owes
    }

    /// Ends an established connection as `sc.close` says; returns close reason and FIN-first.
    fn teardown(&mut self) -> (&'static str, Option<&'static str>) {
        let m = &self.sc.close;
        let weights = [
            m.fin_client,
            m.fin_server,
            m.rst_client,
            m.rst_server,
            m.open,
        ];
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut pick = self.rng.below(total);
        let mut choice = weights.len() - 1;
        for (k, &w) in weights.iter().enumerate() {
            if pick < u64::from(w) {
                choice = k;
                break;
            }
            pick -= u64::from(w);
        }
        let think = self.rng.range(&self.sc.think_ns);
        match choice {
            0 | 1 => {
                let first = if choice == 0 { CLIENT } else { SERVER };
                let other = 1 - first;
                let (seq, ack) = (self.next[first], self.next[other]);
                let window = self.window[first];
                self.control(self.after(think), first, seq, ack, FIN | ACK, window);
                self.next[first] = seq.wrapping_add(1);
                let mut dt = self.leg[other];
                if self.rng.below(2) == 0 {
                    // The other side acknowledges the FIN first and closes a little later.
                    let ack = self.next[first];
                    self.bare_ack(self.after(dt), other, ack, self.window[other]);
                    dt = self.rng.range(&(US..=50 * MS));
                }
                let (seq, ack) = (self.next[other], self.next[first]);
                let window = self.window[other];
                self.control(self.after(dt), other, seq, ack, FIN | ACK, window);
                self.next[other] = seq.wrapping_add(1);
                let ack = self.next[other];
                self.bare_ack(self.after(self.leg[first]), first, ack, self.window[first]);
                (
                    "fin",
                    Some(if first == CLIENT { "client" } else { "server" }),
                )
            }
            2 | 3 => {
                let from = if choice == 2 { CLIENT } else { SERVER };
                let (seq, ack) = (self.next[from], self.next[1 - from]);
                self.control(self.after(think), from, seq, ack, RST | ACK, 0);
                (
                    if from == CLIENT {
                        "rst_client"
                    } else {
                        "rst_server"
                    },
                    None,
                )
            }
            _ => ("capture_end", None),
        }
    }

    /// An ISN for `side` such that no absolute sequence or acknowledgment number of that side's
    /// sequence space is 0; with `wrap`, one that makes the sequence numbers wrap mid-way.
    fn isn_for(&mut self, side: usize, wrap: bool) -> u32 {
        let mut used = Vec::new();
        for s in &self.segs {
            if s.from == side {
                let syn_fin = u32::from(s.flags & (SYN | FIN) != 0);
                used.push(s.seq);
                used.push(s.seq.wrapping_add(s.len).wrapping_add(syn_fin));
            } else if s.flags & ACK != 0 {
                used.push(s.ack);
            }
        }
        let span = used.iter().copied().max().unwrap_or(0);
        let mut isn = if wrap && span > 1 {
            0u32.wrapping_sub(1 + self.rng.below(u64::from(span)) as u32)
        } else {
            self.rng.next_u64() as u32
        };
        while used.iter().any(|&v| isn.wrapping_add(v) == 0) {
            isn = isn.wrapping_add(1);
        }
        isn
    }

    fn finish(
        mut self,
        legs: (Option<u64>, Option<u64>, Option<u64>),
        close: &'static str,
        fin_first: Option<&'static str>,
    ) -> (Vec<(u64, TcpFrame)>, Truth) {
        let ipv6 = self.rng.per_mille(self.sc.ipv6_per_mille);
        let client = client_addr(self.index, ipv6);
        let server = server_addr(&mut self.rng, ipv6);
        let vlan = self
            .rng
            .per_mille(self.sc.vlan_per_mille)
            .then(|| (1 + self.rng.below(4094) as u16, self.rng.below(2) as usize));
        let timestamps = self.rng.below(2) == 0;
        let sack = self.rng.below(4) != 0;
        let wscale = [self.rng.below(15) as u8, self.rng.below(15) as u8];
        let ts_base = [self.rng.next_u64() as u32, self.rng.next_u64() as u32];
        let mss = if ipv6 { 1440 } else { 1460 };
        let wrap = self.rng.per_mille(self.sc.seq_wrap_per_mille);
        let wrap_side = self.rng.below(3);
        let isn = [
            self.isn_for(CLIENT, wrap && wrap_side != 1),
            if close == "refused" {
                0
            } else {
                self.isn_for(SERVER, wrap && wrap_side != 0)
            },
        ];

        let wrap = self.sc.encapsulation.draw(&mut self.rng);
        // Each side's timestamp clock ticks once per millisecond, at its own phase.
        let ts_phase = [self.rng.below(MS), self.rng.below(MS)];
        let options = self.timestamp_options(timestamps.then_some((ts_base, ts_phase)));

        let addr = [client, server];
        let mut frames = Vec::with_capacity(self.segs.len());
        let mut timed = Vec::with_capacity(self.segs.len());
        for (index, (s, &option)) in self.segs.iter().zip(&options).enumerate() {
            let (from, to) = (s.from, 1 - s.from);
            let syn = s.flags & SYN != 0;
            timed.push(latency::Timed {
                from,
                ts: s.ts,
                seq: s.seq,
                ack: s.ack,
                flags: s.flags,
                len: s.len,
                timestamps: option,
                resend: s.resend,
                out_of_order: s.out_of_order,
                probe: s.probe,
            });
            let frame = TcpFrame {
                src: addr[from].ip(),
                dst: addr[to].ip(),
                sport: addr[from].port(),
                dport: addr[to].port(),
                seq: isn[from].wrapping_add(s.seq),
                ack: if s.flags & ACK != 0 {
                    isn[to].wrapping_add(s.ack)
                } else {
                    0
                },
                flags: s.flags,
                window: s.window,
                payload_len: s.len,
                mss: syn.then_some(mss),
                wscale: syn.then_some(wscale[from]),
                sack_permitted: syn && sack,
                timestamps: option,
                vlan: vlan.filter(|&(_, dir)| dir == from).map(|(id, _)| id),
                wrap: wrap.map(|w| match w[from] {
                    // The mirror session numbers its copies.
                    Wrap::Erspan { session, outer, .. } => Wrap::Erspan {
                        session,
                        sequence: index as u32,
                        outer,
                    },
                    other => other,
                }),
            };
            frames.push((s.ts, frame));
        }

        let t = &self.tally;
        let truth = Truth {
            client,
            server,
            first_ns: self.segs.first().map_or(0, |s| s.ts),
            last_ns: self.segs.last().map_or(0, |s| s.ts),
            syn_synack_ns: legs.0,
            synack_ack_ns: legs.1,
            total_ns: legs.2,
            syn_retransmits: t.syn[CLIENT].saturating_sub(1),
            synack_retransmits: t.syn[SERVER].saturating_sub(1),
            packets: (t.packets[0], t.packets[1]),
            payload_bytes: (t.bytes[0], t.bytes[1]),
            retransmits: pair32(t.retransmits),
            fast_retransmits: pair32(t.fast),
            spurious_retransmits: pair32(t.spurious),
            out_of_order: pair32(t.ooo),
            dup_acks: pair32(t.dup_acks),
            zero_window: pair32(t.zero_window),
            zero_window_probes: pair32(t.probes),
            syn: pair32(t.syn),
            fin: pair32(t.fin),
            rst: pair32(t.rst),
            fin_first,
            close,
            wrap: frames.first().and_then(|(_, f)| f.wrap),
            latency: latency::LatencyTruth::of(&timed),
        };
        (frames, truth)
    }

    /// Each segment's (TSval, TSecr) when the connection uses timestamps (RSTs carry none).
    /// A side echoes what RFC 7323 (and Linux) keep as `TS.Recent`: the TSval of the latest
    /// segment it received that began at or below the last ACK it sent — after a flight, the
    /// first segment of it, not the last. A segment received is one that passed the tap at
    /// least the receiver's leg before: what a side sends cannot answer what has not reached it.
    fn timestamp_options(&self, clock: Option<([u32; 2], [u64; 2])>) -> Vec<Option<(u32, u32)>> {
        let Some((base, phase)) = clock else {
            return vec![None; self.segs.len()];
        };
        let carries = |s: &Seg| s.flags & RST == 0;
        let tsval = |s: &Seg| base[s.from].wrapping_add(((s.ts + phase[s.from]) / MS) as u32);
        let mut recent: [Option<u32>; 2] = [None; 2];
        let mut last_ack_sent: [Option<u32>; 2] = [None; 2];
        // Per receiving side, the first segment not yet delivered to it.
        let mut delivered = [0usize; 2];
        let mut out = Vec::with_capacity(self.segs.len());
        for s in &self.segs {
            let side = s.from;
            while let Some(o) = self.segs.get(delivered[side]) {
                if o.from != side {
                    if o.ts + self.leg[side] > s.ts {
                        break;
                    }
                    let in_window =
                        last_ack_sent[side].is_none_or(|a| (o.seq.wrapping_sub(a) as i32) <= 0);
                    let newer = recent[side].is_none_or(|r| (tsval(o).wrapping_sub(r) as i32) >= 0);
                    if carries(o) && !o.lost && in_window && newer {
                        recent[side] = Some(tsval(o));
                    }
                }
                delivered[side] += 1;
            }
            if s.flags & ACK != 0 {
                last_ack_sent[side] = Some(s.ack);
            }
            let echo = if s.flags & ACK != 0 {
                recent[side].unwrap_or(0)
            } else {
                0
            };
            out.push(carries(s).then_some((tsval(s), echo)));
        }
        out
    }
}
