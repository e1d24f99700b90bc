//! Latency all through a connection: round-trip times split at the tap in two legs, as the
//! handshake is split — the *server leg* (tap → server → tap) and the *client leg* (tap →
//! client → tap) — and the server's response time per request/response turn.
//!
//! An RTT sample times one segment to the first segment of the other direction that answers it,
//! both as they pass the tap; the leg is the answering side's (a client segment answered by the
//! server is a server-leg sample). Per segment, one of two sources (`RttSource`):
//! - **timestamps**, when the segment carries the option: the first segment of a direction with
//!   a TSval newer than every TSval timed before is timed, unless it is a pure ACK of all the
//!   peer sent (which asks for no answer: the echo comes whenever the peer next sends, and
//!   would time a think time, as ePPing notes); the first segment of the other
//!   direction whose TSecr echoes it ends the sample. A repeated TSval (stacks tick once per
//!   millisecond), an older one (reordering) and a second echo give nothing; a resend carries a
//!   TSval of its own, so retransmissions need no rule.
//! - **sequence/ACK**, without timestamps: a segment with payload, SYN or FIN whose end is beyond
//!   every end timed before is timed, and so is an out-of-order one (the tap's first copy of a
//!   range, after later data) not yet acknowledged; the ACK whose number equals that end ends
//!   the sample (the segment an ACK acknowledges last, as Wireshark's `ack_rtt` pairs them).
//!   Karn's rule at the tap: after a retransmission, no event timed before it gives a sample —
//!   the ACK may answer either copy, or be released by the resend filling a hole below — and
//!   the resend itself is not timed.
//!
//! The state of a flow is [`Latency`] (40 bytes): per direction the newest event timed (most
//! answers end the newest: a request, a flight's last segment), the highest answer seen and the
//! resend epoch. Older events wait in the worker's [`PendingEvents`] (1 MiB, shared by all its
//! flows, as ePPing's map), so a bulk transfer with hundreds of segments in flight has each
//! timed. An event answered more than [`MAX_SAMPLE_NS`]
//! after it was timed gives no sample.
//!
//! **Response time** (application latency): a turn opens at the first new payload byte the
//! client sends while no turn is open, and closes at the server's first new payload byte after
//! it; the time between is the sample. Pipelined requests before an answer belong to the turn
//! of the first; further server data before the client's next payload belongs to the same
//! answer; payload the server sends with no turn open (banners, pushes) opens none; resent
//! payload never counts. An idle gap inside a turn counts in full (a long poll is a long
//! response). Which side is the client is the flow's (the SYN's sender, else guessed).

use super::conn::C2S;
use super::seq_analysis::verdict;
use crate::decode::flags::{ACK, FIN, SYN};
use crate::decode::{opt, PacketRecord};
use crate::schema::flow::{LatencySummary, ResponseRecord, RttRecord, RttSourceName};

/// A sample of more than this is not taken: an event waits at most 4 s for its answer.
pub const MAX_SAMPLE_NS: u64 = 4_000_000_000;

/// Sets of [`PendingEvents`]: 2^14 sets × 4 ways × 16 bytes = 1 MiB per worker.
const PENDING_SET_BITS: u32 = 14;
const PENDING_WAYS: usize = 4;
/// Fingerprints of displaced events: 2^15 × 4 bytes = 128 KiB per worker.
const GHOST_BITS: u32 = 15;

/// Where RTT samples come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RttSource {
    /// Timestamps where a segment carries them, sequence/ACK otherwise.
    #[default]
    Auto,
    /// Timestamps only (as ePPing and pping).
    Timestamps,
    /// Sequence/ACK only, whether or not segments carry timestamps (as tcptrace and Wireshark).
    SeqAck,
}

impl RttSource {
    pub fn parse(text: &str) -> Option<RttSource> {
        match text {
            "auto" => Some(RttSource::Auto),
            "timestamps" => Some(RttSource::Timestamps),
            "seq-ack" => Some(RttSource::SeqAck),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RttSource::Auto => "auto",
            RttSource::Timestamps => "timestamps",
            RttSource::SeqAck => "seq-ack",
        }
    }
}

/// What the latency measurement is told.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyConfig {
    pub source: RttSource,
    /// At most one event timed per direction in this much capture time (0: no limit), as
    /// ePPing's `--rate-limit`.
    pub rate_limit_ns: u64,
}

/// Which side answered an RTT sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    /// Tap → server → tap.
    Server,
    /// Tap → client → tap.
    Client,
}

/// How an RTT sample was paired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Timestamps,
    SeqAck,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttSample {
    pub leg: Leg,
    pub source: Source,
    pub ns: u64,
}

/// What one segment yielded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Samples {
    pub rtt: Option<RttSample>,
    /// The server's response time of the turn this segment closed.
    pub response_ns: Option<u64>,
}

/// One timed event waiting for its answer; `ts_ns` 0 marks a free entry.
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    /// The flow's id, the kind of value and the direction ([`Latency::key`]).
    key: u32,
    /// The TSval or end sequence number that answers it.
    value: u32,
    ts_ns: u64,
}

/// The ways of one set: one cache line, so finding an event costs one memory access.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct PendingSet([Pending; PENDING_WAYS]);

