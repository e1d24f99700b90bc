//! The generator sending live (`tcpulse gen --send`, AF_XDP TX) into `tcpulse run` on a veth
//! lab: every example scenario sent over two queues gives the counts of its offline analysis,
//! and per flow the counts and handshake times of the generator's own record of what it sent;
//! a SYN flood keeps the monitor's memory under its flow-table cap, shows as backlog pressure
//! on the target, and leaves the other servers' figures exact; frames over the sending
//! interface's MTU are refused before anything is sent. Needs root (CI runs as root);
//! each test makes and removes its own namespaces.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::live::{assert_matches, assert_times, repo, root_or_skip, Lab, Monitor};

/// The tests here measure timing: one at a time, so they do not load each other's cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tcpulse-livegen-{}-{name}", std::process::id()))
}

/// `tcpulse gen ARGS --send GEN_IF --out OUT --sent SENT` in the generator's namespace.
fn send(lab: &Lab, name: &str, args: &[&str]) -> (PathBuf, PathBuf) {
    let (out, sent) = (
        temp(&format!("{name}.pcap")),
        temp(&format!("{name}-sent.pcap")),
    );
    let result = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.gen(),
            env!("CARGO_BIN_EXE_tcpulse"),
            "gen",
        ])
        .args(args)
        .args(["--send", &lab.gen_if(), "--out"])
        .arg(&out)
        .arg("--sent")
        .arg(&sent)
        .output()
        .expect("run tcpulse gen");
    let stderr = String::from_utf8_lossy(&result.stderr);
    eprintln!("{stderr}");
    assert!(result.status.success(), "gen --send: {stderr}");
    assert!(
        stderr.contains("AF_XDP TX"),
        "not sent with AF_XDP: {stderr}"
    );
    (out, sent)
}

#[test]
fn every_example_scenario_sent_live_equals_offline_and_the_sent_record() {
    if !root_or_skip() {
        return;
    }
    let _one_at_a_time = serial();
    let lab = Lab::up("g", 2);
    let dir = repo().join("configs/scenarios");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("configs/scenarios")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".toml"))
        // Floods have their own test below (a million flow records are no per-flow check).
        .filter(|n| {
            let text = std::fs::read_to_string(dir.join(n)).unwrap_or_default();
            !text.contains("[scenario.flood]")
        })
        .collect();
    names.sort();
    assert!(names.len() >= 5, "{names:?}");
    for name in &names {
        eprintln!("== {name}");
        let monitor = Monitor::start(&lab, &["--workers", "2"]);
        let drops = lab.kernel_drops();
        let scenario = dir.join(name);
        // Both queues carry traffic, each connection on one (symmetric spread); scenario
        // times at 4x speed, so a run takes a few seconds.
        let (out, sent) = send(
            &lab,
            name,
            &[
                "--scenario",
                scenario.to_str().expect("utf-8 path"),
                "--connections",
                "150",
                "--spread",
                "1",
                "--speed",
                "4",
                "--tx-queues",
                "0-1",
            ],
        );
        let _files = common::TempFiles(vec![out.clone(), sent.clone()]);
        std::thread::sleep(Duration::from_millis(300));
        let (live, code) = monitor.stop();
        assert_eq!(code, 0, "{name}");
        let original = common::analyze(&[&out], &[]);
        let as_sent = common::analyze(&[&sent], &[]);
        assert_eq!(
            as_sent.capture_total("packets"),
            original.capture_total("packets"),
            "{name}: the generator sent every frame"
        );
        if !lab.accounted(&live, as_sent.capture_total("packets"), drops) {
            continue;
        }
        assert_eq!(live.flows.len(), original.flows.len(), "{name}: flows");
        assert_matches(&live, &original, &as_sent);
        // The sent record stamps each send call's frames with the time just before the call;
        // the monitor stamps them in the XDP program microseconds later (p50 ~0.5 us, p99
        // 8-57 us measured on a quiet machine; a sender preempted between its clock read and
        // the call, or a receive softirq deferred on a busy core, adds to that).
        assert_times(&live, &as_sent, 500_000);
    }
    lab.assert_no_xdp();
}

/// Sum over intervals of `servers[server == name].field`.
fn server_total(run: &common::Run, server: &str, field: &str) -> u64 {
    let c = common::counter(field);
    run.intervals
        .iter()
        .flat_map(|i| &i.servers)
        .filter(|s| s.server == server)
        .map(|s| s.counters.get(c))
        .sum()
}

fn servers(run: &common::Run) -> Vec<String> {
    let mut all: Vec<String> = run
        .intervals
        .iter()
        .flat_map(|i| &i.servers)
        .map(|s| s.server.clone())
        .collect();
    all.sort();
    all.dedup();
    all
}

