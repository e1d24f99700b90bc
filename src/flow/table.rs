//! Fixed-capacity flow table owned by one worker: an open-addressing index (linear probing,
//! backward-shift deletion, so no tombstones) over a slab of entries with a free list.
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

/// Returned by [`FlowTable::insert`] when every entry is in use.
#[derive(Debug, PartialEq, Eq)]
pub struct TableFull;

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
        loop {
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
    }

    /// Inserts a new entry (the caller has checked that `key` is absent) and returns its index.
    #[inline]
    pub fn insert(&mut self, key: FlowKey, hash: u64, value: V) -> Result<u32, TableFull> {
        let idx = match self.free.pop() {
            Some(idx) => {
                self.keys[idx as usize] = key;
                self.values[idx as usize] = value;
                idx
            }
            None if self.values.len() < self.capacity => {
                self.keys.push(key);
                self.values.push(value);
                (self.values.len() - 1) as u32
            }
            None => return Err(TableFull),
        };
        self.live[idx as usize] = true;
        let mut pos = hash as usize & self.mask;
        while self.index[pos] != 0 {
            pos = (pos + 1) & self.mask;
        }
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
mod tests {
    use super::*;
    use crate::decode::Addr;

    fn key(n: u32) -> FlowKey {
        FlowKey {
            lo_addr: Addr::from_v4(n.to_be_bytes()),
            hi_addr: Addr::from_v4([192, 0, 2, 1]),
            lo_port: (n % 60000) as u16,
            hi_port: 80,
        }
    }

    #[test]
    fn insert_find_remove_many() {
        let mut t: FlowTable<u32> = FlowTable::with_capacity(1000);
        for n in 0..1000 {
            let k = key(n);
            assert_eq!(t.find(&k, k.hash()), None);
            let idx = t.insert(k, k.hash(), n).unwrap();
            assert_eq!(*t.get(idx), n);
        }
        assert!(t.is_full());
        let k = key(5000);
        assert_eq!(t.insert(k, k.hash(), 0), Err(TableFull));
        // Remove every third, then all others must still be found.
        for n in (0..1000).step_by(3) {
            let k = key(n);
            let idx = t.find(&k, k.hash()).unwrap();
            t.remove(idx, k.hash());
        }
        for n in 0..1000 {
            let k = key(n);
            let found = t.find(&k, k.hash()).map(|i| *t.get(i));
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
        let mut t: FlowTable<u32> = FlowTable::with_capacity(12);
        let keys: Vec<_> = (0..12).map(key).collect();
        for (i, k) in keys.iter().enumerate() {
            t.insert(*k, k.hash(), i as u32).unwrap();
        }
        for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
            let idx = t.find(k, k.hash()).unwrap();
            assert_eq!(*t.get(idx), i as u32);
            t.remove(idx, k.hash());
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.find(k, k.hash()).is_some(), i % 2 == 0);
        }
    }

    #[test]
    fn neighbours_are_bounded() {
        let mut t: FlowTable<u32> = FlowTable::with_capacity(64);
        for n in 0..64 {
            let k = key(n);
            t.insert(k, k.hash(), n).unwrap();
        }
        assert_eq!(t.neighbours(key(99).hash(), 8).count(), 8);
    }
}
