//! Which sinks a run has: `--sink SPEC` on the command line and `[[sink]]` tables in the
//! configuration file both become a [`SinkSpec`] (a kind, a target and checked options), and
//! [`SinkSpec::build`] makes the sink. Both forms go through the same option checks.
//!
//! ```text
//! --sink stdout
//! --sink file:logs/tcpulse.jsonl,max_bytes=100M,keep=5
//! --sink http://127.0.0.1:9000/ingest,timeout=2s
//! --sink clickhouse://127.0.0.1:8123/default,create_tables=true
//! --sink prometheus:127.0.0.1:9187
//! ```

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::clickhouse::{self, ClickHouseSink, Target};
use super::file::{FileSink, Rotation};
use super::http::{HttpSink, Url};
use super::lane::Delivery;
use super::prometheus::PrometheusSink;
use super::{Sink, StdoutSink};
use tcpulse_core::units::parse_duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    File,
    Stdout,
    Http,
    ClickHouse,
    Prometheus,
}

impl SinkKind {
    pub const ALL: [SinkKind; 5] = [
        SinkKind::File,
        SinkKind::Stdout,
        SinkKind::Http,
        SinkKind::ClickHouse,
        SinkKind::Prometheus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SinkKind::File => "file",
            SinkKind::Stdout => "stdout",
            SinkKind::Http => "http",
            SinkKind::ClickHouse => "clickhouse",
            SinkKind::Prometheus => "prometheus",
        }
    }

    fn from_name(name: &str) -> Result<SinkKind, String> {
        SinkKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown sink kind `{name}` (use file, stdout, http, clickhouse or prometheus)"
                )
            })
    }

    /// The key of the target in a `[[sink]]` table; `None`: the kind has no target.
    fn target_key(self) -> Option<&'static str> {
        match self {
            SinkKind::File => Some("path"),
            SinkKind::Stdout => None,
            SinkKind::Http | SinkKind::ClickHouse => Some("url"),
            SinkKind::Prometheus => Some("listen"),
        }
    }

    /// Options of this kind, beyond [`COMMON`].
    fn options(self) -> &'static [&'static str] {
        match self {
            SinkKind::File => &["max_bytes", "max_age", "keep"],
            SinkKind::Stdout => &[],
            SinkKind::Prometheus => &["max_servers"],
            SinkKind::Http => &["timeout"],
            SinkKind::ClickHouse => &[
                "database",
                "create_tables",
                "interval_table",
                "server_table",
                "user",
                "password",
                "timeout",
            ],
        }
    }
}

/// Options every kind takes.
const COMMON: &[&str] = &["records", "queue", "batch", "retries", "backoff"];

/// Which records a sink gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Records {
    Intervals,
    Flows,
    All,
}

/// Everything a sink needs, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkSettings {
    pub records: Records,
    pub delivery: Delivery,
    pub rotation: Rotation,
    pub timeout: Duration,
    pub clickhouse: Option<Target>,
    /// Prometheus: servers with series of their own (later ones are folded into `other`).
    pub max_servers: usize,
}

/// One sink as configured: kind, target (path, URL, listen address; empty for stdout) and
/// options as given, each already checked.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkSpec {
    pub kind: SinkKind,
    pub target: String,
    pub options: Vec<(String, String)>,
}

/// Where a Prometheus endpoint listens: `ADDR:PORT`, or a bare `PORT` / `:PORT` on 127.0.0.1
/// (endpoints are local unless an address is given).
fn listen_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    let port_only = text.strip_prefix(':').unwrap_or(text);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse()
        .map_err(|_| format!("`{text}`: a listen address such as 127.0.0.1:9187 or a port"))
}

