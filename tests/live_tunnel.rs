//! Live capture of a real kernel VXLAN overlay: two namespaces talk TCP over `vxlan` devices on
//! a veth underlay; the underlay is mirrored with tc mirred to the lab's monitor link, where
//! tcpulse captures by AF_XDP and by AF_PACKET. The live flows must equal the offline analysis of
//! the same mirrored frames (the sender's tcpdump), and name the tunnel. The generator's wrapped
//! scenario, sent into an AF_PACKET monitor, equals its offline analysis and its truth.
//!
//! Needs root (CI runs as root); prints a skip line otherwise. Namespaces have unique names and
//! are removed on drop, failing runs included.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::live::{
    assert_matches, assert_same_flows, assert_times, capture_live, gen_send, root_or_skip, Lab,
    Monitor, TIMING_FREE,
};
use tcpulse_core::decode::Encap;

const VNI: u32 = 4242;
const SERVER: &str = "10.78.0.2";
const REQUESTS: usize = 5;

/// The overlay's far end: its namespace and web server, removed on drop.
struct FarEnd {
    ns: String,
    server: Option<Child>,
}

impl Drop for FarEnd {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn sh(ns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{ns}: {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn curl(ns: &str) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "5",
        ])
        .arg(format!("http://{SERVER}:8080/"))
        .status()
        .is_ok_and(|s| s.success())
}

