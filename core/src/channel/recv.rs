//! The receiving half of the channels: fragment reassembly, the reliable reorder
//! and duplicate window, and the unreliable and sequenced duplicate filters
//! (PROTOCOL.md §3.2, §3.3, §6.4).

use std::collections::VecDeque;

use crate::config::{ChannelId, ChannelKind, RELIABLE_WINDOW_MESSAGES};
use crate::error::Violation;
use crate::frame::Fragment;
use crate::pool::BufferPool;

/// Where complete messages go: the connection's queue for the application.
#[derive(Debug)]
pub(crate) struct Inbox {
    pub queue: VecDeque<(ChannelId, Vec<u8>)>,
    pub bytes: usize,
    pub pool: BufferPool,
    pub delivered: u64,
}

impl Inbox {
    pub fn new(pool_buffers: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            bytes: 0,
            pool: BufferPool::new(pool_buffers),
            delivered: 0,
        }
    }

    /// Frees pooled buffers and the capacity of an empty queue (an idle
    /// connection).
    pub fn release_idle(&mut self) {
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
        }
        self.pool.release();
    }

    fn deliver(&mut self, channel: ChannelId, data: Vec<u8>) {
        self.bytes += data.len();
        self.delivered += 1;
        self.queue.push_back((channel, data));
    }

    #[inline(always)]
    fn copy(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut buf = self.pool.take(payload.len());
        buf.extend_from_slice(payload);
        buf
    }
}

/// The smallest size a fragmented message can have: every fragment but the
/// last is full, the last has at least one byte.
fn min_message_bytes(count: u32, fragment_bytes: usize) -> usize {
    (count as usize - 1) * fragment_bytes + 1
}

/// A fragmented message being put back together.
#[derive(Debug)]
pub(crate) struct Reassembly {
    data: Vec<u8>,
    count: u32,
    received: u32,
    bits: Vec<u64>,
    last_len: usize,
}

impl Reassembly {
    /// Checks a fragment against its channel's limits before any memory is committed.
    pub fn validate(
        fragment: Fragment,
        payload_len: usize,
        fragment_bytes: usize,
        max_message_bytes: usize,
    ) -> Result<(), Violation> {
        if fragment.count < 2 || fragment.index >= fragment.count {
            return Err(Violation::BadFragment);
        }
        if min_message_bytes(fragment.count, fragment_bytes) > max_message_bytes {
            return Err(Violation::MessageTooLarge);
        }
        let last = fragment.index == fragment.count - 1;
        let len_ok = if last {
            (1..=fragment_bytes).contains(&payload_len)
        } else {
            payload_len == fragment_bytes
        };
        if len_ok {
            Ok(())
        } else {
            Err(Violation::BadFragment)
        }
    }

    /// A reassembly buffer sized for the largest message the fragment count
    /// allows, but never beyond the channel's limit (so the memory bound is
    /// exactly the limit; a fragment that would write past it is refused).
    fn new(
        count: u32,
        fragment_bytes: usize,
        max_message_bytes: usize,
        pool: &mut BufferPool,
    ) -> Self {
        let size = (count as usize * fragment_bytes).min(max_message_bytes);
        let mut data = pool.take(size);
        data.resize(size, 0);
        Self {
            data,
            count,
            received: 0,
            bits: vec![0; count.div_ceil(64) as usize],
            last_len: 0,
        }
    }

    /// Bytes this message is known to have at least (for window accounting).
    fn min_bytes(&self, fragment_bytes: usize) -> usize {
        min_message_bytes(self.count, fragment_bytes)
    }

    /// Adds a validated fragment. Returns the message when it is complete.
    fn insert(
        &mut self,
        fragment: Fragment,
        payload: &[u8],
        fragment_bytes: usize,
    ) -> Result<Option<Vec<u8>>, Violation> {
        if fragment.count != self.count {
            return Err(Violation::BadFragment);
        }
        let (word, bit) = (
            (fragment.index / 64) as usize,
            1u64 << (fragment.index % 64),
        );
        if self.bits[word] & bit != 0 {
            return Ok(None);
        }
        self.bits[word] |= bit;
        self.received += 1;
        let start = fragment.index as usize * fragment_bytes;
        self.data[start..start + payload.len()].copy_from_slice(payload);
        if fragment.index == self.count - 1 {
            self.last_len = payload.len();
        }
        if self.received < self.count {
            return Ok(None);
        }
        let mut data = std::mem::take(&mut self.data);
        data.truncate((self.count as usize - 1) * fragment_bytes + self.last_len);
        Ok(Some(data))
    }
}

