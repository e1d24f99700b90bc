//! Flow tracking: one engine per worker owns one shard of the flow table.

pub mod anonymize;
pub mod conn;
pub mod engine;
pub mod key;
pub mod latency;
mod segment;
pub mod seq_analysis;
pub mod servers;
pub mod table;

pub use engine::{Engine, FlowConfig, RttSampleAt, WorkerInterval};
pub use key::{shard_of, FlowHasher, FlowKey, TunnelKeying};
