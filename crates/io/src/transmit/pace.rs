//! The send loop: frames in order, each batch sent when its first frame is due.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{FrameBook, Transmit, TxError};

/// When frames are due.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// As fast as the ring takes them.
    TopSpeed,
    /// A fixed rate, frames per second.
    Pps(u64),
    /// The scenario's own times, `speed` times faster (1.0 = real time).
    Scenario { speed: f64 },
}

/// What a send did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SendReport {
    pub frames: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// Times the ring was full and the loop had to wait for the kernel.
    pub ring_full: u64,
    /// Most a batch went out after its first frame was due (the pacing error; 0 at top
    /// speed).
    pub max_late_ns: u64,
}

impl SendReport {
    pub fn pps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.frames as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Told of every run of frames handed to the kernel, with the wall-clock time (Unix epoch ns)
/// just before the send call: a record of what went out when (`tcpulse gen --sent`).
pub type OnSent<'a> = &'a mut dyn FnMut(u64, &[&[u8]]);

/// Frames per send call at most.
const BATCH: usize = 256;
/// Waits longer than this sleep (the rest is spun, for precision); shorter ones spin.
const SLEEP_ABOVE: Duration = Duration::from_micros(60);
const SPIN_TAIL: Duration = Duration::from_micros(20);

/// Sends `book` `loops` times with `pace`, each frame through `tx[book.queue(i)]`. Frames due
/// within `burst` of a batch's first frame go with it (one system call per run of frames for
/// the same queue, so the order between queues is kept); a later loop starts one inter-frame
/// gap after the previous one's last frame. Stops early when `stop` is set.
///
/// # Errors
/// The first transmit error; what was sent before it is lost from the report.
pub fn send(
    tx: &mut [Box<dyn Transmit>],
    book: &FrameBook,
    pace: Pace,
    loops: u32,
    burst: Duration,
    stop: &AtomicBool,
    mut on_sent: Option<OnSent<'_>>,
) -> Result<SendReport, TxError> {
    precise_sleeps();
    let mut report = SendReport::default();
    if book.is_empty() || tx.is_empty() {
        return Ok(report);
    }
    let first = book.time(0);
    // One loop lasts its span plus one average gap, so loops join without a burst.
    let loop_ns = book.span_ns() + book.span_ns() / book.len().max(1) as u64;
    let total = book.len() as u64 * u64::from(loops);
    let due = |n: u64| -> u64 {
        match pace {
            Pace::TopSpeed => 0,
            Pace::Pps(r) => (u128::from(n) * 1_000_000_000 / u128::from(r.max(1))) as u64,
            Pace::Scenario { speed } => {
                let (l, i) = (n / book.len() as u64, (n % book.len() as u64) as usize);
                let t = l * loop_ns + (book.time(i) - first);
                (t as f64 / speed.max(1e-9)) as u64
            }
        }
    };
    let burst_ns = u64::try_from(burst.as_nanos()).unwrap_or(u64::MAX);
    let start = Instant::now();
    let mut n = 0u64;
    let mut batch: [&[u8]; BATCH] = [&[]; BATCH];
    let queues = tx.len().max(1);
    let queue_of = |k: u64| usize::from(book.queue((k % book.len() as u64) as usize)) % queues;
    while n < total && !stop.load(Ordering::Relaxed) {
        let first_due = due(n);
        let now = elapsed_ns(start);
        if first_due > now {
            wait_until(start, first_due);
        } else if pace != Pace::TopSpeed {
            report.max_late_ns = report.max_late_ns.max(now - first_due);
        }
        let queue = queue_of(n);
        let mut len = 0;
        while len < BATCH && n + (len as u64) < total {
            let k = n + len as u64;
            if len > 0 && (due(k) > first_due + burst_ns || queue_of(k) != queue) {
                break;
            }
            batch[len] = book.frame((k % book.len() as u64) as usize);
            len += 1;
        }
        let mut sent = 0;
        while sent < len {
            let at = on_sent.as_ref().map(|_| unix_ns());
            let taken = tx[queue].send_batch(&batch[sent..len])?;
            if let (Some(f), Some(at)) = (on_sent.as_mut(), at) {
                f(at, &batch[sent..sent + taken]);
            }
            if taken == 0 {
                report.ring_full += 1;
                std::thread::yield_now();
            }
            for f in &batch[sent..sent + taken] {
                report.bytes += f.len() as u64;
            }
            sent += taken;
        }
        n += len as u64;
    }
    report.frames = n;
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn wait_until(start: Instant, due_ns: u64) {
    let target = start + Duration::from_nanos(due_ns);
    let now = Instant::now();
    if target > now + SLEEP_ABOVE {
        std::thread::sleep(target - now - SPIN_TAIL);
    }
    while Instant::now() < target {
        std::hint::spin_loop();
    }
}

/// Sleeps of this thread end within microseconds instead of the default 50 µs timer slack.
fn precise_sleeps() {
    crate::sys::process::tight_timer_slack();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transmit::TxStats;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Log {
        /// (time, queue, first byte) per frame.
        sent: Vec<(Instant, usize, u8)>,
        calls: usize,
    }

    /// Records what it is given into a shared log; takes at most `room` frames per call.
    struct Recorder {
        log: Arc<Mutex<Log>>,
        queue: usize,
        room: usize,
    }

    impl Transmit for Recorder {
        fn send_batch(&mut self, frames: &[&[u8]]) -> Result<usize, TxError> {
            let mut log = self.log.lock().unwrap();
            log.calls += 1;
            let n = frames.len().min(self.room);
            let now = Instant::now();
            for f in &frames[..n] {
                log.sent.push((now, self.queue, f[0]));
            }
            Ok(n)
        }
        fn stats(&self) -> TxStats {
            TxStats::default()
        }
        fn describe(&self) -> String {
            "recorder".into()
        }
    }

    fn recorders(queues: usize, room: usize) -> (Vec<Box<dyn Transmit>>, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        let tx = (0..queues)
            .map(|queue| {
                Box::new(Recorder {
                    log: log.clone(),
                    queue,
                    room,
                }) as Box<dyn Transmit>
            })
            .collect();
        (tx, log)
    }

    /// `n` frames `gap_ns` apart; frame i starts with byte i and goes to queue i % queues.
    fn book(n: u8, gap_ns: u64, queues: u16) -> FrameBook {
        let mut b = FrameBook::default();
        for i in 0..n {
            b.push(
                1_000 + u64::from(i) * gap_ns,
                &[i; 60],
                u16::from(i) % queues,
            );
        }
        b
    }

    static GO: AtomicBool = AtomicBool::new(false);

    #[test]
    fn every_frame_goes_once_in_order_across_loops_and_full_rings() {
        let (mut tx, log) = recorders(1, 5);
        let r = send(
            &mut tx,
            &book(20, 1_000, 1),
            Pace::TopSpeed,
            3,
            Duration::ZERO,
            &GO,
            None,
        )
        .unwrap();
        assert_eq!(r.frames, 60);
        assert_eq!(r.bytes, 60 * 60);
        let log = log.lock().unwrap();
        let firsts: Vec<u8> = log.sent.iter().map(|s| s.2).collect();
        let expected: Vec<u8> = (0..3).flat_map(|_| 0..20).collect();
        assert_eq!(firsts, expected);
        assert!(log.calls >= 12, "5 frames per call at most");
    }

    #[test]
    fn frames_go_to_their_queue_in_order() {
        let (mut tx, log) = recorders(2, BATCH);
        send(
            &mut tx,
            &book(10, 1, 2),
            Pace::TopSpeed,
            1,
            Duration::ZERO,
            &GO,
            None,
        )
        .unwrap();
        let log = log.lock().unwrap();
        let got: Vec<(usize, u8)> = log.sent.iter().map(|s| (s.1, s.2)).collect();
        let expected: Vec<(usize, u8)> = (0..10).map(|i| (usize::from(i % 2), i)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_packet_rate_spreads_frames_over_time() {
        let (mut tx, log) = recorders(1, BATCH);
        // 50 frames at 10,000/s: 4.9 ms from the first to the last.
        let r = send(
            &mut tx,
            &book(50, 1, 1),
            Pace::Pps(10_000),
            1,
            Duration::ZERO,
            &GO,
            None,
        )
        .unwrap();
        let log = log.lock().unwrap();
        let span = log.sent[49].0 - log.sent[0].0;
        // Lateness only delays frames, so the lower bound holds on a loaded machine too.
        assert!(span >= Duration::from_micros(4_800), "{span:?}");
        assert_eq!(log.calls, 50, "no burst: one frame per call");
        assert!(r.pps() < 10_500.0, "{}", r.pps());
    }

    #[test]
    fn scenario_pace_keeps_the_gaps_scaled_and_bursts_group_close_frames() {
        // 10 frames 2 ms apart, sent twice as fast: 1 ms apart.
        let b = book(10, 2_000_000, 1);
        let twice = Pace::Scenario { speed: 2.0 };
        let (mut tx, log) = recorders(1, BATCH);
        send(&mut tx, &b, twice, 1, Duration::from_micros(10), &GO, None).unwrap();
        {
            let log = log.lock().unwrap();
            assert_eq!(log.calls, 10, "frames 1 ms apart: one call each");
            let span = log.sent[9].0 - log.sent[0].0;
            assert!(span >= Duration::from_micros(8_900), "{span:?}");
        }
        // With a burst window wider than the gaps, all go in one call.
        let (mut tx, log) = recorders(1, BATCH);
        send(&mut tx, &b, twice, 1, Duration::from_millis(20), &GO, None).unwrap();
        assert_eq!(log.lock().unwrap().calls, 1);
    }
}
