//! The flow workers: one thread per shard, each owning one core [`Engine`], fed by every
//! feeder (`crate::dispatch`) and handing its share of each interval to the merger
//! (`crate::metrics`). A worker fed by several feeders merges them in capture-time order
//! (`merge.rs`).

mod merge;
mod worker;

use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender};
use tcpulse_core::flow::anonymize::Anonymizer;
use tcpulse_core::flow::{Engine, FlowConfig, WorkerInterval};

use crate::dispatch::{queue_depth, Backpressure, Batch, Feeder, ToWorker, BATCH};

/// The flow worker threads. Each hands its interval figures to `results`, in order, and
/// takes back through its [`ShareReturn`] the shares the merger is done with.
pub struct Workers {
    handles: Vec<JoinHandle<()>>,
}

/// Where the merger hands each worker's shares back, emptied, so the next interval reuses
/// their memory. Full or closed: the share is dropped, and the worker makes a new one.
#[derive(Clone)]
pub struct ShareReturn(Vec<Sender<WorkerInterval>>);

impl ShareReturn {
    /// Gives worker `id`'s share back.
    pub fn give_back(&self, id: usize, part: WorkerInterval) {
        if let Some(tx) = self.0.get(id) {
            let _ = tx.try_send(part);
        }
    }
}

/// Shares in flight back to one worker: the merger frees one per interval.
const RETURNED_SHARES: usize = 2;

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
    ) -> std::io::Result<(Workers, Vec<Feeder>, ShareReturn)> {
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
        let mut returns = Vec::with_capacity(workers);
        for id in 0..workers {
            let (tx, rx) = bounded::<ToWorker>(depth);
            let (return_tx, returned) = bounded::<WorkerInterval>(RETURNED_SHARES);
            returns.push(return_tx);
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
                            returned: &returned,
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
            .map(|(id, recycled)| {
                let (inputs, hasher) = (inputs.clone(), cfg.hasher.clone());
                Feeder::new(id, feeders, inputs, hasher, recycled, mode)
            })
            .collect();
        Ok((Workers { handles }, feeders, ShareReturn(returns)))
    }

    /// Waits for the workers, which stop once every feeder has finished.
    pub fn join(self) {
        for h in self.handles {
            let _ = h.join();
        }
    }
}
