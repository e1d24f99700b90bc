//! `tcpulse gen`: a synthetic capture plus its ground truth, written to a file, sent on an
//! interface, or both.

use std::fs::File;
use std::io::BufWriter;
use std::sync::atomic::AtomicBool;

use crate::capture::PcapWriter;

use super::{exit, GenArgs};
use crate::gen::{scenario::Scenario, write_frames, write_truth_lines};
use crate::transmit::{self, FrameBook, Pace, PacketRing, Spread, Transmit, TxError, XskTx};

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
        Some(iface) => {
            let spread = match args.tx_spread.as_str() {
                "direction" => Spread::Direction,
                _ => Spread::Flow,
            };
            let queues = u16::try_from(args.tx_queues.0.len()).unwrap_or(u16::MAX);
            send(
                args,
                iface,
                &FrameBook::from_stamped(&generated.frames, queues, spread),
            )
        }
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
