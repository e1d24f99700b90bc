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

use super::http::{post, status_error, Url};
use super::{time, Kind, Record, Sink};
use tcpulse_core::schema::counters::Counter;

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
/// monitor's own losses (`capture.drops`, without `reorder_overflow`, which is no loss).
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
pub fn rows(record: &Value) -> Option<(Row, Vec<Row>)> {
    let start_ns = record.get("start_ns")?.as_u64()?;
    let secs = start_ns / 1_000_000_000;
    let mut head = Map::new();
    head.insert("date".into(), time::date(secs).into());
    head.insert("start".into(), time::date_time(secs).into());
    head.insert("start_ns".into(), start_ns.into());
    head.insert("end_ns".into(), u64_of(record, "end_ns").into());
    head.insert(
        "source".into(),
        record["source"].as_str().unwrap_or("").into(),
    );

    let mut total = head.clone();
    let capture = &record["capture"];
    for name in &CAPTURE[..CAPTURE.len() - 1] {
        total.insert(format!("capture_{name}"), u64_of(capture, name).into());
    }
    let drops: u64 = capture["drops"].as_object().map_or(0, |d| {
        d.iter()
            .filter(|(k, _)| *k != "reorder_overflow")
            .filter_map(|(_, v)| v.as_u64())
            .sum()
    });
    total.insert("capture_drops".into(), drops.into());
    measures(
        &mut total,
        &record["tcp"],
        &record["histograms"]["handshake_total_us"],
    );
    total.insert(
        "servers_omitted".into(),
        u64_of(record, "servers_omitted").into(),
    );

    let servers = record["servers"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| {
                    let mut row = head.clone();
                    row.insert("server".into(), s["server"].as_str().unwrap_or("").into());
                    measures(&mut row, s, &s["handshake_total_us"]);
                    row
                })
                .collect()
        })
        .unwrap_or_default();
    Some((total, servers))
}

/// Counters, gauges and the histogram summary, the same in both tables.
fn measures(row: &mut Map<String, Value>, counters: &Value, hist: &Value) {
    for c in Counter::ALL {
        row.insert(c.name().into(), u64_of(counters, c.name()).into());
    }
    for &(name, ty) in GAUGES.iter() {
        row.insert(name.into(), typed(&counters[name], ty));
    }
    for &(name, ty) in HISTOGRAM {
        row.insert(format!("handshake_{name}"), typed(&hist[name], ty));
    }
}

fn u64_of(v: &Value, name: &str) -> u64 {
    v[name].as_u64().unwrap_or(0)
}

fn typed(v: &Value, ty: &str) -> Value {
    match ty {
        "Float64" => v.as_f64().unwrap_or(0.0).into(),
        "String" => v.as_str().unwrap_or("").into(),
        _ => v.as_u64().unwrap_or(0).into(),
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

    fn deliver(&mut self, records: &[Record]) -> io::Result<()> {
        if self.target.create_tables && !self.created {
            let t = &self.target;
            for statement in create_statements(&t.database, &t.interval_table, &t.server_table) {
                self.execute(&statement, b"")?;
            }
            self.created = true;
        }
        let (mut totals, mut servers) = (Vec::new(), Vec::new());
        for r in records.iter().filter(|r| r.kind == Kind::Interval) {
            let value: Value = serde_json::from_str(&r.json).map_err(io::Error::from)?;
            if let Some((total, per_server)) = rows(&value) {
                totals.push(total);
                servers.extend(per_server);
            }
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
        let record: Value = serde_json::from_str(
            r#"{"type":"interval","start_ns":1700000000000000000,"end_ns":1700000001000000000,
            "source":"eth0","capture":{"packets":5,"bytes":300,"non_tcp":1,"malformed":0,
            "drops":{"xdp_rx_dropped":2,"reorder_overflow":7}},
            "tcp":{"syn":3,"handshakes":2,"retransmit_ratio":0.5},
            "histograms":{"handshake_total_us":{"count":2,"p50":40,"hdr":"HIST"}},
            "servers":[{"server":"10.0.0.1:80","syn":3,"handshake_total_us":{"count":2}}],
            "servers_omitted":0}"#,
        )
        .unwrap();
        let (total, servers) = rows(&record).unwrap();
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
