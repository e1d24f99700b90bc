//! Interval records: the workers' shares of an interval merged into one record (servers
//! chosen, histograms summed), and the servers of interest that are always listed.

pub mod interval;
pub mod watch;
