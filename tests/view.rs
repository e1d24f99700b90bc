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
use tcpulse_core::decode::{decode_frame, LinkType};
use tcpulse_core::schema::counters::Counter;
use tcpulse_core::schema::hist::LatencyHist;
use tcpulse_core::schema::Record;
use tcpulse_io::capture::{CaptureFile, PcapWriter};

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

/// Records read through the typed schema (a missing field fails here), then compared field
/// by field in their JSON form.
fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            let record = Record::from_line(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            serde_json::to_value(record).expect("a record serialises")
        })
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
        let rec = decode_frame(link, frame.data, frame.wire_len, frame.ts_ns).unwrap();
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
        w.write_frame_truncated(frame.ts_ns, frame.data, frame.wire_len)
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
        w.write_frame_truncated(frame.ts_ns, frame.data, frame.wire_len)
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
    // With counters left out, servers listed for them alone may differ (a server whose only
    // counts in the interval are left-out ones ties at 0 packets with others, and is listed
    // or not by its key): compare the whole's other servers.
    let only_skipped = |w: &Value| {
        w.as_object().unwrap().iter().all(|(k, v)| {
            skip.contains(&k.as_str())
                || k == "active_flows"
                || k == "half_open"
                || v.as_u64().is_none_or(|n| n == 0)
        })
    };
    for w in ws {
        if !skip.is_empty() && only_skipped(w) {
            continue;
        }
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

fn report(input: &Path, extra: &[&str]) -> String {
    run_ok(
        bin()
            .arg("report")
            .arg(input)
            .args(["--color", "never"])
            .args(extra),
    )
}

/// The report names the finding the capture is known for, with the server and the evidence.
#[test]
fn report_names_the_expected_diagnosis() {
    let dir = tmp("report");
    // A SYN answered by RST after two resends (tshark: one refused stream).
    let refused = dir.join("refused.jsonl");
    analyze(
        &[&common::shared_pcaps().join("chrissanders_nowebaccess2.pcapng")],
        &refused,
        &[],
    );
    let text = report(&refused, &[]);
    assert!(
        text.contains("172.16.0.102:80: RST to SYN: closed port, service down"),
        "{text}"
    );
    assert!(text.contains("1 of 1 connection attempts answered by RST (100.0%)"));
    assert!(!text.contains("\x1b["), "no colours when told so");

    // A SYN scan: nearly 2000 SYNs, almost none answered.
    let scan = dir.join("scan.jsonl");
    analyze(
        &[&common::shared_pcaps().join("chrissanders_synscan.pcapng")],
        &scan,
        &["--top-servers", "3"],
    );
    let text = report(&scan, &["--top-servers", "3"]);
    assert!(
        text.contains(": SYNs unanswered: SYN backlog overflow suspect"),
        "{text}"
    );

    // The slow-server scenario: SYN/ACKs resent on its busiest servers; a threshold raised
    // above what the scenario shows silences the finding.
    let pcap = dir.join("slow.pcap");
    run_ok(
        bin()
            .args([
                "gen",
                "--scenario",
                "configs/scenarios/slow-server.toml",
                "-o",
            ])
            .arg(&pcap),
    );
    let slow = dir.join("slow.jsonl");
    analyze(&[&pcap], &slow, &[]);
    let text = report(&slow, &["--top-servers", "3"]);
    assert!(
        text.contains("SYN/ACK resent: accept queue full, or final ACKs lost"),
        "{text}"
    );
    let table_header = text.lines().nth(1).unwrap();
    for column in [
        "server", "hs p50", "hs p99", "srv rtt", "cli rtt", "resp", "SYN/s", "backlog", "retx",
        "RST>SYN",
    ] {
        assert!(table_header.contains(column), "{table_header}");
    }
    // The totals' latency columns are the merged record's medians, as the report prints
    // times: the scenario has every one of them.
    let merged = merge(&[&slow], &["--window", "all"]);
    let merged = merged
        .iter()
        .find(|r| r["type"] == "interval")
        .expect("a merged interval record");
    let whole = report(&slow, &["--top-servers", "3", "--window", "all"]);
    let total_row: Vec<&str> = whole
        .lines()
        .find(|l| l.starts_with("total"))
        .unwrap()
        .split_whitespace()
        .collect();
    for (column, hist) in [
        (3, "rtt_server_leg_us"),
        (4, "rtt_client_leg_us"),
        (5, "response_us"),
    ] {
        let p50 = merged["histograms"][hist]["p50"].as_u64().expect(hist);
        assert_eq!(
            total_row[column],
            tcpulse::view::report::fmt_us(p50),
            "{whole}"
        );
    }
    let quiet = report(&slow, &["--top-servers", "3", "--synack-resent", "10"]);
    assert!(!quiet.contains("SYN/ACK resent"), "{quiet}");

    // Per window: one table per 10 s of records, and the diagnosis in each.
    let windows = report(&slow, &["--top-servers", "3", "--window", "10s"]);
    assert!(windows.matches("diagnosis:").count() >= 5, "{windows}");

    // Live standard input (as from `tcpulse run -o -`), with a malformed line in it.
    let mut input = std::fs::read(&refused).unwrap();
    input.extend_from_slice(b"{not json\n");
    let mut child = bin()
        .args(["report", "-", "--color", "always", "--window", "own"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(text.matches("diagnosis:").count(), 2, "{text}");
    assert!(text.contains("\x1b[31;1mRST to SYN"), "{text}");
    assert!(err.contains("1 malformed lines skipped"), "{err}");
}

/// A minimal PNG reader: the distinct RGB colours of an 8-bit RGB or RGBA image, not
/// interlaced (what the browser writes). Panics on anything else: the test must see pixels.
fn png_colours(png: &[u8]) -> usize {
    use std::io::Read as _;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let (mut pos, mut idat) = (8, Vec::new());
    let (mut width, mut height, mut channels) = (0usize, 0usize, 0usize);
    while pos + 8 <= png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &png[pos + 4..pos + 8];
        let body = &png[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
                assert_eq!(body[8], 8, "bit depth");
                channels = match body[9] {
                    2 => 3,
                    6 => 4,
                    t => panic!("colour type {t}"),
                };
                assert_eq!(body[12], 0, "interlace");
            }
            b"IDAT" => idat.extend_from_slice(body),
            b"IEND" => break,
            _ => {}
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width * channels;
    assert_eq!(raw.len(), height * (stride + 1), "image data size");
    let mut prev = vec![0u8; stride];
    let mut colours = std::collections::HashSet::new();
    for row in raw.chunks(stride + 1) {
        let (filter, data) = (row[0], &row[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels { cur[i - channels] } else { 0 };
            let b = prev[i];
            let c = if i >= channels { prev[i - channels] } else { 0 };
            let pred = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("filter {f}"),
            };
            cur[i] = data[i].wrapping_add(pred);
        }
        for px in cur.chunks(channels) {
            colours.insert((px[0], px[1], px[2]));
        }
        prev = cur;
    }
    colours.len()
}

/// The charts parse as XML with the parts a chart needs, and render in a browser to images
/// with many colours (lines, text, grid), not a blank page. Chromium comes from scripts/setup;
/// without it this test fails rather than skips.
#[test]
fn plot_writes_charts_that_render_in_a_browser() {
    let dir = tmp("plot");
    let pcap = gen(
        &dir,
        "mixed.pcap",
        &["--connections", "1500", "--spread", "6"],
    );
    let taps = split_by_flow(&pcap, &dir, 2);
    let outs: Vec<PathBuf> = taps
        .iter()
        .map(|t| {
            let out = t.with_extension("jsonl");
            analyze(&[t], &out, &["--top-servers", "100000"]);
            out
        })
        .collect();
    let charts = dir.join("charts");
    let out = bin()
        .arg("plot")
        .args(&outs)
        .arg("-o")
        .arg(&charts)
        .args(["--top", "4"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = [
        "handshake-rtt.svg",
        "retransmit-ratio.svg",
        "syn-rate.svg",
        "handshake-rate.svg",
    ];
    for name in names {
        let text = std::fs::read_to_string(charts.join(name)).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        let count = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
        assert!(
            count("path") >= 3,
            "{name}: lines for the total and the servers"
        );
        assert!(
            count("text") >= 15,
            "{name}: title, axis labels, ticks, legend"
        );
        assert!(count("title") == 1, "{name}");
    }

    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("chromium is needed to check the charts render (scripts/setup installs it)");
    for name in names {
        let png = charts.join(name).with_extension("png");
        let out = Command::new(chromium)
            .args([
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--hide-scrollbars",
                "--window-size=960,540",
            ])
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", charts.join(name).display()))
            .output()
            .unwrap();
        let bytes = std::fs::read(&png).unwrap_or_else(|e| {
            panic!(
                "{name}: no screenshot ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let colours = png_colours(&bytes);
        eprintln!(
            "{name}: {} bytes of PNG, {colours} distinct colours",
            bytes.len()
        );
        // A blank page is 1 colour; black text on white with anti-aliasing gives tens of
        // greys; coloured lines add hundreds more.
        assert!(colours > 100, "{name}: only {colours} colours");
    }
}
