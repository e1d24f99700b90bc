//! A capture of good traffic (a generated mixed scenario, sequence wrap-around included) with
//! every kind of bad frame mixed in — truncated at every header boundary, bad IHL and data
//! offsets, IPv4 lengths that lie, zero-length and jumbo frames, overrunning TCP options, IPv6
//! extension chains that loop or overrun, deep VLAN stacks, TCP with every flag combination,
//! timestamps going backwards, and the file cut in the middle of its last record. Each bad
//! frame is counted under its reason, nothing panics, and the good traffic is analysed exactly
//! as without them.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use tcpulse::gen::{Scenario, TcpFrame};
use tcpulse_core::decode::{decode_frame, LinkType};
use tcpulse_core::schema::FlowRecord;
use tcpulse_io::capture::PcapWriter;

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tcpulse-malformed-{}-{name}", std::process::id()))
}

/// A well-formed IPv4 segment of the extra flow (a server no generated connection uses).
fn extra(flags: u8, payload_len: u32) -> TcpFrame {
    TcpFrame {
        src: IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 99, 99, 99)),
        sport: 40000,
        dport: 9999,
        seq: 1000,
        ack: 2000,
        flags,
        window: 1000,
        payload_len,
        mss: Some(1460),
        wscale: Some(7),
        sack_permitted: true,
        timestamps: Some((1, 2)),
        vlan: None,
        wrap: None,
    }
}

fn bytes(f: &TcpFrame) -> Vec<u8> {
    let mut b = Vec::new();
    f.write_ethernet(&mut b);
    b
}

/// Every bad frame, by what is wrong with it. Offsets: Ethernet 0..14, IPv4 14..34, TCP 34...
fn bad_frames() -> Vec<(&'static str, Vec<u8>)> {
    let good = bytes(&extra(0x18, 20));
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    // Truncated at every header boundary and inside each header (the wire length says so).
    for cut in [0, 1, 13, 14, 15, 33, 34, 35, 53, 54, 60, 65] {
        out.push(("truncated", good[..cut].to_vec()));
    }
    let mut f = good.clone();
    f[14] = 0x44; // IHL 4 (< 5)
    out.push(("ihl < 5", f));
    let mut f = good.clone();
    f[14] = 0x4f; // IHL 15: 60 bytes of header, more than the packet's TCP part
    f.truncate(60);
    out.push(("ihl beyond the frame", f));
    let mut f = good.clone();
    f[16..18].copy_from_slice(&19u16.to_be_bytes()); // total length < header
    out.push(("total length < header", f));
    let mut f = good.clone();
    f[16..18].copy_from_slice(&60_000u16.to_be_bytes()); // total length beyond the frame
    out.push(("total length beyond the frame", f));
    let mut f = good.clone();
    f[14 + 20 + 12] = 0x40; // TCP data offset 4
    out.push(("data offset < 5", f));
    let mut f = good.clone();
    f[14 + 20 + 12] = 0xf0; // data offset 15: 60 bytes of header
    f.truncate(14 + 20 + 40);
    f[16..18].copy_from_slice(&60u16.to_be_bytes());
    out.push(("data offset beyond the segment", f));
    let mut f = good.clone();
    f[14 + 20 + 20] = 2; // MSS option...
    f[14 + 20 + 21] = 40; // ...claiming 40 bytes in a 20-byte option area
    out.push(("option overruns", f));
    let mut f = good.clone();
    f[14 + 20 + 20] = 8; // timestamps option...
    f[14 + 20 + 21] = 0; // ...of length 0
    out.push(("option of length 0", f));
    out.push(("deep vlan stack", vlan_stack(&good, 6)));
    out.push(("vlan tags to the end", vlan_stack(&good[..14], 50)));
    out.push(("ipv6 extension loop", ipv6_chain(64, false)));
    out.push(("ipv6 extension overrun", ipv6_chain(2, true)));
    out.push(("not ip", {
        let mut f = good.clone();
        f[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // ARP
        f
    }));
    out
}

/// `frame` with `tags` 802.1Q tags inserted after the MAC addresses.
fn vlan_stack(frame: &[u8], tags: usize) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    for i in 0..tags {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&(i as u16 + 1).to_be_bytes());
    }
    f.extend_from_slice(&frame[12..]);
    f
}

/// An IPv6 packet with `n` hop-by-hop headers chained to one another; `overrun`: the last
/// claims more bytes than the packet holds.
fn ipv6_chain(n: usize, overrun: bool) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd];
    let payload_len = (n * 8) as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&payload_len.to_be_bytes());
    f.extend_from_slice(&[0, 64]); // next header: hop-by-hop
    f.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    f.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    for i in 0..n {
        let last = i + 1 == n;
        let next = if last && !overrun { 6 } else { 0 };
        let len = if last && overrun { 200 } else { 0 };
        f.extend_from_slice(&[next, len, 1, 4, 0, 0, 0, 0]);
    }
    f
}

/// The decode error name `frame` must be counted under.
fn reason(frame: &[u8]) -> &'static str {
    match decode_frame(LinkType::Ethernet, frame, frame.len() as u32, 1) {
        Ok(_) => "decoded",
        Err(e) => e.name(),
    }
}

