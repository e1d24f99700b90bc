//! The `analyze` command as an operator meets it: same results for any worker count, clear
//! messages and documented exit codes for bad inputs and outputs.

mod common;

use std::path::Path;
use std::process::Command;

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tcpulse-cli-{}-{name}", std::process::id()))
}

#[test]
fn worker_count_does_not_change_any_record() {
    let pcaps = common::shared_pcaps();
    for name in [
        "ndpi_alexa-app.pcapng",
        "suricata_tls-subjectaltname_input.pcap",
        "ndpi_gnutella.pcap",
    ] {
        let file = pcaps.join(name);
        let one = common::analyze(&[&file], &["--workers", "1"]);
        let three = common::analyze(&[&file], &["--workers", "3"]);
        assert_eq!(one.code, 0, "{}", one.stderr);
        assert!(!one.flows.is_empty());
        assert_eq!(
            one.intervals, three.intervals,
            "{name}: interval records differ"
        );
        assert_eq!(one.flows, three.flows, "{name}: flow records differ");
    }
}

#[test]
fn several_files_are_one_capture() {
    let pcaps = common::shared_pcaps();
    let a = pcaps.join("chrissanders_tcp_handshake.pcapng");
    let b = pcaps.join("chrissanders_tcp_refuseconnection.pcapng");
    let run = common::analyze(&[&a, &b], &[]);
    assert_eq!(run.code, 0);
    assert_eq!(run.tcp_total("syn"), 2);
    assert_eq!(run.tcp_total("rst_to_syn"), 1);
    assert_eq!(run.flows.len(), 2);
}

#[test]
fn missing_and_non_capture_inputs_exit_3_and_the_rest_is_analysed() {
    let not_capture = tmp("not-a-capture.pcap");
    std::fs::write(&not_capture, b"this is not a capture file at all").unwrap();
    let good = common::shared_pcaps().join("chrissanders_tcp_handshake.pcapng");
    let missing = Path::new("/nonexistent/tcpulse-test.pcap");
    let run = common::analyze(&[missing, &not_capture, &good], &[]);
    std::fs::remove_file(&not_capture).ok();
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("/nonexistent/tcpulse-test.pcap"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("not-a-capture.pcap"), "{}", run.stderr);
    assert_eq!(
        run.tcp_total("handshakes"),
        1,
        "the good file is still analysed"
    );
}

#[test]
fn truncated_file_exits_4_after_analysing_what_was_read() {
    let whole = std::fs::read(common::shared_pcaps().join("ndpi_mongodb.pcap")).unwrap();
    let cut = tmp("cut.pcap");
    // Cut in the middle of the last record.
    std::fs::write(&cut, &whole[..whole.len() - 20]).unwrap();
    let run = common::analyze(&[&cut], &[]);
    std::fs::remove_file(&cut).ok();
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("truncated") || run.stderr.contains("Truncated"),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.capture_total("packets"),
        26,
        "all complete frames are analysed"
    );
}

#[test]
fn unwritable_output_exits_5_with_the_path() {
    let out = Command::new(env!("CARGO_BIN_EXE_tcpulse"))
        .args([
            "analyze",
            "--progress",
            "false",
            "-o",
            "/nonexistent-dir/out.jsonl",
        ])
        .arg(common::shared_pcaps().join("chrissanders_tcp_handshake.pcapng"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-dir/out.jsonl"));
}

#[test]
fn full_disk_exits_5() {
    // /dev/full fails every write with ENOSPC.
    let out = Command::new(env!("CARGO_BIN_EXE_tcpulse"))
        .args([
            "analyze",
            "--progress",
            "false",
            "--flows",
            "-",
            "-o",
            "/dev/full",
        ])
        .arg(common::shared_pcaps().join("ndpi_alexa-app.pcapng"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left"));
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["analyze"][..],
        &["analyze", "x.pcap", "--interval", "soon"],
        &["analyze", "x.pcap", "--workers", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tcpulse"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn watched_servers_are_listed_whatever_their_traffic() {
    let file = tmp("watch.pcap");
    let made = Command::new(env!("CARGO_BIN_EXE_tcpulse"))
        .args(["gen", "--connections", "500", "--seed", "4", "--out"])
        .arg(&file)
        .status()
        .expect("tcpulse gen");
    assert!(made.success());
    let all = common::analyze(&[&file], &["--top-servers", "100000", "--interval", "1h"]);
    let servers: Vec<String> = all.intervals[0]
        .servers
        .iter()
        .map(|s| s.server.clone())
        .collect();
    assert!(servers.len() > 20, "{}", servers.len());
    // The quietest server, and a whole port.
    let quiet = servers.last().unwrap().clone();
    let one = common::analyze(&[&file], &["--top-servers", "1", "--interval", "1h"]);
    let listed = |run: &common::Run| -> Vec<String> {
        run.intervals[0]
            .servers
            .iter()
            .map(|s| s.server.clone())
            .collect()
    };
    assert!(!listed(&one).contains(&quiet));
    let watched = common::analyze(
        &[&file],
        &[
            "--top-servers",
            "1",
            "--interval",
            "1h",
            "--watch",
            &quiet,
            "--watch",
            ":443",
        ],
    );
    let shown = listed(&watched);
    assert!(shown.contains(&quiet), "{quiet} not in {shown:?}");
    let port_443 = servers.iter().filter(|s| s.ends_with(":443")).count();
    assert!(shown.iter().filter(|s| s.ends_with(":443")).count() >= port_443);
    let bad = common::analyze(&[&file], &["--watch", "10.0.0.0/99"]);
    assert_eq!(bad.code, 2);
    std::fs::remove_file(file).ok();
}
