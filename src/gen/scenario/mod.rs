//! Deterministic synthetic conversations and their ground truth.
//!
//! A [`Scenario`] describes many concurrent connections as seen from a tap between clients and
//! servers: handshake legs drawn from ranges, request/response exchanges, and anomalies switched
//! on per feature. [`Scenario::generate`] plays every connection on its own timeline, merges the
//! timelines, and returns the frames in time order together with one [`Truth`] per connection:
//! what a Wireshark-compatible analysis must report for it.
//!
//! The truth is counted from what each connection was made to do, not by analysing the frames.
//! To keep that honest, every pattern is built so that it has exactly one reading under the
//! rules of `flow::seq_analysis`:
//! - every data segment carries at least 2 bytes, so no resend looks like a keep-alive, and only
//!   the intended zero-window probes carry 1 byte;
//! - each side advertises one window value for the whole connection (SYN included), except 0
//!   during a zero-window episode, which always ends with a window update; so a bare ACK that
//!   repeats the previous ACK number is a duplicate ACK exactly when it is meant to be one;
//! - before each flight of data, the receiver's last segment acknowledged all the sender's data,
//!   and every episode ends with a new ACK number, so no run of duplicate ACKs leaks into the
//!   next episode;
//! - timeout and spurious resends come at least 200 ms and twice the initial RTT after the
//!   highest segment (never out-of-order, never fast); fast resends come 20 µs – 15 ms after the
//!   last of at least 3 duplicate ACKs; out-of-order pairs are swapped by at most a quarter of
//!   the initial RTT (and 900 µs);
//! - lost segments are lost after the tap, so the tap sees the original and the resend, and no
//!   ACK ever covers data the tap did not see;
//! - initial sequence numbers are chosen so that no sequence or acknowledgment number of the
//!   connection is 0, which the analysis reads as "unknown".

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;

use super::flood::{Flood, FloodFrames, FloodTruth};
use super::frame::{TcpFrame, Underlay, Wrap};
use tcpulse_core::decode::flags::{ACK, FIN, PSH, RST, SYN};

mod conversation;
mod latency;

use conversation::Conv;
pub use latency::LatencyTruth;

const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

/// Client host addresses per family; connection `i` uses host `i % HOSTS`, port
/// `FIRST_CLIENT_PORT + i / HOSTS`, so every connection has its own addresses and ports.
const HOSTS: u32 = 500;
const FIRST_CLIENT_PORT: u32 = 1024;
/// Most connections one scenario can hold with distinct client ports.
pub const MAX_CONNECTIONS: u32 = HOSTS * (65_536 - FIRST_CLIENT_PORT);
const SERVER_HOSTS: u64 = 20;
const SERVER_PORTS: [u16; 5] = [80, 443, 8080, 8443, 5432];

/// splitmix64: small, fast, and good enough to drive a test generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in the range; an empty range gives its start.
    pub fn range(&mut self, r: &RangeInclusive<u64>) -> u64 {
        let (lo, hi) = (*r.start(), *r.end());
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.below(span),
            None => self.next_u64(),
        }
    }

    pub fn range32(&mut self, r: &RangeInclusive<u32>) -> u32 {
        self.range(&(u64::from(*r.start())..=u64::from(*r.end()))) as u32
    }

    /// True with probability `p`/1000.
    pub fn per_mille(&mut self, p: u16) -> bool {
        self.below(1000) < u64::from(p)
    }
}

/// How often one kind of event happens: in `per_mille` of the connections that can have it,
/// `count` times each (drawn uniformly).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    pub per_mille: u16,
    pub count: RangeInclusive<u32>,
}

impl Feature {
    pub const OFF: Feature = Feature {
        per_mille: 0,
        count: 0..=0,
    };

    /// In every connection, `count` times.
    pub const fn every(count: RangeInclusive<u32>) -> Feature {
        Feature {
            per_mille: 1000,
            count,
        }
    }

    pub const fn some(per_mille: u16, count: RangeInclusive<u32>) -> Feature {
        Feature { per_mille, count }
    }

    fn draw(&self, rng: &mut Rng) -> u32 {
        if rng.per_mille(self.per_mille) {
            rng.range32(&self.count)
        } else {
            0
        }
    }
}

/// Relative weights of the ways established connections end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseMix {
    /// FIN from the client first, then the server's.
    pub fin_client: u16,
    /// FIN from the server first, then the client's.
    pub fin_server: u16,
    pub rst_client: u16,
    pub rst_server: u16,
    /// Still open when the capture ends.
    pub open: u16,
}

