//! Sinks (docs/sinks.md): failing destinations never hold up analysis and their losses are
//! counted in the records that reach other sinks; file rotation and SIGHUP reopen; ClickHouse
//! rows equal the JSON output, and a ClickHouse killed mid-run loses nothing it was reported
//! to have received. The ClickHouse and live tests need root and Debian's clickhouse-server
//! (scripts/setup); elsewhere they say they skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tcpulse_core::schema::interval::SinkCounts;
use tcpulse_core::schema::{IntervalRecord, Record};

use common::collector::{clickhouse_installed, free_port, ClickHouse, Collector};
use common::live::{root_or_skip, Lab, Monitor};
use common::shared_pcaps;
use tcpulse_io::sink::file::Rotation;
use tcpulse_io::sink::http::HttpSink;
use tcpulse_io::sink::lane::Delivery;
use tcpulse_io::sink::{FileSink, SinkSet};

/// A capture with many intervals, servers, handshakes and retransmissions.
const CAPTURE: &str = "ndpi_sites.pcapng";

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tcpulse-sinks-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A record line, read through the typed schema, `sinks` left out (the part each destination
/// gets its own of).
fn record_without_sinks(line: &str) -> Record {
    match Record::from_line(line).unwrap_or_else(|e| panic!("{e}: {line}")) {
        Record::Interval(r) => Record::Interval(Box::new(without_sinks(*r))),
        flow => flow,
    }
}

/// An interval record line, read through the typed schema.
fn json(line: &str) -> IntervalRecord {
    match Record::from_line(line) {
        Ok(Record::Interval(r)) => *r,
        Ok(Record::Flow(_)) => panic!("a flow record where an interval record belongs: {line}"),
        Err(e) => panic!("{e}: {line}"),
    }
}

/// The entry of the sink whose name contains `name` in an interval record.
fn entry<'a>(record: &'a IntervalRecord, name: &str) -> Option<&'a SinkCounts> {
    record
        .sinks
        .as_ref()?
        .iter()
        .find(|s| s.name.contains(name))
}

/// Sum of one count of one sink over interval records.
fn sum(records: &[IntervalRecord], name: &str, count: &str) -> u64 {
    records
        .iter()
        .filter_map(|r| entry(r, name))
        .map(|e| match count {
            "delivered" => e.delivered,
            "dropped" => e.dropped,
            "retries" => e.retries,
            "errors" => e.errors,
            other => panic!("sink entries have no `{other}`"),
        })
        .sum()
}

/// An interval record whose start says which of a sequence it is.
fn numbered(n: u64) -> Arc<IntervalRecord> {
    Arc::new(IntervalRecord::new(n, n + 1, "test".into()))
}

fn tcpulse() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tcpulse"))
}

#[test]
fn a_collector_down_then_back_is_counted_exactly_and_receives_again() {
    let dir = TempDir::new("set");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/ingest");
    let mut set = SinkSet::default();
    let file = FileSink::open(&dir.join("x.jsonl"), true, Rotation::default()).unwrap();
    set.add(Box::new(file), &Delivery::default(), true, false)
        .unwrap();
    let http = HttpSink::new(&url, Duration::from_millis(500)).unwrap();
    let quick = Delivery {
        queue: 64,
        batch: 4,
        retries: 1,
        backoff: Duration::from_millis(20),
    };
    set.add(Box::new(http), &quick, true, false).unwrap();

    const N: u64 = 40;
    let mut collector = None;
    for i in 0..N {
        if i == N / 2 {
            collector = Some(Collector::start(port, false));
        }
        set.send_interval(&numbered(i), &set.snapshot());
        std::thread::sleep(Duration::from_millis(40));
    }
    let totals: Vec<SinkCounts> = set.finish(Duration::from_secs(5));
    let collector = collector.unwrap();

    let records: Vec<IntervalRecord> = lines(&dir.join("x.jsonl"))
        .iter()
        .map(|l| json(l))
        .collect();
    assert_eq!(records.len() as u64, N, "the file sink got every record");
    let received = collector.received();
    let http = &totals[1];
    assert_eq!(
        http.delivered,
        received.len() as u64,
        "delivered = what the collector has"
    );
    assert_eq!(
        http.delivered + http.dropped,
        N,
        "every record delivered or dropped, once"
    );
    assert!(http.dropped > 0 && http.errors > 0 && http.retries > 0);
    // The file's reader sees the collector's outage, each event once.
    for count in ["delivered", "dropped", "errors", "retries"] {
        let seen = sum(&records, "http", count);
        let total = match count {
            "delivered" => http.delivered,
            "dropped" => http.dropped,
            "errors" => http.errors,
            _ => http.retries,
        };
        assert!(seen <= total, "{count}: {seen} reported, {total} happened");
    }
    assert!(sum(&records, "http", "dropped") > 0 && sum(&records, "http", "errors") > 0);
    let refused = records
        .iter()
        .filter_map(|r| entry(r, "http"))
        .any(|e| e.last_error.as_ref().is_some_and(|m| m.contains("refused")));
    assert!(refused, "the error is named");
    // Recovery: the collector got the last records, in order; what the records it got say
    // about the collector adds up to the drops before them.
    let got: Vec<IntervalRecord> = received.iter().map(|l| json(l)).collect();
    let numbers: Vec<u64> = got.iter().map(|r| r.start_ns).collect();
    assert_eq!(numbers.last(), Some(&(N - 1)));
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "in order: {numbers:?}"
    );
    assert_eq!(
        sum(&got, "http", "dropped"),
        numbers[0],
        "the collector's first record accounts for every record it missed"
    );
    assert_eq!(totals[0].dropped, 0);
}

