//! Which send channel writes next into a packet: channels of higher priority
//! first, channels of equal priority in turns (the first one visited rotates
//! from packet to packet). The priority groups are computed once, as bitmasks
//! over channel IDs, so a packet's turn visits only the channels the
//! connection marks as having something to send (its `sendable` mask), in
//! O(1) per group when none has.

use crate::config::{ChannelId, MAX_CHANNELS};

// A channel ID must name one bit of a `u64` mask.
const _: () = assert!(MAX_CHANNELS <= u64::BITS as usize);

/// The bit of channel `channel` in a channel mask.
#[inline]
pub(super) fn channel_bit(channel: usize) -> u64 {
    1 << channel
}

/// Channels of one priority.
#[derive(Clone, Copy, Debug)]
struct PriorityGroup {
    /// The members' bits.
    mask: u64,
    /// Where the members start in [`SendSchedule::order`], and how many there are.
    start: usize,
    len: usize,
}

/// The send channels' visiting order (see the module docs).
#[derive(Debug)]
pub(super) struct SendSchedule {
    /// Channel IDs by descending priority, ascending ID within a priority.
    order: Box<[ChannelId]>,
    /// Runs of equal priority in `order`, highest priority first.
    groups: Box<[PriorityGroup]>,
    /// Counts the packets that carried data: the rotation of each group.
    round: usize,
}

impl SendSchedule {
    /// The schedule of channels with these priorities (indexed by channel ID).
    pub fn new(priorities: &[u8]) -> Self {
        assert!(
            priorities.len() <= MAX_CHANNELS,
            "at most {MAX_CHANNELS} channels"
        );
        let mut order: Vec<ChannelId> = (0..priorities.len() as ChannelId).collect();
        // Stable: ascending IDs within a priority.
        order.sort_by_key(|&c| std::cmp::Reverse(priorities[c as usize]));
        let mut groups = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let priority = priorities[order[start] as usize];
            let len = order[start..]
                .iter()
                .take_while(|&&c| priorities[c as usize] == priority)
                .count();
            let mask = order[start..start + len]
                .iter()
                .fold(0, |m, &c| m | channel_bit(c as usize));
            groups.push(PriorityGroup { mask, start, len });
            start += len;
        }
        Self {
            order: order.into_boxed_slice(),
            groups: groups.into_boxed_slice(),
            round: 0,
        }
    }

    /// The visiting order of the next packet carrying data, among the
    /// channels of `sendable`: by priority group, each group from its
    /// rotating first member.
    pub fn turn(&mut self, sendable: u64) -> Turn<'_> {
        self.round = self.round.wrapping_add(1);
        let mut turn = Turn {
            schedule: self,
            group: 0,
            sendable,
            now: 0,
            later: 0,
        };
        if sendable & sendable.wrapping_sub(1) == 0 {
            // One channel (or none) to visit: no order to work out.
            turn.group = turn.schedule.groups.len();
            turn.now = sendable;
        }
        turn
    }
}

/// A packet's visit of the channels (see [`SendSchedule::turn`]); yields
/// channel IDs.
#[derive(Debug)]
pub(super) struct Turn<'a> {
    schedule: &'a SendSchedule,
    /// Next group to enter.
    group: usize,
    sendable: u64,
    /// Members of the current group still to visit from the rotation's
    /// start up, then those below it.
    now: u64,
    later: u64,
}

impl Iterator for Turn<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        loop {
            if self.now != 0 {
                let channel = self.now.trailing_zeros() as usize;
                self.now &= self.now - 1;
                return Some(channel);
            }
            if self.later != 0 {
                self.now = std::mem::take(&mut self.later);
                continue;
            }
            let group = *self.schedule.groups.get(self.group)?;
            self.group += 1;
            let live = group.mask & self.sendable;
            if live == 0 {
                continue;
            }
            // Members are in ascending ID order: the members at and after the
            // rotation's first one, then those before it.
            let first = if group.len == 1 {
                self.schedule.order[group.start]
            } else {
                self.schedule.order[group.start + self.schedule.round % group.len]
            };
            let below = channel_bit(first as usize) - 1;
            self.now = live & !below;
            self.later = live & below;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The channels a turn visits.
    fn visit(schedule: &mut SendSchedule, sendable: u64) -> Vec<usize> {
        schedule.turn(sendable).collect()
    }

    #[test]
    fn equal_priorities_take_turns() {
        let mut s = SendSchedule::new(&[0, 0, 0, 0]);
        assert_eq!(visit(&mut s, 0b1111), [1, 2, 3, 0]);
        assert_eq!(visit(&mut s, 0b1111), [2, 3, 0, 1]);
        assert_eq!(visit(&mut s, 0b1011), [3, 0, 1]);
        assert_eq!(visit(&mut s, 0b1111), [0, 1, 2, 3]);
        assert_eq!(visit(&mut s, 0), Vec::<usize>::new());
    }

    #[test]
    fn higher_priorities_go_first_and_rotate_among_themselves() {
        // Channels 1 and 3 at priority 5, 0 and 2 at 0, 4 alone at 9.
        let mut s = SendSchedule::new(&[0, 5, 0, 5, 9]);
        assert_eq!(visit(&mut s, 0b11111), [4, 3, 1, 2, 0]);
        assert_eq!(visit(&mut s, 0b11111), [4, 1, 3, 0, 2]);
        assert_eq!(visit(&mut s, 0b00101), [2, 0]);
    }

    #[test]
    fn all_sixty_four_channels() {
        let mut s = SendSchedule::new(&[0; MAX_CHANNELS]);
        let all: Vec<usize> = visit(&mut s, u64::MAX);
        assert_eq!(all.len(), 64);
        assert_eq!(all[0], 1);
        assert_eq!(all[63], 0);
    }
}
