//! The endpoint's timers: at most one deadline per peer slot, in a binary
//! min-heap that knows where each slot's entry is. Moving a deadline updates
//! that entry in place (O(log n), O(1) with one peer), so the heap never holds
//! stale entries, never needs cleaning up, and its minimum is always exact:
//! an endpoint never wakes for a deadline that has moved.
//!
//! A deadline is any ordered key; the endpoint's is the time and then the
//! peer ID, so peers due at the same time are served in the order they were
//! added.

/// Position of a slot that has no entry.
const NO_ENTRY: u32 = u32::MAX;

/// Deadlines by slot (slot numbers are small integers chosen by the caller).
#[derive(Debug)]
pub(super) struct Deadlines<K> {
    /// The heap: each entry's deadline is at or after its parent's.
    heap: Vec<(K, u32)>,
    /// For each slot, the index of its entry in `heap` ([`NO_ENTRY`] if none).
    position: Vec<u32>,
}

impl<K: Ord + Copy> Deadlines<K> {
    /// No deadlines.
    pub fn new() -> Self {
        Self {
            heap: Vec::new(),
            position: Vec::new(),
        }
    }

    /// The earliest deadline and its slot.
    #[inline]
    pub fn peek(&self) -> Option<(K, u32)> {
        self.heap.first().copied()
    }

    /// Number of slots with a deadline.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Sets (`Some`) or removes (`None`) the deadline of `slot`.
    #[inline(always)]
    pub fn set(&mut self, slot: u32, deadline: Option<K>) {
        let s = slot as usize;
        if s >= self.position.len() {
            self.position.resize(s + 1, NO_ENTRY);
        }
        let at = self.position[s];
        match (deadline, at) {
            (None, NO_ENTRY) => {}
            (None, at) => self.remove_at(at as usize),
            (Some(t), NO_ENTRY) => {
                self.heap.push((t, slot));
                let i = self.heap.len() - 1;
                self.position[s] = i as u32;
                self.sift_up(i);
            }
            (Some(t), at) => {
                let i = at as usize;
                let earlier = t < self.heap[i].0;
                self.heap[i].0 = t;
                // The sifts' loops stay out of line; the checks that they
                // have nothing to do (always, with one peer) are inline.
                if earlier {
                    if i > 0 {
                        self.sift_up(i);
                    }
                } else if 2 * i + 1 < self.heap.len() {
                    self.sift_down(i);
                }
            }
        }
    }

    /// Removes and returns the earliest deadline if it is at or before `now`.
    pub fn pop_due(&mut self, now: K) -> Option<(K, u32)> {
        let first = *self.heap.first()?;
        if first.0 > now {
            return None;
        }
        self.remove_at(0);
        Some(first)
    }

    /// Removes the entry at heap index `i`.
    fn remove_at(&mut self, i: usize) {
        let (_, slot) = self.heap.swap_remove(i);
        self.position[slot as usize] = NO_ENTRY;
        if i < self.heap.len() {
            // The last entry moved into the hole: it may belong above or below.
            self.position[self.heap[i].1 as usize] = i as u32;
            self.sift_up(i);
            self.sift_down(i);
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent].0 <= self.heap[i].0 {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let len = self.heap.len();
        loop {
            let left = 2 * i + 1;
            if left >= len {
                break;
            }
            let right = left + 1;
            let child = if right < len && self.heap[right].0 < self.heap[left].0 {
                right
            } else {
                left
            };
            if self.heap[i].0 <= self.heap[child].0 {
                break;
            }
            self.swap(i, child);
            i = child;
        }
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.position[self.heap[a].1 as usize] = a as u32;
        self.position[self.heap[b].1 as usize] = b as u32;
    }

    /// Checks the heap order and the positions (tests).
    #[cfg(test)]
    fn check(&self) {
        for (i, &(t, slot)) in self.heap.iter().enumerate() {
            assert_eq!(
                self.position[slot as usize], i as u32,
                "position of slot {slot}"
            );
            if i > 0 {
                assert!(self.heap[(i - 1) / 2].0 <= t, "heap order at {i}");
            }
        }
        let filed = self.position.iter().filter(|&&p| p != NO_ENTRY).count();
        assert_eq!(filed, self.heap.len(), "one entry per slot with a position");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    proptest! {
        #[test]
        fn matches_a_map_of_deadlines(
            ops in proptest::collection::vec((0u32..12, proptest::option::of(0u64..50), any::<bool>()), 1..200)
        ) {
            let base = Instant::now();
            let mut d = Deadlines::new();
            let mut model: std::collections::BTreeMap<u32, Instant> = Default::default();
            for (slot, ms, pop) in ops {
                if pop {
                    let now = base + Duration::from_millis(25);
                    let expected = model
                        .iter()
                        .map(|(&s, &t)| (t, s))
                        .min()
                        .filter(|&(t, _)| t <= now);
                    let got = d.pop_due(now);
                    prop_assert_eq!(got.map(|(t, _)| t), expected.map(|(t, _)| t));
                    if let Some((_, s)) = got {
                        model.remove(&s);
                    }
                } else {
                    let t = ms.map(|ms| base + Duration::from_millis(ms));
                    d.set(slot, t);
                    match t {
                        Some(t) => model.insert(slot, t),
                        None => model.remove(&slot),
                    };
                }
                d.check();
                prop_assert_eq!(d.len(), model.len());
                prop_assert_eq!(d.peek().map(|(t, _)| t), model.values().min().copied());
            }
        }
    }
}
