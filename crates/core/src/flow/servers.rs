//! Per-server aggregation inside one worker. A server is (address, port) of the side that
//! accepted the connection. Flows hold the index of their server entry, so the per-packet path
//! never hashes a server key; lookups happen once per new flow.

use std::collections::HashMap;

use foldhash::fast::SeedableRandomState;

use super::key::FlowHasher;

use crate::decode::Endpoint;
use crate::schema::counters::Counters;
use crate::schema::hist::{FastHist, LatencyHist};

/// Which latency a [`FastHist`] of a server (or of an interval) holds, its index in `fast`.
pub mod fast {
    /// RTT samples answered by the server: tap → server → tap.
    pub const RTT_SERVER_LEG: usize = 0;
    /// RTT samples answered by the client: tap → client → tap.
    pub const RTT_CLIENT_LEG: usize = 1;
    /// Response times of request/response turns.
    pub const RESPONSE: usize = 2;
    pub const COUNT: usize = 3;
}

/// RTT legs and response times as recorded, each allocated on first use.
pub type FastHists = [Option<FastHist>; fast::COUNT];

/// Interval counters and live gauges of one server.
#[derive(Clone, Debug, Default)]
pub struct ServerEntry {
    pub endpoint: Endpoint,
    pub counters: Counters,
    /// Handshake total times completed this interval; allocated on first use.
    pub handshake_total: Option<Box<LatencyHist>>,
    /// RTT legs and response times this interval, recorded on every sampled packet.
    pub fast: FastHists,
    /// Flows of this server now in SYN-sent or SYN-received state.
    pub half_open: u32,
    /// Flows of this server now in the table.
    pub active_flows: u32,
}

/// One server's interval, as a worker hands it to the merger.
#[derive(Clone, Debug)]
pub struct ServerSnapshot {
    pub endpoint: Endpoint,
    /// True for the bucket that collects servers beyond the table's capacity.
    pub overflow: bool,
    pub counters: Counters,
    pub handshake_total: Option<Box<LatencyHist>>,
    pub fast: FastHists,
    pub half_open: u32,
    pub active_flows: u32,
}

/// Index 0 is the overflow bucket: servers seen once the table holds `capacity` entries.
pub const OVERFLOW: u32 = 0;

pub struct ServerTable {
    index: HashMap<Endpoint, u32, SeedableRandomState>,
    entries: Vec<ServerEntry>,
    free: Vec<u32>,
    capacity: usize,
}

impl ServerTable {
    /// A table of at most `capacity` servers, its map keyed by `hasher`'s key.
    pub fn new(capacity: usize, hasher: &FlowHasher) -> Self {
        ServerTable {
            index: HashMap::with_hasher(hasher.map_state()),
            entries: vec![ServerEntry::default()],
            free: Vec::new(),
            capacity: capacity.max(1),
        }
    }

    /// The entry index for `endpoint`, created if needed; the overflow bucket when full.
    pub fn slot(&mut self, endpoint: Endpoint) -> u32 {
        if let Some(&idx) = self.index.get(&endpoint) {
            return idx;
        }
        if self.index.len() >= self.capacity {
            return OVERFLOW;
        }
        let idx = match self.free.pop() {
            Some(idx) => {
                // A freed entry keeps its (drained) fast histograms for the next server.
                let e = &mut self.entries[idx as usize];
                let fast = std::mem::take(&mut e.fast);
                *e = ServerEntry {
                    endpoint,
                    fast,
                    ..ServerEntry::default()
                };
                idx
            }
            None => {
                self.entries.push(ServerEntry {
                    endpoint,
                    ..ServerEntry::default()
                });
                (self.entries.len() - 1) as u32
            }
        };
        self.index.insert(endpoint, idx);
        idx
    }

    #[inline]
    pub fn entry(&mut self, idx: u32) -> &mut ServerEntry {
        &mut self.entries[idx as usize]
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Takes this interval's figures of every server that had any, resets the counters, and
    /// forgets servers with nothing left in the table (no flow refers to them any more). The
    /// fast histograms go with the figures; `spare` (emptied ones) replaces them.
    pub fn take_interval(&mut self, out: &mut Vec<ServerSnapshot>, spare: &mut Vec<FastHist>) {
        for (i, e) in self.entries.iter_mut().enumerate() {
            let overflow = i as u32 == OVERFLOW;
            let in_use = overflow || self.index.get(&e.endpoint) == Some(&(i as u32));
            if !in_use {
                continue;
            }
            if !e.counters.is_zero() || e.half_open > 0 || e.active_flows > 0 {
                let mut fast: FastHists = Default::default();
                for (slot, taken) in e.fast.iter_mut().zip(&mut fast) {
                    if slot.as_ref().is_some_and(|f| !f.is_empty()) {
                        *taken = std::mem::replace(slot, spare.pop());
                    }
                }
                out.push(ServerSnapshot {
                    endpoint: e.endpoint,
                    overflow,
                    counters: e.counters,
                    handshake_total: e.handshake_total.take(),
                    fast,
                    half_open: e.half_open,
                    active_flows: e.active_flows,
                });
                e.counters = Counters::default();
            }
            if !overflow && e.active_flows == 0 {
                self.index.remove(&e.endpoint);
                self.free.push(i as u32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Addr;
    use crate::schema::counters::Counter;

    fn ep(port: u16) -> Endpoint {
        Endpoint {
            addr: Addr::from_v4([10, 0, 0, 7]),
            port,
        }
    }

    #[test]
    fn endpoints_print_like_socket_addresses() {
        assert_eq!(ep(443).to_string(), "10.0.0.7:443");
        let v6 = Endpoint {
            addr: Addr::from_v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]),
            port: 443,
        };
        assert_eq!(v6.to_string(), "[2001:db8::7]:443");
    }

    #[test]
    fn overflow_bucket_takes_servers_beyond_capacity() {
        let mut t = ServerTable::new(2, &FlowHasher::random());
        let a = t.slot(ep(1));
        let b = t.slot(ep(2));
        assert_ne!(a, b);
        assert_eq!(t.slot(ep(3)), OVERFLOW);
        assert_eq!(t.slot(ep(1)), a);
    }

    #[test]
    fn idle_servers_are_reclaimed_after_their_interval_is_taken() {
        let mut t = ServerTable::new(1, &FlowHasher::random());
        let a = t.slot(ep(1));
        t.entry(a).counters.inc(Counter::syn);
        let mut out = Vec::new();
        t.take_interval(&mut out, &mut Vec::new());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].counters.get(Counter::syn), 1);
        assert!(t.is_empty());
        assert_ne!(t.slot(ep(2)), OVERFLOW);
    }
}
