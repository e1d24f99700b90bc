//! Direction-independent flow identity and the symmetric hash that shards flows over workers.

use crate::decode::{Addr, PacketRecord};

/// Endpoints in canonical order (`lo` < `hi` comparing address then port), so both directions of a
/// connection produce the same key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct FlowKey {
    pub lo_addr: Addr,
    pub hi_addr: Addr,
    pub lo_port: u16,
    pub hi_port: u16,
}

impl FlowKey {
    /// The key of `rec`'s connection and whether `rec` travels from `lo` to `hi`.
    #[inline]
    pub fn of(rec: &PacketRecord) -> (FlowKey, bool) {
        let src_is_lo = (rec.src, rec.sport) <= (rec.dst, rec.dport);
        let key = if src_is_lo {
            FlowKey {
                lo_addr: rec.src,
                hi_addr: rec.dst,
                lo_port: rec.sport,
                hi_port: rec.dport,
            }
        } else {
            FlowKey {
                lo_addr: rec.dst,
                hi_addr: rec.src,
                lo_port: rec.dport,
                hi_port: rec.sport,
            }
        };
        (key, src_is_lo)
    }

    /// Symmetric 64-bit hash: both directions hash alike because the key is canonical.
    /// A multiply-xorshift mix is enough here: inputs are attacker-chosen, but a collision only
    /// lengthens one probe sequence of one shard, and the table bounds probe length.
    #[inline]
    pub fn hash(&self) -> u64 {
        let lo = u128::from_ne_bytes(self.lo_addr.0);
        let hi = u128::from_ne_bytes(self.hi_addr.0);
        let ports = (u64::from(self.lo_port) << 16) | u64::from(self.hi_port);
        let mut h = mix(lo as u64 ^ SEED);
        h = mix(h ^ (lo >> 64) as u64);
        h = mix(h ^ hi as u64);
        h = mix(h ^ (hi >> 64) as u64);
        mix(h ^ ports)
    }
}

const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

#[inline]
fn mix(x: u64) -> u64 {
    let m = u128::from(x) * 0xbf58_476d_1ce4_e5b9;
    (m as u64) ^ ((m >> 64) as u64)
}

/// A cheap symmetric hash for picking a flow's worker: XOR folds the two endpoints so either
/// direction gives the same value, and one mix spreads it. Capture computes only this; the
/// worker computes the table's [`FlowKey::hash`] itself.
#[inline]
pub fn shard_hash(rec: &PacketRecord) -> u64 {
    let a = u128::from_ne_bytes(rec.src.0) ^ u128::from_ne_bytes(rec.dst.0);
    let ports = u64::from(rec.sport ^ rec.dport);
    mix((a as u64) ^ ((a >> 64) as u64).rotate_left(17) ^ ports ^ SEED)
}

/// The worker that owns the flow whose [`shard_hash`] is `hash`.
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
        let a = rec([10, 0, 0, 1], 51234, [10, 0, 0, 2], 443);
        let b = rec([10, 0, 0, 2], 443, [10, 0, 0, 1], 51234);
        let (ka, a_lo) = FlowKey::of(&a);
        let (kb, b_lo) = FlowKey::of(&b);
        assert_eq!(ka, kb);
        assert_ne!(a_lo, b_lo);
        assert_eq!(ka.hash(), kb.hash());
        assert_eq!(shard_hash(&a), shard_hash(&b));
    }

    #[test]
    fn ports_matter() {
        let a = FlowKey::of(&rec([10, 0, 0, 1], 1000, [10, 0, 0, 2], 80)).0;
        let b = FlowKey::of(&rec([10, 0, 0, 1], 1001, [10, 0, 0, 2], 80)).0;
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn shards_spread_evenly() {
        let mut counts = [0u32; 4];
        for port in 0..40_000u16 {
            counts[shard_of(shard_hash(&rec([10, 0, 0, 1], port, [10, 0, 0, 2], 80)), 4)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "uneven shards: {counts:?}");
        }
    }
}
