//! A SYN flood: SYNs from spoofed sources to one server, each its own flow, mixed in time order
//! with a scenario's connections.
//!
//! A flood of ten million SYNs is made lazily, one SYN at a time, in time order: only the
//! SYN/ACKs still due (those the server sends to an answered SYN, a few milliseconds ahead) are
//! held, so memory does not grow with the flood. Its truth is one aggregate per target server
//! ([`FloodTruth`]), not one line per spoofed SYN.
//!
//! Every SYN has its own source address and port, unique by construction (a bijection of the
//! SYN's index), from ranges no legitimate connection uses: 198.18.0.0/15 (RFC 2544's benchmark
//! range) and 2001:db8:f1::/48. So the analysis opens exactly one flow per SYN, and a flood
//! flow is told from a legitimate one by its client address alone.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;

use super::frame::TcpFrame;
use super::scenario::{Rng, Stamped, FLOOD_CONN};
use tcpulse_core::decode::flags::{ACK, SYN};

const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

/// First address of the IPv4 spoofed-source range, 198.18.0.0/15: 17 bits of host.
const SPOOF_V4_BASE: u32 = 0xc612_0000;
/// Spoofed IPv4 sources use ports 32768–65535: 15 bits, so address and port hold 32 bits.
const SPOOF_V4_PORT_BASE: u16 = 0x8000;

/// Most SYNs a flood can have with a distinct IPv4 source each.
pub const MAX_FLOOD_SYNS: u64 = 1 << 32;

/// What the flood sends, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flood {
    pub syns: u64,
    /// The server flooded from IPv4 sources.
    pub target: SocketAddr,
    /// The server flooded from IPv6 sources.
    pub target_v6: SocketAddr,
    /// SYNs from IPv6 sources (to `target_v6`).
    pub ipv6_per_mille: u16,
    /// SYNs the server answers with a SYN/ACK that is never acknowledged (a half-open backlog);
    /// the others get no reply at all.
    pub answered_per_mille: u16,
    /// SYNs per second; `None` spreads them over the scenario's arrival spread.
    pub rate: Option<u64>,
    /// First SYN this long after the scenario's start.
    pub start_ns: u64,
    /// SYN → SYN/ACK at the tap, for answered SYNs.
    pub synack_ns: RangeInclusive<u64>,
}

impl Flood {
    /// `syns` unanswered SYNs from IPv4 sources to the generator's first server, over the
    /// scenario's arrival spread.
    pub fn new(syns: u64) -> Flood {
        Flood {
            syns,
            target: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), 443),
            target_v6: SocketAddr::new(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x5, 0, 0, 0, 0, 1)),
                443,
            ),
            ipv6_per_mille: 0,
            answered_per_mille: 0,
            rate: None,
            start_ns: 0,
            synack_ns: 200 * US..=40 * MS,
        }
    }

    /// Time from the first SYN's slot to the end of the last one.
    pub fn duration_ns(&self, spread_ns: u64) -> u64 {
        match self.rate {
            Some(rate) => {
                let ns = u128::from(self.syns) * u128::from(SEC) / u128::from(rate.max(1));
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
            None => spread_ns,
        }
    }
}

/// What the analysis must find for the flood on one target server. Every SYN opens its own flow
/// and is never acknowledged; `unanswered` SYNs got no reply at all, `answered` ones one SYN/ACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloodTruth {
    pub server: SocketAddr,
    pub syns: u64,
    pub answered: u64,
    pub unanswered: u64,
    /// First SYN and last frame of the flood to this server.
    pub first_ns: u64,
    pub last_ns: u64,
}

/// A SYN/ACK due later, ordered by time then SYN index.
#[derive(Debug)]
struct Due(Stamped, u64);

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.ts_ns, self.1).cmp(&(other.0.ts_ns, other.1))
    }
}

/// The flood's frames in time order (ties: the SYN before a SYN/ACK), made as they are taken.
#[derive(Debug)]
pub struct FloodFrames {
    flood: Flood,
    start_ns: u64,
    duration_ns: u64,
    rng: Rng,
    /// Keys the source bijection, so other seeds give other sources.
    key: u64,
    /// Index of the next SYN to make.
    k: u64,
    next_syn: Option<Stamped>,
    synacks: BinaryHeap<Reverse<Due>>,
    /// Most SYN/ACKs held at once: the memory the flood takes.
    pub max_held: usize,
    /// Per target: IPv4, IPv6.
    tally: [FloodTruth; 2],
}

