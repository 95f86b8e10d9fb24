//! The near part of the sleep queue (see [`queue`](super::queue)): a calendar of [`SLOTS`]
//! slots of `1 << SHIFT` nanoseconds each, covering a window of virtual time that starts at
//! `base`, the slot of the clock's present.
//!
//! A sleep goes into the slot of its deadline unsorted: onto the front of the slot's list, in
//! one pool of nodes shared by every slot (so the wheel allocates nothing once the pool has
//! grown, and a burst of sleeps in one slot leaves nothing behind). Only the earliest occupied
//! slot is sorted, by deadline and then registration order, into `current`, latest first, so
//! that the earliest entry is popped off the end; a sleep registered into that slot is
//! inserted in its place. A bitmap of the occupied slots finds the next one. With the few
//! entries a slot holds, registering and popping cost a handful of instructions instead of a
//! heap's logarithm of cache misses.

use std::cmp::Reverse;

use super::heap::Entry;

/// Each slot spans `1 << SHIFT` nanoseconds (65.5 µs).
pub(super) const SHIFT: u32 = 16;

/// Slots in the window: with [`SHIFT`], the window spans 2^28 ns (0.27 s) of virtual time.
pub(super) const SLOTS: u64 = 4096;

const MASK: u64 = SLOTS - 1;

const WORDS: usize = SLOTS as usize / 64;

/// A value `sorted` never takes: no slot is sorted.
const NONE: u64 = u64::MAX;

/// The end of a list.
const NIL: u32 = u32::MAX;

struct Node {
    entry: Entry,
    /// The next node of the same list (a slot's, or the free list).
    next: u32,
}

pub(super) struct Wheel {
    /// The first node of the list of each slot: absolute slot `s` (deadline `>> SHIFT`) is
    /// `heads[s % SLOTS]`, and every entry's slot is in `base..base + SLOTS`. Empty until the
    /// first push.
    heads: Vec<u32>,
    nodes: Vec<Node>,
    /// The first free node.
    free: u32,
    /// Bit `i` is set when slot `i` holds an entry (in its list, or in `current`).
    occupied: Box<[u64; WORDS]>,
    /// The first absolute slot of the window.
    base: u64,
    /// No entry is in a slot in `base..cursor`.
    cursor: u64,
    /// The absolute slot whose entries are in `current` (its list is then empty), or [`NONE`].
    sorted: u64,
    /// The entries of slot `sorted`, latest first.
    current: Vec<Entry>,
    len: usize,
}

impl Wheel {
    pub(super) fn new() -> Self {
        Wheel {
            heads: Vec::new(),
            nodes: Vec::new(),
            free: NIL,
            occupied: Box::new([0; WORDS]),
            base: 0,
            cursor: 0,
            sorted: NONE,
            current: Vec::new(),
            len: 0,
        }
    }

    /// Entries held, stale ones included.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The first absolute slot of the window.
    pub(super) fn base(&self) -> u64 {
        self.base
    }

    /// Whether an entry due at `at` belongs in the window (an entry due before it is kept in
    /// its first slot).
    #[inline]
    pub(super) fn covers(&self, at: u64) -> bool {
        (at >> SHIFT) < self.base + SLOTS
    }

    /// Adds an entry that [`covers`](Wheel::covers) accepts.
    pub(super) fn push(&mut self, entry: Entry) {
        debug_assert!(self.covers(entry.at));
        let slot = (entry.at >> SHIFT).max(self.base);
        if slot == self.sorted {
            let key = entry.key();
            let at = self.current.partition_point(|other| other.key() > key);
            self.current.insert(at, entry);
        } else {
            self.link(slot, entry);
        }
        let index = (slot & MASK) as usize;
        self.occupied[index / 64] |= 1 << (index % 64);
        self.cursor = self.cursor.min(slot);
        self.len += 1;
    }

    /// The earliest entry `live` accepts; drops every entry before it that `live` refuses.
    pub(super) fn first(&mut self, live: impl Fn(&Entry) -> bool) -> Option<Entry> {
        loop {
            let slot = self.first_occupied()?;
            self.cursor = slot;
            if self.sorted != slot {
                self.sort(slot);
            }
            while let Some(last) = self.current.last() {
                if live(last) {
                    return Some(*last);
                }
                self.current.pop();
                self.len -= 1;
            }
            self.clear(slot);
        }
    }

    /// Removes the entry [`first`](Wheel::first) just returned.
    pub(super) fn pop_first(&mut self) -> Entry {
        debug_assert_eq!(self.sorted, self.cursor);
        let entry = self.current.pop().expect("pop_first after first");
        if self.current.is_empty() {
            self.clear(self.cursor);
        }
        self.len -= 1;
        entry
    }

    /// Moves the window on to start at absolute slot `base`, no earlier than it starts now.
    /// No entry may be in a slot before `base`: it would alias a slot at the window's end.
    pub(super) fn rebase(&mut self, base: u64) {
        debug_assert!(base >= self.base);
        debug_assert!(self.first_occupied().is_none_or(|first| first >= base));
        self.base = base;
        self.cursor = self.cursor.max(base);
    }

