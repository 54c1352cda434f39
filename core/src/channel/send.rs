//! The sending half of a channel: queued messages, their fragments, the reliable
//! flow window (PROTOCOL.md §6.4) and the queue of fragments to retransmit.

use std::collections::VecDeque;

use crate::config::{ChannelConfig, ChannelId, ChannelKind, RELIABLE_WINDOW_MESSAGES};
use crate::frame::{encode_data_header, Fragment};
use crate::pool::BufferPool;
use crate::varint::Writer;

/// A reliable fragment placed in a packet: what to retransmit if the packet is
/// lost, and what to mark acknowledged if it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FragmentRef {
    pub channel: ChannelId,
    pub message_id: u64,
    pub index: u32,
}

/// One queued message.
#[derive(Debug)]
struct OutMessage {
    id: u64,
    data: Vec<u8>,
    /// 1 for a message sent as one DATA frame.
    fragment_count: u32,
    /// Fragments `next_unsent..fragment_count` were never sent.
    next_unsent: u32,
    /// Reliable only: fragments acknowledged so far, and which (fragmented only).
    acked: u32,
    acked_bits: Vec<u64>,
}

impl OutMessage {
    fn is_done(&self) -> bool {
        self.acked == self.fragment_count
    }

    fn is_fragment_acked(&self, index: u32) -> bool {
        if self.fragment_count == 1 {
            self.acked == 1
        } else {
            self.acked_bits[(index / 64) as usize] & (1 << (index % 64)) != 0
        }
    }
}

/// The sending half of one channel.
#[derive(Debug)]
pub(crate) struct SendChannel {
    id: ChannelId,
    kind: ChannelKind,
    priority: u8,
    max_message_bytes: usize,
    /// Reliable: every message not yet fully acknowledged, from the lowest
    /// unacknowledged ID, contiguous. Unreliable: messages not yet fully sent.
    queue: VecDeque<OutMessage>,
    next_id: u64,
    /// Index in `queue` of the first message with unsent fragments.
    cursor: usize,
    /// Reliable: bytes of the messages from the front up to the cursor that have
    /// started going out (the flow window's use).
    started_bytes: usize,
    /// Reliable fragments declared lost, to send again before new data.
    retransmit: VecDeque<(u64, u32)>,
    queued_bytes: usize,
}

impl SendChannel {
    pub fn new(id: ChannelId, config: &ChannelConfig) -> Self {
        Self {
            id,
            kind: config.kind,
            priority: config.priority,
            max_message_bytes: config.max_message_bytes,
            queue: VecDeque::new(),
            next_id: 0,
            cursor: 0,
            started_bytes: 0,
            retransmit: VecDeque::new(),
            queued_bytes: 0,
        }
    }

    pub fn priority(&self) -> u8 {
        self.priority
    }

    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    pub fn is_reliable(&self) -> bool {
        self.kind.is_reliable()
    }

    /// Bytes held (unsent or unacknowledged).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Messages held.
    pub fn queued_messages(&self) -> usize {
        self.queue.len()
    }

    /// Whether reliable data is unacknowledged.
    pub fn has_unacked(&self) -> bool {
        self.is_reliable() && !self.queue.is_empty()
    }

    /// Queues a message (the caller checked size and queue limits).
    #[inline]
    pub fn push(&mut self, data: &[u8], fragment_bytes: usize, pool: &mut BufferPool) {
        let mut buf = pool.take(data.len());
        buf.extend_from_slice(data);
        let fragment_count = if data.len() <= fragment_bytes {
            1
        } else {
            data.len().div_ceil(fragment_bytes) as u32
        };
        let acked_bits = if self.is_reliable() && fragment_count > 1 {
            vec![0u64; fragment_count.div_ceil(64) as usize]
        } else {
            Vec::new()
        };
        self.queued_bytes += data.len();
        self.queue.push_back(OutMessage {
            id: self.next_id,
            data: buf,
            fragment_count,
            next_unsent: 0,
            acked: 0,
            acked_bits,
        });
        self.next_id += 1;
    }

    /// Whether anything waits to be sent: an unsent fragment or a
    /// retransmission (which the flow window may still hold back, see
    /// [`SendChannel::has_sendable`]). Changes only in `push`, `write_frames`,
    /// `on_fragment_lost` and `clear` (acknowledgements release messages that
    /// were fully sent): the connection mirrors it in a bitmask.
    #[inline]
    pub fn has_pending(&self) -> bool {
        self.cursor < self.queue.len() || !self.retransmit.is_empty()
    }

    /// Whether `write_frames` would write something now.
    pub fn has_sendable(&self, window_bytes: usize) -> bool {
        !self.retransmit.is_empty() || self.can_start_next(window_bytes)
    }

    /// Whether the message at the cursor may send a fragment (flow window).
    fn can_start_next(&self, window_bytes: usize) -> bool {
        let Some(msg) = self.queue.get(self.cursor) else {
            return false;
        };
        if !self.is_reliable() || msg.next_unsent > 0 || self.cursor == 0 {
            return true;
        }
        let lowest = self.queue[0].id;
        msg.id < lowest + RELIABLE_WINDOW_MESSAGES
            && self.started_bytes + msg.data.len() <= window_bytes
    }

