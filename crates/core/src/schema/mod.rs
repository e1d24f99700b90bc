//! The records tcpulse writes, as types: interval records and flow records, with the event
//! counters and latency histograms they carry. Every writer and every reader goes through
//! these types (docs/schema.md).

pub mod counters;
pub mod flow;
pub mod hist;
pub mod interval;
