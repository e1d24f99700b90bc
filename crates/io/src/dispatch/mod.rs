//! From decoded records to flow workers: the symmetric hash picks the worker, records travel
//! in batches over bounded crossbeam channels, and interval boundaries travel in-band so every
//! worker closes the same intervals on capture time. Several feeders (one per capture thread)
//! may feed the same workers; a worker closes an interval once every feeder has closed it.
//!
//! Batches are recycled through a return channel, so steady state allocates nothing. A worker
//! fed by several feeders merges them in capture-time order (`crate::flow`); every message
//! carries the feeder's watermark for that.

pub mod clock;
pub mod ingest;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tcpulse_core::decode::PacketRecord;
use tcpulse_core::flow::{shard_of, FlowHasher};

/// Records per batch: large enough to amortise channel costs, small enough to stay in L1/L2.
pub const BATCH: usize = 256;
/// Messages (batches, mostly) in flight per worker. Files wait for the worker, so a short queue
/// is enough; live capture cannot wait, and a worker pauses now and then (the timeout scan of
/// a full table at each interval end takes tens of ms with a million flows): 512 messages hold
/// about 300 ms at 400 k records/s.
pub fn queue_depth(mode: Backpressure) -> usize {
    match mode {
        Backpressure::Block => 64,
        Backpressure::Drop => 512,
    }
}

pub type Batch = Vec<PacketRecord>;

/// What travels from a feeder to a flow worker (`crate::flow`).
pub enum ToWorker {
    Packets {
        feeder: usize,
        batch: Batch,
        /// The feeder's watermark: it has sent everything stamped before this.
        through: u64,
    },
    /// The feeder's watermark moved without records for this worker.
    Watermark { feeder: usize, through: u64 },
    /// A feeder closed the interval ending at this capture time. The worker closes it (expires
    /// flows, hands over figures) once every feeder has.
    CloseInterval { feeder: usize, end_ns: u64 },
    /// A feeder reached the end of its input. After the last feeder: end every flow, hand over
    /// the last figures, stop.
    Finish { feeder: usize },
}

/// What a feeder does when a worker's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait: files are read no faster than analysed, nothing is lost.
    Block,
    /// Drop the batch and count it: live capture must never stall on a slow worker.
    Drop,
}

/// One producer's handle on every worker: a capture thread (live) or the file reader. Records
/// are batched per worker; batches come back for reuse through the feeder's own channel.
pub struct Feeder {
    id: usize,
    inputs: Vec<Sender<ToWorker>>,
    /// The workers' keyed flow hash: a flow's worker is as unpredictable as its table slot.
    hasher: FlowHasher,
    pending: Vec<Batch>,
    recycled: Receiver<Batch>,
    mode: Backpressure,
    /// Several feeders: workers merge them by capture time, so watermarks must flow.
    ordered: bool,
    /// Latest capture time this feeder has sent or vouched for.
    through: u64,
    /// The watermark each worker last heard.
    told: Vec<u64>,
    /// Records dropped because a worker's queue was full (only in `Drop` mode), since the
    /// interval record last took them, and in all.
    pub ring_full_drops: u64,
    pub ring_full_total: u64,
}

impl Feeder {
    /// Feeder `id` of `feeders` over the workers' `inputs`; batches come back on `recycled`.
    pub fn new(
        id: usize,
        feeders: usize,
        inputs: Vec<Sender<ToWorker>>,
        hasher: FlowHasher,
        recycled: Receiver<Batch>,
        mode: Backpressure,
    ) -> Feeder {
        let workers = inputs.len();
        Feeder {
            id,
            inputs,
            hasher,
            pending: (0..workers).map(|_| Vec::with_capacity(BATCH)).collect(),
            recycled,
            mode,
            ordered: feeders > 1,
            through: 0,
            told: vec![0; workers],
            ring_full_drops: 0,
            ring_full_total: 0,
        }
    }

    pub fn workers(&self) -> usize {
        self.inputs.len()
    }

    /// Queues one record for its flow's worker.
    #[inline]
    pub fn push(&mut self, rec: PacketRecord) {
        let w = match self.inputs.len() {
            1 => 0,
            n => shard_of(self.hasher.shard_hash(&rec), n),
        };
        self.through = self.through.max(rec.ts_ns);
        self.pending[w].push(rec);
        if self.pending[w].len() >= BATCH {
            self.send_pending(w);
        }
    }

    fn send_pending(&mut self, w: usize) {
        if self.pending[w].is_empty() {
            return;
        }
        let fresh = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let batch = std::mem::replace(&mut self.pending[w], fresh);
        let msg = ToWorker::Packets {
            feeder: self.id,
            batch,
            through: self.through,
        };
        let sent = match self.mode {
            Backpressure::Block => self.inputs[w].send(msg).is_ok(),
            Backpressure::Drop => match self.inputs[w].try_send(msg) {
                Ok(()) => true,
                Err(TrySendError::Full(ToWorker::Packets { mut batch, .. })) => {
                    self.ring_full_drops += batch.len() as u64;
                    self.ring_full_total += batch.len() as u64;
                    batch.clear();
                    self.pending[w] = batch;
                    false
                }
                Err(_) => false,
            },
        };
        if sent {
            self.told[w] = self.through;
        }
    }

    fn broadcast(&mut self, msg: impl Fn() -> ToWorker) {
        for w in 0..self.inputs.len() {
            self.send_pending(w);
            // Control messages always block: they are rare and must not be lost.
            let _ = self.inputs[w].send(msg());
        }
    }

    /// Sends every partly filled batch now, and the watermark to workers that got no batch.
    /// Live capture calls this every millisecond of capture time and whenever its queue is
    /// idle, so records reach workers soon and merges across feeders keep moving.
    pub fn flush(&mut self) {
        for w in 0..self.inputs.len() {
            if !self.pending[w].is_empty() {
                self.send_pending(w);
            } else if self.ordered && self.told[w] < self.through {
                let msg = ToWorker::Watermark {
                    feeder: self.id,
                    through: self.through,
                };
                // A full queue will hear it with the next flush.
                if self.inputs[w].try_send(msg).is_ok() {
                    self.told[w] = self.through;
                }
            }
        }
    }

    /// Vouches that nothing stamped before `ts` will come from this feeder any more (live: the
    /// queue was found empty at `ts`). Sent with the next flush.
    pub fn vouch(&mut self, ts: u64) {
        self.through = self.through.max(ts);
    }

    /// This feeder is done with the interval ending at `end_ns` (capture time).
    pub fn close_interval(&mut self, end_ns: u64) {
        let feeder = self.id;
        self.through = self.through.max(end_ns);
        self.broadcast(|| ToWorker::CloseInterval { feeder, end_ns });
    }

    /// This feeder has no more input.
    pub fn finish(mut self) {
        let feeder = self.id;
        self.broadcast(|| ToWorker::Finish { feeder });
    }
}
