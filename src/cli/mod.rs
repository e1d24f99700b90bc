//! Command line: `tcpulse analyze FILE...` (offline), `tcpulse run` (live), `tcpulse config`.
//! Doc comments are the help text.

pub mod analyze;
pub mod config;
mod config_merge;
pub mod gen;
pub mod run;
pub mod view;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tcpulse_core::flow::anonymize::read_key;
use tcpulse_core::flow::FlowConfig;
use tcpulse_core::metrics::interval::Listing;
use tcpulse_core::units::{parse_duration, parse_list, NumberList};
use tcpulse_io::capture::CaptureKind;
use tcpulse_io::pipeline::{OutputError, OutputSettings, Settings};

use crate::config::checks::{
    check_threads, parse_capture_kind, parse_max_flows, parse_ring_frames, parse_xdp_mode,
    MAX_WORKERS,
};

/// Exit codes (documented in docs/cli.md).
pub mod exit {
    pub const OK: i32 = 0;
    /// Command-line usage error (clap's own code), or a configuration file that cannot be read
    /// or is invalid.
    pub const USAGE: i32 = 2;
    /// An input could not be opened or is not a capture; other inputs were still analysed.
    pub const INPUT_UNREADABLE: i32 = 3;
    /// An input was truncated, corrupt or of an unsupported link type part-way; everything
    /// before the fault was analysed and reported.
    pub const INPUT_DAMAGED: i32 = 4;
    /// Output could not be written (closed pipe, full disk, no permission).
    pub const OUTPUT_FAILED: i32 = 5;
    /// Live capture could not start: interface missing, missing privilege, XDP refused, queue
    /// out of range. Nothing was left attached.
    pub const CAPTURE_SETUP: i32 = 6;
    /// Live capture broke while running (interface removed); what was captured was reported.
    pub const CAPTURE_LOST: i32 = 7;
}

#[derive(Parser, Debug)]
#[command(name = "tcpulse", version, about = "Passive TCP health monitor")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Analyse pcap/pcapng files as if they were live traffic: interval records on the output,
    /// and one record per connection with --flows.
    Analyze(AnalyzeArgs),
    /// Write a synthetic capture of TCP conversations with every feature tcpulse measures
    /// (handshake legs, retransmissions of each kind, zero windows, teardowns, IPv6, VLAN),
    /// and the ground truth per connection as JSON lines.
    Gen(GenArgs),
    /// Capture live on an interface (AF_XDP, one socket per RX queue; or AF_PACKET rings that
    /// leave the host its frames, with --capture af-packet) and write interval records (and
    /// flow records with --flows) until stopped.
    Run(RunArgs),
    /// Check configuration files, or show the configuration one resolves to (docs/config.md).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Merge interval records of many appliances and times into one record per window, exactly
    /// (histograms are added from their `hdr` form); the output merges again (docs/view.md).
    Merge(view::MergeArgs),
    /// A table per server and a diagnosis (SYN backlog, accept queue, closed port, slow
    /// receiver, CLOSE_WAIT, pooling, path loss) from interval records, a file or live stdin.
    Report(view::ReportArgs),
    /// SVG charts from interval records: handshake time distributions per server, retransmit
    /// ratio, SYN and handshake rates over time.
    Plot(view::PlotArgs),
}

#[derive(Subcommand, Debug, Clone)]
pub enum ConfigCommand {
    /// Parse and validate each file: `FILE: ok`, or the file, line, column and key of the
    /// first error (exit code 2).
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print, as TOML, every setting `run --config FILE` would use, defaults included (only the
    /// defaults without a file).
    Show { file: Option<PathBuf> },
}

#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(true).args(["out", "send"])))]
#[command(group(clap::ArgGroup::new("pace").args(["pps", "topspeed", "speed"])))]
pub struct GenArgs {
    /// The capture to write (nanosecond pcap, Ethernet).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Where to write the ground truth (one JSON line per connection, then one per flooded
    /// server).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Scenario file (TOML, docs/gen.md): every knob of the generator. Without it, every
    /// feature in realistic proportions. --connections, --seed and --spread override it.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Connections to generate [default: 1000, or the scenario file's].
    #[arg(long)]
    pub connections: Option<u32>,
    /// Seed: the same seed gives the same capture [default: 1, or the scenario file's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seconds over which connections start [default: 5, or the scenario file's].
    #[arg(long)]
    pub spread: Option<u64>,