impl FloodFrames {
    pub fn new(flood: &Flood, seed: u64, scenario_start_ns: u64, spread_ns: u64) -> FloodFrames {
        let mut seeder = Rng::new(seed ^ 0x5eed_f100_d5ee_df10);
        let tally = |server| FloodTruth {
            server,
            syns: 0,
            answered: 0,
            unanswered: 0,
            first_ns: 0,
            last_ns: 0,
        };
        let mut frames = FloodFrames {
            flood: flood.clone(),
            start_ns: scenario_start_ns.saturating_add(flood.start_ns),
            duration_ns: flood.duration_ns(spread_ns),
            rng: Rng::new(seeder.next_u64()),
            key: seeder.next_u64(),
            k: 0,
            next_syn: None,
            synacks: BinaryHeap::new(),
            max_held: 0,
            tally: [tally(flood.target), tally(flood.target_v6)],
        };
        frames.next_syn = frames.make_syn();
        frames
    }

    /// The truth per target that got SYNs (IPv4 target first); complete once the frames are
    /// exhausted.
    pub fn truths(&self) -> Vec<FloodTruth> {
        self.tally.iter().filter(|t| t.syns > 0).cloned().collect()
    }

    /// SYN `k`, in its slot of the flood's duration; its SYN/ACK, if answered, is queued.
    fn make_syn(&mut self) -> Option<Stamped> {
        let f = &self.flood;
        if self.k >= f.syns {
            return None;
        }
        let k = self.k;
        self.k += 1;
        let slot = |i: u64| {
            let at = u128::from(i) * u128::from(self.duration_ns) / u128::from(f.syns);
            u64::try_from(at).unwrap_or(u64::MAX)
        };
        let (lo, hi) = (slot(k), slot(k + 1));
        let ts = self
            .start_ns
            .saturating_add(lo)
            .saturating_add(self.rng.below(hi - lo));
        let ipv6 = self.rng.per_mille(f.ipv6_per_mille);
        let (client, server) = if ipv6 {
            let low = mix64(k ^ self.key);
            let ip = Ipv6Addr::from((0x2001_0db8_00f1_u128 << 80) | u128::from(low));
            let port = 1024 + self.rng.below(65_536 - 1024) as u16;
            (SocketAddr::new(IpAddr::V6(ip), port), f.target_v6)
        } else {
            let x = mix32((k as u32) ^ (self.key as u32));
            let ip = Ipv4Addr::from(SPOOF_V4_BASE + (x >> 15));
            let port = SPOOF_V4_PORT_BASE | (x & 0x7fff) as u16;
            (SocketAddr::new(IpAddr::V4(ip), port), f.target)
        };
        // No sequence or acknowledgment number is 0 (read as unknown) or wraps to 0.
        let isn = 1 + self.rng.below(u64::from(u32::MAX) - 1) as u32;
        let mss = if ipv6 { 1440 } else { 1460 };
        let syn = TcpFrame {
            src: client.ip(),
            dst: server.ip(),
            sport: client.port(),
            dport: server.port(),
            seq: isn,
            ack: 0,
            flags: SYN,
            window: 1024 + self.rng.below(64_512) as u16,
            payload_len: 0,
            mss: Some(mss),
            wscale: None,
            sack_permitted: false,
            timestamps: None,
            vlan: None,
            wrap: None,
        };
        let answered = self.rng.per_mille(f.answered_per_mille);
        let t = &mut self.tally[usize::from(ipv6)];
        if t.syns == 0 {
            t.first_ns = ts;
        }
        t.syns += 1;
        t.last_ns = t.last_ns.max(ts);
        if answered {
            t.answered += 1;
            let at = ts.saturating_add(self.rng.range(&f.synack_ns).max(1));
            t.last_ns = t.last_ns.max(at);
            let server_isn = 1 + self.rng.below(u64::from(u32::MAX) - 1) as u32;
            let synack = TcpFrame {
                src: syn.dst,
                dst: syn.src,
                sport: syn.dport,
                dport: syn.sport,
                seq: server_isn,
                ack: isn.wrapping_add(1),
                flags: SYN | ACK,
                window: 1024 + self.rng.below(64_512) as u16,
                ..syn
            };
            self.synacks.push(Reverse(Due(
                Stamped {
                    ts_ns: at,
                    conn: FLOOD_CONN,
                    frame: synack,
                },
                k,
            )));
            self.max_held = self.max_held.max(self.synacks.len());
        } else {
            t.unanswered += 1;
        }
        Some(Stamped {
            ts_ns: ts,
            conn: FLOOD_CONN,
            frame: syn,
        })
    }
}

