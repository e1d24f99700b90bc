//! The shipped JSON Schema (docs/schema/record.schema.json, generated from the record types)
//! describes what tcpulse really writes: every line of `analyze` on shared captures, of a
//! generated scenario with flow records, and of `tcpulse merge`, validated by an independent
//! JSON Schema validator.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema/record.schema.json");
    let text = std::fs::read_to_string(&path).expect("read the shipped schema");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

/// Validates every line of `text`; returns how many there were.
fn validate_lines(validator: &jsonschema::Validator, text: &str, what: &str) -> usize {
    let mut n = 0;
    for line in text.lines() {
        let record: Value = serde_json::from_str(line).expect("JSON line");
        let errors: Vec<String> = validator
            .iter_errors(&record)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{what}: {errors:?}\n{line}");
        n += 1;
    }
    n
}

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tcpulse"))
        .args(args)
        .output()
        .expect("run tcpulse");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn every_record_written_validates_against_the_shipped_schema() {
    let v = validator();
    let dir = common::shared_pcaps();
    let mut total = 0;
    let mut intervals = String::new();
    for name in [
        "ndpi_sites.pcapng",
        "chrissanders_tcp_refuseconnection.pcapng",
        "chrissanders_http_ip4and6.pcapng",
        "suricata_bug-4376_syn_retransmit_with_ts.pcap",
    ] {
        let path = dir.join(name);
        let p = path.to_str().expect("UTF-8 path");
        let text = run(&["analyze", p, "--flows", "-", "--progress", "false"]);
        total += validate_lines(&v, &text, name);
        intervals.push_str(&run(&["analyze", p, "--progress", "false"]));
    }
    let pcap = std::env::temp_dir().join(format!("tcpulse-schema-{}.pcap", std::process::id()));
    let _files = common::TempFiles(vec![pcap.clone()]);
    let p = pcap.to_str().expect("UTF-8 path");
    run(&["gen", "--connections", "300", "--seed", "5", "--out", p]);
    let text = run(&["analyze", p, "--flows", "-", "--progress", "false"]);
    total += validate_lines(&v, &text, "generated");
    let merged_input = std::env::temp_dir().join(format!(
        "tcpulse-schema-{}-intervals.jsonl",
        std::process::id()
    ));
    let _more = common::TempFiles(vec![merged_input.clone()]);
    std::fs::write(&merged_input, intervals).expect("write intervals");
    let m = merged_input.to_str().expect("UTF-8 path");
    let merged = run(&["merge", m, "--window", "1m"]);
    total += validate_lines(&v, &merged, "merged");
    assert!(total > 1000, "{total} records validated");

    // The validator is not lenient: a record lacking a field, or with a field of the wrong
    // type, does not validate.
    let line = merged.lines().next().expect("a merged record");
    let mut broken: Value = serde_json::from_str(line).unwrap();
    broken["tcp"].as_object_mut().unwrap().remove("syn");
    assert!(!v.is_valid(&broken), "a missing counter");
    let mut broken: Value = serde_json::from_str(line).unwrap();
    broken["start_ns"] = "yesterday".into();
    assert!(!v.is_valid(&broken), "a field of the wrong type");
}
