//! `tcpulse run --capture af-packet` and the AF_PACKET rings underneath, end to end on veth labs:
//! traffic replayed (or a real TCP exchange) from one network namespace, captured in the other.
//! Also the `tc mirred` recipe of docs/live.md: AF_XDP on a mirror of the interface.
//!
//! Needs root (CI runs as root); prints a skip line otherwise. Each test makes its own namespaces
//! with unique names, removed on drop even when it fails; removing a namespace removes its veths
//! and tc filters with it.

mod common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::live::{
    assert_interface_removal_exits_7, assert_matches, assert_times, capture_live, generate, replay,
    replay_with, root_or_skip, Lab, Monitor, Reference, TIMING_FREE,
};
use tcpulse_core::decode::{decode_frame, LinkType};
use tcpulse_io::capture::af_packet::{AfPacketOptions, AfPacketQueue};
use tcpulse_io::capture::{CaptureFile, LiveQueue};

const AF_PACKET: [&str; 2] = ["--capture", "af-packet"];

/// Runs `f` on a thread that has entered network namespace `ns` (made by `ip netns add`).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on a namespace descriptor affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}");
        f()
    })
    .join()
    .expect("namespace thread")
}

fn open_ring(lab: &Lab, member: u32) -> AfPacketQueue {
    let iface = lab.mon_if();
    in_netns(&lab.mon(), move || {
        AfPacketQueue::open(&iface, member, &AfPacketOptions::default()).expect("open ring")
    })
}

/// Receives from every ring until `want` frames came (or 20 s passed), then 300 ms more for
/// any extra. Per ring: (timestamp, frame) in arrival order.
fn collect(rings: &mut [AfPacketQueue], want: usize) -> Vec<Vec<(u64, Vec<u8>)>> {
    let mut got = vec![Vec::new(); rings.len()];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut quiet_until = None;
    loop {
        for (ring, out) in rings.iter_mut().zip(&mut got) {
            ring.recv_batch(10, &mut |f| out.push((f.ts_ns, f.data.to_vec())))
                .expect("recv_batch");
        }
        let n: usize = got.iter().map(Vec::len).sum();
        let now = Instant::now();
        if n >= want && quiet_until.is_none() {
            quiet_until = Some(now + Duration::from_millis(300));
        }
        if quiet_until.is_some_and(|t| now >= t) || now >= deadline {
            return got;
        }
    }
}

/// Runs `send` on another thread while receiving (a ring buffers only so much of a slow
/// sender's traffic: see `AfPacketOptions`); every ring reports no drops.
fn while_sending(
    rings: &mut [AfPacketQueue],
    want: usize,
    send: impl FnOnce() + Send,
) -> Vec<Vec<(u64, Vec<u8>)>> {
    let got = std::thread::scope(|s| {
        let sender = s.spawn(send);
        let got = collect(rings, want);
        sender.join().expect("sender");
        got
    });
    for r in rings.iter_mut() {
        assert_eq!(r.drops().af_packet_drops, 0, "ring drops");
    }
    got
}

/// The frames of a capture file that decode as TCP (what the filter keeps).
fn tcp_frames(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let file = CaptureFile::open(path).expect("open capture");
    file.frames()
        .map(|f| f.expect("frame"))
        .filter(|f| decode_frame(LinkType::Ethernet, f.data, f.wire_len, f.ts_ns).is_ok())
        .map(|f| (f.ts_ns, f.data.to_vec()))
        .collect()
}

fn is_tcp(frame: &[u8]) -> bool {
    decode_frame(LinkType::Ethernet, frame, frame.len() as u32, 0).is_ok()
}

fn connection(frame: &[u8]) -> Option<[(u128, u16); 2]> {
    let r = decode_frame(LinkType::Ethernet, frame, frame.len() as u32, 0).ok()?;
    let mut ends = [
        (u128::from_be_bytes(r.src.0), r.sport),
        (u128::from_be_bytes(r.dst.0), r.dport),
    ];
    ends.sort_unstable();
    Some(ends)
}

