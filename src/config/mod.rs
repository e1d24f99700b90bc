//! The configuration file (TOML, docs/config.md): the same settings as the options of `run`
//! and `analyze`, one section per group.
//!
//! Every key is optional; a key left out keeps the command line's default (given in each doc
//! comment with its flag), and a flag given on the command line beats the file (`merge.rs`).
//! Unknown keys and sections are errors, so a typo never passes silently. New groups (sinks,
//! servers of interest) come as new optional sections or arrays of tables, so existing files
//! stay valid.

pub mod checks;
mod error;
pub(crate) mod value;

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use tcpulse_core::units::NumberList;
use tcpulse_io::capture::xdp::XdpMode;
use tcpulse_io::capture::CaptureKind;
use tcpulse_io::sink::spec::SpecError;
use tcpulse_io::sink::SinkSpec;

pub use error::ConfigError;

/// A whole file. Serialized back (for `config show` and the start-up log) only the keys that
/// have a value are written.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, skip_serializing_if = "CaptureSection::is_empty")]
    pub capture: CaptureSection,
    #[serde(default)]
    pub pipeline: PipelineSection,
    #[serde(default)]
    pub flow_table: FlowTableSection,
    #[serde(default)]
    pub output: OutputSection,
    /// `[[sink]]` tables as read; turned into `sinks` (with errors located by key) by
    /// [`Config::parse`], and empty after it.
    #[serde(default, rename = "sink", skip_serializing)]
    pub(crate) sink_tables: Vec<toml::Table>,
    /// `[[sink]]`: more destinations for records (`--sink`, docs/sinks.md).
    #[serde(
        rename = "sink",
        skip_deserializing,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sinks: Vec<SinkSpec>,
}

/// `[capture]`: the live source of `tcpulse run` (`analyze` ignores this section).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSection {
    /// Interface (`--iface`). No default: `run` needs it here or on the command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    /// `"xdp"` or `"af-packet"` (`--capture`). Default `"xdp"`.
    #[serde(
        default,
        with = "value::capture_kind",
        skip_serializing_if = "Option::is_none"
    )]
    pub capture: Option<CaptureKind>,
    /// RX queues, `"0-3"` or `[0, 2]` (`--queues`). Default: every queue.
    #[serde(default, with = "value::list", skip_serializing_if = "Option::is_none")]
    pub queues: Option<NumberList>,
    /// CPUs for the capture threads, one per queue in order (`--cpus`). Default: not pinned.
    #[serde(default, with = "value::list", skip_serializing_if = "Option::is_none")]
    pub cpus: Option<NumberList>,
    /// `"native"` or `"skb"` (`--xdp-mode`). Default `"native"`.
    #[serde(
        default,
        with = "value::xdp_mode",
        skip_serializing_if = "Option::is_none"
    )]
    pub xdp_mode: Option<XdpMode>,
    /// With `capture = "af-packet"`: rings (and capture threads) sharing the traffic, 1 to 256
    /// (`--threads`). Default: one per RX queue of the interface.
    #[serde(
        default,
        deserialize_with = "value::threads",
        skip_serializing_if = "Option::is_none"
    )]
    pub threads: Option<u32>,
    /// Frames each AF_XDP queue's UMEM and rings hold, a power of two from 64 to 1048576
    /// (`--ring-frames`). Default 16384.
    #[serde(
        default,
        deserialize_with = "value::ring_frames",
        skip_serializing_if = "Option::is_none"
    )]
    pub ring_frames: Option<u32>,
    /// Every frame, not only TCP (`--all-frames`). Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_frames: Option<bool>,
    /// Run as this user after set-up (`--user`). Default: stay root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Promiscuous mode (`--promisc`). Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promisc: Option<bool>,
    /// Stop after this long (`--duration`). Default: until signalled.
    #[serde(
        default,
        with = "value::duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
    /// Count frames only (`--no-analysis`). Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_analysis: Option<bool>,
}

impl CaptureSection {
    fn is_empty(&self) -> bool {
        *self == CaptureSection::default()
    }
}

