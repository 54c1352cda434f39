//! The receiver's record of which packet numbers arrived (PROTOCOL.md §3.1,
//! §6.1): [`AckRanges`], a bounded set of disjoint ranges that tells the
//! connection when a gap appears (so it acknowledges at once) and writes the ACK
//! frames that report it. It holds a few ranges inline and allocates at most
//! once, when a lossy or reordering link first needs more (the heap array is
//! then kept, so the steady state never allocates).

use std::ops::RangeInclusive;

use crate::frame::frame_type;
use crate::varint::{varint_len, BufferTooSmall, Writer, MAX_VARINT};

/// Number of ranges a receiver keeps (§3.1): when one more would be needed, the
/// lowest is forgotten. 64 ranges cover the loss patterns of a bad link; packets
/// forgotten this way are retransmitted and deduplicated by the peer.
pub const MAX_ACK_RANGES_KEPT: usize = 64;

/// Number of ranges an ACK frame carries at most (§3.1): the newest 32, which
/// keeps the frame small enough to share a packet with data.
pub const MAX_ACK_RANGES_SENT: usize = 32;

/// Largest one-range ACK frame in bytes: type, three varints of up to 8
/// bytes (largest, delay, range length) and a one-byte pair count of 0.
const MAX_ONE_RANGE_ACK_BYTES: usize = 1 + 8 + 8 + 1 + 8;

/// What [`AckRanges::insert`] found out about a packet number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InsertOutcome {
    /// Already in the set; nothing changed.
    Duplicate,
    /// The number right after the largest ever inserted (or 0 as the first).
    InOrder,
    /// Above the largest ever inserted + 1 (or above 0 as the first): the
    /// numbers in between are missing, which §6.1 reports at once.
    Gap,
    /// Below the largest ever inserted and new: a reordered packet filling
    /// part of a gap.
    OutOfOrder,
}

impl InsertOutcome {
    /// Whether the packet number was not in the set before.
    pub fn is_new(self) -> bool {
        self != InsertOutcome::Duplicate
    }

    /// Whether the insertion showed loss or reordering ([`Gap`](Self::Gap) or
    /// [`OutOfOrder`](Self::OutOfOrder)), for which §6.1 sends an ACK at once.
    pub fn is_irregular(self) -> bool {
        matches!(self, InsertOutcome::Gap | InsertOutcome::OutOfOrder)
    }
}

/// One range of received numbers, `low..=high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    low: u64,
    high: u64,
}

/// Ranges held without allocating. An in-order link needs one, a link that
/// loses or reorders now and then a few; only a set that needs more moves to a
/// heap array of [`MAX_ACK_RANGES_KEPT`] (1 KiB), which an idle connection
/// would otherwise carry for nothing.
const INLINE_SPANS: usize = 4;

/// Storage of the spans: inline until more than [`INLINE_SPANS`] are needed,
/// then on the heap for good (moving back would allocate again at the next
/// loss).
#[derive(Debug, Clone)]
enum Spans {
    Inline([Span; INLINE_SPANS]),
    Heap(Box<[Span; MAX_ACK_RANGES_KEPT]>),
}

impl Spans {
    fn as_slice(&self) -> &[Span] {
        match self {
            Spans::Inline(spans) => spans,
            Spans::Heap(spans) => &spans[..],
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Span] {
        match self {
            Spans::Inline(spans) => spans,
            Spans::Heap(spans) => &mut spans[..],
        }
    }
}

/// Set of received packet numbers as at most [`MAX_ACK_RANGES_KEPT`] disjoint,
/// non-adjacent ranges, with the largest number ever inserted.
#[derive(Debug, Clone)]
pub struct AckRanges {
    /// `spans[..len]`, in increasing order, each separated from the next by at
    /// least one missing number.
    spans: Spans,
    len: usize,
    largest: Option<u64>,
}

impl Default for AckRanges {
    fn default() -> Self {
        Self::new()
    }
}

impl AckRanges {
    /// An empty set.
    pub fn new() -> Self {
        AckRanges {
            spans: Spans::Inline([Span::default(); INLINE_SPANS]),
            len: 0,
            largest: None,
        }
    }

    /// Number of ranges in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds no packet number.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The largest packet number ever inserted, even if
    /// [`remove_below`](Self::remove_below) has since pruned it (it is what gap
    /// detection and packet-number reconstruction compare against). The
    /// largest number in the set is the end of the first range of
    /// [`iter_desc`](Self::iter_desc).
    pub fn largest(&self) -> Option<u64> {
        self.largest
    }

