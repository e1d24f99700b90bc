//! Merging interval records from many appliances and times into one record per window.
//!
//! Counters, capture statistics and drops are summed; histograms are decoded from their `hdr`
//! field and added bucket by bucket, so the merged percentiles are those an analysis of all the
//! traffic at once would report. Gauges (`active_flows`, `half_open`) are states at the end of
//! an interval: a window takes each source's last value and sums those over sources.
//!
//! Only `interval` records are merged; flow records and other types are passed over (counted).
//! Interval records are read through the typed schema: a line that is not JSON, or an interval
//! record that lacks a field or has one of the wrong type, is counted as malformed and
//! skipped; a record of another schema version is counted as such and skipped.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use tcpulse_core::decode::Endpoint;
use tcpulse_core::metrics::interval::select_servers;
use tcpulse_core::schema::counters::Counters;
use tcpulse_core::schema::hist::{HistSummary, LatencyHist};
use tcpulse_core::schema::interval::{
    CaptureStats, HistogramsRecord, IntervalRecord, ServerRecord, TcpRecord,
};
use tcpulse_core::schema::{ReadError, Record, SCHEMA_VERSION};

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
    /// Lines that are not JSON objects, or interval records lacking a field or with one of the
    /// wrong type.
    pub malformed: u64,
    /// Records of another schema version (passed over).
    pub other_version: u64,
    /// Decode errors of reasons this version does not know (their count, left out).
    pub unknown_reasons: u64,
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
            (
                self.other_version,
                "records of another schema version passed over",
            ),
            (
                self.unknown_reasons,
                "decode errors of unknown reasons left out",
            ),
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
    map.values().fold((0u64, 0u64), |(a, h), g| {
        (
            a.saturating_add(g.active_flows),
            h.saturating_add(g.half_open),
        )
    })
}

type ServerKey = (bool, Endpoint);

#[derive(Default)]
struct ServerAcc {
    counters: Counters,
    /// Handshake total, RTT server leg, RTT client leg, response (`ServerRecord::new`'s order).
    hists: [Option<LatencyHist>; 4],
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
    /// `HistogramsRecord`'s histograms, in its field order.
    hists: [Option<LatencyHist>; 6],
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
            hists: Default::default(),
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
        // The type first, so that flow records and other types are passed over whatever
        // they hold.
        match serde_json::from_str::<TypeOnly>(line) {
            Ok(t) if t.kind == "interval" => {}
            Ok(t) if t.kind == "flow" => {
                self.stats.flows += 1;
                return None;
            }
            Ok(_) => {
                self.stats.other += 1;
                return None;
            }
            Err(_) => {
                self.stats.malformed += 1;
                return None;
            }
        }
        match Record::from_line(line) {
            Ok(Record::Interval(rec)) => self.push_record(&rec),
            Ok(Record::Flow(_)) => None,
            Err(ReadError::Version(_)) => {
                self.stats.other_version += 1;
                None
            }
            Err(ReadError::Malformed(_)) => {
                self.stats.malformed += 1;
                None
            }
        }
    }

    /// Takes one interval record; returns the window it went to.
    pub fn push_record(&mut self, rec: &IntervalRecord) -> Option<u64> {
        if rec.schema_version != SCHEMA_VERSION {
            self.stats.other_version += 1;
            return None;
        }
        self.stats.intervals += 1;
        let key = self.window.key(rec.start_ns);
        let acc = self.windows.entry(key).or_insert_with(Acc::new);
        add_record(acc, rec, &mut self.stats);
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

/// Just a record's `type`.
#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: String,
}

fn merge_hist(acc: &mut Option<LatencyHist>, h: LatencyHist) {
    match acc {
        Some(a) => a.merge(&h),
        None => *acc = Some(h),
    }
}

/// Adds `summary`'s histogram to `acc`; an `hdr` that does not decode is counted.
fn add_hist(acc: &mut Option<LatencyHist>, summary: &HistSummary, stats: &mut ReadStats) {
    match summary.decode() {
        Ok(Some(h)) => merge_hist(acc, h),
        Ok(None) => {}
        Err(()) => stats.bad_hdr += 1,
    }
}

