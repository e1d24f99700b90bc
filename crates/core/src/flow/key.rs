//! Direction-independent flow identity and the symmetric hash that shards flows over workers.

use std::hash::Hasher;

use std::sync::OnceLock;

use foldhash::fast::{FoldHasher, SeedableRandomState};
use foldhash::SharedSeed;

use crate::decode::{Addr, Encap, PacketRecord, Tunnel};

/// Which tunnel ids tell flows apart (`flow_table.key_tunnel`, docs/decode.md). The innermost
/// TCP/IP tuple is always the key; a tunnel id is added to it only when asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TunnelKeying {
    /// The inner tuple only (the default, as tshark's streams): a connection is never split,
    /// even where the two directions travel under different VNIs (EVPN asymmetric routing,
    /// the tcpdump project's GENEVE capture). Copies of one connection arriving through
    /// several tunnels are one flow, and each later copy of a segment counts as a
    /// retransmission.
    #[default]
    None,
    /// VXLAN and GENEVE VNIs are part of the key: overlapping tenant address spaces stay
    /// apart, and one connection mirrored plainly and under two VNIs (two cloud mirror
    /// sessions) is three exact flows. Right where both directions carry the same VNI (cloud
    /// traffic mirroring, symmetric EVPN); where they do not, each direction is a flow.
    Vni,
    /// Every tunnel id: also GRE keys, ERSPAN sessions and GTP-U TEIDs. GTP-U uses a TEID
    /// per direction, so there each direction becomes a flow of its own.
    All,
}

impl TunnelKeying {
    pub fn parse(name: &str) -> Option<TunnelKeying> {
        match name {
            "none" => Some(TunnelKeying::None),
            "vni" => Some(TunnelKeying::Vni),
            "all" => Some(TunnelKeying::All),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TunnelKeying::None => "none",
            TunnelKeying::Vni => "vni",
            TunnelKeying::All => "all",
        }
    }

    /// The tunnel part of a flow key: 0 when this keying ignores the tunnel, else its kind and
    /// id together (ids of different kinds never meet).
    #[inline]
    pub fn key_of(self, tunnel: &Option<Tunnel>) -> u64 {
        let Some(Tunnel {
            kind, id: Some(id), ..
        }) = *tunnel
        else {
            return 0;
        };
        let keyed = match self {
            TunnelKeying::None => false,
            TunnelKeying::Vni => matches!(kind, Encap::Vxlan | Encap::Geneve),
            TunnelKeying::All => true,
        };
        if keyed {
            (u64::from(kind as u8 + 1) << 32) | u64::from(id)
        } else {
            0
        }
    }
}

/// Endpoints in canonical order (`lo` < `hi` comparing address then port), so both directions of a
/// connection produce the same key; and the tunnel that tells it apart, if the keying says so.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct FlowKey {
    pub lo_addr: Addr,
    pub hi_addr: Addr,
    pub lo_port: u16,
    pub hi_port: u16,
    /// [`TunnelKeying::key_of`] of the flow's tunnel; 0 for none.
    pub tunnel: u64,
}

impl FlowKey {
    /// The key of `rec`'s connection and whether `rec` travels from `lo` to `hi`.
    #[inline]
    pub fn of(rec: &PacketRecord, keying: TunnelKeying) -> (FlowKey, bool) {
        let tunnel = if rec.tunnel.is_some() {
            keying.key_of(&rec.tunnel)
        } else {
            0
        };
        // Addresses compared as big-endian integers: the byte order, without a memcmp call.
        let (src, dst) = (
            u128::from_be_bytes(rec.src.0),
            u128::from_be_bytes(rec.dst.0),
        );
        let src_is_lo = (src, rec.sport) <= (dst, rec.dport);
        let key = if src_is_lo {
            FlowKey {
                lo_addr: rec.src,
                hi_addr: rec.dst,
                lo_port: rec.sport,
                hi_port: rec.dport,
                tunnel,
            }
        } else {
            FlowKey {
                lo_addr: rec.dst,
                hi_addr: rec.src,
                lo_port: rec.dport,
                hi_port: rec.sport,
                tunnel,
            }
        };
        (key, src_is_lo)
    }
}

/// The keyed hash of flow keys, shared by the shard choice and every worker's table.
///
/// Flow keys are chosen by whoever sends packets past the tap. With a known hash function an
/// attacker can pick keys that all land on one stretch of a worker's table, turning every
/// lookup into a long scan (measured on the old constant-seed hash: 63x slower analysis from
/// 50,000 crafted SYNs), or that all go to one worker. foldhash keyed with a secret, per-process
/// random key makes the home slot and the worker of a key unpredictable: collisions are only
/// as frequent as for random keys. The table bounds probe runs as well, as a second line.
///
/// The upper 32 bits of the hash pick the worker, the lower bits the table slot, so the two
/// choices stay independent.
#[derive(Clone, Debug)]
pub struct FlowHasher {
    shared: SharedSeed,
    per_hasher: u64,
}

impl FlowHasher {
    /// A hasher with this key: tests and benchmarks that need a known one. A key an attacker
    /// can learn lets them craft colliding flows.
    pub fn with_key(key: [u64; 2]) -> Self {
        FlowHasher {
            shared: SharedSeed::from_u64(key[0]),
            per_hasher: key[1],
        }
    }

