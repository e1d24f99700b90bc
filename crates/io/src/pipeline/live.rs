//! Live capture threads: one per queue (AF_XDP socket or AF_PACKET ring), each receiving
//! batches, feeding its producer's [`Ingest`], closing intervals on the clock when the link is
//! quiet, and accounting the kernel's drops.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tcpulse_core::schema::interval::Drops;

use crate::capture::af_packet::{AfPacketOptions, AfPacketQueue, SockFilter};
use crate::capture::xdp::{LiveError, XdpMode, XdpOptions, XdpQueue};
use crate::capture::{CaptureKind, LiveQueue, QueueDrops};
use crate::dispatch::ingest::Ingest;
use crate::sys;

/// How `tcpulse run` captures.
#[derive(Clone, Debug)]
pub struct LiveSettings {
    pub iface: String,
    pub capture: CaptureKind,
    /// `--queues` was given (AF_XDP only).
    pub queues_given: bool,
    /// AF_PACKET rings (`--threads`); AF_XDP refuses it.
    pub threads: Option<u32>,
    pub xdp_mode: XdpMode,
    pub promisc: bool,
    pub all_frames: bool,
    pub ring_frames: u32,
    /// The capture filter's program for AF_PACKET's socket filter
    /// ([`CaptureFilter::socket_program`](crate::capture::CaptureFilter::socket_program)).
    /// AF_XDP takes what its XDP program selects and the filter runs in user space.
    pub kernel_filter: Option<Vec<SockFilter>>,
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

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Opens every queue first: any failure stops here, before a thread runs, and dropping the
/// queues opened so far detaches what they attached.
pub fn open_queues(
    args: &LiveSettings,
    queues: &[u32],
) -> Result<Vec<Box<dyn LiveQueue>>, LiveError> {
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
            if args.queues_given {
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
                filter: args.kernel_filter.clone(),
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
pub struct Control {
    /// Frames received and dropped by the monitor itself (kernel rings, worker queues), over
    /// all capture threads: added once per receive batch or interval, read by the status line.
    pub frames: AtomicU64,
    pub own_drops: AtomicU64,
    pub stop: AtomicBool,
    /// Capture time at which every capture thread ends its last interval (the same for all,
    /// so workers see every feeder close the same intervals).
    stop_at: AtomicU64,
    /// A capture thread lost its interface.
    pub lost: AtomicBool,
}

impl Control {
    pub fn stop_now(&self) {
        self.stop_at.store(now_ns(), Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One RX queue: receive batches, feed them, close intervals on the clock, account the
/// socket's drops, stop at `stop_at` when asked.
pub fn capture_loop(
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
            socket.recv_batch(POLL_MS, &mut |frame| {
                ingest.frame(&frame);
                last_ts = frame.ts_ns;
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
            // The kernel's last counts of this queue, before it is given up: its losses since
            // the last interval close still reach the records.
            let before = own_drops(&ingest.stats.drops);
            add_drops(&mut ingest.stats.drops, &mut last, socket.drops());
            let gained = own_drops(&ingest.stats.drops) - before;
            ctl.own_drops.fetch_add(gained, Ordering::Relaxed);
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

/// Starts one capture thread per queue, each with its producer, pinned to `cpus[i]` when
/// given. `no_analysis`: count frames only (the bare receive rate).
///
/// # Errors
/// A thread that cannot be started (the ones started so far are told to stop).
pub fn spawn_capture_threads(
    sockets: Vec<Box<dyn LiveQueue>>,
    ingests: Vec<Ingest>,
    cpus: Option<&[u32]>,
    no_analysis: bool,
    control: &std::sync::Arc<Control>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let start = now_ns();
    let mut threads = Vec::new();
    for (i, (socket, ingest)) in sockets.into_iter().zip(ingests).enumerate() {
        let mut ingest = ingest.count_only(no_analysis);
        ingest.start_at(start);
        let cpu = cpus.and_then(|c| c.get(i).copied());
        let ctl = control.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("tcpulse-{}", socket.thread_name()))
            .spawn(move || capture_loop(socket, ingest, cpu, &ctl));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                control.stop_now();
                for t in threads {
                    let _ = t.join();
                }
                return Err(e);
            }
        }
    }
    Ok(threads)
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
    if let Err(e) = sys::pin_thread_to(cpu) {
        eprintln!("tcpulse: cannot pin a capture thread to CPU {cpu}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tcpulse_core::flow::FlowConfig;
    use tcpulse_core::metrics::interval::Listing;
    use tcpulse_core::schema::{IntervalRecord, Record};

    use super::*;
    use crate::capture::fake::{ScriptStep, ScriptedQueue};
    use crate::dispatch::Backpressure;
    use crate::pipeline::{OutputSettings, Pipeline, Settings};

    /// An Ethernet + IPv4 + TCP segment (no options, checksums left 0: decode does not check
    /// them) from port `sport` to 10.0.0.2:80.
    fn segment(sport: u16, flags: u8, seq: u32) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let tcp = &mut f[34..54];
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&1024u16.to_be_bytes());
        f
    }

    /// Frames in, the kernel's drops and a lost interface scripted: the capture thread feeds
    /// every frame through the workers to the output, accounts the socket's drops, and reports
    /// the interface lost.
    #[test]
    fn the_capture_loop_feeds_the_pipeline_and_reports_drops_and_a_lost_interface() {
        let out = std::env::temp_dir().join(format!("tcpulse-fakeq-{}.jsonl", std::process::id()));
        let now = now_ns();
        let frames: Vec<(u64, Vec<u8>)> = (0..100u16)
            .map(|i| {
                (
                    now + u64::from(i) * 1000,
                    segment(1000 + i, 0x02, u32::from(i)),
                )
            })
            .collect();
        let mut queue = ScriptedQueue::new(
            "0",
            vec![
                ScriptStep::Frames(frames[..60].to_vec()),
                ScriptStep::Frames(frames[60..].to_vec()),
                ScriptStep::Fail(crate::capture::xdp::LiveError::InterfaceGone {
                    iface: "fake0".into(),
                }),
            ],
        );
        queue.drops.xdp_rx_ring_full = 7;
        let settings = Settings {
            workers: 2,
            interval_ns: 1_000_000_000,
            flow: FlowConfig::default(),
            listing: Listing {
                top_servers: 10,
                watch: Vec::new(),
            },
            anonymize: None,
            filter: None,
            outputs: OutputSettings {
                output: out.display().to_string(),
                flows: None,
                sinks: Vec::new(),
            },
        };
        let (pipeline, ingests) =
            Pipeline::start(&settings, 1, Backpressure::Drop, "fake0".into()).expect("start");
        let control = Arc::new(Control::default());
        let threads = spawn_capture_threads(vec![Box::new(queue)], ingests, None, false, &control)
            .expect("capture thread");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !control.lost.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "the lost interface is noticed"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        control.stop_now();
        for t in threads {
            t.join().expect("capture thread");
        }
        pipeline.join().expect("outputs written");
        let text = std::fs::read_to_string(&out).expect("output");
        let _ = std::fs::remove_file(&out);
        let records: Vec<IntervalRecord> = text
            .lines()
            .map(|l| match Record::from_line(l).expect("a record") {
                Record::Interval(r) => *r,
                Record::Flow(_) => panic!("no flow records asked for"),
            })
            .collect();
        let packets: u64 = records.iter().map(|r| r.capture.packets).sum();
        let syn: u64 = records
            .iter()
            .map(|r| {
                r.tcp
                    .counters
                    .get(tcpulse_core::schema::counters::Counter::syn)
            })
            .sum();
        let ring_full: u64 = records
            .iter()
            .map(|r| r.capture.drops.xdp_rx_ring_full)
            .sum();
        assert_eq!((packets, syn), (100, 100));
        assert_eq!(ring_full, 7, "the socket's drops reach the records");
        assert_eq!(control.frames.load(Ordering::Relaxed), 100);
    }
}