/// `[pipeline]`: intervals and workers, the same live and offline.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Interval length in capture time (`--interval`). Default `"1s"`.
    #[serde(
        default,
        with = "value::duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// Flow workers, 1 to 256 (`--workers`). Default 1.
    #[serde(
        default,
        deserialize_with = "value::workers",
        skip_serializing_if = "Option::is_none"
    )]
    pub workers: Option<u16>,
    /// Servers listed per interval (`--top-servers`). Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_servers: Option<usize>,
    /// Servers of interest, always listed (`--watch`). Default: none.
    #[serde(
        default,
        with = "value::patterns",
        skip_serializing_if = "Option::is_none"
    )]
    pub watch: Option<Vec<tcpulse_core::metrics::watch::ServerPattern>>,
    /// Key file for prefix-preserving address anonymisation (`--anonymize`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymize: Option<PathBuf>,
    /// Capture filter in pcap-filter syntax (`--filter`). Default: none.
    #[serde(
        default,
        with = "value::filter",
        skip_serializing_if = "Option::is_none"
    )]
    pub filter: Option<String>,
}

/// `[flow_table]`: size and timeouts, in capture time.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlowTableSection {
    /// Flows tracked at once over all workers, at least 1 (`--max-flows`). Default 1048576.
    #[serde(
        default,
        deserialize_with = "value::max_flows",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_flows: Option<usize>,
    /// An open flow idle this long ends (`--idle-timeout`). Default `"300s"`.
    #[serde(
        default,
        with = "value::duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_timeout: Option<Duration>,
    /// A handshake without progress ends (`--half-open-timeout`). Default `"60s"`.
    #[serde(
        default,
        with = "value::duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub half_open_timeout: Option<Duration>,
    /// Closed flows still take late packets this long (`--close-linger`). Default `"60s"`.
    #[serde(
        default,
        with = "value::duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub close_linger: Option<Duration>,
    /// One FIN unanswered this long is a stall (`--half-closed-stall`). Default `"60s"`.
    #[serde(
        default,
        with = "value::duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub half_closed_stall: Option<Duration>,
    /// Which tunnel ids are part of the flow key: `"none"`, `"vni"` (VXLAN and GENEVE) or
    /// `"all"` (also GRE keys, ERSPAN sessions, GTP-U TEIDs) (`--key-tunnel`). Default `"none"`.
    #[serde(
        default,
        with = "value::key_tunnel",
        skip_serializing_if = "Option::is_none"
    )]
    pub key_tunnel: Option<tcpulse_core::flow::TunnelKeying>,
    /// Where RTT samples come from: `"auto"`, `"timestamps"` or `"seq-ack"` (`--rtt-source`).
    /// Default `"auto"`.
    #[serde(
        default,
        with = "value::rtt_source",
        skip_serializing_if = "Option::is_none"
    )]
    pub rtt_source: Option<tcpulse_core::flow::latency::RttSource>,
    /// At most one timed segment per flow and direction in this long (`--rtt-rate-limit`).
    /// Default: no limit.
    #[serde(
        default,
        with = "value::duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub rtt_rate_limit: Option<Duration>,
}

/// `[output]`: where records go.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Interval records: a path or `"-"` for standard output (`--output`). Default `"-"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    /// Flow records: a path or `"-"` (`--flows`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flows: Option<String>,
}

impl Config {
    /// Parses and validates a file's text; the error names the key and its line.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(text, &e))?;
        for (i, table) in std::mem::take(&mut config.sink_tables).iter().enumerate() {
            let spec = sink_keys(table)
                .and_then(|keys| SinkSpec::from_keys(&keys))
                .map_err(|e| ConfigError::in_array(text, "sink", i, e.key.as_deref(), e.message))?;
            config.sinks.push(spec);
        }
        Ok(config)
    }

    /// Reads, parses and validates a file; the error starts with the file name.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        std::fs::read_to_string(path)
            .map_err(|e| ConfigError::unreadable(&e))
            .and_then(|text| Config::parse(&text))
            .map_err(|e| e.in_file(path))
    }
}

/// A `[[sink]]` table's keys with their values as text: strings, integers and booleans.
fn sink_keys(table: &toml::Table) -> Result<Vec<(String, String)>, SpecError> {
    let mut keys = Vec::with_capacity(table.len());
    for (key, value) in table {
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) if key != "kind" => n.to_string(),
            toml::Value::Boolean(b) if key != "kind" => b.to_string(),
            _ if key == "kind" => return Err(spec_error(key, "a string")),
            _ => return Err(spec_error(key, "a string, integer or boolean")),
        };
        keys.push((key.clone(), text));
    }
    Ok(keys)
}

