//! Fixed-capacity flow table owned by one worker: an open-addressing index (linear probing,
//! backward-shift deletion, so no tombstones) over a slab of entries with a free list.
//!
//! Probe runs are bounded: no entry sits more than [`MAX_PROBE`] slots past its home, so a
//! lookup reads at most that many slots whatever the keys. Keys come from the keyed
//! [`FlowHasher`](super::FlowHasher), so runs that long do not happen by chance (at the table's
//! highest load, 3/4, a run of 1024 has a probability of about e^-38 per insert); the bound
//! keeps the worst case linear even for someone who learnt the key. An insert that would go
//! past it is refused ([`InsertError::ProbeLimit`]) and the engine counts the flow's packets.
//!
//! Nothing here allocates after construction. The caller decides what to evict when the table is
//! full ([`FlowTable::neighbours`] offers bounded candidates), so eviction policy stays in the
//! engine and every eviction is counted there.

use super::key::FlowKey;

/// An index slot: upper 32 bits are the low 32 bits of the hash (the home slot derives from them,
/// and they filter key comparisons), lower 32 bits `slab index + 1`; 0 means empty.
type Slot = u64;

pub struct FlowTable<V> {
    index: Vec<Slot>,
    mask: usize,
    capacity: usize,
    /// Entries grow up to `capacity` as flows arrive: the reservation is virtual memory until
    /// used, so a large table costs nothing at start-up.
    keys: Vec<FlowKey>,
    values: Vec<V>,
    live: Vec<bool>,
    /// Entries freed by `remove`, reused before the slab grows.
    free: Vec<u32>,
}

/// Longest probe run: slots a lookup reads at most, and farthest an entry sits from its home.
pub const MAX_PROBE: usize = 1024;

/// Why [`FlowTable::insert`] refused an entry.
#[derive(Debug, PartialEq, Eq)]
pub enum InsertError {
    /// Every entry is in use.
    Full,
    /// The [`MAX_PROBE`] slots from the key's home are all taken.
    ProbeLimit,
}

/// A zeroed vector whose pages are written now. `vec![0; n]` gets lazily zeroed pages from the
/// OS: the first lookup maps the shared zero page, the first insert then replaces it, and that
/// replacement interrupts every other core of a multi-threaded process (a TLB shootdown), on
/// the hot path. Writing once at start-up moves that cost out of it.
fn written_zeros<T: Default + Clone>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    v.resize(n, T::default());
    v
}

