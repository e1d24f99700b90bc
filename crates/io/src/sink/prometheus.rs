//! A Prometheus endpoint: `GET /metrics` in the text exposition format, fed by interval
//! records. Counters are running totals since start (Prometheus computes rates), gauges are the
//! last interval's, and latencies are Prometheus histograms filled from the records' exact
//! HdrHistograms. Served on 127.0.0.1 unless configured otherwise.
//!
//! Label cardinality is bounded: the first `max_servers` servers get their own series, which
//! never disappear (a counter that vanished would read as a reset); any later server is folded
//! into `server="other"`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tcpulse_core::schema::counters::Counter;
use tcpulse_core::schema::hist::{HistSummary, LatencyHist};
use tcpulse_core::schema::IntervalRecord;

use super::{Outgoing, Sink};

/// Upper bounds of the latency buckets, microseconds (10 µs to 10 s).
pub const LATENCY_BUCKETS_US: [u64; 19] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Upper bounds of the retransmit-ratio buckets (one observation per server and interval).
const RATIO_BUCKETS: [f64; 9] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];

/// Interval histograms and the metric each feeds.
const LATENCIES: [(&str, &str, &str); 6] = [
    (
        "handshake_total_us",
        "tcpulse_handshake_seconds",
        "SYN to the client's final ACK, as seen at the tap",
    ),
    (
        "syn_synack_us",
        "tcpulse_handshake_server_leg_seconds",
        "SYN to SYN/ACK: the server side of the handshake",
    ),
    (
        "synack_ack_us",
        "tcpulse_handshake_client_leg_seconds",
        "SYN/ACK to the final ACK: the client side of the handshake",
    ),
    (
        "rtt_server_leg_us",
        "tcpulse_rtt_server_leg_seconds",
        "Round trips all through the connections, tap to server to tap",
    ),
    (
        "rtt_client_leg_us",
        "tcpulse_rtt_client_leg_seconds",
        "Round trips all through the connections, tap to client to tap",
    ),
    (
        "response_us",
        "tcpulse_response_seconds",
        "Server response time per request/response turn: the client's first payload byte to the server's, at the tap",
    ),
];

/// Per-server latency histograms: record field, metric, help.
const SERVER_LATENCIES: [(&str, &str, &str); 4] = [
    (
        "handshake_total_us",
        "tcpulse_server_handshake_seconds",
        "SYN to the client's final ACK, per server",
    ),
    (
        "rtt_server_leg_us",
        "tcpulse_server_rtt_server_leg_seconds",
        "Round trips tap to server to tap, per server",
    ),
    (
        "rtt_client_leg_us",
        "tcpulse_server_rtt_client_leg_seconds",
        "Round trips tap to client to tap, per server",
    ),
    (
        "response_us",
        "tcpulse_server_response_seconds",
        "Server response time per request/response turn, per server",
    ),
];

/// Cumulative buckets of one histogram series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets {
    /// Observations at or below each bound (cumulative, as exposed).
    pub le: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

impl Buckets {
    fn new(bounds: usize) -> Self {
        Buckets {
            le: vec![0; bounds],
            count: 0,
            sum: 0.0,
        }
    }

    /// Adds a µs HdrHistogram: each recorded value counts in every bucket whose bound it does
    /// not exceed (its highest equivalent value decides, so nothing is counted low).
    pub fn add_hist(&mut self, h: &LatencyHist) {
        for v in h.inner().iter_recorded() {
            let (value, n) = (v.value_iterated_to(), v.count_at_value());
            for (slot, &bound) in self.le.iter_mut().zip(LATENCY_BUCKETS_US.iter()) {
                if value <= bound {
                    *slot += n;
                }
            }
            self.count += n;
            self.sum += h.inner().median_equivalent(value) as f64 * n as f64 / 1e6;
        }
    }

    fn add_ratio(&mut self, ratio: f64) {
        for (slot, &bound) in self.le.iter_mut().zip(RATIO_BUCKETS.iter()) {
            if ratio <= bound {
                *slot += 1;
            }
        }
        self.count += 1;
        self.sum += ratio;
    }
}

/// Everything exposed, keyed by metric name then label text (`server="…"` or empty).
#[derive(Default)]
struct State {
    counters: BTreeMap<String, BTreeMap<String, f64>>,
    gauges: BTreeMap<String, BTreeMap<String, f64>>,
    latencies: BTreeMap<String, BTreeMap<String, Buckets>>,
    ratios: BTreeMap<String, Buckets>,
    help: BTreeMap<String, String>,
    servers: HashSet<String>,
    max_servers: usize,
    intervals: u64,
}

fn label(name: &str, value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    format!("{name}=\"{escaped}\"")
}