    /// Send the frames on this interface (AF_PACKET TX ring; needs CAP_NET_RAW), paced to the
    /// scenario's times unless --pps, --topspeed or --speed say otherwise.
    #[arg(long)]
    pub send: Option<String>,
    /// How to send: `xdp` (AF_XDP in copy mode on chosen TX queues, see --tx-queues; the
    /// fastest), `packet` (AF_PACKET TX ring, any interface, the kernel picks the queue), or
    /// `auto`: xdp, else packet.
    #[arg(long, default_value = "auto", value_parser = ["auto", "xdp", "packet"], requires = "send")]
    pub tx: String,
    /// TX queues AF_XDP sends on, e.g. `0-1` (a veth peer receives on the RX queue of the same
    /// number); frames are spread over them by --tx-spread.
    #[arg(long, default_value = "0", value_parser = parse_list, requires = "send")]
    pub tx_queues: NumberList,
    /// With several TX queues: `flow` keeps each connection on one queue (symmetric RSS),
    /// `direction` puts each connection's two directions on different queues (asymmetric RSS).
    #[arg(long, default_value = "flow", value_parser = ["flow", "direction"], requires = "send")]
    pub tx_spread: String,
    /// Also write what was sent to this pcap, each frame stamped with the time just before its
    /// send call: the reference for comparing a live monitor's timings (taps on the sending
    /// interface do not see AF_XDP or qdisc-bypassing sends).
    #[arg(long, requires = "send")]
    pub sent: Option<PathBuf>,
    /// Send at this many frames per second.
    #[arg(long, requires = "send")]
    pub pps: Option<u64>,
    /// Send as fast as the interface takes frames.
    #[arg(long, requires = "send")]
    pub topspeed: bool,
    /// Send at the scenario's times sped up this many times (2 = twice as fast).
    #[arg(long, requires = "send")]
    pub speed: Option<f64>,
    /// Send the frames this many times (later loops reuse the same connections).
    #[arg(long, default_value_t = 1, requires = "send")]
    pub loops: u32,
    /// Frames due within this window of a batch's first frame go out with it (one system call).
    #[arg(long, default_value = "50us", value_parser = parse_duration, requires = "send")]
    pub burst: Duration,
}

#[derive(Args, Debug, Clone)]
pub struct AnalyzeArgs {
    /// Capture files (pcap or pcapng, plain, gzip or zstd, all detected from content; `-` is
    /// standard input, read as it comes), analysed in the order given as one continuous capture.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,

    /// Configuration file (TOML, docs/config.md); options given here override it.
    #[arg(long)]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub pipeline: PipelineArgs,

