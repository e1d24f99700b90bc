//! A flow worker's loop: messages from the feeders in, engine fed, interval figures out. With
//! one feeder (files, one RX queue) records go straight to the engine; with several they pass
//! through the capture-time merge first.

use crossbeam_channel::{Receiver, Sender};

use tcpulse_core::flow::anonymize::Anonymizer;
use tcpulse_core::flow::{Engine, WorkerInterval};

use super::merge::{Item, OrderedMerge};
use crate::dispatch::{Batch, ToWorker};

/// Items each feeder's lane holds while waiting for the other feeders: at 1 Mpps per queue,
/// 30 ms of traffic, longer than the capture threads' idle poll (10 ms).
const LANE_CAPACITY: usize = 32 * 1024;

/// Where a worker's interval figures go.
pub(super) struct Output<'a> {
    pub id: usize,
    pub results: &'a Sender<(usize, WorkerInterval)>,
    /// Shares the merger is done with, to fill again (their memory reused).
    pub returned: &'a Receiver<WorkerInterval>,
    /// Applied to every share before it leaves the worker (`--anonymize`).
    pub anonymizer: Option<&'a mut Anonymizer>,
}

pub(super) fn run(
    feeders: usize,
    engine: &mut Engine,
    rx: &Receiver<ToWorker>,
    recycle: &[Sender<Batch>],
    mut out: Output<'_>,
) {
    let mut state = Closing {
        feeders,
        closes: 0,
        finished: 0,
        reorder_overflow: 0,
    };
    if feeders == 1 {
        while let Ok(msg) = rx.recv() {
            let flow = match msg {
                ToWorker::Packets { feeder, batch, .. } => {
                    for rec in &batch {
                        engine.on_packet(rec);
                    }
                    give_back(batch, &recycle[feeder]);
                    Flow::Continue
                }
                ToWorker::Watermark { .. } => Flow::Continue,
                ToWorker::CloseInterval { end_ns, .. } => {
                    state.on_item(Item::Close(end_ns), engine, &mut out)
                }
                ToWorker::Finish { .. } => state.on_item(Item::Finish, engine, &mut out),
            };
            if flow == Flow::Stop {
                return;
            }
        }
        return;
    }

    let mut merge = OrderedMerge::new(feeders, LANE_CAPACITY);
    let mut flow = Flow::Continue;
    while let Ok(msg) = rx.recv() {
        let mut deliver = |item: Item| {
            if flow == Flow::Continue {
                flow = state.on_item(item, engine, &mut out);
            }
        };
        match msg {
            ToWorker::Packets {
                feeder,
                batch,
                through,
            } => {
                for rec in &batch {
                    merge.push(feeder, Item::Packet(*rec), &mut deliver);
                }
                merge.advance(feeder, through);
                give_back(batch, &recycle[feeder]);
            }
            ToWorker::Watermark { feeder, through } => merge.advance(feeder, through),
            ToWorker::CloseInterval { feeder, end_ns } => {
                merge.push(feeder, Item::Close(end_ns), &mut deliver);
            }
            ToWorker::Finish { feeder } => merge.push(feeder, Item::Finish, &mut deliver),
        }
        merge.drain(&mut deliver);
        state.reorder_overflow += std::mem::take(&mut merge.forced);
        if flow == Flow::Stop {
            return;
        }
    }
}

fn give_back(mut batch: Batch, to: &Sender<Batch>) {
    batch.clear();
    let _ = to.try_send(batch);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// Counts feeders' closes and finishes: an interval closes once every feeder still running
/// has closed it (they close the same intervals: the live run stops them all at one capture
/// time), the worker stops after the last feeder finished.
struct Closing {
    feeders: usize,
    closes: usize,
    finished: usize,
    reorder_overflow: u64,
}

impl Closing {
    fn on_item(&mut self, item: Item, engine: &mut Engine, out: &mut Output<'_>) -> Flow {
        match item {
            Item::Packet(rec) => {
                engine.on_packet(&rec);
                Flow::Continue
            }
            Item::Close(end_ns) => {
                self.closes += 1;
                if self.closes >= self.feeders - self.finished {
                    self.closes = 0;
                    engine.on_tick(end_ns);
                    if !self.hand_over(engine, out) {
                        return Flow::Stop;
                    }
                }
                Flow::Continue
            }
            Item::Finish => {
                self.finished += 1;
                if self.finished == self.feeders {
                    engine.finish();
                    self.hand_over(engine, out);
                    return Flow::Stop;
                }
                Flow::Continue
            }
        }
    }

    /// Sends the interval's figures; false when nobody listens any more.
    fn hand_over(&mut self, engine: &mut Engine, out: &mut Output<'_>) -> bool {
        let mut part = out.returned.try_recv().unwrap_or_default();
        engine.take_interval_into(&mut part);
        part.reorder_overflow = std::mem::take(&mut self.reorder_overflow);
        if let Some(a) = out.anonymizer.as_deref_mut() {
            a.apply(&mut part);
        }
        out.results.send((out.id, part)).is_ok()
    }
}
