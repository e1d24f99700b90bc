//! Writes the two captures of the hash-flooding benchmark (`scripts/bench-hash-flood`):
//!
//! - `crafted.pcap`: SYNs from keys chosen so that the flow-table hash tcpulse used before it was
//!   keyed (a constant seed, reproduced below as `constant_seed_hash`) puts them all in one
//!   stretch of a one-worker table at the default `--max-flows`: what an attacker who knows the
//!   hash sends to turn every lookup into a long scan;
//! - `random.pcap`: the same number of SYNs from random keys.
//!
//! Each key sends its SYN `--sends` times (1 s apart, like a client resending), so lookups of
//! keys already in the table are timed as well as inserts. The frames are otherwise alike.
//!
//! Usage: cargo run --release --example hash_flood -- OUT_DIR [--keys N] [--sends N]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use tcpulse::gen::frame::TcpFrame;
use tcpulse::gen::{write_frames, Stamped};
use tcpulse_core::decode::flags::SYN;
use tcpulse_core::decode::Addr;
use tcpulse_core::flow::FlowKey;

/// Index slots of a one-worker table at the default `--max-flows` (1,048,576 flows, load at
/// most 3/4): 2^21.
const SLOTS: u64 = 1 << 21;
/// Crafted keys' home slots all fall below this: one run of every crafted key.
const WINDOW: u64 = 4096;
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
const SERVER_PORT: u16 = 80;
const START_NS: u64 = 1_700_000_000_000_000_000;
/// SYNs of one round are this far apart; rounds start 1 s apart.
const GAP_NS: u64 = 10_000;

/// The flow-table hash before it was keyed: a fixed multiply-xorshift chain, so anyone could
/// search keys offline for ones that share a home slot.
fn constant_seed_hash(key: &FlowKey) -> u64 {
    const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
    fn mix(x: u64) -> u64 {
        let m = u128::from(x) * 0xbf58_476d_1ce4_e5b9;
        (m as u64) ^ ((m >> 64) as u64)
    }
    let lo = u128::from_ne_bytes(key.lo_addr.0);
    let hi = u128::from_ne_bytes(key.hi_addr.0);
    let ports = (u64::from(key.lo_port) << 16) | u64::from(key.hi_port);
    let mut h = mix(lo as u64 ^ SEED);
    h = mix(h ^ (lo >> 64) as u64);
    h = mix(h ^ hi as u64);
    h = mix(h ^ (hi >> 64) as u64);
    mix(h ^ ports)
}

/// Client `n` of a sequence: addresses in 10.0.0.0/8, 60,000 ports each.
fn client(n: u64) -> (Ipv4Addr, u16) {
    let addr = (n / 60_000) as u32;
    let [_, a, b, c] = addr.to_be_bytes();
    (Ipv4Addr::new(10, a, b, c), 1024 + (n % 60_000) as u16)
}

fn key_of(ip: Ipv4Addr, port: u16) -> FlowKey {
    FlowKey {
        lo_addr: Addr::from_v4(ip.octets()),
        hi_addr: Addr::from_v4(SERVER.octets()),
        lo_port: port,
        hi_port: SERVER_PORT,
        tunnel: 0,
    }
}

fn syn(ip: Ipv4Addr, port: u16, seq: u32) -> TcpFrame {
    TcpFrame {
        src: IpAddr::V4(ip),
        dst: IpAddr::V4(SERVER),
        sport: port,
        dport: SERVER_PORT,
        seq,
        ack: 0,
        flags: SYN,
        window: 64_240,
        payload_len: 0,
        mss: Some(1460),
        wscale: Some(7),
        sack_permitted: true,
        timestamps: None,
        vlan: None,
        wrap: None,
    }
}

fn write(path: &Path, clients: &[(Ipv4Addr, u16)], sends: u64) {
    let frames = (0..sends).flat_map(|round| {
        clients
            .iter()
            .enumerate()
            .map(move |(i, &(ip, port))| Stamped {
                ts_ns: START_NS + round * 1_000_000_000 + i as u64 * GAP_NS,
                conn: i as u32,
                frame: syn(ip, port, (i as u32).wrapping_mul(2_654_435_761)),
            })
    });
    let n = write_frames(frames, path).unwrap_or_else(|e| {
        eprintln!("{}: {e}", path.display());
        std::process::exit(1)
    });
    eprintln!("{}: {n} frames", path.display());
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: hash_flood OUT_DIR [--keys N] [--sends N]");
        std::process::exit(2);
    };
    let (mut keys, mut sends) = (50_000usize, 3u64);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--keys", Some(v)) => keys = v as usize,
            ("--sends", Some(v)) => sends = v,
            _ => {
                eprintln!("hash_flood: bad argument {flag}");
                std::process::exit(2);
            }
        }
    }
    let crafted: Vec<_> = (0..)
        .map(client)
        .filter(|&(ip, port)| constant_seed_hash(&key_of(ip, port)) % SLOTS < WINDOW)
        .take(keys)
        .collect();
    // Random keys: a fixed odd multiplier walks the client space in a scattered order.
    let random: Vec<_> = (0..keys as u64)
        .map(|i| client(i.wrapping_mul(0x9e37_79b9) % (60_000 << 24)))
        .collect();
    let dir = Path::new(&dir);
    write(&dir.join("crafted.pcap"), &crafted, sends);
    write(&dir.join("random.pcap"), &random, sends);
}