    /// Show a progress line on standard error (default: when it is a terminal).
    #[arg(long)]
    pub progress: Option<bool>,
}

/// Capture on a live interface: AF_XDP, one socket per RX queue, or AF_PACKET rings.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Interface to capture on (in the current network namespace). Required unless the
    /// --config file sets `capture.iface`.
    // Empty stands for "not given": the file may still supply it (checked in `config::resolve`).
    #[arg(
        long,
        short,
        required_unless_present = "config",
        default_value = "",
        hide_default_value = true
    )]
    pub iface: String,

    /// Configuration file (TOML, docs/config.md); options given here override it.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// RX queues to capture, e.g. `0-3` or `0,2` (default: every queue of the interface).
    #[arg(long, value_parser = parse_list)]
    pub queues: Option<NumberList>,

    /// CPUs to pin the capture threads to, one per queue in order, e.g. `0,1`.
    #[arg(long, value_parser = parse_list)]
    pub cpus: Option<NumberList>,

    /// How frames are taken from the kernel: `xdp` (AF_XDP, one socket per RX queue; TCP
    /// frames are taken away from the host's stack) or `af-packet` (TPACKET_V3 rings in a
    /// fanout group: the host still receives every frame, for busy gateways).
    #[arg(long, default_value = "xdp", value_parser = parse_capture_kind)]
    pub capture: CaptureKind,

    /// With `--capture af-packet`: how many rings (and capture threads) share the traffic, each
    /// connection on one of them (default: one per RX queue of the interface).
    #[arg(long, value_parser = |t: &str| t.parse().map_err(|_| format!("`{t}`: a number")).and_then(check_threads))]
    pub threads: Option<u32>,

    /// XDP attach mode: `native` (in the driver) or `skb` (generic, any interface).
    #[arg(long, default_value = "native", value_parser = parse_xdp_mode)]
    pub xdp_mode: tcpulse_io::capture::xdp::XdpMode,

    /// Frames each AF_XDP queue's UMEM and rings hold (a power of two, 64 to 1048576; 2 KiB
    /// each): the slack for the capture thread being descheduled (16384 is 65 ms at 250 k
    /// frames/s) before the kernel drops (`xdp_fill_ring_empty`).
    #[arg(long, default_value_t = 16384, value_parser = parse_ring_frames)]
    pub ring_frames: u32,

    /// Take every frame from the kernel, not only TCP (UDP generators such as pktgen, for the
    /// bare receive rate); non-TCP frames are counted as `non_tcp` and analysed no further.
    #[arg(long)]
    pub all_frames: bool,

    /// Put the interface in promiscuous mode (SPAN ports deliver frames for other hosts).
    #[arg(long)]
    pub promisc: bool,

    /// Stop after this long (default: until SIGINT or SIGTERM).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// After set-up, run as this user with only the capabilities still needed (none, or
    /// CAP_NET_ADMIN where the XDP program must be detached through netlink); no new privileges
    /// can be gained afterwards. Output files are opened before the switch.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Show a status line on standard error: frames/s, frames, own drops (default: when it is
    /// a terminal).
    #[arg(long)]
    pub progress: Option<bool>,

    /// Only count received frames, decode nothing: the bare AF_XDP receive rate.
    #[arg(long)]
    pub no_analysis: bool,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Options of the analysis pipeline, the same offline and live.
#[derive(Args, Debug, Clone)]
pub struct PipelineArgs {
    /// Interval length in capture time, e.g. 1s, 500ms, 1m.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,

    /// Where interval records go (`-` for standard output, `none` for nowhere but the
    /// --sink destinations).
    #[arg(long, short, default_value = "-")]
    pub output: String,

    /// Also write one flow record per connection here (`-` for standard output).
    #[arg(long)]
    pub flows: Option<String>,

    /// Another destination for records, delivered on its own thread without ever holding up
    /// analysis (docs/sinks.md); repeat for several: `file:PATH[,max_bytes=100M,keep=5]`,
    /// `stdout`, `http://HOST:PORT/PATH`, `clickhouse://HOST:PORT/DATABASE`,
    /// `prometheus:ADDR`, each with `,key=value` options.
    #[arg(long, value_name = "SPEC", value_parser = tcpulse_io::sink::SinkSpec::parse)]
    pub sink: Vec<tcpulse_io::sink::SinkSpec>,

    /// Flow worker threads; results do not depend on it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_WORKERS)))]
    pub workers: u16,

    #[command(flatten)]
    pub table: TableArgs,

    /// Servers listed per interval by traffic (plus as many with handshake trouble).
    #[arg(long, default_value_t = 20)]
    pub top_servers: usize,

    /// Servers of interest, always listed in interval records whatever their traffic:
    /// `10.0.0.0/8`, `192.0.2.7:443`, `[2001:db8::]/32:443`, `:5432`; repeatable.
    #[arg(long, value_name = "PATTERN", value_parser = tcpulse_core::metrics::watch::ServerPattern::parse)]
    pub watch: Vec<tcpulse_core::metrics::watch::ServerPattern>,

    /// Anonymise every IP address in the records before they leave the process, keeping
    /// prefixes (Crypto-PAn): KEYFILE holds 32 bytes or 64 hex digits (`head -c 32
    /// /dev/urandom > KEYFILE`); the same key gives the same mapping.
    #[arg(long, value_name = "KEYFILE")]
    pub anonymize: Option<PathBuf>,

    /// Analyse only the frames this capture filter matches, in pcap-filter syntax as tcpdump's
    /// (`host 10.1.2.3 and port 443`, `vlan 7`, `mpls`, `geneve`); the others are counted as
    /// `filtered_out`. Compiled by libpcap; applied in user space to every source.
    #[arg(long, value_name = "EXPR", value_parser = crate::config::checks::parse_filter)]
    pub filter: Option<String>,
}

