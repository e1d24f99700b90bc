//! Continuous RTT against Wireshark: on every capture of `../shared/pcaps`, tcpulse's
//! sequence/ACK samples (`--rtt-source seq-ack`) against tshark's `tcp.analysis.ack_rtt`, ACK by
//! ACK: the same answering segment (its capture time and its sender, which names the leg) must
//! carry the same RTT to the µs. What tshark times and tcpulse does not is counted per reason
//! class in docs/accuracy.md (Karn's rule, more than two segments in flight, 1-byte
//! keep-alives); `cargo test --profile ci --test rtt_accuracy -- --nocapture` prints the table.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use tcpulse_core::decode::{decode_frame, Endpoint, LinkType};
use tcpulse_core::flow::latency::{LatencyConfig, Leg, RttSource};
use tcpulse_core::flow::{Engine, FlowConfig};
use tcpulse_io::capture::CaptureFile;

/// An answering segment: its capture time (ns), sender, receiver and acknowledgment number
/// (several segments of one direction can share a capture time).
type Answer = (u64, IpAddr, u16, IpAddr, u16, u32);

/// `1700000000.123456789` → ns.
fn epoch_ns(text: &str) -> Option<u64> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut digits = frac.to_string();
    digits.truncate(9);
    while digits.len() < 9 {
        digits.push('0');
    }
    Some(secs.parse::<u64>().ok()? * 1_000_000_000 + digits.parse::<u64>().ok()?)
}

/// The last address of a field that may list several (tunnels): the innermost.
fn last_ip(field: &str) -> Option<IpAddr> {
    field.split(',').next_back()?.parse().ok()
}

fn tshark_samples(path: &Path) -> HashMap<Answer, u64> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-Y",
            "tcp.analysis.ack_rtt",
            "-T",
            "fields",
            "-E",
            "separator=/t",
        ])
        .args(["-e", "frame.time_epoch", "-e", "ip.src", "-e", "ipv6.src"])
        .args(["-e", "tcp.srcport", "-e", "ip.dst", "-e", "ipv6.dst"])
        .args([
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.analysis.ack_rtt",
            "-e",
            "tcp.ack_raw",
        ])
        .output()
        .expect("run tshark (scripts/setup installs it)");
    assert!(out.status.success(), "tshark on {}", path.display());
    let mut samples = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let parsed = (|| {
            let ts = epoch_ns(f[0])?;
            let src = last_ip(f[2]).or_else(|| last_ip(f[1]))?;
            let dst = last_ip(f[5]).or_else(|| last_ip(f[4]))?;
            let sport = f[3].split(',').next_back()?.parse().ok()?;
            let dport = f[6].split(',').next_back()?.parse().ok()?;
            let rtt = epoch_ns(f[7])?;
            let ack = f[8].split(',').next_back()?.parse().ok()?;
            Some(((ts, src, sport, dst, dport, ack), rtt))
        })();
        if let Some((k, v)) = parsed {
            samples.insert(k, v);
        }
    }
    samples
}

fn tcpulse_samples(path: &Path) -> HashMap<Answer, u64> {
    let mut engine = Engine::new(FlowConfig {
        capacity: 1 << 16,
        emit_flows: false,
        keep_rtt_samples: true,
        latency: LatencyConfig {
            source: RttSource::SeqAck,
            ..LatencyConfig::default()
        },
        ..FlowConfig::default()
    });
    let file = CaptureFile::open(path).expect("open the capture");
    for frame in file.frames() {
        let Ok(frame) = frame else { break };
        let Some(link) = LinkType::from_linktype(frame.link_type) else {
            continue;
        };
        if let Ok(rec) = decode_frame(link, frame.data, frame.wire_len, frame.ts_ns) {
            engine.on_packet(&rec);
        }
    }
    let ip = |e: &Endpoint| e.addr.to_ip();
    engine
        .take_rtt_samples()
        .into_iter()
        .map(|s| {
            let (from, to) = match s.sample.leg {
                Leg::Server => (s.server, s.client),
                Leg::Client => (s.client, s.server),
            };
            let answer = (s.ts_ns, ip(&from), from.port, ip(&to), to.port, s.ack);
            (answer, s.sample.ns)
        })
        .collect()
}

#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    tshark: usize,
    ours: usize,
    /// Samples of 0 ns (both segments in one capture tick): tshark shows no `ack_rtt` for them.
    zero: usize,
    common: usize,
    equal: usize,
}

#[test]
fn seq_ack_samples_equal_tshark_s_ack_rtt() {
    let dir = common::shared_pcaps();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("../shared/pcaps")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    names.sort();
    assert!(names.len() >= 33, "{names:?}");
    let mut all = Tally::default();
    let mut unequal = Vec::new();
    eprintln!("capture\ttshark\ttcpulse\tzero\tcommon\tequal");
    for name in &names {
        let path = dir.join(name);
        let theirs = tshark_samples(&path);
        let mut ours = tcpulse_samples(&path);
        let before = ours.len();
        ours.retain(|_, ns| *ns > 0);
        let mut t = Tally {
            tshark: theirs.len(),
            ours: ours.len(),
            zero: before - ours.len(),
            ..Tally::default()
        };
        for (answer, ns) in &ours {
            if let Some(&want) = theirs.get(answer) {
                t.common += 1;
                if ns.abs_diff(want) < 1_000 {
                    t.equal += 1;
                } else {
                    unequal.push(format!("{name}: {answer:?} tcpulse {ns} tshark {want}"));
                }
            }
        }
        eprintln!(
            "{name}\t{}\t{}\t{}\t{}\t{}",
            t.tshark, t.ours, t.zero, t.common, t.equal
        );
        all.tshark += t.tshark;
        all.ours += t.ours;
        all.zero += t.zero;
        all.common += t.common;
        all.equal += t.equal;
    }
    eprintln!(
        "all\t{}\t{}\t{}\t{}\t{}",
        all.tshark, all.ours, all.zero, all.common, all.equal
    );
    for u in unequal.iter().take(20) {
        eprintln!("{u}");
    }
    // Every sample both take is the same, to the µs, on the same leg.
    assert!(all.common > 1_000, "{all:?}");
    assert!(all.equal * 100 >= all.common * 99, "{all:?}");
    // tcpulse takes no sample tshark does not (the answering segment and its leg agree).
    assert!((all.ours - all.common) * 100 <= all.ours, "{all:?}");
    // What tcpulse leaves out by design (docs/accuracy.md) stays what it was: 74.2 % of
    // tshark's samples taken when this was written.
    assert!(all.common * 100 >= all.tshark * 72, "{all:?}");
}