/// The older timed events of every flow of a worker waiting for their answer, in a fixed table
/// (as ePPing keeps them in one map): a bulk transfer has hundreds of segments in flight, which
/// per-flow slots could not hold without making every flow large. Set-associative, 4 ways in a
/// cache line: a new event takes a free way or the oldest event's, so an event waiting for its
/// answer is lost only when four newer ones land in its set first. Most filed events are never
/// answered (a flight's ACK answers its last segment), so a displacement is no loss until an
/// answer comes for the displaced event: a fingerprint of each event displaced within the age
/// limit is kept, and an answer that finds only the fingerprint is counted
/// ([`PendingEvents::take_displaced`]; a lower bound, as fingerprints share slots too). Fewer
/// samples, never a wrong one: an answer must match the entry's flow, epoch and value.
pub struct PendingEvents {
    sets: Box<[PendingSet]>,
    ghosts: Box<[u32]>,
    /// Answers whose event had been displaced.
    displaced: u64,
}

impl Default for PendingEvents {
    fn default() -> Self {
        PendingEvents {
            sets: vec![PendingSet::default(); 1 << PENDING_SET_BITS].into_boxed_slice(),
            ghosts: vec![0; 1 << GHOST_BITS].into_boxed_slice(),
            displaced: 0,
        }
    }
}

impl PendingEvents {
    #[inline]
    fn hash(key: u32, value: u32) -> u64 {
        (u64::from(key) << 32 | u64::from(value)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    #[inline]
    fn set_index(key: u32, value: u32) -> usize {
        (Self::hash(key, value) >> (64 - PENDING_SET_BITS)) as usize
    }

    /// A displaced event's slot among the fingerprints, and its fingerprint (never 0).
    #[inline]
    fn ghost_of(key: u32, value: u32) -> (usize, u32) {
        let h = Self::hash(key, value);
        (((h >> 24) & ((1 << GHOST_BITS) - 1)) as usize, h as u32 | 1)
    }

    #[inline]
    fn set_of(&mut self, key: u32, value: u32) -> &mut PendingSet {
        &mut self.sets[Self::set_index(key, value)]
    }

    /// Files an event timed at `ts_ns`, seen at `now_ns`; with `keep_first`, not when the same
    /// one waits already (a second copy of a segment: the first copy's time stands).
    #[inline]
    fn file(&mut self, key: u32, value: u32, ts_ns: u64, now_ns: u64, keep_first: bool) {
        let set = self.set_of(key, value);
        let mut way = 0;
        for (i, p) in set.0.iter().enumerate() {
            if p.key == key && p.value == value && p.ts_ns != 0 {
                if keep_first {
                    return;
                }
                way = i;
                break;
            }
            // Free ways have time 0: the oldest is a free one when there is one.
            if p.ts_ns < set.0[way].ts_ns {
                way = i;
            }
        }
        let old = set.0[way];
        set.0[way] = Pending { key, value, ts_ns };
        let live = old.ts_ns != 0
            && !(old.key == key && old.value == value)
            && now_ns.saturating_sub(old.ts_ns) <= MAX_SAMPLE_NS;
        if live {
            let (slot, print) = Self::ghost_of(old.key, old.value);
            self.ghosts[slot] = print;
        }
    }

    #[inline]
    fn insert(&mut self, key: u32, value: u32, ts_ns: u64, now_ns: u64) {
        self.file(key, value, ts_ns, now_ns, false);
    }

    #[inline]
    fn insert_first(&mut self, key: u32, value: u32, ts_ns: u64) {
        self.file(key, value, ts_ns, ts_ns, true);
    }

    /// The capture time of the event `value` of `key`, which is answered now.
    #[inline]
    fn take(&mut self, key: u32, value: u32) -> Option<u64> {
        let set = self.set_of(key, value);
        let found = set
            .0
            .iter_mut()
            .find(|p| p.key == key && p.value == value && p.ts_ns != 0);
        if let Some(p) = found {
            return Some(std::mem::take(&mut p.ts_ns));
        }
        let (slot, print) = Self::ghost_of(key, value);
        if self.ghosts[slot] == print {
            self.ghosts[slot] = 0;
            self.displaced += 1;
        }
        None
    }

    /// Answers that came for a displaced event since the last call: RTT samples the table's
    /// size cost.
    pub fn take_displaced(&mut self) -> u64 {
        std::mem::take(&mut self.displaced)
    }
}

/// Bits of [`Latency::held`], per direction.
mod held {
    /// An event was timed: `newest` holds its value.
    pub const NEWEST: u16 = 1 << 0;
    /// An answer was seen: `answered` holds the highest.
    pub const ANSWERED: u16 = 1 << 1;
    /// The events are TSvals (else end sequence numbers).
    pub const TIMESTAMPS: u16 = 1 << 2;
    /// The newest event waits for its answer (in the flow, not in the table).
    pub const NEWEST_OPEN: u16 = 1 << 3;
    /// Older events of this epoch were filed in the table and may still be answered.
    pub const IN_TABLE: u16 = 1 << 4;
    /// The direction's resend epoch (Karn), modulo 32: it moves on at a retransmission that
    /// leaves timed events unanswerable; an event timed in an earlier epoch gives no sample.
    /// Wide enough that a loss recovery's burst of resends within the 4 s age limit does not
    /// bring an old epoch back (with 8 epochs, lab bulk transfers matched old events).
    pub const EPOCH_SHIFT: u32 = 5;
    pub const EPOCH_BITS: u32 = 5;
    pub const EPOCH: u16 = ((1 << EPOCH_BITS) - 1) << EPOCH_SHIFT;
}

/// What the flow knows of a segment besides its record.
#[derive(Clone, Copy, Debug)]
pub struct SegmentFacts {
    /// The sender's direction (`C2S`, `S2C`).
    pub dir: usize,
    /// The flow's latest capture time before this segment (0 for its first).
    pub prev_last_ns: u64,
    /// The sequence analysis's bits for it.
    pub verdict: u16,
    /// The sequence number after the highest byte the other direction sent (0: unknown).
    pub peer_next_seq: u32,
}

/// Flow ids are this many bits wide ([`Latency::key`] takes seven more): 32 Mi flows before an
/// id comes back, far more than a worker opens within the 4 s an event may wait.
pub const FLOW_ID_BITS: u32 = 25;

/// The latency state of one flow. Its newest timed event per direction waits here (most
/// answers end it: a request, the last segment of a flight); older ones wait in the worker's
/// [`PendingEvents`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Capture time of the open turn's first client payload byte; 0 when no turn is open.
    turn_ns: u64,
    /// Per direction of the sender (`C2S`, `S2C`): the newest value timed.
    newest: [u32; 2],
    /// Low 32 bits of the newest event's capture time.
    newest_low_ns: [u32; 2],
    /// The highest answer (TSecr or ACK number) of the direction's events seen.
    answered: [u32; 2],
    /// Tells this flow's events from every other's in [`PendingEvents`].
    flow_id: u32,
    held: [u16; 2],
}

#[inline]
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[inline]
fn seq_le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

impl Latency {
    /// The state of a new flow; `flow_id` must differ from every flow's whose events may still
    /// wait (ids of [`FLOW_ID_BITS`] bits, taken in turn, repeat far later than 4 s).
    pub fn for_flow(flow_id: u32) -> Latency {
        Latency {
            flow_id: flow_id & ((1 << FLOW_ID_BITS) - 1),
            ..Latency::default()
        }
    }