/// An error about one key of a sink (`None`: the sink as a whole).
#[derive(Debug, PartialEq, Eq)]
pub struct SpecError {
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{k}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn err(key: &str, message: impl Into<String>) -> SpecError {
    SpecError {
        key: Some(key.to_string()),
        message: message.into(),
    }
}

impl SinkSpec {
    /// Reads `--sink SPEC`: `stdout`, `file:PATH`, `http://...`, `clickhouse://HOST:PORT/DB`
    /// or `prometheus:ADDR`, then `,key=value` options. Neither targets nor values may
    /// contain commas.
    pub fn parse(text: &str) -> Result<SinkSpec, String> {
        let mut parts = text.split(',');
        let head = parts.next().unwrap_or("").trim();
        let (kind, target, mut options) = if head == "stdout" || head == "-" {
            (SinkKind::Stdout, String::new(), Vec::new())
        } else if let Some(path) = head.strip_prefix("file:") {
            (SinkKind::File, path.to_string(), Vec::new())
        } else if head.starts_with("http://") || head.starts_with("https://") {
            (SinkKind::Http, head.to_string(), Vec::new())
        } else if let Some(rest) = head.strip_prefix("clickhouse://") {
            let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
            let mut options = Vec::new();
            if !database.is_empty() {
                options.push(("database".to_string(), database.to_string()));
            }
            (SinkKind::ClickHouse, format!("http://{authority}"), options)
        } else if let Some(addr) = head.strip_prefix("prometheus:") {
            (SinkKind::Prometheus, addr.to_string(), Vec::new())
        } else {
            return Err(format!(
                "`{head}`: a sink is stdout, file:PATH, http://HOST:PORT/PATH, \
                 clickhouse://HOST:PORT/DATABASE or prometheus:ADDR, then ,key=value options"
            ));
        };
        for part in parts.map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: options are key=value"))?;
            options.push((key.trim().to_string(), value.trim().to_string()));
        }
        let spec = SinkSpec {
            kind,
            target,
            options,
        };
        spec.settings().map_err(|e| format!("{head}: {e}"))?;
        Ok(spec)
    }

    /// Reads a `[[sink]]` table given as its keys with their values as text: `kind`, its
    /// target key, options (the configuration file turns strings, integers and booleans into
    /// text and refuses anything else).
    pub fn from_keys(keys: &[(String, String)]) -> Result<SinkSpec, SpecError> {
        let kind = match keys.iter().find(|(k, _)| k == "kind") {
            Some((_, k)) => SinkKind::from_name(k).map_err(|m| err("kind", m))?,
            None => {
                return Err(SpecError {
                    key: None,
                    message: "missing key `kind` (file, stdout, http, clickhouse or prometheus)"
                        .into(),
                })
            }
        };
        let target_key = kind.target_key();
        let mut target = String::new();
        let mut options = Vec::new();
        for (key, text) in keys.iter().filter(|(k, _)| k != "kind") {
            if Some(key.as_str()) == target_key {
                target = text.clone();
            } else {
                options.push((key.clone(), text.clone()));
            }
        }
        if let (Some(key), true) = (target_key, target.is_empty()) {
            return Err(SpecError {
                key: None,
                message: format!("a {} sink needs `{key}`", kind.name()),
            });
        }
        let spec = SinkSpec {
            kind,
            target,
            options,
        };
        spec.settings()?;
        Ok(spec)
    }