#[test]
fn a_live_syn_flood_stays_under_the_table_cap_and_shows_as_backlog_pressure() {
    if !root_or_skip() {
        return;
    }
    let _one_at_a_time = serial();
    let lab = Lab::up("f", 1);
    let scenario = temp("flood.toml");
    let _files = common::TempFiles(vec![scenario.clone()]);
    // Legitimate handshakes stay short (no SYN resends, every SYN answered): a handshake
    // waiting longer than a flood SYN survives in the full table is evicted like the flood's.
    std::fs::write(
        &scenario,
        "[scenario]\nconnections = 300\nseed = 41\nspread = \"1s\"\nunanswered = \"0%\"\n\
         [scenario.handshake]\nsyn_retransmits = { share = \"0%\" }\n\
         synack_retransmits = { share = \"0%\" }\n\
         [scenario.flood]\nsyns = 200_000\nipv6 = \"10%\"\nanswered = \"20%\"\n\
         rate = 200_000\n",
    )
    .expect("write the scenario");
    let max_flows = 20_000u64;
    let cap = max_flows.to_string();
    let args = [
        "--iface",
        &lab.mon_if(),
        "--interval",
        "1s",
        "--max-flows",
        &cap,
        "--top-servers",
        "1000",
    ];
    let monitor = Monitor::start_with(&lab.mon(), &args);
    let before = monitor.peak_rss();
    let drops = lab.kernel_drops();
    let (out, sent) = send(
        &lab,
        "flood",
        &[
            "--scenario",
            scenario.to_str().expect("utf-8 path"),
            "--speed",
            "1",
        ],
    );
    let _sent_files = common::TempFiles(vec![out.clone(), sent.clone()]);
    std::thread::sleep(Duration::from_millis(300));
    let peak = monitor.peak_rss();
    let (live, code) = monitor.stop();
    assert_eq!(code, 0);
    let original = common::analyze(&[&out], &["--max-flows", &cap, "--top-servers", "1000"]);
    let sent_frames = common::analyze(&[&sent], &["--max-flows", &cap]).capture_total("packets");
    let lossless = lab.accounted(&live, sent_frames, drops);

    // Memory: the table is sized by --max-flows, not by the flood. Once running, the monitor
    // grows by no more than the table's share of its cap (< 1 KiB a flow, generously) and its
    // capture queue, which a burst fills for the first time (fixed by configuration too).
    let queue_bytes = (tcpulse_io::dispatch::queue_depth(tcpulse_io::dispatch::Backpressure::Drop)
        * tcpulse_io::dispatch::BATCH
        * std::mem::size_of::<tcpulse_core::decode::PacketRecord>()) as u64;
    eprintln!(
        "monitor RSS: {} KiB before the flood, peak {} KiB",
        before >> 10,
        peak >> 10
    );
    assert!(peak > 0, "VmHWM unreadable");
    assert!(
        peak < before + max_flows * 1024 + queue_bytes,
        "peak {peak} B, before {before} B, queue {queue_bytes} B"
    );
    let evicted = live.drop_total("flow_table_full");
    let target = "203.0.113.1:443";
    // A flood the monitor could not keep up with (counted above) still fills its table and
    // shows as backlog pressure; the exact counts need every frame.
    if lossless {
        assert!(evicted > 150_000, "flow_table_full {evicted}");
        // The target: every SYN counted.
        assert_eq!(
            server_total(&live, target, "syn"),
            server_total(&original, target, "syn")
        );
        assert!(server_total(&live, target, "syn") > 180_000);
    } else {
        assert!(evicted > 0, "flow_table_full {evicted}");
    }
    // Backlog pressure near 1 in the flood's intervals.
    let worst = live
        .intervals
        .iter()
        .flat_map(|i| &i.servers)
        .filter(|s| s.server == target)
        .map(|s| s.backlog_pressure)
        .fold(0.0, f64::max);
    assert!(worst > 0.9, "backlog pressure {worst}");

    // Every other server's figures are the offline analysis's: legitimate traffic is still
    // measured correctly next to the flood.
    let fields: [&str; 6] = [
        "syn",
        "synack",
        "handshakes",
        "rst",
        "retransmits",
        "zero_window",
    ];
    let others: Vec<String> = servers(&original)
        .into_iter()
        .filter(|s| s != target && !s.contains("2001:db8:5::1]:443") && s != "other")
        .collect();
    assert!(others.len() > 10, "{others:?}");
    for server in others.iter().filter(|_| lossless) {
        for field in fields {
            assert_eq!(
                server_total(&live, server, field),
                server_total(&original, server, field),
                "{server} {field}"
            );
        }
    }

    lab.assert_no_xdp();
}

/// Frames longer than the sending interface's MTU would vanish in the device or its peer
/// without a word: `gen --send` refuses them before sending, naming the MTU (exit 6).
#[test]
fn frames_over_the_mtu_are_refused_before_sending() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("gm", 1);
    let set_mtu = Command::new("ip")
        .args([
            "-n",
            &lab.gen(),
            "link",
            "set",
            &lab.gen_if(),
            "mtu",
            "1400",
        ])
        .status()
        .expect("ip link set mtu");
    assert!(set_mtu.success());
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.gen()])
        .arg(env!("CARGO_BIN_EXE_tcpulse"))
        .args(["gen", "--connections", "50", "--send", &lab.gen_if()])
        .output()
        .expect("run tcpulse gen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    let longest: usize = stderr
        .split("packets of up to ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet length in: {stderr}"));
    // The default scenario's segments make IP packets of up to 1500 bytes.
    assert!((1401..=1500).contains(&longest), "{stderr}");
    assert!(
        stderr.contains(&format!("{}'s MTU of 1400", lab.gen_if())),
        "{stderr}"
    );
    assert!(!stderr.contains("sent "), "nothing sent: {stderr}");
}
