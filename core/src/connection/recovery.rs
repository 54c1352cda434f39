//! What the peer's acknowledgements resolve (PROTOCOL.md §6.2, §6.3): each
//! ACK frame marks its packets acknowledged (their reliable fragments
//! acknowledged in their channels, an RTT sample from the largest), then the
//! packets it shows missing are declared lost and their reliable fragments
//! queued for retransmission; the probe timer covers a silent peer.

use super::clock::{Nanos, NEVER};
use super::schedule::channel_bit;
use super::sent::{PacketState, SentPacket};
use super::{Connection, MAX_PACKET_THRESHOLD, MAX_TIME_THRESHOLD_EIGHTHS, NANOS_PER_MICRO};
use crate::error::Violation;
use crate::frame::AckFrame;

impl Connection {
    /// Applies an ACK frame of an authenticated packet.
    pub(super) fn on_ack(&mut self, now: Nanos, ack: &AckFrame<'_>) -> Result<(), Violation> {
        if ack.largest() >= self.next_pn {
            return Err(Violation::AckOfUnsentPacket);
        }
        let mut largest_newly_acked: Option<(u64, Nanos)> = None;
        let first_kept = self.sent.first_pn();
        if ack.range_count() == 1 {
            // The common case: one range, no pairs to decode.
            let (lo, hi) = (ack.smallest(), ack.largest());
            if hi >= first_kept {
                self.on_range_acked(
                    lo.max(first_kept),
                    hi,
                    ack.largest(),
                    &mut largest_newly_acked,
                );
            }
        } else {
            for range in ack.ranges() {
                let (lo, hi) = (*range.start(), *range.end());
                if hi < first_kept {
                    break;
                }
                self.on_range_acked(
                    lo.max(first_kept),
                    hi,
                    ack.largest(),
                    &mut largest_newly_acked,
                );
            }
        }
        self.largest_acked = Some(
            self.largest_acked
                .map_or(ack.largest(), |l| l.max(ack.largest())),
        );
        if let Some((pn, time_sent)) = largest_newly_acked {
            if pn == ack.largest() {
                let delay = ack
                    .ack_delay_us()
                    .saturating_mul(NANOS_PER_MICRO)
                    .min(self.timing.max_ack_delay);
                self.rtt.update_nanos(now.saturating_sub(time_sent), delay);
            }
            self.pto_backoff = 0;
        }
        self.sent.pop_resolved();
        if self.detect_lost(now) {
            self.sent.pop_resolved();
        }
        Ok(())
    }

    /// Resolves the packets `lo..=hi` of an ACK frame whose largest is
    /// `frame_largest`, noting the largest newly acknowledged one and when it
    /// was sent.
    #[inline(always)]
    fn on_range_acked(
        &mut self,
        lo: u64,
        hi: u64,
        frame_largest: u64,
        largest_newly_acked: &mut Option<(u64, Nanos)>,
    ) {
        // `lo..=hi` (most often one packet) without RangeInclusive's
        // exhaustion flag (`hi` may be the largest packet number).
        let mut pn = lo;
        loop {
            self.on_packet_in_ack(pn, frame_largest, largest_newly_acked);
            if pn >= hi {
                break;
            }
            pn += 1;
        }
    }

    /// Resolves packet `pn`, acknowledged by an ACK frame whose largest is
    /// `frame_largest` (see [`Connection::on_range_acked`]).
    #[inline(always)]
    fn on_packet_in_ack(
        &mut self,
        pn: u64,
        frame_largest: u64,
        largest_newly_acked: &mut Option<(u64, Nanos)>,
    ) {
        let packet = match self.sent.resolve(pn, PacketState::Resolved) {
            Ok(packet) => packet,
            Err(PacketState::Lost) => {
                // Declared lost, yet it arrived: the link reorders more than
                // we allowed for. Be more patient from now on.
                self.stats.spurious_losses += 1;
                let distance = frame_largest - pn + 1;
                self.packet_threshold = self
                    .packet_threshold
                    .max(distance)
                    .min(MAX_PACKET_THRESHOLD);
                self.time_threshold_eighths =
                    (self.time_threshold_eighths + 1).min(MAX_TIME_THRESHOLD_EIGHTHS);
                return;
            }
            Err(_) => return,
        };
        if largest_newly_acked.is_none_or(|(l, _)| pn > l) {
            *largest_newly_acked = Some((pn, packet.time_sent));
        }
        self.on_packet_acked(pn, &packet);
    }