    /// A hasher with a fresh random key (std's per-process random hash keys, from the OS).
    pub fn random() -> Self {
        use std::hash::{BuildHasher, RandomState};
        let state = RandomState::new();
        FlowHasher::with_key([state.hash_one(1u8), state.hash_one(2u8)])
    }

    /// Symmetric 64-bit hash: both directions hash alike because the key is canonical.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        let mut h = FoldHasher::with_seed(self.per_hasher, &self.shared);
        h.write_u128(u128::from_ne_bytes(key.lo_addr.0));
        h.write_u128(u128::from_ne_bytes(key.hi_addr.0));
        h.write_u32((u32::from(key.lo_port) << 16) | u32::from(key.hi_port));
        if key.tunnel != 0 {
            h.write_u64(key.tunnel);
        }
        h.finish()
    }

    /// A hasher for the per-server maps, keyed from this key: servers are chosen by whoever
    /// sends SYNs past the tap as much as flows are. The maps need a `'static` shared seed,
    /// so the process keeps one, made from the first key asked.
    pub fn map_state(&self) -> SeedableRandomState {
        static SHARED: OnceLock<SharedSeed> = OnceLock::new();
        let shared = SHARED.get_or_init(|| self.shared.clone());
        SeedableRandomState::with_seed(self.per_hasher ^ 0x005e_77e7, shared)
    }

    /// The hash of `rec`'s inner tuple, for picking its worker ([`shard_of`]): the tunnel is
    /// left out, so copies of one connection under several tunnels meet in one worker.
    #[inline]
    pub fn shard_hash(&self, rec: &PacketRecord) -> u64 {
        self.hash(&FlowKey::of(rec, TunnelKeying::None).0)
    }
}

impl Default for FlowHasher {
    /// A random key: nothing gets a known key by accident.
    fn default() -> Self {
        FlowHasher::random()
    }
}

/// The worker that owns the flow whose hash is `hash` (its upper 32 bits decide).
#[inline]
pub fn shard_of(hash: u64, workers: usize) -> usize {
    (((hash >> 32) * workers as u64) >> 32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> PacketRecord {
        PacketRecord {
            src: Addr::from_v4(src),
            dst: Addr::from_v4(dst),
            sport,
            dport,
            ..PacketRecord::default()
        }
    }

    #[test]
    fn both_directions_share_key_and_hash() {
        let hasher = FlowHasher::random();
        let a = rec([10, 0, 0, 1], 51234, [10, 0, 0, 2], 443);
        let b = rec([10, 0, 0, 2], 443, [10, 0, 0, 1], 51234);
        let (ka, a_lo) = FlowKey::of(&a, TunnelKeying::Vni);
        let (kb, b_lo) = FlowKey::of(&b, TunnelKeying::Vni);
        assert_eq!(ka, kb);
        assert_ne!(a_lo, b_lo);
        assert_eq!(hasher.hash(&ka), hasher.hash(&kb));
        assert_eq!(hasher.shard_hash(&a), hasher.shard_hash(&b));
    }

    #[test]
    fn ports_and_the_key_matter() {
        let hasher = FlowHasher::with_key([1, 2]);
        let a = FlowKey::of(
            &rec([10, 0, 0, 1], 1000, [10, 0, 0, 2], 80),
            TunnelKeying::Vni,
        )
        .0;
        let b = FlowKey::of(
            &rec([10, 0, 0, 1], 1001, [10, 0, 0, 2], 80),
            TunnelKeying::Vni,
        )
        .0;
        assert_ne!(hasher.hash(&a), hasher.hash(&b));
        assert_ne!(hasher.hash(&a), FlowHasher::with_key([1, 3]).hash(&a));
        assert_ne!(hasher.hash(&a), FlowHasher::with_key([3, 2]).hash(&a));
        // Two random keys differ.
        assert_ne!(FlowHasher::random().hash(&a), FlowHasher::random().hash(&a));
    }

    #[test]
    fn shards_spread_evenly() {
        let hasher = FlowHasher::random();
        let mut counts = [0u32; 4];
        for port in 0..40_000u16 {
            let r = rec([10, 0, 0, 1], port, [10, 0, 0, 2], 80);
            counts[shard_of(hasher.shard_hash(&r), 4)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "uneven shards: {counts:?}");
        }
    }

    #[test]
    fn flows_that_an_xor_fold_pins_to_one_worker_spread_over_all() {
        // Every flow here has the same address XOR and port XOR: a hash folding the two
        // endpoints by XOR (symmetric, but unkeyed structure) sends them all to one worker.
        let hasher = FlowHasher::random();
        let mut counts = [0u32; 4];
        for n in 0..40_000u32 {
            let [a, b, c, d] = n.to_be_bytes();
            let src = [10, a ^ 1, b, c];
            let dst = [10, a, b, c];
            let port = 1024 + u16::from(d);
            let r = rec(src, port, dst, port ^ 0x0101);
            counts[shard_of(hasher.shard_hash(&r), 4)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "uneven shards: {counts:?}");
        }
    }
}