impl CloseMix {
    pub const FIN_CLIENT: CloseMix = CloseMix {
        fin_client: 1,
        fin_server: 0,
        rst_client: 0,
        rst_server: 0,
        open: 0,
    };
    pub const ALL: CloseMix = CloseMix {
        fin_client: 5,
        fin_server: 2,
        rst_client: 1,
        rst_server: 1,
        open: 1,
    };
}

/// Shares (per mille) of the connections the tap receives wrapped, per wrapping; together at
/// most 1000. Tunnels that carry Ethernet (VXLAN, GENEVE, ERSPAN) arrive as from a mirror
/// session: from one of 8 mirror sources to the monitor, both directions alike. GRE and IP in IP
/// arrive as on a tunnelled path: between the client's and the server's tunnel end, swapped with
/// the direction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncapMix {
    pub vxlan: u16,
    pub geneve: u16,
    pub gre: u16,
    pub erspan: u16,
    pub ip_in_ip: u16,
    pub mpls: u16,
    pub pppoe: u16,
}

/// The wrappings of [`EncapMix`], in its field order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WrapKind {
    Vxlan,
    Geneve,
    Gre,
    Erspan,
    IpInIp,
    Mpls,
    Pppoe,
}

/// The monitor a mirror session sends to, and the first of the mirror sources (8 in all).
const MONITOR: Ipv4Addr = Ipv4Addr::new(100, 64, 255, 254);
const MIRROR_SOURCES: u8 = 8;

impl EncapMix {
    pub const NONE: EncapMix = EncapMix {
        vxlan: 0,
        geneve: 0,
        gre: 0,
        erspan: 0,
        ip_in_ip: 0,
        mpls: 0,
        pppoe: 0,
    };

    fn shares(&self) -> [(u16, WrapKind); 7] {
        [
            (self.vxlan, WrapKind::Vxlan),
            (self.geneve, WrapKind::Geneve),
            (self.gre, WrapKind::Gre),
            (self.erspan, WrapKind::Erspan),
            (self.ip_in_ip, WrapKind::IpInIp),
            (self.mpls, WrapKind::Mpls),
            (self.pppoe, WrapKind::Pppoe),
        ]
    }

    pub fn total(&self) -> u32 {
        self.shares().iter().map(|&(s, _)| u32::from(s)).sum()
    }

    /// One connection's wrapping: for each direction (index `CLIENT`, `SERVER`) the wrapping
    /// of its frames (ERSPAN's sequence number still 0). Draws nothing when every share is 0,
    /// so scenarios without wrappings stay what they were.
    fn draw(&self, rng: &mut Rng) -> Option<[Wrap; 2]> {
        if self.total() == 0 {
            return None;
        }
        let mut pick = rng.below(1000);
        let kind = self.shares().into_iter().find_map(|(share, kind)| {
            if pick < u64::from(share) {
                Some(kind)
            } else {
                pick -= u64::from(share);
                None
            }
        })?;
        let mirror = Underlay {
            src: Ipv4Addr::new(100, 64, 0, 1 + rng.below(u64::from(MIRROR_SOURCES)) as u8),
            dst: MONITOR,
            udp_sport: 49_152 + rng.below(16_384) as u16,
        };
        // The client's and the server's tunnel ends.
        let path = Underlay {
            src: Ipv4Addr::new(100, 64, 1, 1 + rng.below(8) as u8),
            dst: Ipv4Addr::new(100, 64, 2, 1 + rng.below(8) as u8),
            udp_sport: 0,
        };
        let back = Underlay {
            src: path.dst,
            dst: path.src,
            ..path
        };
        let both = |w: Wrap| [w, w];
        Some(match kind {
            WrapKind::Vxlan => both(Wrap::Vxlan {
                vni: 1 + rng.below((1 << 24) - 1) as u32,
                outer: mirror,
            }),
            WrapKind::Geneve => both(Wrap::Geneve {
                vni: 1 + rng.below((1 << 24) - 1) as u32,
                outer: mirror,
            }),
            WrapKind::Erspan => both(Wrap::Erspan {
                session: 1 + rng.below(1023) as u16,
                sequence: 0,
                outer: mirror,
            }),
            WrapKind::Gre => {
                let key = rng.next_u64() as u32;
                [
                    Wrap::Gre { key, outer: path },
                    Wrap::Gre { key, outer: back },
                ]
            }
            WrapKind::IpInIp => [Wrap::IpInIp { outer: path }, Wrap::IpInIp { outer: back }],
            // Labels 0-15 are reserved.
            WrapKind::Mpls => both(Wrap::Mpls {
                labels: [
                    16 + rng.below((1 << 20) - 16) as u32,
                    16 + rng.below((1 << 20) - 16) as u32,
                ],
            }),
            WrapKind::Pppoe => both(Wrap::Pppoe {
                session: 1 + rng.below(65_534) as u16,
            }),
        })
    }
}

