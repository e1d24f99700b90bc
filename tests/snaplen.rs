//! Header-only capture: every shared capture cut with `editcap -s 68`, `-s 96` and `-s 128` must
//! give, for every TCP stream whose frames all keep their fixed TCP header within the snap
//! length, the same SYN, FIN and RST counts per direction and the same handshake times as the
//! uncut capture; and the frames that lose it must be exactly the ones counted as malformed.
//! Which frames keep their header is worked out from tshark's dissection of the uncut capture.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;

use tcpulse_core::schema::FlowRecord;

/// One frame as tshark dissects it.
struct TcpFrame {
    /// The TCP stream, for frames whose TCP segment crossed the tap (not quoted in ICMP).
    stream: Option<u32>,
    /// An IP packet inside another (a tunnel): cutting it can cut a header tcpulse reads
    /// before it knows whether TCP is inside.
    tunnelled: bool,
    /// Where the fixed TCP header ends, when the framing is plain enough to tell.
    fixed_header_end: Option<usize>,
    ts_ns: u64,
    ends: (String, String),
}

fn tshark_frames(path: &Path) -> Vec<TcpFrame> {
    let out = Command::new("tshark")
        .args(["-n", "-o", "tcp.relative_sequence_numbers:false", "-r"])
        .arg(path)
        .args(["-T", "fields", "-E", "separator=/t"])
        .args([
            "-e",
            "tcp.stream",
            "-e",
            "frame.protocols",
            "-e",
            "ip.hdr_len",
        ])
        .args(["-e", "frame.time_epoch", "-e", "ip.src", "-e", "ipv6.src"])
        .args([
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "tcp.dstport",
        ])
        .env(
            "WIRESHARK_CONFIG_DIR",
            std::env::temp_dir().join("tcpulse-no-wireshark-config"),
        )
        .output()
        .expect("tshark (scripts/setup installs it)");
    assert!(out.status.success(), "tshark on {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let (secs, frac) = f[3].split_once('.').unwrap_or((f[3], "0"));
            let ts_ns = secs.parse::<u64>().unwrap() * 1_000_000_000
                + format!("{frac:0<9}")[..9].parse::<u64>().unwrap();
            let src = format!("{}{}", f[4], f[5]);
            let dst = format!("{}{}", f[7], f[8]);
            let endpoint = |ip: &str, port: &str| {
                if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                }
            };
            let layers: Vec<&str> = f[1].split(':').collect();
            // An IP layer after an ICMP one is a quoted header, not a packet.
            let icmp = layers.iter().position(|l| l.starts_with("icmp"));
            let ips: Vec<usize> = (0..layers.len())
                .filter(|&i| matches!(layers[i], "ip" | "ipv6"))
                .collect();
            let quoted = icmp.is_some_and(|at| ips.iter().any(|&ip| ip > at));
            TcpFrame {
                stream: f[0].parse().ok().filter(|_| !quoted),
                tunnelled: ips.len() > 1 && !quoted,
                fixed_header_end: fixed_header_end(f[1], f[2]),
                ts_ns,
                ends: (endpoint(&src, f[6]), endpoint(&dst, f[9])),
            }
        })
        .collect()
}

/// The end of the fixed TCP header for the framings whose header lengths are fixed: a link
/// header, VLAN tags, one IPv4 (with its header length) or IPv6 header (no extension headers).
fn fixed_header_end(protocols: &str, ipv4_header: &str) -> Option<usize> {
    let layers: Vec<&str> = protocols.split(':').collect();
    let mut end = match *layers.first()? {
        "eth" => 14,
        "sll" => 16,
        "raw" => 0,
        "null" => 4,
        _ => return None,
    };
    let mut ip_seen = false;
    for layer in &layers[1..] {
        match *layer {
            "ethertype" => {}
            "vlan" if !ip_seen => end += 4,
            "ip" if !ip_seen => {
                end += ipv4_header.parse::<usize>().ok()?;
                ip_seen = true;
            }
            "ipv6" if !ip_seen => {
                end += 40;
                ip_seen = true;
            }
            "tcp" if ip_seen => return Some(end + 20),
            _ => return None,
        }
    }
    None
}

/// What must not change when only options and payload are cut.
fn essentials(f: &FlowRecord) -> String {
    format!(
        "{} {} syn {:?} fin {:?} rst {:?} handshake {:?}",
        f.client, f.server, f.syn, f.fin, f.rst, f.handshake
    )
}

