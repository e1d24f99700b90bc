//! Helpers shared by the integration tests: run the real binary, read its JSON lines.
#![allow(dead_code)]

pub mod collector;
pub mod live;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tcpulse_core::schema::counters::Counter;
use tcpulse_core::schema::flow::PerDir;
use tcpulse_core::schema::{FlowRecord, IntervalRecord, Record};

pub fn shared_pcaps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/pcaps")
}

/// Output of one `tcpulse analyze` run, read through the typed schema: a record lacking a
/// field fails the test.
pub struct Run {
    pub intervals: Vec<IntervalRecord>,
    pub flows: Vec<FlowRecord>,
    pub stderr: String,
    pub code: i32,
}

/// The counter a record calls `name`; a name no record has fails the test.
pub fn counter(name: &str) -> Counter {
    Counter::from_name(name).unwrap_or_else(|| panic!("no counter `{name}`"))
}

/// A flow record's per-direction count `name` (`packets`, `retransmits`, `syn`, ...).
pub fn per_dir(f: &FlowRecord, name: &str) -> PerDir<u64> {
    let wide = |p: PerDir<u32>| PerDir {
        c2s: u64::from(p.c2s),
        s2c: u64::from(p.s2c),
    };
    match name {
        "packets" => f.packets,
        "payload_bytes" => f.payload_bytes,
        "retransmits" => wide(f.retransmits),
        "fast_retransmits" => wide(f.fast_retransmits),
        "spurious_retransmits" => wide(f.spurious_retransmits),
        "out_of_order" => wide(f.out_of_order),
        "dup_acks" => wide(f.dup_acks),
        "zero_window" => wide(f.zero_window),
        "zero_window_probes" => wide(f.zero_window_probes),
        "syn" => wide(f.syn),
        "fin" => wide(f.fin),
        "rst" => wide(f.rst),
        other => panic!("flow records have no per-direction `{other}`"),
    }
}

impl Run {
    /// Sum of `tcp.<name>` over all intervals.
    pub fn tcp_total(&self, name: &str) -> u64 {
        let c = counter(name);
        self.intervals.iter().map(|i| i.tcp.counters.get(c)).sum()
    }

    /// Sum of `capture.drops.<name>` over all intervals.
    pub fn drop_total(&self, name: &str) -> u64 {
        self.intervals
            .iter()
            .map(|i| {
                let named = i.capture.drops.named();
                let found = named.iter().find(|(n, _)| *n == name);
                found.unwrap_or_else(|| panic!("no drop reason `{name}`")).1
            })
            .sum()
    }

    /// Frames the monitor lost, by its own count: frames its sockets could not take (AF_XDP
    /// `xdp_rx_dropped` and `xdp_rx_ring_full`, AF_PACKET `af_packet_drops`) and records no
    /// worker could take (`worker_ring_full`). `xdp_fill_ring_empty` counts occasions, not
    /// frames: a frame lost that way is in `xdp_rx_dropped` already.
    pub fn own_losses(&self) -> u64 {
        self.socket_losses() + self.drop_total("worker_ring_full")
    }

    /// Frames lost before the monitor received them, by its sockets' count.
    pub fn socket_losses(&self) -> u64 {
        ["xdp_rx_dropped", "xdp_rx_ring_full", "af_packet_drops"]
            .iter()
            .map(|name| self.drop_total(name))
            .sum()
    }

    /// Sum of `capture.<name>` over all intervals.
    pub fn capture_total(&self, name: &str) -> u64 {
        self.intervals
            .iter()
            .map(|i| {
                let c = &i.capture;
                match name {
                    "packets" => c.packets,
                    "bytes" => c.bytes,
                    "non_tcp" => c.non_tcp,
                    "malformed" => c.malformed,
                    "ts_backwards" => c.ts_backwards,
                    "time_jumps" => c.time_jumps,
                    "filtered_out" => c.filtered_out,
                    other => panic!("no capture field `{other}`"),
                }
            })
            .sum()
    }

    /// `capture.decapsulated` summed per kind over all intervals.
    pub fn decapsulated_totals(&self) -> std::collections::BTreeMap<String, u64> {
        let mut totals = std::collections::BTreeMap::new();
        for i in &self.intervals {
            for (kind, n) in &i.capture.decapsulated {
                *totals.entry(kind.clone()).or_default() += n;
            }
        }
        totals
    }

    /// Sum of `capture.decode_errors.<name>` over all intervals.
    pub fn decode_error_total(&self, name: &str) -> u64 {
        self.intervals
            .iter()
            .map(|i| {
                *i.capture
                    .decode_errors
                    .get(name)
                    .unwrap_or_else(|| panic!("no decode error `{name}`"))
            })
            .sum()
    }
}

/// Runs `tcpulse analyze FILES --flows - EXTRA...` and splits its output by record type.
pub fn analyze(files: &[&Path], extra: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_tcpulse"))
        .arg("analyze")
        .args(files)
        .args(["--flows", "-", "--progress", "false"])
        .args(extra)
        .output()
        .expect("run tcpulse");
    parse_output(
        &out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// Splits tcpulse's JSON-lines output by record type.
pub fn parse_output(stdout: &[u8], stderr: String, code: i32) -> Run {
    let mut run = Run {
        intervals: Vec::new(),
        flows: Vec::new(),
        stderr,
        code,
    };
    for line in String::from_utf8_lossy(stdout).lines() {
        match Record::from_line(line) {
            Ok(Record::Interval(r)) => run.intervals.push(*r),
            Ok(Record::Flow(f)) => run.flows.push(f),
            Err(e) => panic!("{e}: {line}"),
        }
    }
    run
}

/// A tab-separated table with a header row, as rows of column name → text.
pub fn read_tsv(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split('\t')
        .map(str::to_string)
        .collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split('\t').map(str::to_string))
                .collect()
        })
        .collect()
}

/// Runs a command to the end; returns its exit code and peak resident memory in bytes (the
/// kernel's high-water mark for that one child, from wait4).
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which std's wait cannot do with its resource usage"
)]
pub fn run_measured(cmd: &mut Command) -> (i32, u64) {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start tcpulse");
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: all-zero is a valid rusage (plain integers).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for (std never waits unless asked);
    // `status` and `usage` are valid for writes.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    // ru_maxrss is in KiB on Linux.
    (code, u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024)
}

/// Removes the files on drop, so a failing test leaves nothing behind.
pub struct TempFiles(pub Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}
