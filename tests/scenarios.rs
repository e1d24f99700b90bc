//! Scenario files and SYN floods against the real binary: every example in configs/scenarios/
//! passes `tcpulse config check`, generates, and its analysis equals its ground truth flow for
//! flow (5000 connections each, floods cut to 100 k SYNs), RTT legs and response times
//! included, with no RTT event lost to the pending-event table; a 200 k SYN flood through a flow
//! table a quarter of its size leaves the legitimate flows exact, the flooded servers' counters
//! equal to the truth, every eviction counted, and both processes' peak memory bounded.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tcpulse::gen::{self, file, flood, GroundTruth, Scenario};
use tcpulse_core::schema::flow::Close;
use tcpulse_core::schema::FlowRecord;

fn tcpulse() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tcpulse"))
}

fn scenario_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// A file in the temp directory, removed when dropped (also when a test fails).
struct Temp(PathBuf);

impl Temp {
    fn new(name: &str) -> Temp {
        let file = format!("tcpulse-scenarios-{}-{name}", std::process::id());
        Temp(std::env::temp_dir().join(file))
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Analyses `pcap` with every server listed in every interval (flood checks sum a server's
/// counters over intervals); returns the records and the peak memory.
fn analyze(pcap: &Path, extra: &[&str]) -> (common::Run, u64) {
    let out = Temp::new(&format!(
        "{}.jsonl",
        pcap.file_name().unwrap().to_string_lossy()
    ));
    let out_path = out.0.to_str().unwrap();
    let (code, peak) = common::run_measured(
        tcpulse()
            .arg("analyze")
            .arg(pcap)
            .args(["-o", out_path, "--flows", out_path, "--progress", "false"])
            .args(["--top-servers", "1000000"])
            .args(extra),
    );
    assert_eq!(code, 0, "tcpulse analyze failed");
    let text = std::fs::read(&out.0).expect("read the analysis");
    (common::parse_output(&text, String::new(), code), peak)
}

fn server_totals(run: &common::Run) -> HashMap<String, HashMap<String, u64>> {
    let mut totals: HashMap<String, HashMap<String, u64>> = HashMap::new();
    for interval in &run.intervals {
        for s in &interval.servers {
            let sums = totals.entry(s.server.clone()).or_default();
            // Every integer field of the row, by the name the record gives it.
            let row = serde_json::to_value(s).expect("a record serialises");
            for (name, value) in row.as_object().into_iter().flatten() {
                if let Some(n) = value.as_u64() {
                    *sums.entry(name.clone()).or_default() += n;
                }
            }
        }
    }
    totals
}

/// A flow of the flood: its client is one of the flood's spoofed addresses.
fn is_flood_flow(f: &FlowRecord) -> bool {
    flood::is_spoofed(f.client.addr.to_ip())
}

/// Every connection's flow record equals its truth; the flood opened one flow per SYN, its
/// servers' counters equal the truth, and (with `max_flows`) every flow that did not fit was
/// evicted and counted. Returns the problems found.
fn compare(truth: &GroundTruth, run: &common::Run, max_flows: Option<u64>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_conn: HashMap<(String, String), Vec<&FlowRecord>> = HashMap::new();
    let mut flood_flows: HashMap<String, Vec<&FlowRecord>> = HashMap::new();
    for f in &run.flows {
        let (client, server) = (f.client.to_string(), f.server.to_string());
        if is_flood_flow(f) {
            flood_flows.entry(server).or_default().push(f);
        } else {
            by_conn.entry((client, server)).or_default().push(f);
        }
    }
    for t in &truth.truths {
        let key = (t.client.to_string(), t.server.to_string());
        let got = match by_conn.get(&key).map(Vec::as_slice) {
            Some([one]) => *one,
            other => {
                let n = other.map_or(0, <[_]>::len);
                problems.push(format!("{} → {}: {n} flow records", key.0, key.1));
                continue;
            }
        };
        let want = gen::truth_json(t);
        let got = serde_json::to_value(got).expect("a record serialises");
        for (field, value) in want.as_object().into_iter().flatten() {
            if field != "type" && !gen::field_matches(&got[field], value) {
                problems.push(format!(
                    "{} → {} ({}): {field} want {value} got {}",
                    key.0, key.1, t.close, got[field]
                ));
            }
        }
        if want.get("tunnel").is_none() && got.get("tunnel").is_some() {
            problems.push(format!(
                "{} → {}: no tunnel, got {}",
                key.0, key.1, got["tunnel"]
            ));
        }
    }

    // Every frame of a wrapped connection, and no other, counts as decapsulated of its kind.
    let mut wrapped: HashMap<&str, u64> = HashMap::new();
    for t in &truth.truths {
        if let Some(w) = &t.wrap {
            *wrapped.entry(w.name()).or_default() += t.packets.0 + t.packets.1;
        }
    }
    for kind in [
        "vxlan", "geneve", "gre", "erspan", "ip_in_ip", "mpls", "pppoe",
    ] {
        let want = wrapped.get(kind).copied().unwrap_or(0);
        let got: u64 = run
            .intervals
            .iter()
            .map(|i| i.capture.decapsulated.get(kind).copied().unwrap_or(0))
            .sum();
        if got != want {
            problems.push(format!("capture.decapsulated.{kind} want {want} got {got}"));
        }
    }
    let legit_records: usize = by_conn.values().map(Vec::len).sum();
    if legit_records != truth.truths.len() {
        problems.push(format!(
            "{legit_records} flow records for {} connections",
            truth.truths.len()
        ));
    }

    let totals = server_totals(run);
    for f in &truth.floods {
        let server = f.server.to_string();
        let want = gen::flood_truth_json(f, &truth.truths);
        let got = totals.get(&server).cloned().unwrap_or_default();
        for (name, value) in want["server_totals"].as_object().into_iter().flatten() {
            if name.starts_with("legit_") {
                continue;
            }
            let got = got.get(name).copied().unwrap_or(0);
            if Some(got) != value.as_u64() {
                problems.push(format!("flood {server}: {name} want {value} got {got}"));
            }
        }
        let flows = flood_flows.get(&server).map_or(&[][..], Vec::as_slice);
        let answered = flows.iter().filter(|f| f.packets.s2c != 0).count() as u64;
        let silent_closes = |close: Close| {
            flows
                .iter()
                .filter(|f| f.packets.s2c == 0 && f.close == close)
                .count() as u64
        };
        let (unanswered, evicted) = (
            silent_closes(Close::Unanswered),
            silent_closes(Close::Evicted),
        );
        let counted = [
            ("flows", flows.len() as u64, f.syns),
            ("answered flows", answered, f.answered),
            ("unanswered or evicted", unanswered + evicted, f.unanswered),
            (
                "unanswered_syn",
                got.get("unanswered_syn").copied().unwrap_or(0),
                want["server_totals"]["legit_unanswered"]
                    .as_u64()
                    .unwrap_or(0)
                    + unanswered,
            ),
        ];
        for (what, got, want) in counted {
            if got != want {
                problems.push(format!("flood {server}: {what} want {want} got {got}"));
            }
        }
    }

    // The truth holds every sample: none may be lost to the pending-event table.
    let displaced = run.drop_total("rtt_events_displaced");
    if displaced != 0 {
        problems.push(format!("drops.rtt_events_displaced want 0 got {displaced}"));
    }

    if let Some(max) = max_flows {
        let opened = truth.truths.len() as u64 + truth.floods.iter().map(|f| f.syns).sum::<u64>();
        let want = opened.saturating_sub(max);
        let got = run.drop_total("flow_table_full");
        if got != want {
            problems.push(format!("drops.flow_table_full want {want} got {got}"));
        }
    }
    problems
}

fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problems; first ones:\n{}",
        problems.len(),
        problems[..problems.len().min(25)].join("\n")
    );
}

#[test]
fn every_example_scenario_passes_check() {
    let files = scenario_files();
    assert!(files.len() >= 6, "{files:?}");
    let out = tcpulse()
        .args(["config", "check"])
        .args(&files)
        .output()
        .expect("run tcpulse");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches(": ok").count(), files.len(), "{stdout}");
}

