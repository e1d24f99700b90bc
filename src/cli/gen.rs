//! `tcpulse gen`: a synthetic capture plus its ground truth.

use std::fs::File;
use std::io::BufWriter;

use super::{exit, GenArgs};
use crate::gen::{scenario::Scenario, write_pcap, write_truth_lines};

pub fn run(args: &GenArgs) -> i32 {
    let mut scenario = Scenario::mixed(args.seed, args.connections);
    scenario.arrival_spread_ns = args.spread.saturating_mul(1_000_000_000).max(1);
    let truths = match write_pcap(&scenario, &args.out) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tcpulse: cannot write {}: {e}", args.out.display());
            return exit::OUTPUT_FAILED;
        }
    };
    if let Some(path) = &args.truth {
        let written =
            File::create(path).and_then(|f| write_truth_lines(&truths, BufWriter::new(f)));
        if let Err(e) = written {
            eprintln!("tcpulse: cannot write {}: {e}", path.display());
            return exit::OUTPUT_FAILED;
        }
    }
    exit::OK
}