impl<V> FlowTable<V> {
    /// A table holding at most `capacity` flows (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, 1 << 31);
        // Load factor at most 3/4 when full keeps linear probe runs short.
        let slots = (capacity + capacity / 3 + 1).next_power_of_two().max(16);
        FlowTable {
            index: written_zeros(slots),
            mask: slots - 1,
            capacity,
            keys: Vec::with_capacity(capacity),
            values: Vec::with_capacity(capacity),
            live: written_zeros(capacity),
            free: Vec::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.values.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_full(&self) -> bool {
        self.free.is_empty() && self.values.len() == self.capacity
    }

    #[inline]
    fn tag(hash: u64) -> u64 {
        hash << 32
    }

    /// The slab index of `key`'s entry.
    #[inline]
    pub fn find(&self, key: &FlowKey, hash: u64) -> Option<u32> {
        let tag = Self::tag(hash);
        let mut pos = hash as usize & self.mask;
        for _ in 0..MAX_PROBE.min(self.index.len()) {
            let slot = self.index[pos];
            if slot == 0 {
                return None;
            }
            if slot & 0xffff_ffff_0000_0000 == tag {
                let idx = (slot as u32).wrapping_sub(1);
                if self.keys[idx as usize] == *key {
                    return Some(idx);
                }
            }
            pos = (pos + 1) & self.mask;
        }
        None
    }

    /// The first empty slot of `hash`'s probe run, if it lies within [`MAX_PROBE`].
    #[inline]
    fn empty_slot(&self, hash: u64) -> Option<usize> {
        let mut pos = hash as usize & self.mask;
        for _ in 0..MAX_PROBE.min(self.index.len()) {
            if self.index[pos] == 0 {
                return Some(pos);
            }
            pos = (pos + 1) & self.mask;
        }
        None
    }

    /// Inserts a new entry (the caller has checked that `key` is absent) and returns its index.
    #[inline]
    pub fn insert(&mut self, key: FlowKey, hash: u64, value: V) -> Result<u32, InsertError> {
        if self.is_full() {
            return Err(InsertError::Full);
        }
        let pos = self.empty_slot(hash).ok_or(InsertError::ProbeLimit)?;
        let idx = match self.free.pop() {
            Some(idx) => {
                self.keys[idx as usize] = key;
                self.values[idx as usize] = value;
                idx
            }
            None => {
                self.keys.push(key);
                self.values.push(value);
                (self.values.len() - 1) as u32
            }
        };
        self.live[idx as usize] = true;
        self.index[pos] = Self::tag(hash) | u64::from(idx + 1);
        Ok(idx)
    }

    /// Removes entry `idx`, whose key hashes to `hash`.
    pub fn remove(&mut self, idx: u32, hash: u64) {
        let wanted = Self::tag(hash) | u64::from(idx + 1);
        let mut pos = hash as usize & self.mask;
        while self.index[pos] != wanted {
            if self.index[pos] == 0 {
                debug_assert!(false, "removing an entry that is not indexed");
                return;
            }
            pos = (pos + 1) & self.mask;
        }
        // Backward-shift: pull later members of the probe run into the hole so lookups that
        // stop at the first empty slot still find them.
        let mut hole = pos;
        let mut next = (hole + 1) & self.mask;
        while self.index[next] != 0 {
            let home = (self.index[next] >> 32) as usize & self.mask;
            // Move `next` into the hole unless its home lies cyclically in (hole, next].
            let dist_hole = hole.wrapping_sub(home) & self.mask;
            let dist_next = next.wrapping_sub(home) & self.mask;
            if dist_hole <= dist_next {
                self.index[hole] = self.index[next];
                hole = next;
            }
            next = (next + 1) & self.mask;
        }
        self.index[hole] = 0;
        self.live[idx as usize] = false;
        self.free.push(idx);
    }

    #[inline]
    pub fn key(&self, idx: u32) -> &FlowKey {
        &self.keys[idx as usize]
    }

    #[inline]
    pub fn get(&self, idx: u32) -> &V {
        &self.values[idx as usize]
    }

    #[inline]
    pub fn get_mut(&mut self, idx: u32) -> &mut V {
        &mut self.values[idx as usize]
    }

    /// Up to `max` live entries stored near `hash`'s home slot: eviction candidates whose cost
    /// to find is bounded, whatever the table's size.
    pub fn neighbours(&self, hash: u64, max: usize) -> impl Iterator<Item = u32> + '_ {
        let start = hash as usize & self.mask;
        (0..self.index.len())
            .map(move |i| self.index[(start + i) & self.mask])
            .filter(|&slot| slot != 0)
            .take(max)
            .map(|slot| (slot as u32).wrapping_sub(1))
    }

    /// Slab indices of all live entries.
    pub fn live_indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.live[..self.values.len()]
            .iter()
            .enumerate()
            .filter(|(_, &l)| l)
            .map(|(i, _)| i as u32)
    }

    /// Bytes of memory the table holds when full, for the per-flow memory figure.
    pub fn memory_bytes(&self) -> usize {
        self.index.len() * std::mem::size_of::<Slot>()
            + self.capacity * (std::mem::size_of::<FlowKey>() + std::mem::size_of::<V>() + 1)
    }
}

#[cfg(test)]
impl<V> FlowTable<V> {
    /// Slots a lookup of `key` reads (1 for a key in its home slot).
    fn probes_to_find(&self, key: &FlowKey, hash: u64) -> usize {
        let idx = self.find(key, hash).expect("key present");
        let wanted = Self::tag(hash) | u64::from(idx + 1);
        let home = hash as usize & self.mask;
        (0..)
            .find(|i| self.index[(home + i) & self.mask] == wanted)
            .expect("indexed")
            + 1
    }
}

#[cfg(test)]
mod tests {
    use super::super::FlowHasher;
    use super::*;
    use crate::decode::Addr;

    fn key(n: u32) -> FlowKey {
        FlowKey {
            lo_addr: Addr::from_v4(n.to_be_bytes()),
            hi_addr: Addr::from_v4([192, 0, 2, 1]),
            lo_port: (n % 60000) as u16,
            hi_port: 80,
            tunnel: 0,
        }
    }

