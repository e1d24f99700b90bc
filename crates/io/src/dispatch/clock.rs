//! Interval boundaries on capture time. Intervals are aligned to multiples of their length, so
//! appliances and runs with the same length produce comparable, mergeable intervals.

/// Gaps longer than this many intervals are not filled with empty intervals: a capture with a
/// bogus timestamp (say, 1970) must not print millions of empty records.
pub const MAX_EMPTY_INTERVALS: u64 = 3_600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockStep {
    /// The packet belongs to the current interval.
    Same,
    /// The packet is stamped before the current interval; it is kept in the current one.
    Backwards,
    /// The current interval ends at `end`; more intervals may follow before the packet's.
    Close { end: u64 },
}

#[derive(Clone, Copy, Debug)]
pub struct IntervalClock {
    len_ns: u64,
    start: Option<u64>,
}

impl IntervalClock {
    pub fn new(len_ns: u64) -> Self {
        IntervalClock {
            len_ns: len_ns.max(1),
            start: None,
        }
    }

    pub fn start(&self) -> Option<u64> {
        self.start
    }

    pub fn end(&self) -> Option<u64> {
        self.start.map(|s| s.saturating_add(self.len_ns))
    }

    fn align(&self, ts: u64) -> u64 {
        ts - ts % self.len_ns
    }

    /// Where a packet stamped `ts` falls. After `Close`, call `advance(ts)` and ask again until
    /// `Same` (each call closes one interval, or jumps over a long gap at once).
    pub fn step(&mut self, ts: u64) -> ClockStep {
        match self.start {
            None => {
                self.start = Some(self.align(ts));
                ClockStep::Same
            }
            Some(start) if ts < start => ClockStep::Backwards,
            Some(start) if ts - start < self.len_ns => ClockStep::Same,
            Some(start) => ClockStep::Close {
                end: start + self.len_ns,
            },
        }
    }

    /// Moves to the next interval towards `ts`; returns true when a long gap was jumped.
    pub fn advance(&mut self, ts: u64) -> bool {
        let Some(start) = self.start else {
            self.start = Some(self.align(ts));
            return false;
        };
        let next = start + self.len_ns;
        let target = self.align(ts);
        if (target - next) / self.len_ns > MAX_EMPTY_INTERVALS {
            self.start = Some(target);
            true
        } else {
            self.start = Some(next);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn aligned_intervals_and_empty_ones_in_gaps() {
        let mut c = IntervalClock::new(S);
        assert_eq!(c.step(10 * S + 5), ClockStep::Same);
        assert_eq!(c.start(), Some(10 * S));
        assert_eq!(c.step(10 * S + S - 1), ClockStep::Same);
        assert_eq!(c.step(9 * S), ClockStep::Backwards);
        // A packet 3 s later closes 3 intervals (10, 11, 12) before landing in 13.
        let mut closed = Vec::new();
        while let ClockStep::Close { end } = c.step(13 * S + 1) {
            closed.push(end);
            c.advance(13 * S + 1);
        }
        assert_eq!(closed, vec![11 * S, 12 * S, 13 * S]);
        assert_eq!(c.start(), Some(13 * S));
    }

    #[test]
    fn long_gaps_are_jumped() {
        let mut c = IntervalClock::new(S);
        c.step(0);
        assert_eq!(c.step(1_000_000 * S), ClockStep::Close { end: S });
        assert!(c.advance(1_000_000 * S));
        assert_eq!(c.step(1_000_000 * S), ClockStep::Same);
    }
}
