//! `tcpulse merge`, `report` and `plot` end to end: merging the analyses of a capture split
//! between "appliances" equals the analysis of the whole capture, exactly; the report names the
//! expected diagnosis; the charts are XML and render in a browser.

mod common;

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tcpulse::capture::{CaptureFile, PcapWriter};
use tcpulse::decode::{decode_frame, LinkType};
use tcpulse::metrics::counters::Counter;
use tcpulse::metrics::hist::LatencyHist;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tcpulse"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("view")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tcpulse");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn gen(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    run_ok(bin().arg("gen").arg("-o").arg(&path).args(args));
    path
}

/// `tcpulse analyze FILES EXTRA` written to `out`; returns its interval records.
fn analyze(files: &[&Path], out: &Path, extra: &[&str]) -> Vec<Value> {
    run_ok(
        bin()
            .arg("analyze")
            .args(files)
            .args(["--progress", "false", "-o"])
            .arg(out)
            .args(extra),
    );
    lines(&std::fs::read_to_string(out).unwrap())
}

fn merge(files: &[&Path], extra: &[&str]) -> Vec<Value> {
    lines(&run_ok(bin().arg("merge").args(files).args(extra)))
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Writes the frames of `src` into `n` captures, each connection (both directions) wholly in
/// one of them, as two taps would each see their own connections.
fn split_by_flow(src: &Path, dir: &Path, n: usize) -> Vec<PathBuf> {
    let file = CaptureFile::open(src).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let paths: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("tap{i}.pcap"))).collect();
    let mut writers: Vec<Option<PcapWriter<BufWriter<File>>>> = (0..n).map(|_| None).collect();
    for frame in file.frames() {
        let frame = frame.unwrap();
        let link = LinkType::from_linktype(frame.link_type).unwrap();
        let rec = decode_frame(link, frame.data, frame.orig_len, frame.ts_ns).unwrap();
        let (a, b) = ((rec.src, rec.sport), (rec.dst, rec.dport));
        let mut h = DefaultHasher::new();
        (a.min(b), a.max(b)).hash(&mut h);
        let i = (h.finish() % n as u64) as usize;
        let w = writers[i].get_or_insert_with(|| {
            PcapWriter::new(
                BufWriter::new(File::create(&paths[i]).unwrap()),
                frame.link_type,
                true,
            )
            .unwrap()
        });
        w.write_frame_truncated(frame.ts_ns, frame.data, frame.orig_len)
            .unwrap();
    }
    for w in writers.iter_mut().flatten() {
        w.flush().unwrap();
    }
    paths
}

/// Writes the frames of `src` stamped at or before `until_ns`: the capture cut short.
fn cut(src: &Path, dst: &Path, until_ns: u64) {
    let file = CaptureFile::open(src).unwrap();
    let mut w: Option<PcapWriter<BufWriter<File>>> = None;
    for frame in file.frames() {
        let frame = frame.unwrap();
        if frame.ts_ns > until_ns {
            continue;
        }
        let w = w.get_or_insert_with(|| {
            PcapWriter::new(
                BufWriter::new(File::create(dst).unwrap()),
                frame.link_type,
                true,
            )
            .unwrap()
        });
        w.write_frame_truncated(frame.ts_ns, frame.data, frame.orig_len)
            .unwrap();
    }
    w.unwrap().flush().unwrap();
}

/// The decoded buckets of a histogram object.
fn buckets(h: &Value) -> Vec<(u64, u64)> {
    match h["hdr"].as_str() {
        Some(t) if !t.is_empty() => LatencyHist::from_base64(t).unwrap().buckets().collect(),
        _ => Vec::new(),
    }
}

fn assert_same_hist(a: &Value, b: &Value, ctx: &str) {
    for k in ["count", "min", "mean", "p50", "p90", "p99", "p999", "max"] {
        assert_eq!(a[k], b[k], "{ctx}: {k}");
    }
    assert_eq!(buckets(a), buckets(b), "{ctx}: histogram buckets");
}

/// Every figure of two interval records, except `source`, `merged`, `sources` and
/// `servers_omitted` (servers the inputs left out cannot be told apart: docs/view.md).
fn assert_same(whole: &Value, merged: &Value, ctx: &str) {
    assert_same_but(whole, merged, ctx, &[]);
}

