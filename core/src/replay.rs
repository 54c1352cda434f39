//! The per-connection replay window of PROTOCOL.md §2.3: this module owns the
//! record of which recently authenticated packet numbers have been seen, so that
//! a duplicated or replayed datagram is dropped and a packet too old for the
//! window is treated as lost. It is a fixed 256-byte bitmap plus the largest
//! authenticated packet number; nothing allocates.

/// Number of packet numbers the window remembers, ending at the largest
/// authenticated one (PROTOCOL.md §2.3). 2048 covers the reordering of 100 ms of
/// jitter at 10,000 packets/s; anything 2048 or more below the largest is
/// rejected as too old.
pub const REPLAY_WINDOW_PACKETS: u64 = 2048;

/// Bits in one bitmap word.
const WORD_BITS: u64 = u64::BITS as u64;

/// Words in the bitmap: 2048 bits / 64 bits per word = 32 words (256 bytes).
const WINDOW_WORDS: usize = (REPLAY_WINDOW_PACKETS / WORD_BITS) as usize;

/// Why a packet number is refused by the replay window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The packet number was already authenticated and recorded.
    #[error("duplicate packet number")]
    Duplicate,
    /// The packet number is `REPLAY_WINDOW_PACKETS` or more below the largest
    /// recorded one: the window no longer knows whether it was seen.
    #[error("packet number too old for the replay window")]
    TooOld,
}

