//! The `clickhouse` sink: rows derived from interval records, inserted through ClickHouse's
//! HTTP interface as `INSERT INTO db.table FORMAT JSONEachRow`. One row per interval (the
//! totals) in one table, one row per listed server per interval in another. The tables are
//! in `configs/clickhouse.sql` (written by [`create_statements`]; a test keeps them equal) and
//! are created at start with `create_tables = true`. Only what ClickHouse 18.16 (Debian 12)
//! supports: MergeTree with PARTITION BY / ORDER BY, Date and DateTime, JSONEachRow.
//!
//! Flow records are not sent. An INSERT of one table that succeeded is not repeated when the
//! other fails and the batch is retried.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tcpulse_core::schema::counters::{Counter, Counters};
use tcpulse_core::schema::hist::HistSummary;
use tcpulse_core::schema::IntervalRecord;

use super::http::{post, status_error, Url};
use super::{time, Outgoing, Sink};

/// Where and how to insert.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub url: String,
    pub database: String,
    pub interval_table: String,
    pub server_table: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub create_tables: bool,
    pub timeout: Duration,
}

pub const DEFAULT_INTERVAL_TABLE: &str = "tcpulse_intervals";
pub const DEFAULT_SERVER_TABLE: &str = "tcpulse_servers";

/// Columns every row starts with: which interval, from which source.
const HEAD: &[(&str, &str)] = &[
    ("date", "Date"),
    ("start", "DateTime"),
    ("start_ns", "UInt64"),
    ("end_ns", "UInt64"),
    ("source", "String"),
];

/// `capture.*` counters of the interval table, as `capture_<name>`; `capture_drops` sums the
/// monitor's own losses of frames and flows (`capture.drops`, without `reorder_overflow`, which
/// is no loss, and `rtt_events_displaced`, which loses RTT samples, not frames).
const CAPTURE: &[&str] = &["packets", "bytes", "non_tcp", "malformed", "drops"];

/// After the counters, in both tables.
const GAUGES: &[(&str, &str)] = &[
    ("retransmit_ratio", "Float64"),
    ("backlog_pressure", "Float64"),
    ("active_flows", "UInt64"),
    ("half_open", "UInt64"),
];

/// The handshake-time histogram, as `handshake_<name>` (µs); `hdr` merges exactly.
const HISTOGRAM: &[(&str, &str)] = &[
    ("count", "UInt64"),
    ("min", "UInt64"),
    ("mean", "Float64"),
    ("p50", "UInt64"),
    ("p90", "UInt64"),
    ("p99", "UInt64"),
    ("p999", "UInt64"),
    ("max", "UInt64"),
    ("hdr", "String"),
];

/// Every column of a table: `(name, type)`.
fn columns(servers: bool) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> =
        HEAD.iter().map(|&(n, t)| (n.to_string(), t)).collect();
    if servers {
        out.push(("server".into(), "String"));
    } else {
        out.extend(CAPTURE.iter().map(|n| (format!("capture_{n}"), "UInt64")));
    }
    out.extend(
        Counter::ALL
            .iter()
            .map(|c| (c.name().to_string(), "UInt64")),
    );
    out.extend(GAUGES.iter().map(|&(n, t)| (n.to_string(), t)));
    out.extend(
        HISTOGRAM
            .iter()
            .map(|&(n, t)| (format!("handshake_{n}"), t)),
    );
    if !servers {
        out.push(("servers_omitted".into(), "UInt64"));
    }
    out
}

/// `CREATE TABLE IF NOT EXISTS` for the interval table and the server table.
pub fn create_statements(database: &str, interval_table: &str, server_table: &str) -> [String; 2] {
    let table = |name: &str, servers: bool, order: &str| {
        let cols: Vec<String> = columns(servers)
            .iter()
            .map(|(n, t)| format!("    {n} {t}"))
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {database}.{name}\n(\n{}\n)\nENGINE = MergeTree()\n\
             PARTITION BY toYYYYMM(date)\nORDER BY ({order})",
            cols.join(",\n")
        )
    };
    [
        table(interval_table, false, "source, start_ns"),
        table(server_table, true, "source, server, start_ns"),
    ]
}

/// One row, column name to value.
pub type Row = Map<String, Value>;

