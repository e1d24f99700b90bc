//! Latency histograms in microseconds, exported as a summary plus the standard HdrHistogram V2
//! compressed form (base64), so consumers can merge intervals and appliances exactly.

use base64::Engine as _;
use std::cell::RefCell;

use flate2::{Compress, Compression, FlushCompress};
use hdrhistogram::serialization::{Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Highest value tracked: ten minutes in µs; larger values are clamped (and still counted).
const MAX_US: u64 = 600_000_000;

/// A µs histogram whose `record` never fails.
#[derive(Clone, Debug)]
pub struct LatencyHist(Histogram<u64>);

impl Default for LatencyHist {
    /// Three significant figures: the interval-wide histograms.
    fn default() -> Self {
        LatencyHist::with_sigfigs(3)
    }
}

impl LatencyHist {
    /// Two significant figures (about 20 KiB instead of 160): one per server.
    pub fn per_server() -> Self {
        LatencyHist::with_sigfigs(2)
    }

    fn with_sigfigs(sigfigs: u8) -> Self {
        // Constant bounds that hdrhistogram accepts; a failure would be a programming error
        // that every test building a histogram catches.
        LatencyHist(Histogram::new_with_bounds(1, MAX_US, sigfigs).expect("valid histogram bounds"))
    }

    #[inline]
    pub fn record_ns(&mut self, ns: u64) {
        self.0.saturating_record((ns / 1000).min(MAX_US));
    }

    pub fn merge(&mut self, other: &LatencyHist) {
        // Same bounds on both sides, so `add` cannot fail; fall back to per-value adds anyway.
        if self.0.add(&other.0).is_err() {
            for v in other.0.iter_recorded() {
                self.0
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn reset(&mut self) {
        self.0.reset();
    }

    pub fn inner(&self) -> &Histogram<u64> {
        &self.0
    }

    /// Decodes a histogram exported as `hdr`, with the precision it was written with (3
    /// significant figures interval-wide, 2 per server), so merging decoded histograms gives
    /// the same buckets as merging the originals.
    pub fn from_base64(text: &str) -> Option<LatencyHist> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        let mut de = hdrhistogram::serialization::Deserializer::new();
        let h: Histogram<u64> = de.deserialize(&mut bytes.as_slice()).ok()?;
        Some(LatencyHist(h))
    }

    /// Significant figures kept.
    pub fn sigfigs(&self) -> u8 {
        self.0.sigfig()
    }

    /// Each recorded bucket as (highest value it stands for, count), lowest first.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
    }

    pub fn summary(&self) -> HistSummary {
        let h = &self.0;
        if h.is_empty() {
            return HistSummary::default();
        }
        let hdr = HDR_WRITER
            .with(|w| w.borrow_mut().encode(h))
            .unwrap_or_default();
        HistSummary {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            hdr,
        }
    }
}

/// Sub-buckets per octave of [`FastHist`]: values within 1.6 % (2 significant figures).
const FAST_SUB_BITS: u32 = 6;
const FAST_SUB: usize = 1 << FAST_SUB_BITS;
/// Octaves above the exact range, up to [`MAX_US`] (2^30 µs > 600 s).
const FAST_BUCKETS: usize = FAST_SUB + (30 - FAST_SUB_BITS as usize) * FAST_SUB;

/// A µs histogram that records in a few instructions, for latencies sampled on many packets
/// (RTT legs, response times): exact below 64 µs, 64 buckets per octave above (within 1.6 %),
/// clamped at ten minutes. Workers record into it; the merger sums workers' (exactly: same
/// buckets) and makes a [`LatencyHist`] only for what a record shows ([`FastHist::add_to`],
/// each bucket at its middle). It keeps the range of buckets it touched, so summing, copying
/// out and emptying cost what was recorded, not its size.
#[derive(Clone, Debug)]
pub struct FastHist {
    counts: Box<[u32; FAST_BUCKETS]>,
    len: u64,
    /// Touched buckets: `lo..=hi`; `lo > hi` when none.
    lo: usize,
    hi: usize,
}

impl Default for FastHist {
    fn default() -> Self {
        FastHist {
            counts: Box::new([0; FAST_BUCKETS]),
            len: 0,
            lo: FAST_BUCKETS,
            hi: 0,
        }
    }
}

impl FastHist {
    fn index(us: u64) -> usize {
        let us = us.min(MAX_US);
        if us < FAST_SUB as u64 {
            return us as usize;
        }
        let octave = 63 - us.leading_zeros();
        let sub = (us >> (octave - FAST_SUB_BITS)) as usize & (FAST_SUB - 1);
        (FAST_SUB + (octave - FAST_SUB_BITS) as usize * FAST_SUB + sub).min(FAST_BUCKETS - 1)
    }

    /// The middle of bucket `i`'s values.
    fn middle(i: usize) -> u64 {
        if i < FAST_SUB {
            return i as u64;
        }
        let octave = (i - FAST_SUB) / FAST_SUB + FAST_SUB_BITS as usize;
        let sub = ((i - FAST_SUB) % FAST_SUB) as u64;
        let width = 1u64 << (octave - FAST_SUB_BITS as usize);
        (FAST_SUB as u64 + sub) * width + width / 2
    }

    #[inline]
    pub fn record_ns(&mut self, ns: u64) {
        let i = Self::index(ns / 1000);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.len += 1;
        self.lo = self.lo.min(i);
        self.hi = self.hi.max(i);
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn count(&self) -> u64 {
        self.len
    }

    fn touched(&self) -> std::ops::Range<usize> {
        if self.lo > self.hi {
            0..0
        } else {
            self.lo..self.hi + 1
        }
    }

    /// Adds `other`'s samples.
    pub fn merge(&mut self, other: &FastHist) {
        let range = other.touched();
        for i in range.clone() {
            self.counts[i] = self.counts[i].saturating_add(other.counts[i]);
        }
        if !range.is_empty() {
            self.lo = self.lo.min(range.start);
            self.hi = self.hi.max(range.end - 1);
        }
        self.len += other.len;
    }

    /// Records every sample in `into`.
    pub fn add_to(&self, into: &mut LatencyHist) {
        for i in self.touched() {
            let c = self.counts[i];
            if c != 0 {
                into.0
                    .saturating_record_n(Self::middle(i).max(1), u64::from(c));
            }
        }
    }

    /// Empties it, keeping its memory.
    pub fn reset(&mut self) {
        let range = self.touched();
        self.counts[range].fill(0);
        self.len = 0;
        self.lo = FAST_BUCKETS;
        self.hi = 0;
    }
}

/// Writes the HdrHistogram V2 compressed form ("deflate": a cookie, the length, a zlib stream
/// of the V2 encoding, as hdrhistogram's `V2DeflateSerializer` writes it, byte for byte) with
/// its buffers and its compressor kept between histograms.
struct HdrWriter {
    v2: V2Serializer,
    plain: Vec<u8>,
    out: Vec<u8>,
    zlib: Compress,
}

/// The HdrHistogram cookie of a V2 deflate-compressed histogram.
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9304 | 0x10;

thread_local! {
    static HDR_WRITER: RefCell<HdrWriter> = RefCell::new(HdrWriter {
        v2: V2Serializer::new(),
        plain: Vec::new(),
        out: Vec::new(),
        zlib: Compress::new(Compression::default(), true),
    });
}

impl HdrWriter {
    /// `h` in base64 of the V2 deflate form; `None` if it cannot be encoded.
    fn encode(&mut self, h: &Histogram<u64>) -> Option<String> {
        self.plain.clear();
        self.v2.serialize(h, &mut self.plain).ok()?;
        self.out.clear();
        self.out
            .extend_from_slice(&V2_COMPRESSED_COOKIE.to_be_bytes());
        self.out.extend_from_slice(&[0; 4]);
        self.zlib.reset();
        loop {
            self.out.reserve(self.plain.len() / 2 + 64);
            let read = usize::try_from(self.zlib.total_in()).ok()?;
            let status = self
                .zlib
                .compress_vec(&self.plain[read..], &mut self.out, FlushCompress::Finish)
                .ok()?;
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        let len = u32::try_from(self.out.len() - 8).ok()?;
        self.out[4..8].copy_from_slice(&len.to_be_bytes());
        Some(base64::engine::general_purpose::STANDARD.encode(&self.out))
    }
}

/// What the JSON carries for one histogram; all values in µs. `hdr` is the HdrHistogram V2
/// compressed form in base64 (empty when `count` is 0), which [`LatencyHist::from_base64`]
/// reads back at the precision it was written with.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Default, Clone, PartialEq)]
pub struct HistSummary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub hdr: String,
}

impl HistSummary {
    /// The histogram `hdr` stands for: `Ok(None)` when empty, `Err(())` when `hdr` does not
    /// decode although `count` says there were values.
    #[allow(clippy::result_unit_err)]
    pub fn decode(&self) -> Result<Option<LatencyHist>, ()> {
        match self.hdr.as_str() {
            "" if self.count == 0 => Ok(None),
            "" => Err(()),
            text => LatencyHist::from_base64(text).map(Some).ok_or(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_histogram_keeps_its_precision_through_merge_and_reset() {
        let values_us = [
            0u64,
            1,
            63,
            64,
            65,
            1000,
            20_000,
            20_300,
            5_000_000,
            900_000_000,
        ];
        let (mut a, mut b) = (FastHist::default(), FastHist::default());
        for (i, v) in values_us.iter().enumerate() {
            if i % 2 == 0 {
                a.record_ns(v * 1000)
            } else {
                b.record_ns(v * 1000)
            }
        }
        a.merge(&b);
        let mut h = LatencyHist::default();
        a.add_to(&mut h);
        assert_eq!(
            (a.count(), h.count()),
            (values_us.len() as u64, values_us.len() as u64)
        );
        let mut got: Vec<u64> = h.buckets().flat_map(|(v, n)| vec![v; n as usize]).collect();
        got.sort_unstable();
        for (want, got) in values_us.iter().map(|&v| v.clamp(1, MAX_US)).zip(got) {
            assert!(
                got.abs_diff(want) * 1000 <= want * 16 + 1000,
                "{want} {got}"
            );
        }
        a.reset();
        assert!(a.is_empty() && a.counts.iter().all(|&c| c == 0));
        let mut empty = LatencyHist::default();
        a.add_to(&mut empty);
        assert!(empty.is_empty());
    }

    /// What hdrhistogram's own serializer writes, for comparison.
    fn reference_hdr(h: &LatencyHist) -> String {
        let mut buf = Vec::new();
        hdrhistogram::serialization::V2DeflateSerializer::new()
            .serialize(&h.0, &mut buf)
            .unwrap();
        base64::engine::general_purpose::STANDARD.encode(&buf)
    }

    #[test]
    fn the_hdr_form_is_hdrhistograms_byte_for_byte() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for n in [1u64, 10, 1000, 50_000] {
            for hist in [LatencyHist::default(), LatencyHist::per_server()] {
                let mut h = hist;
                for _ in 0..n {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    h.record_ns(state % 2_000_000_000);
                }
                // Twice: the reused compressor writes the same as a fresh one.
                assert_eq!(h.summary().hdr, reference_hdr(&h), "{n} values");
                assert_eq!(h.summary().hdr, reference_hdr(&h), "{n} values, again");
            }
        }
    }

    #[test]
    fn records_in_microseconds_and_round_trips_through_hdr() {
        let mut h = LatencyHist::default();
        for us in 1..=1000u64 {
            h.record_ns(us * 1000 + 999);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.min, 1);
        assert_eq!(s.max, 1000);
        assert_eq!(s.p50, 500);
        let back = LatencyHist::from_base64(&s.hdr).unwrap();
        assert_eq!(back.summary(), s);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = LatencyHist::default();
        let mut b = LatencyHist::default();
        a.record_ns(10_000);
        b.record_ns(20_000);
        b.record_ns(u64::MAX);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.summary().max, a.inner().highest_equivalent(MAX_US));
    }

    #[test]
    fn decoding_keeps_the_precision_so_merged_decodes_equal_merged_originals() {
        let (mut a, mut b) = (LatencyHist::per_server(), LatencyHist::per_server());
        for i in 0..500u64 {
            a.record_ns(i * 7_919_000 % 90_000_000);
            b.record_ns(i * 104_729 % 3_000_000 + 1_000);
        }
        let mut decoded = LatencyHist::from_base64(&a.summary().hdr).unwrap();
        assert_eq!(decoded.sigfigs(), 2);
        decoded.merge(&LatencyHist::from_base64(&b.summary().hdr).unwrap());
        a.merge(&b);
        assert_eq!(decoded.summary().p99, a.summary().p99);
        assert_eq!(
            decoded.buckets().collect::<Vec<_>>(),
            a.buckets().collect::<Vec<_>>()
        );
        let (da, db) = (decoded.summary(), a.summary());
        assert_eq!(
            (da.count, da.min, da.p50, da.p90, da.max),
            (db.count, db.min, db.p50, db.p90, db.max)
        );
        assert!(LatencyHist::from_base64("not base64!").is_none());
        assert!(LatencyHist::from_base64("SElTVEZBQUFB").is_none());
    }
}