    /// Whether `pn` is in the set.
    pub fn contains(&self, pn: u64) -> bool {
        let i = self.index_above(pn);
        i > 0 && self.spans.as_slice()[i - 1].high >= pn
    }

    /// The ranges, highest first.
    pub fn iter_desc(
        &self,
    ) -> impl ExactSizeIterator<Item = RangeInclusive<u64>> + DoubleEndedIterator + Clone + '_ {
        self.spans.as_slice()[..self.len]
            .iter()
            .rev()
            .map(|span| span.low..=span.high)
    }

    /// Index of the first span whose low end is above `pn`.
    fn index_above(&self, pn: u64) -> usize {
        self.spans.as_slice()[..self.len].partition_point(|span| span.low <= pn)
    }

    /// Records packet number `pn`, merging it with adjacent ranges. When it
    /// needs a new range and [`MAX_ACK_RANGES_KEPT`] are held, the lowest range
    /// is forgotten, or `pn` itself if it is below them all.
    ///
    /// # Panics
    ///
    /// If `pn` exceeds [`MAX_VARINT`], which no packet number does
    /// ([`decode_packet_number`](crate::packet::decode_packet_number) never
    /// returns one).
    #[inline(always)]
    pub fn insert(&mut self, pn: u64) -> InsertOutcome {
        assert!(pn <= MAX_VARINT, "packet number above 2^62 - 1");
        // The common case, in O(1): the number right after the largest, which
        // extends the highest range, or starts the only one when everything
        // below was pruned.
        if self.largest.is_some_and(|largest| pn == largest + 1) {
            let len = self.len;
            let spans = self.spans.as_mut_slice();
            if len == 0 {
                spans[0] = Span { low: pn, high: pn };
                self.len = 1;
                self.largest = Some(pn);
                return InsertOutcome::InOrder;
            }
            if spans[len - 1].high + 1 == pn {
                spans[len - 1].high = pn;
                self.largest = Some(pn);
                return InsertOutcome::InOrder;
            }
        }
        self.insert_other(pn)
    }

    /// [`AckRanges::insert`] of anything but the number right after the
    /// largest extending the highest range.
    #[inline(never)]
    fn insert_other(&mut self, pn: u64) -> InsertOutcome {
        if self.contains(pn) {
            return InsertOutcome::Duplicate;
        }
        let outcome = match self.largest {
            None if pn == 0 => InsertOutcome::InOrder,
            None => InsertOutcome::Gap,
            Some(largest) if pn == largest + 1 => InsertOutcome::InOrder,
            Some(largest) if pn > largest => InsertOutcome::Gap,
            Some(_) => InsertOutcome::OutOfOrder,
        };
        self.largest = Some(self.largest.map_or(pn, |largest| largest.max(pn)));

        let i = self.index_above(pn);
        let len = self.len;
        let spans = self.spans.as_mut_slice();
        // pn is not in the set, so the span below (if any) ends before pn.
        let joins_below = i > 0 && spans[i - 1].high + 1 == pn;
        let joins_above = i < len && pn + 1 == spans[i].low;
        match (joins_below, joins_above) {
            (true, true) => {
                spans[i - 1].high = spans[i].high;
                spans.copy_within(i + 1..len, i);
                self.len -= 1;
            }
            (true, false) => spans[i - 1].high = pn,
            (false, true) => spans[i].low = pn,
            (false, false) => {
                let span = Span { low: pn, high: pn };
                if len < MAX_ACK_RANGES_KEPT {
                    if len == spans.len() {
                        self.spill();
                    }
                    let spans = self.spans.as_mut_slice();
                    spans.copy_within(i..len, i + 1);
                    spans[i] = span;
                    self.len += 1;
                } else if i > 0 {
                    // Forget the lowest range to make room.
                    spans.copy_within(1..i, 0);
                    spans[i - 1] = span;
                }
                // else: pn would be the lowest range of a full set; forget it.
            }
        }
        outcome
    }

    /// Moves the inline spans to the heap array, once (see [`INLINE_SPANS`]):
    /// called when the inline array is full and one more range is needed.
    #[cold]
    fn spill(&mut self) {
        if let Spans::Inline(inline) = &self.spans {
            let mut heap = Box::new([Span::default(); MAX_ACK_RANGES_KEPT]);
            heap[..INLINE_SPANS].copy_from_slice(inline);
            self.spans = Spans::Heap(heap);
        }
    }

