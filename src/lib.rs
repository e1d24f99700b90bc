//! tcpulse: a passive TCP health monitor.
//!
//! The pipeline, one module per stage: `capture` (sources of frames) → `decode` (frames to
//! records) → `dispatch` (symmetric hash, rings to workers) → `flow` (per-shard TCP tracking) →
//! `metrics` (histograms, per-server aggregation) → `sink` (JSON output); `config` is the
//! configuration file. See ARCHITECTURE.md.

pub mod capture;
pub mod cli;
pub mod config;
pub mod decode;
pub mod dispatch;
pub mod flow;
pub mod gen;
pub mod metrics;
pub mod sink;
pub mod transmit;
pub mod view;
