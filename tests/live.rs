//! `tcpulse run` end to end on a veth lab: traffic replayed from one network namespace is
//! captured with AF_XDP in the other, and the records equal the offline analysis of the same
//! packets. Needs root (CI runs as root); prints a skip line otherwise. Each test makes its own
//! namespaces with unique names and removes them even when it fails.

mod common;

use std::path::Path;
use std::process::Command;

use common::live::{
    assert_interface_removal_exits_7, assert_matches, assert_times, capture_live, generate, replay,
    repo, root_or_skip, Lab, Monitor,
};

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

#[test]
fn live_capture_equals_offline_analysis() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("a", 1);
    let pcap = generate("mixed", 150, 11);
    let drops = lab.kernel_drops();
    let (live, as_sent) = capture_live(Monitor::start(&lab, &[]), &lab, || {
        replay(&lab, &pcap);
        for name in [
            "chrissanders_tcp_handshake.pcapng",
            "chrissanders_tcp_refuseconnection.pcapng",
        ] {
            replay(&lab, &common::shared_pcaps().join(name));
        }
    });

    // What was sent, analysed offline: the synthetic conversations and the two small captures.
    let original = common::analyze(
        &[
            &pcap,
            &common::shared_pcaps().join("chrissanders_tcp_handshake.pcapng"),
            &common::shared_pcaps().join("chrissanders_tcp_refuseconnection.pcapng"),
        ],
        &[],
    );
    std::fs::remove_file(&pcap).ok();
    // Timing-free counts equal the original capture's; every count equals the analysis of the
    // sender's own capture, and times match it within the documented receive-timestamp error
    // (docs/live.md).
    if lab.accounted(&live, original.capture_total("packets"), drops) {
        assert_matches(&live, &original, &as_sent);
        assert_times(&live, &as_sent, 200_000);
    }
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
    let drops = lab.kernel_drops();
    let (live, as_sent) = capture_live(monitor, &lab, || replay_split(&lab, &pcap));
    let original = common::analyze(&[&pcap], &[]);
    std::fs::remove_file(&pcap).ok();
    // Each flow's directions came through two capture threads: only the workers'
    // capture-time merge puts SYN before SYN/ACK and data before its ACK again.
    if lab.accounted(&live, original.capture_total("packets"), drops) {
        assert_eq!(live.flows.len(), original.flows.len(), "flow count");
        assert_matches(&live, &original, &as_sent);
    }
}

#[test]
fn interface_removed_while_running_exits_7_and_reports_what_it_saw() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("r", 1);
    assert_interface_removal_exits_7(&lab, Monitor::start(&lab, &[]));
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
