//! Synthetic captures with known answers: `tcpulse::gen` writes a pcap and the truth for every
//! connection in it; the real binary analyses the pcap, and each flow record must equal its
//! truth field for field (handshake legs to the nanosecond, every per-direction count, the close
//! reason). One test per feature, then a mixed capture of thousands of flows, analysed with one
//! and with three workers.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use tcpulse::gen::{self, CloseMix, Feature, Scenario, Truth};
use tcpulse_core::schema::FlowRecord;

const US: u64 = 1_000;
const MS: u64 = 1_000_000;

/// A pcap in the temp directory, removed when dropped (also when a test fails).
struct TempPcap(PathBuf);

impl TempPcap {
    fn new(name: &str) -> TempPcap {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let file = format!("tcpulse-synthetic-{name}-{}-{n}.pcap", std::process::id());
        TempPcap(std::env::temp_dir().join(file))
    }
}

impl Drop for TempPcap {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write(name: &str, sc: &Scenario) -> (TempPcap, Vec<Truth>) {
    let pcap = TempPcap::new(name);
    let truths = gen::write_pcap(sc, &pcap.0).expect("write the synthetic pcap");
    (pcap, truths)
}

fn analyze(pcap: &Path, extra: &[&str]) -> common::Run {
    let run = common::analyze(&[pcap], extra);
    assert_eq!(run.code, 0, "tcpulse failed: {}", run.stderr);
    run
}

/// Every truth has exactly one flow record with the same client and server, equal to it in
/// every field the truth has; and there are no other flow records.
fn assert_flows_match(truths: &[Truth], flows: &[FlowRecord]) {
    // Compared field by field in the records' JSON form, which the truth has too.
    let flows: Vec<Value> = flows
        .iter()
        .map(|f| serde_json::to_value(f).expect("a record serialises"))
        .collect();
    let mut by_conn: HashMap<(String, String), Vec<&Value>> = HashMap::new();
    for f in &flows {
        let key = (
            f["client"].as_str().expect("client").to_string(),
            f["server"].as_str().expect("server").to_string(),
        );
        by_conn.entry(key).or_default().push(f);
    }
    let mut problems = Vec::new();
    for t in truths {
        let key = (t.client.to_string(), t.server.to_string());
        let want = gen::truth_json(t);
        let got = match by_conn.get(&key).map(Vec::as_slice) {
            Some([one]) => *one,
            Some(many) => {
                problems.push(format!(
                    "{} → {}: {} flow records",
                    key.0,
                    key.1,
                    many.len()
                ));
                continue;
            }
            None => {
                problems.push(format!("{} → {}: no flow record", key.0, key.1));
                continue;
            }
        };
        for (field, value) in want.as_object().into_iter().flatten() {
            if field != "type" && !gen::field_matches(&got[field], value) {
                problems.push(format!(
                    "{} → {} ({}): {field} want {value} got {}",
                    key.0, key.1, t.close, got[field]
                ));
            }
        }
    }
    if flows.len() != truths.len() {
        problems.push(format!(
            "{} flow records for {} connections",
            flows.len(),
            truths.len()
        ));
    }
    assert!(
        problems.is_empty(),
        "{} of {} connections disagree with the truth; first ones:\n{}",
        problems.len(),
        truths.len(),
        problems
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Generates `sc`, analyses it, and checks every connection.
fn check(name: &str, sc: &Scenario) -> Vec<Truth> {
    let (pcap, truths) = write(name, sc);
    let run = analyze(&pcap.0, &[]);
    assert_flows_match(&truths, &run.flows);
    truths
}

fn total(truths: &[Truth], f: impl Fn(&Truth) -> (u32, u32)) -> u32 {
    truths.iter().map(|t| f(t).0 + f(t).1).sum()
}

#[test]
fn clean_conversations_and_handshake_legs() {
    let sc = Scenario {
        seed: 101,
        connections: 400,
        syn_synack_ns: 1..=300 * MS,
        synack_ack_ns: 1..=100 * MS,
        exchanges: 0..=6,
        response_segments: 0..=20,
        ..Scenario::default()
    };
    let truths = check("clean", &sc);
    assert!(truths
        .iter()
        .all(|t| t.close == "fin" && t.total_ns.is_some()));
}

#[test]
fn syn_and_synack_retransmits() {
    let sc = Scenario {
        seed: 102,
        connections: 400,
        syn_retransmits: Feature::some(500, 1..=4),
        synack_retransmits: Feature::some(500, 1..=3),
        ..Scenario::default()
    };
    let truths = check("syn-retransmits", &sc);
    assert!(truths.iter().filter(|t| t.syn_retransmits > 0).count() > 100);
    assert!(truths.iter().filter(|t| t.synack_retransmits > 0).count() > 100);
}

#[test]
fn refused_and_unanswered_syns() {
    let sc = Scenario {
        seed: 103,
        connections: 400,
        refused_per_mille: 300,
        unanswered_per_mille: 300,
        syn_retransmits: Feature::some(300, 1..=3),
        ..Scenario::default()
    };
    let truths = check("refused", &sc);
    assert!(truths.iter().filter(|t| t.close == "refused").count() > 50);
    assert!(truths.iter().filter(|t| t.close == "unanswered").count() > 50);
}

#[test]
fn timeout_retransmissions() {
    let sc = Scenario {
        seed: 104,
        connections: 300,
        timeout_retransmits: Feature::every(1..=3),
        ..Scenario::default()
    };
    let truths = check("timeout", &sc);
    assert!(total(&truths, |t| t.retransmits) >= 300);
}

#[test]
fn fast_retransmissions() {
    let sc = Scenario {
        seed: 105,
        connections: 300,
        fast_retransmits: Feature::every(1..=3),
        ..Scenario::default()
    };
    let truths = check("fast", &sc);
    assert!(total(&truths, |t| t.fast_retransmits) >= 300);
}

#[test]
fn spurious_retransmissions() {
    let sc = Scenario {
        seed: 106,
        connections: 300,
        spurious_retransmits: Feature::every(1..=2),
        ..Scenario::default()
    };
    let truths = check("spurious", &sc);
    assert!(total(&truths, |t| t.spurious_retransmits) >= 300);
}

#[test]
fn out_of_order_segments() {
    let sc = Scenario {
        seed: 107,
        connections: 300,
        // Initial RTTs from 60 µs (swap gaps of at most 15 µs) to 60 ms (at most 900 µs).
        syn_synack_ns: 40 * US..=40 * MS,
        synack_ack_ns: 20 * US..=20 * MS,
        out_of_order: Feature::every(1..=3),
        ..Scenario::default()
    };
    let truths = check("out-of-order", &sc);
    assert!(total(&truths, |t| t.out_of_order) >= 300);
}

#[test]
fn zero_window_episodes() {
    let sc = Scenario {
        seed: 108,
        connections: 300,
        zero_window: Feature::every(1..=2),
        zero_window_probes: 0..=3,
        ..Scenario::default()
    };
    let truths = check("zero-window", &sc);
    assert!(total(&truths, |t| t.zero_window) >= 300);
    assert!(total(&truths, |t| t.zero_window_probes) > 0);
}

#[test]
fn teardowns() {
    let sc = Scenario {
        seed: 109,
        connections: 500,
        close: CloseMix::ALL,
        ..Scenario::default()
    };
    let truths = check("teardown", &sc);
    for close in ["fin", "rst_client", "rst_server", "capture_end"] {
        assert!(truths.iter().any(|t| t.close == close), "no {close}");
    }
    assert!(truths.iter().any(|t| t.fin_first == Some("server")));
}

#[test]
fn ipv6_and_one_sided_vlan_tags() {
    let sc = Scenario {
        seed: 110,
        connections: 400,
        ipv6_per_mille: 500,
        vlan_per_mille: 500,
        ..Scenario::mixed(110, 400)
    };
    let truths = check("ipv6-vlan", &sc);
    assert!(truths.iter().filter(|t| t.client.is_ipv6()).count() > 100);
}

fn mixed() -> Scenario {
    Scenario::mixed(2024, 2500)
}

#[test]
fn mixed_2500_flows() {
    let (pcap, truths) = write("mixed", &mixed());
    let run = analyze(&pcap.0, &[]);
    assert_flows_match(&truths, &run.flows);

    // The interval records add up to the same totals.
    let sum = |f: &dyn Fn(&Truth) -> u64| truths.iter().map(f).sum::<u64>();
    let both = |p: (u32, u32)| u64::from(p.0 + p.1);
    let expected = [
        ("packets", sum(&|t| t.packets.0 + t.packets.1)),
        (
            "payload_bytes",
            sum(&|t| t.payload_bytes.0 + t.payload_bytes.1),
        ),
        ("retransmits", sum(&|t| both(t.retransmits))),
        ("fast_retransmits", sum(&|t| both(t.fast_retransmits))),
        (
            "spurious_retransmits",
            sum(&|t| both(t.spurious_retransmits)),
        ),
        ("out_of_order", sum(&|t| both(t.out_of_order))),
        ("dup_acks", sum(&|t| both(t.dup_acks))),
        ("zero_window", sum(&|t| both(t.zero_window))),
        ("zero_window_probes", sum(&|t| both(t.zero_window_probes))),
        ("syn_retransmits", sum(&|t| u64::from(t.syn_retransmits))),
        (
            "synack_retransmits",
            sum(&|t| u64::from(t.synack_retransmits)),
        ),
        ("handshakes", sum(&|t| u64::from(t.total_ns.is_some()))),
        ("rst_to_syn", sum(&|t| u64::from(t.close == "refused"))),
        (
            "unanswered_syn",
            sum(&|t| u64::from(t.close == "unanswered")),
        ),
        ("keep_alives", 0),
        ("acked_unseen", 0),
    ];
    for (name, want) in expected {
        assert_eq!(run.tcp_total(name), want, "interval total of tcp.{name}");
    }
}

#[test]
fn mixed_flows_identical_across_workers() {
    let (pcap, _) = write("workers", &mixed());
    let sorted_lines = |workers: &str| {
        let run = analyze(&pcap.0, &["--workers", workers]);
        let mut lines: Vec<String> = run
            .flows
            .iter()
            .map(|f| serde_json::to_string(f).expect("a record serialises"))
            .collect();
        lines.sort();
        lines
    };
    let one = sorted_lines("1");
    assert_eq!(one.len(), 2500);
    assert!(
        one == sorted_lines("3"),
        "--workers 3 gives other flow records than --workers 1"
    );
}