impl State {
    fn add(&mut self, metric: String, labels: String, value: f64) {
        *self
            .counters
            .entry(metric)
            .or_default()
            .entry(labels)
            .or_default() += value;
    }

    fn set(&mut self, metric: String, labels: String, value: f64) {
        self.gauges.entry(metric).or_default().insert(labels, value);
    }

    /// The label a server's series use: its own, or `other` beyond the limit.
    fn server_label(&mut self, server: &str) -> String {
        if self.servers.contains(server) {
            return label("server", server);
        }
        if server != "other" && self.servers.len() < self.max_servers {
            self.servers.insert(server.to_string());
            return label("server", server);
        }
        label("server", "other")
    }

    fn observe(&mut self, rec: &IntervalRecord) {
        self.intervals += 1;
        self.set(
            "tcpulse_last_interval_end_seconds".into(),
            String::new(),
            rec.end_ns as f64 / 1e9,
        );
        let capture = &rec.capture;
        self.add(
            "tcpulse_capture_packets_total".into(),
            String::new(),
            capture.packets as f64,
        );
        self.add(
            "tcpulse_capture_bytes_total".into(),
            String::new(),
            capture.bytes as f64,
        );
        for (reason, n) in &capture.decode_errors {
            let metric = "tcpulse_decode_errors_total".to_string();
            self.add(metric, label("reason", reason), *n as f64);
        }
        self.add(
            "tcpulse_capture_filtered_out_total".into(),
            String::new(),
            capture.filtered_out as f64,
        );
        for (kind, n) in &capture.decapsulated {
            let metric = "tcpulse_decapsulated_segments_total".to_string();
            self.add(metric, label("kind", kind), *n as f64);
        }
        let notes = &capture.decode_notes;
        for (note, n) in [
            ("options_cut", notes.options_cut),
            ("length_clipped", notes.length_clipped),
            ("length_from_frame", notes.length_from_frame),
            ("first_fragments", notes.first_fragments),
        ] {
            let metric = "tcpulse_decode_notes_total".to_string();
            self.add(metric, label("note", note), n as f64);
        }
        for (reason, n) in capture.drops.named() {
            self.add(
                "tcpulse_drops_total".into(),
                label("reason", reason),
                n as f64,
            );
        }
        let tcp = &rec.tcp;
        for &c in Counter::ALL {
            let n = tcp.counters.get(c) as f64;
            self.add(format!("tcpulse_{}_total", c.name()), String::new(), n);
        }
        let gauges = [
            ("active_flows", tcp.active_flows as f64),
            ("half_open", tcp.half_open as f64),
            ("backlog_pressure", tcp.backlog_pressure),
            ("retransmit_ratio", tcp.retransmit_ratio),
        ];
        for (name, v) in gauges {
            self.set(format!("tcpulse_{name}"), String::new(), v);
        }
        self.observe_latencies(&LATENCIES, &rec.histograms.all(), "");
        for row in &rec.servers {
            let server = self.server_label(&row.server);
            for &c in Counter::ALL {
                let metric = format!("tcpulse_server_{}_total", c.name());
                self.add(metric, server.clone(), row.counters.get(c) as f64);
            }
            let gauges = [
                ("active_flows", row.active_flows as f64),
                ("half_open", row.half_open as f64),
                ("backlog_pressure", row.backlog_pressure),
                ("retransmit_ratio", row.retransmit_ratio),
            ];
            for (name, v) in gauges {
                self.set(format!("tcpulse_server_{name}"), server.clone(), v);
            }
            let summaries = [
                &row.handshake_total_us,
                &row.rtt_server_leg_us,
                &row.rtt_client_leg_us,
                &row.response_us,
            ];
            self.observe_latencies(&SERVER_LATENCIES, &summaries, &server);
            if row.counters.get(Counter::data_segments) > 0 {
                self.ratios
                    .entry(server)
                    .or_insert_with(|| Buckets::new(RATIO_BUCKETS.len()))
                    .add_ratio(row.retransmit_ratio);
            }
        }
    }

    /// Adds each record histogram to its metric's series `labels` (`table`: field, metric,
    /// help, in the order of `summaries`).
    fn observe_latencies(
        &mut self,
        table: &[(&str, &str, &str)],
        summaries: &[&HistSummary],
        labels: &str,
    ) {
        for ((field, metric, help), summary) in table.iter().zip(summaries) {
            debug_assert!(field.ends_with("_us"));
            if let Ok(Some(h)) = summary.decode() {
                self.help.insert((*metric).into(), (*help).into());
                self.latencies
                    .entry((*metric).into())
                    .or_default()
                    .entry(labels.to_string())
                    .or_insert_with(|| Buckets::new(LATENCY_BUCKETS_US.len()))
                    .add_hist(&h);
            }
        }
    }