impl Iterator for FloodFrames {
    type Item = Stamped;

    fn next(&mut self) -> Option<Stamped> {
        let synack_first = match (&self.next_syn, self.synacks.peek()) {
            (Some(syn), Some(Reverse(due))) => due.0.ts_ns < syn.ts_ns,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if synack_first {
            return self.synacks.pop().map(|Reverse(due)| due.0);
        }
        let syn = self.next_syn.take()?;
        self.next_syn = self.make_syn();
        Some(syn)
    }
}

/// Is `ip` in a spoofed-source range (so a flow from it belongs to a flood)?
pub fn is_spoofed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => u32::from(v4) >> 17 == SPOOF_V4_BASE >> 17,
        IpAddr::V6(v6) => v6.segments()[..3] == [0x2001, 0xdb8, 0xf1],
    }
}

/// A bijection of 32-bit values (xor-shifts and odd multipliers are each invertible).
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// A bijection of 64-bit values.
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn flood(syns: u64) -> Flood {
        Flood {
            ipv6_per_mille: 300,
            answered_per_mille: 400,
            ..Flood::new(syns)
        }
    }

    #[test]
    fn in_time_order_with_distinct_sources_and_tallied() {
        let mut frames = FloodFrames::new(&flood(50_000), 3, 1_000 * SEC, 2 * SEC);
        let all: Vec<Stamped> = frames.by_ref().collect();
        assert!(all.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
        let syns: Vec<&Stamped> = all.iter().filter(|s| s.frame.flags == SYN).collect();
        assert_eq!(syns.len(), 50_000);
        let sources: HashSet<(IpAddr, u16)> =
            syns.iter().map(|s| (s.frame.src, s.frame.sport)).collect();
        assert_eq!(sources.len(), 50_000);
        let truths = frames.truths();
        assert_eq!(truths.len(), 2);
        let synacks = all.len() - syns.len();
        assert_eq!(
            truths.iter().map(|t| t.answered).sum::<u64>(),
            synacks as u64
        );
        for t in &truths {
            assert_eq!(t.syns, t.answered + t.unanswered);
            let to_it = syns.iter().filter(|s| s.frame.dst == t.server.ip()).count();
            assert_eq!(to_it as u64, t.syns);
            assert!(t.first_ns >= 1_000 * SEC && t.last_ns <= 1_002 * SEC + 40 * MS);
        }
        assert!((12_000..18_000).contains(&truths[1].syns));
        assert!(all
            .iter()
            .all(|s| s.frame.seq != 0 && (s.frame.flags & ACK == 0 || s.frame.ack != 0)));
    }

    /// Only SYN/ACKs still due are held: a few milliseconds' worth, not the flood.
    #[test]
    fn memory_does_not_grow_with_the_flood() {
        let f = Flood {
            answered_per_mille: 1000,
            rate: Some(100_000),
            synack_ns: MS..=3 * MS,
            ..Flood::new(400_000)
        };
        let mut frames = FloodFrames::new(&f, 1, 0, SEC);
        assert_eq!(frames.by_ref().count(), 800_000);
        // 3 ms at 100 k SYNs/s is 300 SYN/ACKs in flight.
        assert!(frames.max_held <= 400, "{}", frames.max_held);
    }

    #[test]
    fn legitimate_addresses_are_not_spoofed() {
        let g = super::super::Scenario::mixed(4, 2000).generate();
        assert!(g.truths.iter().all(|t| !is_spoofed(t.client.ip())));
        assert!(g.truths.iter().all(|t| !is_spoofed(t.server.ip())));
    }

    #[test]
    fn rate_sets_the_duration() {
        let f = Flood {
            rate: Some(1000),
            start_ns: SEC,
            ..Flood::new(5000)
        };
        let all: Vec<Stamped> = FloodFrames::new(&f, 1, 0, SEC).collect();
        assert!(all[0].ts_ns >= SEC && all[0].ts_ns < SEC + MS);
        assert!(all[4999].ts_ns >= 5 * SEC + SEC - MS && all[4999].ts_ns < 6 * SEC);
    }

    #[test]
    fn spoofed_sources_stay_in_their_ranges() {
        for s in FloodFrames::new(&flood(5000), 9, 0, SEC) {
            let src = if s.frame.flags == SYN {
                s.frame.src
            } else {
                s.frame.dst
            };
            assert!(is_spoofed(src), "{src}");
        }
    }
}
