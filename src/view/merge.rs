//! Merging interval records from many appliances and times into one record per window.
//!
//! Counters, capture statistics and drops are summed; histograms are decoded from their `hdr`
//! field and added bucket by bucket, so the merged percentiles are those an analysis of all the
//! traffic at once would report. Gauges (`active_flows`, `half_open`) are states at the end of
//! an interval: a window takes each source's last value and sums those over sources.
//!
//! Only `interval` records are merged; flow records and other types are passed over (counted).
//! A line that is not JSON, or an interval record without `start_ns`/`end_ns`, is counted as
//! malformed and skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use serde_json::{Map, Value};

use tcpulse_core::decode::Endpoint;
use tcpulse_core::decode::{Addr, DecodeError};
use tcpulse_core::metrics::interval::select_servers;
use tcpulse_core::schema::counters::Counters;
use tcpulse_core::schema::hist::LatencyHist;
use tcpulse_core::schema::interval::{
    CaptureStats, Drops, HistogramsJson, IntervalRecord, ServerJson, TcpJson,
};

/// How input records are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// One window per record start: records of the same interval (same length, aligned the
    /// same way, as every tcpulse run aligns them) merge.
    Own,
    /// Windows of this many nanoseconds, aligned to multiples of their length, like the
    /// analysis aligns intervals. A record goes to the window its start falls in.
    Every(u64),
    /// Everything in one record.
    All,
}

impl Window {
    fn key(self, start_ns: u64) -> u64 {
        match self {
            Window::Own => start_ns,
            Window::Every(len) => start_ns - start_ns % len.max(1),
            Window::All => 0,
        }
    }
}

/// Parses `--window`: `all`, `own` or a duration (`1m`, `10s`).
pub fn parse_window(text: &str) -> Result<Window, String> {
    match text.trim() {
        "all" => Ok(Window::All),
        "own" | "interval" => Ok(Window::Own),
        other => {
            let d = tcpulse_core::units::parse_duration(other)?;
            Ok(Window::Every(
                u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1),
            ))
        }
    }
}

/// What reading found besides the records merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Interval records merged.
    pub intervals: u64,
    /// Flow records passed over.
    pub flows: u64,
    /// Records of another `type` passed over.
    pub other: u64,
    /// Lines that are not JSON objects, or interval records without their bounds.
    pub malformed: u64,
    /// Histograms with a count but an `hdr` that does not decode (left out of the merge).
    pub bad_hdr: u64,
    /// Server rows whose `server` is not `ip:port` or `other` (left out).
    pub bad_servers: u64,
}

impl ReadStats {
    /// One line for standard error: what was merged and what was not.
    pub fn describe(&self) -> String {
        let mut s = format!("{} interval records read", self.intervals);
        for (n, what) in [
            (self.flows, "flow records passed over"),
            (self.other, "records of other types passed over"),
            (self.malformed, "malformed lines skipped"),
            (self.bad_hdr, "histograms with an undecodable hdr left out"),
            (
                self.bad_servers,
                "server rows with a bad server name left out",
            ),
        ] {
            if n > 0 {
                s.push_str(&format!("; {n} {what}"));
            }
        }
        s
    }
}

/// An end-of-interval state (flows in the table, handshakes in progress) of one source.
#[derive(Clone, Copy, Debug, Default)]
struct Gauges {
    end_ns: u64,
    active_flows: u64,
    half_open: u64,
}

/// Keeps each source's latest gauges.
fn keep_latest(map: &mut BTreeMap<String, Gauges>, source: &str, g: Gauges) {
    match map.get_mut(source) {
        Some(old) if old.end_ns > g.end_ns => {}
        Some(old) => *old = g,
        None => {
            map.insert(source.to_string(), g);
        }
    }
}

fn sum_gauges(map: &BTreeMap<String, Gauges>) -> (u64, u64) {
    map.values()
        .fold((0, 0), |(a, h), g| (a + g.active_flows, h + g.half_open))
}

type ServerKey = (bool, Endpoint);

#[derive(Default)]
struct ServerAcc {
    counters: Counters,
    hist: Option<LatencyHist>,
    gauges: BTreeMap<String, Gauges>,
}