    #[inline(always)]
    fn on_packet_acked(&mut self, pn: u64, packet: &SentPacket) {
        self.keys.on_packet_acked(pn);
        if let Some(largest) = packet.largest_ack_sent {
            // The peer has seen an ACK up to `largest`; it need not hear of them again.
            self.ack.ranges.remove_below(largest + 1);
        }
        if packet.frames_start == packet.frames_end {
            return; // no reliable fragments (an unreliable or control packet)
        }
        for f in self.sent.frames_of(packet) {
            let channel = &mut self.send_channels[f.channel as usize];
            let bytes = channel.queued_bytes();
            let completed = channel.on_fragment_acked(f.message_id, f.index, &mut self.send_pool);
            self.queued.bytes -= bytes - channel.queued_bytes();
            self.queued.messages -= completed;
        }
    }

    /// Declares lost the packets that the acknowledgements show are missing
    /// (PROTOCOL.md §6.3) and arms the timer for those not yet overdue.
    /// Returns whether any was declared lost.
    #[inline]
    pub(super) fn detect_lost(&mut self, now: Nanos) -> bool {
        self.loss_time = NEVER;
        let Some(largest) = self.largest_acked else {
            return false;
        };
        // The common case, in O(1): no record is kept below the largest
        // acknowledged packet (resolved records are popped from the front).
        if self.sent.first_pn() >= largest {
            return false;
        }
        self.detect_lost_below(largest, now)
    }

    /// [`Connection::detect_lost`] when records are kept below `largest`,
    /// the largest acknowledged packet.
    #[inline(never)]
    fn detect_lost_below(&mut self, largest: u64, now: Nanos) -> bool {
        let first = self.sent.first_pn();
        let loss_delay = self
            .rtt
            .loss_delay_nanos()
            .saturating_mul(u64::from(self.time_threshold_eighths))
            / 9;
        let threshold = self.packet_threshold;
        let mut any_lost = false;
        // Records run contiguously from `first` to past `largest` (it was
        // sent): one pass over those below it.
        for pn in first..largest {
            let Some(sent) = self.sent.in_flight_sent_at(pn) else {
                continue;
            };
            let lost_at = sent.saturating_add(loss_delay);
            if largest - pn >= threshold || lost_at <= now {
                self.declare_lost(pn);
                any_lost = true;
            } else {
                self.loss_time = self.loss_time.min(lost_at);
            }
        }
        any_lost
    }

    pub(super) fn declare_lost(&mut self, pn: u64) {
        let Ok(packet) = self.sent.resolve(pn, PacketState::Lost) else {
            return;
        };
        self.stats.packets_lost += 1;
        for f in self.sent.frames_of(&packet) {
            let channel = f.channel as usize;
            self.send_channels[channel].on_fragment_lost(f.message_id, f.index);
            if self.send_channels[channel].has_pending() {
                self.sendable |= channel_bit(channel);
            }
        }
    }

    /// When the probe timer fires ([`NEVER`] if not armed).
    pub(super) fn pto_deadline(&self) -> Nanos {
        let Some(last) = self.sent.last_eliciting_sent() else {
            return NEVER;
        };
        let pto = self.rtt.pto_nanos(self.timing.max_ack_delay);
        last.saturating_add(pto.saturating_mul(1 << self.pto_backoff))
    }
}