    /// Writes retransmissions, then new fragments, while they fit in `w`.
    /// Reliable fragments written are reported to `record`. Returns the number
    /// of frames written.
    pub fn write_frames(
        &mut self,
        w: &mut Writer<'_>,
        fragment_bytes: usize,
        window_bytes: usize,
        pool: &mut BufferPool,
        mut record: impl FnMut(FragmentRef, bool),
    ) -> usize {
        let mut written = 0;
        while let Some(&(id, index)) = self.retransmit.front() {
            let Some(pos) = self.position(id) else {
                self.retransmit.pop_front();
                continue;
            };
            if self.queue[pos].is_fragment_acked(index) {
                self.retransmit.pop_front();
                continue;
            }
            if !Self::write_fragment(w, self.id, &self.queue[pos], index, fragment_bytes) {
                return written;
            }
            self.retransmit.pop_front();
            record(
                FragmentRef {
                    channel: self.id,
                    message_id: id,
                    index,
                },
                true,
            );
            written += 1;
        }
        while self.can_start_next(window_bytes) {
            let cursor = self.cursor;
            let msg = &self.queue[cursor];
            let index = msg.next_unsent;
            if !Self::write_fragment(w, self.id, msg, index, fragment_bytes) {
                break;
            }
            written += 1;
            let reliable = self.is_reliable();
            let msg = &mut self.queue[cursor];
            if index == 0 && reliable {
                self.started_bytes += msg.data.len();
            }
            msg.next_unsent += 1;
            let finished = msg.next_unsent == msg.fragment_count;
            if reliable {
                record(
                    FragmentRef {
                        channel: self.id,
                        message_id: msg.id,
                        index,
                    },
                    false,
                );
                if finished {
                    self.cursor += 1;
                }
            } else if finished {
                let msg = self.queue.pop_front().expect("cursor message exists");
                self.queued_bytes -= msg.data.len();
                pool.give(msg.data);
            }
        }
        written
    }

    fn position(&self, id: u64) -> Option<usize> {
        let front = self.queue.front()?.id;
        let pos = id.checked_sub(front)? as usize;
        (pos < self.queue.len()).then_some(pos)
    }

    /// Writes fragment `index` of `msg` if it fits; returns whether it did.
    #[inline(always)]
    fn write_fragment(
        w: &mut Writer<'_>,
        channel: ChannelId,
        msg: &OutMessage,
        index: u32,
        fragment_bytes: usize,
    ) -> bool {
        let (payload, fragment) = if msg.fragment_count == 1 {
            (&msg.data[..], None)
        } else {
            let start = index as usize * fragment_bytes;
            let end = (start + fragment_bytes).min(msg.data.len());
            (
                &msg.data[start..end],
                Some(Fragment {
                    index,
                    count: msg.fragment_count,
                }),
            )
        };
        // Writes nothing unless the header and the payload fit.
        if encode_data_header(w, channel, msg.id, fragment, payload.len()).is_err() {
            return false;
        }
        w.put_bytes(payload)
            .expect("encode_data_header checked the payload fits");
        true
    }

    /// A reliable fragment was acknowledged. Returns the number of messages
    /// completed (and released) by it.
    pub fn on_fragment_acked(&mut self, id: u64, index: u32, pool: &mut BufferPool) -> usize {
        let Some(pos) = self.position(id) else {
            return 0;
        };
        let msg = &mut self.queue[pos];
        if msg.is_fragment_acked(index) || index >= msg.fragment_count {
            return 0;
        }
        if msg.fragment_count > 1 {
            msg.acked_bits[(index / 64) as usize] |= 1 << (index % 64);
        }
        msg.acked += 1;
        let mut completed = 0;
        while self.queue.front().is_some_and(OutMessage::is_done) {
            let msg = self.queue.pop_front().expect("front exists");
            self.queued_bytes -= msg.data.len();
            self.started_bytes -= msg.data.len();
            self.cursor -= 1;
            pool.give(msg.data);
            completed += 1;
        }
        completed
    }

    /// A reliable fragment was in a lost packet: send it again unless acknowledged.
    pub fn on_fragment_lost(&mut self, id: u64, index: u32) {
        if let Some(pos) = self.position(id) {
            if !self.queue[pos].is_fragment_acked(index) {
                self.retransmit.push_back((id, index));
            }
        }
    }

    /// Frees the capacity of empty queues (an idle connection).
    pub fn release_idle(&mut self) {
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
        }
        if self.retransmit.is_empty() {
            self.retransmit = VecDeque::new();
        }
    }

    /// Releases everything (connection closed).
    pub fn clear(&mut self, pool: &mut BufferPool) {
        for msg in self.queue.drain(..) {
            pool.give(msg.data);
        }
        self.retransmit.clear();
        self.cursor = 0;
        self.started_bytes = 0;
        self.queued_bytes = 0;
    }
}
