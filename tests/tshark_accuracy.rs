//! Accuracy against Wireshark on every shared capture: tcpulse's flow and interval records are
//! compared with tshark 4.0's analysis, checked in under tests/expect (scripts/tshark-expect
//! regenerates it). Differences that remain are explained in docs/accuracy.md.

mod common;

use std::collections::HashMap;
use std::path::Path;

use tcpulse_core::schema::FlowRecord;

type Row = HashMap<String, String>;

fn num(row: &Row, col: &str) -> u64 {
    row.get(col).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Per-direction retransmission counts of one stream as tshark sees them: (total, fast, spurious).
fn tshark_retrans(row: &Row, dir: &str) -> (u64, u64, u64) {
    (
        num(row, &format!("retransmission_{dir}")),
        num(row, &format!("fast_retransmission_{dir}")),
        num(row, &format!("spurious_retransmission_{dir}")),
    )
}

/// The flows tcpulse reported for a tshark stream: same endpoints, starting within the stream.
fn flows_of<'a>(row: &Row, flows: &'a [FlowRecord]) -> Vec<&'a FlowRecord> {
    let (a, b) = (row["a"].as_str(), row["b"].as_str());
    let (first, last) = (num(row, "first_ns"), num(row, "last_ns"));
    flows
        .iter()
        .filter(|f| {
            let (c, s) = (f.client.to_string(), f.server.to_string());
            let (c, s) = (c.as_str(), s.as_str());
            ((c, s) == (a, b) || (c, s) == (b, a)) && (first..=last).contains(&f.first_ns)
        })
        .collect()
}

/// Sum of `field.c2s|s2c` over flows, oriented so that `ab` means from endpoint `a`.
fn ours(flows: &[&FlowRecord], a: &str, field: &str, dir: &str) -> u64 {
    flows
        .iter()
        .map(|f| {
            let from_a_is_c2s = f.client.to_string() == a;
            let counts = common::per_dir(f, field);
            match (dir, from_a_is_c2s) {
                ("ab", true) | ("ba", false) => counts.c2s,
                _ => counts.s2c,
            }
        })
        .sum()
}

#[derive(Default, Debug)]
struct Score {
    streams: usize,
    retrans_streams: usize,
    retrans_matched: usize,
    rtt_checked: usize,
    rtt_equal: usize,
    missing: usize,
}

#[test]
fn matches_tshark_on_shared_captures() {
    let pcaps = common::shared_pcaps();
    let summary = common::read_tsv(&pcaps.join("summary.tsv"));
    let expect_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expect");
    let mut total = Score::default();
    let mut failures = Vec::new();
    let mut report = String::new();

    for file in &summary {
        let name = &file["filename"];
        let run = common::analyze(&[&pcaps.join(name)], &[]);
        assert_eq!(run.code, 0, "{name}: exit {} {}", run.code, run.stderr);

        // File totals: frames, SYN, SYN/ACK, RST, zero window.
        for (ours_name, theirs) in [
            ("syn", "syn"),
            ("synack", "syn_ack"),
            ("rst", "rst"),
            ("fin", "fin"),
            ("zero_window", "zero_window"),
            ("retransmits", "retransmission"),
            ("fast_retransmits", "fast_retransmission"),
            ("spurious_retransmits", "spurious_retransmission"),
            ("dup_acks", "duplicate_ack"),
        ] {
            let (got, want) = (run.tcp_total(ours_name), num(file, theirs));
            if got != want {
                failures.push(format!("{name}: total {ours_name} = {got}, tshark {want}"));
            }
        }
        assert_eq!(
            run.capture_total("packets"),
            num(file, "packets"),
            "{name}: frames"
        );
        assert_eq!(
            run.tcp_total("packets"),
            num(file, "tcp_packets"),
            "{name}: TCP segments"
        );

        let rows = common::read_tsv(&expect_dir.join(format!("{name}.tsv")));
        let mut score = Score {
            streams: rows.len(),
            ..Score::default()
        };
        for row in &rows {
            let flows = flows_of(row, &run.flows);
            if flows.is_empty() {
                score.missing += 1;
                failures.push(format!(
                    "{name}: stream {} ({} {}) has no flow",
                    row["stream"], row["a"], row["b"]
                ));
                continue;
            }
            let a = row["a"].as_str();
            let theirs_any = ["ab", "ba"].iter().any(|d| tshark_retrans(row, d).0 > 0);
            let ours_any = ["ab", "ba"]
                .iter()
                .any(|d| ours(&flows, a, "retransmits", d) > 0);
            if theirs_any || ours_any {
                score.retrans_streams += 1;
                let same = ["ab", "ba"].iter().all(|d| {
                    tshark_retrans(row, d)
                        == (
                            ours(&flows, a, "retransmits", d),
                            ours(&flows, a, "fast_retransmits", d),
                            ours(&flows, a, "spurious_retransmits", d),
                        )
                });
                if same {
                    score.retrans_matched += 1;
                } else {
                    failures.push(format!(
                        "{name}: stream {} retransmits (total, fast, spurious) ab {:?} ba {:?}, ours ab {:?} ba {:?}",
                        row["stream"],
                        tshark_retrans(row, "ab"),
                        tshark_retrans(row, "ba"),
                        ["retransmits", "fast_retransmits", "spurious_retransmits"].map(|f| ours(&flows, a, f, "ab")),
                        ["retransmits", "fast_retransmits", "spurious_retransmits"].map(|f| ours(&flows, a, f, "ba")),
                    ));
                }
            }
            // Handshake RTT on streams with a clean handshake.
            let handshake = num(row, "syn_ab") + num(row, "syn_ba") > 0
                && num(row, "synack_ab") + num(row, "synack_ba") > 0
                && num(row, "syn_retransmission_ab") + num(row, "syn_retransmission_ba") == 0;
            if let (true, Ok(rtt)) = (handshake, row["initial_rtt_ns"].parse::<u64>()) {
                score.rtt_checked += 1;
                let got = flows
                    .iter()
                    .find_map(|f| f.handshake.and_then(|h| h.total_ns));
                if got.is_some_and(|g| g.abs_diff(rtt) < 1000) {
                    score.rtt_equal += 1;
                } else {
                    failures.push(format!(
                        "{name}: stream {} initial RTT {rtt} ns, ours {got:?}",
                        row["stream"]
                    ));
                }
            }
        }
        report += &format!("{name:60} {score:?}\n");
        total.streams += score.streams;
        total.retrans_streams += score.retrans_streams;
        total.retrans_matched += score.retrans_matched;
        total.rtt_checked += score.rtt_checked;
        total.rtt_equal += score.rtt_equal;
        total.missing += score.missing;
    }
    println!(
        "{report}\nTOTAL {total:?}\n\ndifferences:\n{}",
        failures.join("\n")
    );
    let share = total.retrans_matched as f64 / total.retrans_streams.max(1) as f64;
    println!(
        "retransmission agreement: {:.2} % of {} streams",
        share * 100.0,
        total.retrans_streams
    );
    assert!(
        share >= 0.95,
        "retransmission agreement {share:.4} below 95 %"
    );
    assert_eq!(
        total.rtt_equal, total.rtt_checked,
        "initial RTT must match on every clean handshake"
    );
    assert_eq!(total.missing, 0, "every tshark stream must have a flow");
    let totals_off: Vec<_> = failures.iter().filter(|f| f.contains(": total ")).collect();
    assert!(
        totals_off.is_empty(),
        "file totals differ:\n{totals_off:#?}"
    );
}