/// Parameters of a synthetic capture. All times are nanoseconds; ranges are inclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    pub seed: u64,
    pub connections: u32,
    /// Capture time of the earliest possible SYN.
    pub start_ns: u64,
    /// SYNs are spread uniformly over this much time after `start_ns`.
    pub arrival_spread_ns: u64,
    /// SYN → SYN/ACK at the tap; also the tap → server → tap time for data.
    pub syn_synack_ns: RangeInclusive<u64>,
    /// SYN/ACK → ACK at the tap; also the tap → client → tap time for data.
    pub synack_ack_ns: RangeInclusive<u64>,
    /// Request/response exchanges per established connection (episodes may add more).
    pub exchanges: RangeInclusive<u32>,
    /// Data segments in a request (at least 1) and a response (0: a bare ACK answers).
    pub request_segments: RangeInclusive<u32>,
    pub response_segments: RangeInclusive<u32>,
    /// Payload bytes per data segment; raised to at least 2 (see the module notes).
    pub segment_len: RangeInclusive<u32>,
    /// Pause before each request and before the teardown.
    pub think_ns: RangeInclusive<u64>,
    /// Connections whose receivers acknowledge every second segment of a clean flight as it
    /// arrives, and an odd last one 40 ms late unless data carries the ACK (Linux's delayed
    /// ACKs).
    pub delayed_acks_per_mille: u16,
    pub ipv6_per_mille: u16,
    /// Connections seen with an 802.1Q tag on one direction only, as from a SPAN port.
    pub vlan_per_mille: u16,
    /// Connections delivered inside a tunnel, MPLS or PPPoE.
    pub encapsulation: EncapMix,
    /// Connections whose sequence numbers wrap past 2^32 (in either direction or both).
    pub seq_wrap_per_mille: u16,
    /// Connections whose SYN the server answers with RST.
    pub refused_per_mille: u16,
    /// Connections whose SYN nothing answers.
    pub unanswered_per_mille: u16,
    /// Resends of the SYN (1 s, 2 s, 4 s ... apart), in any kind of connection.
    pub syn_retransmits: Feature,
    /// Resends of the SYN/ACK (1 s, 2 s, ... apart), in connections the server accepts.
    pub synack_retransmits: Feature,
    /// Episodes per established connection, each in a random flight of either direction.
    pub timeout_retransmits: Feature,
    pub fast_retransmits: Feature,
    pub spurious_retransmits: Feature,
    pub out_of_order: Feature,
    pub zero_window: Feature,
    /// Zero-window probes in each zero-window episode.
    pub zero_window_probes: RangeInclusive<u32>,
    pub close: CloseMix,
    /// A SYN flood mixed in time order with the connections (`flood.rs`).
    pub flood: Option<Flood>,
}

impl Default for Scenario {
    /// Clean traffic: 100 IPv4 connections, handshake, a few exchanges, FIN from the client.
    fn default() -> Self {
        Scenario {
            seed: 1,
            connections: 100,
            start_ns: 1_700_000_000 * SEC,
            arrival_spread_ns: 2 * SEC,
            syn_synack_ns: 200 * US..=40 * MS,
            synack_ack_ns: 50 * US..=20 * MS,
            exchanges: 1..=4,
            request_segments: 1..=2,
            response_segments: 0..=6,
            // 1500-byte IP MTU - IPv6 (40) - TCP (20) - timestamps option (12): every frame
            // fits a standard Ethernet link, so generated traffic can be sent on a real one.
            segment_len: 2..=1428,
            think_ns: 100 * US..=50 * MS,
            delayed_acks_per_mille: 0,
            ipv6_per_mille: 0,
            vlan_per_mille: 0,
            encapsulation: EncapMix::NONE,
            seq_wrap_per_mille: 0,
            refused_per_mille: 0,
            unanswered_per_mille: 0,
            syn_retransmits: Feature::OFF,
            synack_retransmits: Feature::OFF,
            timeout_retransmits: Feature::OFF,
            fast_retransmits: Feature::OFF,
            spurious_retransmits: Feature::OFF,
            out_of_order: Feature::OFF,
            zero_window: Feature::OFF,
            zero_window_probes: 0..=2,
            close: CloseMix::FIN_CLIENT,
            flood: None,
        }
    }
}