/// `analyze CAPTURE --progress false ARGS`, stdout captured.
fn analyze(args: &[&str]) -> (Vec<String>, String, i32) {
    let out = tcpulse()
        .arg("analyze")
        .arg(shared_pcaps().join(CAPTURE))
        .args(["--progress", "false"])
        .args(args)
        .output()
        .expect("run tcpulse");
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        stdout.lines().map(str::to_string).collect(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn dead_and_silent_collectors_do_not_hold_up_analysis() {
    let dir = TempDir::new("dead");
    let (plain, _, code) = analyze(&["--flows", "-"]);
    assert_eq!(code, 0);
    let silent = Collector::start(0, true);
    let file = dir.join("all.jsonl");
    let file_spec = format!("file:{},records=all", file.display());
    let refused = format!("http://127.0.0.1:{}/x,retries=1,backoff=10ms", free_port());
    let slow = format!("{},timeout=200ms,retries=0,queue=64", silent.url());
    let started = std::time::Instant::now();
    let (out, stderr, code) = analyze(&[
        "--flows", "-", "--sink", &file_spec, "--sink", &refused, "--sink", &slow,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "held up");
    // The analysis is whole and the working sink got exactly what the main output got.
    assert_eq!(out.len(), plain.len());
    assert_eq!(lines(&file), out);
    for (a, b) in out.iter().zip(&plain) {
        assert_eq!(
            record_without_sinks(a),
            record_without_sinks(b),
            "the records themselves are unchanged"
        );
    }
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(stderr.contains("dropped"), "{stderr}");
}

#[test]
fn a_closed_stdout_still_feeds_the_other_sinks() {
    let dir = TempDir::new("closed");
    let file = dir.join("x.jsonl");
    let (plain, _, _) = analyze(&[]);
    let mut child = tcpulse()
        .arg("analyze")
        .arg(shared_pcaps().join(CAPTURE))
        .args(["--progress", "false", "--sink"])
        .arg(format!("file:{}", file.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tcpulse");
    drop(child.stdout.take()); // the reader goes away at once
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(5),
        "analyze's main output is lossless: exit 5"
    );
    let got = lines(&file);
    assert_eq!(
        got.len(),
        plain.len(),
        "the file sink still got every record"
    );
}

#[test]
fn a_full_disk_drops_whole_batches_and_counts_them() {
    if !root_or_skip() {
        return;
    }
    let dir = TempDir::new("full");
    let mount = dir.join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let copy = dir.join("copy.jsonl");
    // A 64 KiB tmpfs in a mount namespace of the shell's own: it goes away with the shell,
    // whatever happens to the test.
    let script = format!(
        "mount -t tmpfs -o size=64k tcpulse-test {m} && \
         {bin} analyze {pcap} --progress false --sink file:{m}/x.jsonl,retries=2,backoff=10ms,batch=8; \
         code=$?; cp {m}/x.jsonl {copy}; exit $code",
        m = mount.display(),
        bin = env!("CARGO_BIN_EXE_tcpulse"),
        pcap = shared_pcaps().join(CAPTURE).display(),
        copy = copy.display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("run unshare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let records: Vec<IntervalRecord> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(json)
        .collect();
    assert!(records.len() > 1000, "the analysis is whole");
    assert!(stderr.contains("No space left"), "{stderr}");
    assert!(stderr.contains("dropped"), "{stderr}");
    // Whole records only, each one of the main output's.
    let kept = lines(&copy);
    assert!(!kept.is_empty() && kept.len() < records.len());
    for line in &kept {
        json(line);
    }
    let failures = sum(&records, "x.jsonl", "errors") + sum(&records, "x.jsonl", "dropped");
    assert!(failures > 0, "the failures show in the records");
}

/// The root tests run one at a time: each has a lab or a server of its own, and the machine
/// is small.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn clickhouse_or_skip() -> bool {
    if !root_or_skip() {
        return false;
    }
    let installed = clickhouse_installed();
    if !installed {
        eprintln!("skipped: clickhouse-server is not installed (scripts/setup installs it)");
    }
    installed
}

/// Sends SIGHUP (or another signal) to a monitor (`ip netns exec` execs tcpulse: same pid).
fn signal(monitor: &Monitor, sig: i32) {
    // SAFETY: kill with a valid pid and signal has no memory effects.
    unsafe { libc::kill(monitor.child.id() as i32, sig) };
}

fn without_sinks(mut r: IntervalRecord) -> IntervalRecord {
    r.sinks = None;
    r
}

#[test]
fn sighup_reopens_file_sinks_without_losing_a_record() {
    if !root_or_skip() {
        return;
    }
    let _one = serial();
    let lab = Lab::up("hup", 1);
    let dir = TempDir::new("hup");
    let file = dir.join("x.jsonl");
    let spec = format!("file:{}", file.display());
    let args = [
        "--iface",
        &lab.mon_if(),
        "--interval",
        "500ms",
        "--sink",
        &spec,
    ];
    let monitor = Monitor::start_with(&lab.mon(), &args);
    let pcap = shared_pcaps().join("chrissanders_tcp_handshake.pcapng");
    common::live::replay(&lab, &pcap);
    std::thread::sleep(Duration::from_millis(1500));
    // What logrotate does: move the file, then SIGHUP.
    std::fs::rename(&file, dir.join("x.jsonl.1")).unwrap();
    signal(&monitor, libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(1500));
    common::live::replay(&lab, &pcap);
    std::thread::sleep(Duration::from_millis(1500));
    let (run, code) = monitor.stop();
    assert_eq!(code, 0);
    let (before, after) = (lines(&dir.join("x.jsonl.1")), lines(&file));
    assert!(
        !before.is_empty() && !after.is_empty(),
        "both files written"
    );
    let in_files: Vec<IntervalRecord> = before
        .iter()
        .chain(&after)
        .map(|l| without_sinks(json(l)))
        .collect();
    let on_stdout: Vec<IntervalRecord> = run.intervals.into_iter().map(without_sinks).collect();
    assert_eq!(in_files, on_stdout, "every record, once, in order");
    // The same connection twice: one handshake (the replay repeats its ports), then stray
    // packets of a closed flow.
    let handshakes: u64 = in_files
        .iter()
        .map(|r| r.tcp.counters.get(common::counter("handshakes")))
        .sum();
    assert!(handshakes >= 1);
}

#[test]
fn run_stops_with_5_when_its_only_output_closes() {
    if !root_or_skip() {
        return;
    }
    let _one = serial();
    let lab = Lab::up("pipe", 1);
    let args = ["--iface", &lab.mon_if(), "--interval", "200ms"];
    let mut monitor = Monitor::start_with(&lab.mon(), &args);
    drop(monitor.child.stdout.take());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Ok(Some(status)) = monitor.child.try_wait() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "run kept going");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(5));
}

/// Sum of one column of a ClickHouse table.
fn column_sum(ch: &ClickHouse, table: &str, column: &str) -> u64 {
    let answer = ch.query(&format!("SELECT sum({column}) FROM default.{table}"));
    answer
        .parse()
        .unwrap_or_else(|_| panic!("{column}: {answer}"))
}

#[test]
fn clickhouse_rows_add_up_to_the_json_output() {
    if !clickhouse_or_skip() {
        return;
    }
    let _one = serial();
    let ch = ClickHouse::start("offline", None);
    let spec = format!(
        "clickhouse://127.0.0.1:{}/default,create_tables=true",
        ch.http_port
    );
    let (out, stderr, code) = analyze(&["--sink", &spec]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("dropped"), "{stderr}");
    let records: Vec<IntervalRecord> = out.iter().map(|l| json(l)).collect();
    let rows: u64 = ch
        .query("SELECT count() FROM default.tcpulse_intervals")
        .parse()
        .unwrap();
    assert_eq!(rows, records.len() as u64, "one row per interval");
    for name in [
        "packets",
        "syn",
        "synack",
        "handshakes",
        "retransmits",
        "rst_to_syn",
    ] {
        let json_total: u64 = records
            .iter()
            .map(|r| r.tcp.counters.get(common::counter(name)))
            .sum();
        assert_eq!(
            column_sum(&ch, "tcpulse_intervals", name),
            json_total,
            "{name}"
        );
        assert!(
            name != "handshakes" || json_total > 0,
            "a capture with handshakes"
        );
    }
    // Per server: the JSON's servers, summed over intervals, against the server table.
    let mut by_server: std::collections::BTreeMap<String, [u64; 3]> = Default::default();
    for r in &records {
        for s in &r.servers {
            let e = by_server.entry(s.server.clone()).or_default();
            for (i, name) in ["syn", "handshakes", "retransmits"].iter().enumerate() {
                e[i] += s.counters.get(common::counter(name));
            }
        }
    }
    let answer = ch.query(
        "SELECT server, sum(syn), sum(handshakes), sum(retransmits) \
         FROM default.tcpulse_servers GROUP BY server ORDER BY server",
    );
    let mut in_clickhouse: std::collections::BTreeMap<String, [u64; 3]> = Default::default();
    for line in answer.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let n = |i: usize| f[i].parse::<u64>().unwrap();
        in_clickhouse.insert(f[0].to_string(), [n(1), n(2), n(3)]);
    }
    assert!(by_server.len() > 3, "several servers");
    assert_eq!(in_clickhouse, by_server);
}

#[test]
fn clickhouse_killed_mid_run_loses_nothing_reported_delivered() {
    if !clickhouse_or_skip() {
        return;
    }
    let _one = serial();
    let lab = Lab::up("ch", 1);
    // The server runs in the monitor's namespace: tcpulse reaches it on that loopback.
    let mut ch = ClickHouse::start("live", Some(&lab.mon()));
    let spec = format!(
        "clickhouse://127.0.0.1:{}/default,create_tables=true,retries=2,backoff=200ms,timeout=1s",
        ch.http_port
    );
    let args = [
        "--iface",
        &lab.mon_if(),
        "--interval",
        "500ms",
        "--sink",
        &spec,
    ];
    let monitor = Monitor::start_with(&lab.mon(), &args);
    // Traffic spread over ten seconds, sent at its own pace.
    let mut gen = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.gen(),
            env!("CARGO_BIN_EXE_tcpulse"),
            "gen",
        ])
        .args(["--connections", "400", "--spread", "10", "--seed", "5"])
        .args(["--send", &lab.gen_if(), "--speed", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tcpulse gen");
    std::thread::sleep(Duration::from_secs(3));
    ch.kill();
    std::thread::sleep(Duration::from_secs(3));
    ch.restart();
    let sent = gen.wait().expect("wait for gen");
    assert!(sent.success());
    std::thread::sleep(Duration::from_secs(2));
    let (run, code) = monitor.stop();
    assert_eq!(code, 0);

    let reported = sum(&run.intervals, "clickhouse", "delivered");
    let distinct: u64 = ch
        .query("SELECT uniqExact(start_ns) FROM default.tcpulse_intervals")
        .parse()
        .unwrap();
    eprintln!(
        "clickhouse: {distinct} intervals stored, {reported} reported delivered, {} dropped, \
         {} errors, {} retries over {} records",
        sum(&run.intervals, "clickhouse", "dropped"),
        sum(&run.intervals, "clickhouse", "errors"),
        sum(&run.intervals, "clickhouse", "retries"),
        run.intervals.len()
    );
    assert!(reported > 0);
    assert!(
        distinct >= reported,
        "nothing reported delivered is missing"
    );
    let failures = sum(&run.intervals, "clickhouse", "errors");
    assert!(failures > 0, "the outage shows in the records");
    assert!(sum(&run.intervals, "clickhouse", "retries") > 0);
    // Recovery: records after the first failure still report deliveries.
    let first_failure = run
        .intervals
        .iter()
        .position(|r| entry(r, "clickhouse").is_some_and(|e| e.errors > 0))
        .unwrap();
    let after = sum(
        &run.intervals[first_failure + 1..],
        "clickhouse",
        "delivered",
    );
    assert!(after > 0, "delivering again after the restart");
    // Every interval stored is one the monitor reported.
    let stored = ch.query("SELECT DISTINCT start_ns FROM default.tcpulse_intervals");
    let reported_starts: std::collections::HashSet<u64> =
        run.intervals.iter().map(|r| r.start_ns).collect();
    for line in stored.lines() {
        assert!(
            reported_starts.contains(&line.parse::<u64>().unwrap()),
            "{line}"
        );
    }
}
