//! Frames serialised once, back to back in one buffer, with their scenario times: sending
//! then touches nothing but this buffer and the ring.

use std::ops::Range;

use crate::gen::Stamped;

#[derive(Default)]
pub struct FrameBook {
    bytes: Vec<u8>,
    frames: Vec<(u64, Range<usize>)>,
}

impl FrameBook {
    /// Serialises `frames` (in time order) as Ethernet frames.
    pub fn from_stamped(frames: &[Stamped]) -> FrameBook {
        let mut book = FrameBook::default();
        let mut one = Vec::with_capacity(2048);
        for s in frames {
            one.clear();
            s.frame.write_ethernet(&mut one);
            book.push(s.ts_ns, &one);
        }
        book
    }

    /// Appends one frame stamped `ts_ns`.
    pub fn push(&mut self, ts_ns: u64, frame: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(frame);
        self.frames.push((ts_ns, start..self.bytes.len()));
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Scenario time of frame `i`.
    pub fn time(&self, i: usize) -> u64 {
        self.frames[i].0
    }

    /// Bytes of frame `i`.
    pub fn frame(&self, i: usize) -> &[u8] {
        &self.bytes[self.frames[i].1.clone()]
    }

    /// Time from the first frame to the last.
    pub fn span_ns(&self) -> u64 {
        match (self.frames.first(), self.frames.last()) {
            (Some(a), Some(b)) => b.0.saturating_sub(a.0),
            _ => 0,
        }
    }
}
