//! Bounded "top N" counting (the space-saving algorithm of Metwally et al.).
//!
//! Counting every distinct missed path exactly would grow with the log —
//! bots alone produce millions of distinct URLs. Space-saving keeps a fixed
//! number of counters: a new key takes over the smallest counter and
//! inherits its count as a known over-estimate. Keys seen more often than
//! `total / capacity` are guaranteed present, counts are exact while
//! distinct keys fit, and slots and key buffers are reused, so a steady
//! stream of new keys allocates nothing.

/// Longest key kept; longer paths are cut (prewarm candidates are short).
pub const MAX_KEY: usize = 256;

const EMPTY: u32 = u32::MAX;

/// A space-saving summary of at most `capacity` keys.
#[derive(Debug, Clone)]
pub struct TopN {
    capacity: usize,
    keys: Vec<Vec<u8>>,
    hashes: Vec<u64>,
    counts: Vec<u64>,
    overcounts: Vec<u64>,
    /// Min-heap of slots by count, and each slot's place in it.
    heap: Vec<u32>,
    place: Vec<u32>,
    /// Open-addressing table of slots (linear probing), twice the capacity.
    table: Vec<u32>,
}

/// One counted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// The key (a path, possibly cut to [`MAX_KEY`] bytes).
    pub key: Vec<u8>,
    /// Its count; may over-estimate by up to `overcount`.
    pub count: u64,
    /// How much of `count` may belong to keys it displaced.
    pub overcount: u64,
}

fn hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = key.len() as u64;
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ word).wrapping_mul(K);
    }
    let mut tail = 0u64;
    for (i, &b) in chunks.remainder().iter().enumerate() {
        tail |= u64::from(b) << (8 * i);
    }
    h = (h.rotate_left(5) ^ tail).wrapping_mul(K);
    h ^ (h >> 29)
}

