//! `tcpulse run` end to end on a veth lab: traffic replayed from one network namespace is
//! captured with AF_XDP in the other, and the records equal the offline analysis of the same
//! packets. Needs root (CI runs as root); prints a skip line otherwise. Each test makes its own
//! namespaces with unique names and removes them even when it fails.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Live capture needs root (CI runs as root); elsewhere the test says it skipped.
fn root_or_skip() -> bool {
    if !is_root() {
        eprintln!("skipped: live capture needs root");
    }
    is_root()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Two namespaces joined by a veth pair, made by scripts/lab, removed on drop.
struct Lab {
    name: String,
}

impl Lab {
    fn up(tag: &str, queues: u32) -> Lab {
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
    fn mon(&self) -> String {
        format!("{}-mon", self.name)
    }
    fn gen(&self) -> String {
        format!("{}-gen", self.name)
    }
    fn mon_if(&self) -> String {
        format!("{}-m", self.name)
    }
    fn gen_if(&self) -> String {
        format!("{}-g", self.name)
    }

    /// Nothing of tcpulse's stays attached to the monitored interface.
    fn assert_no_xdp(&self) {
        let links = Command::new("ip")
            .args(["netns", "exec", &self.mon(), "ip", "-o", "link", "show"])
            .output();
        let text = links
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        assert!(!text.contains(" xdp"), "XDP program left attached: {text}");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/lab"))
            .args(["down", "--name", &self.name])
            .output();
    }
}

/// A running `tcpulse run` inside the monitor namespace, killed on drop if still running.
struct Monitor {
    child: Child,
}

impl Monitor {
    fn start(lab: &Lab, extra: &[&str]) -> Monitor {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.mon(),
                env!("CARGO_BIN_EXE_tcpulse"),
                "run",
                "--iface",
            ])
            .arg(lab.mon_if())
            .args(["--flows", "-", "--interval", "1s"])
            .args(extra)
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

    /// SIGTERM, then the records it wrote and its exit code.
    fn stop(mut self) -> (common::Run, i32) {
        // SAFETY: kill with a valid pid and signal has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().expect("true"))
            .wait_with_output()
            .expect("wait tcpulse");
        let code = out.status.code().unwrap_or(-1);
        (common::parse_output(&out.stdout, String::new(), code), code)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replay(lab: &Lab, pcap: &Path) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.gen(),
            "tcpreplay",
            "-q",
            "-i",
            &lab.gen_if(),
        ])
        .arg(pcap)
        .output()
        .expect("run tcpreplay (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "tcpreplay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Replays `pcap` with every flow's two directions on two TX queues, hence two RX queues of
/// the monitor (scripts/replay-split), and checks both queues received frames.
fn replay_split(lab: &Lab, pcap: &Path) {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.gen()])
        .arg(repo().join("scripts/replay-split"))
        .arg(pcap)
        .arg(lab.gen_if())
        .output()
        .expect("run scripts/replay-split");
    assert!(
        out.status.success(),
        "replay-split: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = Command::new("ip")
        .args(["netns", "exec", &lab.mon(), "ethtool", "-S", &lab.mon_if()])
        .output()
        .expect("run ethtool");
    let text = String::from_utf8_lossy(&stats.stdout);
    for queue in 0..2 {
        let redirected: u64 = text
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(&format!("rx_queue_{queue}_xdp_redirect: "))
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        assert!(redirected > 0, "RX queue {queue} received nothing: {text}");
    }
}

fn generate(name: &str, connections: u32, seed: u64) -> PathBuf {
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

const PER_FLOW: [&str; 8] = [
    "packets",
    "retransmits",
    "fast_retransmits",
    "spurious_retransmits",
    "out_of_order",
    "dup_acks",
    "zero_window",
    "syn",
];

fn flow_key(f: &Value) -> String {
    format!("{} {}", f["client"], f["server"])
}

/// Totals that do not depend on the packets' timing.
const TIMING_FREE: [&str; 8] = [
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
fn assert_same_flows(live: &common::Run, reference: &common::Run) -> usize {
    let by_key: HashMap<String, &Value> =
        reference.flows.iter().map(|f| (flow_key(f), f)).collect();
    let mut compared = 0;
    for f in &live.flows {
        let key = flow_key(f);
        let Some(o) = by_key.get(&key) else {
            eprintln!("not in the reference: {key}");
            continue;
        };
        if f["packets"] != o["packets"] {
            eprintln!(
                "packets differ for {key}: live {} reference {}",
                f["packets"], o["packets"]
            );
            continue;
        }
        for name in PER_FLOW {
            assert_eq!(f[name], o[name], "{key} {name}");
        }
        assert_eq!(f["close"], o["close"], "{key} close");
        compared += 1;
    }
    compared
}

/// Timing-free totals equal the original capture's analysis; per flow, every counter equals the
/// analysis of the sender's own capture for at least 90 % of the flows.
fn assert_matches(live: &common::Run, original: &common::Run, as_sent: &common::Run) {
    for name in TIMING_FREE {
        assert_eq!(
            live.tcp_total(name),
            original.tcp_total(name),
            "total {name}"
        );
    }
    let compared = assert_same_flows(live, as_sent);
    assert!(
        compared * 10 >= live.flows.len() * 9,
        "only {compared} flows compared"
    );
}

/// Handshake times of the live run against a reference capture of the same packets, flow by
/// flow: every difference within `tolerance_ns`. Returns the differences' distribution.
fn assert_times(live: &common::Run, reference: &common::Run, tolerance_ns: u64) {
    let by_key: HashMap<String, &Value> =
        reference.flows.iter().map(|f| (flow_key(f), f)).collect();
    let mut diffs = Vec::new();
    for f in &live.flows {
        let Some(r) = by_key.get(&flow_key(f)) else {
            continue;
        };
        if let (Some(a), Some(b)) = (
            f["handshake"]["total_ns"].as_u64(),
            r["handshake"]["total_ns"].as_u64(),
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
        worst <= tolerance_ns,
        "handshake time differs by {worst} ns"
    );
}

/// tcpdump on the sending end, for the times the packets were really sent (the replay's own
/// pacing is off by up to tens of ms, so the original capture's times cannot be the reference).
struct Reference {
    child: Child,
    path: PathBuf,
}

impl Reference {
    fn start(lab: &Lab) -> Reference {
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

    fn stop(mut self) -> PathBuf {
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

#[test]
fn live_capture_equals_offline_analysis() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("a", 1);
    let pcap = generate("mixed", 150, 11);
    let monitor = Monitor::start(&lab, &[]);
    let reference = Reference::start(&lab);
    replay(&lab, &pcap);
    for name in [
        "chrissanders_tcp_handshake.pcapng",
        "chrissanders_tcp_refuseconnection.pcapng",
    ] {
        replay(&lab, &common::shared_pcaps().join(name));
    }
    std::thread::sleep(Duration::from_millis(300));
    let (live, code) = monitor.stop();
    let sent = reference.stop();
    assert_eq!(code, 0, "SIGTERM ends the run cleanly");

    // What was sent, analysed offline: the synthetic conversations and the two small captures.
    let original = common::analyze(
        &[
            &pcap,
            &common::shared_pcaps().join("chrissanders_tcp_handshake.pcapng"),
            &common::shared_pcaps().join("chrissanders_tcp_refuseconnection.pcapng"),
        ],
        &[],
    );
    let as_sent = common::analyze(&[&sent], &[]);
    std::fs::remove_file(&pcap).ok();
    std::fs::remove_file(&sent).ok();
    assert_eq!(
        live.capture_total("packets"),
        original.capture_total("packets"),
        "frames captured"
    );
    let ring_full: u64 = live
        .intervals
        .iter()
        .map(|i| {
            i["capture"]["drops"]["worker_ring_full"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(ring_full, 0);
    // Timing-free counts equal the original capture's; every count equals the analysis of the
    // sender's own capture, and times match it within the documented receive-timestamp error
    // (docs/live.md).
    assert_matches(&live, &original, &as_sent);
    assert_times(&live, &as_sent, 200_000);
    lab.assert_no_xdp();
}

#[test]
fn two_queues_keep_each_flow_whole_and_equal_offline() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("q", 2);
    let pcap = generate("twoq", 120, 12);
    let monitor = Monitor::start(&lab, &["--workers", "2"]);
    let reference = Reference::start(&lab);
    replay_split(&lab, &pcap);
    std::thread::sleep(Duration::from_millis(300));
    let (live, code) = monitor.stop();
    let sent = reference.stop();
    let original = common::analyze(&[&pcap], &[]);
    let as_sent = common::analyze(&[&sent], &[]);
    std::fs::remove_file(&pcap).ok();
    std::fs::remove_file(&sent).ok();
    assert_eq!(code, 0);
    assert_eq!(
        live.capture_total("packets"),
        original.capture_total("packets")
    );
    // Each flow's directions came through two capture threads: only the workers'
    // capture-time merge puts SYN before SYN/ACK and data before its ACK again.
    assert_eq!(live.flows.len(), original.flows.len(), "flow count");
    assert_matches(&live, &original, &as_sent);
}

#[test]
fn interface_removed_while_running_exits_7_and_reports_what_it_saw() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("r", 1);
    let monitor = Monitor::start(&lab, &[]);
    replay(
        &lab,
        &common::shared_pcaps().join("chrissanders_tcp_handshake.pcapng"),
    );
    std::thread::sleep(Duration::from_millis(200));
    let deleted = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.gen(),
            "ip",
            "link",
            "del",
            &lab.gen_if(),
        ])
        .status();
    assert!(deleted.is_ok_and(|s| s.success()));
    let mut child = std::mem::replace(
        &mut { monitor }.child,
        Command::new("true").spawn().unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tcpulse did not notice the interface went away"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = Vec::new();
    if let Some(mut s) = child.stdout.take() {
        std::io::Read::read_to_end(&mut s, &mut out).ok();
    }
    assert_eq!(status.code(), Some(7));
    let run = common::parse_output(&out, String::new(), 7);
    assert_eq!(
        run.tcp_total("handshakes"),
        1,
        "what was captured before is reported"
    );
}

#[test]
fn setup_errors_are_clear_and_leave_nothing_attached() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("e", 1);
    let run = |args: &[&str]| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.mon(),
                env!("CARGO_BIN_EXE_tcpulse"),
                "run",
                "--duration",
                "1s",
            ])
            .args(args)
            .output()
            .expect("run tcpulse")
    };
    let iface = lab.mon_if();
    let cases: [(&[&str], i32, &str); 3] = [
        (&["--iface", "nosuch0"], 6, "nosuch0"),
        (&["--iface", &iface, "--queues", "3"], 6, "queue"),
        (
            &["--iface", &iface, "-o", "/nonexistent-dir/x.jsonl"],
            5,
            "/nonexistent-dir/x.jsonl",
        ),
    ];
    for (args, code, says) in cases {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // Without privilege: as nobody, with no capabilities.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.mon(),
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ])
        .args([
            "--inh-caps=-all",
            "--bounding-set=-all",
            env!("CARGO_BIN_EXE_tcpulse"),
            "run",
            "--iface",
            &iface,
        ])
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("CAP_"),
        "names the missing capability: {stderr}"
    );
    lab.assert_no_xdp();
}
