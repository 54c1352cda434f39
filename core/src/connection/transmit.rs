//! The sending side of [`Connection`]: [`Connection::poll_transmit`] builds
//! each datagram (ACK first, then a KEY_UPDATE, then data from the channels by
//! priority and in turns, then a PING if nothing else elicits an
//! acknowledgement), seals it and records it for loss detection; and
//! `may_transmit`, the cheap check an endpoint makes instead of a
//! `poll_transmit` that would return `None`.

use std::time::Instant;

use super::clock::Nanos;
use super::schedule::channel_bit;
use super::sent::{PacketState, SentPacket};
use super::{Connection, State, MAX_PACKET_NUMBER, NANOS_PER_MICRO};
use crate::crypto::TAG_BYTES;
use crate::error::{close_code, DisconnectReason};
use crate::frame::Frame;
use crate::packet::{truncate_packet_number, Header, HEADER_BYTES};
use crate::varint::Writer;

impl Connection {
    /// Writes the next datagram to send into `buf` and returns its length, or
    /// `None` when nothing needs sending now. Call until it returns `None`.
    ///
    /// `buf` must hold at least `max_datagram_bytes` (1200 by default); with a
    /// smaller buffer nothing is written and `None` is returned.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        // Most calls find nothing to send (the last call of every drain, a
        // driver's pass with nothing queued), which `may_transmit` tells for
        // a fraction of what building nothing costs.
        if !self.may_transmit(now) {
            return None;
        }
        self.poll_transmit_unguarded(now, buf)
    }

    /// [`Connection::poll_transmit`] without its `may_transmit` shortcut, for
    /// callers that have just asked `may_transmit` themselves or that visit
    /// the connection because it may have something to send (an endpoint's
    /// send queue). The tests check that the shortcut never withholds a
    /// datagram.
    pub(crate) fn poll_transmit_unguarded(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<usize> {
        let generation = self.keys.generation();
        let len = self.transmit(now, buf);
        // Nothing sent, no key update started: nothing moved the deadline.
        if len.is_some() || self.keys.generation() != generation {
            self.refresh_deadline();
        }
        len
    }

    /// Whether [`Connection::poll_transmit`] at `now` may return a datagram
    /// (`false`: it would return `None`), at a fraction of its cost: how
    /// `poll_transmit` itself begins, and what an endpoint asks after a
    /// datagram went out to know whether to visit the connection again. Like
    /// `poll_transmit`, it starts a key update that is due.
    pub(crate) fn may_transmit(&mut self, at: Instant) -> bool {
        match self.state {
            State::Closed => return false,
            State::Closing { .. } => return true,
            State::Established => {}
        }
        // A superset of `transmit`'s conditions (a pending channel may still
        // be held back by its flow window), cheapest first.
        if self.sendable != 0 || self.ping_pending || self.next_pn >= MAX_PACKET_NUMBER {
            return true;
        }
        let now = self.clock.ticks(at);
        if self.ack.is_due(now)
            || now
                >= self
                    .last_sent
                    .saturating_add(self.timing.keep_alive_interval)
        {
            return true;
        }
        // Nothing to send, so `poll_transmit` will not be called: do what it
        // does first, start a key update that is due (its frame waits for
        // the next packet).
        if self.key_update_due(now) {
            self.keys.initiate(at);
            self.refresh_deadline();
        }
        false
    }

    /// [`Connection::poll_transmit`] but for the cached deadline.
    fn transmit(&mut self, at: Instant, buf: &mut [u8]) -> Option<usize> {
        let max = self.config.max_datagram_bytes;
        if buf.len() < max {
            return None;
        }
        let buf = &mut buf[..max];
        self.debug_check_sendable();
        let close_code = match self.state {
            State::Closed => return None,
            State::Closing { code, packets_left } => {
                if packets_left <= 1 {
                    self.state = State::Closed;
                } else {
                    self.state = State::Closing {
                        code,
                        packets_left: packets_left - 1,
                    };
                }
                Some(code)
            }
            State::Established => None,
        };
        if close_code.is_none() && self.next_pn >= MAX_PACKET_NUMBER {
            self.disconnect(
                DisconnectReason::PacketNumbersExhausted,
                Some(close_code::PACKET_NUMBERS_EXHAUSTED),
            );
            return self.transmit(at, buf);
        }
        let now = self.clock.ticks(at);
        if close_code.is_none() && self.key_update_due(now) {
            self.keys.initiate(at);
        }

        let window_bytes = self.config.reliable_window_bytes;
        // Only channels with something pending can have something sendable.
        let data_ready = close_code.is_none()
            && self.sendable != 0
            && self.sent.in_flight() < self.config.max_in_flight_packets
            && self.any_sendable(window_bytes);
        let ping_due = close_code.is_none()
            && (self.ping_pending
                || now
                    >= self
                        .last_sent
                        .saturating_add(self.timing.keep_alive_interval));
        let ack_due = self.ack.is_due(now);
        if close_code.is_none() && !data_ready && !ping_due && !ack_due {
            return None;
        }

        let (head, rest) = buf.split_at_mut(HEADER_BYTES);
        let payload_capacity = rest.len() - TAG_BYTES;
        let mut w = Writer::new(&mut rest[..payload_capacity]);
        let mut eliciting = false;
        let mut largest_ack_sent = None;
        if self.ack.has_news() {
            let delay_us = self.ack.ack_delay(now) / NANOS_PER_MICRO;
            if self
                .ack
                .ranges
                .encode_ack(&mut w, delay_us, crate::ack::MAX_ACK_RANGES_SENT)
                .is_ok()
            {
                largest_ack_sent = self.ack.ranges.largest();
                self.ack.on_ack_sent();
            }
        }
        let frames_start = self.sent.frames_end();
        if let Some(code) = close_code {
            Frame::Disconnect { code }
                .encode(&mut w)
                .expect("an empty packet holds a DISCONNECT");
        } else {
            if let Some(generation) = self.keys.take_pending_key_update_frame() {
                if (Frame::KeyUpdate { generation }).encode(&mut w).is_ok() {
                    eliciting = true;
                }
            }
            if data_ready {
                let fragment_bytes = self.config.fragment_bytes();
                for ch in self.schedule.turn(self.sendable) {
                    // A channel the flow window holds back writes nothing.
                    let channel = &mut self.send_channels[ch];
                    let held = (channel.queued_bytes(), channel.queued_messages());
                    let sent = &mut self.sent;
                    let stats = &mut self.stats;
                    let written = channel.write_frames(
                        &mut w,
                        fragment_bytes,
                        window_bytes,
                        &mut self.send_pool,
                        |f, retransmission| {
                            sent.push_frame(f);
                            if retransmission {
                                stats.frames_retransmitted += 1;
                            }
                        },
                    );
                    if written > 0 {
                        eliciting = true;
                    }
                    // Unreliable messages leave the queue once sent.
                    self.queued.bytes -= held.0 - channel.queued_bytes();
                    self.queued.messages -= held.1 - channel.queued_messages();
                    if !channel.has_pending() {
                        self.sendable &= !channel_bit(ch);
                    }
                }
            }
            if ping_due && !eliciting && Frame::Ping.encode(&mut w).is_ok() {
                eliciting = true;
            }
            if eliciting {
                self.ping_pending = false;
            }
        }
        let payload_len = w.position();
        if payload_len == 0 {
            return None;
        }

        let pn = self.next_pn;
        self.next_pn += 1;
        let header = Header {
            key_phase: self.keys.send_phase(),
            destination: self.peer_cid,
            packet_number_low: truncate_packet_number(pn),
        };
        let head: &mut [u8; HEADER_BYTES] = head.try_into().expect("split at HEADER_BYTES");
        header.encode(head);
        let tag = self
            .keys
            .send_key()
            .seal_in_place(pn, head, &mut rest[..payload_len]);
        rest[payload_len..payload_len + TAG_BYTES].copy_from_slice(&tag);
        self.keys.on_packet_sent(pn, at);
        let tracked = eliciting && close_code.is_none();
        self.sent.push(
            pn,
            SentPacket {
                time_sent: now,
                state: if tracked {
                    PacketState::InFlight
                } else {
                    PacketState::Resolved
                },
                frames_start,
                frames_end: self.sent.frames_end(),
                largest_ack_sent,
            },
        );
        if !tracked {
            self.sent.pop_resolved();
        }
        let len = HEADER_BYTES + payload_len + TAG_BYTES;
        self.last_sent = now;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += len as u64;
        if !eliciting && close_code.is_none() {
            self.stats.ack_only_packets_sent += 1;
        }
        Some(len)
    }

    /// Whether a channel of the `sendable` mask may write now (the flow
    /// window may hold back a reliable one).
    fn any_sendable(&self, window_bytes: usize) -> bool {
        let mut bits = self.sendable;
        while bits != 0 {
            if self.send_channels[bits.trailing_zeros() as usize].has_sendable(window_bytes) {
                return true;
            }
            bits &= bits - 1;
        }
        false
    }

    /// Whether an automatic key update is due (see
    /// [`KeyPhases::should_initiate`]), in integer time: the end of the
    /// generation's interval is computed once per generation.
    fn key_update_due(&mut self, now: Nanos) -> bool {
        if !self.keys.can_initiate() {
            return false;
        }
        if self.keys.packets_sent_in_phase() >= self.config.key_update_packets {
            return true;
        }
        let tag = self.keys.generation() + 1;
        if self.key_interval_end.0 != tag {
            // A confirmed phase has sent a packet, so it has a start.
            let Some(start) = self.keys.phase_started_at() else {
                return false;
            };
            let end = self
                .clock
                .ticks_of(start)
                .saturating_add(self.timing.key_update_interval);
            self.key_interval_end = (tag, end);
        }
        now >= self.key_interval_end.1
    }
}