/// Each example at 5000 connections (floods at 100 k SYNs): every flow exact.
#[test]
fn every_example_scenario_generates_its_truth() {
    for path in scenario_files() {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut sc = file::load(&path).unwrap_or_else(|e| panic!("{e}"));
        sc.connections = sc.connections.min(5000);
        if let Some(f) = &mut sc.flood {
            f.syns = f.syns.min(100_000);
        }
        let pcap = Temp::new(&format!("{name}.pcap"));
        let truth = gen::write_capture(&sc, &pcap.0).expect("write the capture");
        assert_eq!(truth.truths.len(), sc.connections as usize);
        let (run, _) = analyze(&pcap.0, &[]);
        assert_no_problems(&name, &compare(&truth, &run, None));
        if name == "mixed" {
            // Both sources, both legs and response times are there to compare.
            let l = truth.truths.iter().map(|t| &t.latency);
            let flows = |f: fn(&gen::LatencyTruth) -> bool| l.clone().filter(|l| f(l)).count();
            let samples: usize = l
                .clone()
                .map(|l| l.server_leg.len() + l.client_leg.len())
                .sum();
            println!(
                "mixed: {samples} RTT samples, {} flows timed by timestamps, {} by sequence/ACK, \
                 {} with response times",
                flows(|l| l.from_timestamps),
                flows(|l| l.from_seq_ack),
                flows(|l| !l.response.is_empty()),
            );
            let n = truth.truths.len();
            assert!(flows(|l| l.from_timestamps) * 4 > n && flows(|l| l.from_seq_ack) * 4 > n);
            assert!(flows(|l| !l.response.is_empty()) * 2 > n && samples > 5 * n);
        }
    }
}