fn summary(what: &str, mut v: Vec<i64>) {
    v.sort_unstable();
    let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    println!(
        "{what} over {} frames: min {} ns, p50 {} ns, p90 {} ns, p99 {} ns, max {} ns",
        v.len(),
        q(0.0),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
}

#[test]
fn af_packet_run_equals_offline_analysis() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("pa", 1);
    let pcap = generate("pa", 150, 21);
    let shared = [
        common::shared_pcaps().join("chrissanders_tcp_handshake.pcapng"),
        common::shared_pcaps().join("chrissanders_tcp_refuseconnection.pcapng"),
        common::shared_pcaps().join("chrissanders_tcp_zerowindowrecovery.pcapng"),
    ];
    // The synthetic capture has one-sided VLAN tags: the kernel moves each tag out of the frame,
    // tcpulse puts it back, and the decoder sees the frame as sent.
    let drops = lab.kernel_drops();
    let (live, as_sent) = capture_live(Monitor::start(&lab, &AF_PACKET), &lab, || {
        replay(&lab, &pcap);
        for p in &shared {
            replay(&lab, p);
        }
    });

    let mut inputs: Vec<&Path> = vec![&pcap];
    inputs.extend(shared.iter().map(|p| p.as_path()));
    let original = common::analyze(&inputs, &[]);
    std::fs::remove_file(&pcap).ok();
    for name in [
        "retransmits",
        "zero_window",
        "rst",
        "syn",
        "synack",
        "handshakes",
    ] {
        assert!(original.tcp_total(name) > 0, "the inputs exercise {name}");
    }
    if !lab.accounted(&live, original.capture_total("packets"), drops) {
        return;
    }
    // Timing-free totals equal the original's analysis, per-flow counters the sender's
    // capture's; retransmissions and zero windows too, flow by flow.
    assert_matches(&live, &original, &as_sent);
    for name in ["retransmits", "zero_window", "new_flows"] {
        assert_eq!(
            live.tcp_total(name),
            as_sent.tcp_total(name),
            "total {name}"
        );
    }
    assert_eq!(live.flows.len(), original.flows.len(), "flows");
    assert_times(&live, &as_sent, 200_000);
}

/// `--filter` with AF_PACKET runs in the kernel: frames it rejects never reach the ring, so
/// `capture.filtered_out` counts only the frames whose VLAN tag the kernel had moved out of them
/// (the ring's filter cannot see the tag; user space runs the expression on them with the tag
/// put back). The run equals the offline analysis with the same filter.
#[test]
fn a_capture_filter_runs_in_the_kernel_and_equals_offline_analysis() {
    if !root_or_skip() {
        return;
    }
    const FILTER: &str = "tcp port 443";
    let lab = Lab::up("pk", 1);
    let pcap = generate("pk", 200, 26);
    let _files = common::TempFiles(vec![pcap.clone()]);
    let drops = lab.kernel_drops();
    let monitor = Monitor::start(&lab, &["--capture", "af-packet", "--filter", FILTER]);
    let (live, _) = capture_live(monitor, &lab, || replay(&lab, &pcap));
    let original = common::analyze(&[&pcap], &["--filter", FILTER]);
    let count = |expression: &str| -> u64 {
        let out = Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(&pcap)
            .arg(expression)
            .output()
            .expect("tcpdump");
        out.stdout.iter().filter(|&&b| b == b'\n').count() as u64
    };
    let (tagged, sent) = (count("vlan"), count(""));
    assert!(tagged > 0 && original.capture_total("filtered_out") > tagged);
    if live.socket_losses() + lab.kernel_drops() - drops > 0 {
        eprintln!("NOTE: frames lost on this busy machine; the exact comparison is skipped");
        return;
    }
    // Tagged frames fail the expression offline (the tag moves the headers), and reach user
    // space live, which rejects them; nothing else that was rejected reached it.
    assert_eq!(live.capture_total("filtered_out"), tagged);
    assert_eq!(
        live.capture_total("packets"),
        original.capture_total("packets")
    );
    assert!(original.capture_total("packets") + tagged < sent);
    for name in TIMING_FREE {
        assert_eq!(live.tcp_total(name), original.tcp_total(name), "{name}");
    }
    assert_eq!(live.flows.len(), original.flows.len());
}

#[test]
fn two_rings_give_the_one_ring_results() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("pt", 2);
    let pcap = generate("pt", 120, 22);
    let original = common::analyze(&[&pcap], &[]);
    let mut runs = Vec::new();
    for extra in [
        &["--threads", "1"][..],
        &["--threads", "2", "--workers", "2"],
    ] {
        let args: Vec<&str> = AF_PACKET.iter().chain(extra).copied().collect();
        let monitor = Monitor::start(&lab, &args);
        let drops = lab.kernel_drops();
        let (live, as_sent) = capture_live(monitor, &lab, || replay(&lab, &pcap));
        if !lab.accounted(&live, original.capture_total("packets"), drops) {
            std::fs::remove_file(&pcap).ok();
            return;
        }
        // A connection split over two rings would show as extra half flows or miscounts.
        assert_eq!(live.flows.len(), original.flows.len(), "flow count");
        assert_matches(&live, &original, &as_sent);
        runs.push(live);
    }
    std::fs::remove_file(&pcap).ok();
    let (one, two) = (&runs[0], &runs[1]);
    for name in TIMING_FREE {
        assert_eq!(one.tcp_total(name), two.tcp_total(name), "total {name}");
    }
    let packets = |r: &common::Run| -> HashMap<String, String> {
        r.flows
            .iter()
            .map(|f| {
                (
                    format!("{} {}", f.client, f.server),
                    format!("{:?}", f.packets),
                )
            })
            .collect()
    };
    assert_eq!(packets(one), packets(two), "per-flow packets");
}

