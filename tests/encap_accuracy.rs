//! Tunnels, mirror encapsulations and odd link types against tshark: every TCP stream that
//! tshark 4.0 finds in `../shared/pcaps/encap/` (its per-stream truth in `truth/`) must be a flow
//! with the same SYN, SYN/ACK and RST counts, the same retransmissions per direction and, on
//! clean handshakes, the same initial RTT to the microsecond. The differences that remain are
//! listed here by stream and explained in docs/accuracy.md.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use tcpulse_core::decode::Encap;
use tcpulse_core::schema::flow::PerDir;
use tcpulse_core::schema::FlowRecord;

#[derive(Deserialize, Debug)]
struct Stream {
    stream: u32,
    client: SocketAddr,
    server: SocketAddr,
    first_ns: u64,
    syn: u64,
    synack: u64,
    rst: u64,
    initial_rtt_ns: Option<u64>,
    clean_handshake: bool,
    retransmits: PerDir<u64>,
    fast_retransmits: PerDir<u64>,
    spurious_retransmits: PerDir<u64>,
}

/// Streams tcpulse does not report as tshark does, and why (docs/accuracy.md, "Encapsulations").
const EXPLAINED: &[(&str, u32, &str)] = &[(
    "ndpi_6in4tunnel.pcap",
    0,
    "seen only inside ICMPv6 errors: tshark makes a stream of the quoted TCP header",
)];

/// Whether a flow endpoint is the truth's: same port, and the inner address or, where tshark
/// names the outer IPv4 of a 6in4 tunnel (its `ip.src`), one of the tunnel's addresses.
fn same_endpoint(flow: &FlowRecord, ours: SocketAddr, theirs: SocketAddr) -> bool {
    let tunnel_addr = flow
        .tunnel
        .is_some_and(|t| t.outer_src == theirs.ip() || t.outer_dst == theirs.ip());
    ours.port() == theirs.port() && (ours.ip() == theirs.ip() || tunnel_addr)
}

/// The flow of a stream, and whether its client is tshark's client (BIG TCP's one segment has
/// no SYN: the roles are a guess on both sides).
fn flow_of<'a>(s: &Stream, flows: &'a [FlowRecord]) -> Option<(&'a FlowRecord, bool)> {
    flows
        .iter()
        .filter_map(|f| {
            let (c, v) = (
                SocketAddr::new(f.client.addr.to_ip(), f.client.port),
                SocketAddr::new(f.server.addr.to_ip(), f.server.port),
            );
            if same_endpoint(f, c, s.client) && same_endpoint(f, v, s.server) {
                Some((f, true))
            } else if same_endpoint(f, c, s.server) && same_endpoint(f, v, s.client) {
                Some((f, false))
            } else {
                None
            }
        })
        .min_by_key(|(f, _)| f.first_ns.abs_diff(s.first_ns))
}

/// The tunnel each capture's TCP travels in (SOURCES.md), as flow records name it.
fn tunnel_of(capture: &str) -> Option<Encap> {
    [
        ("gre", Encap::Gre),
        ("vxlan", Encap::Vxlan),
        ("geneve", Encap::Geneve),
        ("6in4", Encap::IpInIp),
        ("gtp", Encap::GtpU),
    ]
    .into_iter()
    .find(|(tag, _)| capture.contains(tag))
    .map(|(_, kind)| kind)
}

fn oriented(p: PerDir<u32>, same: bool) -> PerDir<u64> {
    let (c2s, s2c) = (u64::from(p.c2s), u64::from(p.s2c));
    if same {
        PerDir { c2s, s2c }
    } else {
        PerDir { c2s: s2c, s2c: c2s }
    }
}

#[test]
fn every_tshark_stream_in_the_encapsulated_captures_is_a_flow_and_agrees() {
    let dir = common::shared_pcaps().join("encap");
    let mut truths: Vec<_> = std::fs::read_dir(dir.join("truth"))
        .expect("../shared/pcaps/encap/truth")
        .map(|e| e.unwrap().path())
        .collect();
    truths.sort();
    let (mut streams, mut rtt_checked, mut explained) = (0, 0, 0);
    let mut failures = Vec::new();
    for truth in &truths {
        let name = truth.file_stem().unwrap().to_string_lossy().into_owned();
        let capture = dir.join(&name);
        let run = common::analyze(&[Path::new(&capture)], &[]);
        assert_eq!(run.code, 0, "{name}: exit {}: {}", run.code, run.stderr);
        let text = std::fs::read_to_string(truth).unwrap();
        for line in text.lines() {
            let s: Stream = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}"));
            streams += 1;
            let why = EXPLAINED
                .iter()
                .find(|(file, stream, _)| *file == name && *stream == s.stream);
            let Some((f, same)) = flow_of(&s, &run.flows) else {
                match why {
                    Some(_) => explained += 1,
                    None => failures.push(format!(
                        "{name}: stream {} {} → {} has no flow",
                        s.stream, s.client, s.server
                    )),
                }
                continue;
            };
            let mut differ = |what: &str, ours: String, theirs: String| {
                if ours != theirs {
                    failures.push(format!(
                        "{name}: stream {} {what}: ours {ours}, tshark {theirs}",
                        s.stream
                    ));
                }
            };
            let tunnel = f.tunnel.map(|t| t.kind);
            differ(
                "tunnel",
                format!("{tunnel:?}"),
                format!("{:?}", tunnel_of(&name)),
            );
            let syn = oriented(f.syn, same);
            let (client_syn, server_syn) = (syn.c2s, syn.s2c);
            differ("SYN", client_syn.to_string(), s.syn.to_string());
            differ("SYN/ACK", server_syn.to_string(), s.synack.to_string());
            differ(
                "RST",
                (f.rst.c2s + f.rst.s2c).to_string(),
                s.rst.to_string(),
            );
            for (what, ours, theirs) in [
                ("retransmits", f.retransmits, s.retransmits),
                ("fast retransmits", f.fast_retransmits, s.fast_retransmits),
                (
                    "spurious retransmits",
                    f.spurious_retransmits,
                    s.spurious_retransmits,
                ),
            ] {
                differ(
                    what,
                    format!("{:?}", oriented(ours, same)),
                    format!("{theirs:?}"),
                );
            }
            if s.clean_handshake {
                rtt_checked += 1;
                let ours = f.handshake.and_then(|h| h.total_ns);
                let close =
                    matches!((ours, s.initial_rtt_ns), (Some(a), Some(b)) if a.abs_diff(b) < 1000);
                if !close {
                    differ(
                        "initial RTT",
                        format!("{ours:?}"),
                        format!("{:?}", s.initial_rtt_ns),
                    );
                }
            }
        }
    }
    println!(
        "{streams} tshark streams, {explained} explained, {rtt_checked} clean handshakes checked"
    );
    assert!(
        failures.is_empty(),
        "differences from tshark:\n{}",
        failures.join("\n")
    );
    assert!(
        streams >= 19 && rtt_checked > 0,
        "the truth files were read"
    );
}
