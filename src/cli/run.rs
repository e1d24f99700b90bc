//! `tcpulse run`: AF_XDP capture threads (one per RX queue) → the same workers, merger and
//! sinks as `analyze`. Capture time comes from the XDP receive timestamps; intervals also close
//! on the clock when no packet comes, so a quiet link still reports.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::output::Pipeline;
use super::{exit, privilege, CaptureKind, RunArgs};
use crate::capture::af_packet::{AfPacketOptions, AfPacketQueue};
use crate::capture::xdp::{rx_queue_count, LiveError, XdpOptions, XdpQueue};
use crate::capture::{LiveQueue, QueueDrops};
use crate::decode::LinkType;
use crate::dispatch::ingest::Ingest;
use crate::dispatch::Backpressure;
use crate::metrics::interval::Drops;

/// Set by SIGINT/SIGTERM.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SIGNALLED.store(true, Ordering::Relaxed);
}

/// SIGHUP: file sinks reopen their files (after logrotate moved them); the sink threads see
/// the request between batches.
extern "C" fn on_hangup(_: libc::c_int) {
    // Only an atomic add: async-signal-safe.
    crate::sink::request_reopen();
}

/// An interval closes on the clock only this long after its end, so frames still in the rings
/// (stamped before the end) land in it.
const CLOSE_GRACE_NS: u64 = 100_000_000;
/// How long a capture thread waits for frames before looking at the clock and the stop flag;
/// an idle queue also vouches for the time then, so workers merging queues move on.
const POLL_MS: i32 = 10;
/// Records go to workers at least this often in capture time (and when the queue is idle):
/// a worker wakes once per millisecond per feeder, not once per receive batch.
const FLUSH_EVERY_NS: u64 = 1_000_000;
/// A receive that returns fewer frames than this means the queue is drained faster than it
/// fills: the thread then sleeps `GATHER_SLEEP` for frames to gather instead of going straight
/// back into poll, which would wake it for every frame or two (the wake-ups, not the frames,
/// were most of the CPU per packet). The RX ring holds far more than a sleep's worth.
const GATHER_BELOW: usize = 32;
const GATHER_SLEEP: Duration = Duration::from_micros(100);
/// An idle queue vouches for the time this much before now: frames stamped by the XDP program
/// reach the RX ring within microseconds, the margin covers the epoch conversion too.
const IDLE_MARGIN_NS: u64 = 2_000_000;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

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
    let sockets = match open_queues(args, &queues) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tcpulse: {e}");
            return exit::CAPTURE_SETUP;
        }
    };
    for s in &sockets {
        eprintln!("tcpulse: capturing on {}", s.describe());
    }
    let started = Pipeline::start(p, sockets.len(), Backpressure::Drop, args.iface.clone());
    let (pipeline, ingests) = match started {
        Ok(started) => started,
        Err(code) => return code,
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
            return pipeline.join(exit::CAPTURE_SETUP);
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

    // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, on_hangup as *const () as libc::sighandler_t);
    }
    let control = Arc::new(Control::default());
    let start = now_ns();
    let mut threads = Vec::new();
    for (i, (socket, ingest)) in sockets.into_iter().zip(ingests).enumerate() {
        let mut ingest = ingest.count_only(args.no_analysis);
        ingest.start_at(start);
        let cpu = args.cpus.as_ref().and_then(|c| c.0.get(i).copied());
        let ctl = control.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("tcpulse-{}", socket.thread_name()))
            .spawn(move || capture_loop(socket, ingest, cpu, &ctl));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                eprintln!("tcpulse: cannot start a capture thread: {e}");
                control.stop_now();
                break;
            }
        }
    }

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
            || SIGNALLED.load(Ordering::Relaxed)
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
    pipeline.join(code)
}

/// Opens every queue first: any failure stops here, before a thread runs, and dropping the
/// queues opened so far detaches what they attached.
fn open_queues(args: &RunArgs, queues: &[u32]) -> Result<Vec<Box<dyn LiveQueue>>, LiveError> {
    match args.capture {
        CaptureKind::Xdp => {
            if args.threads.is_some() {
                return Err(LiveError::Options {
                    detail: "--threads sets the number of AF_PACKET rings; with AF_XDP there is \
                             one socket per RX queue (--queues)"
                        .into(),
                });
            }
            let opts = XdpOptions {
                mode: args.xdp_mode,
                promiscuous: args.promisc,
                capture_all: args.all_frames,
                frame_count: args.ring_frames,
                ..XdpOptions::default()
            };
            queues
                .iter()
                .map(|&q| XdpQueue::open(&args.iface, q, &opts).map(|s| Box::new(s) as _))
                .collect()
        }
        CaptureKind::AfPacket => {
            if args.queues.is_some() {
                return Err(LiveError::AfPacketOptions {
                    detail: "--queues names AF_XDP RX queues; AF_PACKET rings share all the \
                             interface's traffic: set their number with --threads N"
                        .into(),
                });
            }
            // Without --threads, `queues` is every RX queue of the interface: one ring each.
            let members = args.threads.map_or(queues.len(), |n| n as usize).max(1);
            let opts = AfPacketOptions {
                promiscuous: args.promisc,
                capture_all: args.all_frames,
                ..AfPacketOptions::default()
            };
            (0..members as u32)
                .map(|m| AfPacketQueue::open(&args.iface, m, &opts).map(|s| Box::new(s) as _))
                .collect()
        }
    }
}