    /// Moves the ranges back inline if they fit, freeing the heap array (for an
    /// idle connection: a later need for more ranges allocates it again).
    pub fn shrink(&mut self) {
        if let Spans::Heap(heap) = &self.spans {
            if self.len <= INLINE_SPANS {
                let mut inline = [Span::default(); INLINE_SPANS];
                inline[..self.len].copy_from_slice(&heap[..self.len]);
                self.spans = Spans::Inline(inline);
            }
        }
    }

    /// Forgets every packet number below `pn` (once the peer has received an ACK
    /// covering them, acknowledging them again is useless).
    /// [`largest`](Self::largest) is unchanged.
    pub fn remove_below(&mut self, pn: u64) {
        let len = self.len;
        let spans = self.spans.as_mut_slice();
        if len <= 1 {
            // The common case, an in-order link: one range or none.
            if len == 1 {
                if spans[0].high < pn {
                    self.len = 0;
                } else if spans[0].low < pn {
                    spans[0].low = pn;
                }
            }
            return;
        }
        let gone = spans[..len].partition_point(|span| span.high < pn);
        spans.copy_within(gone..len, 0);
        self.len -= gone;
        if self.len > 0 && spans[0].low < pn {
            spans[0].low = pn;
        }
    }

    /// Exact size in bytes of the frame [`encode_ack`](Self::encode_ack) writes
    /// with the same arguments (0 when it writes nothing).
    pub fn ack_frame_len(&self, ack_delay_us: u64, max_ranges: usize) -> usize {
        let mut spans = self.spans_desc(max_ranges);
        let Some(first) = spans.next() else {
            return 0;
        };
        let mut len = 1
            + varint_len(first.high)
            + varint_len(ack_delay_us.min(MAX_VARINT))
            + varint_len(spans.len() as u64)
            + varint_len(first.high - first.low);
        let mut prev_low = first.low;
        for span in spans {
            len += varint_len(prev_low - span.high - 2) + varint_len(span.high - span.low);
            prev_low = span.low;
        }
        len
    }

    /// Writes an ACK frame (§3.1) for the newest `max_ranges` ranges (normally
    /// [`MAX_ACK_RANGES_SENT`]), reporting `ack_delay_us` (capped at
    /// [`MAX_VARINT`]). Writes nothing when the set is empty or `max_ranges` is 0.
    /// When the frame does not fit it fails and the writer's position is left
    /// where it was (one pass: the frame is written as it goes and taken back
    /// with [`Writer::truncate`], so the bytes past the position are
    /// unspecified).
    #[inline(always)]
    pub fn encode_ack(
        &self,
        w: &mut Writer<'_>,
        ack_delay_us: u64,
        max_ranges: usize,
    ) -> Result<(), BufferTooSmall> {
        if self.len == 1 && max_ranges > 0 {
            // The common case, an in-order link: one range, no pairs. Its
            // length is checked once, then it is written field by field.
            let span = self.spans.as_slice()[0];
            let delay = ack_delay_us.min(MAX_VARINT);
            let range = span.high - span.low;
            // The exact length only matters when the largest could not fit.
            if MAX_ONE_RANGE_ACK_BYTES > w.remaining()
                && 2 + varint_len(span.high) + varint_len(delay) + varint_len(range) > w.remaining()
            {
                return Err(BufferTooSmall);
            }
            w.put_u8_in_room(frame_type::ACK);
            w.put_varint_in_room(span.high);
            w.put_varint_in_room(delay);
            w.put_u8_in_room(0); // no (gap, range) pairs
            w.put_varint_in_room(range);
            return Ok(());
        }
        self.encode_ack_ranges(w, ack_delay_us, max_ranges)
    }

    /// [`AckRanges::encode_ack`] of any number of ranges (out of line: the
    /// one-range case is inline).
    #[inline(never)]
    fn encode_ack_ranges(
        &self,
        w: &mut Writer<'_>,
        ack_delay_us: u64,
        max_ranges: usize,
    ) -> Result<(), BufferTooSmall> {
        let mut spans = self.spans_desc(max_ranges);
        let Some(first) = spans.next() else {
            return Ok(());
        };
        let start = w.position();
        let written = Self::write_ack(w, first, ack_delay_us, spans);
        if written.is_err() {
            w.truncate(start);
        }
        written
    }

