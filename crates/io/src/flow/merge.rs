//! Capture-time order across feeders, inside one worker.
//!
//! With several RX queues, one flow's two directions may arrive on different queues (RSS is
//! not always symmetric) and so through different capture threads, each delivering in its own
//! rhythm. The engine must see a flow's packets in capture order (a SYN/ACK before its SYN
//! breaks the handshake), so a worker fed by several feeders keeps one lane per feeder and
//! releases the earliest head only once every other feeder has either something queued or has
//! said (its watermark) that nothing earlier will come. Lanes have a fixed capacity; when one
//! is full the earliest head goes out anyway and is counted (`reorder_overflow`), so a stalled
//! feeder can delay but never block or grow a worker.

use std::collections::VecDeque;

use tcpulse_core::decode::PacketRecord;

/// What a feeder sends, in the order it sends it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Item {
    Packet(PacketRecord),
    /// The feeder closed the interval ending at this capture time.
    Close(u64),
    /// The feeder has no more input.
    Finish,
}

impl Item {
    /// Merge order: capture time, and an interval's close before packets of the same
    /// nanosecond (which belong to the next interval).
    fn key(&self) -> (u64, u8) {
        match self {
            Item::Close(end) => (*end, 0),
            Item::Packet(rec) => (rec.ts_ns, 1),
            Item::Finish => (u64::MAX, 0),
        }
    }
}

struct Lane {
    items: VecDeque<Item>,
    /// Capture time before which this feeder will send nothing more (as far as it knows).
    through: u64,
    finished: bool,
}

pub(super) struct OrderedMerge {
    lanes: Vec<Lane>,
    capacity: usize,
    /// Items released before their turn because a lane was full.
    pub forced: u64,
}

impl OrderedMerge {
    /// One lane per feeder, each holding at most `capacity` items (allocated now).
    pub fn new(feeders: usize, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        OrderedMerge {
            lanes: (0..feeders)
                .map(|_| Lane {
                    items: VecDeque::with_capacity(capacity),
                    through: 0,
                    finished: false,
                })
                .collect(),
            capacity,
            forced: 0,
        }
    }

    /// Queues `item` from `feeder`. When that lane is full, first releases the earliest item
    /// of all lanes to `out`, so memory stays fixed.
    pub fn push(&mut self, feeder: usize, item: Item, out: &mut impl FnMut(Item)) {
        while self.lanes[feeder].items.len() >= self.capacity {
            match self.pop(true) {
                Some(early) => {
                    self.forced += 1;
                    out(early);
                }
                None => break,
            }
        }
        let lane = &mut self.lanes[feeder];
        lane.through = lane.through.max(item.key().0);
        lane.items.push_back(item);
    }

    /// The feeder says nothing earlier than `ts` will come from it.
    pub fn advance(&mut self, feeder: usize, ts: u64) {
        let lane = &mut self.lanes[feeder];
        lane.through = lane.through.max(ts);
    }

    /// Releases every item whose turn has come, in merge order.
    pub fn drain(&mut self, out: &mut impl FnMut(Item)) {
        while let Some(item) = self.pop(false) {
            out(item);
        }
    }

    /// The earliest head of all lanes if its turn has come (or regardless when `force`).
    fn pop(&mut self, force: bool) -> Option<Item> {
        let mut best: Option<(usize, (u64, u8))> = None;
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            if let Some(Item::Finish) = lane.items.front() {
                // Nothing follows a Finish: it releases at once and the lane stops holding
                // others back.
                lane.items.pop_front();
                lane.finished = true;
                lane.through = u64::MAX;
                return Some(Item::Finish);
            }
            if let Some(head) = lane.items.front() {
                let key = head.key();
                if best.is_none_or(|(_, k)| key < k) {
                    best = Some((i, key));
                }
            }
        }
        let (lane, (ts, _)) = best?;
        let waiting = self
            .lanes
            .iter()
            .any(|l| !l.finished && l.items.is_empty() && l.through < ts);
        if waiting && !force {
            return None;
        }
        self.lanes[lane].items.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ts: u64) -> Item {
        Item::Packet(PacketRecord {
            ts_ns: ts,
            ..PacketRecord::default()
        })
    }

    fn times(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Packet(r) => r.ts_ns.to_string(),
                Item::Close(e) => format!("close{e}"),
                Item::Finish => "finish".into(),
            })
            .collect()
    }

    #[test]
    fn holds_a_lane_until_the_other_feeder_has_spoken() {
        let mut m = OrderedMerge::new(2, 16);
        let mut out = Vec::new();
        m.push(0, packet(10), &mut |i| out.push(i));
        m.push(0, packet(30), &mut |i| out.push(i));
        m.drain(&mut |i| out.push(i));
        assert!(
            out.is_empty(),
            "feeder 1 may still send something before 10"
        );
        m.push(1, packet(20), &mut |i| out.push(i));
        m.drain(&mut |i| out.push(i));
        assert_eq!(times(&out), ["10", "20"], "30 waits: feeder 1 may send 25");
        m.advance(1, 40);
        m.drain(&mut |i| out.push(i));
        assert_eq!(times(&out), ["10", "20", "30"]);
    }

    #[test]
    fn closes_come_before_packets_of_the_same_nanosecond_and_finish_frees_the_lane() {
        let mut m = OrderedMerge::new(2, 16);
        let mut out = Vec::new();
        for (f, item) in [
            (0, packet(5)),
            (0, Item::Close(100)),
            (0, packet(100)),
            (1, packet(99)),
            (1, Item::Close(100)),
            (1, Item::Finish),
        ] {
            m.push(f, item, &mut |i| out.push(i));
        }
        m.drain(&mut |i| out.push(i));
        assert_eq!(
            times(&out),
            ["5", "99", "close100", "close100", "finish", "100"]
        );
    }

    #[test]
    fn a_full_lane_forces_the_earliest_out_and_counts_it() {
        let mut m = OrderedMerge::new(2, 2);
        let mut out = Vec::new();
        for ts in [1, 2, 3, 4] {
            m.push(0, packet(ts), &mut |i| out.push(i));
        }
        assert_eq!(times(&out), ["1", "2"]);
        assert_eq!(m.forced, 2);
    }
}