    /// The tag of direction `dir`'s events timed now: flow id, resend epoch, kind, direction.
    #[inline]
    fn key(&self, dir: usize) -> u32 {
        let h = u32::from(self.held[dir]);
        let epoch = (h & u32::from(held::EPOCH)) >> held::EPOCH_SHIFT;
        let ts = u32::from(h & u32::from(held::TIMESTAMPS) != 0);
        self.flow_id << (held::EPOCH_BITS + 2) | epoch << 2 | ts << 1 | dir as u32
    }

    /// Runs one segment through the measurement.
    #[inline]
    pub fn on_segment(
        &mut self,
        cfg: &LatencyConfig,
        pending: &mut PendingEvents,
        rec: &PacketRecord,
        facts: &SegmentFacts,
    ) -> Samples {
        let (di, prev_last_ns) = (facts.dir, facts.prev_last_ns);
        let seg_verdict = facts.verdict;
        let now = rec.ts_ns;
        let resent = seg_verdict & verdict::RETRANSMISSION != 0;
        let mut out = Samples::default();
        for d in [di, 1 - di] {
            // An open newest event older than MAX_SAMPLE_NS gives no sample; closing it here,
            // at every segment, keeps each open one within 4 s of `prev_last_ns`, so its low
            // time bits are always read right.
            if self.held[d] & held::NEWEST_OPEN != 0
                && now.saturating_sub(Self::time_of(self.newest_low_ns[d], prev_last_ns))
                    > MAX_SAMPLE_NS
            {
                self.held[d] &= !held::NEWEST_OPEN;
            }
        }
        if self.held[1 - di] & held::NEWEST != 0 {
            out.rtt = self.answer(pending, rec, 1 - di, prev_last_ns);
        }
        self.time(cfg, pending, rec, facts);
        if rec.payload_len > 0 && !resent {
            if di == C2S {
                if self.turn_ns == 0 {
                    self.turn_ns = now.max(1);
                }
            } else if self.turn_ns != 0 {
                out.response_ns = Some(now.saturating_sub(self.turn_ns));
                self.turn_ns = 0;
            }
        }
        out
    }

    /// Full capture time of `low_ns`, exact while it is at most 4.29 s older than
    /// `prev_last_ns`.
    #[inline]
    fn time_of(low_ns: u32, prev_last_ns: u64) -> u64 {
        let age = u64::from((prev_last_ns as u32).wrapping_sub(low_ns));
        prev_last_ns.saturating_sub(age)
    }