impl Scenario {
    /// Every feature on, in realistic proportions.
    pub fn mixed(seed: u64, connections: u32) -> Scenario {
        Scenario {
            seed,
            connections,
            arrival_spread_ns: 5 * SEC,
            delayed_acks_per_mille: 300,
            ipv6_per_mille: 200,
            vlan_per_mille: 100,
            seq_wrap_per_mille: 100,
            refused_per_mille: 30,
            unanswered_per_mille: 20,
            syn_retransmits: Feature::some(50, 1..=3),
            synack_retransmits: Feature::some(30, 1..=2),
            timeout_retransmits: Feature::some(100, 1..=2),
            fast_retransmits: Feature::some(80, 1..=2),
            spurious_retransmits: Feature::some(50, 1..=1),
            out_of_order: Feature::some(80, 1..=2),
            zero_window: Feature::some(50, 1..=1),
            close: CloseMix::ALL,
            ..Scenario::default()
        }
    }

    /// Plays every connection (and the flood) and returns all frames in time order (ties: by
    /// connection, then in the connection's own order; flood frames after connections') with
    /// the truths. Holds every frame at once: for large captures, [`Scenario::frames`].
    ///
    /// # Panics
    /// With more than [`MAX_CONNECTIONS`] connections.
    pub fn generate(&self) -> Generated {
        let mut stream = self.frames();
        let frames: Vec<Stamped> = stream.by_ref().collect();
        let (truths, floods) = stream.into_truths();
        Generated {
            frames,
            truths,
            floods,
        }
    }

    /// The frames of [`Scenario::generate`], in the same order, made as they are taken: only
    /// the frames of connections under way (and the flood's SYN/ACKs still due) are held.
    ///
    /// # Panics
    /// With more than [`MAX_CONNECTIONS`] connections.
    pub fn frames(&self) -> StampedFrames<'_> {
        assert!(
            self.connections <= MAX_CONNECTIONS,
            "at most {MAX_CONNECTIONS} connections"
        );
        // A connection's first frame is its SYN at its start time: playing connections in
        // start order bounds what can still come before any held frame.
        let mut order: Vec<(u64, u32)> = (0..self.connections)
            .map(|i| (Conv::new(self, i).t, i))
            .collect();
        order.sort_unstable();
        StampedFrames {
            sc: self,
            order,
            next: 0,
            held: BinaryHeap::new(),
            truths: vec![None; self.connections as usize],
            flood: self
                .flood
                .as_ref()
                .map(|f| FloodFrames::new(f, self.seed, self.start_ns, self.arrival_spread_ns)),
            next_conn: None,
            next_flood: None,
        }
    }
}

/// [`Stamped::conn`] of the flood's frames.
pub const FLOOD_CONN: u32 = u32::MAX;

/// A frame and when the tap saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamped {
    pub ts_ns: u64,
    /// Index of the connection (into [`Generated::truths`]); [`FLOOD_CONN`] for the flood.
    pub conn: u32,
    pub frame: TcpFrame,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// In capture-time order.
    pub frames: Vec<Stamped>,
    /// One per connection, in connection order.
    pub truths: Vec<Truth>,
    /// One per flooded server.
    pub floods: Vec<FloodTruth>,
}

/// A held frame, ordered by time then connection (unique: a connection's times strictly
/// increase).
#[derive(Debug)]
struct Held(Stamped);

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.ts_ns, self.0.conn).cmp(&(other.0.ts_ns, other.0.conn))
    }
}

/// A scenario's frames in time order ([`Scenario::frames`]); the truths come after, from
/// [`StampedFrames::into_truths`].
#[derive(Debug)]
pub struct StampedFrames<'a> {
    sc: &'a Scenario,
    /// Connections by (start time, index); `next` is the first not yet played.
    order: Vec<(u64, u32)>,
    next: usize,
    held: BinaryHeap<Reverse<Held>>,
    truths: Vec<Option<Truth>>,
    flood: Option<FloodFrames>,
    next_conn: Option<Stamped>,
    next_flood: Option<Stamped>,
}

impl StampedFrames<'_> {
    /// The truths per connection (in connection order) and per flooded server; frames not yet
    /// taken are made (and dropped) first.
    pub fn into_truths(mut self) -> (Vec<Truth>, Vec<FloodTruth>) {
        for _ in self.by_ref() {}
        let floods = self.flood.as_ref().map(FloodFrames::truths);
        (
            self.truths.into_iter().flatten().collect(),
            floods.unwrap_or_default(),
        )
    }

    /// StampedFrames held at most so far by the flood (its SYN/ACKs still due).
    pub fn flood_held(&self) -> usize {
        self.flood.as_ref().map_or(0, |f| f.max_held)
    }

    fn next_connection_frame(&mut self) -> Option<Stamped> {
        loop {
            let release = match (self.held.peek(), self.order.get(self.next)) {
                (Some(Reverse(held)), Some(&(start, _))) => held.0.ts_ns < start,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return None,
            };
            if release {
                return self.held.pop().map(|Reverse(held)| held.0);
            }
            let (_, conn) = self.order[self.next];
            self.next += 1;
            let (frames, truth) = Conv::new(self.sc, conn).play();
            self.held.extend(
                frames
                    .into_iter()
                    .map(|(ts_ns, frame)| Reverse(Held(Stamped { ts_ns, conn, frame }))),
            );
            self.truths[conn as usize] = Some(truth);
        }
    }
}

