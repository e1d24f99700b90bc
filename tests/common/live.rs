//! Helpers of the root end-to-end tests of `tcpulse run` (moved from tests/live.rs): a veth lab
//! made by scripts/lab, a running monitor, replays, a reference capture on the sending end, and
//! the comparisons of live records with offline analysis.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tcpulse_core::schema::FlowRecord;

use super::per_dir;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Live capture needs root (CI runs as root); elsewhere the test says it skipped.
pub fn root_or_skip() -> bool {
    if !is_root() {
        eprintln!("skipped: live capture needs root");
    }
    is_root()
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Two namespaces joined by a veth pair, made by scripts/lab, removed on drop.
pub struct Lab {
    pub name: String,
}

impl Lab {
    pub fn up(tag: &str, queues: u32) -> Lab {
        let name = format!("t{}{tag}", std::process::id() % 1_000_000);
        let lab = Lab { name };
        let out = Command::new(repo().join("scripts/lab"))
            .args(["up", "--queues", &queues.to_string(), "--name", &lab.name])
            .output()
            .expect("run scripts/lab");
        assert!(
            out.status.success(),
            "lab up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }
    pub fn mon(&self) -> String {
        format!("{}-mon", self.name)
    }
    pub fn gen(&self) -> String {
        format!("{}-gen", self.name)
    }
    pub fn mon_if(&self) -> String {
        format!("{}-m", self.name)
    }
    pub fn gen_if(&self) -> String {
        format!("{}-g", self.name)
    }

    /// Frames the sending end of the lab's veth dropped so far (its peer's queue full): the
    /// one loss before the monitor's sockets that they cannot count. Losses at the sockets
    /// themselves are in the monitor's records.
    pub fn kernel_drops(&self) -> u64 {
        tx_dropped(&self.gen(), &self.gen_if())
    }

    /// Every frame sent is accounted for: received by the monitor, or counted as lost by the
    /// monitor's sockets or by the veth (`kernel_drops` gained since `drops_before`). Returns
    /// whether the monitor analysed everything (no loss anywhere), so that exact comparisons
    /// with offline analysis apply; otherwise says clearly that this machine could not keep up
    /// and the exact comparisons are skipped.
    pub fn accounted(&self, live: &super::Run, sent: u64, drops_before: u64) -> bool {
        accounted(live, sent, self.kernel_drops() - drops_before)
    }

    /// Nothing of tcpulse's stays attached to the monitored interface.
    pub fn assert_no_xdp(&self) {
        let links = Command::new("ip")
            .args(["netns", "exec", &self.mon(), "ip", "-o", "link", "show"])
            .output();
        let text = links
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        assert!(!text.contains(" xdp"), "XDP program left attached: {text}");
    }
}

/// A network interface's `tx_dropped` counter inside namespace `ns`.
pub fn tx_dropped(ns: &str, iface: &str) -> u64 {
    let path = format!("/sys/class/net/{iface}/statistics/tx_dropped");
    Command::new("ip")
        .args(["netns", "exec", ns, "cat", &path])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or_else(|| panic!("cannot read {path} in {ns}"))
}

/// [`Lab::accounted`] with the kernel's drops before the monitor's sockets given.
pub fn accounted(live: &super::Run, sent: u64, kernel_dropped: u64) -> bool {
    let received = live.capture_total("packets");
    assert_eq!(
        received + live.socket_losses() + kernel_dropped,
        sent,
        "frames sent = received {received} + lost at the sockets {} + dropped by the veth \
         {kernel_dropped}",
        live.socket_losses()
    );
    let lost = live.own_losses() + kernel_dropped;
    if lost > 0 {
        eprintln!(
            "NOTE: this machine did not keep up with the test's rate: {lost} of {sent} frames \
             lost, every one counted (sockets {}, worker queues {}, veth {kernel_dropped}); the \
             exact comparisons with offline analysis need a lossless run and are skipped",
            live.socket_losses(),
            live.drop_total("worker_ring_full")
        );
    }
    lost == 0
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/lab"))
            .args(["down", "--name", &self.name])
            .output();
    }
}

/// A running `tcpulse run` inside the monitor namespace, killed on drop if still running.
pub struct Monitor {
    pub child: Child,
}

impl Monitor {
    pub fn start(lab: &Lab, extra: &[&str]) -> Monitor {
        Monitor::start_on(&lab.mon(), &lab.mon_if(), extra)
    }

    /// `tcpulse run --iface IFACE --flows - --interval 1s EXTRA...` in namespace `ns`.
    pub fn start_on(ns: &str, iface: &str, extra: &[&str]) -> Monitor {
        let mut args = vec!["--iface", iface, "--flows", "-", "--interval", "1s"];
        args.extend_from_slice(extra);
        Monitor::start_with(ns, &args)
    }

    /// `tcpulse run ARGS...` in namespace `ns`.
    pub fn start_with(ns: &str, args: &[&str]) -> Monitor {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_tcpulse"), "run"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpulse run");
        // Wait until every socket is bound before sending.
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[tcpulse] {line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains("capturing on") => break,
                _ if Instant::now() > deadline => panic!("tcpulse run did not start"),
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        Monitor { child }
    }

    /// Peak resident memory so far (VmHWM), bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb << 10)
    }

    /// SIGTERM, then the records it wrote and its exit code.
    pub fn stop(mut self) -> (super::Run, i32) {
        // SAFETY: kill with a valid pid and signal has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().expect("true"))
            .wait_with_output()
            .expect("wait tcpulse");
        let code = out.status.code().unwrap_or(-1);
        (super::parse_output(&out.stdout, String::new(), code), code)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn replay(lab: &Lab, pcap: &Path) {
    replay_with(lab, pcap, &[]);
}

/// `tcpreplay -q EXTRA -i GEN_IF PCAP` in the generator's namespace.
pub fn replay_with(lab: &Lab, pcap: &Path, extra: &[&str]) {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.gen(), "tcpreplay", "-q"])
        .args(extra)
        .args(["-i", &lab.gen_if()])
        .arg(pcap)
        .output()
        .expect("run tcpreplay (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "tcpreplay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn generate(name: &str, connections: u32, seed: u64) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("tcpulse-live-{}-{name}.pcap", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_tcpulse"))
        .args([
            "gen",
            "--connections",
            &connections.to_string(),
            "--seed",
            &seed.to_string(),
            "--spread",
            "1",
            "--out",
        ])
        .arg(&path)
        .status()
        .expect("tcpulse gen");
    assert!(status.success());
    path
}

/// Per-flow counters whose value does not depend on timing.
pub const PER_FLOW: [&str; 4] = ["packets", "dup_acks", "zero_window", "syn"];

/// Counters of segments that do not advance the sequence, labelled by timing as Wireshark does:
/// out-of-order when within an RTT of the highest segment (3 ms while the RTT is unknown),
/// else a retransmission, fast within 20 ms of duplicate ACKs. A live timestamp trails the
/// sender's by a scheduling delay, so a segment near a threshold may take the other label;
/// which segments they are does not change: `retransmits + out_of_order` is exact per flow.
pub const TIMING_LABELLED: [&str; 4] = [
    "retransmits",
    "fast_retransmits",
    "spurious_retransmits",
    "out_of_order",
];

pub fn flow_key(f: &FlowRecord) -> String {
    format!("{} {}", f.client, f.server)
}

/// Totals that do not depend on the packets' timing.
pub const TIMING_FREE: [&str; 8] = [
    "packets",
    "syn",
    "synack",
    "handshakes",
    "rst",
    "rst_to_syn",
    "fin",
    "new_flows",
];

/// Per flow, every counter and the close reason agree, for the flows the reference saw whole
/// (same packets each way); returns how many were compared. Resends are classified by their
/// timing (out-of-order within one RTT, fast retransmission within 20 ms of duplicate ACKs) and
/// a replay's pacing drifts under load, so the reference is a capture of the packets as the
/// sender really sent them, not the original capture the replay paced from.
pub fn assert_same_flows(live: &super::Run, reference: &super::Run) -> usize {
    let by_key: HashMap<String, &FlowRecord> =
        reference.flows.iter().map(|f| (flow_key(f), f)).collect();
    let mut compared = 0;
    for f in &live.flows {
        let key = flow_key(f);
        let Some(o) = by_key.get(&key) else {
            eprintln!("not in the reference: {key}");
            continue;
        };
        if f.packets != o.packets {
            eprintln!(
                "packets differ for {key}: live {:?} reference {:?}",
                f.packets, o.packets
            );
            continue;
        }
        for name in PER_FLOW {
            assert_eq!(per_dir(f, name), per_dir(o, name), "{key} {name}");
        }
        let not_advancing = |r: &FlowRecord| {
            let (a, b) = (per_dir(r, "retransmits"), per_dir(r, "out_of_order"));
            (a.c2s + b.c2s, a.s2c + b.s2c)
        };
        assert_eq!(
            not_advancing(f),
            not_advancing(o),
            "{key}: retransmits + out_of_order"
        );
        let labels = |r: &FlowRecord| TIMING_LABELLED.map(|n| per_dir(r, n));
        if labels(f) != labels(o) {
            eprintln!(
                "{key}: labelled differently by timing: live {:?} reference {:?}",
                labels(f),
                labels(o)
            );
        }
        assert_eq!(f.close, o.close, "{key} close");
        assert_eq!(f.tunnel, o.tunnel, "{key} tunnel");
        compared += 1;
    }
    compared
}

/// Timing-free totals equal the original capture's analysis; per flow, every counter equals the
/// analysis of the sender's own capture for at least 90 % of the flows.
pub fn assert_matches(live: &super::Run, original: &super::Run, as_sent: &super::Run) {
    for name in TIMING_FREE {
        assert_eq!(
            live.tcp_total(name),
            original.tcp_total(name),
            "total {name}"
        );
    }
    // Tunnels and link encapsulations arrive whole on every live path; a VLAN tag may not (a
    // tc mirred copy to AF_XDP loses the tag the kernel took out): tests of their own check it.
    let tunnels = |run: &super::Run| {
        let mut totals = run.decapsulated_totals();
        totals.remove("vlan");
        totals
    };
    assert_eq!(tunnels(live), tunnels(original), "capture.decapsulated");
    let compared = assert_same_flows(live, as_sent);
    assert!(
        compared * 10 >= live.flows.len() * 9,
        "only {compared} flows compared"
    );
}

/// A live timestamp may trail its reference by a kernel scheduling delay: the receive softirq
/// deferred to ksoftirqd, or the sender preempted between its clock read and its send, on a
/// busy core. Beyond this something is wrong (a timestamp in the wrong unit, a packet matched
/// to the wrong flow: both are off by far more).
pub const SCHEDULING_DELAY_NS: u64 = 50_000_000;

/// Handshake times of the live run against a reference capture of the same packets, flow by
/// flow: 90 % of the differences within `tolerance_ns` (the receive-timestamp precision, which
/// holds on a busy machine too), every one within [`SCHEDULING_DELAY_NS`].
pub fn assert_times(live: &super::Run, reference: &super::Run, tolerance_ns: u64) {
    let by_key: HashMap<String, &FlowRecord> =
        reference.flows.iter().map(|f| (flow_key(f), f)).collect();
    let mut diffs = Vec::new();
    for f in &live.flows {
        let Some(r) = by_key.get(&flow_key(f)) else {
            continue;
        };
        if let (Some(a), Some(b)) = (
            f.handshake.and_then(|h| h.total_ns),
            r.handshake.and_then(|h| h.total_ns),
        ) {
            diffs.push(a.abs_diff(b));
        }
    }
    diffs.sort_unstable();
    let pct = |q: f64| {
        diffs
            .get(((diffs.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    let worst = diffs.last().copied().unwrap_or(0);
    eprintln!(
        "handshake time, live vs sender's capture, |difference| over {} flows: p50 {} ns, p90 {} ns, \
         p99 {} ns, max {worst} ns",
        diffs.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99)
    );
    assert!(
        diffs.len() * 10 >= live.flows.len() * 8,
        "too few flows to compare times"
    );
    assert!(
        pct(0.9) <= tolerance_ns,
        "handshake time p90 differs by {} ns",
        pct(0.9)
    );
    assert!(
        worst <= SCHEDULING_DELAY_NS,
        "handshake time differs by {worst} ns"
    );
}

/// tcpdump on the sending end, for the times the packets were really sent (the replay's own
/// pacing is off by up to tens of ms, so the original capture's times cannot be the reference).
pub struct Reference {
    child: Child,
    path: PathBuf,
}

impl Reference {
    pub fn start(lab: &Lab) -> Reference {
        let path = std::env::temp_dir().join(format!(
            "tcpulse-live-{}-{}-ref.pcap",
            std::process::id(),
            lab.name
        ));
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.gen(),
                "tcpdump",
                "-n",
                "-U",
                "-s",
                "0",
                "-B",
                "16384",
            ])
            .args(["--time-stamp-precision", "nano", "-i", &lab.gen_if(), "-w"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tcpdump");
        // tcpdump says "listening on ..." once its socket is open.
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.contains("listening on") => break,
                _ if Instant::now() > deadline => panic!("tcpdump did not start"),
                _ => {}
            }
        }
        Reference { child, path }
    }

    pub fn stop(mut self) -> PathBuf {
        // tcpdump drops what is still in its ring when interrupted: give it time to drain.
        std::thread::sleep(Duration::from_millis(1000));
        // SAFETY: as in Monitor::stop.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
        self.path.clone()
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the monitor around `send` with the sender's own capture as the timing reference:
/// returns the live records (after asserting a clean exit 0 at SIGTERM) and the offline analysis
/// of the frames as they were sent.
pub fn capture_live(monitor: Monitor, lab: &Lab, send: impl FnOnce()) -> (super::Run, super::Run) {
    let reference = Reference::start(lab);
    send();
    std::thread::sleep(Duration::from_millis(300));
    let (live, code) = monitor.stop();
    let sent = reference.stop();
    let as_sent = super::analyze(&[&sent], &[]);
    std::fs::remove_file(&sent).ok();
    assert_eq!(code, 0, "SIGTERM ends the run cleanly");
    (live, as_sent)
}

/// `tcpulse gen ARGS --send GEN_IF` in the lab's generator namespace, to the end.
pub fn gen_send(lab: &Lab, args: &[&str]) {
    let sent = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.gen(),
            env!("CARGO_BIN_EXE_tcpulse"),
            "gen",
        ])
        .args(args)
        .arg("--send")
        .arg(lab.gen_if())
        .status()
        .expect("run tcpulse gen --send");
    assert!(sent.success(), "tcpulse gen --send failed");
}

/// Replays one handshake, deletes the lab's generator end (which removes the monitored end
/// with it) and checks the monitor notices: exit code 7, what it saw before reported.
pub fn assert_interface_removal_exits_7(lab: &Lab, mut monitor: Monitor) {
    replay(
        lab,
        &super::shared_pcaps().join("chrissanders_tcp_handshake.pcapng"),
    );
    std::thread::sleep(Duration::from_millis(200));
    let deleted = Command::new("ip")
        .args(["-n", &lab.gen(), "link", "del", &lab.gen_if()])
        .status();
    assert!(deleted.is_ok_and(|s| s.success()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Ok(Some(status)) = monitor.child.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tcpulse did not notice the interface went away"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = Vec::new();
    if let Some(mut s) = monitor.child.stdout.take() {
        std::io::Read::read_to_end(&mut s, &mut out).ok();
    }
    assert_eq!(status.code(), Some(7));
    let run = super::parse_output(&out, String::new(), 7);
    assert_eq!(
        run.tcp_total("handshakes"),
        1,
        "what was captured before is reported"
    );
}
