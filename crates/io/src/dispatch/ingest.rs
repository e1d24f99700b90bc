//! One producer's side of the pipeline: frames in, interval boundaries kept on capture time,
//! capture statistics counted, decoded records handed to the feeder. The file reader and each
//! live capture thread own one.

use crossbeam_channel::Sender;

use super::clock::{ClockStep, IntervalClock};
use super::Feeder;
use tcpulse_core::decode::{decode_frame, DecodeError, LinkType};

use crate::capture::{CaptureFilter, Frame};
use tcpulse_core::schema::interval::CaptureStats;

/// One producer's share of an interval, sent to the merger when the interval closes.
pub struct IntervalMeta {
    pub feeder: usize,
    pub start_ns: u64,
    pub end_ns: u64,
    pub capture: CaptureStats,
}

pub struct Ingest {
    id: usize,
    clock: IntervalClock,
    pub stats: CaptureStats,
    feeder: Feeder,
    meta: Sender<IntervalMeta>,
    /// Count frames only, decode nothing (the bare receive rate).
    count_only: bool,
    /// The last link type seen and what it decodes as: sources rarely change it.
    link: Option<(u32, Option<LinkType>)>,
    /// `--filter`: frames it does not match are counted, not analysed.
    filter: Option<CaptureFilter>,
}

impl Ingest {
    pub fn new(id: usize, interval_ns: u64, feeder: Feeder, meta: Sender<IntervalMeta>) -> Self {
        Ingest {
            id,
            clock: IntervalClock::new(interval_ns),
            stats: CaptureStats::default(),
            feeder,
            meta,
            count_only: false,
            link: None,
            filter: None,
        }
    }

    /// Analyses only the frames `filter` matches (the others are counted as filtered out, and
    /// do not move the interval clock: as if a filtered copy of the capture was read).
    pub fn with_filter(mut self, filter: Option<CaptureFilter>) -> Self {
        self.filter = filter;
        self
    }

    pub fn count_only(mut self, yes: bool) -> Self {
        self.count_only = yes;
        self
    }

    /// Starts the interval clock at `ts` (live: the start time; files start at their first
    /// frame).
    pub fn start_at(&mut self, ts: u64) {
        let _ = self.clock.step(ts);
    }

    /// Takes one frame. Returns the link type if it is one tcpulse cannot decode (its frames
    /// are counted as `unsupported_link_type`).
    #[inline(always)]
    pub fn frame(&mut self, frame: &Frame<'_>) -> Option<u32> {
        if let Some(filter) = &mut self.filter {
            if !filter.matches(frame.link_type, frame.data) {
                self.stats.filtered_out += 1;
                return None;
            }
        }
        self.advance_to(frame.ts_ns);
        self.stats.packets += 1;
        self.stats.bytes += u64::from(frame.wire_len);
        if self.count_only {
            return None;
        }
        let link = match self.link {
            Some((n, link)) if n == frame.link_type => link,
            _ => {
                let link = LinkType::from_linktype(frame.link_type);
                self.link = Some((frame.link_type, link));
                link
            }
        };
        let Some(link) = link else {
            self.stats.count_error(DecodeError::UnsupportedLinkType);
            return Some(frame.link_type);
        };
        match decode_frame(link, frame.data, frame.wire_len, frame.ts_ns) {
            Ok(rec) => {
                self.stats.count_segment(&rec);
                self.feeder.push(rec);
            }
            Err(e) => self.stats.count_error(e),
        }
        None
    }

    /// Closes every interval that ends at or before `ts` (a packet's time, or live, the clock
    /// when no packet came).
    pub fn advance_to(&mut self, ts: u64) {
        loop {
            match self.clock.step(ts) {
                ClockStep::Same => return,
                ClockStep::Backwards => {
                    self.stats.ts_backwards += 1;
                    return;
                }
                ClockStep::Close { end } => {
                    self.close_interval(end);
                    if self.clock.advance(ts) {
                        self.stats.time_jumps += 1;
                    }
                }
            }
        }
    }

    /// Hands partly filled batches to the workers now.
    pub fn flush(&mut self) {
        self.feeder.flush();
    }

    /// Nothing stamped before `ts` will come from this producer any more (its queue was found
    /// empty then); lets workers merging several producers move on.
    pub fn vouch(&mut self, ts: u64) {
        self.feeder.vouch(ts);
    }

    /// Records dropped at full worker queues since the start.
    pub fn ring_full_total(&self) -> u64 {
        self.feeder.ring_full_total
    }

    /// The end of the current interval, once the clock has started.
    pub fn interval_end(&self) -> Option<u64> {
        self.clock.end()
    }

    fn close_interval(&mut self, end: u64) {
        let start = self.clock.start().unwrap_or(end);
        self.stats.drops.worker_ring_full += std::mem::take(&mut self.feeder.ring_full_drops);
        self.feeder.close_interval(end);
        let capture = std::mem::take(&mut self.stats);
        let _ = self.meta.send(IntervalMeta {
            feeder: self.id,
            start_ns: start,
            end_ns: end,
            capture,
        });
    }

    /// Ends the input: the current interval closes at `end` (or its natural end), flows still
    /// open end as `capture_end`.
    pub fn finish(mut self, end: Option<u64>) {
        let start = self.clock.start().unwrap_or(0);
        let end = end.or(self.clock.end()).unwrap_or(0);
        self.stats.drops.worker_ring_full += std::mem::take(&mut self.feeder.ring_full_drops);
        self.feeder.finish();
        let capture = std::mem::take(&mut self.stats);
        let _ = self.meta.send(IntervalMeta {
            feeder: self.id,
            start_ns: start,
            end_ns: end,
            capture,
        });
    }
}
