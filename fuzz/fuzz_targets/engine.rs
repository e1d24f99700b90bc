//! Decoder and engine together on sequences of frames: each input is read as frames (link type
//! index, u16 length, time step code, bytes), decoded, and fed to a small engine whose table
//! (64 flows) and timeouts (about a second) are tight enough that eviction, timeouts, stalls
//! and interval closes all happen. Beyond "no panic", it checks the invariants every interval
//! and flow record must keep.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tcpulse_core::decode::{decode_frame, LinkType};
use tcpulse_core::flow::{Engine, FlowConfig};

const LINKS: [LinkType; 4] = [
    LinkType::Ethernet,
    LinkType::Raw,
    LinkType::LinuxSll,
    LinkType::Null,
];
const CAPACITY: usize = 64;

fuzz_target!(|data: &[u8]| {
    let mut engine = Engine::new(FlowConfig {
        capacity: CAPACITY,
        idle_timeout_ns: 2_000_000_000,
        half_open_timeout_ns: 1_000_000_000,
        close_linger_ns: 500_000_000,
        half_closed_stall_ns: 1_000_000_000,
        max_servers: 8,
        emit_flows: true,
        hasher: tcpulse_core::flow::FlowHasher::with_key([1, 2]),
    });
    let (mut rest, mut now, mut fed, mut frames) = (data, 1_700_000_000_000_000_000u64, 0u64, 0u64);
    let (mut accounted, mut monotonic) = (0u64, true);
    while rest.len() >= 4 {
        let link = LINKS[usize::from(rest[0]) % LINKS.len()];
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]])).min(rest.len() - 4);
        // Steps from 1 µs to ~16 s (cubic), and now and then backwards, as real captures do.
        let code = u64::from(rest[3]);
        if code == 255 {
            now = now.saturating_sub(1_000_000);
            monotonic = false;
        } else {
            now += code * code * code * 1_000 + 1_000;
        }
        let frame = &rest[4..4 + len];
        rest = &rest[4 + len..];
        frames += 1;
        if let Ok(rec) = decode_frame(link, frame, len as u32, now) {
            engine.on_packet(&rec);
            fed += 1;
        }
        if frames % 16 == 0 {
            engine.on_tick(now);
            let iv = engine.take_interval();
            assert!(iv.active_flows <= CAPACITY as u64);
            accounted += check(&iv, monotonic);
        }
    }
    engine.finish();
    let iv = engine.take_interval();
    assert_eq!(iv.active_flows, 0, "finish ends every flow");
    accounted += check(&iv, monotonic);
    // A segment is in one flow record at most (some start no flow: a stray RST, a full table).
    assert!(accounted <= fed, "{accounted} segments in flow records, {fed} fed");
});

/// Invariants of one interval's flow records; returns the segments they hold.
fn check(iv: &tcpulse_core::flow::WorkerInterval, monotonic: bool) -> u64 {
    let mut segments = 0;
    for f in &iv.flows {
        let packets = f.packets.c2s + f.packets.s2c;
        assert!(packets >= 1);
        for (p, r, fast, spurious) in [
            (f.packets.c2s, f.retransmits.c2s, f.fast_retransmits.c2s, f.spurious_retransmits.c2s),
            (f.packets.s2c, f.retransmits.s2c, f.fast_retransmits.s2c, f.spurious_retransmits.s2c),
        ] {
            // Fast and spurious retransmissions are kinds of retransmission, of segments seen.
            assert!(u64::from(r) <= p && fast <= r && spurious <= r);
        }
        // With one SYN and one SYN/ACK and time never going back, the two legs are the
        // handshake (resends move the legs' ends to the latest copies, by design).
        if let (Some(h), true) = (&f.handshake, monotonic && f.syn.c2s == 1 && f.syn.s2c == 1) {
            if let (Some(a), Some(b), Some(t)) = (h.syn_synack_ns, h.synack_ack_ns, h.total_ns) {
                assert_eq!(a + b, t, "legs add up to the handshake");
            }
        }
        segments += packets;
    }
    segments
}