    /// The body of [`encode_ack`](Self::encode_ack): `first` and then `rest`,
    /// stopping at the first write that does not fit.
    fn write_ack(
        w: &mut Writer<'_>,
        first: Span,
        ack_delay_us: u64,
        rest: impl ExactSizeIterator<Item = Span>,
    ) -> Result<(), BufferTooSmall> {
        w.put_u8(frame_type::ACK)?;
        w.put_varint(first.high)?;
        w.put_varint(ack_delay_us.min(MAX_VARINT))?;
        w.put_varint(rest.len() as u64)?;
        w.put_varint(first.high - first.low)?;
        let mut prev_low = first.low;
        for span in rest {
            // Spans are separated by at least one missing number: no underflow.
            w.put_varint(prev_low - span.high - 2)?;
            w.put_varint(span.high - span.low)?;
            prev_low = span.low;
        }
        Ok(())
    }

    /// The newest `max_ranges` spans, highest first.
    fn spans_desc(&self, max_ranges: usize) -> impl ExactSizeIterator<Item = Span> + '_ {
        self.spans.as_slice()[..self.len]
            .iter()
            .rev()
            .take(max_ranges)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, FrameReader};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ranges(set: &AckRanges) -> Vec<RangeInclusive<u64>> {
        set.iter_desc().collect()
    }

    /// Encodes then decodes an ACK frame, returning its ranges.
    fn round_trip(set: &AckRanges, delay: u64, max_ranges: usize) -> Vec<RangeInclusive<u64>> {
        let len = set.ack_frame_len(delay, max_ranges);
        let mut buf = vec![0u8; len];
        let mut w = Writer::new(&mut buf);
        set.encode_ack(&mut w, delay, max_ranges).unwrap();
        assert_eq!(w.remaining(), 0, "ack_frame_len is exact");
        if len == 0 {
            return Vec::new();
        }
        let frames: Vec<_> = FrameReader::new(&buf).collect();
        let [Ok(Frame::Ack(ack))] = frames.as_slice() else {
            panic!("{frames:?}")
        };
        assert_eq!(ack.ack_delay_us(), delay.min(MAX_VARINT));
        assert_eq!(ack.range_count(), ack.ranges().len());
        ack.ranges().collect()
    }

    #[test]
    fn outcomes() {
        let mut set = AckRanges::new();
        assert!(set.is_empty());
        assert_eq!(set.largest(), None);
        assert_eq!(set.insert(0), InsertOutcome::InOrder);
        assert_eq!(set.insert(1), InsertOutcome::InOrder);
        assert_eq!(set.insert(1), InsertOutcome::Duplicate);
        assert_eq!(set.insert(4), InsertOutcome::Gap);
        assert_eq!(set.insert(3), InsertOutcome::OutOfOrder);
        assert_eq!(set.insert(5), InsertOutcome::InOrder);
        assert_eq!(set.insert(0), InsertOutcome::Duplicate);
        assert_eq!(set.largest(), Some(5));
        assert_eq!(ranges(&set), [3..=5, 0..=1]);
        assert!(InsertOutcome::Gap.is_new() && InsertOutcome::Gap.is_irregular());
        assert!(!InsertOutcome::Duplicate.is_new());
        assert!(!InsertOutcome::InOrder.is_irregular());

        let mut set = AckRanges::new();
        assert_eq!(set.insert(7), InsertOutcome::Gap);
    }

    #[test]
    fn merges_adjacent_ranges() {
        let mut set = AckRanges::new();
        for pn in [10, 12, 14] {
            set.insert(pn);
        }
        assert_eq!(ranges(&set), [14..=14, 12..=12, 10..=10]);
        set.insert(11);
        assert_eq!(ranges(&set), [14..=14, 10..=12]);
        set.insert(13);
        assert_eq!(ranges(&set), [10..=14]);
        set.insert(9);
        set.insert(15);
        assert_eq!(ranges(&set), [9..=15]);
        assert_eq!(set.len(), 1);
        assert!(set.contains(9) && set.contains(15) && !set.contains(8) && !set.contains(16));
    }

    #[test]
    fn a_few_ranges_stay_inline_and_more_spill_once() {
        let mut set = AckRanges::new();
        for k in 0..INLINE_SPANS as u64 {
            set.insert(4 * k);
        }
        // Growing existing ranges needs no room.
        for pn in 1..4 {
            set.insert(pn);
        }
        assert_eq!(set.len(), INLINE_SPANS - 1);
        set.insert(100);
        assert_eq!(set.len(), INLINE_SPANS);
        assert!(matches!(set.spans, Spans::Inline(_)));
        set.insert(101);
        assert!(matches!(set.spans, Spans::Inline(_)));
        set.insert(50);
        assert!(matches!(set.spans, Spans::Heap(_)));
        assert_eq!(ranges(&set), [100..=101, 50..=50, 12..=12, 8..=8, 0..=4]);
        // The heap array stays once there, until `shrink` when few are left.
        set.remove_below(8);
        assert_eq!(set.len(), 4);
        assert!(matches!(set.spans, Spans::Heap(_)));
        set.shrink();
        assert!(matches!(set.spans, Spans::Inline(_)));
        assert_eq!(ranges(&set), [100..=101, 50..=50, 12..=12, 8..=8]);
        set.insert(20);
        set.shrink();
        assert!(matches!(set.spans, Spans::Heap(_)), "5 ranges do not fit");
        assert_eq!(set.len(), 5);
    }

    #[test]
    fn keeps_at_most_64_ranges() {
        let mut set = AckRanges::new();
        // Multiples of 4 only: every insert makes a new range.
        for k in 0..100u64 {
            set.insert(4 * k);
            assert_eq!(set.len(), (k as usize + 1).min(MAX_ACK_RANGES_KEPT));
        }
        let kept = ranges(&set);
        assert_eq!(kept.first(), Some(&(396..=396)));
        assert_eq!(kept.last(), Some(&(144..=144)));
        // A new range below all the kept ones is forgotten at once...
        assert_eq!(set.insert(1), InsertOutcome::OutOfOrder);
        assert_eq!(ranges(&set), kept);
        // ...one in the middle pushes out the lowest...
        assert_eq!(set.insert(202), InsertOutcome::OutOfOrder);
        assert_eq!(set.len(), MAX_ACK_RANGES_KEPT);
        assert!(set.contains(202) && !set.contains(144) && set.contains(148));
        // ...and ones that merge need no room.
        set.insert(203);
        assert_eq!(set.len(), MAX_ACK_RANGES_KEPT - 1);
        set.insert(201);
        assert_eq!(set.len(), MAX_ACK_RANGES_KEPT - 2);
        assert!((200..=204).all(|pn| set.contains(pn)));
        assert!(set.contains(148));
    }

    #[test]
    fn remove_below_prunes_and_trims() {
        let mut set = AckRanges::new();
        for pn in (0..5).chain(8..12).chain(20..22) {
            set.insert(pn);
        }
        set.remove_below(3);
        assert_eq!(ranges(&set), [20..=21, 8..=11, 3..=4]);
        set.remove_below(5);
        assert_eq!(ranges(&set), [20..=21, 8..=11]);
        set.remove_below(10);
        assert_eq!(ranges(&set), [20..=21, 10..=11]);
        set.remove_below(0);
        assert_eq!(ranges(&set), [20..=21, 10..=11]);
        set.remove_below(22);
        assert!(set.is_empty());
        assert_eq!(set.largest(), Some(21));
        assert_eq!(set.ack_frame_len(0, MAX_ACK_RANGES_SENT), 0);
        // Gap detection still compares against the pruned largest.
        assert_eq!(set.insert(22), InsertOutcome::InOrder);
        assert_eq!(set.insert(5), InsertOutcome::OutOfOrder);
        assert_eq!(ranges(&set), [22..=22, 5..=5]);
    }

    #[test]
    fn encode_examples() {
        let mut set = AckRanges::new();
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        set.encode_ack(&mut w, 5, MAX_ACK_RANGES_SENT).unwrap();
        assert_eq!(w.position(), 0, "empty set writes nothing");

        for pn in (0..2).chain(5..8).chain(10..13) {
            set.insert(pn);
        }
        let mut w = Writer::new(&mut buf);
        set.encode_ack(&mut w, 25, MAX_ACK_RANGES_SENT).unwrap();
        assert_eq!(w.written(), [0x02, 12, 25, 2, 2, 1, 2, 2, 1]);
        assert_eq!(round_trip(&set, 25, 2), [10..=12, 5..=7]);
        assert_eq!(round_trip(&set, 25, 0), []);
        assert_eq!(round_trip(&set, u64::MAX, 1), [10..=12]);

        // Too small: nothing written.
        let len = set.ack_frame_len(25, MAX_ACK_RANGES_SENT);
        let mut small = vec![0u8; len - 1];
        let mut w = Writer::new(&mut small);
        assert_eq!(
            set.encode_ack(&mut w, 25, MAX_ACK_RANGES_SENT),
            Err(BufferTooSmall)
        );
        assert_eq!(w.position(), 0);

        // After other frames: the failed ACK is taken back, they stay.
        let mut buf = vec![0u8; len + 1];
        let mut w = Writer::new(&mut buf);
        w.put_u8(0x01).unwrap();
        w.put_u8(0x01).unwrap();
        assert_eq!(
            set.encode_ack(&mut w, 25, MAX_ACK_RANGES_SENT),
            Err(BufferTooSmall)
        );
        assert_eq!(w.written(), [0x01, 0x01]);
    }

    #[test]
    fn largest_packet_number() {
        let mut set = AckRanges::new();
        assert_eq!(set.insert(MAX_VARINT), InsertOutcome::Gap);
        assert_eq!(set.insert(MAX_VARINT - 1), InsertOutcome::OutOfOrder);
        assert_eq!(set.insert(0), InsertOutcome::OutOfOrder);
        assert_eq!(
            round_trip(&set, 0, 32),
            [MAX_VARINT - 1..=MAX_VARINT, 0..=0]
        );
    }

    fn insert_sequence() -> impl Strategy<Value = Vec<u64>> {
        prop_oneof![
            // Dense and reordered: few ranges, many merges.
            proptest::collection::vec(0..300u64, 0..400),
            // Sparse: many ranges, exercises the bound.
            proptest::collection::vec(0..5_000u64, 0..300),
            // Spread over the varint sizes.
            proptest::collection::vec(0..(1u64 << 40), 0..80),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_gives_newest_ranges(
            pns in insert_sequence(),
            delay in any::<u64>(),
            max_ranges in 0..70usize,
        ) {
            let mut set = AckRanges::new();
            for &pn in &pns {
                set.insert(pn);
            }
            let expected: Vec<_> = set.iter_desc().take(max_ranges).collect();
            prop_assert_eq!(round_trip(&set, delay, max_ranges), expected);
        }

        #[test]
        fn matches_model(pns in insert_sequence(), prune in proptest::option::of(0..5_000u64)) {
            let mut set = AckRanges::new();
            let mut model = BTreeSet::new();
            let mut largest = None;
            for &pn in &pns {
                let outcome = set.insert(pn);
                let expected = if model.contains(&pn) {
                    InsertOutcome::Duplicate
                } else {
                    match largest {
                        None if pn == 0 => InsertOutcome::InOrder,
                        None => InsertOutcome::Gap,
                        Some(l) if pn == l + 1 => InsertOutcome::InOrder,
                        Some(l) if pn > l => InsertOutcome::Gap,
                        Some(_) => InsertOutcome::OutOfOrder,
                    }
                };
                // Only a full set may forget numbers; stop comparing once it does.
                if set.len() == MAX_ACK_RANGES_KEPT {
                    return Ok(());
                }
                prop_assert_eq!(outcome, expected);
                model.insert(pn);
                largest = largest.max(Some(pn));
            }
            if let Some(floor) = prune {
                set.remove_below(floor);
                model.retain(|&pn| pn >= floor);
            }
            // The model's numbers, grouped into maximal runs, highest first.
            let mut runs: Vec<RangeInclusive<u64>> = Vec::new();
            for &pn in model.iter().rev() {
                match runs.last_mut() {
                    Some(run) if *run.start() == pn + 1 => *run = pn..=*run.end(),
                    _ => runs.push(pn..=pn),
                }
            }
            prop_assert_eq!(ranges(&set), runs);
            prop_assert_eq!(set.largest(), largest);
        }

        #[test]
        fn bounded_and_well_formed(pns in insert_sequence()) {
            let mut set = AckRanges::new();
            let mut max_seen = None;
            for &pn in &pns {
                set.insert(pn);
                max_seen = max_seen.max(Some(pn));
                prop_assert!(set.len() <= MAX_ACK_RANGES_KEPT);
                prop_assert!(set.contains(pn) || set.len() == MAX_ACK_RANGES_KEPT);
            }
            prop_assert_eq!(set.largest(), max_seen);
            let r = ranges(&set);
            for pair in r.windows(2) {
                prop_assert!(pair[1].end() + 1 < *pair[0].start());
            }
            if let Some(top) = r.first() {
                // The newest numbers are never the ones forgotten.
                prop_assert_eq!(Some(*top.end()), max_seen);
            }
        }
    }
}