/// Shared by the main thread and the capture threads.
#[derive(Default)]
struct Control {
    /// Frames received and dropped by the monitor itself (kernel rings, worker queues), over
    /// all capture threads: added once per receive batch or interval, read by the status line.
    frames: AtomicU64,
    own_drops: AtomicU64,
    stop: AtomicBool,
    /// Capture time at which every capture thread ends its last interval (the same for all,
    /// so workers see every feeder close the same intervals).
    stop_at: AtomicU64,
    /// A capture thread lost its interface.
    lost: AtomicBool,
}

impl Control {
    fn stop_now(&self) {
        self.stop_at.store(now_ns(), Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One RX queue: receive batches, feed them, close intervals on the clock, account the
/// socket's drops, stop at `stop_at` when asked.
fn capture_loop(
    mut socket: Box<dyn LiveQueue>,
    mut ingest: Ingest,
    cpu: Option<u32>,
    ctl: &Control,
) {
    if let Some(cpu) = cpu {
        pin_to(cpu);
    }
    let mut last = QueueDrops::default();
    let mut failed = false;
    let (mut last_ts, mut flushed_at, mut ring_full_seen) = (0, 0, 0);
    loop {
        let received = if failed {
            // The socket is gone: keep the clock going until the main thread stops everyone.
            std::thread::sleep(Duration::from_millis(20));
            Ok(0)
        } else {
            socket.recv_batch(POLL_MS, &mut |ts, frame| {
                let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
                ingest.frame(LinkType::Ethernet, frame, len, ts);
                last_ts = ts;
            })
        };
        match received {
            Ok(0) => {
                ingest.vouch(now_ns().saturating_sub(IDLE_MARGIN_NS));
                ingest.flush();
                flushed_at = last_ts;
            }
            Ok(n) => {
                ctl.frames.fetch_add(n as u64, Ordering::Relaxed);
                if last_ts.wrapping_sub(flushed_at) >= FLUSH_EVERY_NS {
                    ingest.flush();
                    flushed_at = last_ts;
                }
                if n < GATHER_BELOW {
                    std::thread::sleep(GATHER_SLEEP);
                }
            }
            Err(_) => {}
        }
        let ring_full = ingest.ring_full_total();
        ctl.own_drops
            .fetch_add(ring_full - ring_full_seen, Ordering::Relaxed);
        ring_full_seen = ring_full;
        if let Err(e) = &received {
            eprintln!("tcpulse: {e}");
            failed = true;
            if matches!(e, LiveError::InterfaceGone { .. }) || !matches!(e, LiveError::Io { .. }) {
                ctl.lost.store(true, Ordering::SeqCst);
            }
        }
        let stopping = ctl.stop.load(Ordering::SeqCst);
        let horizon = if stopping {
            ctl.stop_at.load(Ordering::SeqCst)
        } else {
            now_ns().saturating_sub(CLOSE_GRACE_NS)
        };
        if stopping || ingest.interval_end().is_some_and(|end| end <= horizon) {
            if !failed {
                let before = own_drops(&ingest.stats.drops);
                add_drops(&mut ingest.stats.drops, &mut last, socket.drops());
                let gained = own_drops(&ingest.stats.drops) - before;
                ctl.own_drops.fetch_add(gained, Ordering::Relaxed);
            }
            ingest.advance_to(horizon);
        }
        if stopping {
            ingest.finish(Some(horizon));
            return;
        }
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

/// Frames lost by the kernel side of a queue, as counted in `drops`.
fn own_drops(d: &Drops) -> u64 {
    d.xdp_rx_dropped + d.xdp_rx_ring_full + d.xdp_fill_ring_empty + d.af_packet_drops
}

/// Adds the queue's drop counters gained since `last` to `drops`.
fn add_drops(drops: &mut Drops, last: &mut QueueDrops, now: QueueDrops) {
    let gained = |now: u64, last: u64| now.saturating_sub(last);
    drops.xdp_rx_dropped += gained(now.xdp_rx_dropped, last.xdp_rx_dropped);
    drops.xdp_rx_ring_full += gained(now.xdp_rx_ring_full, last.xdp_rx_ring_full);
    drops.xdp_fill_ring_empty += gained(now.xdp_fill_ring_empty, last.xdp_fill_ring_empty);
    drops.xdp_invalid_descs += gained(now.xdp_invalid_descs, last.xdp_invalid_descs);
    drops.af_packet_drops += gained(now.af_packet_drops, last.af_packet_drops);
    *last = now;
}

fn pin_to(cpu: u32) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // read and write that local set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!(
                "tcpulse: cannot pin a capture thread to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}