    #[test]
    fn insert_find_remove_many() {
        let h = FlowHasher::random();
        let mut t: FlowTable<u32> = FlowTable::with_capacity(1000);
        for n in 0..1000 {
            let k = key(n);
            assert_eq!(t.find(&k, h.hash(&k)), None);
            let idx = t.insert(k, h.hash(&k), n).unwrap();
            assert_eq!(*t.get(idx), n);
        }
        assert!(t.is_full());
        let k = key(5000);
        assert_eq!(t.insert(k, h.hash(&k), 0), Err(InsertError::Full));
        // Remove every third, then all others must still be found.
        for n in (0..1000).step_by(3) {
            let k = key(n);
            let idx = t.find(&k, h.hash(&k)).unwrap();
            t.remove(idx, h.hash(&k));
        }
        for n in 0..1000 {
            let k = key(n);
            let found = t.find(&k, h.hash(&k)).map(|i| *t.get(i));
            if n % 3 == 0 {
                assert_eq!(found, None, "{n}");
            } else {
                assert_eq!(found, Some(n), "{n}");
            }
        }
        assert_eq!(t.len(), 1000 - 334);
        assert_eq!(t.live_indices().count(), t.len());
    }

    #[test]
    fn colliding_homes_survive_removal() {
        // Same low hash bits: force long probe runs by using a tiny table.
        let h = FlowHasher::random();
        let mut t: FlowTable<u32> = FlowTable::with_capacity(12);
        let keys: Vec<_> = (0..12).map(key).collect();
        for (i, k) in keys.iter().enumerate() {
            t.insert(*k, h.hash(k), i as u32).unwrap();
        }
        for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
            let idx = t.find(k, h.hash(k)).unwrap();
            assert_eq!(*t.get(idx), i as u32);
            t.remove(idx, h.hash(k));
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.find(k, h.hash(k)).is_some(), i % 2 == 0);
        }
    }

    #[test]
    fn neighbours_are_bounded() {
        let h = FlowHasher::random();
        let mut t: FlowTable<u32> = FlowTable::with_capacity(64);
        for n in 0..64 {
            let k = key(n);
            t.insert(k, h.hash(&k), n).unwrap();
        }
        assert_eq!(t.neighbours(h.hash(&key(99)), 8).count(), 8);
    }

    /// Keys whose home slot under `known` lies in the first 8 slots of a table of `slots`
    /// slots: what an attacker who knows the hash key would send.
    fn crafted_keys(known: &FlowHasher, slots: usize, n: usize) -> Vec<FlowKey> {
        (0u32..)
            .map(key)
            .filter(|k| known.hash(k) as usize & (slots - 1) < 8)
            .take(n)
            .collect()
    }

    #[test]
    fn keys_crafted_against_one_key_do_not_collide_under_another() {
        let capacity = 4096;
        let known = FlowHasher::with_key([0x5eed, 0xfeed]);
        let mut attacked: FlowTable<u32> = FlowTable::with_capacity(capacity);
        let slots = attacked.index.len();
        let keys = crafted_keys(&known, slots, 3000);

        // Against the key they were made for, the keys pile up in one run; the run stops at
        // the probe bound, and inserts past it are refused rather than scanning further.
        let mut refused = 0;
        for (n, k) in keys.iter().enumerate() {
            match attacked.insert(*k, known.hash(k), n as u32) {
                Ok(_) => {}
                Err(InsertError::ProbeLimit) => refused += 1,
                Err(InsertError::Full) => panic!("table full at {n}"),
            }
        }
        assert!(refused >= 3000 - MAX_PROBE - 8, "refused {refused}");
        let worst = keys
            .iter()
            .filter(|k| attacked.find(k, known.hash(k)).is_some())
            .map(|k| attacked.probes_to_find(k, known.hash(k)))
            .max()
            .unwrap_or(0);
        assert!((MAX_PROBE - 8..=MAX_PROBE).contains(&worst), "{worst}");

        // Under a different key (the monitor's secret one) the same keys spread like any
        // others: every one fits, and lookups stay short.
        let secret = FlowHasher::with_key([0x5eed, 0xfeee]);
        let mut t: FlowTable<u32> = FlowTable::with_capacity(capacity);
        for (n, k) in keys.iter().enumerate() {
            t.insert(*k, secret.hash(k), n as u32).expect("inserted");
        }
        let probes: Vec<usize> = keys
            .iter()
            .map(|k| t.probes_to_find(k, secret.hash(k)))
            .collect();
        let total: usize = probes.iter().sum();
        let worst = probes.iter().copied().max().unwrap_or(0);
        assert!(worst < 64, "longest lookup {worst} slots");
        assert!(
            total < 3 * keys.len(),
            "{total} slots read for {} keys",
            keys.len()
        );
    }
}