    /// The sample this segment's answer ends, of the events timed by direction `ri`: the
    /// event whose value equals the answer, timed since the direction's last retransmission
    /// (in the current epoch: an event of an earlier one is not found). Answers only move
    /// forward: a repeated or older one (a duplicate ACK, a reordered echo) ends nothing.
    #[inline]
    fn answer(
        &mut self,
        pending: &mut PendingEvents,
        rec: &PacketRecord,
        ri: usize,
        prev_last_ns: u64,
    ) -> Option<RttSample> {
        let h = self.held[ri];
        if rec.flags & ACK == 0 {
            return None;
        }
        let (source, wanted) = if h & held::TIMESTAMPS != 0 {
            if rec.options & opt::TIMESTAMP == 0 || rec.tsecr == 0 {
                return None;
            }
            (Source::Timestamps, rec.tsecr)
        } else {
            (Source::SeqAck, rec.ack)
        };
        if h & held::ANSWERED != 0 && !seq_gt(wanted, self.answered[ri]) {
            return None;
        }
        if !seq_le(wanted, self.newest[ri]) {
            // Beyond every value timed: data the tap never timed, or an answer from another
            // connection's numbers (a stray ACK before a SYN) that must not block this one's.
            return None;
        }
        self.answered[ri] = wanted;
        self.held[ri] |= held::ANSWERED;
        let at = if wanted == self.newest[ri] {
            // Everything older is answered or passed over too: the table is not asked again.
            self.held[ri] &= !held::IN_TABLE;
            if h & held::NEWEST_OPEN == 0 {
                return None;
            }
            self.held[ri] &= !held::NEWEST_OPEN;
            Self::time_of(self.newest_low_ns[ri], prev_last_ns)
        } else if h & held::IN_TABLE != 0 {
            pending.take(self.key(ri), wanted)?
        } else {
            return None;
        };
        let ns = rec.ts_ns.checked_sub(at)?;
        (ns <= MAX_SAMPLE_NS).then_some(RttSample {
            leg: if ri == C2S { Leg::Server } else { Leg::Client },
            source,
            ns,
        })
    }

    /// Times the segment if it starts a new event of its direction.
    #[inline]
    fn time(
        &mut self,
        cfg: &LatencyConfig,
        pending: &mut PendingEvents,
        rec: &PacketRecord,
        facts: &SegmentFacts,
    ) {
        let (di, prev_last_ns) = (facts.dir, facts.prev_last_ns);
        let (seg_verdict, peer_next_seq) = (facts.verdict, facts.peer_next_seq);
        let resent = seg_verdict & verdict::RETRANSMISSION != 0;
        let out_of_order = seg_verdict & verdict::OUT_OF_ORDER != 0;
        let has_ts = rec.options & opt::TIMESTAMP != 0;
        let use_ts = match cfg.source {
            RttSource::Auto => has_ts,
            RttSource::Timestamps if has_ts => true,
            RttSource::Timestamps => return,
            RttSource::SeqAck => false,
        };
        let h = self.held[di];
        let syn_fin = u32::from(rec.flags & (SYN | FIN) != 0);
        // A pure ACK of everything the peer sent asks for no answer: the peer echoes it
        // whenever its application next sends (a think time, no round trip), so it is not
        // timed, but its TSval counts as seen: a later segment carrying the same TSval is not
        // its first carrier. Amid the peer's flight the peer's ack clock answers at once.
        let asks_answer = !(use_ts
            && rec.payload_len == 0
            && syn_fin == 0
            && !(peer_next_seq != 0 && seq_gt(peer_next_seq, rec.ack)));
        let value = if use_ts {
            rec.tsval
        } else {
            if resent {
                // Karn: which copy an answer answers is unknown; a new epoch leaves every
                // event timed so far unanswerable (if one ends beyond the resend's start).
                // Only when something timed could still be answered: a recovery's burst of
                // resends moves the epoch on once, not once per resend.
                if h & (held::TIMESTAMPS | held::NEWEST) == held::NEWEST
                    && h & (held::NEWEST_OPEN | held::IN_TABLE) != 0
                    && seq_gt(self.newest[di], rec.seq)
                {
                    let epoch = (h & held::EPOCH).wrapping_add(1 << held::EPOCH_SHIFT);
                    let kept = h & !(held::EPOCH | held::NEWEST_OPEN | held::IN_TABLE);
                    self.held[di] = kept | (epoch & held::EPOCH);
                }
                return;
            }
            if rec.payload_len == 0 && syn_fin == 0 {
                return;
            }
            let end = rec.seq.wrapping_add(rec.payload_len).wrapping_add(syn_fin);
            if out_of_order
                && h & (held::TIMESTAMPS | held::NEWEST) == held::NEWEST
                && !seq_gt(end, self.newest[di])
            {
                // The first copy of its range at the tap, after later data: timed too (its
                // ACK, if it acknowledges exactly its end, answers it), if not acknowledged
                // yet; the newest value stays.
                if h & held::ANSWERED == 0 || seq_gt(end, self.answered[di]) {
                    pending.insert_first(self.key(di), end, rec.ts_ns);
                    self.held[di] |= held::IN_TABLE;
                }
                return;
            }
            end
        };
        if (h & held::TIMESTAMPS != 0) != use_ts {
            // The source changed (timestamps appeared or stopped): start over, in a new epoch
            // so that no event of before is found.
            let kind = if use_ts { held::TIMESTAMPS } else { 0 };
            let epoch = (h & held::EPOCH).wrapping_add(1 << held::EPOCH_SHIFT);
            self.held[di] = kind | (epoch & held::EPOCH);
        }
        if self.held[di] & held::NEWEST != 0 {
            if !seq_gt(value, self.newest[di]) {
                return;
            }
            if asks_answer
                && cfg.rate_limit_ns > 0
                && rec
                    .ts_ns
                    .saturating_sub(Self::time_of(self.newest_low_ns[di], prev_last_ns))
                    < cfg.rate_limit_ns
            {
                return;
            }
        }
        if self.held[di] & held::NEWEST_OPEN != 0 {
            // The newest so far still waits: it moves to the table (unless it is too old to
            // give a sample, which also keeps its low time bits from being read wrapped).
            let at = Self::time_of(self.newest_low_ns[di], prev_last_ns);
            if rec.ts_ns.saturating_sub(at) <= MAX_SAMPLE_NS {
                pending.insert(self.key(di), self.newest[di], at, rec.ts_ns);
                self.held[di] |= held::IN_TABLE;
            }
        }
        self.newest[di] = value;
        if asks_answer {
            self.newest_low_ns[di] = rec.ts_ns as u32;
            self.held[di] |= held::NEWEST | held::NEWEST_OPEN;
        } else {
            self.held[di] = (self.held[di] | held::NEWEST) & !held::NEWEST_OPEN;
        }
    }
}

/// Buckets of a flow's log histogram: 4 per octave from 1 µs (2^10 ns) to 2^38 ns (275 s);
/// shorter samples share the first, longer ones the last.
const BUCKETS: usize = 112;
const FIRST_OCTAVE: u32 = 10;

fn bucket_of(ns: u64) -> usize {
    if ns < 1 << FIRST_OCTAVE {
        return 0;
    }
    let octave = 63 - ns.leading_zeros();
    let sub = (ns >> (octave - 2)) & 3;
    (((octave - FIRST_OCTAVE) * 4) as usize + sub as usize).min(BUCKETS - 1)
}

/// The middle of a bucket's range.
fn middle_of(bucket: usize) -> u64 {
    let octave = FIRST_OCTAVE + (bucket / 4) as u32;
    let sub = (bucket % 4) as u64;
    let low = (4 + sub) << (octave - 2);
    low + (1 << (octave - 2)) / 2
}

/// One latency of one flow: sample count, extremes and a small log histogram for the median.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowLeg {
    samples: u64,
    min_ns: u64,
    max_ns: u64,
    /// Counts per bucket; when one would pass 255 all are halved (rounding up), which keeps
    /// the median's bucket for any sample count a flow record is likely to see exactly, and
    /// close beyond.
    buckets: [u8; BUCKETS],
}

