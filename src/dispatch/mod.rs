//! From decoded records to flow workers: the symmetric hash picks the worker, records travel
//! in batches over bounded crossbeam channels, and interval boundaries travel in-band so every
//! worker closes the same intervals on capture time.
//!
//! Batches are recycled through a return channel, so steady state allocates nothing.

pub mod clock;

use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::decode::PacketRecord;
use crate::flow::{shard_hash, shard_of, Engine, FlowConfig, WorkerInterval};

/// Records per batch: large enough to amortise channel costs, small enough to stay in L1/L2.
pub const BATCH: usize = 256;
/// Batches in flight per worker.
const QUEUE_DEPTH: usize = 64;

pub type Batch = Vec<PacketRecord>;

enum ToWorker {
    Packets(Batch),
    /// Close the interval ending at this capture time: expire flows, hand over figures.
    CloseInterval(u64),
    /// End of input: end every flow, hand over the last figures, stop.
    Finish,
}

/// What the dispatcher does when a worker's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait: files are read no faster than analysed, nothing is lost.
    Block,
    /// Drop the batch and count it: live capture must never stall on a slow worker.
    Drop,
}

/// Feeds W flow workers. Each worker hands its interval figures to `results`, in order.
pub struct Dispatcher {
    workers: Vec<Worker>,
    mode: Backpressure,
    /// Records dropped because a worker's queue was full (only in `Drop` mode).
    pub ring_full_drops: u64,
}

struct Worker {
    tx: Sender<ToWorker>,
    recycled: Receiver<Batch>,
    pending: Batch,
    handle: Option<JoinHandle<()>>,
}

impl Dispatcher {
    /// Starts `workers` threads, each owning an engine with `cfg` (capacity per worker).
    pub fn start(
        workers: usize,
        cfg: &FlowConfig,
        mode: Backpressure,
        results: Sender<(usize, WorkerInterval)>,
    ) -> std::io::Result<Dispatcher> {
        let workers = workers.max(1);
        let mut out = Vec::with_capacity(workers);
        for id in 0..workers {
            let (tx, rx) = bounded::<ToWorker>(QUEUE_DEPTH);
            let (recycle_tx, recycled) = bounded::<Batch>(QUEUE_DEPTH + 1);
            for _ in 0..QUEUE_DEPTH {
                let _ = recycle_tx.try_send(Vec::with_capacity(BATCH));
            }
            let mut engine = Engine::new(cfg.clone());
            let results = results.clone();
            let handle = std::thread::Builder::new()
                .name(format!("tcpulse-flow-{id}"))
                .spawn(move || run_worker(id, &mut engine, &rx, &recycle_tx, &results))?;
            out.push(Worker {
                tx,
                recycled,
                pending: Vec::with_capacity(BATCH),
                handle: Some(handle),
            });
        }
        Ok(Dispatcher {
            workers: out,
            mode,
            ring_full_drops: 0,
        })
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Queues one record for its flow's worker.
    #[inline]
    pub fn push(&mut self, rec: PacketRecord) {
        let w = match self.workers.len() {
            1 => 0,
            n => shard_of(shard_hash(&rec), n),
        };
        let worker = &mut self.workers[w];
        worker.pending.push(rec);
        if worker.pending.len() >= BATCH {
            self.send_pending(w);
        }
    }

    fn send_pending(&mut self, w: usize) {
        let worker = &mut self.workers[w];
        if worker.pending.is_empty() {
            return;
        }
        let fresh = worker
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
        let batch = std::mem::replace(&mut worker.pending, fresh);
        match self.mode {
            Backpressure::Block => {
                let _ = worker.tx.send(ToWorker::Packets(batch));
            }
            Backpressure::Drop => match worker.tx.try_send(ToWorker::Packets(batch)) {
                Ok(()) => {}
                Err(TrySendError::Full(ToWorker::Packets(b))) => {
                    self.ring_full_drops += b.len() as u64;
                    worker.pending = b;
                    worker.pending.clear();
                }
                Err(_) => {}
            },
        }
    }

    fn broadcast(&mut self, msg: impl Fn() -> ToWorker) {
        for w in 0..self.workers.len() {
            self.send_pending(w);
            // Control messages always block: they are rare and must not be lost.
            let _ = self.workers[w].tx.send(msg());
        }
    }

    /// Every worker closes the interval ending at `end_ns` (capture time).
    pub fn close_interval(&mut self, end_ns: u64) {
        self.broadcast(|| ToWorker::CloseInterval(end_ns));
    }

    /// Ends all flows and waits for the workers to stop.
    pub fn finish(mut self) {
        self.broadcast(|| ToWorker::Finish);
        for w in &mut self.workers {
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
    }
}

fn run_worker(
    id: usize,
    engine: &mut Engine,
    rx: &Receiver<ToWorker>,
    recycle: &Sender<Batch>,
    results: &Sender<(usize, WorkerInterval)>,
) {
    while let Ok(msg) = rx.recv() {
        match msg {
            ToWorker::Packets(mut batch) => {
                for rec in &batch {
                    engine.on_packet(rec);
                }
                batch.clear();
                let _ = recycle.try_send(batch);
            }
            ToWorker::CloseInterval(end_ns) => {
                engine.on_tick(end_ns);
                if results.send((id, engine.take_interval())).is_err() {
                    return;
                }
            }
            ToWorker::Finish => {
                engine.finish();
                let _ = results.send((id, engine.take_interval()));
                return;
            }
        }
    }
}