impl Iterator for StampedFrames<'_> {
    type Item = Stamped;

    fn next(&mut self) -> Option<Stamped> {
        if self.next_conn.is_none() {
            self.next_conn = self.next_connection_frame();
        }
        if self.next_flood.is_none() {
            self.next_flood = self.flood.as_mut().and_then(Iterator::next);
        }
        match (&self.next_conn, &self.next_flood) {
            (Some(c), Some(f)) if f.ts_ns < c.ts_ns => self.next_flood.take(),
            (Some(_), _) => self.next_conn.take(),
            (None, _) => self.next_flood.take(),
        }
    }
}

/// What the analysis must report for one connection. Pairs are (client→server,
/// server→client). Field meanings follow the flow record (docs/schema.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truth {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Latest SYN → first SYN/ACK.
    pub syn_synack_ns: Option<u64>,
    /// Latest SYN/ACK → the handshake's ACK.
    pub synack_ack_ns: Option<u64>,
    /// Latest SYN → the handshake's ACK.
    pub total_ns: Option<u64>,
    pub syn_retransmits: u32,
    pub synack_retransmits: u32,
    pub packets: (u64, u64),
    pub payload_bytes: (u64, u64),
    /// Every resent segment, SYN, SYN/ACK, fast and spurious resends included.
    pub retransmits: (u32, u32),
    pub fast_retransmits: (u32, u32),
    pub spurious_retransmits: (u32, u32),
    pub out_of_order: (u32, u32),
    pub dup_acks: (u32, u32),
    pub zero_window: (u32, u32),
    pub zero_window_probes: (u32, u32),
    /// Segments with SYN, FIN, RST set.
    pub syn: (u32, u32),
    pub fin: (u32, u32),
    pub rst: (u32, u32),
    /// `"client"` or `"server"`.
    pub fin_first: Option<&'static str>,
    /// `fin`, `rst_client`, `rst_server`, `refused`, `unanswered` or `capture_end`.
    pub close: &'static str,
    /// How the connection's first frame was wrapped (the flow record's `tunnel` comes from it).
    pub wrap: Option<Wrap>,
    /// Its RTT samples per leg and its response times (docs/latency.md).
    pub latency: LatencyTruth,
}

fn client_addr(index: u32, ipv6: bool) -> SocketAddr {
    let host = index % HOSTS;
    let port = (FIRST_CLIENT_PORT + index / HOSTS) as u16;
    let ip = match (ipv6, host) {
        (true, h) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, h as u16 + 1)),
        (false, h) if h < 250 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, h as u8 + 1)),
        (false, h) => IpAddr::V4(Ipv4Addr::new(198, 51, 100, (h - 250) as u8 + 1)),
    };
    SocketAddr::new(ip, port)
}

fn server_addr(rng: &mut Rng, ipv6: bool) -> SocketAddr {
    let host = 1 + rng.below(SERVER_HOSTS) as u8;
    let port = SERVER_PORTS[rng.below(SERVER_PORTS.len() as u64) as usize];
    let ip = if ipv6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0x5,
            0,
            0,
            0,
            0,
            u16::from(host),
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, host))
    };
    SocketAddr::new(ip, port)
}

#[cfg(test)]
mod tests {
    use super::conversation::DELAYED_ACK;
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn dir(frame: &TcpFrame, truth: &Truth) -> usize {
        if frame.src == truth.client.ip() && frame.sport == truth.client.port() {
            0
        } else {
            1
        }
    }

    #[test]
    fn same_seed_same_capture_other_seed_other_capture() {
        let sc = Scenario::mixed(7, 300);
        let a = sc.generate();
        assert_eq!(a, sc.generate());
        let b = Scenario { seed: 8, ..sc }.generate();
        assert_ne!(a.frames, b.frames);
        assert_eq!(a.truths.len(), 300);
    }

    /// Streaming plays connections in start order, yet yields what sorting every frame would.
    #[test]
    fn streamed_frames_are_every_frame_sorted() {
        let sc = Scenario::mixed(23, 700);
        let mut all = Vec::new();
        for i in 0..sc.connections {
            let (frames, _) = Conv::new(&sc, i).play();
            all.extend(frames.into_iter().map(|(ts_ns, frame)| Stamped {
                ts_ns,
                conn: i,
                frame,
            }));
        }
        all.sort_by_key(|s| (s.ts_ns, s.conn));
        assert!(sc.frames().eq(all));
    }