/// A slot of the reliable window.
#[derive(Debug)]
enum Slot {
    Empty,
    Partial(Reassembly),
    /// Complete, waiting for earlier messages (ordered channels).
    Complete(Vec<u8>),
    /// Already handed to the application (unordered channels).
    Delivered,
}

/// Receiving state of a reliable channel (ordered or not).
#[derive(Debug)]
pub(crate) struct ReliableRecv {
    ordered: bool,
    /// Every message below `base` was delivered.
    base: u64,
    /// Slot `i` is message `base + i`; at most [`RELIABLE_WINDOW_MESSAGES`].
    slots: VecDeque<Slot>,
    /// Lower bound of the bytes held in `slots` (see PROTOCOL.md §6.4).
    held_bytes: usize,
}

/// Limits that apply to one incoming data frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameLimits {
    pub fragment_bytes: usize,
    pub max_message_bytes: usize,
    /// Reliable only: the most bytes the window lets the peer make us hold.
    pub window_bytes: usize,
}

impl ReliableRecv {
    fn new(ordered: bool) -> Self {
        Self {
            ordered,
            base: 0,
            slots: VecDeque::new(),
            held_bytes: 0,
        }
    }

    fn on_frame(
        &mut self,
        channel: ChannelId,
        id: u64,
        fragment: Option<Fragment>,
        payload: &[u8],
        limits: FrameLimits,
        inbox: &mut Inbox,
    ) -> Result<(), Violation> {
        let Some(offset) = id.checked_sub(self.base) else {
            return Ok(()); // already delivered: a retransmission or duplicate
        };
        if offset >= RELIABLE_WINDOW_MESSAGES {
            return Err(Violation::WindowExceeded);
        }
        let offset = offset as usize;
        while self.slots.len() <= offset {
            self.slots.push_back(Slot::Empty);
        }
        let budget = limits.window_bytes.max(limits.max_message_bytes);
        let complete = match (&mut self.slots[offset], fragment) {
            (Slot::Complete(_) | Slot::Delivered, _) => return Ok(()),
            (Slot::Empty, None) => {
                if self.held_bytes + payload.len() > budget {
                    return Err(Violation::ByteWindowExceeded);
                }
                inbox.copy(payload)
            }
            (Slot::Empty, Some(f)) => {
                let mut r = Reassembly::new(
                    f.count,
                    limits.fragment_bytes,
                    limits.max_message_bytes,
                    &mut inbox.pool,
                );
                let min = r.min_bytes(limits.fragment_bytes);
                if self.held_bytes + min > budget {
                    return Err(Violation::ByteWindowExceeded);
                }
                self.held_bytes += min;
                let done = r.insert(f, payload, limits.fragment_bytes)?;
                match done {
                    Some(data) => {
                        self.held_bytes -= min;
                        data
                    }
                    None => {
                        self.slots[offset] = Slot::Partial(r);
                        return Ok(());
                    }
                }
            }
            (Slot::Partial(r), Some(f)) => {
                let min = r.min_bytes(limits.fragment_bytes);
                match r.insert(f, payload, limits.fragment_bytes)? {
                    Some(data) => {
                        self.held_bytes -= min;
                        data
                    }
                    None => return Ok(()),
                }
            }
            (Slot::Partial(_), None) => return Err(Violation::BadFragment),
        };
        if self.ordered {
            // Partial messages were charged their smallest possible size; now the
            // real size is known, the window must still hold (a peer that
            // completes messages behind a gap cannot grow past it).
            if offset > 0 && self.held_bytes + complete.len() > budget {
                inbox.pool.give(complete);
                return Err(Violation::ByteWindowExceeded);
            }
            self.held_bytes += complete.len();
            self.slots[offset] = Slot::Complete(complete);
            while let Some(Slot::Complete(_)) = self.slots.front() {
                let Some(Slot::Complete(data)) = self.slots.pop_front() else {
                    unreachable!()
                };
                self.held_bytes -= data.len();
                self.base += 1;
                inbox.deliver(channel, data);
            }
        } else {
            self.slots[offset] = Slot::Delivered;
            inbox.deliver(channel, complete);
            while let Some(Slot::Delivered) = self.slots.front() {
                self.slots.pop_front();
                self.base += 1;
            }
        }
        Ok(())
    }

    fn clear(&mut self, pool: &mut BufferPool) {
        for slot in self.slots.drain(..) {
            match slot {
                Slot::Complete(data) => pool.give(data),
                Slot::Partial(r) => pool.give(r.data),
                Slot::Empty | Slot::Delivered => {}
            }
        }
        self.held_bytes = 0;
    }
}

