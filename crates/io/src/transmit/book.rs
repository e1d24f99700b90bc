//! Frames serialised once, back to back in one buffer, with their scenario times: sending
//! then touches nothing but this buffer and the ring.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;

use std::net::IpAddr;

/// How frames are spread over several TX queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// Each connection on one queue, by a symmetric hash (a NIC with symmetric RSS).
    Flow,
    /// Each connection's two directions on two different queues (asymmetric RSS: the
    /// monitor's hardest case).
    Direction,
}

#[derive(Default)]
pub struct FrameBook {
    bytes: Vec<u8>,
    frames: Vec<(u64, Range<usize>, u16)>,
}

impl FrameBook {
    /// Appends one frame stamped `ts_ns`, for TX queue index `queue`.
    pub fn push(&mut self, ts_ns: u64, frame: &[u8], queue: u16) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(frame);
        self.frames.push((ts_ns, start..self.bytes.len(), queue));
    }

    /// TX queue index of frame `i`.
    pub fn queue(&self, i: usize) -> u16 {
        self.frames[i].2
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

/// The TX queue, of `queues`, of a frame from `src` to `dst` (address, port) under `spread`.
pub fn queue_of(src: (IpAddr, u16), dst: (IpAddr, u16), queues: u16, spread: Spread) -> u16 {
    if queues <= 1 {
        return 0;
    }
    let (a, b) = (src, dst);
    let (low, high, from_low) = if a <= b { (a, b, true) } else { (b, a, false) };
    let mut h = DefaultHasher::new();
    (low, high).hash(&mut h);
    let base = h.finish() % u64::from(queues);
    let shift = match spread {
        Spread::Flow => 0,
        Spread::Direction => u64::from(!from_low),
    };
    ((base + shift) % u64::from(queues)) as u16
}