    /// The options, checked and with their defaults.
    pub fn settings(&self) -> Result<SinkSettings, SpecError> {
        let mut s = SinkSettings {
            records: Records::Intervals,
            delivery: Delivery::default(),
            rotation: Rotation {
                keep: 5,
                ..Rotation::default()
            },
            timeout: Duration::from_secs(5),
            clickhouse: None,
            max_servers: 100,
        };
        let mut ch = Target {
            url: self.target.clone(),
            database: "default".into(),
            interval_table: clickhouse::DEFAULT_INTERVAL_TABLE.into(),
            server_table: clickhouse::DEFAULT_SERVER_TABLE.into(),
            user: None,
            password: None,
            create_tables: false,
            timeout: s.timeout,
        };
        match self.kind {
            SinkKind::Http | SinkKind::ClickHouse => {
                Url::parse(&self.target).map_err(|m| err("url", m))?;
            }
            SinkKind::File if self.target.is_empty() => return Err(err("path", "empty path")),
            SinkKind::Prometheus => {
                listen_addr(&self.target).map_err(|m| err("listen", m))?;
            }
            _ => {}
        }
        for (key, value) in &self.options {
            let k = key.as_str();
            if !COMMON.contains(&k) && !self.kind.options().contains(&k) {
                let mut known: Vec<&str> = COMMON.to_vec();
                known.extend(self.kind.options());
                return Err(err(
                    k,
                    format!(
                        "unknown option `{k}` for a {} sink (known: {})",
                        self.kind.name(),
                        known.join(", ")
                    ),
                ));
            }
            let v = value.as_str();
            let at = |m: String| err(k, m);
            match k {
                "records" => {
                    s.records = match v {
                        "intervals" => Records::Intervals,
                        "flows" => Records::Flows,
                        "all" => Records::All,
                        _ => return Err(at(format!("`{v}`: intervals, flows or all"))),
                    }
                }
                "queue" => s.delivery.queue = number(v, 1, 1 << 20).map_err(at)? as usize,
                "batch" => s.delivery.batch = number(v, 1, 1 << 16).map_err(at)? as usize,
                "retries" => s.delivery.retries = number(v, 0, 100).map_err(at)? as u32,
                "backoff" => s.delivery.backoff = parse_duration(v).map_err(at)?,
                "max_bytes" => s.rotation.max_bytes = Some(parse_size(v).map_err(at)?),
                "max_age" => s.rotation.max_age = Some(parse_duration(v).map_err(at)?),
                "keep" => s.rotation.keep = number(v, 0, 100_000).map_err(at)? as usize,
                "max_servers" => s.max_servers = number(v, 1, 100_000).map_err(at)? as usize,
                "timeout" => s.timeout = parse_duration(v).map_err(at)?,
                "database" => ch.database = identifier(v).map_err(at)?,
                "interval_table" => ch.interval_table = identifier(v).map_err(at)?,
                "server_table" => ch.server_table = identifier(v).map_err(at)?,
                "create_tables" => ch.create_tables = boolean(v).map_err(at)?,
                "user" => ch.user = Some(v.to_string()),
                "password" => ch.password = Some(v.to_string()),
                _ => {}
            }
        }
        if self.kind == SinkKind::Prometheus && s.records != Records::Intervals {
            return Err(err(
                "records",
                "a prometheus sink takes interval records only",
            ));
        }
        if self.kind == SinkKind::ClickHouse {
            if s.records != Records::Intervals {
                return Err(err(
                    "records",
                    "a clickhouse sink takes interval records only",
                ));
            }
            ch.timeout = s.timeout;
            s.clickhouse = Some(ch);
        }
        Ok(s)
    }

    /// Makes the sink, opening files now so a bad path fails before the run starts.
    pub fn build(&self) -> Result<(Box<dyn Sink>, SinkSettings), String> {
        let settings = self.settings().map_err(|e| e.to_string())?;
        let sink: Box<dyn Sink> = match self.kind {
            SinkKind::File => Box::new(
                FileSink::open(Path::new(&self.target), false, settings.rotation.clone())
                    .map_err(|e| e.to_string())?,
            ),
            SinkKind::Stdout => Box::new(StdoutSink::default()),
            SinkKind::Http => Box::new(HttpSink::new(&self.target, settings.timeout)?),
            SinkKind::ClickHouse => {
                let target = settings.clickhouse.clone().ok_or("no ClickHouse target")?;
                Box::new(ClickHouseSink::new(target)?)
            }
            SinkKind::Prometheus => Box::new(
                PrometheusSink::start(listen_addr(&self.target)?, settings.max_servers)
                    .map_err(|e| e.to_string())?,
            ),
        };
        Ok((sink, settings))
    }
}