/// The lab's generator namespace becomes one VXLAN end, a new namespace the other; the
/// generator's underlay veth is mirrored to the link the monitor listens on.
fn overlay(lab: &Lab) -> FarEnd {
    let gen = lab.gen();
    let far = FarEnd {
        ns: format!("{}-far", lab.name),
        server: None,
    };
    let (u, uf) = (format!("{}-u", lab.name), format!("{}-uf", lab.name));
    let status = Command::new("ip").args(["netns", "add", &far.ns]).status();
    assert!(status.is_ok_and(|s| s.success()), "ip netns add");
    sh(
        &gen,
        &["ip", "link", "add", &u, "type", "veth", "peer", "name", &uf],
    );
    sh(&gen, &["ip", "link", "set", &uf, "netns", &far.ns]);
    for (ns, dev, under, over, remote) in [
        (&gen, &u, "10.77.0.1/24", "10.78.0.1/24", "10.77.0.2"),
        (&far.ns, &uf, "10.77.0.2/24", "10.78.0.2/24", "10.77.0.1"),
    ] {
        sh(ns, &["ip", "addr", "add", under, "dev", dev]);
        sh(ns, &["ip", "link", "set", dev, "up"]);
        sh(ns, &["ip", "link", "set", "lo", "up"]);
        let vni = VNI.to_string();
        let vxlan = [
            "type", "vxlan", "id", &vni, "remote", remote, "dstport", "4789", "dev", dev,
        ];
        sh(ns, &[&["ip", "link", "add", "vx0"][..], &vxlan].concat());
        sh(ns, &["ip", "addr", "add", over, "dev", "vx0"]);
        sh(ns, &["ip", "link", "set", "vx0", "up"]);
    }
    sh(&gen, &["tc", "qdisc", "add", "dev", &u, "clsact"]);
    for dir in ["ingress", "egress"] {
        let mirror = |classifier: &[&str]| {
            Command::new("ip")
                .args(["netns", "exec", &gen, "tc", "filter", "add", "dev", &u, dir])
                .args(classifier)
                .args(["action", "mirred", "egress", "mirror", "dev", &lab.gen_if()])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        assert!(
            mirror(&["matchall"]) || mirror(&["protocol", "all", "u32", "match", "u32", "0", "0"]),
            "tc mirred {dir}"
        );
    }
    far
}

fn serve(far: &mut FarEnd, client_ns: &str) {
    let server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &far.ns,
            "python3",
            "-m",
            "http.server",
            "8080",
        ])
        .args(["--bind", SERVER])
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    far.server = Some(server);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !curl(client_ns) {
        assert!(
            Instant::now() < deadline,
            "the overlay's server never answered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn overlay_run(tag: &str, extra: &[&str]) {
    let lab = Lab::up(tag, 1);
    let mut far = overlay(&lab);
    serve(&mut far, &lab.gen());
    let monitor = Monitor::start(&lab, extra);
    let (live, as_sent) = capture_live(monitor, &lab, || {
        for _ in 0..REQUESTS {
            assert!(curl(&lab.gen()), "a request over the overlay");
        }
    });
    // The reference: every request a flow with a complete handshake, named as VXLAN.
    let overlay_flows: Vec<_> = as_sent
        .flows
        .iter()
        .filter(|f| f.server.port == 8080)
        .collect();
    assert_eq!(overlay_flows.len(), REQUESTS, "{:?}", as_sent.flows);
    for f in &overlay_flows {
        let tunnel = f.tunnel.expect("flows over the overlay name their tunnel");
        assert_eq!((tunnel.kind, tunnel.id), (Encap::Vxlan, Some(VNI)));
        assert!(f.handshake.is_some_and(|h| h.total_ns.is_some()));
    }
    // Live equals the offline analysis of the same frames.
    assert_eq!(live.own_losses(), 0, "a few hundred frames are never lost");
    for name in TIMING_FREE {
        assert_eq!(
            live.tcp_total(name),
            as_sent.tcp_total(name),
            "total {name}"
        );
    }
    assert_eq!(assert_same_flows(&live, &as_sent), as_sent.flows.len());
    let decapsulated = |run: &common::Run| -> u64 {
        run.intervals
            .iter()
            .map(|i| i.capture.decapsulated.get("vxlan").copied().unwrap_or(0))
            .sum()
    };
    assert_eq!(decapsulated(&live), decapsulated(&as_sent));
    assert!(decapsulated(&live) >= (REQUESTS * 8) as u64);
}

#[test]
fn a_kernel_vxlan_overlay_captured_by_af_xdp_equals_offline_analysis() {
    if root_or_skip() {
        overlay_run("vx", &[]);
    }
}

#[test]
fn a_kernel_vxlan_overlay_captured_by_af_packet_equals_offline_analysis() {
    if root_or_skip() {
        overlay_run("va", &["--capture", "af-packet"]);
    }
}

/// The generator's wrapped scenario (`configs/scenarios/tunnels.toml`: VXLAN, GENEVE, GRE,
/// ERSPAN, IP in IP, MPLS and PPPoE, IPv6 and VLAN tags inside) sent into an AF_PACKET monitor:
/// live equals the offline analysis of the same frames, and every flow names its tunnel as the
/// generator's truth does. (The AF_XDP monitor gets every example scenario in tests/live_gen.rs.)
#[test]
fn generated_encapsulations_captured_by_af_packet_equal_offline_and_truth() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("vg", 1);
    let temp =
        |name: &str| std::env::temp_dir().join(format!("tcpulse-vg-{}-{name}", std::process::id()));
    let (out, truth, sent) = (
        temp("tunnels.pcap"),
        temp("tunnels.truth.jsonl"),
        temp("tunnels-sent.pcap"),
    );
    let _files = common::TempFiles(vec![out.clone(), truth.clone(), sent.clone()]);
    let scenario = common::live::repo().join("configs/scenarios/tunnels.toml");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_string();
    let monitor = Monitor::start(&lab, &["--capture", "af-packet"]);
    let drops = lab.kernel_drops();
    // The generator's own record of what it sent is the timing reference (taps on the sending
    // interface do not see what it sends).
    gen_send(
        &lab,
        &[
            "--scenario",
            &path(&scenario),
            "--connections",
            "300",
            "--spread",
            "1",
            "--speed",
            "4",
            "--out",
            &path(&out),
            "--truth",
            &path(&truth),
            "--sent",
            &path(&sent),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let (live, code) = monitor.stop();
    assert_eq!(code, 0, "SIGTERM ends the run cleanly");
    let as_sent = common::analyze(&[&sent], &[]);
    let original = common::analyze(&[&out], &[]);
    let decapsulated = original.decapsulated_totals();
    for kind in [
        "vxlan", "geneve", "gre", "erspan", "ip_in_ip", "mpls", "pppoe",
    ] {
        assert!(decapsulated[kind] > 0, "{kind} in {decapsulated:?}");
    }
    if !lab.accounted(&live, original.capture_total("packets"), drops) {
        return;
    }
    assert_matches(&live, &original, &as_sent);
    assert_times(&live, &as_sent, 500_000);
    assert_eq!(live.flows.len(), 300);
    let by_conn: HashMap<String, serde_json::Value> = live
        .flows
        .iter()
        .map(|f| {
            let v = serde_json::to_value(f).expect("a record serialises");
            (format!("{} {}", f.client, f.server), v)
        })
        .collect();
    let lines = std::fs::read_to_string(&truth).expect("the truth file");
    let mut tunnels = 0;
    for line in lines.lines() {
        let t: serde_json::Value = serde_json::from_str(line).expect("a truth line");
        let key = format!(
            "{} {}",
            t["client"].as_str().unwrap(),
            t["server"].as_str().unwrap()
        );
        let flow = &by_conn[&key];
        // The tunnel and what does not depend on timing equal the truth (timings are checked
        // against the frames as sent).
        for field in [
            "tunnel",
            "packets",
            "payload_bytes",
            "syn",
            "fin",
            "rst",
            "close",
        ] {
            assert_eq!(flow[field], t[field], "{key} {field}");
        }
        tunnels += usize::from(!t["tunnel"].is_null());
    }
    assert!(tunnels > 150, "{tunnels} of 300 flows through a tunnel");
}