/// Flow-table size and timeouts (capture time).
#[derive(Args, Debug, Clone)]
pub struct TableArgs {
    /// Flows tracked at once, over all workers; beyond it the least useful flows are evicted
    /// (half-open first) and counted as `flow_table_full` drops.
    #[arg(long, default_value_t = 1 << 20, value_parser = parse_max_flows)]
    pub max_flows: usize,

    /// End flows idle this long.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// End handshakes that make no progress for this long (`unanswered` if the SYN got no
    /// reply). Longer than the last SYN resend gap of Linux's defaults (32 s).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub half_open_timeout: Duration,

    /// Keep closed flows this long for stray packets (final ACKs, resent FIN/RST/SYN), like
    /// TCP's TIME_WAIT (2 MSL).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub close_linger: Duration,

    /// Report a half-closed connection (one FIN only) as stalled after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub half_closed_stall: Duration,

    /// Which tunnel ids tell flows apart besides the inner addresses and ports: `none` (a
    /// connection is never split), `vni` (VXLAN and GENEVE VNIs: tenants' overlapping address
    /// spaces, and one connection mirrored under several VNIs, stay apart; needs both
    /// directions under one VNI) or `all` (also GRE keys, ERSPAN sessions and GTP-U TEIDs).
    #[arg(long, default_value = "none", value_parser = crate::config::checks::parse_key_tunnel)]
    pub key_tunnel: tcpulse_core::flow::TunnelKeying,

    /// Where RTT samples come from: `auto` (TCP timestamps where a segment carries them, else
    /// sequence numbers to ACKs), `timestamps` (only those, as ePPing) or `seq-ack` (only
    /// sequence/ACK, as tcptrace and Wireshark's ack_rtt).
    #[arg(long, default_value = "auto", value_parser = crate::config::checks::parse_rtt_source)]
    pub rtt_source: tcpulse_core::flow::latency::RttSource,

    /// Time at most one segment per flow and direction in this long, as ePPing's
    /// --rate-limit (default: every segment that starts a new sample).
    #[arg(long, value_parser = parse_duration)]
    pub rtt_rate_limit: Option<Duration>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl TableArgs {
    /// One worker's engine settings when the table is shared by `workers`.
    pub fn flow_config(&self, workers: usize) -> FlowConfig {
        FlowConfig {
            capacity: self.max_flows.div_ceil(workers.max(1)),
            idle_timeout_ns: nanos(self.idle_timeout),
            half_open_timeout_ns: nanos(self.half_open_timeout),
            close_linger_ns: nanos(self.close_linger),
            half_closed_stall_ns: nanos(self.half_closed_stall),
            tunnel_keying: self.key_tunnel,
            latency: tcpulse_core::flow::latency::LatencyConfig {
                source: self.rtt_source,
                rate_limit_ns: self.rtt_rate_limit.map_or(0, nanos),
            },
            ..FlowConfig::default()
        }
    }
}

impl PipelineArgs {
    /// The pipeline these options describe; a key file that cannot be read is a usage error
    /// (printed; the `Err` is the exit code).
    pub fn settings(&self) -> Result<Settings, i32> {
        let anonymize = match &self.anonymize {
            Some(path) => Some(read_key(path).map_err(|e| {
                eprintln!("tcpulse: {e}");
                exit::USAGE
            })?),
            None => None,
        };
        let workers = usize::from(self.workers);
        Ok(Settings {
            workers,
            interval_ns: nanos(self.interval),
            flow: self.table.flow_config(workers),
            listing: Listing {
                top_servers: self.top_servers,
                watch: self.watch.clone(),
            },
            anonymize,
            filter: self.filter.clone(),
            outputs: OutputSettings {
                output: self.output.clone(),
                flows: self.flows.clone(),
                sinks: self.sink.clone(),
            },
        })
    }
}

/// Prints why output failed and returns the exit code.
pub fn fail_output(e: &OutputError) -> i32 {
    eprintln!("tcpulse: {e}");
    exit::OUTPUT_FAILED
}

/// Prints why writing failed and returns the exit code.
pub fn fail_write(e: &std::io::Error) -> i32 {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        eprintln!("tcpulse: output closed early (broken pipe)");
    } else {
        eprintln!("tcpulse: cannot write output: {e}");
    }
    exit::OUTPUT_FAILED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