/// The rows of one interval record: its totals row and one row per listed server.
pub fn rows(record: &IntervalRecord) -> (Row, Vec<Row>) {
    let start_ns = record.start_ns;
    let secs = start_ns / 1_000_000_000;
    let mut head = Map::new();
    head.insert("date".into(), time::date(secs).into());
    head.insert("start".into(), time::date_time(secs).into());
    head.insert("start_ns".into(), start_ns.into());
    head.insert("end_ns".into(), record.end_ns.into());
    head.insert("source".into(), record.source.as_str().into());

    let mut total = head.clone();
    let c = &record.capture;
    for (name, n) in [
        ("packets", c.packets),
        ("bytes", c.bytes),
        ("non_tcp", c.non_tcp),
        ("malformed", c.malformed),
    ] {
        total.insert(format!("capture_{name}"), n.into());
    }
    let d = &c.drops;
    // The monitor's own losses: everything but `reorder_overflow`, which loses nothing.
    let drops = [
        d.xdp_rx_dropped,
        d.xdp_rx_ring_full,
        d.xdp_fill_ring_empty,
        d.xdp_invalid_descs,
        d.af_packet_drops,
        d.worker_ring_full,
        d.flow_table_full,
        d.flow_probe_limit,
    ]
    .into_iter()
    .fold(0u64, u64::saturating_add);
    total.insert("capture_drops".into(), drops.into());
    let t = &record.tcp;
    let gauges = [
        t.retransmit_ratio.into(),
        t.backlog_pressure.into(),
        t.active_flows.into(),
        t.half_open.into(),
    ];
    measures(
        &mut total,
        &t.counters,
        gauges,
        &record.histograms.handshake_total_us,
    );
    total.insert("servers_omitted".into(), record.servers_omitted.into());

    let servers = record
        .servers
        .iter()
        .map(|s| {
            let mut row = head.clone();
            row.insert("server".into(), s.server.as_str().into());
            let gauges = [
                s.retransmit_ratio.into(),
                s.backlog_pressure.into(),
                s.active_flows.into(),
                s.half_open.into(),
            ];
            measures(&mut row, &s.counters, gauges, &s.handshake_total_us);
            row
        })
        .collect();
    (total, servers)
}

/// Counters, gauges (in [`GAUGES`] order) and the histogram summary, the same in both tables.
fn measures(row: &mut Row, counters: &Counters, gauges: [Value; 4], hist: &HistSummary) {
    for &c in Counter::ALL {
        row.insert(c.name().into(), counters.get(c).into());
    }
    for (&(name, _), value) in GAUGES.iter().zip(gauges) {
        row.insert(name.into(), value);
    }
    let h = hist;
    let summary: [(&str, Value); 9] = [
        ("count", h.count.into()),
        ("min", h.min.into()),
        ("mean", h.mean.into()),
        ("p50", h.p50.into()),
        ("p90", h.p90.into()),
        ("p99", h.p99.into()),
        ("p999", h.p999.into()),
        ("max", h.max.into()),
        ("hdr", h.hdr.as_str().into()),
    ];
    for (name, value) in summary {
        row.insert(format!("handshake_{name}"), value);
    }
}

/// Percent-encoding for a query-string value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub struct ClickHouseSink {
    url: Url,
    target: Target,
    created: bool,
    /// The batch (first and last record) whose interval rows are already in: on its retry only
    /// the server rows are inserted again.
    half_done: Option<(Arc<str>, Arc<str>)>,
    body: Vec<u8>,
}

impl ClickHouseSink {
    pub fn new(target: Target) -> Result<ClickHouseSink, String> {
        Ok(ClickHouseSink {
            url: Url::parse(&target.url)?,
            target,
            created: false,
            half_done: None,
            body: Vec::new(),
        })
    }

    /// Runs one statement; `query` goes in the URL, `body` is the data.
    fn execute(&self, query: &str, body: &[u8]) -> io::Result<()> {
        let mut path = format!(
            "/?database={}&input_format_skip_unknown_fields=1&query={}",
            encode(&self.target.database),
            encode(query)
        );
        if let Some(user) = &self.target.user {
            path.push_str(&format!("&user={}", encode(user)));
        }
        if let Some(password) = &self.target.password {
            path.push_str(&format!("&password={}", encode(password)));
        }
        let r = post(
            &self.url,
            &path,
            &[("Content-Type", "text/plain; charset=utf-8")],
            body,
            self.target.timeout,
        )?;
        if r.status == 200 {
            Ok(())
        } else {
            Err(status_error(&r))
        }
    }

    fn insert(&mut self, table: &str, rows: &[Map<String, Value>]) -> io::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut body = std::mem::take(&mut self.body);
        body.clear();
        for row in rows {
            serde_json::to_writer(&mut body, row).map_err(io::Error::from)?;
            body.push(b'\n');
        }
        let query = format!(
            "INSERT INTO {}.{table} FORMAT JSONEachRow",
            self.target.database
        );
        let result = self.execute(&query, &body);
        self.body = body;
        result
    }
}