    fn render(&self) -> String {
        let mut out = String::with_capacity(16 << 10);
        let series = |out: &mut String, metric: &str, labels: &str, value: f64| {
            let _ = if labels.is_empty() {
                writeln!(out, "{metric} {value}")
            } else {
                writeln!(out, "{metric}{{{labels}}} {value}")
            };
        };
        let _ = writeln!(
            out,
            "# HELP tcpulse_intervals_total Interval records received.\n\
             # TYPE tcpulse_intervals_total counter\ntcpulse_intervals_total {}",
            self.intervals
        );
        for (kind, family) in [("counter", &self.counters), ("gauge", &self.gauges)] {
            for (metric, values) in family {
                let _ = writeln!(out, "# TYPE {metric} {kind}");
                for (labels, v) in values {
                    series(&mut out, metric, labels, *v);
                }
            }
        }
        let histogram =
            |out: &mut String, metric: &str, labels: &str, b: &Buckets, bounds: &[String]| {
                let sep = if labels.is_empty() { "" } else { "," };
                for (bound, n) in bounds.iter().zip(&b.le) {
                    let _ = writeln!(out, "{metric}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
                }
                let _ = writeln!(
                    out,
                    "{metric}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
                    b.count
                );
                series(out, &format!("{metric}_sum"), labels, b.sum);
                series(out, &format!("{metric}_count"), labels, b.count as f64);
            };
        let latency_bounds: Vec<String> = LATENCY_BUCKETS_US
            .iter()
            .map(|us| (*us as f64 / 1e6).to_string())
            .collect();
        for (metric, values) in &self.latencies {
            if let Some(help) = self.help.get(metric) {
                let _ = writeln!(out, "# HELP {metric} {help}.");
            }
            let _ = writeln!(out, "# TYPE {metric} histogram");
            for (labels, b) in values {
                histogram(&mut out, metric, labels, b, &latency_bounds);
            }
        }
        if !self.ratios.is_empty() {
            let metric = "tcpulse_server_retransmit_ratio";
            let bounds: Vec<String> = RATIO_BUCKETS.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "# HELP {metric} Retransmit ratio of each interval with data, per server.\n\
                 # TYPE {metric} histogram"
            );
            for (labels, b) in &self.ratios {
                histogram(&mut out, metric, labels, b, &bounds);
            }
        }
        out
    }
}

/// The endpoint and its state; dropping it stops the server.
pub struct PrometheusSink {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
}

impl PrometheusSink {
    /// Binds `addr` and serves `/metrics` from a thread of its own.
    ///
    /// # Errors
    /// The address cannot be bound (in use, not local, no permission).
    pub fn start(addr: SocketAddr, max_servers: usize) -> io::Result<PrometheusSink> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("prometheus endpoint {addr}: {e}")))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            max_servers,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        let server = std::thread::Builder::new()
            .name("tcpulse-prometheus".into())
            .spawn(move || serve(&listener, &s, &st))?;
        Ok(PrometheusSink {
            addr,
            state,
            stop,
            server: Some(server),
        })
    }

    /// The bound address (the port, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The exposition as served now.
    pub fn render(&self) -> String {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .render()
    }
}

impl Sink for PrometheusSink {
    fn name(&self) -> String {
        format!("prometheus:{}", self.addr)
    }

    fn deliver(&mut self, records: &[Outgoing]) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for record in records.iter().filter_map(Outgoing::interval) {
            state.observe(record);
        }
        Ok(())
    }
}

impl Drop for PrometheusSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept call.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, state: &Mutex<State>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(mut conn) = conn {
            // One slow client must not hold the endpoint: short timeouts, then drop it.
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = answer(&mut conn, state);
        }
    }
}

