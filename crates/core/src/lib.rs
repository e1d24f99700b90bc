//! tcpulse's analysis core: frames in, records out, with no system calls, threads, files or
//! sockets; time comes with the packets.
//!
//! Pipeline stages, lowest first: [`decode`] (frames to TCP records) → [`flow`] (per-shard TCP
//! tracking) → [`metrics`] (workers' shares merged into interval records). [`schema`] is the
//! record vocabulary every stage writes and every reader reads; [`units`] reads durations and
//! lists as operators write them.

pub mod decode;
pub mod flow;
pub mod metrics;
pub mod schema;
pub mod units;
