//! Per-direction sequence analysis that classifies segments the way Wireshark's TCP analysis does
//! (retransmission, fast retransmission, spurious retransmission, out-of-order, duplicate ACK,
//! zero window and its probes, keep-alives), so operators can check tcpulse against tshark.
//!
//! The rules, their order and thresholds follow Wireshark 4.0's documented behaviour; where
//! tcpulse departs from it the difference is listed in docs/accuracy.md.

use crate::decode::flags::{ACK, FIN, RST, SYN};

/// Analysis outcome bits for one segment.
pub mod verdict {
    pub const RETRANSMISSION: u16 = 1 << 0;
    pub const FAST_RETRANSMISSION: u16 = 1 << 1;
    pub const SPURIOUS_RETRANSMISSION: u16 = 1 << 2;
    pub const OUT_OF_ORDER: u16 = 1 << 3;
    pub const DUP_ACK: u16 = 1 << 4;
    pub const ZERO_WINDOW: u16 = 1 << 5;
    pub const ZERO_WINDOW_PROBE: u16 = 1 << 6;
    pub const ZERO_WINDOW_PROBE_ACK: u16 = 1 << 7;
    pub const KEEP_ALIVE: u16 = 1 << 8;
    pub const KEEP_ALIVE_ACK: u16 = 1 << 9;
    pub const WINDOW_UPDATE: u16 = 1 << 10;
    pub const LOST_SEGMENT: u16 = 1 << 11;
    pub const ACKED_UNSEEN: u16 = 1 << 12;
}
use verdict::*;

/// A fast retransmission follows the duplicate ACKs that triggered it within this time (ns).
const FAST_RETRANSMIT_WINDOW: u64 = 20_000_000;
/// Out-of-order threshold when the connection's first RTT is unknown (ns).
const DEFAULT_OOO_THRESHOLD: u64 = 3_000_000;

/// What one direction of a connection has sent so far, as the analysis needs it. Like
/// Wireshark, 0 means "unknown" for `next_seq`, `max_seq_to_ack` and `last_ack`; a genuine 0
/// after wrap-around is misread the same way tshark misreads it, which keeps the two comparable.
#[derive(Clone, Copy, Debug)]
pub struct DirSeq {
    /// Sequence number after the highest byte sent (SYN and FIN count one).
    pub next_seq: u32,
    /// End of the contiguous sequence space sent, for "ACKed unseen segment".
    pub max_seq_to_ack: u32,
    /// ACK field of this direction's last segment (stored whether or not the ACK bit was set).
    pub last_ack: u32,
    /// Capture times (ns) of the segment that set `next_seq` and of this direction's last one.
    /// Thresholds as small as one initial RTT (sometimes a microsecond) are compared against
    /// them, so they keep full precision.
    pub next_seq_time: u64,
    pub last_ack_time: u64,
    /// Raw window field of this direction's last segment; `u32::MAX` before the first.
    pub window: u32,
    /// Duplicate ACKs this direction sent since its ACK number last changed. [`DUP_ACK_SENTINEL`]
    /// marks "ACKed unseen data"; it is large, so it also satisfies the fast-retransmit test.
    pub dup_acks: u32,
    /// Verdict bits of this direction's previous segment.
    pub last_verdict: u16,
}

pub const DUP_ACK_SENTINEL: u32 = u32::MAX;

impl Default for DirSeq {
    fn default() -> Self {
        DirSeq {
            next_seq: 0,
            max_seq_to_ack: 0,
            last_ack: 0,
            next_seq_time: 0,
            last_ack_time: 0,
            window: u32::MAX,
            dup_acks: 0,
            last_verdict: 0,
        }
    }
}

/// The fields of a segment the analysis reads.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub seq: u32,
    pub ack: u32,
    pub len: u32,
    pub flags: u8,
    /// Raw window field: every check compares raw values, scaling would not change their outcome.
    pub window: u16,
    /// Capture time, ns.
    pub time: u64,
}

