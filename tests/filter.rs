//! `--filter EXPR` gives what the analysis of `tcpdump -r X -w Y EXPR`'s filtered copy gives,
//! apart from the count of frames filtered out.

mod common;

use std::path::Path;
use std::process::Command;

/// tcpulse's output without `source` and `capture.filtered_out`, which name the input and
/// count what the filtered copy never held.
fn comparable(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            if let Some(o) = v.as_object_mut() {
                o.remove("source");
                if let Some(c) = o.get_mut("capture").and_then(|c| c.as_object_mut()) {
                    c.remove("filtered_out");
                }
            }
            v.to_string()
        })
        .collect()
}

fn analyze(path: &Path, extra: &[&str]) -> (Vec<u8>, u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_tcpulse"))
        .arg("analyze")
        .arg(path)
        .args(["--flows", "-", "--progress", "false"])
        .args(extra)
        .output()
        .expect("run tcpulse");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = common::parse_output(&out.stdout, String::new(), 0);
    let filtered = run.intervals.iter().map(|i| i.capture.filtered_out).sum();
    (out.stdout, filtered)
}

#[test]
fn filtered_analysis_equals_the_analysis_of_tcpdump_s_filtered_copy() {
    let pcaps = common::shared_pcaps();
    let cases = [
        ("ndpi_sites.pcapng", "tcp port 443"),
        ("ndpi_sites.pcapng", "not port 443 and tcp"),
        ("chrissanders_http_ip4and6.pcapng", "ip6"),
        ("ndpi_mongodb.pcap", "vlan 300"),
        (
            "suricata_bug-4376_syn_retransmit_with_ts.pcap",
            "tcp[tcpflags] & tcp-syn != 0",
        ),
        ("encap/zeek_mpls-in-vlan.pcap", "vlan and mpls"),
        ("encap/tcpdump_geneve.pcap", "geneve and tcp"),
    ];
    let pid = std::process::id();
    for (i, (name, expr)) in cases.iter().enumerate() {
        let path = pcaps.join(name);
        let copy = std::env::temp_dir().join(format!("tcpulse-filter-{pid}-{i}.pcap"));
        let _guard = common::TempFiles(vec![copy.clone()]);
        let status = Command::new("tcpdump")
            .args(["-q", "--time-stamp-precision=nano", "-r"])
            .arg(&path)
            .arg("-w")
            .arg(&copy)
            .arg(expr)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("tcpdump (scripts/setup installs it)");
        assert!(status.success(), "tcpdump -r {name} {expr}");
        let (filtered, out_count) = analyze(&path, &["--filter", expr]);
        let (copied, copy_count) = analyze(&copy, &[]);
        assert_eq!(copy_count, 0);
        let whole = common::analyze(&[&path], &[]);
        let copy_run = common::parse_output(&copied, String::new(), 0);
        let (all, kept): (u64, u64) = (
            whole.capture_total("packets"),
            copy_run.capture_total("packets"),
        );
        assert!(
            kept > 0 && kept < all,
            "{name} `{expr}` selects some frames"
        );
        assert_eq!(
            out_count,
            all - kept,
            "{name} `{expr}`: frames filtered out"
        );
        assert_eq!(
            comparable(&filtered),
            comparable(&copied),
            "{name} `{expr}`: --filter and tcpdump's copy differ"
        );
    }
}

#[test]
fn a_bad_filter_is_a_usage_error_with_libpcap_s_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_tcpulse"))
        .args(["analyze", "x.pcap", "--filter", "port and and"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("syntax error"), "{err}");
}