impl TopN {
    /// A summary keeping `capacity` (≥ 1) counters.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let table_size = (capacity * 2).next_power_of_two();
        TopN {
            capacity,
            keys: Vec::with_capacity(capacity),
            hashes: Vec::with_capacity(capacity),
            counts: Vec::with_capacity(capacity),
            overcounts: Vec::with_capacity(capacity),
            heap: Vec::with_capacity(capacity),
            place: Vec::with_capacity(capacity),
            table: vec![EMPTY; table_size],
        }
    }

    fn mask(&self) -> usize {
        self.table.len() - 1
    }

    /// Table position holding `key`, or the empty position where it would go.
    fn probe(&self, key: &[u8], h: u64) -> (usize, bool) {
        let mut at = h as usize & self.mask();
        loop {
            let slot = self.table[at];
            if slot == EMPTY {
                return (at, false);
            }
            let s = slot as usize;
            if self.hashes[s] == h && self.keys[s] == key {
                return (at, true);
            }
            at = (at + 1) & self.mask();
        }
    }

    /// Count one occurrence of `key`.
    #[inline]
    pub fn add(&mut self, key: &[u8]) {
        self.add_count(key, 1, 0);
    }

    fn add_count(&mut self, key: &[u8], count: u64, overcount: u64) {
        let key = &key[..key.len().min(MAX_KEY)];
        let h = hash(key);
        let (at, found) = self.probe(key, h);
        if found {
            let slot = self.table[at] as usize;
            self.counts[slot] += count;
            self.overcounts[slot] += overcount;
            self.sift_down(self.place[slot] as usize);
            return;
        }
        if self.keys.len() < self.capacity {
            let slot = self.keys.len();
            self.keys.push(key.to_vec());
            self.hashes.push(h);
            self.counts.push(count);
            self.overcounts.push(overcount);
            self.place.push(self.heap.len() as u32);
            self.heap.push(slot as u32);
            self.table[at] = slot as u32;
            self.sift_up(self.heap.len() - 1);
            return;
        }
        // Take over the smallest counter.
        let slot = self.heap[0] as usize;
        self.unlink(slot);
        let inherited = self.counts[slot];
        self.keys[slot].clear();
        self.keys[slot].extend_from_slice(key);
        self.hashes[slot] = h;
        self.counts[slot] = inherited + count;
        self.overcounts[slot] = inherited + overcount;
        let (at, _) = self.probe(key, h);
        self.table[at] = slot as u32;
        self.sift_down(0);
    }

    /// Remove `slot` from the table (backward-shift deletion keeps linear
    /// probing correct without tombstones).
    fn unlink(&mut self, slot: usize) {
        let mask = self.mask();
        let mut hole = self.hashes[slot] as usize & mask;
        while self.table[hole] != slot as u32 {
            hole = (hole + 1) & mask;
        }
        let mut at = (hole + 1) & mask;
        loop {
            let moving = self.table[at];
            if moving == EMPTY {
                break;
            }
            let home = self.hashes[moving as usize] as usize & mask;
            // Move the entry into the hole unless its home lies in (hole, at].
            let distance_home = at.wrapping_sub(home) & mask;
            let distance_hole = at.wrapping_sub(hole) & mask;
            if distance_home >= distance_hole {
                self.table[hole] = moving;
                hole = at;
            }
            at = (at + 1) & mask;
        }
        self.table[hole] = EMPTY;
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.place[self.heap[a] as usize] = a as u32;
        self.place[self.heap[b] as usize] = b as u32;
    }

    fn count_at(&self, position: usize) -> u64 {
        self.counts[self.heap[position] as usize]
    }

    fn sift_up(&mut self, mut position: usize) {
        while position > 0 {
            let parent = (position - 1) / 2;
            if self.count_at(parent) <= self.count_at(position) {
                break;
            }
            self.swap(parent, position);
            position = parent;
        }
    }

    fn sift_down(&mut self, mut position: usize) {
        loop {
            let (left, right) = (2 * position + 1, 2 * position + 2);
            let mut smallest = position;
            if left < self.heap.len() && self.count_at(left) < self.count_at(smallest) {
                smallest = left;
            }
            if right < self.heap.len() && self.count_at(right) < self.count_at(smallest) {
                smallest = right;
            }
            if smallest == position {
                return;
            }
            self.swap(position, smallest);
            position = smallest;
        }
    }

    /// Whether every counter is in use (later keys displace others).
    pub fn is_full(&self) -> bool {
        self.keys.len() == self.capacity
    }

    fn min_count(&self) -> u64 {
        if self.is_full() { self.count_at(0) } else { 0 }
    }

    /// Fold `other` in. A key only one side counted may have occurred up to
    /// the other side's smallest count there; that goes into its overcount.
    pub fn merge(&mut self, other: &TopN) {
        let (mine_min, theirs_min) = (self.min_count(), other.min_count());
        let mut combined: Vec<Counted> = Vec::with_capacity(self.keys.len() + other.keys.len());
        let mut other_seen = vec![false; other.keys.len()];
        for slot in 0..self.keys.len() {
            let key = &self.keys[slot];
            let (at, found) = other.probe(key, self.hashes[slot]);
            let (count, overcount) = if found {
                let theirs = other.table[at] as usize;
                other_seen[theirs] = true;
                (other.counts[theirs], other.overcounts[theirs])
            } else {
                (theirs_min, theirs_min)
            };
            combined.push(Counted {
                key: key.clone(),
                count: self.counts[slot] + count,
                overcount: self.overcounts[slot] + overcount,
            });
        }
        for (slot, seen) in other_seen.into_iter().enumerate() {
            if !seen {
                combined.push(Counted {
                    key: other.keys[slot].clone(),
                    count: other.counts[slot] + mine_min,
                    overcount: other.overcounts[slot] + mine_min,
                });
            }
        }
        combined.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        combined.truncate(self.capacity);
        let mut merged = TopN::new(self.capacity);
        for counted in combined {
            merged.add_count(&counted.key, counted.count, counted.overcount);
        }
        *self = merged;
    }

    /// The `n` largest counts, largest first (ties by key).
    pub fn top(&self, n: usize) -> Vec<Counted> {
        let mut all: Vec<Counted> = (0..self.keys.len())
            .map(|slot| Counted {
                key: self.keys[slot].clone(),
                count: self.counts[slot],
                overcount: self.overcounts[slot],
            })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        all.truncate(n);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn exact_while_the_keys_fit() {
        let mut top = TopN::new(8);
        for key in ["/a", "/b", "/a", "/c", "/a", "/b"] {
            top.add(key.as_bytes());
        }
        let got = top.top(2);
        assert_eq!(
            got[0],
            Counted {
                key: b"/a".to_vec(),
                count: 3,
                overcount: 0
            }
        );
        assert_eq!(
            got[1],
            Counted {
                key: b"/b".to_vec(),
                count: 2,
                overcount: 0
            }
        );
    }

    #[test]
    fn heavy_keys_survive_a_flood_of_one_off_keys() {
        let mut top = TopN::new(16);
        let mut exact: HashMap<Vec<u8>, u64> = HashMap::new();
        for i in 0..20_000u64 {
            let key = if i % 4 == 0 {
                format!("/hot/{}", i % 3)
            } else {
                format!("/noise/{i}")
            };
            *exact.entry(key.clone().into_bytes()).or_default() += 1;
            top.add(key.as_bytes());
        }
        let got = top.top(3);
        let mut keys: Vec<_> = got.iter().map(|c| c.key.clone()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [b"/hot/0".to_vec(), b"/hot/1".to_vec(), b"/hot/2".to_vec()]
        );
        for counted in got {
            let truth = exact[&counted.key];
            assert!(counted.count >= truth && counted.count - counted.overcount <= truth);
        }
    }

    #[test]
    fn table_stays_consistent_under_churn() {
        let mut top = TopN::new(3);
        for i in 0..1000u32 {
            top.add(format!("/k{}", i % 7).as_bytes());
            for slot in 0..top.keys.len() {
                let (at, found) = top.probe(&top.keys[slot], top.hashes[slot]);
                assert!(found);
                assert_eq!(top.table[at] as usize, slot);
            }
        }
        assert_eq!(top.table.iter().filter(|&&s| s != EMPTY).count(), 3);
    }

    #[test]
    fn merge_combines_counts() {
        let (mut a, mut b) = (TopN::new(4), TopN::new(4));
        for _ in 0..5 {
            a.add(b"/x");
        }
        for _ in 0..3 {
            b.add(b"/x");
            b.add(b"/y");
        }
        a.merge(&b);
        let got = a.top(2);
        assert_eq!(got[0].key, b"/x");
        assert_eq!(got[0].count, 8);
        assert_eq!(got[1].count, 3);
    }

    #[test]
    fn long_keys_are_cut() {
        let mut top = TopN::new(2);
        top.add(&[b'a'; 1000]);
        assert_eq!(top.top(1)[0].key.len(), MAX_KEY);
    }
}
