//! A flood of mid-stream segments with no handshake (spoofed sources, each segment its own
//! one-sided flow) mixed into ordinary traffic, through a flow table far smaller than the
//! flood: the table stays at its cap (evictions counted), the flood's one-sided flows go first,
//! so every ordinary connection is measured exactly as without the flood, and the analysis'
//! peak memory stays bounded by the table, not the flood. (SYN floods: tests/scenarios.rs and,
//! live, tests/live_gen.rs.)

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;

use tcpulse::gen::{Rng, Scenario, TcpFrame};
use tcpulse_core::schema::FlowRecord;
use tcpulse_io::capture::PcapWriter;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tcpulse-floods-{}-{name}", std::process::id()))
}

const FLOOD: u32 = 200_000;

fn is_flood(f: &FlowRecord) -> bool {
    f.client.to_string().starts_with("100.") || f.server.to_string().starts_with("100.")
}

/// Runs `tcpulse analyze` with its output in a file; the records and the peak memory.
fn analyze(pcap: &PathBuf, extra: &[&str]) -> (common::Run, u64) {
    let out = temp(&format!(
        "{}.jsonl",
        pcap.file_name().unwrap().to_string_lossy()
    ));
    let (code, peak) = common::run_measured(
        Command::new(env!("CARGO_BIN_EXE_tcpulse"))
            .arg("analyze")
            .arg(pcap)
            .args(["--progress", "false", "-o"])
            .arg(&out)
            .arg("--flows")
            .arg(&out)
            .args(extra),
    );
    let text = std::fs::read(&out).unwrap_or_default();
    std::fs::remove_file(&out).ok();
    (common::parse_output(&text, String::new(), code), peak)
}

#[test]
fn a_mid_stream_flood_leaves_ordinary_connections_exact_and_memory_bounded() {
    // Ordinary traffic without SYN resends or unanswered SYNs (those wait long enough to be
    // evicted by design; tests/scenarios.rs explains).
    let mut sc = Scenario::mixed(23, 1500);
    sc.unanswered_per_mille = 0;
    sc.syn_retransmits = tcpulse::gen::Feature::OFF;
    sc.synack_retransmits = tcpulse::gen::Feature::OFF;
    let g = sc.generate();
    let (t0, t1) = (g.frames[0].ts_ns, g.frames.last().unwrap().ts_ns);

    // Spoofed data segments from 100.64.0.0/10, each from its own address and port, to one
    // server, spread evenly over the capture.
    let mut rng = Rng::new(5);
    let flood: Vec<(u64, TcpFrame)> = (0..FLOOD)
        .map(|i| {
            let src = Ipv4Addr::from(0x6440_0000u32 + i);
            let frame = TcpFrame {
                src: IpAddr::V4(src),
                dst: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)),
                sport: 1024 + (rng.next_u64() % 60000) as u16,
                dport: 443,
                seq: rng.next_u64() as u32,
                ack: rng.next_u64() as u32,
                flags: 0x18,
                window: 512,
                payload_len: 40,
                mss: None,
                wscale: None,
                sack_permitted: false,
                timestamps: None,
                vlan: None,
                wrap: None,
            };
            (t0 + (t1 - t0) / u64::from(FLOOD) * u64::from(i), frame)
        })
        .collect();

    let (clean_path, flood_path) = (temp("clean.pcap"), temp("flood.pcap"));
    let _cleanup = common::TempFiles(vec![clean_path.clone(), flood_path.clone()]);
    let mut clean = PcapWriter::new(std::fs::File::create(&clean_path).unwrap(), 1, true).unwrap();
    let mut mixed = PcapWriter::new(std::fs::File::create(&flood_path).unwrap(), 1, true).unwrap();
    let mut buf = Vec::new();
    let mut f = flood.iter().peekable();
    for s in &g.frames {
        while let Some((ts, frame)) = f.next_if(|(ts, _)| *ts < s.ts_ns) {
            buf.clear();
            frame.write_ethernet(&mut buf);
            mixed.write_frame(*ts, &buf).unwrap();
        }
        buf.clear();
        s.frame.write_ethernet(&mut buf);
        clean.write_frame(s.ts_ns, &buf).unwrap();
        mixed.write_frame(s.ts_ns, &buf).unwrap();
    }
    for (ts, frame) in f {
        buf.clear();
        frame.write_ethernet(&mut buf);
        mixed.write_frame(*ts, &buf).unwrap();
    }
    clean.flush().unwrap();
    mixed.flush().unwrap();
    drop((clean, mixed));

    let max_flows = 20_000;
    let cap = max_flows.to_string();
    let (base, _) = analyze(&clean_path, &["--max-flows", &cap]);
    let (run, peak) = analyze(&flood_path, &["--max-flows", &cap]);
    assert_eq!(run.code, 0);
    let ordinary: Vec<&FlowRecord> = run.flows.iter().filter(|f| !is_flood(f)).collect();
    let expected: Vec<&FlowRecord> = base.flows.iter().collect();
    assert!(expected.len() >= 1500, "{}", expected.len());
    assert_eq!(
        ordinary.len(),
        expected.len(),
        "ordinary connections lost or split"
    );
    assert_eq!(
        ordinary, expected,
        "ordinary connections measured differently"
    );

    let evicted = run.drop_total("flow_table_full");
    let peak_active = run
        .intervals
        .iter()
        .map(|i| i.tcp.active_flows)
        .max()
        .unwrap_or(0);
    assert!(
        peak_active <= max_flows as u64,
        "table over its cap: {peak_active}"
    );
    assert!(
        evicted > u64::from(FLOOD) - max_flows as u64 - 2000,
        "evicted {evicted}"
    );
    let flood_flows = run.flows.iter().filter(|f| is_flood(f)).count();
    assert_eq!(
        flood_flows as u32, FLOOD,
        "one flow record per flood segment"
    );
    // The capture is memory-mapped (its pages count); the table is 20 k flows.
    let capture = std::fs::metadata(&flood_path).unwrap().len();
    eprintln!(
        "mid-stream flood: {evicted} evicted, peak {} KiB for a {} KiB capture",
        peak >> 10,
        capture >> 10
    );
    assert!(peak < capture + (160 << 20), "peak {peak} B");
}
