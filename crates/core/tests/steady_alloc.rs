//! A worker's engine in a steady run allocates nothing: once its servers are known and the
//! shares of earlier intervals come back to it, packets, timers and interval hand-overs reuse
//! what they have. Counted by a global allocator, on this test's thread only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use tcpulse_core::decode::flags::{ACK, FIN, PSH, SYN};
use tcpulse_core::decode::{Addr, PacketRecord, NO_WSCALE};
use tcpulse_core::flow::{Engine, FlowConfig, WorkerInterval};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call goes to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SECOND: u64 = 1_000_000_000;
const SERVERS: u32 = 8;
const PER_INTERVAL: u32 = 200;

/// Connection `n` of interval `i`: a whole short conversation (handshake, a request and its
/// answer, FIN both ways) to one of a fixed set of servers, within the interval.
fn conversation(i: u64, n: u32, out: &mut Vec<PacketRecord>) {
    let t0 = (1_000 + i) * SECOND + u64::from(n) * 2_000_000;
    let client = PacketRecord {
        src: Addr::from_v4([10, 1, (n >> 8) as u8, n as u8]),
        dst: Addr::from_v4([192, 0, 2, (n % SERVERS) as u8 + 1]),
        sport: 20_000 + (i % 20_000) as u16,
        dport: 443,
        window: 64_000,
        wscale: NO_WSCALE,
        ..PacketRecord::default()
    };
    let server = PacketRecord {
        src: client.dst,
        dst: client.src,
        sport: client.dport,
        dport: client.sport,
        ..client
    };
    let (c, s) = (1_000u32, 9_000u32);
    let at = |dt: u64, base: &PacketRecord, flags: u8, seq: u32, ack: u32, len: u32| PacketRecord {
        ts_ns: t0 + dt * 100_000,
        flags,
        seq,
        ack,
        payload_len: len,
        ..*base
    };
    out.extend([
        at(0, &client, SYN, c, 0, 0),
        at(1, &server, SYN | ACK, s, c + 1, 0),
        at(2, &client, ACK, c + 1, s + 1, 0),
        at(3, &client, PSH | ACK, c + 1, s + 1, 100),
        at(4, &server, PSH | ACK, s + 1, c + 101, 500),
        at(5, &client, FIN | ACK, c + 101, s + 501, 0),
        at(6, &server, FIN | ACK, s + 501, c + 102, 0),
        at(7, &client, ACK, c + 102, s + 502, 0),
    ]);
}

#[test]
fn a_warm_engine_allocates_nothing_per_interval() {
    let mut engine = Engine::new(FlowConfig {
        capacity: 4096,
        // Flows end shortly after their FINs, so the table turns over every interval.
        close_linger_ns: SECOND / 2,
        emit_flows: true,
        ..FlowConfig::default()
    });
    let mut packets = Vec::new();
    // The merger hands each share back: two in turn.
    let mut shares = [WorkerInterval::default(), WorkerInterval::default()];
    let mut run = |engine: &mut Engine, i: u64, packets: &mut Vec<PacketRecord>, count: bool| {
        packets.clear();
        for n in 0..PER_INTERVAL {
            conversation(i, n, packets);
        }
        packets.sort_by_key(|p| p.ts_ns);
        COUNTING.with(|c| c.set(count));
        for p in packets.iter() {
            engine.on_packet(p);
        }
        engine.on_tick((1_001 + i) * SECOND);
        let share = &mut shares[(i % 2) as usize];
        engine.take_interval_into(share);
        COUNTING.with(|c| c.set(false));
        let flows = share.flows.len();
        // What the merger does with a share: reads it, takes its flow records.
        share.flows.clear();
        flows
    };
    for i in 0..5 {
        run(&mut engine, i, &mut packets, false);
    }
    ALLOCATIONS.store(0, Ordering::Relaxed);
    let mut flows = 0;
    for i in 5..15 {
        flows += run(&mut engine, i, &mut packets, true);
    }
    assert!(
        flows >= 9 * PER_INTERVAL as usize,
        "{flows} flow records handed over"
    );
    assert_eq!(
        ALLOCATIONS.load(Ordering::Relaxed),
        0,
        "allocations over 10 steady intervals"
    );
}