impl Default for FlowLeg {
    fn default() -> Self {
        FlowLeg {
            samples: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            buckets: [0; BUCKETS],
        }
    }
}

impl FlowLeg {
    pub fn add(&mut self, ns: u64) {
        self.samples += 1;
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
        let b = bucket_of(ns);
        if self.buckets[b] == u8::MAX {
            for c in &mut self.buckets {
                *c = c.div_ceil(2);
            }
        }
        self.buckets[b] += 1;
    }

    pub fn summary(&self) -> LatencySummary {
        if self.samples == 0 {
            return LatencySummary::default();
        }
        let total: u64 = self.buckets.iter().map(|&c| u64::from(c)).sum();
        let mut below = 0;
        let mut p50 = self.max_ns;
        for (b, &c) in self.buckets.iter().enumerate() {
            below += u64::from(c);
            if below * 2 >= total {
                p50 = middle_of(b);
                break;
            }
        }
        LatencySummary {
            samples: self.samples,
            min_ns: Some(self.min_ns),
            p50_ns: Some(p50.clamp(self.min_ns, self.max_ns)),
            max_ns: Some(self.max_ns),
        }
    }
}

/// A flow's latency samples for its flow record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowLatency {
    pub server_leg: FlowLeg,
    pub client_leg: FlowLeg,
    pub response: FlowLeg,
    timestamps: bool,
    seq_ack: bool,
}

impl FlowLatency {
    pub fn add(&mut self, s: &Samples) {
        if let Some(rtt) = s.rtt {
            match rtt.leg {
                Leg::Server => self.server_leg.add(rtt.ns),
                Leg::Client => self.client_leg.add(rtt.ns),
            }
            match rtt.source {
                Source::Timestamps => self.timestamps = true,
                Source::SeqAck => self.seq_ack = true,
            }
        }
        if let Some(ns) = s.response_ns {
            self.response.add(ns);
        }
    }

    pub fn rtt_record(&self) -> Option<RttRecord> {
        let source = match (self.timestamps, self.seq_ack) {
            (true, true) => RttSourceName::Both,
            (true, false) => RttSourceName::Timestamps,
            (false, true) => RttSourceName::SeqAck,
            (false, false) => return None,
        };
        Some(RttRecord {
            server_leg: self.server_leg.summary(),
            client_leg: self.client_leg.summary(),
            source,
        })
    }

