//! Continuous RTT against Wireshark: on every capture of `../shared/pcaps`, tcpulse's
//! sequence/ACK samples (`--rtt-source seq-ack`) against tshark's `tcp.analysis.ack_rtt`, ACK by
//! ACK: the same answering segment (its capture time and its sender, which names the leg) must
//! carry the same RTT to the µs. What tshark times and tcpulse does not is classed by reason
//! from tshark's own analysis flags (docs/accuracy.md: Karn's rule at the tap, which tshark
//! does not apply, keep-alives); `cargo test --profile ci --test rtt_accuracy -- --nocapture`
//! prints the table.

mod common;

use std::collections::{BTreeMap, HashMap};
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

/// One frame as tshark analyses it: what the sample comparison and the reasons for a missed
/// sample need.
#[derive(Debug, Default, Clone)]
struct TsharkFrame {
    answer: Option<Answer>,
    stream: u32,
    src_port: u16,
    seq: u32,
    next_seq: u32,
    ack_rtt_ns: Option<u64>,
    acks_frame: Option<usize>,
    resent: bool,
    keep_alive: bool,
    zero_window_probe: bool,
    has_ack: bool,
}

const TSHARK_FIELDS: [&str; 19] = [
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "ip.dst",
    "ipv6.dst",
    "tcp.dstport",
    "tcp.ack_raw",
    "tcp.stream",
    "tcp.seq_raw",
    "tcp.len",
    "tcp.analysis.ack_rtt",
    "tcp.analysis.acks_frame",
    "tcp.analysis.retransmission",
    "tcp.analysis.keep_alive",
    "tcp.analysis.zero_window_probe",
    "tcp.flags.ack",
    "tcp.flags.syn",
];

/// Every TCP frame of the capture by frame number, as tshark analyses it.
fn tshark_frames(path: &Path) -> HashMap<usize, TsharkFrame> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(path)
        .args(["-Y", "tcp", "-T", "fields", "-E", "separator=/t"]);
    for f in TSHARK_FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .expect("run tshark (scripts/setup installs it)");
    assert!(out.status.success(), "tshark on {}", path.display());
    let mut frames = HashMap::new();
    let last = |field: &str| field.split(',').next_back().unwrap_or("").to_string();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<String> = line.split('\t').map(last).collect();
        if f.len() < TSHARK_FIELDS.len() {
            continue;
        }
        let Ok(number) = f[0].parse::<usize>() else {
            continue;
        };
        let answer = (|| {
            let ts = epoch_ns(&f[1])?;
            let src = last_ip(&f[3]).or_else(|| last_ip(&f[2]))?;
            let dst = last_ip(&f[6]).or_else(|| last_ip(&f[5]))?;
            Some((
                ts,
                src,
                f[4].parse().ok()?,
                dst,
                f[7].parse().ok()?,
                f[8].parse().ok()?,
            ))
        })();
        let seq: u32 = f[10].parse().unwrap_or(0);
        let len: u32 = f[11].parse().unwrap_or(0);
        let syn = u32::from(f[18] == "1" || f[18] == "True");
        frames.insert(
            number,
            TsharkFrame {
                answer,
                stream: f[9].parse().unwrap_or(u32::MAX),
                src_port: f[4].parse().unwrap_or(0),
                seq,
                next_seq: seq.wrapping_add(len).wrapping_add(syn),
                ack_rtt_ns: epoch_ns(&f[12]).filter(|_| !f[12].is_empty()),
                acks_frame: f[13].parse().ok(),
                resent: !f[14].is_empty(),
                keep_alive: !f[15].is_empty(),
                zero_window_probe: !f[16].is_empty(),
                has_ack: f[17] == "1" || f[17] == "True",
            },
        );
    }
    frames
}

