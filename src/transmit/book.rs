//! Frames serialised once, back to back in one buffer, with their scenario times: sending
//! then touches nothing but this buffer and the ring.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;

use crate::gen::{Stamped, TcpFrame};

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
    /// Serialises `frames` (in time order) as Ethernet frames, each assigned one of `queues`
    /// TX queues by `spread`.
    pub fn from_stamped(frames: &[Stamped], queues: u16, spread: Spread) -> FrameBook {
        let mut book = FrameBook::default();
        let mut one = Vec::with_capacity(2048);
        for s in frames {
            one.clear();
            s.frame.write_ethernet(&mut one);
            book.push(s.ts_ns, &one, queue_of(&s.frame, queues, spread));
        }
        book
    }

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

fn queue_of(f: &TcpFrame, queues: u16, spread: Spread) -> u16 {
    if queues <= 1 {
        return 0;
    }
    let (a, b) = ((f.src, f.sport), (f.dst, f.dport));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::Scenario;

    #[test]
    fn flows_stay_on_one_queue_or_split_by_direction() {
        let g = Scenario::mixed(3, 200).generate();
        let by_flow = FrameBook::from_stamped(&g.frames, 2, Spread::Flow);
        let by_dir = FrameBook::from_stamped(&g.frames, 2, Spread::Direction);
        let mut flow_queue = std::collections::HashMap::new();
        let mut dir_queues = std::collections::HashMap::new();
        for (i, s) in g.frames.iter().enumerate() {
            let f = &s.frame;
            let key = if (f.src, f.sport) <= (f.dst, f.dport) {
                ((f.src, f.sport), (f.dst, f.dport))
            } else {
                ((f.dst, f.dport), (f.src, f.sport))
            };
            assert_eq!(
                *flow_queue.entry(key).or_insert(by_flow.queue(i)),
                by_flow.queue(i)
            );
            let from_low = (f.src, f.sport) == key.0;
            dir_queues
                .entry(key)
                .or_insert_with(std::collections::HashMap::new)
                .insert(from_low, by_dir.queue(i));
        }
        let used: std::collections::HashSet<u16> = flow_queue.values().copied().collect();
        assert_eq!(used.len(), 2, "flows spread over both queues");
        // A connection with frames both ways has each direction on its own queue.
        let both_ways: Vec<_> = dir_queues.values().filter(|d| d.len() == 2).collect();
        assert!(both_ways.len() > 150, "{}", both_ways.len());
        assert!(both_ways.iter().all(|d| d[&true] != d[&false]));
    }
}
