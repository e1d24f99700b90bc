//! `tcpulse run`: live capture threads (one per RX queue) → the same workers, merger and
//! sinks as `analyze`. Capture time comes from the receive timestamps; intervals also close
//! on the clock when no packet comes, so a quiet link still reports.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tcpulse_io::capture::xdp::rx_queue_count;
use tcpulse_io::capture::CaptureFilter;
use tcpulse_io::dispatch::Backpressure;
use tcpulse_io::pipeline::live::{
    now_ns, open_queues, spawn_capture_threads, Control, LiveSettings,
};
use tcpulse_io::pipeline::Pipeline;
use tcpulse_io::sys::privilege;
use tcpulse_io::sys::{install_signal_handlers, stop_requested};

use super::{exit, fail_output, RunArgs};

pub fn run(args: &RunArgs) -> i32 {
    let p = &args.pipeline;
    // Before any thread starts, so every thread inherits it.
    if args.user.is_some() {
        if let Err(e) = privilege::forbid_new_privileges() {
            eprintln!("tcpulse: {e}");
            return exit::CAPTURE_SETUP;
        }
    }
    let queues = match &args.queues {
        Some(q) => q.0.clone(),
        None => (0..rx_queue_count(&args.iface).unwrap_or(1).max(1)).collect(),
    };
    let settings = match p.settings() {
        Ok(s) => s,
        Err(code) => return code,
    };
    // The filter was checked with the settings; AF_PACKET also runs it in the kernel.
    let kernel_filter = settings
        .filter
        .as_deref()
        .and_then(|e| CaptureFilter::new(e).ok())
        .and_then(|f| f.socket_program());
    let live = LiveSettings {
        iface: args.iface.clone(),
        capture: args.capture,
        queues_given: args.queues.is_some(),
        threads: args.threads,
        xdp_mode: args.xdp_mode,
        promisc: args.promisc,
        all_frames: args.all_frames,
        ring_frames: args.ring_frames,
        kernel_filter,
    };
    let sockets = match open_queues(&live, &queues) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tcpulse: {e}");
            return exit::CAPTURE_SETUP;
        }
    };
    for s in &sockets {
        eprintln!("tcpulse: capturing on {}", s.describe());
    }
    let started = Pipeline::start(
        &settings,
        sockets.len(),
        Backpressure::Drop,
        args.iface.clone(),
    );
    let (pipeline, ingests) = match started {
        Ok(started) => started,
        Err(e) => {
            eprintln!("tcpulse: {e}");
            return exit::OUTPUT_FAILED;
        }
    };
    if let Some(user) = &args.user {
        // Set-up is done (sockets bound, program attached, outputs open): become `user`.
        let keep: Vec<u32> = if sockets.iter().any(|s| s.detach_needs_net_admin()) {
            vec![privilege::CAP_NET_ADMIN]
        } else {
            Vec::new()
        };
        if let Err(e) = privilege::become_user(user, &keep) {
            eprintln!("tcpulse: {e}");
            let now = now_ns();
            for ingest in ingests {
                ingest.finish(Some(now));
            }
            return joined(pipeline, exit::CAPTURE_SETUP);
        }
        let names: Vec<&str> = keep.iter().map(|&c| privilege::cap_name(c)).collect();
        eprintln!(
            "tcpulse: running as {user} with capabilities: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    }

    install_signal_handlers();
    let control = Arc::new(Control::default());
    let cpus = args.cpus.as_ref().map(|c| c.0.as_slice());
    let threads = match spawn_capture_threads(sockets, ingests, cpus, args.no_analysis, &control) {
        Ok(threads) => threads,
        Err(e) => {
            eprintln!("tcpulse: cannot start a capture thread: {e}");
            Vec::new()
        }
    };

    let deadline = args.duration.map(|d| Instant::now() + d);
    let mut status = progress_wanted(args.progress).then(Status::new);
    let mut orphaned = false;
    while !control.stop.load(Ordering::SeqCst) {
        // With every sink closed for good (its only one, standard output, closed by its
        // reader) nothing can ever be reported again: stop, like a filter whose pipe closed.
        orphaned = pipeline.sinks.all_closed();
        if orphaned {
            eprintln!("tcpulse: every output is closed for good; stopping");
        }
        if orphaned
            || stop_requested()
            || control.lost.load(Ordering::Relaxed)
            || deadline.is_some_and(|d| Instant::now() >= d)
        {
            control.stop_now();
            break;
        }
        if let Some(s) = &mut status {
            s.show(&control);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if status.is_some() {
        eprintln!();
    }
    for t in threads {
        let _ = t.join();
    }
    let code = if control.lost.load(Ordering::SeqCst) {
        exit::CAPTURE_LOST
    } else if orphaned {
        exit::OUTPUT_FAILED
    } else {
        exit::OK
    };
    joined(pipeline, code)
}

/// Waits for the pipeline; `code`, or the output failure's.
fn joined(pipeline: Pipeline, code: i32) -> i32 {
    match pipeline.join() {
        Ok(()) => code,
        Err(e) => fail_output(&e),
    }
}

fn progress_wanted(flag: Option<bool>) -> bool {
    flag.unwrap_or_else(|| std::io::stderr().is_terminal())
}

/// The live status line on stderr (a terminal): rates and the monitor's own drops, twice a
/// second.
struct Status {
    last: Instant,
    frames: u64,
}

impl Status {
    fn new() -> Self {
        Status {
            last: Instant::now(),
            frames: 0,
        }
    }

    fn show(&mut self, ctl: &Control) {
        let now = Instant::now();
        let secs = now.duration_since(self.last).as_secs_f64();
        if secs < 0.5 {
            return;
        }
        let frames = ctl.frames.load(Ordering::Relaxed);
        eprint!(
            "\rtcpulse: {:>9.0} frames/s  {:>12} frames  own drops {:<10}",
            (frames - self.frames) as f64 / secs,
            frames,
            ctl.own_drops.load(Ordering::Relaxed)
        );
        (self.last, self.frames) = (now, frames);
    }
}
