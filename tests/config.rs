//! Configuration files as an operator meets them: the shipped examples pass `config check`,
//! broken files are pointed at by key and line with exit code 2, and `--config` gives the same
//! records as the flags it stands for, with flags winning.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The documented exit code for a bad configuration file (docs/cli.md).
const USAGE: i32 = 2;

fn tcpulse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tcpulse"))
        .args(args)
        .output()
        .expect("run tcpulse")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A file in a per-test temporary directory (tests run in parallel).
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, content: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("tcpulse-config-{}-{name}", std::process::id()));
        std::fs::write(&path, content).expect("write a temporary file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("configs/ exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_passes_check() {
    let files = examples();
    assert!(files.len() >= 4, "the examples are missing: {files:?}");
    for file in &files {
        let path = file.to_str().unwrap();
        let out = tcpulse(&["config", "check", path]);
        assert_eq!(out.status.code(), Some(0), "{path}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{path}: ok\n"));
    }
}

#[test]
fn broken_files_name_key_and_line_and_exit_2() {
    // (what is wrong, file, key path, line)
    let cases = [
        (
            "unknown key",
            "[capture]\niface = \"eth0\"\npromiscuous = true\n",
            "capture.promiscuous",
            3,
        ),
        (
            "wrong type",
            "[pipeline]\ninterval = \"1s\"\nworkers = \"four\"\n",
            "pipeline.workers",
            3,
        ),
        (
            "bad duration",
            "[pipeline]\nworkers = 2\n\n[flow_table]\n# stalls\nidle_timeout = \"5 min\"\n",
            "flow_table.idle_timeout",
            6,
        ),
        (
            "bad list",
            "[capture]\niface = \"eth0\"\n\nqueues = \"3-0\"\n",
            "capture.queues",
            4,
        ),
        (
            "workers 0",
            "[pipeline]\nworkers = 0\n",
            "pipeline.workers",
            2,
        ),
        (
            "unknown section",
            "[pipeline]\nworkers = 1\n\n[sinks]\nkind = \"stdout\"\n",
            "sinks",
            4,
        ),
        (
            "unknown sink kind",
            "[pipeline]\nworkers = 1\n\n[[sink]]\nkind = \"kafka\"\n",
            "sink[1].kind",
            5,
        ),
        (
            "unknown sink option",
            "[[sink]]\nkind = \"stdout\"\n\n[[sink]]\nkind = \"file\"\npath = \"x.jsonl\"\n\
             keep = 3\nmax_size = \"1M\"\n",
            "sink[2].max_size",
            8,
        ),
        (
            "syntax error",
            "[output]\nrecords = \"-\"\nflows = flows.jsonl\n",
            "output.flows",
            3,
        ),
        (
            "unknown capture kind",
            "[capture]\ncapture = \"pcap\"\n",
            "capture.capture",
            2,
        ),
        (
            "max_flows 0",
            "[flow_table]\nmax_flows = 0\n",
            "flow_table.max_flows",
            2,
        ),
    ];
    for (i, (what, content, key, line)) in cases.into_iter().enumerate() {
        let file = TempFile::new(&format!("broken-{i}.toml"), content);
        let out = tcpulse(&["config", "check", file.path()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(USAGE), "{what}: {stderr}");
        let place = format!("{}:{line}:", file.path());
        assert!(stderr.contains(&place), "{what}: no `{place}` in {stderr}");
        assert!(
            stderr.contains(&format!(" {key}: ")),
            "{what}: no `{key}` in {stderr}"
        );
        assert!(out.stdout.is_empty(), "{what}");
    }
}

#[test]
fn check_goes_on_after_a_bad_file() {
    let bad = TempFile::new("bad.toml", "[pipeline]\nworkers = 0\n");
    let good = examples().into_iter().next().unwrap();
    let good = good.to_str().unwrap();
    let out = tcpulse(&["config", "check", bad.path(), good]);
    assert_eq!(out.status.code(), Some(USAGE));
    assert_eq!(text(&out.stdout), format!("{good}: ok\n"));
    assert!(text(&out.stderr).contains(bad.path()));
}

#[test]
fn a_missing_or_broken_config_stops_run_and_analyze_with_2() {
    let bad = TempFile::new("stop.toml", "[pipeline]\nintervl = \"1s\"\n");
    let pcap = common::shared_pcaps().join("chrissanders_tcp_handshake.pcapng");
    let pcap = pcap.to_str().unwrap();
    for args in [
        &["analyze", "--config", bad.path(), pcap][..],
        &["run", "--config", bad.path()],
        &[
            "run",
            "--config",
            "no-such-dir/tcpulse.toml",
            "--iface",
            "lo",
        ],
    ] {
        let out = tcpulse(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(USAGE), "{args:?}: {stderr}");
        assert!(stderr.contains(args[2]), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn run_needs_an_interface_from_the_flag_or_the_file() {
    let no_iface = TempFile::new("no-iface.toml", "[pipeline]\nworkers = 1\n");
    let out = tcpulse(&["run", "--config", no_iface.path()]);
    assert_eq!(out.status.code(), Some(USAGE));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--iface") && stderr.contains("capture.iface"),
        "{stderr}"
    );
    // Without --config, clap itself asks for --iface.
    assert_eq!(tcpulse(&["run"]).status.code(), Some(USAGE));
}

#[test]
fn analyze_with_a_config_equals_the_same_flags() {
    let pcap = common::shared_pcaps().join("ndpi_alexa-app.pcapng");
    let file = TempFile::new(
        "same.toml",
        "[pipeline]\ninterval = \"500ms\"\nworkers = 3\n\n[flow_table]\nidle_timeout = \"20s\"\n",
    );
    let flags = common::analyze(
        &[&pcap],
        &[
            "--interval",
            "500ms",
            "--workers",
            "3",
            "--idle-timeout",
            "20s",
        ],
    );
    let config = common::analyze(&[&pcap], &["--config", file.path()]);
    assert_eq!(config.code, 0, "{}", config.stderr);
    assert!(!config.intervals.is_empty() && !config.flows.is_empty());
    assert_eq!(config.intervals, flags.intervals, "interval records differ");
    assert_eq!(config.flows, flags.flows, "flow records differ");
    assert!(
        config
            .stderr
            .contains(r#"tcpulse: config: {"pipeline":{"interval":"500ms","workers":3"#),
        "the resolved configuration is logged: {}",
        config.stderr
    );
}

#[test]
fn a_flag_overrides_the_file() {
    let pcap = common::shared_pcaps().join("ndpi_alexa-app.pcapng");
    let file = TempFile::new("override.toml", "[pipeline]\ninterval = \"500ms\"\n");
    let lengths = |run: &common::Run| -> Vec<u64> {
        run.intervals
            .iter()
            .map(|i| i.end_ns - i.start_ns)
            .collect()
    };
    let from_file = common::analyze(&[&pcap], &["--config", file.path()]);
    assert!(lengths(&from_file).iter().all(|&ns| ns == 500_000_000));
    let overridden = common::analyze(&[&pcap], &["--config", file.path(), "--interval", "2s"]);
    assert_eq!(overridden.code, 0, "{}", overridden.stderr);
    assert!(!overridden.intervals.is_empty());
    assert!(lengths(&overridden).iter().all(|&ns| ns == 2_000_000_000));
    assert!(
        overridden.stderr.contains(r#""interval":"2s""#),
        "{}",
        overridden.stderr
    );
}

#[test]
fn show_prints_a_file_that_resolves_to_itself() {
    for example in examples() {
        let example = example.to_str().unwrap();
        let out = tcpulse(&["config", "show", example]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{example}: {}",
            text(&out.stderr)
        );
        let shown = TempFile::new("shown.toml", &text(&out.stdout));
        let again = tcpulse(&["config", "show", shown.path()]);
        assert_eq!(text(&again.stdout), text(&out.stdout), "{example}");
    }
    let defaults = text(&tcpulse(&["config", "show"]).stdout);
    assert!(defaults.contains("interval = \"1s\"\n"), "{defaults}");
    assert!(defaults.contains("max_flows = 1048576\n"), "{defaults}");
}