/// Interval records' decode error counts, summed.
fn decode_errors(run: &common::Run) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for i in &run.intervals {
        for (k, v) in &i.capture.decode_errors {
            *out.entry(k.clone()).or_default() += v;
        }
    }
    out.retain(|_, v| *v > 0);
    out
}

fn is_extra(f: &FlowRecord) -> bool {
    f.server.to_string().starts_with("10.99.99.99")
}

#[test]
fn bad_frames_are_counted_and_the_rest_is_analysed_exactly() {
    let generated = Scenario::mixed(31, 400).generate();
    let mut frame = Vec::new();
    let (good_path, mixed_path) = (temp("good.pcap"), temp("mixed.pcap"));
    let _cleanup = common::TempFiles(vec![good_path.clone(), mixed_path.clone()]);
    let mut good_pcap =
        PcapWriter::new(std::fs::File::create(&good_path).unwrap(), 1, true).unwrap();
    let mut mixed = PcapWriter::new(std::fs::File::create(&mixed_path).unwrap(), 1, true).unwrap();

    let bad = bad_frames();
    // A deep but complete VLAN stack is a good frame; every other kind is counted.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (what, f) in &bad {
        let r = reason(f);
        eprintln!("{what}: {r}");
        if r != "decoded" {
            *expected.entry(r.to_string()).or_default() += 1;
        }
    }
    assert!(expected.keys().any(|k| k == "malformed_ipv4"));
    assert!(expected.keys().any(|k| k == "malformed_tcp"));
    assert!(expected.keys().any(|k| k == "malformed_ipv6"));
    assert!(expected.keys().any(|k| k == "malformed_link"));
    assert_eq!(
        reason(&bad.iter().find(|b| b.0 == "ihl < 5").unwrap().1),
        "malformed_ipv4"
    );
    assert_eq!(
        reason(&bad.iter().find(|b| b.0 == "data offset < 5").unwrap().1),
        "malformed_tcp"
    );

    // The extra flow: every flag combination, and a jumbo segment.
    let mut extras: Vec<Vec<u8>> = (0..=255u8).map(|flags| bytes(&extra(flags, 10))).collect();
    extras.push(bytes(&extra(0x10, 9000)));

    let mut backwards = 0u64;
    let n = generated.frames.len();
    for (i, s) in generated.frames.iter().enumerate() {
        frame.clear();
        s.frame.write_ethernet(&mut frame);
        good_pcap.write_frame(s.ts_ns, &frame).unwrap();
        mixed.write_frame(s.ts_ns, &frame).unwrap();
        // Between this frame and the next (same time, so nothing moves the good traffic).
        if i % 7 == 0 {
            let (_, f) = &bad[(i / 7) % bad.len()];
            mixed.write_frame(s.ts_ns, f).unwrap();
        }
        if i % 5 == 0 && i / 5 < extras.len() {
            mixed.write_frame(s.ts_ns, &extras[i / 5]).unwrap();
        }
        // Five frames stamped two seconds back, mid-capture.
        if i > n / 2 && backwards < 5 && i % 11 == 0 {
            mixed
                .write_frame(s.ts_ns - 2_000_000_000, &extras[0])
                .unwrap();
            backwards += 1;
        }
    }
    // The last record is a bad frame, cut in the middle: the file ends mid-record.
    let last_ts = generated.frames.last().unwrap().ts_ns;
    mixed.write_frame(last_ts, &bad[0].1).unwrap();
    good_pcap.flush().unwrap();
    mixed.flush().unwrap();
    drop((good_pcap, mixed));
    let len = std::fs::metadata(&mixed_path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&mixed_path)
        .unwrap()
        .set_len(len - 7)
        .unwrap();

    // Expected counts: the kinds in the order written.
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for i in (0..n).step_by(7) {
        let r = reason(&bad[(i / 7) % bad.len()].1);
        if r != "decoded" {
            *want.entry(r.to_string()).or_default() += 1;
        }
    }

    let clean = common::analyze(&[&good_path], &[]);
    let dirty = common::analyze(&[&mixed_path], &[]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    assert_eq!(dirty.code, 4, "cut mid-record: {}", dirty.stderr);
    assert!(
        dirty.stderr.contains("truncated") || dirty.stderr.contains("cut"),
        "{}",
        dirty.stderr
    );
    assert_eq!(decode_errors(&dirty), want, "decode errors by reason");
    let backwards_seen: u64 = dirty.intervals.iter().map(|i| i.capture.ts_backwards).sum();
    assert!(
        backwards_seen >= backwards,
        "{backwards_seen} frames counted as going back"
    );

    // The good traffic: every flow record identical, the extra flow aside.
    let good_flows: Vec<&FlowRecord> = clean.flows.iter().collect();
    let dirty_flows: Vec<&FlowRecord> = dirty.flows.iter().filter(|f| !is_extra(f)).collect();
    assert!(good_flows.len() >= 400, "{}", good_flows.len());
    assert_eq!(good_flows, dirty_flows, "the good traffic's flows changed");
    let extra_flows: Vec<&FlowRecord> = dirty.flows.iter().filter(|f| is_extra(f)).collect();
    let extra_packets: u64 = extra_flows
        .iter()
        .map(|f| f.packets.c2s + f.packets.s2c)
        .sum();
    assert!(
        extra_packets > 200,
        "every flag combination analysed: {extra_packets}"
    );
}
