//! From decoded records to flow workers: the symmetric hash picks the worker, records travel
//! in batches over bounded crossbeam channels, and interval boundaries travel in-band so every
//! worker closes the same intervals on capture time. Several feeders (one per capture thread)
//! may feed the same workers; a worker closes an interval once every feeder has closed it.
//!
//! Batches are recycled through a return channel, so steady state allocates nothing. A worker
//! fed by several feeders merges them in capture-time order (`merge.rs`); every message carries
//! the feeder's watermark for that.

pub mod clock;
pub mod ingest;
mod merge;
mod worker;

use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::decode::PacketRecord;
use crate::flow::{shard_of, Engine, FlowConfig, FlowHasher, WorkerInterval};
use crate::metrics::anonymize::Anonymizer;

/// Records per batch: large enough to amortise channel costs, small enough to stay in L1/L2.
pub const BATCH: usize = 256;
/// Messages (batches, mostly) in flight per worker. Files wait for the worker, so a short queue
/// is enough; live capture cannot wait, and a worker pauses now and then (the timeout scan of
/// a full table at each interval end takes tens of ms with a million flows): 512 messages hold
/// about 300 ms at 400 k records/s.
fn queue_depth(mode: Backpressure) -> usize {
    match mode {
        Backpressure::Block => 64,
        Backpressure::Drop => 512,
    }
}

pub type Batch = Vec<PacketRecord>;

enum ToWorker {
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

/// The flow worker threads. Each hands its interval figures to `results`, in order.
pub struct Workers {
    handles: Vec<JoinHandle<()>>,
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

impl Workers {
    /// Starts `workers` threads, each owning an engine with `cfg` (capacity per worker), fed by
    /// `feeders` producers. With an `anonymize` key, every address in what the workers hand
    /// over is anonymised first (prefix-preserving, the same mapping in every worker).
    pub fn start(
        workers: usize,
        feeders: usize,
        cfg: &FlowConfig,
        mode: Backpressure,
        anonymize: Option<[u8; 32]>,
        results: &Sender<(usize, WorkerInterval)>,
    ) -> std::io::Result<(Workers, Vec<Feeder>)> {
        let (workers, feeders) = (workers.max(1), feeders.max(1));
        let depth = queue_depth(mode);
        let mut recycle_tx = Vec::with_capacity(feeders);
        let mut recycle_rx = Vec::with_capacity(feeders);
        for _ in 0..feeders {
            let (tx, rx) = bounded::<Batch>(depth * workers + workers);
            for _ in 0..depth {
                let _ = tx.try_send(Vec::with_capacity(BATCH));
            }
            recycle_tx.push(tx);
            recycle_rx.push(rx);
        }
        let mut inputs = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for id in 0..workers {
            let (tx, rx) = bounded::<ToWorker>(depth);
            let mut engine = Engine::new(cfg.clone());
            let (results, recycle) = (results.clone(), recycle_tx.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("tcpulse-flow-{id}"))
                    .spawn(move || {
                        let mut anonymizer = anonymize.map(|key| Anonymizer::new(&key));
                        let out = worker::Output {
                            id,
                            results: &results,
                            anonymizer: anonymizer.as_mut(),
                        };
                        worker::run(feeders, &mut engine, &rx, &recycle, out);
                    })?,
            );
            inputs.push(tx);
        }
        let feeders = recycle_rx
            .into_iter()
            .enumerate()
            .map(|(id, recycled)| Feeder {
                id,
                inputs: inputs.clone(),
                hasher: cfg.hasher.clone(),
                pending: (0..workers).map(|_| Vec::with_capacity(BATCH)).collect(),
                recycled,
                mode,
                ordered: feeders > 1,
                through: 0,
                told: vec![0; workers],
                ring_full_drops: 0,
                ring_full_total: 0,
            })
            .collect();
        Ok((Workers { handles }, feeders))
    }

    /// Waits for the workers, which stop once every feeder has finished.
    pub fn join(self) {
        for h in self.handles {
            let _ = h.join();
        }
    }
}

impl Feeder {
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