#[test]
fn the_mixed_example_is_the_default_capture() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/scenarios/mixed.toml");
    assert_eq!(
        file::load(&path).unwrap(),
        Scenario::mixed(file::DEFAULT_SEED, file::DEFAULT_CONNECTIONS)
    );
    let (with, without) = (Temp::new("with.pcap"), Temp::new("without.pcap"));
    for (pcap, scenario) in [(&with, Some(&path)), (&without, None)] {
        let mut cmd = tcpulse();
        cmd.args(["gen", "--connections", "300", "-o"]).arg(&pcap.0);
        if let Some(file) = scenario {
            cmd.arg("--scenario").arg(file);
        }
        assert_eq!(common::run_measured(&mut cmd).0, 0);
    }
    assert!(std::fs::read(&with.0).unwrap() == std::fs::read(&without.0).unwrap());
}

#[test]
fn a_bad_scenario_file_exits_2_with_file_line_column_and_key() {
    let bad = Temp::new("bad.toml");
    std::fs::write(
        &bad.0,
        "[scenario]\nconnections = 10\n\n[scenario.flood]\nsyns = 0\n",
    )
    .unwrap();
    let pcap = Temp::new("bad.pcap");
    for args in [
        &["config", "check"][..],
        &["gen", "-o", "x", "--scenario"][..],
    ] {
        let args: Vec<&str> = args
            .iter()
            .map(|&a| {
                if a == "x" {
                    pcap.0.to_str().unwrap()
                } else {
                    a
                }
            })
            .collect();
        let out = tcpulse().args(&args).arg(&bad.0).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let at = format!("{}:5:8: scenario.flood.syns: from 1 to", bad.0.display());
        assert!(stderr.contains(&at), "{args:?}: {stderr}");
    }
    assert!(!pcap.0.exists());
}

/// 200 k spoofed SYNs (a fifth answered, a tenth from IPv6) through a table of 50 k flows.
/// The legitimate traffic keeps its handshakes short: a handshake waiting longer than the
/// flood's SYNs survive in the full table (here about a second) is evicted like them, which is
/// the analysis doing its job, but not something a per-connection truth can predict.
#[test]
fn a_syn_flood_through_a_small_flow_table() {
    let path = Temp::new("flood.toml");
    std::fs::write(
        &path.0,
        "[scenario]\nconnections = 2000\nseed = 77\nunanswered = \"0%\"\n\
         [scenario.handshake]\nsyn_retransmits = { share = \"0%\" }\n\
         synack_retransmits = { share = \"0%\" }\n\
         [scenario.flood]\nsyns = 200_000\nipv6 = \"10%\"\nanswered = \"20%\"\n",
    )
    .unwrap();
    let sc = file::load(&path.0).unwrap();
    let pcap = Temp::new("flood.pcap");
    let (code, gen_peak) = common::run_measured(
        tcpulse()
            .args(["gen", "--scenario"])
            .arg(&path.0)
            .arg("-o")
            .arg(&pcap.0),
    );
    assert_eq!(code, 0);
    // The same capture, in process, for its truth.
    let again = Temp::new("flood-again.pcap");
    let truth = gen::write_capture(&sc, &again.0).unwrap();
    assert!(std::fs::read(&pcap.0).unwrap() == std::fs::read(&again.0).unwrap());

    let max_flows = 50_000;
    let (run, analyze_peak) = analyze(&pcap.0, &["--max-flows", &max_flows.to_string()]);
    assert_no_problems("flood", &compare(&truth, &run, Some(max_flows)));
    assert!(run.drop_total("flow_table_full") > 150_000);

    // Held at once, the frames alone would take this much; streaming takes a fraction.
    let materialised = truth.frames * std::mem::size_of::<gen::Stamped>() as u64;
    eprintln!(
        "flood: {} frames of {} B held; gen peak {} KiB; analyze peak {} KiB",
        truth.frames,
        std::mem::size_of::<gen::Stamped>(),
        gen_peak >> 10,
        analyze_peak >> 10
    );
    assert!(
        gen_peak < materialised,
        "gen peak {gen_peak} B, frames held at once {materialised} B"
    );
    // The table is sized by --max-flows, not by the flood; the capture is memory-mapped, so
    // its size counts too.
    let capture = std::fs::metadata(&pcap.0).unwrap().len();
    assert!(
        analyze_peak < capture + (192 << 20),
        "analyze peak {analyze_peak} B for a {capture} B capture"
    );
}