/// One window being summed.
struct Acc {
    start_ns: u64,
    end_ns: u64,
    merged: u64,
    sources: BTreeSet<String>,
    capture: CaptureStats,
    tcp: Counters,
    gauges: BTreeMap<String, Gauges>,
    hists: [Option<LatencyHist>; 3],
    servers: BTreeMap<ServerKey, ServerAcc>,
    servers_omitted: u64,
}

impl Acc {
    fn new() -> Acc {
        Acc {
            start_ns: u64::MAX,
            end_ns: 0,
            merged: 0,
            sources: BTreeSet::new(),
            capture: CaptureStats::default(),
            tcp: Counters::default(),
            gauges: BTreeMap::new(),
            hists: [None, None, None],
            servers: BTreeMap::new(),
            servers_omitted: 0,
        }
    }
}

/// A merged window: the record as `tcpulse merge` writes it, and its decoded histograms for
/// the report and the charts.
pub struct Merged {
    pub record: IntervalRecord,
    /// Handshake total time over every server.
    pub handshake: Option<LatencyHist>,
    /// Per listed server (parallel to `record.servers`), its handshake total time.
    pub server_hists: Vec<Option<LatencyHist>>,
}

/// Histogram fields of an interval record, in the order `Acc::hists` keeps them.
const HISTS: [&str; 3] = ["handshake_total_us", "syn_synack_us", "synack_ack_us"];

/// Sums interval records into windows.
pub struct Merger {
    window: Window,
    top_servers: usize,
    windows: BTreeMap<u64, Acc>,
    pub stats: ReadStats,
}

impl Merger {
    pub fn new(window: Window, top_servers: usize) -> Merger {
        Merger {
            window,
            top_servers,
            windows: BTreeMap::new(),
            stats: ReadStats::default(),
        }
    }

    /// Takes one input line; returns the window an interval record went to.
    pub fn push_line(&mut self, line: &str) -> Option<u64> {
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => self.push_record(&map),
            _ => {
                self.stats.malformed += 1;
                None
            }
        }
    }

    /// Takes one parsed record; returns the window an interval record went to.
    pub fn push_record(&mut self, rec: &Map<String, Value>) -> Option<u64> {
        match rec.get("type").and_then(Value::as_str) {
            Some("interval") => {}
            Some("flow") => {
                self.stats.flows += 1;
                return None;
            }
            _ => {
                self.stats.other += 1;
                return None;
            }
        }
        let (Some(start_ns), Some(end_ns)) = (u64_at(rec, "start_ns"), u64_at(rec, "end_ns"))
        else {
            self.stats.malformed += 1;
            return None;
        };
        self.stats.intervals += 1;
        let key = self.window.key(start_ns);
        let acc = self.windows.entry(key).or_insert_with(Acc::new);
        add_record(acc, rec, start_ns, end_ns, &mut self.stats);
        Some(key)
    }

    /// Windows that are not open any more: those before `key` (live input moves forward in
    /// time: once a record of a later window arrives, earlier windows are complete).
    pub fn take_before(&mut self, key: u64) -> Vec<Merged> {
        let later = self.windows.split_off(&key);
        let done = std::mem::replace(&mut self.windows, later);
        done.iter().map(|(k, a)| self.finish_acc(*k, a)).collect()
    }

    /// Every window, oldest first.
    pub fn finish(self) -> Vec<Merged> {
        self.windows
            .iter()
            .map(|(k, a)| self.finish_acc(*k, a))
            .collect()
    }

    /// The window still open at `key`, merged as it stands (live display), if any.
    pub fn peek(&self, key: u64) -> Option<Merged> {
        let acc = self.windows.get(&key)?;
        Some(self.finish_acc(key, acc))
    }

    fn finish_acc(&self, key: u64, acc: &Acc) -> Merged {
        finish_acc(acc, self.window, key, self.top_servers)
    }
}

fn u64_at(map: &Map<String, Value>, key: &str) -> Option<u64> {
    map.get(key).and_then(Value::as_u64)
}

