//! Flow tracking: one engine per worker owns one shard of the flow table.

pub mod conn;
pub mod engine;
pub mod key;
pub mod record;
pub mod seq_analysis;
pub mod table;

pub use engine::{Engine, FlowConfig, WorkerInterval};
pub use key::{shard_of, FlowHasher, FlowKey};
pub use record::{Close, FlowRecord};