/// The sources a record stands for: its `sources` list when merged, else its `source`.
fn sources_of(rec: &IntervalRecord) -> Vec<String> {
    match &rec.sources {
        Some(list) => list.clone(),
        None => vec![rec.source.clone()],
    }
}

fn add_record(acc: &mut Acc, rec: &IntervalRecord, stats: &mut ReadStats) {
    acc.start_ns = acc.start_ns.min(rec.start_ns);
    acc.end_ns = acc.end_ns.max(rec.end_ns);
    acc.merged = acc.merged.saturating_add(rec.merged.unwrap_or(1));
    acc.sources.extend(sources_of(rec));
    // Gauges are kept per record source as written (a merged record's sum stands for its
    // sources together).
    let source = rec.source.as_str();
    let end_ns = rec.end_ns;

    let (capture, unknown) = CaptureStats::from_record(&rec.capture);
    stats.unknown_reasons = stats.unknown_reasons.saturating_add(unknown);
    acc.capture.merge(&capture);

    acc.tcp.merge(&rec.tcp.counters);
    let tcp_gauges = Gauges {
        end_ns,
        active_flows: rec.tcp.active_flows,
        half_open: rec.tcp.half_open,
    };
    keep_latest(&mut acc.gauges, source, tcp_gauges);

    for (slot, summary) in acc.hists.iter_mut().zip(rec.histograms.all()) {
        add_hist(slot, summary, stats);
    }

    for row in &rec.servers {
        let Some(endpoint) = row.endpoint() else {
            stats.bad_servers += 1;
            continue;
        };
        let key = (endpoint.is_none(), endpoint.unwrap_or_default());
        let s = acc.servers.entry(key).or_default();
        s.counters.merge(&row.counters);
        let gauges = Gauges {
            end_ns,
            active_flows: row.active_flows,
            half_open: row.half_open,
        };
        keep_latest(&mut s.gauges, source, gauges);
        let rows = [
            &row.handshake_total_us,
            &row.rtt_server_leg_us,
            &row.rtt_client_leg_us,
            &row.response_us,
        ];
        for (slot, summary) in s.hists.iter_mut().zip(rows) {
            add_hist(slot, summary, stats);
        }
    }
    acc.servers_omitted = acc.servers_omitted.max(rec.servers_omitted);
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
    let servers_omitted = acc
        .servers_omitted
        .saturating_add((acc.servers.len() - listed.len()) as u64);
    let mut servers = Vec::with_capacity(listed.len());
    let mut server_hists = Vec::with_capacity(listed.len());
    for key in listed {
        let s = &acc.servers[&key];
        let (active_flows, half_open) = sum_gauges(&s.gauges);
        servers.push(ServerRecord::new(
            key.0,
            key.1,
            s.counters,
            half_open,
            active_flows,
            s.hists.each_ref().map(Option::as_ref),
        ));
        server_hists.push(s.hists[0].clone());
    }
    let (active_flows, half_open) = sum_gauges(&acc.gauges);
    let summary =
        |h: &Option<LatencyHist>| h.as_ref().map(LatencyHist::summary).unwrap_or_default();
    let sources: Vec<String> = acc.sources.iter().cloned().collect();
    let record = IntervalRecord {
        schema_version: SCHEMA_VERSION,
        start_ns,
        end_ns,
        source: sources.join(" + "),
        capture: acc.capture.to_record(),
        tcp: TcpRecord::new(acc.tcp, active_flows, half_open),
        histograms: HistogramsRecord {
            handshake_total_us: summary(&acc.hists[0]),
            syn_synack_us: summary(&acc.hists[1]),
            synack_ack_us: summary(&acc.hists[2]),
            rtt_server_leg_us: summary(&acc.hists[3]),
            rtt_client_leg_us: summary(&acc.hists[4]),
            response_us: summary(&acc.hists[5]),
        },
        servers,
        servers_omitted,
        merged: Some(acc.merged),
        sources: Some(sources),
        sinks: None,
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
    use tcpulse_core::schema::counters::Counter;

    fn record(source: &str, start: u64, syn: u64, us: &[u64], server_us: &[u64]) -> String {
        let mut h = LatencyHist::default();
        let mut hs = LatencyHist::per_server();
        for &u in us {
            h.record_ns(u * 1000);
        }
        for &u in server_us {
            hs.record_ns(u * 1000);
        }
        let mut rec = IntervalRecord::new(start, start + 1_000_000_000, source.to_string());
        rec.capture.packets = syn * 2;
        rec.capture.bytes = 100;
        rec.capture.decode_errors.insert("not_ip".into(), 1);
        rec.capture.non_tcp = 1;
        rec.capture.drops.flow_table_full = 2;
        rec.tcp.counters.add(Counter::syn, syn);
        rec.tcp.active_flows = 3;
        rec.tcp.half_open = 1;
        rec.histograms.handshake_total_us = h.summary();
        let server = |name: &str, syn: u64, active_flows: u64, hist: HistSummary| {
            let mut counters = Counters::default();
            counters.add(Counter::syn, syn);
            counters.add(Counter::packets, syn);
            let mut row = ServerRecord::new(false, Endpoint::default(), counters, 0, 0, [None; 4]);
            row.server = name.to_string();
            row.active_flows = active_flows;
            row.handshake_total_us = hist;
            row
        };
        rec.servers = vec![
            server("10.0.0.1:80", syn, 2, hs.summary()),
            server("[2001:db8::1]:443", 1, 0, HistSummary::default()),
        ];
        serde_json::to_string(&rec).unwrap()
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
        // An interval record lacking its fields, and one of another layout version.
        m.push_line(r#"{"type":"interval"}"#);
        let mut older: serde_json::Value =
            serde_json::from_str(&record("a", 0, 1, &[], &[])).unwrap();
        older["schema_version"] = 0.into();
        m.push_line(&older.to_string());
        // A whole record with an undecodable histogram and a bad server name.
        let mut bad: IntervalRecord = serde_json::from_str(&record("a", 0, 1, &[10], &[])).unwrap();
        bad.histograms.handshake_total_us.hdr = "@@".into();
        bad.servers[0].server = "nowhere".into();
        m.push_line(&serde_json::to_string(&bad).unwrap());
        let s = &m.stats;
        assert_eq!((s.malformed, s.flows, s.other, s.intervals), (3, 1, 1, 1));
        assert_eq!(s.other_version, 1);
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

#[cfg(test)]
mod edge_tests {
    use super::*;
    use crate::view::{plot, report};
    use tcpulse_core::schema::counters::Counter;

    /// Records claiming the largest numbers there are: merged, reported and plotted, the
    /// figures saturate instead of overflowing (a panic with overflow checks, a wrap without).
    #[test]
    fn records_at_the_edge_of_u64_merge_report_and_plot() {
        let mut rec = IntervalRecord::new(u64::MAX - 10, u64::MAX, "edge".into());
        rec.capture.packets = u64::MAX;
        rec.capture.bytes = u64::MAX;
        rec.capture.decode_errors.insert("not_ip".into(), u64::MAX);
        rec.capture.drops.worker_ring_full = u64::MAX;
        for &c in Counter::ALL {
            rec.tcp.counters.add(c, u64::MAX);
        }
        rec.tcp.active_flows = u64::MAX;
        rec.tcp.half_open = u64::MAX;
        rec.servers_omitted = u64::MAX;
        rec.merged = Some(u64::MAX);
        let mut row = ServerRecord::new(
            false,
            Endpoint::default(),
            rec.tcp.counters,
            u64::MAX,
            u64::MAX,
            [None; 4],
        );
        row.server = "10.0.0.1:80".into();
        rec.servers.push(row.clone());
        row.server = "other".into();
        rec.servers.push(row);
        let line = serde_json::to_string(&rec).unwrap();
        let mut other = rec.clone();
        other.source = "edge2".into();
        let line2 = serde_json::to_string(&other).unwrap();
        for window in [Window::All, Window::Own, Window::Every(1)] {
            let mut m = Merger::new(window, 1);
            for l in [&line, &line2, &line] {
                m.push_line(l);
            }
            let out = m.finish();
            assert!(!out.is_empty());
            let r = &out[0].record;
            assert_eq!(r.capture.packets, u64::MAX);
            assert_eq!(r.tcp.counters.get(Counter::syn), u64::MAX);
            assert_eq!(r.tcp.active_flows, u64::MAX);
            for w in &out {
                let _ = report::render(w, &report::Thresholds::default(), report::Style::default());
            }
            let _ = plot::charts(&out[0], &out, 4);
        }
    }
}