/// Receiving state of an unreliable or sequenced channel.
///
/// Unreliable messages are never retransmitted, so the only duplicates are
/// duplicated packets, which the replay window already rejects: no message-level
/// filter is needed. Sequenced channels also drop anything not newer than the
/// latest message delivered.
#[derive(Debug)]
pub(crate) struct UnreliableRecv {
    sequenced: bool,
    /// Latest message ID delivered (sequenced channels).
    latest: Option<u64>,
    /// Fragmented messages below this ID get no new reassembly. A message was
    /// evicted at this ID, and its late fragments (or those of older messages)
    /// must not evict newer messages in turn.
    reassembly_floor: u64,
}

impl UnreliableRecv {
    fn new(sequenced: bool) -> Self {
        Self {
            sequenced,
            latest: None,
            reassembly_floor: 0,
        }
    }

    /// Whether message `id` would be delivered if it completed now.
    fn accepts(&self, id: u64) -> bool {
        !self.sequenced || self.latest.is_none_or(|latest| id > latest)
    }

    fn mark(&mut self, id: u64) {
        if self.sequenced {
            self.latest = Some(id);
        }
    }
}

/// A fragmented unreliable message being reassembled.
#[derive(Debug)]
struct UnreliableReassembly {
    channel: ChannelId,
    id: u64,
    reassembly: Reassembly,
    stamp: u64,
}

/// Receiving state of one channel, by kind.
#[derive(Debug)]
enum ChannelRecv {
    Reliable(ReliableRecv),
    Unreliable(UnreliableRecv),
}

/// Receiving state of every channel of a connection.
#[derive(Debug)]
pub(crate) struct RecvChannels {
    /// Indexed by channel ID (one allocation per connection).
    channels: Vec<ChannelRecv>,
    reassemblies: Vec<UnreliableReassembly>,
    max_reassemblies: usize,
    stamp: u64,
}

impl RecvChannels {
    pub fn new(kinds: impl Iterator<Item = ChannelKind>, max_reassemblies: usize) -> Self {
        let channels = kinds
            .map(|kind| match kind {
                ChannelKind::ReliableOrdered | ChannelKind::ReliableUnordered => {
                    ChannelRecv::Reliable(ReliableRecv::new(kind == ChannelKind::ReliableOrdered))
                }
                ChannelKind::Unreliable | ChannelKind::Sequenced => {
                    ChannelRecv::Unreliable(UnreliableRecv::new(kind == ChannelKind::Sequenced))
                }
            })
            .collect();
        Self {
            channels,
            reassemblies: Vec::new(),
            max_reassemblies,
            stamp: 0,
        }
    }

    /// The state of unreliable channel `c`, if it is one.
    fn unreliable_mut(&mut self, c: usize) -> Option<&mut UnreliableRecv> {
        match self.channels.get_mut(c) {
            Some(ChannelRecv::Unreliable(u)) => Some(u),
            _ => None,
        }
    }

    /// Handles one DATA or DATA_FRAGMENT frame on a known channel.
    pub fn on_frame(
        &mut self,
        channel: ChannelId,
        id: u64,
        fragment: Option<Fragment>,
        payload: &[u8],
        limits: FrameLimits,
        inbox: &mut Inbox,
    ) -> Result<(), Violation> {
        match fragment {
            Some(f) => Reassembly::validate(
                f,
                payload.len(),
                limits.fragment_bytes,
                limits.max_message_bytes,
            )?,
            None if payload.len() > limits.max_message_bytes => {
                return Err(Violation::MessageTooLarge)
            }
            None => {}
        }
        let c = channel as usize;
        let (sequenced, floor, f) = match self.channels.get_mut(c) {
            Some(ChannelRecv::Reliable(r)) => {
                return r.on_frame(channel, id, fragment, payload, limits, inbox)
            }
            Some(ChannelRecv::Unreliable(u)) if !u.accepts(id) => return Ok(()),
            Some(ChannelRecv::Unreliable(u)) => match fragment {
                None => {
                    u.mark(id);
                    let data = inbox.copy(payload);
                    inbox.deliver(channel, data);
                    return Ok(());
                }
                Some(f) => (u.sequenced, u.reassembly_floor, f),
            },
            None => return Err(Violation::UnknownChannel(channel)),
        };
        let pos = match self
            .reassemblies
            .iter()
            .position(|r| r.channel == channel && r.id == id)
        {
            Some(pos) => pos,
            None if id < floor => return Ok(()),
            None => {
                if self.reassemblies.len() >= self.max_reassemblies {
                    let oldest = (0..self.reassemblies.len())
                        .min_by_key(|&i| self.reassemblies[i].stamp)
                        .expect("table is full, so not empty");
                    let evicted = self.reassemblies.swap_remove(oldest);
                    if let Some(e) = self.unreliable_mut(evicted.channel as usize) {
                        e.reassembly_floor = e.reassembly_floor.max(evicted.id + 1);
                    }
                    inbox.pool.give(evicted.reassembly.data);
                }
                self.stamp += 1;
                self.reassemblies.push(UnreliableReassembly {
                    channel,
                    id,
                    reassembly: Reassembly::new(
                        f.count,
                        limits.fragment_bytes,
                        limits.max_message_bytes,
                        &mut inbox.pool,
                    ),
                    stamp: self.stamp,
                });
                self.reassemblies.len() - 1
            }
        };
        let done = self.reassemblies[pos]
            .reassembly
            .insert(f, payload, limits.fragment_bytes)?;
        if let Some(data) = done {
            self.reassemblies.swap_remove(pos);
            if let Some(u) = self.unreliable_mut(c) {
                u.mark(id);
            }
            if sequenced {
                // Older incomplete messages of this channel can never be delivered now.
                let pool = &mut inbox.pool;
                self.reassemblies.retain_mut(|r| {
                    let stale = r.channel == channel && r.id < id;
                    if stale {
                        pool.give(std::mem::take(&mut r.reassembly.data));
                    }
                    !stale
                });
            }
            inbox.deliver(channel, data);
        }
        Ok(())
    }