#[test]
fn both_directions_of_each_connection_reach_one_ring() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("pf", 2);
    let pcap = generate("pf", 120, 23);
    let want = tcp_frames(&pcap);
    let mut rings = vec![open_ring(&lab, 0), open_ring(&lab, 1)];
    assert_eq!(rings[0].group_id(), rings[1].group_id(), "one fanout group");
    let got = while_sending(&mut rings, want.len(), || replay(&lab, &pcap));
    std::fs::remove_file(&pcap).ok();
    let per_ring: Vec<HashSet<_>> = got
        .iter()
        .map(|frames| frames.iter().filter_map(|(_, f)| connection(f)).collect())
        .collect();
    // The host's own traffic (IPv6 neighbour discovery, MLD) never passes the filter.
    assert!(got.iter().flatten().all(|(_, f)| is_tcp(f)), "only TCP");
    let total: usize = got.iter().map(Vec::len).sum();
    println!(
        "ring 0: {} frames, {} connections; ring 1: {} frames, {} connections",
        got[0].len(),
        per_ring[0].len(),
        got[1].len(),
        per_ring[1].len()
    );
    assert_eq!(total, want.len(), "every TCP frame once");
    assert!(!per_ring[0].is_empty() && !per_ring[1].is_empty());
    let shared: Vec<_> = per_ring[0].intersection(&per_ring[1]).collect();
    assert!(shared.is_empty(), "connections on both rings: {shared:?}");
}

#[test]
fn vlan_tags_are_put_back_byte_for_byte() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("pv", 1);
    let pcap = common::shared_pcaps().join("ndpi_mongodb.pcap");
    let want = tcp_frames(&pcap);
    assert!(
        want.iter().all(|(_, f)| f[12..14] == [0x81, 0x00]),
        "all tagged"
    );
    let mut rings = vec![open_ring(&lab, 0)];
    let got = while_sending(&mut rings, want.len(), || {
        // Its frames span four days: no pacing.
        replay_with(&lab, &pcap, &["--topspeed"]);
    });
    let got: Vec<&Vec<u8>> = got[0]
        .iter()
        .map(|(_, f)| f)
        .filter(|f| is_tcp(f))
        .collect();
    let want: Vec<&Vec<u8>> = want.iter().map(|(_, f)| f).collect();
    assert_eq!(got, want);
}

#[test]
fn the_host_still_receives_the_frames() {
    if !root_or_skip() {
        return;
    }
    const CONNECTIONS: u64 = 20;
    let lab = Lab::up("ph", 1);
    let monitor = Monitor::start(&lab, &AF_PACKET);
    // A server on the monitored end, a client on the other: with AF_XDP the server would never
    // see the SYNs (they go to tcpulse instead); with AF_PACKET every connection completes.
    let listener = in_netns(&lab.mon(), || {
        TcpListener::bind((Ipv4Addr::new(198, 51, 100, 2), 0)).expect("listen")
    });
    let port = listener.local_addr().expect("port").port();
    let server = std::thread::spawn(move || {
        let mut served = 0;
        for _ in 0..CONNECTIONS {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).expect("read");
            served += u64::from(buf == b"hello");
        }
        served
    });
    let connected = in_netns(&lab.gen(), move || {
        let to = SocketAddr::from((Ipv4Addr::new(198, 51, 100, 2), port));
        (0..CONNECTIONS)
            .filter(|_| {
                TcpStream::connect_timeout(&to, Duration::from_secs(2))
                    .and_then(|mut s| s.write_all(b"hello"))
                    .is_ok()
            })
            .count() as u64
    });
    let served = server.join().expect("server");
    std::thread::sleep(Duration::from_millis(300));
    let (live, code) = monitor.stop();
    assert_eq!(code, 0);
    assert_eq!(
        (connected, served),
        (CONNECTIONS, CONNECTIONS),
        "the host got every frame"
    );
    // Frames the host received and the replies it sent, both seen on the one interface.
    for name in ["syn", "synack", "handshakes"] {
        assert_eq!(live.tcp_total(name), CONNECTIONS, "{name}");
    }
    assert_eq!(live.flows.len() as u64, CONNECTIONS);
}

#[test]
fn interface_removed_while_running_exits_7() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("pr", 1);
    assert_interface_removal_exits_7(&lab, Monitor::start(&lab, &AF_PACKET));
}