impl Serialize for SinkSpec {
    /// As a `[[sink]]` table: `kind`, the target, the options (numbers and booleans as such;
    /// a password is not shown).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("kind", self.kind.name())?;
        if let Some(key) = self.kind.target_key() {
            map.serialize_entry(key, &self.target)?;
        }
        for (key, value) in &self.options {
            if key == "password" {
                map.serialize_entry(key, "(hidden)")?;
            } else if let Ok(n) = value.parse::<i64>() {
                map.serialize_entry(key, &n)?;
            } else if let Ok(b) = value.parse::<bool>() {
                map.serialize_entry(key, &b)?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

fn number(text: &str, min: u64, max: u64) -> Result<u64, String> {
    text.parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("`{text}`: a whole number from {min} to {max}"))
}

fn boolean(text: &str) -> Result<bool, String> {
    text.parse().map_err(|_| format!("`{text}`: true or false"))
}

/// A database or table name: letters, digits, `_` (it goes into SQL unquoted).
fn identifier(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!("`{text}`: letters, digits and _ only"))
    }
}

/// `1048576`, `512k`, `100M`, `1G` (powers of 1024); at least 1 KiB.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "k" | "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => return Err(format!("`{text}`: a size such as 1048576, 512k, 100M, 1G")),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&n| n >= 1024)
        .ok_or_else(|| format!("`{text}`: a size of at least 1k (e.g. 100M)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_specs() {
        let s = SinkSpec::parse("file:logs/x.jsonl,max_bytes=100M,keep=3").unwrap();
        assert_eq!(
            (s.kind, s.target.as_str()),
            (SinkKind::File, "logs/x.jsonl")
        );
        let set = s.settings().unwrap();
        assert_eq!(set.rotation.max_bytes, Some(100 << 20));
        assert_eq!(set.rotation.keep, 3);

        let s = SinkSpec::parse("clickhouse://127.0.0.1:8123/metrics,create_tables=true").unwrap();
        let ch = s.settings().unwrap().clickhouse.unwrap();
        assert_eq!(ch.url, "http://127.0.0.1:8123");
        assert_eq!(ch.database, "metrics");
        assert!(ch.create_tables);

        let s = SinkSpec::parse("http://127.0.0.1:9000/ingest,records=all").unwrap();
        assert_eq!(s.settings().unwrap().records, Records::All);
        assert_eq!(SinkSpec::parse("stdout").unwrap().kind, SinkKind::Stdout);
        assert_eq!(
            SinkSpec::parse("prometheus:127.0.0.1:9187").unwrap().kind,
            SinkKind::Prometheus
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases = [
            ("kafka://x", "a sink is"),
            (
                "file:x,max_bytez=1M",
                "unknown option `max_bytez` for a file sink",
            ),
            ("file:x,max_bytes=lots", "a size"),
            (
                "http://x:1/,keep=2",
                "unknown option `keep` for a http sink",
            ),
            ("https://x/", "https is not supported"),
            ("clickhouse://h:1/my-db", "letters, digits"),
            ("clickhouse://h:1/db,records=flows", "interval records only"),
            ("stdout,retries=1000", "0 to 100"),
            ("file:x,keep", "key=value"),
        ];
        for (text, words) in cases {
            let e = SinkSpec::parse(text).unwrap_err();
            assert!(e.contains(words), "{text}: {e}");
        }
    }

    #[test]
    fn prometheus_listens_on_loopback_unless_told() {
        assert_eq!(listen_addr("9187"), Ok("127.0.0.1:9187".parse().unwrap()));
        assert_eq!(listen_addr(":9187"), Ok("127.0.0.1:9187".parse().unwrap()));
        assert_eq!(
            listen_addr("0.0.0.0:9187"),
            Ok("0.0.0.0:9187".parse().unwrap())
        );
        assert!(listen_addr("[::1]:9187").is_ok());
        assert!(listen_addr("somewhere").is_err());
        let (sink, _) = SinkSpec::parse("prometheus:127.0.0.1:0,max_servers=5")
            .unwrap()
            .build()
            .unwrap();
        assert!(sink.name().starts_with("prometheus:127.0.0.1:"));
        let e = SinkSpec::parse("prometheus:9187,records=flows").unwrap_err();
        assert!(e.contains("interval records only"), "{e}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("10").is_err());
        assert!(parse_size("1T").is_err());
    }
}
