//! tcpulse: a passive TCP health monitor. This crate is the command line over the pipeline
//! (`tcpulse-io`, over the pure `tcpulse-core`): the commands (`cli`), the configuration file
//! (`config`), reading records back (`view`: merge, report, plot) and synthetic traffic with
//! known answers (`gen`). See ARCHITECTURE.md.
//!
//! Lowest first: `config` → `gen` → `view` → `cli`; none of them names a higher one.

pub mod cli;
pub mod config;
pub mod gen;
pub mod view;