    #[test]
    fn a_flood_mixes_in_without_changing_the_connections() {
        let plain = Scenario::mixed(29, 300).generate();
        let sc = Scenario {
            flood: Some(Flood {
                answered_per_mille: 500,
                ..Flood::new(20_000)
            }),
            ..Scenario::mixed(29, 300)
        };
        let g = sc.generate();
        assert_eq!(g.truths, plain.truths);
        assert!(g.frames.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
        let legit: Vec<&Stamped> = g.frames.iter().filter(|s| s.conn != FLOOD_CONN).collect();
        assert!(legit.iter().copied().eq(plain.frames.iter()));
        assert_eq!(g.floods.len(), 1);
        let f = &g.floods[0];
        assert_eq!(f.syns, 20_000);
        assert_eq!(g.frames.len() - legit.len(), (f.syns + f.answered) as usize);
    }

    #[test]
    fn connections_do_not_depend_on_each_other() {
        let small = Scenario::mixed(3, 50).generate();
        let large = Scenario::mixed(3, 200).generate();
        assert_eq!(small.truths[..], large.truths[..50]);
    }

    #[test]
    fn frames_are_in_time_order_and_each_connection_strictly_increases() {
        let g = Scenario::mixed(11, 500).generate();
        assert!(g.frames.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
        let mut last = vec![0u64; g.truths.len()];
        for s in &g.frames {
            assert!(s.ts_ns > last[s.conn as usize]);
            last[s.conn as usize] = s.ts_ns;
        }
    }

    /// Packets, bytes and flags counted from the frames agree with the truth, and the truth's
    /// counts are consistent with one another.
    #[test]
    fn truth_counts_add_up() {
        let g = Scenario::mixed(5, 1000).generate();
        let n = g.truths.len();
        let mut packets = vec![[0u64; 2]; n];
        let mut bytes = vec![[0u64; 2]; n];
        let mut syn = vec![[0u32; 2]; n];
        let mut fin = vec![[0u32; 2]; n];
        let mut rst = vec![[0u32; 2]; n];
        let mut first = vec![u64::MAX; n];
        let mut last = vec![0u64; n];
        for s in &g.frames {
            let c = s.conn as usize;
            let d = dir(&s.frame, &g.truths[c]);
            packets[c][d] += 1;
            bytes[c][d] += u64::from(s.frame.payload_len);
            syn[c][d] += u32::from(s.frame.flags & SYN != 0);
            fin[c][d] += u32::from(s.frame.flags & FIN != 0);
            rst[c][d] += u32::from(s.frame.flags & RST != 0);
            first[c] = first[c].min(s.ts_ns);
            last[c] = last[c].max(s.ts_ns);
        }
        let mut closes = HashSet::new();
        for (c, t) in g.truths.iter().enumerate() {
            assert_eq!(t.packets, (packets[c][0], packets[c][1]), "{t:?}");
            assert_eq!(t.payload_bytes, (bytes[c][0], bytes[c][1]), "{t:?}");
            assert_eq!(t.syn, (syn[c][0], syn[c][1]));
            assert_eq!(t.fin, (fin[c][0], fin[c][1]));
            assert_eq!(t.rst, (rst[c][0], rst[c][1]));
            assert_eq!((t.first_ns, t.last_ns), (first[c], last[c]));
            assert_eq!(t.syn_retransmits, t.syn.0 - 1);
            assert!(t.retransmits.0 >= t.fast_retransmits.0 + t.spurious_retransmits.0);
            assert!(t.retransmits.1 >= t.fast_retransmits.1 + t.spurious_retransmits.1);
            assert!(t.retransmits.0 >= t.syn_retransmits);
            assert!(t.retransmits.1 >= t.synack_retransmits);
            // A fast retransmission follows at least three duplicate ACKs from the peer.
            assert!(t.dup_acks.1 >= 3 * t.fast_retransmits.0);
            assert!(t.dup_acks.0 >= 3 * t.fast_retransmits.1);
            match t.close {
                "refused" => assert_eq!((t.syn_synack_ns, t.packets.1, t.rst.1), (None, 1, 1)),
                "unanswered" => assert_eq!((t.syn_synack_ns, t.packets.1), (None, 0)),
                _ => {
                    let (a, b, total) = (t.syn_synack_ns, t.synack_ack_ns, t.total_ns);
                    if t.synack_retransmits == 0 {
                        assert_eq!(total, Some(a.unwrap() + b.unwrap()));
                    } else {
                        assert!(total > Some(a.unwrap() + b.unwrap()));
                    }
                }
            }
            assert_eq!(t.fin_first.is_some(), t.close == "fin");
            closes.insert(t.close);
        }
        for close in [
            "fin",
            "rst_client",
            "rst_server",
            "refused",
            "unanswered",
            "capture_end",
        ] {
            assert!(closes.contains(close), "no {close} in the mixed scenario");
        }
    }

    #[test]
    fn features_come_in_the_counts_asked_for() {
        let sc = Scenario {
            connections: 50,
            fast_retransmits: Feature::every(2..=2),
            timeout_retransmits: Feature::every(1..=1),
            spurious_retransmits: Feature::every(1..=1),
            out_of_order: Feature::every(3..=3),
            zero_window: Feature::every(1..=1),
            zero_window_probes: 2..=2,
            syn_retransmits: Feature::every(2..=2),
            synack_retransmits: Feature::every(1..=1),
            syn_synack_ns: 2 * MS..=10 * MS,
            ..Scenario::default()
        };
        for t in sc.generate().truths {
            let sum = |p: (u32, u32)| p.0 + p.1;
            assert_eq!(sum(t.fast_retransmits), 2);
            assert_eq!(sum(t.spurious_retransmits), 1);
            assert_eq!(sum(t.out_of_order), 3);
            assert_eq!(sum(t.zero_window_probes), 2);
            assert_eq!(sum(t.zero_window), 3);
            assert_eq!((t.syn_retransmits, t.synack_retransmits), (2, 1));
            assert_eq!(sum(t.retransmits), 2 + 1 + 1 + 2 + 1);
        }
    }

    #[test]
    fn wrappings_come_in_their_shares_and_keep_to_their_connection() {
        let sc = Scenario {
            connections: 2100,
            encapsulation: EncapMix {
                vxlan: 100,
                geneve: 100,
                gre: 100,
                erspan: 100,
                ip_in_ip: 100,
                mpls: 100,
                pppoe: 100,
            },
            ..Scenario::mixed(5, 2100)
        };
        let g = sc.generate();
        let mut per_kind: HashMap<&str, usize> = HashMap::new();
        for t in &g.truths {
            *per_kind
                .entry(t.wrap.as_ref().map_or("plain", Wrap::name))
                .or_default() += 1;
        }
        // 10% each, the rest (30%) plain.
        for (kind, n) in &per_kind {
            let want = if *kind == "plain" { 500..800 } else { 150..280 };
            assert!(want.contains(n), "{kind}: {n} of 2100");
        }
        assert_eq!(per_kind.len(), 8, "{per_kind:?}");
        for s in &g.frames {
            let t = &g.truths[s.conn as usize];
            let from_client = dir(&s.frame, t) == 0;
            match (s.frame.wrap, t.wrap) {
                (None, None) => {}
                // Tunnel ends swap with the direction; a mirror session sends both alike.
                (Some(Wrap::Gre { outer: a, .. }), Some(Wrap::Gre { outer: b, .. }))
                | (Some(Wrap::IpInIp { outer: a }), Some(Wrap::IpInIp { outer: b })) => {
                    assert_eq!((a.src, a.dst) == (b.src, b.dst), from_client)
                }
                (Some(Wrap::Erspan { session: a, .. }), Some(Wrap::Erspan { session: b, .. })) => {
                    assert_eq!(a, b)
                }
                (Some(a), Some(b)) => assert_eq!(a, b),
                other => panic!("{other:?}"),
            }
        }
        let without = Scenario::mixed(5, 2100).generate();
        for (a, b) in g.truths.iter().zip(&without.truths) {
            assert_eq!(
                (&a.client, &a.server, a.packets),
                (&b.client, &b.server, b.packets)
            );
        }
    }

    #[test]
    fn refused_and_unanswered_shares() {
        let sc = Scenario {
            connections: 2000,
            refused_per_mille: 250,
            unanswered_per_mille: 250,
            ..Scenario::default()
        };
        let truths = sc.generate().truths;
        let count = |c: &str| truths.iter().filter(|t| t.close == c).count();
        assert!((400..600).contains(&count("refused")));
        assert!((400..600).contains(&count("unanswered")));
    }

    #[test]
    fn addresses_are_documentation_ranges_and_unique() {
        let g = Scenario::mixed(9, 3000).generate();
        let doc = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                matches!(o[..3], [192, 0, 2] | [198, 51, 100] | [203, 0, 113])
            }
            IpAddr::V6(v6) => v6.segments()[..2] == [0x2001, 0xdb8],
        };
        let mut pairs = HashSet::new();
        for t in &g.truths {
            assert!(doc(t.client.ip()) && doc(t.server.ip()));
            assert!(pairs.insert((t.client, t.server)));
        }
        assert!(g
            .frames
            .iter()
            .all(|s| doc(s.frame.src) && doc(s.frame.dst)));
        assert!(g.truths.iter().any(|t| t.client.is_ipv6()));
        assert!(g.frames.iter().any(|s| s.frame.vlan.is_some()));
    }

