//! `tcpulse gen`: a synthetic capture plus its ground truth, written to a file, sent on an
//! interface, or both.

use std::fs::File;
use std::io::BufWriter;
use std::sync::atomic::AtomicBool;

use super::{exit, GenArgs};
use crate::gen::{scenario::Scenario, write_frames, write_truth_lines};
use crate::transmit::{self, FrameBook, Pace, PacketRing, Transmit, TxError, XskTx};

/// TX ring slots: a few ms of frames at the rates a veth reaches.
const TX_RING_FRAMES: usize = 4096;

pub fn run(args: &GenArgs) -> i32 {
    let mut scenario = Scenario::mixed(args.seed, args.connections);
    scenario.arrival_spread_ns = args.spread.saturating_mul(1_000_000_000).max(1);
    let generated = scenario.generate();
    if let Some(path) = &args.out {
        if let Err(e) = write_frames(&generated.frames, path) {
            eprintln!("tcpulse: cannot write {}: {e}", path.display());
            return exit::OUTPUT_FAILED;
        }
    }
    if let Some(path) = &args.truth {
        let written = File::create(path)
            .and_then(|f| write_truth_lines(&generated.truths, BufWriter::new(f)));
        if let Err(e) = written {
            eprintln!("tcpulse: cannot write {}: {e}", path.display());
            return exit::OUTPUT_FAILED;
        }
    }
    match &args.send {
        Some(iface) => send(args, iface, &FrameBook::from_stamped(&generated.frames)),
        None => exit::OK,
    }
}

fn send(args: &GenArgs, iface: &str, book: &FrameBook) -> i32 {
    let pace = match (args.pps, args.topspeed, args.speed) {
        (Some(pps), _, _) => Pace::Pps(pps.max(1)),
        (_, true, _) => Pace::TopSpeed,
        (_, _, Some(speed)) if speed.is_finite() && speed > 0.0 => Pace::Scenario { speed },
        (_, _, Some(speed)) => {
            eprintln!("tcpulse: --speed {speed}: give a positive factor");
            return exit::USAGE;
        }
        _ => Pace::Scenario { speed: 1.0 },
    };
    let xdp = || XskTx::open(iface, args.tx_queue, TX_RING_FRAMES as u32);
    let packet = || PacketRing::open(iface, TX_RING_FRAMES);
    let opened: Result<Box<dyn Transmit>, _> = match args.tx.as_str() {
        "xdp" => xdp().map(|t| Box::new(t) as _),
        "packet" => packet().map(|t| Box::new(t) as _),
        _ => match xdp() {
            Ok(t) => Ok(Box::new(t) as _),
            Err(e @ TxError::InterfaceMissing { .. }) => Err(e),
            Err(e) => {
                eprintln!("tcpulse: AF_XDP transmit unavailable ({e}); using AF_PACKET");
                packet().map(|t| Box::new(t) as _)
            }
        },
    };
    let mut tx = match opened {
        Ok(tx) => tx,
        Err(e) => {
            eprintln!("tcpulse: {e}");
            return exit::CAPTURE_SETUP;
        }
    };
    eprintln!(
        "tcpulse: sending {} frames x {} on {}",
        book.len(),
        args.loops,
        tx.describe()
    );
    let stop = AtomicBool::new(false);
    match transmit::send(tx.as_mut(), book, pace, args.loops, args.burst, &stop) {
        Ok(r) => {
            let stats = tx.stats();
            eprintln!(
                "tcpulse: sent {} frames ({} bytes) in {:.3} s: {:.0} frames/s, {} send calls, \
                 ring full {} times, batches late by at most {} us",
                r.frames,
                r.bytes,
                r.seconds,
                r.pps(),
                stats.syscalls,
                r.ring_full,
                r.max_late_ns / 1000
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("tcpulse: {e}");
            exit::CAPTURE_LOST
        }
    }
}