#[test]
fn setup_errors_are_clear() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("pe", 1);
    let iface = lab.mon_if();
    let run = |pre: &[&str], args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &lab.mon()])
            .args(pre)
            .args([env!("CARGO_BIN_EXE_tcpulse"), "run", "--duration", "1s"])
            .args(args)
            .output()
            .expect("run tcpulse");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ];
    let cases: [(&[&str], &[&str], &str); 4] = [
        (
            &[],
            &["--iface", "nosuch0", "--capture", "af-packet"],
            "\"nosuch0\" does not exist",
        ),
        (
            &[],
            &["--iface", &iface, "--capture", "af-packet", "--queues", "0"],
            "--threads",
        ),
        (
            &[],
            &["--iface", &iface, "--threads", "2"],
            "AF_PACKET rings",
        ),
        (
            &nobody,
            &["--iface", &iface, "--capture", "af-packet"],
            "CAP_NET_RAW",
        ),
    ];
    for (pre, args, says) in cases {
        let (code, stderr) = run(pre, args);
        assert_eq!(code, Some(6), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// docs/live.md's recipe: mirror the interface's ingress and egress to a dedicated veth with
/// tc mirred and run AF_XDP on its peer, so the monitored interface keeps every frame.
#[test]
fn xdp_on_a_tc_mirred_copy_equals_offline_analysis() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("pm", 1);
    let (mirror, tap) = (format!("{}-x", lab.name), format!("{}-y", lab.name));
    let mon = lab.mon();
    let mon_if = lab.mon_if();
    let sh = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &mon])
            .args(args)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(&[
        "ip", "link", "add", &mirror, "type", "veth", "peer", "name", &tap,
    ]);
    sh(&["ip", "link", "set", &mirror, "up"]);
    sh(&["ip", "link", "set", &tap, "up"]);
    sh(&["tc", "qdisc", "add", "dev", &mon_if, "clsact"]);
    for dir in ["ingress", "egress"] {
        let mirror_all = |classifier: &[&str]| {
            Command::new("ip")
                .args([
                    "netns", "exec", &mon, "tc", "filter", "add", "dev", &mon_if, dir,
                ])
                .args(classifier)
                .args(["action", "mirred", "egress", "mirror", "dev", &mirror])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        // The documented matchall form; the u32 form where the kernel lacks cls_matchall.
        assert!(
            mirror_all(&["matchall"])
                || mirror_all(&["protocol", "all", "u32", "match", "u32", "0", "0"]),
            "tc mirred {dir}"
        );
    }
    let pcap = generate("pm", 100, 24);
    let handshake = common::shared_pcaps().join("chrissanders_tcp_handshake.pcapng");
    let monitor = Monitor::start_on(&mon, &tap, &[]);
    let drops = lab.kernel_drops();
    let (live, as_sent) = capture_live(monitor, &lab, || {
        replay(&lab, &pcap);
        replay(&lab, &handshake);
    });
    let original = common::analyze(&[&pcap, &handshake], &[]);
    std::fs::remove_file(&pcap).ok();
    // The monitor watches a mirror of the lab's veth; the mirror's own veth may drop too.
    let kernel = lab.kernel_drops() - drops + common::live::tx_dropped(&mon, &mirror);
    if !common::live::accounted(&live, original.capture_total("packets"), kernel) {
        return;
    }
    assert_matches(&live, &original, &as_sent);
    assert_eq!(live.flows.len(), original.flows.len(), "flows");
}

/// Measurement (run with `--ignored --nocapture`): each frame's ring timestamp against the
/// sender's own capture of it (tcpdump on the generator end, AF_PACKET's software stamp of the
/// frame leaving).
#[test]
#[ignore]
fn timestamp_precision() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::up("pp", 1);
    let pcap = generate("pp", 300, 25);
    let want = tcp_frames(&pcap).len();
    let mut rings = vec![open_ring(&lab, 0)];
    let reference = Reference::start(&lab);
    let got = while_sending(&mut rings, want, || replay(&lab, &pcap));
    let sent = reference.stop();
    let mut by_bytes: HashMap<Vec<u8>, VecDeque<u64>> = HashMap::new();
    for (ts, f) in tcp_frames(&sent) {
        by_bytes.entry(f).or_default().push_back(ts);
    }
    std::fs::remove_file(&pcap).ok();
    std::fs::remove_file(&sent).ok();
    let diffs: Vec<i64> = got[0]
        .iter()
        .filter_map(|(ts, f)| {
            let sent = by_bytes.get_mut(f)?.pop_front()?;
            Some(*ts as i64 - sent as i64)
        })
        .collect();
    assert!(
        diffs.len() * 10 >= want * 9,
        "{} of {want} matched",
        diffs.len()
    );
    let monotonic = got[0].windows(2).all(|w| w[1].0 >= w[0].0);
    println!("ring timestamps monotonic: {monotonic}");
    summary("ring timestamp - sender's capture timestamp", diffs);
}