    #[test]
    fn no_sequence_or_ack_number_is_zero() {
        let g = Scenario::mixed(13, 2000).generate();
        for s in &g.frames {
            let f = &s.frame;
            if f.flags & RST == 0 {
                assert_ne!(f.seq, 0);
                assert_ne!(f.seq.wrapping_add(f.payload_len), 0);
            }
            if f.flags & ACK != 0 {
                assert_ne!(f.ack, 0);
            }
        }
    }

    #[test]
    fn some_sequence_numbers_wrap() {
        let g = Scenario {
            seq_wrap_per_mille: 1000,
            ..Scenario::mixed(17, 200)
        }
        .generate();
        let mut span = vec![[(u32::MAX, 0u32); 2]; g.truths.len()];
        for s in &g.frames {
            let c = s.conn as usize;
            let d = dir(&s.frame, &g.truths[c]);
            if s.frame.flags & RST == 0 {
                let (lo, hi) = &mut span[c][d];
                (*lo, *hi) = ((*lo).min(s.frame.seq), (*hi).max(s.frame.seq));
            }
        }
        let wrapped = span
            .iter()
            .flatten()
            .filter(|(lo, hi)| hi.wrapping_sub(*lo) > 1 << 31);
        assert!(wrapped.count() > 100);
    }