/// Why tcpulse has no sample where tshark has one, from tshark's own analysis of the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Missed {
    /// The acknowledged range was sent again before the ACK (tshark times the first copy).
    Karn,
    /// The acknowledged segment is a 1-byte keep-alive.
    KeepAlive,
    /// The acknowledged segment is a zero-window probe.
    ZeroWindowProbe,
    /// The answering segment carries no ACK flag.
    NoAckFlag,
    /// The acknowledged segment is itself a resend of data already acknowledged (answered by
    /// a duplicate ACK).
    SpuriousResend,
    /// The acknowledged segment is a resend of a range the tap had not seen acknowledged.
    ResentUnacked,
    /// A resend of another range came between the segment and its ACK.
    OtherRangeResent,
    Other,
}

fn reason(frames: &HashMap<usize, TsharkFrame>, ack_no: usize) -> Missed {
    let k = &frames[&ack_no];
    if !k.has_ack {
        return Missed::NoAckFlag;
    }
    let Some(a_no) = k.acks_frame else {
        return Missed::Other;
    };
    let Some(a) = frames.get(&a_no) else {
        return Missed::Other;
    };
    if a.keep_alive {
        return Missed::KeepAlive;
    }
    if a.zero_window_probe {
        return Missed::ZeroWindowProbe;
    }
    let overlaps = |r: &TsharkFrame| {
        (r.seq.wrapping_sub(a.seq) as i32) < (a.next_seq.wrapping_sub(a.seq) as i32)
            && (r.next_seq.wrapping_sub(a.seq) as i32) > 0
    };
    let resent = (a_no + 1..ack_no).any(|n| {
        frames.get(&n).is_some_and(|r| {
            r.stream == a.stream && r.src_port == a.src_port && r.resent && overlaps(r)
        })
    });
    if resent {
        return Missed::Karn;
    }
    if a.resent {
        let acked_before = (1..a_no).rev().find_map(|n| {
            let r = frames.get(&n)?;
            (r.stream == a.stream && r.src_port != a.src_port && r.has_ack)
                .then(|| r.answer.map(|x| x.5))
                .flatten()
        });
        return match acked_before {
            Some(ack) if (a.next_seq.wrapping_sub(ack) as i32) <= 0 => Missed::SpuriousResend,
            _ => Missed::ResentUnacked,
        };
    }
    let other_resent = (a_no + 1..ack_no).any(|n| {
        frames
            .get(&n)
            .is_some_and(|r| r.stream == a.stream && r.src_port == a.src_port && r.resent)
    });
    if other_resent {
        Missed::OtherRangeResent
    } else {
        Missed::Other
    }
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

#[derive(Default, Debug, Clone)]
struct Tally {
    tshark: usize,
    ours: usize,
    /// Samples of 0 ns (both segments in one capture tick): tshark shows no `ack_rtt` for them.
    zero: usize,
    common: usize,
    equal: usize,
    missed: BTreeMap<Missed, usize>,
}

impl Tally {
    fn add(&mut self, t: &Tally) {
        self.tshark += t.tshark;
        self.ours += t.ours;
        self.zero += t.zero;
        self.common += t.common;
        self.equal += t.equal;
        for (r, n) in &t.missed {
            *self.missed.entry(*r).or_default() += n;
        }
    }

    fn missed(&self, r: Missed) -> usize {
        self.missed.get(&r).copied().unwrap_or(0)
    }
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
    let mut unexplained = Vec::new();
    let mut only_ours = Vec::new();
    eprintln!("capture\ttshark\ttcpulse\tzero\tcommon\tequal\tmissed by reason");
    for name in &names {
        let path = dir.join(name);
        let frames = tshark_frames(&path);
        let theirs: HashMap<Answer, (u64, usize)> = frames
            .iter()
            .filter_map(|(&n, f)| Some((f.answer?, (f.ack_rtt_ns?, n))))
            .collect();
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
            if !theirs.contains_key(answer) {
                only_ours.push(format!("{name}: {answer:?} {ns}"));
            }
            if let Some(&(want, _)) = theirs.get(answer) {
                t.common += 1;
                if ns.abs_diff(want) < 1_000 {
                    t.equal += 1;
                } else {
                    unequal.push(format!("{name}: {answer:?} tcpulse {ns} tshark {want}"));
                }
            }
        }
        for (answer, &(_, frame)) in &theirs {
            if !ours.contains_key(answer) {
                let r = reason(&frames, frame);
                *t.missed.entry(r).or_default() += 1;
                if r == Missed::Other {
                    unexplained.push(format!("{name}: frame {frame}"));
                }
            }
        }
        eprintln!(
            "{name}\t{}\t{}\t{}\t{}\t{}\t{:?}",
            t.tshark, t.ours, t.zero, t.common, t.equal, t.missed
        );
        all.add(&t);
    }
    eprintln!(
        "all\t{}\t{}\t{}\t{}\t{}\t{:?}",
        all.tshark, all.ours, all.zero, all.common, all.equal, all.missed
    );
    for u in unequal.iter().take(20) {
        eprintln!("{u}");
    }
    for u in only_ours.iter().take(20) {
        eprintln!("tcpulse only: {u}");
    }
    unexplained.sort();
    for u in unexplained.iter().take(40) {
        eprintln!("unexplained: {u}");
    }
    // Every sample both take is the same, to the µs, on the same leg.
    assert!(all.common > 1_000, "{all:?}");
    assert_eq!(all.equal, all.common, "{all:?}");
    // tcpulse takes no sample tshark does not (the answering segment and its leg agree).
    assert!((all.ours - all.common) * 100 <= all.ours, "{all:?}");
    // Of the ACKs tshark times that no resend makes ambiguous at the tap (by tshark's own
    // flags: Karn's rule, which tshark does not apply), tcpulse takes at least 99 %.
    let by_rule = all.missed(Missed::Karn)
        + all.missed(Missed::SpuriousResend)
        + all.missed(Missed::ResentUnacked)
        + all.missed(Missed::OtherRangeResent)
        + all.missed(Missed::KeepAlive)
        + all.missed(Missed::ZeroWindowProbe)
        + all.missed(Missed::NoAckFlag);
    let unambiguous = all.tshark - by_rule;
    eprintln!(
        "unambiguous at the tap: {unambiguous}, tcpulse takes {} ({:.2} %); of all {}: {:.1} %",
        all.common,
        100.0 * all.common as f64 / unambiguous as f64,
        all.tshark,
        100.0 * all.common as f64 / all.tshark as f64
    );
    assert!(all.common * 100 >= unambiguous * 99, "{all:?}");
    assert!(all.missed(Missed::Other) * 100 <= unambiguous, "{all:?}");
}

/// The records carry every sample the engine takes, once: over a run's intervals, the
/// interval-wide histograms' counts equal the engine's samples per leg, and equal the sum of
/// the servers' (all listed).
#[test]
fn interval_histograms_hold_every_sample_once() {
    let path = common::shared_pcaps().join("ndpi_alexa-app.pcapng");
    let ours = tcpulse_samples(&path);
    let run = common::analyze(
        &[&path],
        &["--rtt-source", "seq-ack", "--top-servers", "100000"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (mut server_leg, mut client_leg, mut servers_sum) = (0, 0, 0);
    for i in &run.intervals {
        server_leg += i.histograms.rtt_server_leg_us.count;
        client_leg += i.histograms.rtt_client_leg_us.count;
        servers_sum += i
            .servers
            .iter()
            .map(|s| s.rtt_server_leg_us.count + s.rtt_client_leg_us.count)
            .sum::<u64>();
    }
    let engine_total = ours.len() as u64;
    assert!(engine_total > 1_000, "{engine_total}");
    assert_eq!(server_leg + client_leg, engine_total);
    assert_eq!(servers_sum, engine_total);
    assert!(server_leg > 0 && client_leg > 0);
}
