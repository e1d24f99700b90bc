//! Measurements: event counters, latency histograms and per-server aggregation, merged across
//! workers at every interval flush.

pub mod anonymize;
pub mod counters;
pub mod hist;
pub mod interval;
pub mod servers;
pub mod watch;