fn spec_error(key: &str, message: &str) -> SpecError {
    SpecError {
        key: Some(key.to_string()),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key and line:column an error points at.
    fn fault(text: &str) -> (Option<String>, Option<(usize, usize)>, String) {
        let e = Config::parse(text).expect_err("must be refused");
        (e.key, e.position, e.message)
    }

    #[test]
    fn an_empty_file_sets_nothing() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
        assert_eq!(Config::parse("[pipeline]\n").unwrap(), Config::default());
    }

    #[test]
    fn values_read_like_their_flags() {
        let c = Config::parse(
            "[capture]\nqueues = \"0-2,5\"\ncpus = [1, 3]\ncapture = \"af-packet\"\n\
             xdp_mode = \"generic\"\n[pipeline]\ninterval = \"1.5s\"\n",
        )
        .unwrap();
        assert_eq!(c.capture.queues, Some(NumberList(vec![0, 1, 2, 5])));
        assert_eq!(c.capture.cpus, Some(NumberList(vec![1, 3])));
        assert_eq!(c.capture.capture, Some(CaptureKind::AfPacket));
        assert_eq!(c.capture.xdp_mode, Some(XdpMode::Skb));
        assert_eq!(c.pipeline.interval, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn written_settings_read_back_the_same() {
        let c = Config::parse(
            "[capture]\niface = \"eth0\"\nqueues = \"0-3\"\nduration = \"250ms\"\n\
             [pipeline]\nworkers = 3\n[output]\nflows = \"-\"\n",
        )
        .unwrap();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(Config::parse(&text).unwrap(), c, "{text}");
    }

    #[test]
    fn errors_name_the_key_and_where_it_is() {
        let cases: &[(&str, &str, (usize, usize), &str)] = &[
            (
                "[pipeline]\n\nworkers = 0\n",
                "pipeline.workers",
                (3, 11),
                "1 to 256",
            ),
            (
                "[pipeline]\nworkers = \"2\"\n",
                "pipeline.workers",
                (2, 11),
                "invalid type",
            ),
            (
                "[capture]\nring_frames = 1000\n",
                "capture.ring_frames",
                (2, 15),
                "power of two",
            ),
            (
                "[flow_table]\nmax_flows = 0\n",
                "flow_table.max_flows",
                (2, 13),
                "at least one",
            ),
            (
                "[flow_table]\nidle_timeout = \"soon\"\n",
                "flow_table.idle_timeout",
                (2, 16),
                "not a duration",
            ),
            (
                "[capture]\ncpus = \"1-\"\n",
                "capture.cpus",
                (2, 8),
                "range",
            ),
            (
                "[capture]\ncapture = \"pcap\"\n",
                "capture.capture",
                (2, 11),
                "af-packet",
            ),
            (
                "[capture]\nifaces = \"a\"\n",
                "capture.ifaces",
                (2, 1),
                "unknown key",
            ),
            (
                "[[sink]]\nkind = \"file\"\n",
                "sink[1]",
                (1, 1),
                "needs `path`",
            ),
            (
                "[[sink]]\nkind = \"stdout\"\n[[sink]]\nkind = \"file\"\npath = \"x\"\n\
                 max_bytez = 5\n",
                "sink[2].max_bytez",
                (6, 1),
                "unknown option `max_bytez` for a file sink",
            ),
            (
                "[[sink]]\nkind = \"http\"\nurl = \"http://h:1/\"\ntimeout = \"soon\"\n",
                "sink[1].timeout",
                (4, 11),
                "not a duration",
            ),
            (
                "[[sink]]\nkind = \"kafka\"\n",
                "sink[1].kind",
                (2, 8),
                "unknown sink kind",
            ),
            ("[output]\nflows = -\n", "output.flows", (2, 9), ""),
            (
                "[pipeline]\nworkers = 1\nworkers = 2\n",
                "pipeline.workers",
                (3, 1),
                "duplicate",
            ),
            ("output = \"-\"\n", "output", (1, 10), "expected a table"),
        ];
        for &(text, key, at, words) in cases {
            let (k, pos, message) = fault(text);
            assert_eq!(k.as_deref(), Some(key), "{text}: {message}");
            assert_eq!(pos, Some(at), "{text}: {message}");
            assert!(message.contains(words), "{text}: {message}");
        }
    }

    #[test]
    fn an_error_reads_as_file_line_column_key_message() {
        let e = Config::parse("[pipeline]\nworkers = 0\n")
            .unwrap_err()
            .in_file(Path::new("a.toml"));
        assert_eq!(
            e.to_string(),
            "a.toml:2:11: pipeline.workers: 0 workers: use 1 to 256"
        );
    }
}