    /// Bytes held in reassembly and reorder buffers (for tests and stats).
    pub fn held_bytes(&self) -> usize {
        let reliable: usize = self
            .channels
            .iter()
            .map(|c| match c {
                ChannelRecv::Reliable(r) => r.held_bytes,
                ChannelRecv::Unreliable(_) => 0,
            })
            .sum();
        let unreliable: usize = self
            .reassemblies
            .iter()
            .map(|r| r.reassembly.data.len())
            .sum();
        reliable + unreliable
    }

    /// Frees the capacity of empty reorder windows and reassembly tables (an
    /// idle connection).
    pub fn release_idle(&mut self) {
        for c in &mut self.channels {
            if let ChannelRecv::Reliable(r) = c {
                if r.slots.is_empty() {
                    r.slots = VecDeque::new();
                }
            }
        }
        if self.reassemblies.is_empty() {
            self.reassemblies = Vec::new();
        }
    }

    /// Releases every buffer (connection closed).
    pub fn clear(&mut self, pool: &mut BufferPool) {
        for c in &mut self.channels {
            if let ChannelRecv::Reliable(r) = c {
                r.clear(pool);
            }
        }
        for r in self.reassemblies.drain(..) {
            pool.give(r.reassembly.data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FrameLimits = FrameLimits {
        fragment_bytes: 4,
        max_message_bytes: 64,
        window_bytes: 32,
    };

    fn channels() -> RecvChannels {
        RecvChannels::new(
            [
                ChannelKind::ReliableOrdered,
                ChannelKind::Unreliable,
                ChannelKind::ReliableUnordered,
                ChannelKind::Sequenced,
            ]
            .into_iter(),
            2,
        )
    }

    fn drain(inbox: &mut Inbox) -> Vec<(u8, Vec<u8>)> {
        inbox.queue.drain(..).collect()
    }

    #[test]
    fn ordered_waits_for_gaps_and_drops_duplicates() {
        let (mut ch, mut inbox) = (channels(), Inbox::new(8));
        ch.on_frame(0, 1, None, b"b", LIMITS, &mut inbox).unwrap();
        assert!(drain(&mut inbox).is_empty());
        ch.on_frame(0, 1, None, b"b", LIMITS, &mut inbox).unwrap();
        ch.on_frame(0, 0, None, b"a", LIMITS, &mut inbox).unwrap();
        assert_eq!(
            drain(&mut inbox),
            vec![(0, b"a".to_vec()), (0, b"b".to_vec())]
        );
        ch.on_frame(0, 0, None, b"a", LIMITS, &mut inbox).unwrap();
        assert!(drain(&mut inbox).is_empty());
    }

    #[test]
    fn unordered_delivers_at_once_exactly_once() {
        let (mut ch, mut inbox) = (channels(), Inbox::new(8));
        ch.on_frame(2, 3, None, b"d", LIMITS, &mut inbox).unwrap();
        ch.on_frame(2, 3, None, b"d", LIMITS, &mut inbox).unwrap();
        ch.on_frame(2, 0, None, b"a", LIMITS, &mut inbox).unwrap();
        assert_eq!(
            drain(&mut inbox),
            vec![(2, b"d".to_vec()), (2, b"a".to_vec())]
        );
    }

    #[test]
    fn reliable_window_is_enforced() {
        let (mut ch, mut inbox) = (channels(), Inbox::new(8));
        let err = ch.on_frame(0, RELIABLE_WINDOW_MESSAGES, None, b"x", LIMITS, &mut inbox);
        assert_eq!(err, Err(Violation::WindowExceeded));
        // 64 bytes budget (max of window and max message): 16 fragments-worth pending.
        let f = |index| Fragment { index, count: 16 };
        ch.on_frame(0, 1, Some(f(0)), b"abcd", LIMITS, &mut inbox)
            .unwrap();
        let err = ch.on_frame(0, 2, Some(f(0)), b"abcd", LIMITS, &mut inbox);
        assert_eq!(err, Err(Violation::ByteWindowExceeded));
    }

    #[test]
    fn fragments_reassemble_in_any_order() {
        let (mut ch, mut inbox) = (channels(), Inbox::new(8));
        let f = |index| Some(Fragment { index, count: 3 });
        ch.on_frame(2, 0, f(2), b"ij", LIMITS, &mut inbox).unwrap();
        ch.on_frame(2, 0, f(0), b"abcd", LIMITS, &mut inbox)
            .unwrap();
        ch.on_frame(2, 0, f(0), b"abcd", LIMITS, &mut inbox)
            .unwrap();
        assert!(drain(&mut inbox).is_empty());
        ch.on_frame(2, 0, f(1), b"efgh", LIMITS, &mut inbox)
            .unwrap();
        assert_eq!(drain(&mut inbox), vec![(2, b"abcdefghij".to_vec())]);
    }

    #[test]
    fn bad_fragments_are_violations() {
        let (mut ch, mut inbox) = (channels(), Inbox::new(8));
        let f = |index, count| Some(Fragment { index, count });
        assert_eq!(
            ch.on_frame(0, 0, f(0, 2), b"abc", LIMITS, &mut inbox),
            Err(Violation::BadFragment)
        );
        assert_eq!(
            ch.on_frame(0, 0, f(2, 2), b"abcd", LIMITS, &mut inbox),
            Err(Violation::BadFragment)
        );
        assert_eq!(
            ch.on_frame(0, 0, f(0, 1), b"abcd", LIMITS, &mut inbox),
            Err(Violation::BadFragment)
        );
        assert_eq!(
            ch.on_frame(0, 0, f(0, 17), b"abcd", LIMITS, &mut inbox),
            Err(Violation::MessageTooLarge)
        );
        ch.on_frame(0, 0, f(0, 2), b"abcd", LIMITS, &mut inbox)
            .unwrap();
        assert_eq!(
            ch.on_frame(0, 0, f(1, 3), b"ab", LIMITS, &mut inbox),
            Err(Violation::BadFragment)
        );
        assert_eq!(
            ch.on_frame(9, 0, None, b"a", LIMITS, &mut inbox),
            Err(Violation::UnknownChannel(9))
        );
    }

    #[test]
    fn unreliable_delivers_any_order_and_sequenced_never_goes_back() {
        let (mut ch, mut inbox) = (channels(), Inbox::new(8));
        for id in [5, 3, 4, 1000, 2] {
            ch.on_frame(1, id, None, &[id as u8], LIMITS, &mut inbox)
                .unwrap();
        }
        let got: Vec<u8> = drain(&mut inbox).into_iter().map(|(_, d)| d[0]).collect();
        assert_eq!(got, vec![5, 3, 4, 1000u32 as u8, 2]);
        for id in [5, 3, 6, 6, 4, 9] {
            ch.on_frame(3, id, None, &[id as u8], LIMITS, &mut inbox)
                .unwrap();
        }
        let got: Vec<u8> = drain(&mut inbox).into_iter().map(|(_, d)| d[0]).collect();
        assert_eq!(got, vec![5, 6, 9]);
    }

    #[test]
    fn unreliable_reassembly_table_is_bounded() {
        let (mut ch, mut inbox) = (channels(), Inbox::new(8));
        let f = |index| Some(Fragment { index, count: 2 });
        for id in 0..10 {
            ch.on_frame(1, id, f(0), b"abcd", LIMITS, &mut inbox)
                .unwrap();
            assert!(ch.held_bytes() <= 2 * 8);
        }
        // The two newest are still there; the oldest were evicted.
        ch.on_frame(1, 9, f(1), b"z", LIMITS, &mut inbox).unwrap();
        ch.on_frame(1, 0, f(1), b"z", LIMITS, &mut inbox).unwrap();
        assert_eq!(drain(&mut inbox), vec![(1, b"abcdz".to_vec())]);
    }
}