    /// The truth's RTT samples are the delays the model applied: on clean connections each
    /// server-leg sample is the server's leg plus its 0–500 µs answer delay, each client-leg
    /// sample the client's leg; timestamps add at most the 1 ms clock tick and the flight;
    /// delayed ACKs add their 40 ms timer to an odd last segment's.
    #[test]
    fn latency_truth_is_the_delays_applied() {
        for delayed_acks_per_mille in [0, 1000] {
            let sc = Scenario {
                connections: 400,
                delayed_acks_per_mille,
                response_segments: 0..=6,
                ..Scenario::default()
            };
            let (mut by_ts, mut by_seq, mut late) = (0, 0, 0);
            for t in sc.generate().truths {
                let (ls, lc) = (t.syn_synack_ns.unwrap(), t.synack_ack_ns.unwrap());
                let l = &t.latency;
                // The handshake gives one sample per leg at least.
                assert!(
                    !l.server_leg.is_empty() && !l.client_leg.is_empty(),
                    "{t:?}"
                );
                assert!(l.from_timestamps != l.from_seq_ack);
                // The slack timestamps add: a tick, and the flight before the echoed segment.
                let (tick_s, tick_c) = if l.from_timestamps {
                    by_ts += 1;
                    (MS + 50 * US, MS + 250 * US)
                } else {
                    by_seq += 1;
                    (0, 0)
                };
                let timer = [0, DELAYED_ACK];
                let in_flight = if delayed_acks_per_mille > 0 {
                    20 * US + 1
                } else {
                    0
                };
                for &ns in &l.server_leg {
                    let ok = timer
                        .iter()
                        .any(|&d| (ls + d..=ls + d + 500 * US + tick_s).contains(&ns));
                    assert!(ok, "server leg {ns} for {ls}: {t:?}");
                    late += u64::from(ns >= ls + DELAYED_ACK);
                }
                for &ns in &l.client_leg {
                    let ok = timer
                        .iter()
                        .any(|&d| (lc + d..=lc + d + in_flight + tick_c).contains(&ns));
                    assert!(ok, "client leg {ns} for {lc}: {t:?}");
                    late += u64::from(ns >= lc + DELAYED_ACK);
                }
                for &ns in &l.response {
                    assert!(ns >= ls, "response {ns} for {ls}");
                }
            }
            assert!(by_ts > 100 && by_seq > 100, "{by_ts} {by_seq}");
            assert_eq!(late > 0, delayed_acks_per_mille > 0, "{late}");
        }
    }

    #[test]
    fn rng_ranges_stay_inside() {
        let mut rng = Rng::new(42);
        for _ in 0..10_000 {
            assert!((3..=9).contains(&rng.range(&(3..=9))));
            assert!(rng.below(5) < 5);
        }
        assert_eq!(rng.range(&(7..=7)), 7);
        let _ = rng.range(&(0..=u64::MAX));
    }
}
