//! `tcpulse gen`: a synthetic capture plus its ground truth, written to a file, sent on an
//! interface, or both.

use std::fs::File;
use std::io::BufWriter;
use std::sync::atomic::AtomicBool;

use tcpulse_io::capture::PcapWriter;
use tcpulse_io::transmit::{self, FrameBook, Pace, PacketRing, Spread, Transmit, TxError, XskTx};

use super::{exit, GenArgs};
use crate::gen::scenario::{Scenario, MAX_CONNECTIONS};
use crate::gen::{file, frame_book, write_capture, write_frames, write_truth_lines, GroundTruth};

/// TX ring slots: a few ms of frames at the rates a veth reaches.
const TX_RING_FRAMES: usize = 4096;

pub fn run(args: &GenArgs) -> i32 {
    let scenario = match scenario(args) {
        Ok(scenario) => scenario,
        Err(e) => {
            eprintln!("tcpulse: {e}");
            return exit::USAGE;
        }
    };
    // Without sending, frames stream to the file: a flood of millions of SYNs is never held.
    let (truth, book) = match (&args.out, &args.send) {
        (Some(path), None) => match write_capture(&scenario, path) {
            Ok(truth) => (truth, None),
            Err(e) => {
                eprintln!("tcpulse: cannot write {}: {e}", path.display());
                return exit::OUTPUT_FAILED;
            }
        },
        (out, _) => {
            let generated = scenario.generate();
            if let Some(path) = out {
                if let Err(e) = write_frames(&generated.frames, path) {
                    eprintln!("tcpulse: cannot write {}: {e}", path.display());
                    return exit::OUTPUT_FAILED;
                }
            }
            let spread = match args.tx_spread.as_str() {
                "direction" => Spread::Direction,
                _ => Spread::Flow,
            };
            let queues = u16::try_from(args.tx_queues.0.len()).unwrap_or(u16::MAX);
            let book = frame_book(&generated.frames, queues, spread);
            let truth = GroundTruth {
                frames: generated.frames.len() as u64,
                truths: generated.truths,
                floods: generated.floods,
            };
            (truth, Some(book))
        }
    };
    if let Some(path) = &args.truth {
        let written = File::create(path)
            .and_then(|f| write_truth_lines(&truth.truths, &truth.floods, BufWriter::new(f)));
        if let Err(e) = written {
            eprintln!("tcpulse: cannot write {}: {e}", path.display());
            return exit::OUTPUT_FAILED;
        }
    }
    match (&args.send, book) {
        (Some(iface), Some(book)) => send(args, iface, &book),
        _ => exit::OK,
    }
}

/// The scenario file (or the default), under the command line's --connections, --seed and
/// --spread.
fn scenario(args: &GenArgs) -> Result<Scenario, String> {
    let mut scenario = match &args.scenario {
        Some(path) => file::load(path).map_err(|e| e.to_string())?,
        None => Scenario::mixed(file::DEFAULT_SEED, file::DEFAULT_CONNECTIONS),
    };
    if let Some(n) = args.connections {
        if n > MAX_CONNECTIONS {
            return Err(format!("--connections {n}: at most {MAX_CONNECTIONS}"));
        }
        scenario.connections = n;
    }
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if let Some(spread) = args.spread {
        scenario.arrival_spread_ns = spread.saturating_mul(1_000_000_000).max(1);
    }
    Ok(scenario)
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
    if let Err(e) = transmit::check_mtu(iface, book) {
        eprintln!("tcpulse: {e}");
        return exit::CAPTURE_SETUP;
    }
    let queues = &args.tx_queues.0;
    let xdp = || -> Result<Vec<Box<dyn Transmit>>, TxError> {
        queues
            .iter()
            .map(|&q| XskTx::open(iface, q, TX_RING_FRAMES as u32).map(|t| Box::new(t) as _))
            .collect()
    };
    let packet = || -> Result<Vec<Box<dyn Transmit>>, TxError> {
        if queues.len() > 1 {
            eprintln!("tcpulse: AF_PACKET cannot choose TX queues; sending on one socket");
        }
        Ok(vec![Box::new(PacketRing::open(iface, TX_RING_FRAMES)?)])
    };
    let opened = match args.tx.as_str() {
        "xdp" => xdp(),
        "packet" => packet(),
        _ => match xdp() {
            Ok(t) => Ok(t),
            Err(e @ TxError::InterfaceMissing { .. }) => Err(e),
            Err(e) => {
                eprintln!("tcpulse: AF_XDP transmit unavailable ({e}); using AF_PACKET");
                packet()
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
    for t in &tx {
        eprintln!("tcpulse: sending on {}", t.describe());
    }
    eprintln!("tcpulse: {} frames x {} loops", book.len(), args.loops);
    let stop = AtomicBool::new(false);
    let mut log = match &args.sent {
        Some(path) => match File::create(path)
            .and_then(|f| PcapWriter::new(BufWriter::with_capacity(1 << 20, f), 1, true))
        {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("tcpulse: cannot write {}: {e}", path.display());
                return exit::OUTPUT_FAILED;
            }
        },
        None => None,
    };
    let mut log_error = None;
    let mut record = |at: u64, frames: &[&[u8]]| {
        if let Some(w) = log.as_mut() {
            for f in frames {
                if let Err(e) = w.write_frame(at, f) {
                    log_error.get_or_insert(e);
                }
            }
        }
    };
    let on_sent: Option<transmit::OnSent<'_>> = args.sent.as_ref().map(|_| &mut record as _);
    let result = transmit::send(&mut tx, book, pace, args.loops, args.burst, &stop, on_sent);
    if let Some(e) = log_error.or_else(|| log.as_mut().and_then(|w| w.flush().err())) {
        eprintln!("tcpulse: cannot write the sent log: {e}");
        return exit::OUTPUT_FAILED;
    }
    match result {
        Ok(r) => {
            let syscalls: u64 = tx.iter().map(|t| t.stats().syscalls).sum();
            eprintln!(
                "tcpulse: sent {} frames ({} bytes) in {:.3} s: {:.0} frames/s, {} send calls, \
                 ring full {} times, batches late by at most {} us",
                r.frames,
                r.bytes,
                r.seconds,
                r.pps(),
                syscalls,
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