fn flows_of(flows: &[FlowRecord], ends: &(String, String), from: u64, to: u64) -> Vec<String> {
    let mut found: Vec<_> = flows
        .iter()
        .filter(|f| {
            let (c, s) = (f.client.to_string(), f.server.to_string());
            ((&c, &s) == (&ends.0, &ends.1) || (&c, &s) == (&ends.1, &ends.0))
                && (from..=to).contains(&f.first_ns)
        })
        .map(essentials)
        .collect();
    found.sort();
    found
}

#[test]
fn header_only_captures_keep_every_handshake_and_flag() {
    let pcaps = common::shared_pcaps();
    let summary = common::read_tsv(&pcaps.join("summary.tsv"));
    let pid = std::process::id();
    let mut failures = Vec::new();
    let mut report = String::new();
    const SNAPLENS: [usize; 3] = [68, 96, 128];
    let mut tally = [(0, 0, 0); SNAPLENS.len()];
    for file in &summary {
        let name = &file["filename"];
        let uncut_path = pcaps.join(name);
        let uncut = common::analyze(&[&uncut_path], &[]);
        let all_frames = tshark_frames(&uncut_path);
        let tunnels = all_frames.iter().any(|f| f.tunnelled);
        let frames: Vec<_> = all_frames.iter().filter(|f| f.stream.is_some()).collect();
        for (snaplen, (compared, skipped, cut_frames)) in SNAPLENS.into_iter().zip(&mut tally) {
            let cut_path =
                std::env::temp_dir().join(format!("tcpulse-snaplen-{pid}-{snaplen}-{name}"));
            let _guard = common::TempFiles(vec![cut_path.clone()]);
            let status = Command::new("editcap")
                .args(["-s", &snaplen.to_string()])
                .arg(&uncut_path)
                .arg(&cut_path)
                .status()
                .expect("editcap (scripts/setup installs it)");
            assert!(status.success(), "editcap -s {snaplen} {name}");
            let cut = common::analyze(&[&cut_path], &[]);
            assert_eq!(cut.code, 0, "{name} -s {snaplen}: {}", cut.stderr);
            // Streams with a frame whose fixed header is cut, or cannot be placed, are left out.
            let mut lose: HashSet<u32> = HashSet::new();
            let mut unknown = 0;
            let mut lost_here = 0;
            for f in &frames {
                let stream = f.stream.unwrap_or_default();
                match f.fixed_header_end {
                    Some(end) if end <= snaplen => {}
                    Some(_) => {
                        lose.insert(stream);
                        lost_here += 1;
                    }
                    None => {
                        lose.insert(stream);
                        unknown += 1;
                    }
                }
            }
            *cut_frames += lost_here;
            // Where every TCP frame could be placed and no tunnel can be cut inside, the frames
            // that lost their fixed TCP header are exactly those tcpulse counts as malformed
            // beyond the uncut capture's.
            if unknown == 0 && !tunnels {
                let extra = cut.capture_total("malformed") - uncut.capture_total("malformed");
                if extra != lost_here {
                    failures.push(format!(
                        "{name} -s {snaplen}: {extra} more malformed frames, {lost_here} lost \
                         their fixed TCP header"
                    ));
                }
            }
            let mut streams: HashMap<u32, (&(String, String), u64, u64)> = HashMap::new();
            for f in &frames {
                let e = streams
                    .entry(f.stream.unwrap_or_default())
                    .or_insert((&f.ends, f.ts_ns, f.ts_ns));
                e.1 = e.1.min(f.ts_ns);
                e.2 = e.2.max(f.ts_ns);
            }
            for (stream, (ends, from, to)) in &streams {
                if lose.contains(stream) {
                    *skipped += 1;
                    continue;
                }
                *compared += 1;
                let want = flows_of(&uncut.flows, ends, *from, *to);
                let got = flows_of(&cut.flows, ends, *from, *to);
                if want.is_empty() || want != got {
                    failures.push(format!(
                        "{name} -s {snaplen} stream {stream}: uncut {want:?}, cut {got:?}"
                    ));
                }
            }
        }
    }
    for (snaplen, (compared, skipped, cut_frames)) in SNAPLENS.into_iter().zip(tally) {
        report += &format!(
            "-s {snaplen}: {compared} streams compared, {skipped} left out ({cut_frames} frames \
             lost their fixed TCP header)\n"
        );
    }
    println!("{report}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
