//! When to acknowledge (PROTOCOL.md §6.1): the set of received packet numbers
//! and the rules that decide between riding on the next outgoing packet and
//! sending an ACK-only packet.

use super::clock::{Nanos, NEVER};
use crate::ack::AckRanges;

/// Acknowledgement state of the receiving direction.
#[derive(Debug)]
pub(super) struct AckState {
    /// Packet numbers received and not yet known to be known by the peer.
    pub ranges: AckRanges,
    /// Whether `ranges` has news the peer has not been sent.
    pending: bool,
    /// Ack-eliciting packets received since the last ACK was sent.
    eliciting_unacked: u32,
    /// When the oldest unacknowledged ack-eliciting packet must be
    /// acknowledged ([`NEVER`] if none is waiting).
    deadline: Nanos,
    /// An ACK should go out with the next packet, even alone.
    immediate: bool,
    /// When the largest packet number in `ranges` arrived (for the ack delay).
    largest_received_at: Option<Nanos>,
}

impl AckState {
    pub fn new() -> Self {
        Self {
            ranges: AckRanges::new(),
            pending: false,
            eliciting_unacked: 0,
            deadline: NEVER,
            immediate: false,
            largest_received_at: None,
        }
    }

    /// Records an authenticated packet; `max_ack_delay` and
    /// `eliciting_threshold` are the configuration's.
    #[inline(always)]
    pub fn on_packet_received(
        &mut self,
        now: Nanos,
        pn: u64,
        ack_eliciting: bool,
        max_ack_delay: Nanos,
        eliciting_threshold: u32,
    ) {
        let first_ever = self.largest_received_at.is_none();
        let outcome = self.ranges.insert(pn);
        if !outcome.is_new() {
            return;
        }
        if self.ranges.largest() == Some(pn) {
            self.largest_received_at = Some(now);
        }
        self.pending = true;
        if !ack_eliciting {
            return;
        }
        self.eliciting_unacked += 1;
        // The first packet is answered at once: it completes the peer's connect.
        if first_ever || outcome.is_irregular() || self.eliciting_unacked >= eliciting_threshold {
            self.immediate = true;
        }
        if self.deadline == NEVER {
            self.deadline = now.saturating_add(max_ack_delay);
        }
    }

    /// Whether the next packet should carry an ACK frame.
    pub fn has_news(&self) -> bool {
        self.pending && !self.ranges.is_empty()
    }

    /// Whether an ACK must go out now, alone if nothing else does.
    pub fn is_due(&self, now: Nanos) -> bool {
        self.has_news() && (self.immediate || now >= self.deadline)
    }

    /// When a delayed acknowledgement becomes due ([`NEVER`] if none is waiting).
    pub fn deadline(&self) -> Nanos {
        if !self.has_news() {
            return NEVER;
        }
        if self.immediate {
            return self.largest_received_at.unwrap_or(self.deadline);
        }
        self.deadline
    }

    /// The delay to report for the largest acknowledged packet, in nanoseconds.
    pub fn ack_delay(&self, now: Nanos) -> Nanos {
        self.largest_received_at
            .map_or(0, |t| now.saturating_sub(t))
    }

    /// An ACK frame went out.
    pub fn on_ack_sent(&mut self) {
        self.pending = false;
        self.eliciting_unacked = 0;
        self.deadline = NEVER;
        self.immediate = false;
    }
}