fn answer(conn: &mut TcpStream, state: &Mutex<State>) -> io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let (status, kind, body) = if line.starts_with(b"GET /metrics ") || line == b"GET /metrics" {
        let body = state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .render();
        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
    } else if line.starts_with(b"GET ") {
        ("404 Not Found", "text/plain", "see /metrics\n".to_string())
    } else {
        (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        )
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcpulse_core::schema::hist::HistSummary;

    fn hist_of(values_us: &[u64]) -> String {
        let mut h = LatencyHist::default();
        for v in values_us {
            h.record_ns(v * 1000);
        }
        h.summary().hdr
    }

    fn record(handshakes: u64, servers: &[(&str, u64)], hdr: &str) -> Outgoing {
        use tcpulse_core::schema::counters::Counters;
        use tcpulse_core::schema::interval::ServerRecord;
        use tcpulse_core::schema::Record;

        let summary = |count: u64| HistSummary {
            count,
            hdr: hdr.to_string(),
            ..HistSummary::default()
        };
        let mut rec = IntervalRecord::new(0, 1_000_000_000, String::new());
        rec.capture.packets = 10;
        rec.capture.bytes = 1000;
        rec.capture.decode_errors.insert("malformed_tcp".into(), 1);
        rec.tcp.counters.add(Counter::handshakes, handshakes);
        rec.tcp.counters.add(Counter::syn, 4);
        rec.tcp.active_flows = 7;
        rec.tcp.backlog_pressure = 0.25;
        rec.histograms.handshake_total_us = summary(3);
        for (server, syn) in servers {
            let mut counters = Counters::default();
            counters.add(Counter::syn, *syn);
            counters.add(Counter::handshakes, 1);
            counters.add(Counter::data_segments, 10);
            let mut row = ServerRecord::new(
                false,
                tcpulse_core::decode::Endpoint::default(),
                counters,
                0,
                3,
                [None; 4],
            );
            row.server = (*server).to_string();
            row.backlog_pressure = 0.5;
            row.retransmit_ratio = 0.01;
            row.handshake_total_us = summary(1);
            rec.servers.push(row);
        }
        Outgoing::new(Record::Interval(Box::new(rec)))
    }

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }

    #[test]
    fn counters_accumulate_gauges_hold_the_last_value_histograms_fill_buckets() {
        let mut sink = PrometheusSink::start("127.0.0.1:0".parse().unwrap(), 10).unwrap();
        let hdr = hist_of(&[40, 90, 3_000]);
        sink.deliver(&[record(3, &[("10.0.0.1:80", 2)], &hdr)])
            .unwrap();
        sink.deliver(&[record(5, &[("10.0.0.1:80", 3)], &hdr)])
            .unwrap();
        let text = sink.render();
        assert_eq!(value(&text, "tcpulse_handshakes_total"), 8.0);
        assert_eq!(value(&text, "tcpulse_active_flows"), 7.0);
        assert_eq!(value(&text, "tcpulse_capture_packets_total"), 20.0);
        assert_eq!(
            value(
                &text,
                "tcpulse_decode_errors_total{reason=\"malformed_tcp\"}"
            ),
            2.0
        );
        assert_eq!(
            value(&text, "tcpulse_server_syn_total{server=\"10.0.0.1:80\"}"),
            5.0
        );
        assert_eq!(
            value(
                &text,
                "tcpulse_server_backlog_pressure{server=\"10.0.0.1:80\"}"
            ),
            0.5
        );
        // 40 µs and 90 µs twice each: 2 at or below 50 µs, 4 at or below 100 µs, 6 in all.
        assert_eq!(
            value(&text, "tcpulse_handshake_seconds_bucket{le=\"0.00005\"}"),
            2.0
        );
        assert_eq!(
            value(&text, "tcpulse_handshake_seconds_bucket{le=\"0.0001\"}"),
            4.0
        );
        assert_eq!(
            value(&text, "tcpulse_handshake_seconds_bucket{le=\"0.0025\"}"),
            4.0
        );
        assert_eq!(
            value(&text, "tcpulse_handshake_seconds_bucket{le=\"+Inf\"}"),
            6.0
        );
        assert_eq!(value(&text, "tcpulse_handshake_seconds_count"), 6.0);
        assert!(text.contains("# TYPE tcpulse_handshake_seconds histogram"));
        assert_eq!(
            value(
                &text,
                "tcpulse_server_retransmit_ratio_bucket{server=\"10.0.0.1:80\",le=\"0.01\"}"
            ),
            2.0
        );
    }

    #[test]
    fn servers_beyond_the_limit_fold_into_other_and_labels_are_escaped() {
        let mut sink = PrometheusSink::start("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let servers = [("a:1", 1), ("b\"\\:2", 1), ("c:3", 1), ("d:4", 1)];
        sink.deliver(&[record(1, &servers, "")]).unwrap();
        let text = sink.render();
        assert_eq!(
            value(&text, "tcpulse_server_syn_total{server=\"a:1\"}"),
            1.0
        );
        assert_eq!(
            value(&text, "tcpulse_server_syn_total{server=\"b\\\"\\\\:2\"}"),
            1.0
        );
        assert_eq!(
            value(&text, "tcpulse_server_syn_total{server=\"other\"}"),
            2.0
        );
        assert!(!text.contains("c:3"));
    }

    #[test]
    fn serves_metrics_over_http_and_404_elsewhere() {
        let mut sink = PrometheusSink::start("127.0.0.1:0".parse().unwrap(), 10).unwrap();
        sink.deliver(&[record(2, &[], "")]).unwrap();
        let get = |path: &str| {
            let mut c = TcpStream::connect(sink.local_addr()).unwrap();
            write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            out
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(ok.contains("tcpulse_handshakes_total 2"), "{ok}");
        assert!(get("/").starts_with("HTTP/1.1 404"));
    }
}