fn obj<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    map.get(key).and_then(Value::as_object)
}

fn counters_of(map: &Map<String, Value>) -> Counters {
    Counters::from_named(|name| u64_at(map, name))
}

/// The histogram of `field` in `map`: `Ok(None)` when empty, `Err` when its `hdr` is bad.
fn hist_of(map: &Map<String, Value>, field: &str) -> Result<Option<LatencyHist>, ()> {
    let Some(h) = obj(map, field) else {
        return Ok(None);
    };
    let count = u64_at(h, "count").unwrap_or(0);
    match h.get("hdr").and_then(Value::as_str) {
        Some(text) if !text.is_empty() => LatencyHist::from_base64(text).map(Some).ok_or(()),
        _ if count == 0 => Ok(None),
        _ => Err(()),
    }
}

fn merge_hist(acc: &mut Option<LatencyHist>, h: LatencyHist) {
    match acc {
        Some(a) => a.merge(&h),
        None => *acc = Some(h),
    }
}

/// `ip:port`, `[v6]:port`, or `other` (the bucket beyond the per-worker server limit).
fn server_key(text: &str) -> Option<ServerKey> {
    if text == "other" {
        return Some((true, Endpoint::default()));
    }
    let sa: SocketAddr = text.parse().ok()?;
    let addr = match sa.ip() {
        IpAddr::V4(v4) => Addr::from_v4(v4.octets()),
        IpAddr::V6(v6) => Addr::from_v6(v6.octets()),
    };
    Some((
        false,
        Endpoint {
            addr,
            port: sa.port(),
        },
    ))
}

/// The sources a record stands for: its `sources` list when merged, else its `source`.
fn sources_of(rec: &Map<String, Value>) -> Vec<String> {
    if let Some(list) = rec.get("sources").and_then(Value::as_array) {
        return list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
    }
    vec![rec
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()]
}

fn add_record(
    acc: &mut Acc,
    rec: &Map<String, Value>,
    start_ns: u64,
    end_ns: u64,
    stats: &mut ReadStats,
) {
    let empty = Map::new();
    acc.start_ns = acc.start_ns.min(start_ns);
    acc.end_ns = acc.end_ns.max(end_ns);
    acc.merged += u64_at(rec, "merged").unwrap_or(1);
    acc.sources.extend(sources_of(rec));
    // Gauges are kept per record source as written (a merged record's sum stands for its
    // sources together).
    let source = rec.get("source").and_then(Value::as_str).unwrap_or("");

    let capture = obj(rec, "capture").unwrap_or(&empty);
    let mut c = CaptureStats {
        packets: u64_at(capture, "packets").unwrap_or(0),
        bytes: u64_at(capture, "bytes").unwrap_or(0),
        ts_backwards: u64_at(capture, "ts_backwards").unwrap_or(0),
        time_jumps: u64_at(capture, "time_jumps").unwrap_or(0),
        drops: capture
            .get("drops")
            .and_then(|d| serde_json::from_value::<Drops>(d.clone()).ok())
            .unwrap_or_default(),
        ..CaptureStats::default()
    };
    if let Some(errors) = obj(capture, "decode_errors") {
        for e in DecodeError::ALL {
            c.decode[e.index()] = u64_at(errors, e.name()).unwrap_or(0);
        }
    }
    acc.capture.merge(&c);

    let tcp = obj(rec, "tcp").unwrap_or(&empty);
    acc.tcp.merge(&counters_of(tcp));
    let gauges = |m: &Map<String, Value>| Gauges {
        end_ns,
        active_flows: u64_at(m, "active_flows").unwrap_or(0),
        half_open: u64_at(m, "half_open").unwrap_or(0),
    };
    keep_latest(&mut acc.gauges, source, gauges(tcp));

    let hists = obj(rec, "histograms").unwrap_or(&empty);
    for (slot, field) in acc.hists.iter_mut().zip(HISTS) {
        match hist_of(hists, field) {
            Ok(Some(h)) => merge_hist(slot, h),
            Ok(None) => {}
            Err(()) => stats.bad_hdr += 1,
        }
    }

    let rows = rec.get("servers").and_then(Value::as_array);
    for row in rows.into_iter().flatten().filter_map(Value::as_object) {
        let Some(key) = row
            .get("server")
            .and_then(Value::as_str)
            .and_then(server_key)
        else {
            stats.bad_servers += 1;
            continue;
        };
        let s = acc.servers.entry(key).or_default();
        s.counters.merge(&counters_of(row));
        keep_latest(&mut s.gauges, source, gauges(row));
        match hist_of(row, "handshake_total_us") {
            Ok(Some(h)) => merge_hist(&mut s.hist, h),
            Ok(None) => {}
            Err(()) => stats.bad_hdr += 1,
        }
    }
    acc.servers_omitted = acc
        .servers_omitted
        .max(u64_at(rec, "servers_omitted").unwrap_or(0));
}

