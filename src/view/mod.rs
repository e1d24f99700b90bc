//! The operator's view of interval records: `merge` (many appliances and times into one record
//! per window), `report` (a table per server and a diagnosis) and `plot` (SVG charts).
//! Everything here reads records as JSON lines, never captures.

pub mod merge;
pub mod plot;
pub mod report;
