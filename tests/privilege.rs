//! `tcpulse run --user nobody`: once running, every thread is `nobody` with no capability at all
//! and no way to gain one (read from /proc/PID/task/*/status), capture and analysis go on, and
//! at SIGTERM the XDP program and promiscuous mode still go away. Needs root (CI runs as root).

mod common;

use std::time::Duration;

use common::live::{gen_send, root_or_skip, Lab, Monitor};

/// `Name:\tvalue...` lines of a /proc status file.
fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map_or("", str::trim)
}

#[test]
fn after_start_up_every_thread_is_the_user_without_capabilities() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("u", 1);
    let monitor = Monitor::start(&lab, &["--user", "nobody", "--promisc"]);
    // The switch follows set-up; give it a moment after "capturing on".
    std::thread::sleep(Duration::from_millis(500));
    let pid = monitor.child.id();
    let main = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert_eq!(field(&main, "Uid"), "65534\t65534\t65534\t65534", "{main}");
    assert_eq!(field(&main, "Gid"), "65534\t65534\t65534\t65534", "{main}");
    assert_eq!(field(&main, "Groups"), "");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(&main, cap), "0000000000000000", "{cap}");
    }
    assert_eq!(field(&main, "NoNewPrivs"), "1");
    let mut threads = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let path = task.expect("task").path().join("status");
        let status = std::fs::read_to_string(path).expect("task status");
        assert_eq!(field(&status, "Uid"), "65534\t65534\t65534\t65534");
        assert_eq!(field(&status, "CapPrm"), "0000000000000000");
        assert_eq!(field(&status, "CapEff"), "0000000000000000");
        assert_eq!(field(&status, "NoNewPrivs"), "1");
        threads += 1;
    }
    assert!(
        threads >= 4,
        "main, worker, merger and capture threads: {threads}"
    );

    gen_send(&lab, &["--connections", "50", "--speed", "10"]);
    std::thread::sleep(Duration::from_millis(1500));
    let (live, code) = monitor.stop();
    assert_eq!(code, 0);
    assert!(
        live.tcp_total("handshakes") >= 40,
        "still analysing as nobody"
    );
    lab.assert_no_xdp();
    let link = std::process::Command::new("ip")
        .args(["-n", &lab.mon(), "link", "show", &lab.mon_if()])
        .output()
        .expect("ip link");
    let text = String::from_utf8_lossy(&link.stdout);
    assert!(
        !text.contains("PROMISC"),
        "promiscuous mode left on: {text}"
    );
}

#[test]
fn an_unknown_user_stops_start_up_cleanly() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("uu", 1);
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.mon(),
            env!("CARGO_BIN_EXE_tcpulse"),
            "run",
        ])
        .args(["--iface", &lab.mon_if(), "--user", "no-such-user-tcpulse"])
        .output()
        .expect("run tcpulse");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("no such user"), "{stderr}");
    lab.assert_no_xdp();
}