fn finish_acc(acc: &Acc, window: Window, key: u64, top_servers: usize) -> Merged {
    // A window of fixed length starts and ends on its boundaries, as the analysis's intervals
    // do.
    let (start_ns, end_ns) = match window {
        Window::Every(len) => (key, key.saturating_add(len)),
        Window::Own | Window::All => (acc.start_ns.min(acc.end_ns), acc.end_ns),
    };
    let listed = select_servers(
        acc.servers.iter().map(|(k, s)| (*k, &s.counters)),
        top_servers,
    );
    // Servers an input left out are only a count: the same servers may hide in several inputs
    // (appliances, or intervals of one), so the largest such count is what is known for sure.
    let servers_omitted = acc.servers_omitted + (acc.servers.len() - listed.len()) as u64;
    let mut servers = Vec::with_capacity(listed.len());
    let mut server_hists = Vec::with_capacity(listed.len());
    for key in listed {
        let s = &acc.servers[&key];
        let (active_flows, half_open) = sum_gauges(&s.gauges);
        servers.push(ServerJson::new(
            key.0,
            key.1,
            s.counters,
            half_open,
            active_flows,
            s.hist.as_ref(),
        ));
        server_hists.push(s.hist.clone());
    }
    let (active_flows, half_open) = sum_gauges(&acc.gauges);
    let summary =
        |h: &Option<LatencyHist>| h.as_ref().map(LatencyHist::summary).unwrap_or_default();
    let sources: Vec<String> = acc.sources.iter().cloned().collect();
    let record = IntervalRecord {
        kind: "interval",
        start_ns,
        end_ns,
        source: sources.join(" + "),
        capture: acc.capture.to_json(),
        tcp: TcpJson::new(acc.tcp, active_flows, half_open),
        histograms: HistogramsJson {
            handshake_total_us: summary(&acc.hists[0]),
            syn_synack_us: summary(&acc.hists[1]),
            synack_ack_us: summary(&acc.hists[2]),
        },
        servers,
        servers_omitted,
        merged: Some(acc.merged),
        sources: Some(sources),
    };
    Merged {
        record,
        handshake: acc.hists[0].clone(),
        server_hists,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(source: &str, start: u64, syn: u64, us: &[u64], server_us: &[u64]) -> String {
        let mut h = LatencyHist::default();
        let mut hs = LatencyHist::per_server();
        for &u in us {
            h.record_ns(u * 1000);
        }
        for &u in server_us {
            hs.record_ns(u * 1000);
        }
        serde_json::json!({
            "type": "interval", "start_ns": start, "end_ns": start + 1_000_000_000,
            "source": source,
            "capture": {"packets": syn * 2, "bytes": 100, "decode_errors": {"not_ip": 1},
                        "drops": {"flow_table_full": 2}},
            "tcp": {"syn": syn, "active_flows": 3, "half_open": 1},
            "histograms": {"handshake_total_us": h.summary()},
            "servers": [{"server": "10.0.0.1:80", "syn": syn, "packets": syn,
                         "active_flows": 2, "handshake_total_us": hs.summary()},
                        {"server": "[2001:db8::1]:443", "syn": 1, "packets": 1}],
            "servers_omitted": 0
        })
        .to_string()
    }

    #[test]
    fn sums_counters_and_adds_histograms_exactly() {
        let mut m = Merger::new(Window::Own, 20);
        m.push_line(&record(
            "a",
            1_000_000_000,
            5,
            &[100, 200, 300],
            &[100, 900],
        ));
        m.push_line(&record("b", 1_000_000_000, 7, &[150, 5000], &[40_000]));
        m.push_line(&record("a", 2_000_000_000, 1, &[], &[]));
        let out = m.finish();
        assert_eq!(out.len(), 2);
        let r = &out[0].record;
        assert_eq!(r.merged, Some(2));
        assert_eq!(r.source, "a + b");
        assert_eq!(
            r.tcp
                .counters
                .get(tcpulse_core::schema::counters::Counter::syn),
            12
        );
        assert_eq!((r.tcp.active_flows, r.tcp.half_open), (6, 2));
        assert_eq!((r.capture.packets, r.capture.non_tcp), (24, 2));
        assert_eq!(r.capture.drops.flow_table_full, 4);
        let mut whole = LatencyHist::default();
        for u in [100, 200, 300, 150, 5000] {
            whole.record_ns(u * 1000);
        }
        assert_eq!(r.histograms.handshake_total_us, whole.summary());
        assert_eq!(r.servers[0].server, "10.0.0.1:80");
        assert_eq!(r.servers[0].active_flows, 4);
        assert_eq!(r.servers[0].handshake_total_us.count, 3);
        assert_eq!(r.servers[1].server, "[2001:db8::1]:443");
    }

    #[test]
    fn windows_align_and_gauges_take_each_sources_last_value() {
        let mut m = Merger::new(Window::All, 20);
        for t in 1..=3 {
            m.push_line(&record("a", t * 1_000_000_000, 1, &[10], &[]));
        }
        let out = m.finish();
        assert_eq!(out.len(), 1);
        let r = &out[0].record;
        assert_eq!(
            (r.start_ns, r.end_ns, r.merged),
            (1_000_000_000, 4_000_000_000, Some(3))
        );
        assert_eq!(r.tcp.active_flows, 3);
        assert_eq!(r.histograms.handshake_total_us.count, 3);
        assert_eq!(Window::Every(60).key(119), 60);
        assert_eq!(parse_window("1m"), Ok(Window::Every(60_000_000_000)));
        assert!(parse_window("often").is_err());
    }

    #[test]
    fn bad_lines_are_counted_not_fatal() {
        let mut m = Merger::new(Window::Own, 20);
        m.push_line("not json");
        m.push_line("[1,2]");
        m.push_line(r#"{"type":"flow"}"#);
        m.push_line(r#"{"type":"alert"}"#);
        m.push_line(r#"{"type":"interval"}"#);
        m.push_line(
            r#"{"type":"interval","start_ns":0,"end_ns":1,"tcp":{"syn":"x"},
            "histograms":{"handshake_total_us":{"count":2,"hdr":"@@"}},
            "servers":[{"server":"nowhere"}, 5]}"#,
        );
        let s = &m.stats;
        assert_eq!((s.malformed, s.flows, s.other, s.intervals), (3, 1, 1, 1));
        assert_eq!((s.bad_hdr, s.bad_servers), (1, 1));
        assert_eq!(m.finish().len(), 1);
    }

    #[test]
    fn merged_records_merge_again() {
        let mut m = Merger::new(Window::Own, 20);
        m.push_line(&record("a", 0, 2, &[10, 20], &[10]));
        m.push_line(&record("b", 0, 3, &[30], &[30]));
        let once = serde_json::to_string(&m.finish()[0].record).unwrap();
        let mut again = Merger::new(Window::Own, 20);
        again.push_line(&once);
        again.push_line(&record("c", 0, 1, &[40], &[]));
        let r = &again.finish()[0].record;
        assert_eq!(r.merged, Some(3));
        assert_eq!(
            r.sources.as_deref(),
            Some(&["a".into(), "b".into(), "c".into()][..])
        );
        assert_eq!(r.histograms.handshake_total_us.count, 4);
        assert_eq!(r.tcp.active_flows, 9);
    }
}