    pub fn response_record(&self) -> Option<ResponseRecord> {
        let s = self.response.summary();
        (s.samples > 0).then_some(ResponseRecord {
            turns: s.samples,
            min_ns: s.min_ns,
            p50_ns: s.p50_ns,
            max_ns: s.max_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::conn::S2C;
    use super::*;
    use crate::decode::flags::PSH;

    const MS: u64 = 1_000_000;
    const T0: u64 = 1_700_000_000_000_000_000;

    fn seg(ts: u64, seq: u32, ack: u32, len: u32, flags: u8) -> PacketRecord {
        PacketRecord {
            ts_ns: ts,
            seq,
            ack,
            payload_len: len,
            flags,
            ..PacketRecord::default()
        }
    }

    fn with_ts(mut r: PacketRecord, tsval: u32, tsecr: u32) -> PacketRecord {
        r.options |= opt::TIMESTAMP;
        r.tsval = tsval;
        r.tsecr = tsecr;
        r
    }

    /// Feeds `(direction, record, verdict)` in order; returns every sample.
    fn run(cfg: LatencyConfig, segs: &[(usize, PacketRecord, u16)]) -> Vec<Samples> {
        let mut l = Latency::for_flow(1);
        let mut pending = PendingEvents::default();
        let mut last = 0;
        let mut next = [0u32; 2];
        segs.iter()
            .map(|(d, r, v)| {
                let facts = SegmentFacts {
                    dir: *d,
                    prev_last_ns: last,
                    verdict: *v,
                    peer_next_seq: next[1 - *d],
                };
                let s = l.on_segment(&cfg, &mut pending, r, &facts);
                last = last.max(r.ts_ns);
                let syn_fin = u32::from(r.flags & (SYN | FIN) != 0);
                let end = r.seq.wrapping_add(r.payload_len + syn_fin);
                if next[*d] == 0 || seq_gt(end, next[*d]) {
                    next[*d] = end;
                }
                s
            })
            .collect()
    }

    fn rtts(samples: &[Samples]) -> Vec<(Leg, Source, u64)> {
        samples
            .iter()
            .filter_map(|s| s.rtt.map(|r| (r.leg, r.source, r.ns)))
            .collect()
    }

    #[test]
    fn a_flow_leg_s_median_is_its_bucket_s_middle_within_the_extremes() {
        let mut leg = FlowLeg::default();
        assert_eq!(leg.summary(), LatencySummary::default());
        leg.add(20 * MS);
        assert_eq!(leg.summary().p50_ns, Some(20 * MS));
        for ns in [5 * MS, 21 * MS, 22 * MS, 400 * MS] {
            leg.add(ns);
        }
        let s = leg.summary();
        assert_eq!(
            (s.samples, s.min_ns, s.max_ns),
            (5, Some(5 * MS), Some(400 * MS))
        );
        let p50 = s.p50_ns.unwrap();
        // The exact median is 21 ms; its bucket spans 2^24 * [5/4, 6/4) ns.
        assert!(p50.abs_diff(21 * MS) * 10 <= 21 * MS, "{p50}");
        assert_eq!(bucket_of(p50), bucket_of(21 * MS));
        // Many samples: counts are halved, the median stays in its bucket.
        let mut many = FlowLeg::default();
        for i in 0..10_000u64 {
            many.add(if i % 3 == 0 { 80 * MS } else { 10 * MS });
        }
        assert_eq!(
            bucket_of(many.summary().p50_ns.unwrap()),
            bucket_of(10 * MS)
        );
        assert_eq!(many.summary().samples, 10_000);
    }

    #[test]
    fn state_is_small() {
        assert!(std::mem::size_of::<Latency>() <= 40);
    }

    /// A request and its answer without timestamps: the request's end is acknowledged 20 ms
    /// later (server leg), the answer's 5 ms later (client leg); the response took 30 ms.
    #[test]
    fn seq_ack_pairs_each_end_with_its_ack() {
        let (a, s) = (ACK | PSH, ACK);
        let segs = [
            (C2S, seg(T0, 1000, 5000, 100, a), 0),
            (S2C, seg(T0 + 20 * MS, 5000, 1100, 0, s), 0),
            (S2C, seg(T0 + 30 * MS, 5000, 1100, 300, a), 0),
            (C2S, seg(T0 + 35 * MS, 1100, 5300, 0, s), 0),
        ];
        let out = run(LatencyConfig::default(), &segs);
        assert_eq!(
            rtts(&out),
            [
                (Leg::Server, Source::SeqAck, 20 * MS),
                (Leg::Client, Source::SeqAck, 5 * MS)
            ]
        );
        assert_eq!(out[2].response_ns, Some(30 * MS));
        assert_eq!(out.iter().filter(|s| s.response_ns.is_some()).count(), 1);
    }

    /// Karn: once a range is resent, the ACK that covers it is no sample; a later new segment
    /// is timed again.
    #[test]
    fn a_resent_range_gives_no_sample() {
        let a = ACK | PSH;
        let segs = [
            (C2S, seg(T0, 1000, 1, 100, a), 0),
            (
                C2S,
                seg(T0 + 300 * MS, 1000, 1, 100, a),
                verdict::RETRANSMISSION,
            ),
            (S2C, seg(T0 + 310 * MS, 1, 1100, 0, ACK), 0),
            (C2S, seg(T0 + 400 * MS, 1100, 1, 50, a), 0),
            (S2C, seg(T0 + 412 * MS, 1, 1150, 0, ACK), 0),
        ];
        let out = run(LatencyConfig::default(), &segs);
        assert_eq!(rtts(&out), [(Leg::Server, Source::SeqAck, 12 * MS)]);
        // The resend opened no second turn and the first turn is still open.
        assert!(out.iter().all(|s| s.response_ns.is_none()));
    }

    /// An ACK of two segments is timed from the second (the one it acknowledges last); one in
    /// the middle of a segment is no sample, the one that then completes it is.
    #[test]
    fn delayed_and_partial_acks() {
        let a = ACK | PSH;
        let segs = [
            (C2S, seg(T0, 1000, 1, 100, a), 0),
            (C2S, seg(T0 + MS, 1100, 1, 100, a), 0),
            (S2C, seg(T0 + 21 * MS, 1, 1200, 0, ACK), 0),
            (C2S, seg(T0 + 30 * MS, 1200, 1, 100, a), 0),
            (S2C, seg(T0 + 50 * MS, 1, 1250, 0, ACK), 0),
            (S2C, seg(T0 + 51 * MS, 1, 1300, 0, ACK), 0),
        ];
        let out = run(LatencyConfig::default(), &segs);
        assert_eq!(
            rtts(&out),
            [
                (Leg::Server, Source::SeqAck, 20 * MS),
                (Leg::Server, Source::SeqAck, 21 * MS)
            ]
        );
    }

    /// Timestamps: the first packet with a new TSval is timed, the first echo ends it; repeats
    /// and second echoes give nothing; the other direction's TSvals time the client leg.
    #[test]
    fn timestamps_time_the_first_new_tsval_to_its_first_echo() {
        let a = ACK | PSH;
        let segs = [
            (C2S, with_ts(seg(T0, 1000, 1, 100, a), 50, 7), 0),
            (C2S, with_ts(seg(T0 + MS / 2, 1100, 1, 100, a), 50, 7), 0),
            (S2C, with_ts(seg(T0 + 20 * MS, 1, 1200, 0, ACK), 900, 50), 0),
            (S2C, with_ts(seg(T0 + 21 * MS, 1, 1200, 10, a), 901, 50), 0),
            (
                C2S,
                with_ts(seg(T0 + 27 * MS, 1200, 11, 0, ACK), 77, 901),
                0,
            ),
        ];
        let out = run(LatencyConfig::default(), &segs);
        assert_eq!(
            rtts(&out),
            [
                (Leg::Server, Source::Timestamps, 20 * MS),
                (Leg::Client, Source::Timestamps, 6 * MS)
            ]
        );
        // Sequence/ACK only, on the same packets: the ACK of 1200 ends at the second segment.
        let seq_only = LatencyConfig {
            source: RttSource::SeqAck,
            ..LatencyConfig::default()
        };
        assert_eq!(
            rtts(&run(seq_only, &segs)),
            [
                (Leg::Server, Source::SeqAck, 20 * MS - MS / 2),
                (Leg::Client, Source::SeqAck, 6 * MS)
            ]
        );
    }

    /// A reordered (older) TSval is not timed, and an echo of a newer TSval gives up the older
    /// events; nothing waits longer than MAX_SAMPLE_NS; the server's pure ACKs of all the
    /// client sent are not timed (the client's next request echoes them after its think time).
    #[test]
    fn reordering_and_old_events() {
        let a = ACK | PSH;
        let segs = [
            (C2S, with_ts(seg(T0, 1000, 1, 10, a), 100, 1), 0),
            (C2S, with_ts(seg(T0 + MS, 990, 1, 10, a), 99, 1), 0),
            (C2S, with_ts(seg(T0 + 2 * MS, 1010, 1, 10, a), 101, 1), 0),
            (S2C, with_ts(seg(T0 + 12 * MS, 1, 1020, 0, ACK), 5, 101), 0),
            (S2C, with_ts(seg(T0 + 13 * MS, 1, 1020, 0, ACK), 6, 100), 0),
            (C2S, with_ts(seg(T0 + 20 * MS, 1020, 1, 10, a), 102, 6), 0),
            (
                S2C,
                with_ts(
                    seg(T0 + 20 * MS + MAX_SAMPLE_NS + 1, 1, 1030, 0, ACK),
                    7,
                    102,
                ),
                0,
            ),
        ];
        let out = run(LatencyConfig::default(), &segs);
        assert_eq!(rtts(&out), [(Leg::Server, Source::Timestamps, 10 * MS)]);
    }

    /// A download with timestamps: the client's pure ACKs amid the server's flight are timed,
    /// and the server's next segment echoing one times the server leg; the last, acknowledging
    /// all the server sent, is not.
    #[test]
    fn pure_acks_amid_the_peer_flight_time_the_other_leg() {
        let a = ACK | PSH;
        let segs = [
            (S2C, with_ts(seg(T0, 1, 100, 1000, a), 10, 50), 0),
            (S2C, with_ts(seg(T0 + MS, 1001, 100, 1000, a), 11, 50), 0),
            (C2S, with_ts(seg(T0 + 5 * MS, 100, 1001, 0, ACK), 60, 10), 0),
            (
                S2C,
                with_ts(seg(T0 + 6 * MS, 2001, 100, 1000, a), 12, 50),
                0,
            ),
            (
                S2C,
                with_ts(seg(T0 + 25 * MS, 3001, 100, 1000, a), 31, 60),
                0,
            ),
            (
                C2S,
                with_ts(seg(T0 + 30 * MS, 100, 4001, 0, ACK), 70, 31),
                0,
            ),
            (
                S2C,
                with_ts(seg(T0 + 90 * MS, 4001, 100, 1000, a), 90, 70),
                0,
            ),
        ];
        assert_eq!(
            rtts(&run(LatencyConfig::default(), &segs)),
            [
                (Leg::Client, Source::Timestamps, 5 * MS),
                (Leg::Server, Source::Timestamps, 20 * MS),
                (Leg::Client, Source::Timestamps, 5 * MS),
            ]
        );
    }

    /// A bulk transfer: 200 segments in flight, each acknowledged exactly later, each timed.
    #[test]
    fn every_segment_of_a_large_window_is_timed() {
        let mut segs = Vec::new();
        for i in 0..200u32 {
            segs.push((
                C2S,
                seg(T0 + u64::from(i) * 10_000, 1 + 1000 * i, 1, 1000, ACK),
                0,
            ));
        }
        for i in 0..200u32 {
            let t = T0 + 30 * MS + u64::from(i) * 10_000;
            segs.push((S2C, seg(t, 1, 1 + 1000 * (i + 1), 0, ACK), 0));
        }
        let out = rtts(&run(LatencyConfig::default(), &segs));
        assert_eq!(out.len(), 200);
        assert!(out
            .iter()
            .all(|&(l, _, ns)| l == Leg::Server && ns == 30 * MS));
    }

    /// An out-of-order segment (the tap's first copy of its range, after later data) is timed;
    /// a stray ACK with another connection's numbers does not block later answers; once a
    /// range is resent, nothing timed before gives a sample, but what is timed after does.
    #[test]
    fn out_of_order_stray_acks_and_resend_epochs() {
        let a = ACK | PSH;
        let ooo = verdict::OUT_OF_ORDER;
        let resend = verdict::RETRANSMISSION;
        let segs = [
            (C2S, seg(T0 + MS, 1100, 1, 100, a), 0),
            (S2C, seg(T0 + MS, 9, 77_000_000, 0, ACK), 0),
            (C2S, seg(T0 + 2 * MS, 1000, 1, 100, a), ooo),
            (S2C, seg(T0 + 22 * MS, 1, 1100, 0, ACK), 0),
            (S2C, seg(T0 + 23 * MS, 1, 1200, 0, ACK), 0),
            (C2S, seg(T0 + 30 * MS, 1200, 1, 100, a), 0),
            (C2S, seg(T0 + 31 * MS, 1300, 1, 100, a), 0),
            (C2S, seg(T0 + 40 * MS, 1200, 1, 100, a), resend),
            (C2S, seg(T0 + 41 * MS, 1400, 1, 100, a), 0),
            (S2C, seg(T0 + 60 * MS, 1, 1300, 0, ACK), 0),
            (S2C, seg(T0 + 61 * MS, 1, 1400, 0, ACK), 0),
            (S2C, seg(T0 + 62 * MS, 1, 1500, 0, ACK), 0),
        ];
        assert_eq!(
            rtts(&run(LatencyConfig::default(), &segs)),
            [
                (Leg::Server, Source::SeqAck, 20 * MS),
                (Leg::Server, Source::SeqAck, 22 * MS),
                (Leg::Server, Source::SeqAck, 21 * MS)
            ]
        );
    }

    #[test]
    fn the_rate_limit_spaces_timed_events() {
        let a = ACK | PSH;
        let cfg = LatencyConfig {
            rate_limit_ns: 10 * MS,
            ..LatencyConfig::default()
        };
        let mut segs = Vec::new();
        for i in 0..20u32 {
            let t = T0 + u64::from(i) * MS;
            segs.push((C2S, with_ts(seg(t, 1000 + 10 * i, 1, 10, a), 100 + i, 1), 0));
            segs.push((
                S2C,
                with_ts(seg(t + MS / 2, 1, 1010 + 10 * i, 0, ACK), 5, 100 + i),
                0,
            ));
        }
        assert_eq!(rtts(&run(cfg, &segs)).len(), 2);
        assert_eq!(rtts(&run(LatencyConfig::default(), &segs)).len(), 20);
    }

    /// Turns: pipelined requests are one turn; server data with no turn open opens none.
    #[test]
    fn response_turns() {
        let a = ACK | PSH;
        let segs = [
            (S2C, seg(T0, 1, 1000, 20, a), 0),
            (C2S, seg(T0 + MS, 1000, 21, 10, a), 0),
            (C2S, seg(T0 + 2 * MS, 1010, 21, 10, a), 0),
            (S2C, seg(T0 + 9 * MS, 21, 1020, 100, a), 0),
            (S2C, seg(T0 + 10 * MS, 121, 1020, 100, a), 0),
            (C2S, seg(T0 + 50 * MS, 1020, 221, 10, a), 0),
            (S2C, seg(T0 + 53 * MS, 221, 1030, 100, a), 0),
        ];
        let turns: Vec<u64> = run(LatencyConfig::default(), &segs)
            .iter()
            .filter_map(|s| s.response_ns)
            .collect();
        assert_eq!(turns, [8 * MS, 3 * MS]);
    }

    /// Five waiting events of one set: the oldest gives way, and is counted when its answer
    /// comes; the other four are still found; an event past the age limit gives way, and its
    /// answer is not counted.
    #[test]
    fn a_full_set_displaces_its_oldest_event_and_counts_it() {
        let mut p = PendingEvents::default();
        let key = 7 << (held::EPOCH_BITS + 2);
        let home = PendingEvents::set_index(key, 1);
        let same: Vec<u32> = (1..)
            .filter(|&v| PendingEvents::set_index(key, v) == home)
            .take(6)
            .collect();
        for (i, &v) in same[..5].iter().enumerate() {
            let t = T0 + i as u64 * MS;
            p.insert(key, v, t, t);
        }
        assert_eq!(p.take_displaced(), 0);
        assert_eq!(p.take(key, same[0]), None);
        assert_eq!(p.take_displaced(), 1);
        for (i, &v) in same[1..5].iter().enumerate() {
            assert_eq!(p.take(key, v), Some(T0 + (i as u64 + 1) * MS));
        }
        for (i, &v) in same[..4].iter().enumerate() {
            p.insert(key, v, T0 + i as u64, T0 + i as u64);
        }
        let late = T0 + MAX_SAMPLE_NS + 10;
        p.insert(key, same[5], late, late);
        assert_eq!(p.take(key, same[5]), Some(late));
        assert_eq!(p.take(key, same[0]), None);
        assert_eq!(p.take_displaced(), 0);
    }
}