/// As [`assert_same`], leaving out the `tcp` fields named in `skip`.
fn assert_same_but(whole: &Value, merged: &Value, ctx: &str, skip: &[&str]) {
    for k in ["start_ns", "end_ns", "capture"] {
        assert_eq!(whole[k], merged[k], "{ctx}: {k}");
    }
    for (k, v) in whole["tcp"].as_object().unwrap() {
        if !skip.contains(&k.as_str()) {
            assert_eq!(v, &merged["tcp"][k], "{ctx}: tcp.{k}");
        }
    }
    for h in ["handshake_total_us", "syn_synack_us", "synack_ack_us"] {
        assert_same_hist(
            &whole["histograms"][h],
            &merged["histograms"][h],
            &format!("{ctx} {h}"),
        );
    }
    let (ws, ms) = (
        whole["servers"].as_array().unwrap(),
        merged["servers"].as_array().unwrap(),
    );
    let names = |s: &[Value]| s.iter().map(|r| r["server"].clone()).collect::<Vec<_>>();
    if skip.is_empty() {
        assert_eq!(names(ws), names(ms), "{ctx}: servers listed");
    }
    // With counters left out, servers listed for them alone may differ: compare the whole's.
    for w in ws {
        let m = ms
            .iter()
            .find(|m| m["server"] == w["server"])
            .unwrap_or_else(|| panic!("{ctx}: server {} not in the merge", w["server"]));
        let sctx = format!("{ctx} server {}", w["server"]);
        for (k, v) in w.as_object().unwrap() {
            if k == "handshake_total_us" {
                assert_same_hist(v, &m[k], &sctx);
            } else if skip.contains(&k.as_str()) {
                continue;
            } else if k == "active_flows" || k == "half_open" {
                // Gauges of a server an input did not list (no event in that interval) are
                // missing from the merge: a lower bound (docs/view.md).
                assert!(m[k].as_u64() <= v.as_u64(), "{sctx}: {k}");
            } else {
                assert_eq!(v, &m[k], "{sctx}: {k}");
            }
        }
    }
}

#[test]
fn merging_taps_split_by_flow_equals_the_whole_capture() {
    let dir = tmp("by_flow");
    // About 2000 connections over 6 s, every feature (refused, unanswered, resends, IPv6...),
    // cut in the busy middle so that every tap has packets in the last interval: each tap's
    // input then ends in the same interval as the whole's, where flows still open end
    // (`capture_end`), so those endings are counted in the same interval everywhere.
    let full = gen(
        &dir,
        "full.pcap",
        &["--connections", "2000", "--spread", "6"],
    );
    let pcap = dir.join("whole.pcap");
    cut(&full, &pcap, 1_700_000_005_500_000_000);
    let whole = analyze(&[&pcap], &dir.join("whole.jsonl"), &[]);
    let taps = split_by_flow(&pcap, &dir, 3);
    // Each tap lists every server, so the merge can pick the top 20 of the sum.
    let tap_out: Vec<PathBuf> = taps
        .iter()
        .map(|t| {
            let out = t.with_extension("jsonl");
            let recs = analyze(&[t], &out, &["--top-servers", "100000"]);
            assert_eq!(
                recs.last().unwrap()["start_ns"],
                whole.last().unwrap()["start_ns"],
                "{}: ends in the whole's last interval",
                t.display()
            );
            out
        })
        .collect();
    let tap_refs: Vec<&Path> = tap_out.iter().map(PathBuf::as_path).collect();

    let merged = merge(&tap_refs, &[]);
    assert_eq!(merged.len(), whole.len(), "one merged record per interval");
    for (i, (w, m)) in whole.iter().zip(&merged).enumerate() {
        assert_eq!(m["merged"], 3, "interval {i}");
        assert_same(w, m, &format!("interval {i}"));
    }
    let handshakes: u64 = whole
        .iter()
        .map(|r| r["tcp"]["handshakes"].as_u64().unwrap())
        .sum();
    assert!(handshakes > 1500, "{handshakes} handshakes");

    // One window for everything: against the whole capture analysed in one interval of an
    // hour (the capture lies inside one), and against its own 1 s records merged.
    let hour = analyze(&[&pcap], &dir.join("hour.jsonl"), &["--interval", "1h"]);
    assert_eq!(hour.len(), 1);
    let merged_hour = merge(&tap_refs, &["--window", "1h"]);
    assert_eq!(merged_hour.len(), 1);
    assert_same(&hour[0], &merged_hour[0], "1h window");
    assert_eq!(
        hour[0]["histograms"]["handshake_total_us"]["count"].as_u64(),
        Some(
            handshakes
                - whole
                    .iter()
                    .map(|r| r["tcp"]["handshake_ambiguous"].as_u64().unwrap())
                    .sum::<u64>()
        )
    );
    // `all` is the 1 h window bounded by the data instead of the hour.
    let mut all = merge(&tap_refs, &["--window", "all"]).remove(0);
    assert_eq!(all["start_ns"], whole[0]["start_ns"]);
    assert_eq!(all["end_ns"], whole.last().unwrap()["end_ns"]);
    all["start_ns"] = hour[0]["start_ns"].clone();
    all["end_ns"] = hour[0]["end_ns"].clone();
    assert_same(&hour[0], &all, "window all");

    // A merged output merges again: two taps merged first (keeping every server, as any
    // input of a later merge should), then with the third.
    let first = dir.join("first.jsonl");
    std::fs::write(
        &first,
        run_ok(
            bin()
                .arg("merge")
                .args(&tap_refs[..2])
                .args(["--top-servers", "100000"]),
        ),
    )
    .unwrap();
    let again = merge(&[&first, tap_refs[2]], &[]);
    for (i, (w, m)) in whole.iter().zip(&again).enumerate() {
        assert_eq!(m["merged"], 3);
        assert_same(w, m, &format!("merged twice, interval {i}"));
    }
}