#[inline]
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[inline]
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[inline]
fn seq_le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// Classifies `seg`, sent by the `fwd` direction, and updates `fwd` (and `rev` when `seg`
/// acknowledges data never seen). `first_rtt_ns` is the connection's initial RTT, 0 while
/// unknown; it sets the out-of-order threshold.
pub fn analyze(fwd: &mut DirSeq, rev: &mut DirSeq, seg: &Segment, first_rtt_ns: u64) -> u16 {
    let mut v = 0u16;
    let syn_fin_rst = seg.flags & (SYN | FIN | RST) != 0;
    let window = u32::from(seg.window);
    let at_next = seg.seq == fwd.next_seq;
    // A bare segment that repeats this direction's last ACK at the expected sequence number.
    let bare_repeat = seg.len == 0 && !syn_fin_rst && at_next && seg.ack == fwd.last_ack;

    'checks: {
        // A single byte at the expected sequence number into a closed window probes it.
        if seg.len == 1 && at_next && rev.window == 0 {
            v |= ZERO_WINDOW_PROBE;
            break 'checks;
        }
        if window == 0 && !syn_fin_rst {
            v |= ZERO_WINDOW;
        }
        if fwd.next_seq != 0 && seq_gt(seg.seq, fwd.next_seq) && seg.flags & RST == 0 {
            v |= LOST_SEGMENT;
        }
        // Keep-alives resend the byte just below the next sequence number, with 0 or 1 byte.
        if seg.len <= 1 && seg.seq == fwd.next_seq.wrapping_sub(1) && !syn_fin_rst {
            v |= KEEP_ALIVE;
        }
        if bare_repeat && window != 0 && window != fwd.window {
            v |= WINDOW_UPDATE;
        }
        if bare_repeat && window != 0 && window == fwd.window && rev.last_verdict & KEEP_ALIVE != 0
        {
            v |= KEEP_ALIVE_ACK;
            break 'checks;
        }
        if bare_repeat
            && window == 0
            && fwd.window == 0
            && rev.last_verdict & ZERO_WINDOW_PROBE != 0
        {
            v |= ZERO_WINDOW_PROBE_ACK;
            break 'checks;
        }
        if bare_repeat && window != 0 && window == fwd.window {
            fwd.dup_acks = if fwd.dup_acks == DUP_ACK_SENTINEL {
                1
            } else {
                fwd.dup_acks + 1
            };
            v |= DUP_ACK;
        }
    }
    // Only a new ACK number ends a run of duplicate ACKs.
    if seg.ack != fwd.last_ack {
        fwd.dup_acks = 0;
    }

    if seg.flags & ACK != 0 && rev.max_seq_to_ack != 0 && seq_gt(seg.ack, rev.max_seq_to_ack) {
        if seq_lt(rev.max_seq_to_ack, rev.next_seq) {
            rev.max_seq_to_ack = rev.next_seq;
            v |= ACKED_UNSEEN;
        } else {
            if rev.dup_acks == 0 {
                v |= ACKED_UNSEEN;
            }
            rev.dup_acks = DUP_ACK_SENTINEL;
        }
    }

    if (seg.len > 0 || seg.flags & (SYN | FIN) != 0) && v & KEEP_ALIVE == 0 {
        v |= classify_resend(fwd, rev, seg, first_rtt_ns);
    }

    // Advance the highest sequence seen; a zero-window probe does not (its byte is not accepted).
    let mut end = seg.seq.wrapping_add(seg.len);
    if seg.flags & (SYN | FIN) != 0 {
        end = end.wrapping_add(1);
    }
    if v & ZERO_WINDOW_PROBE == 0 {
        if fwd.next_seq == 0 || seq_gt(end, fwd.next_seq) {
            fwd.next_seq = end;
            fwd.next_seq_time = seg.time;
        }
        if fwd.max_seq_to_ack == 0 || seg.seq == fwd.max_seq_to_ack {
            fwd.max_seq_to_ack = fwd.next_seq;
        }
    }
    fwd.window = window;
    fwd.last_ack = seg.ack;
    fwd.last_ack_time = seg.time;
    fwd.last_verdict = v;
    v
}

