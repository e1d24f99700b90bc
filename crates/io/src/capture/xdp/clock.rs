//! From the kernel's CLOCK_MONOTONIC (what `bpf_ktime_get_ns()` reads) to Unix-epoch
//! nanoseconds.
//!
//! The offset `CLOCK_REALTIME - CLOCK_MONOTONIC` is measured once per process, on first use,
//! from the tightest of several `REALTIME, MONOTONIC, REALTIME` reads; every queue converts with
//! the same offset, so timestamps from different queues stay comparable.
//!
//! Error: half the width of the tightest read window (typically tens of nanoseconds, see
//! [`EpochOffset::uncertainty_ns`]), plus any step of the wall clock after the measurement
//! (`settimeofday`, an NTP step, a leap second), which is not followed: the offset is kept fixed
//! so timestamps never go backwards. NTP frequency slewing moves both clocks alike and adds no
//! error.

use std::sync::OnceLock;

use crate::sys::xdp as sys;

/// `CLOCK_REALTIME - CLOCK_MONOTONIC`, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochOffset {
    offset_ns: i128,
    uncertainty_ns: u64,
}

/// Read windows tried; the tightest wins.
const SAMPLES: usize = 16;

impl EpochOffset {
    /// Measures the offset now.
    pub fn measure() -> EpochOffset {
        let samples = (0..SAMPLES).map(|_| {
            let r1 = sys::realtime_ns();
            let m = sys::monotonic_ns();
            let r2 = sys::realtime_ns();
            (r1, m, r2)
        });
        EpochOffset::from_samples(samples)
    }

    /// The offset from `(realtime before, monotonic, realtime after)` reads: the read whose
    /// realtime window is narrowest, with the monotonic read placed at its middle.
    pub fn from_samples(samples: impl IntoIterator<Item = (u64, u64, u64)>) -> EpochOffset {
        let mut best: Option<(u64, EpochOffset)> = None;
        for (r1, m, r2) in samples {
            let width = r2.saturating_sub(r1);
            let mid = i128::from(r1) + i128::from(width / 2);
            let candidate = EpochOffset {
                offset_ns: mid - i128::from(m),
                uncertainty_ns: width.div_ceil(2),
            };
            if best.is_none_or(|(w, _)| width < w) {
                best = Some((width, candidate));
            }
        }
        best.map_or(
            EpochOffset {
                offset_ns: 0,
                uncertainty_ns: u64::MAX,
            },
            |(_, o)| o,
        )
    }

    /// Unix-epoch nanoseconds for a CLOCK_MONOTONIC reading, clamped to `u64`.
    pub fn to_unix(&self, monotonic_ns: u64) -> u64 {
        let t = i128::from(monotonic_ns) + self.offset_ns;
        u64::try_from(t.max(0)).unwrap_or(u64::MAX)
    }

    /// Half the width of the read window the offset came from.
    pub fn uncertainty_ns(&self) -> u64 {
        self.uncertainty_ns
    }
}

/// The process-wide offset, measured on first call.
pub fn process_offset() -> &'static EpochOffset {
    static OFFSET: OnceLock<EpochOffset> = OnceLock::new();
    OFFSET.get_or_init(EpochOffset::measure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowest_window_wins() {
        let o = EpochOffset::from_samples([
            (1_000_100, 100, 1_000_300), // width 200
            (1_000_500, 520, 1_000_540), // width 40: mid 1_000_520
            (1_000_900, 900, 1_001_900), // width 1000
        ]);
        assert_eq!(o.uncertainty_ns(), 20);
        assert_eq!(o.to_unix(520), 1_000_520);
        assert_eq!(o.to_unix(1_520), 1_001_520);
    }

    #[test]
    fn clamps_instead_of_wrapping() {
        let o = EpochOffset::from_samples([(10, 1_000, 10)]);
        assert_eq!(o.to_unix(0), 0);
        let o = EpochOffset::from_samples([(u64::MAX, 0, u64::MAX)]);
        assert_eq!(o.to_unix(u64::MAX), u64::MAX);
    }

    #[test]
    fn no_samples_is_flagged() {
        let o = EpochOffset::from_samples([]);
        assert_eq!(o.uncertainty_ns(), u64::MAX);
    }

    #[test]
    fn measured_offset_is_close_to_now() {
        let o = EpochOffset::measure();
        let now = sys::realtime_ns();
        let converted = o.to_unix(sys::monotonic_ns());
        assert!(converted.abs_diff(now) < 50_000_000, "{converted} vs {now}");
        assert!(o.uncertainty_ns() < 1_000_000);
    }
}