impl Sink for ClickHouseSink {
    fn name(&self) -> String {
        format!(
            "clickhouse://{}/{}",
            self.url.authority(),
            self.target.database
        )
    }

    fn deliver(&mut self, records: &[Outgoing]) -> io::Result<()> {
        if self.target.create_tables && !self.created {
            let t = &self.target;
            for statement in create_statements(&t.database, &t.interval_table, &t.server_table) {
                self.execute(&statement, b"")?;
            }
            self.created = true;
        }
        let (mut totals, mut servers) = (Vec::new(), Vec::new());
        for record in records.iter().filter_map(Outgoing::interval) {
            let (total, per_server) = rows(record);
            totals.push(total);
            servers.extend(per_server);
        }
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(());
        };
        let key = (first.json.clone(), last.json.clone());
        let done = self
            .half_done
            .as_ref()
            .is_some_and(|(a, b)| Arc::ptr_eq(a, &key.0) && Arc::ptr_eq(b, &key.1));
        if !done {
            let table = self.target.interval_table.clone();
            self.insert(&table, &totals)?;
            self.half_done = Some(key);
        }
        let table = self.target.server_table.clone();
        self.insert(&table, &servers)?;
        self.half_done = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQL_HEADER: &str = "\
-- The tables of tcpulse's ClickHouse sink (docs/sinks.md), for the `default` database and the
-- default table names; the sink creates the same with `create_tables = true`.
-- Apply with: clickhouse-client --multiquery < configs/clickhouse.sql
-- One row per interval (totals) and one per listed server per interval; counters are per
-- interval, so sum() over rows gives totals; handshake_hdr merges histograms exactly.";

    #[test]
    fn the_shipped_schema_is_the_one_the_sink_creates() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/clickhouse.sql");
        let [a, b] = create_statements("default", DEFAULT_INTERVAL_TABLE, DEFAULT_SERVER_TABLE);
        // TCPULSE_REGENERATE=1 cargo test --lib clickhouse writes the file anew.
        if std::env::var_os("TCPULSE_REGENERATE").is_some() {
            let text = format!("{SQL_HEADER}\n{a};\n\n{b};\n");
            std::fs::write(&path, text).unwrap();
        }
        let shipped = std::fs::read_to_string(&path).unwrap();
        let code: Vec<&str> = shipped.lines().filter(|l| !l.starts_with("--")).collect();
        let statements: Vec<String> = code
            .join("\n")
            .split(';')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(statements, [a, b], "regenerate configs/clickhouse.sql");
    }

    #[test]
    fn rows_carry_every_column_of_their_table() {
        let mut record = IntervalRecord::new(
            1_700_000_000_000_000_000,
            1_700_000_001_000_000_000,
            "eth0".into(),
        );
        record.capture.packets = 5;
        record.capture.bytes = 300;
        record.capture.non_tcp = 1;
        record.capture.drops.xdp_rx_dropped = 2;
        record.capture.drops.reorder_overflow = 7;
        record.tcp.counters.add(Counter::syn, 3);
        record.tcp.counters.add(Counter::handshakes, 2);
        record.tcp.retransmit_ratio = 0.5;
        record.histograms.handshake_total_us.count = 2;
        record.histograms.handshake_total_us.p50 = 40;
        record.histograms.handshake_total_us.hdr = "HIST".into();
        let mut counters = Counters::default();
        counters.add(Counter::syn, 3);
        let mut server = tcpulse_core::schema::interval::ServerRecord::new(
            false,
            tcpulse_core::decode::Endpoint::default(),
            counters,
            0,
            0,
            [None; 4],
        );
        server.server = "10.0.0.1:80".into();
        server.handshake_total_us.count = 2;
        record.servers.push(server);
        let (total, servers) = rows(&record);
        let names = |servers: bool| -> Vec<String> {
            columns(servers).into_iter().map(|(n, _)| n).collect()
        };
        let mut have: Vec<String> = total.keys().cloned().collect();
        let mut want = names(false);
        have.sort();
        want.sort();
        assert_eq!(have, want);
        let mut have: Vec<String> = servers[0].keys().cloned().collect();
        let mut want = names(true);
        have.sort();
        want.sort();
        assert_eq!(have, want);
        assert_eq!(total["capture_drops"], 2);
        assert_eq!(total["start"], "2023-11-14 22:13:20");
        assert_eq!(total["handshake_hdr"], "HIST");
        assert_eq!(servers[0]["syn"], 3);
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("INSERT INTO a.b"), "INSERT%20INTO%20a.b");
        assert_eq!(encode("p&w=1"), "p%26w%3D1");
    }
}
