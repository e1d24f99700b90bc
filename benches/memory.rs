//! Memory per tracked flow: resident bytes an `Engine` gains per concurrent flow.
//!
//! For each address family, with and without flow records (`emit_flows`, i.e. `--flows`, which
//! also keeps the cold per-flow counters), the binary re-executes itself (so one measurement's
//! freed memory cannot hide in the next one's baseline), builds an engine with room for every
//! flow, feeds each flow a handshake and one data segment (SYN, SYN/ACK, ACK, 100-byte request),
//! all in capture time well inside every timeout, and reads the resident set from
//! /proc/self/statm before the engine is built and after the last packet. Records are made on
//! the fly, so the only memory that grows is the engine's. The flow table's slot index is sized
//! for the capacity (a power of two), so bytes per flow are lowest with a full table.
//!
//! Run: `cargo bench --bench memory` (or `scripts/bench-memory`). Flows per family:
//! `TCPULSE_BENCH_FLOWS` (default 1048576).

use std::hint::black_box;
use std::process::Command;

use tcpulse_core::decode::flags::{ACK, PSH, SYN};
use tcpulse_core::decode::{Addr, PacketRecord, NO_WSCALE};
use tcpulse_core::flow::conn::{Conn, FlowStats};
use tcpulse_core::flow::{Engine, FlowConfig, FlowKey};

const DEFAULT_FLOWS: usize = 1 << 20;
/// Set in the child processes: `v4` or `v6`, `:flows` when flow records are on.
const CHILD_ENV: &str = "TCPULSE_BENCH_MEMORY_FAMILY";
/// Servers the flows are spread over (ports 443 on this many addresses).
const SERVERS: u32 = 64;

fn flows() -> usize {
    // `cargo test` runs bench targets without `--bench`: a quick smoke run is enough there.
    let smoke = !std::env::args().any(|a| a == "--bench");
    std::env::var("TCPULSE_BENCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { 10_000 } else { DEFAULT_FLOWS })
}

/// Resident set size in bytes (statm's second field is resident pages).
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("statm has a resident field");
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported on Linux.
    let page = unsafe { sysconf(SC_PAGESIZE) };
    pages * usize::try_from(page).expect("positive page size")
}

const SC_PAGESIZE: i32 = 30;
extern "C" {
    fn sysconf(name: i32) -> i64;
}