    /// Keeps the entries `keep` accepts (the sorted slot stays sorted; lists are unordered).
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        if self.len == 0 {
            return;
        }
        let before = self.current.len();
        self.current.retain(&mut keep);
        self.len -= before - self.current.len();
        for word_index in 0..WORDS {
            let mut bits = self.occupied[word_index];
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let index = word_index * 64 + bit;
                // Unlink the refused nodes of this slot's list.
                let mut link = self.heads.get(index).copied().unwrap_or(NIL);
                let mut kept = NIL;
                while link != NIL {
                    let next = self.nodes[link as usize].next;
                    if keep(&self.nodes[link as usize].entry) {
                        self.nodes[link as usize].next = kept;
                        kept = link;
                    } else {
                        self.release(link);
                        self.len -= 1;
                    }
                    link = next;
                }
                if let Some(head) = self.heads.get_mut(index) {
                    *head = kept;
                }
                let sorted_here = self.sorted != NONE && (self.sorted & MASK) as usize == index;
                if kept == NIL && (!sorted_here || self.current.is_empty()) {
                    self.occupied[word_index] &= !(1 << bit);
                }
            }
        }
    }

    /// Puts `entry` on the front of `slot`'s list.
    fn link(&mut self, slot: u64, entry: Entry) {
        if self.heads.is_empty() {
            self.heads = vec![NIL; SLOTS as usize];
        }
        let index = (slot & MASK) as usize;
        let next = self.heads[index];
        let node = match self.free {
            NIL => {
                let node = u32::try_from(self.nodes.len())
                    .expect("fewer than 2^32 sleeps pending on one ManualTimer");
                self.nodes.push(Node { entry, next });
                node
            }
            node => {
                self.free = self.nodes[node as usize].next;
                self.nodes[node as usize] = Node { entry, next };
                node
            }
        };
        self.heads[index] = node;
    }

    fn release(&mut self, node: u32) {
        self.nodes[node as usize].next = self.free;
        self.free = node;
    }

    /// Makes `slot` the sorted one: its list moves into `current`, sorted, and the entries of
    /// the slot sorted before (if any are left: an earlier slot came up) go back to its list.
    fn sort(&mut self, slot: u64) {
        if !self.current.is_empty() {
            let (old, entries) = (self.sorted, std::mem::take(&mut self.current));
            for &entry in &entries {
                self.link(old, entry);
            }
            self.current = entries;
            self.current.clear();
        }
        let index = (slot & MASK) as usize;
        let mut link = std::mem::replace(&mut self.heads[index], NIL);
        while link != NIL {
            let node = &self.nodes[link as usize];
            let next = node.next;
            self.current.push(node.entry);
            self.release(link);
            link = next;
        }
        self.current
            .sort_unstable_by_key(|entry| Reverse(entry.key()));
        self.sorted = slot;
    }

    /// Marks `slot`, now empty, as such.
    fn clear(&mut self, slot: u64) {
        let index = (slot & MASK) as usize;
        debug_assert!(self.current.is_empty() || self.sorted != slot);
        debug_assert_eq!(self.heads.get(index).copied().unwrap_or(NIL), NIL);
        self.occupied[index / 64] &= !(1 << (index % 64));
    }

    /// The earliest occupied absolute slot.
    fn first_occupied(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let end = self.base + SLOTS;
        let mut slot = self.cursor;
        while slot < end {
            let index = (slot & MASK) as usize;
            let bits = self.occupied[index / 64] >> (index % 64);
            if bits != 0 {
                let found = slot + u64::from(bits.trailing_zeros());
                // Bits past `end` in this word are slots before `cursor`, all empty.
                debug_assert!(found < end);
                return (found < end).then_some(found);
            }
            slot += 64 - (index % 64) as u64;
        }
        debug_assert!(false, "{} entries in no slot", self.len);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: u64, seq: u64) -> Entry {
        Entry { at, seq, slot: 0 }
    }

    #[test]
    fn entries_come_out_by_deadline_then_sequence_across_the_ring() {
        let mut wheel = Wheel::new();
        let span = 1 << SHIFT;
        wheel.rebase(SLOTS - 3); // the window wraps around the end of the ring
        let base = (SLOTS - 3) * span;
        let ats = [
            base + 5 * span,
            base + 1,
            base + 5 * span,
            base,
            base + 2 * span - 1,
        ];
        for (seq, &at) in ats.iter().enumerate() {
            wheel.push(entry(at, seq as u64 + 1));
        }
        // Into the slot being popped from, which is sorted: lands in order.
        assert_eq!(wheel.first(|_| true), Some(entry(base, 4)));
        wheel.push(entry(base + 3, 6));
        let mut order = Vec::new();
        while let Some(first) = wheel.first(|e| e.seq != 2) {
            order.push(wheel.pop_first().seq);
            assert_eq!(order.last(), Some(&first.seq));
        }
        assert_eq!(order, vec![4, 6, 5, 1, 3]);
        assert_eq!(wheel.len(), 0);
    }

    #[test]
    fn an_earlier_push_moves_the_cursor_back() {
        let mut wheel = Wheel::new();
        wheel.push(entry(10 << SHIFT, 1));
        assert_eq!(wheel.first(|_| true).map(|e| e.seq), Some(1));
        wheel.push(entry(3 << SHIFT, 2));
        assert_eq!(wheel.first(|_| true).map(|e| e.seq), Some(2));
        wheel.retain(|e| e.seq == 1);
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.first(|_| true).map(|e| e.seq), Some(1));
    }
}