/// Two captures of one appliance ten minutes apart, each split between two taps: merged, they
/// equal the analysis of everything as one capture, interval by interval.
#[test]
fn merging_captures_split_by_time_equals_the_whole() {
    let dir = tmp("by_time");
    // Every connection ends within its capture (no `open` closes, no unanswered SYNs), so
    // cutting between the captures cuts no connection. What does move is when flows leave the
    // table: analysed alone, the first capture's lingering flows end with its input; analysed
    // with the second, they end by timeout in the gap. `closed_flows` and the gauges are
    // therefore compared in total, everything else interval by interval.
    for (name, start, seed) in [("day1", 1_700_000_000u64, 3), ("day2", 1_700_000_600, 4)] {
        let scenario = dir.join(format!("{name}.toml"));
        std::fs::write(
            &scenario,
            format!(
                "[scenario]\nconnections = 800\nseed = {seed}\nstart = {start}\nspread = \
                 \"4s\"\nunanswered = \"0%\"\n[scenario.close]\nfin_client = 5\nfin_server = \
                 2\nrst_client = 1\nrst_server = 1\n"
            ),
        )
        .unwrap();
        run_ok(
            bin()
                .args(["gen", "--scenario"])
                .arg(&scenario)
                .arg("-o")
                .arg(dir.join(format!("{name}.pcap"))),
        );
    }
    let (d1, d2) = (dir.join("day1.pcap"), dir.join("day2.pcap"));
    let whole = analyze(&[&d1, &d2], &dir.join("whole.jsonl"), &[]);
    let parts: Vec<PathBuf> = [&d1, &d2]
        .iter()
        .flat_map(|d| split_by_flow(d, &dir.join(d.file_stem().unwrap()), 2))
        .collect();
    let part_out: Vec<PathBuf> = parts
        .iter()
        .map(|p| {
            let out = p.with_extension("jsonl");
            analyze(&[p], &out, &["--top-servers", "100000"]);
            out
        })
        .collect();
    let refs: Vec<&Path> = part_out.iter().map(PathBuf::as_path).collect();
    let merged = merge(&refs, &[]);
    let by_start: std::collections::BTreeMap<u64, &Value> = merged
        .iter()
        .map(|m| (m["start_ns"].as_u64().unwrap(), m))
        .collect();
    let moved = ["closed_flows", "active_flows", "half_open"];
    let mut compared = 0;
    for w in &whole {
        let start = w["start_ns"].as_u64().unwrap();
        match by_start.get(&start) {
            Some(m) => {
                assert_same_but(w, m, &format!("interval at {start}"), &moved);
                compared += 1;
            }
            // Between the captures the whole analysis fills the gap with empty intervals,
            // where only lingering flows leave the table.
            None => {
                for c in Counter::ALL.iter().filter(|c| !moved.contains(&c.name())) {
                    assert_eq!(
                        w["tcp"][c.name()],
                        0,
                        "gap interval at {start}: {}",
                        c.name()
                    );
                }
            }
        }
    }
    assert_eq!(
        compared,
        merged.len(),
        "every merged interval has its whole-capture twin"
    );
    assert!(whole.len() > merged.len() + 500, "the gap was filled");
    let total = |recs: &[Value]| -> u64 {
        recs.iter()
            .map(|r| r["tcp"]["closed_flows"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(total(&whole), total(&merged), "flows ended");
    assert_eq!(total(&whole), 1600);
    // In one window (against the whole analysed in one interval of an hour) every figure is
    // the same but the gauges: the whole ends with its last flows gone, while the merge
    // keeps each source's last state.
    let hour = analyze(&[&d1, &d2], &dir.join("hour.jsonl"), &["--interval", "1h"]);
    assert_eq!(hour.len(), 1);
    let all = merge(&refs, &["--window", "1h"]);
    assert_same_but(
        &hour[0],
        &all[0],
        "1h window",
        &["active_flows", "half_open"],
    );
}