/// Flow `i`'s client and server: distinct client address/port per flow, `SERVERS` servers.
fn endpoints(i: u32, v6: bool) -> (Addr, u16, Addr, u16) {
    let sport = 1024 + (i % 60_000) as u16;
    let host = i / 60_000;
    let server = i % SERVERS;
    if v6 {
        let mut c = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        c[12..].copy_from_slice(&host.to_be_bytes());
        let mut s = [0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        s[12..].copy_from_slice(&server.to_be_bytes());
        (Addr::from_v6(c), sport, Addr::from_v6(s), 443)
    } else {
        let c = (0x0a00_0000 | host).to_be_bytes();
        let s = (0xc0a8_0000 | server).to_be_bytes();
        (Addr::from_v4(c), sport, Addr::from_v4(s), 443)
    }
}

fn feed(engine: &mut Engine, i: u32, v6: bool, ts: u64) {
    let (c, cport, s, sport) = endpoints(i, v6);
    let isn_c = i.wrapping_mul(2_654_435_761);
    let isn_s = isn_c ^ 0x5555_5555;
    let base = PacketRecord {
        wscale: NO_WSCALE,
        window: 65_535,
        ..PacketRecord::default()
    };
    let c2s = PacketRecord {
        src: c,
        sport: cport,
        dst: s,
        dport: sport,
        ..base
    };
    let s2c = PacketRecord {
        src: s,
        sport,
        dst: c,
        dport: cport,
        ..base
    };
    let segments = [
        PacketRecord {
            ts_ns: ts,
            seq: isn_c,
            flags: SYN,
            mss: 1460,
            ..c2s
        },
        PacketRecord {
            ts_ns: ts + 200_000,
            seq: isn_s,
            ack: isn_c.wrapping_add(1),
            flags: SYN | ACK,
            mss: 1460,
            ..s2c
        },
        PacketRecord {
            ts_ns: ts + 300_000,
            seq: isn_c.wrapping_add(1),
            ack: isn_s.wrapping_add(1),
            flags: ACK,
            ..c2s
        },
        PacketRecord {
            ts_ns: ts + 310_000,
            seq: isn_c.wrapping_add(1),
            ack: isn_s.wrapping_add(1),
            flags: PSH | ACK,
            payload_len: 100,
            ..c2s
        },
    ];
    for rec in &segments {
        black_box(engine.on_packet(rec));
    }
}

/// Measures one family in this process and prints one line of `key=value` fields.
fn measure(v6: bool, emit_flows: bool) {
    let n = flows();
    let before = rss_bytes();
    let mut engine = Engine::new(FlowConfig {
        capacity: n,
        emit_flows,
        ..FlowConfig::default()
    });
    let after_new = rss_bytes();
    // 1 µs apart: a million flows span about a second, far inside every timeout.
    let start = 1_700_000_000_000_000_000u64;
    for i in 0..n as u32 {
        feed(&mut engine, i, v6, start + u64::from(i) * 1_000);
    }
    let after = rss_bytes();
    assert_eq!(engine.active_flows(), n, "every flow is tracked");
    let table = engine.table_memory_bytes();
    println!(
        "family={} flow_records={} flows={} rss_before={} rss_after_new={} rss_after={} \
         rss_per_flow={:.1} table_per_capacity={:.1}",
        if v6 { "ipv6" } else { "ipv4" },
        if emit_flows { "on" } else { "off" },
        n,
        before,
        after_new,
        after,
        (after - before) as f64 / n as f64,
        table as f64 / n as f64,
    );
    drop(black_box(engine));
}

fn main() {
    if let Ok(child) = std::env::var(CHILD_ENV) {
        let (family, records) = child.split_once(':').unwrap_or((&child, ""));
        return measure(family == "v6", records == "flows");
    }
    let n = flows();
    println!("tcpulse bench-memory: {n} concurrent flows per run, SYN + SYN/ACK + ACK + data each");
    println!(
        "size_of: Conn {} B (always), FlowStats {} B (only with flow records), FlowKey {} B, \
         PacketRecord {} B",
        std::mem::size_of::<Conn>(),
        std::mem::size_of::<FlowStats>(),
        std::mem::size_of::<FlowKey>(),
        std::mem::size_of::<PacketRecord>(),
    );
    println!(
        "{:<6} {:<12} {:>9} {:>12} {:>12} {:>12} {:>18}",
        "family",
        "flow_records",
        "flows",
        "rss_growth",
        "rss_B/flow",
        "new()_rss_B",
        "table_B/capacity"
    );
    let exe = std::env::current_exe().expect("path of this benchmark");
    for child in ["v4", "v6", "v4:flows", "v6:flows"] {
        let out = Command::new(&exe)
            .env(CHILD_ENV, child)
            .env("TCPULSE_BENCH_FLOWS", n.to_string())
            .output()
            .expect("run the measurement");
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
            std::process::exit(1);
        }
        let field = |name: &str| -> &str {
            text.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or("?")
        };
        let num = |name: &str| -> f64 { field(name).parse().unwrap_or(f64::NAN) };
        println!(
            "{:<6} {:<12} {:>9} {:>12} {:>12.1} {:>12} {:>18.1}",
            field("family"),
            field("flow_records"),
            field("flows"),
            num("rss_after") - num("rss_before"),
            num("rss_per_flow"),
            num("rss_after_new") - num("rss_before"),
            num("table_per_capacity"),
        );
    }
}