/// For a segment carrying sequence space: spurious, fast, out-of-order or plain retransmission,
/// tested in that order. Fast and spurious retransmissions are retransmissions too, so they
/// carry the generic bit as well (as tshark shows them).
fn classify_resend(fwd: &DirSeq, rev: &DirSeq, seg: &Segment, first_rtt_ns: u64) -> u16 {
    let mut not_advanced = fwd.next_seq != 0 && seq_lt(seg.seq, fwd.next_seq);
    // Data that follows a one-byte probe starts one below the next sequence number: new data.
    if seg.len > 1 && seg.seq == fwd.next_seq.wrapping_sub(1) {
        not_advanced = false;
    }
    let end = seg.seq.wrapping_add(seg.len);
    if seg.len > 0 && rev.last_ack != 0 && seq_le(end, rev.last_ack) {
        return SPURIOUS_RETRANSMISSION | RETRANSMISSION;
    }
    if not_advanced
        && rev.dup_acks >= 2
        && rev.last_ack == seg.seq
        && seg.time.wrapping_sub(rev.last_ack_time) < FAST_RETRANSMIT_WINDOW
    {
        return FAST_RETRANSMISSION | RETRANSMISSION;
    }
    let ooo_threshold = if first_rtt_ns > 0 {
        first_rtt_ns
    } else {
        DEFAULT_OOO_THRESHOLD
    };
    let end_with_flags = end.wrapping_add(u32::from(seg.flags & (SYN | FIN) != 0));
    if not_advanced
        && seg.time.wrapping_sub(fwd.next_seq_time) < ooo_threshold
        && fwd.next_seq != end_with_flags
    {
        return OUT_OF_ORDER;
    }
    if not_advanced {
        return RETRANSMISSION;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::flags::PSH;

    const MS: u64 = 1_000_000;

    /// Two directions and a clock, to replay a conversation segment by segment.
    struct Conv {
        c: DirSeq,
        s: DirSeq,
    }

    impl Conv {
        fn new() -> Self {
            Conv {
                c: DirSeq::default(),
                s: DirSeq::default(),
            }
        }
        fn client(&mut self, t_ms: u64, seq: u32, ack: u32, len: u32, flags: u8, win: u16) -> u16 {
            let seg = Segment {
                seq,
                ack,
                len,
                flags,
                window: win,
                time: t_ms * MS,
            };
            analyze(&mut self.c, &mut self.s, &seg, 0)
        }
        fn server(&mut self, t_ms: u64, seq: u32, ack: u32, len: u32, flags: u8, win: u16) -> u16 {
            let seg = Segment {
                seq,
                ack,
                len,
                flags,
                window: win,
                time: t_ms * MS,
            };
            analyze(&mut self.s, &mut self.c, &seg, 0)
        }
    }

    fn established() -> Conv {
        let mut cv = Conv::new();
        assert_eq!(cv.client(0, 100, 0, 0, SYN, 1000), 0);
        assert_eq!(cv.server(10, 500, 101, 0, SYN | ACK, 1000), 0);
        assert_eq!(cv.client(20, 101, 501, 0, ACK, 1000), 0);
        cv
    }

    #[test]
    fn syn_retransmission() {
        let mut cv = Conv::new();
        assert_eq!(cv.client(0, 100, 0, 0, SYN, 1000), 0);
        assert_eq!(cv.client(1000, 100, 0, 0, SYN, 1000), RETRANSMISSION);
    }

    #[test]
    fn timeout_retransmission_of_data() {
        let mut cv = established();
        assert_eq!(cv.client(30, 101, 501, 100, ACK | PSH, 1000), 0);
        assert_eq!(
            cv.client(300, 101, 501, 100, ACK | PSH, 1000),
            RETRANSMISSION
        );
    }

    #[test]
    fn dup_acks_then_fast_retransmission() {
        let mut cv = established();
        cv.client(30, 101, 501, 100, ACK, 1000);
        cv.client(31, 201, 501, 100, ACK, 1000);
        cv.client(32, 301, 501, 100, ACK, 1000);
        // Segment 101..201 lost: the server keeps acking 101, which its SYN/ACK acked already.
        assert_eq!(cv.server(40, 501, 101, 0, ACK, 1000), DUP_ACK);
        assert_eq!(cv.server(41, 501, 101, 0, ACK, 1000), DUP_ACK);
        assert_eq!(cv.server(42, 501, 101, 0, ACK, 1000), DUP_ACK);
        assert_eq!(
            cv.client(45, 101, 501, 100, ACK, 1000),
            FAST_RETRANSMISSION | RETRANSMISSION
        );
    }

    #[test]
    fn out_of_order_within_threshold() {
        let mut cv = established();
        assert_eq!(cv.client(30, 201, 501, 100, ACK, 1000), LOST_SEGMENT);
        assert_eq!(cv.client(31, 101, 501, 100, ACK, 1000), OUT_OF_ORDER);
    }

    #[test]
    fn spurious_when_already_acked() {
        let mut cv = established();
        cv.client(30, 101, 501, 100, ACK, 1000);
        cv.server(40, 501, 201, 0, ACK, 1000);
        assert_eq!(
            cv.client(300, 101, 501, 100, ACK, 1000),
            SPURIOUS_RETRANSMISSION | RETRANSMISSION
        );
    }

    #[test]
    fn zero_window_probe_and_ack() {
        let mut cv = established();
        cv.client(30, 101, 501, 100, ACK, 1000);
        assert_eq!(cv.server(40, 501, 201, 0, ACK, 0), ZERO_WINDOW);
        assert_eq!(cv.client(300, 201, 501, 1, ACK, 1000), ZERO_WINDOW_PROBE);
        assert_eq!(
            cv.server(301, 501, 201, 0, ACK, 0),
            ZERO_WINDOW | ZERO_WINDOW_PROBE_ACK
        );
        // The probe did not advance the sequence: the next probe is again a probe, not a resend.
        assert_eq!(cv.client(900, 201, 501, 1, ACK, 1000), ZERO_WINDOW_PROBE);
    }

    #[test]
    fn keep_alive_is_not_a_retransmission() {
        let mut cv = established();
        cv.client(30, 101, 501, 100, ACK, 1000);
        cv.server(40, 501, 201, 0, ACK, 1000);
        assert_eq!(cv.client(60_000, 200, 501, 1, ACK, 1000), KEEP_ALIVE);
        assert_eq!(cv.server(60_001, 501, 201, 0, ACK, 1000), KEEP_ALIVE_ACK);
    }

    #[test]
    fn window_update_is_not_a_dup_ack() {
        let mut cv = established();
        assert_eq!(cv.server(40, 501, 101, 0, ACK, 2000), WINDOW_UPDATE);
        assert_eq!(cv.server(41, 501, 101, 0, ACK, 2000), DUP_ACK);
    }

    #[test]
    fn sequence_wraps() {
        let mut cv = Conv::new();
        cv.client(0, u32::MAX - 10, 0, 0, SYN, 1000);
        cv.server(1, 7, u32::MAX - 9, 0, SYN | ACK, 1000);
        cv.client(2, u32::MAX - 9, 8, 20, ACK, 1000);
        assert_eq!(cv.client(3, 10, 8, 20, ACK, 1000), 0);
        assert_eq!(
            cv.client(500, u32::MAX - 9, 8, 20, ACK, 1000),
            RETRANSMISSION
        );
    }
}