/// Sliding window over the last [`REPLAY_WINDOW_PACKETS`] packet numbers ending
/// at the largest authenticated one.
///
/// Packet number `p` inside the window is bit `p % 2048` of the bitmap (a ring),
/// so moving the window forward only clears the bits that newly enter it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    bits: [u64; WINDOW_WORDS],
    largest: Option<u64>,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window: every packet number is accepted until one is inserted.
    pub const fn new() -> ReplayWindow {
        ReplayWindow {
            bits: [0; WINDOW_WORDS],
            largest: None,
        }
    }

    /// The largest packet number recorded so far.
    pub fn largest(&self) -> Option<u64> {
        self.largest
    }

    /// Whether `pn` may be accepted: not recorded yet and not too old. Does not
    /// change the window (call [`ReplayWindow::insert`] once the packet
    /// authenticates).
    pub fn check(&self, pn: u64) -> Result<(), ReplayError> {
        let Some(largest) = self.largest else {
            return Ok(());
        };
        if pn > largest {
            return Ok(());
        }
        if largest - pn >= REPLAY_WINDOW_PACKETS {
            return Err(ReplayError::TooOld);
        }
        if self.bit(pn) {
            Err(ReplayError::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records `pn` as seen. Call only for authenticated packets (a forged packet
    /// must not move the window). Inserting a number already recorded, or one too
    /// old for the window, changes nothing.
    #[inline(always)]
    pub fn insert(&mut self, pn: u64) {
        // The common case, a packet right after the largest: its slot held
        // the number one window below, now out of it.
        if let Some(largest) = self.largest {
            if pn == largest.wrapping_add(1) {
                let (word, mask) = Self::slot(pn);
                self.bits[word] |= mask;
                self.largest = Some(pn);
                return;
            }
        }
        self.insert_other(pn);
    }

    /// [`ReplayWindow::insert`] of anything but the next packet number.
    #[inline(never)]
    fn insert_other(&mut self, pn: u64) {
        match self.largest {
            None => {
                self.bits = [0; WINDOW_WORDS];
                self.largest = Some(pn);
            }
            Some(largest) if pn > largest => {
                let advance = pn - largest;
                if advance >= REPLAY_WINDOW_PACKETS {
                    // Every number in the new window is new.
                    self.bits = [0; WINDOW_WORDS];
                } else {
                    // The slots of largest+1..=pn held numbers now out of the window.
                    self.clear_range(largest + 1, advance);
                }
                self.largest = Some(pn);
            }
            Some(largest) if largest - pn >= REPLAY_WINDOW_PACKETS => return,
            Some(_) => {}
        }
        let (word, mask) = Self::slot(pn);
        self.bits[word] |= mask;
    }

    /// Word index and bit mask of `pn`'s slot in the ring.
    fn slot(pn: u64) -> (usize, u64) {
        let pos = pn % REPLAY_WINDOW_PACKETS;
        ((pos / WORD_BITS) as usize, 1 << (pos % WORD_BITS))
    }

    fn bit(&self, pn: u64) -> bool {
        let (word, mask) = Self::slot(pn);
        self.bits[word] & mask != 0
    }

    /// Clears the slots of `count` (< window) consecutive packet numbers starting
    /// at `first`, a word at a time.
    fn clear_range(&mut self, first: u64, count: u64) {
        let mut pos = first % REPLAY_WINDOW_PACKETS;
        let mut remaining = count;
        while remaining > 0 {
            let bit = pos % WORD_BITS;
            let n = remaining.min(WORD_BITS - bit);
            let mask = if n == WORD_BITS {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            self.bits[(pos / WORD_BITS) as usize] &= !mask;
            pos = (pos + n) % REPLAY_WINDOW_PACKETS;
            remaining -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn empty_window_accepts_anything() {
        let w = ReplayWindow::new();
        assert_eq!(w.largest(), None);
        assert_eq!(w.check(0), Ok(()));
        assert_eq!(w.check(u64::MAX >> 2), Ok(()));
    }

    #[test]
    fn duplicates_rejected() {
        let mut w = ReplayWindow::new();
        for pn in 0..10 {
            assert_eq!(w.check(pn), Ok(()));
            w.insert(pn);
            assert_eq!(w.check(pn), Err(ReplayError::Duplicate));
        }
        assert_eq!(w.largest(), Some(9));
        for pn in 0..10 {
            assert_eq!(w.check(pn), Err(ReplayError::Duplicate));
        }
        // Inserting again is harmless.
        w.insert(3);
        assert_eq!(w.largest(), Some(9));
        assert_eq!(w.check(10), Ok(()));
    }

    #[test]
    fn too_old_rejected() {
        let mut w = ReplayWindow::new();
        w.insert(5000);
        // The window is 5000-2047..=5000.
        assert_eq!(
            w.check(5000 - REPLAY_WINDOW_PACKETS),
            Err(ReplayError::TooOld)
        );
        assert_eq!(w.check(0), Err(ReplayError::TooOld));
        assert_eq!(w.check(5000 - REPLAY_WINDOW_PACKETS + 1), Ok(()));
        // Inserting a too-old number changes nothing.
        let before = w.clone();
        w.insert(10);
        assert_eq!(w, before);
    }

    #[test]
    fn out_of_order_within_window_accepted_once() {
        let mut w = ReplayWindow::new();
        w.insert(3000);
        for pn in [2999, 1000, 2500, 953, 2998] {
            assert_eq!(w.check(pn), Ok(()), "{pn}");
            w.insert(pn);
            assert_eq!(w.check(pn), Err(ReplayError::Duplicate), "{pn}");
        }
        assert_eq!(w.largest(), Some(3000));
        assert_eq!(w.check(2997), Ok(()));
    }

    #[test]
    fn advancing_forgets_old_slots() {
        let mut w = ReplayWindow::new();
        for pn in 0..REPLAY_WINDOW_PACKETS {
            w.insert(pn);
        }
        // pn 2048 shares slot 0 with pn 0: it must not look like a duplicate.
        assert_eq!(w.check(REPLAY_WINDOW_PACKETS), Ok(()));
        w.insert(REPLAY_WINDOW_PACKETS + 100);
        assert_eq!(w.check(0), Err(ReplayError::TooOld));
        assert_eq!(w.check(100), Err(ReplayError::TooOld));
        assert_eq!(w.check(101), Err(ReplayError::Duplicate));
        for pn in REPLAY_WINDOW_PACKETS..REPLAY_WINDOW_PACKETS + 100 {
            assert_eq!(w.check(pn), Ok(()), "{pn}");
        }
        assert_eq!(
            w.check(REPLAY_WINDOW_PACKETS - 1),
            Err(ReplayError::Duplicate)
        );
    }

    #[test]
    fn jump_larger_than_window_clears() {
        let mut w = ReplayWindow::new();
        for pn in 0..100 {
            w.insert(pn);
        }
        let far = 100 + 3 * REPLAY_WINDOW_PACKETS + 17;
        w.insert(far);
        assert_eq!(w.largest(), Some(far));
        for pn in far - REPLAY_WINDOW_PACKETS + 1..far {
            assert_eq!(w.check(pn), Ok(()), "{pn}");
        }
        assert_eq!(w.check(far), Err(ReplayError::Duplicate));
        assert_eq!(
            w.check(far - REPLAY_WINDOW_PACKETS),
            Err(ReplayError::TooOld)
        );
        // Exactly one window ahead also clears everything.
        let mut w = ReplayWindow::new();
        for pn in 0..REPLAY_WINDOW_PACKETS {
            w.insert(pn);
        }
        w.insert(2 * REPLAY_WINDOW_PACKETS - 1);
        for pn in REPLAY_WINDOW_PACKETS..2 * REPLAY_WINDOW_PACKETS - 1 {
            assert_eq!(w.check(pn), Ok(()), "{pn}");
        }
    }

    /// Reference model: every number ever inserted plus the largest.
    #[derive(Default)]
    struct Model {
        seen: HashSet<u64>,
        largest: Option<u64>,
    }

    impl Model {
        fn check(&self, pn: u64) -> Result<(), ReplayError> {
            match self.largest {
                Some(l) if pn < l && l - pn >= REPLAY_WINDOW_PACKETS => Err(ReplayError::TooOld),
                _ if self.seen.contains(&pn) => Err(ReplayError::Duplicate),
                _ => Ok(()),
            }
        }
        fn insert(&mut self, pn: u64) {
            if self.check(pn) == Err(ReplayError::TooOld) {
                return;
            }
            self.seen.insert(pn);
            self.largest = Some(self.largest.map_or(pn, |l| l.max(pn)));
        }
    }

    /// Step of a random walk: mostly small moves around the current position,
    /// sometimes long jumps.
    fn steps() -> impl Strategy<Value = Vec<(i64, bool)>> {
        let delta = prop_oneof![
            8 => -70i64..70,
            3 => -2100i64..2100,
            1 => -10_000i64..10_000,
        ];
        proptest::collection::vec((delta, any::<bool>()), 1..600)
    }

    proptest! {
        #[test]
        fn matches_hashset_model(start in 0u64..1_000_000, steps in steps()) {
            let mut w = ReplayWindow::new();
            let mut model = Model::default();
            let mut pos = start as i64;
            for (delta, force_insert) in steps {
                pos = (pos + delta).max(0);
                let pn = pos as u64;
                let got = w.check(pn);
                prop_assert_eq!(got, model.check(pn), "pn {}", pn);
                // Normally only accepted packets are inserted; sometimes insert
                // regardless to exercise idempotence.
                if got.is_ok() || force_insert {
                    w.insert(pn);
                    model.insert(pn);
                }
                prop_assert_eq!(w.largest(), model.largest);
            }
        }
    }
}
