//! tcpulse's side that touches the kernel or runs threads: capture sources, the pipeline's
//! threads, sinks and transmit, over the pure core (`tcpulse-core`).
//!
//! Pipeline stages, lowest first: [`capture`] (frames from files and live queues) →
//! [`dispatch`] (decode, interval clock, symmetric hash, batches to workers) → [`flow`] (the
//! worker threads, each driving one core engine) → [`sink`] (where records go). [`pipeline`]
//! wires them together for a file or live run, with the merger thread that runs the core's
//! `metrics` stage on every worker's share of an interval; [`transmit`] puts generated frames
//! on an interface; [`sys`] holds the system calls.

pub mod capture;
pub mod dispatch;
pub mod flow;
pub mod pipeline;
pub mod sink;
pub mod sys;
pub mod transmit;
