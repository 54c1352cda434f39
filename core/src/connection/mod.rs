//! One established FastNet connection as a sans-IO state machine: datagrams and
//! the current time go in, datagrams to send, delivered messages, events and the
//! next deadline come out. It owns no socket and reads no clock.
//!
//! A driver repeats, in any order that suits it:
//! * [`Connection::handle_datagram`] for each datagram received for this connection;
//! * [`Connection::handle_timeout`] once [`Connection::poll_timeout`] has passed;
//! * [`Connection::poll_transmit`] until it returns `None`, sending each datagram;
//! * [`Connection::recv_into`] and [`Connection::poll_event`] to hand messages and
//!   events to the application, and [`Connection::send`] to queue messages.

mod ack_state;
mod clock;
mod recovery;
mod schedule;
mod sent;
mod transmit;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channel::{FrameLimits, Inbox, RecvChannels, SendChannel};
use crate::config::{ChannelId, ConfigError, TransportConfig};
use crate::crypto::Secret;
use crate::error::{close_code, DisconnectReason, DropReason, SendError, Violation};
use crate::frame::{Frame, FrameReader};
use crate::keys::{KeyPhases, OpenError};
use crate::packet::{decode_packet_number, ConnectionId, Header, HeaderError, HEADER_BYTES};
use crate::pool::BufferPool;
use crate::replay::{ReplayError, ReplayWindow};
use crate::rtt::RttEstimator;
use crate::stats::ConnectionStats;
use crate::varint::Reader;

use ack_state::AckState;
use clock::{span, Clock, Nanos, NEVER};
use schedule::{channel_bit, SendSchedule};
use sent::SentPackets;

/// Packets at least this many numbers older than an acknowledged one are lost
/// (RFC 9002's initial packet threshold: tolerates a little reordering).
const INITIAL_PACKET_THRESHOLD: u64 = 3;
/// The packet threshold grows when losses turn out spurious (a jittery link
/// reorders more), up to this many packets.
const MAX_PACKET_THRESHOLD: u64 = 256;
/// The time threshold starts at 9/8 of the RTT (RFC 9002) and grows by 1/8 per
/// spurious loss up to this many eighths (2 RTTs).
const MAX_TIME_THRESHOLD_EIGHTHS: u32 = 16;
/// Most consecutive PTO doublings: caps the probe interval near 64 PTOs.
const MAX_PTO_BACKOFF_EXPONENT: u32 = 6;
/// Packets carrying DISCONNECT when closing (one lost close should not leave
/// the peer waiting for its idle timeout).
const CLOSE_PACKETS: u8 = 3;
/// Failed authentications tolerated on one connection (PROTOCOL.md §2.2).
const MAX_AUTHENTICATION_FAILURES: u64 = 1 << 36;
/// Nanoseconds in a microsecond (ACK delays travel in microseconds).
const NANOS_PER_MICRO: u64 = 1_000;
/// Largest packet number ever sent: the 62-bit space of PROTOCOL.md §1.3.
const MAX_PACKET_NUMBER: u64 = (1 << 62) - 1;
/// Message buffers kept for reuse on each side of a connection (at most
/// 32 x 2 KiB: the steady state of small messages allocates nothing, and an
/// idle connection holds little).
const POOLED_BUFFERS: usize = 32;
/// Keep-alive intervals without an application message, sent or delivered,
/// after which a connection frees its pooled buffers and spare queue capacity
/// (see [`Connection::release_if_idle`]).
const IDLE_RELEASE_KEEP_ALIVES: u32 = 4;

/// The configuration's durations in nanoseconds (see [`clock`]), converted once.
#[derive(Clone, Copy, Debug)]
struct Timing {
    idle_timeout: Nanos,
    keep_alive_interval: Nanos,
    max_ack_delay: Nanos,
    key_update_interval: Nanos,
}

impl Timing {
    fn new(config: &TransportConfig) -> Self {
        Self {
            idle_timeout: span(config.idle_timeout),
            keep_alive_interval: span(config.keep_alive_interval),
            max_ack_delay: span(config.max_ack_delay),
            key_update_interval: span(config.key_update_interval),
        }
    }
}

/// Running totals of the send channels' queues (their sums, kept up to date
/// wherever a channel's queue changes, so `send` checks its limits in O(1)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Queued {
    bytes: usize,
    messages: usize,
}

/// What the handshake hands the protocol core: the connection IDs and the two
/// directional secrets (from the TLS exporter, PROTOCOL.md "Session establishment").
#[derive(Clone, Debug)]
pub struct SessionKeys {
    /// The ID the peer puts in packets for us.
    pub local_cid: ConnectionId,
    /// The ID we put in packets for the peer.
    pub peer_cid: ConnectionId,
    /// Secret of our sending direction.
    pub send_secret: Secret,
    /// Secret of our receiving direction.
    pub recv_secret: Secret,
}

/// Something that happened to the connection, from [`Connection::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The connection ended; nothing more will be sent or delivered.
    Disconnected(DisconnectReason),
}

/// A message delivered to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The channel it arrived on.
    pub channel: ChannelId,
    /// Its bytes.
    pub data: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Established,
    /// Sending the remaining DISCONNECT packets, then closed.
    Closing {
        code: u32,
        packets_left: u8,
    },
    Closed,
}

/// An established, encrypted FastNet connection (see the module docs for the
/// driving loop).
#[derive(Debug)]
pub struct Connection {
    config: Arc<TransportConfig>,
    timing: Timing,
    clock: Clock,
    local_cid: ConnectionId,
    peer_cid: ConnectionId,
    state: State,
    keys: KeyPhases,
    replay: ReplayWindow,
    rtt: RttEstimator,
    ack: AckState,
    sent: SentPackets,
    send_channels: Vec<SendChannel>,
    /// What the send channels hold, all channels (checked on every `send`).
    queued: Queued,
    /// Bit `c` set: send channel `c` has something waiting to be sent
    /// ([`SendChannel::has_pending`], kept up to date wherever that changes,
    /// so `poll_transmit` learns there is no data in O(1)).
    sendable: u64,
    /// The order channels write into a packet.
    schedule: SendSchedule,
    recv_channels: RecvChannels,
    inbox: Inbox,
    send_pool: BufferPool,
    events: VecDeque<Event>,
    next_pn: u64,
    largest_acked: Option<u64>,
    /// When the earliest packet in flight below `largest_acked` counts as
    /// lost ([`NEVER`] if none is).
    loss_time: Nanos,
    pto_backoff: u32,
    packet_threshold: u64,
    time_threshold_eighths: u32,
    ping_pending: bool,
    last_sent: Nanos,
    last_received: Nanos,
    authentication_failures: u64,
    /// Messages sent plus delivered when last seen to change, and when.
    messages_seen: u64,
    messages_seen_at: Nanos,
    /// What [`Connection::poll_timeout`] returns ([`NEVER`]: `None`), kept
    /// up to date by every call that can move it; turned into an `Instant`
    /// only when asked for (it moves with most packets, and is not read
    /// after each).
    deadline: Nanos,
    /// When the key-update interval of a generation runs out, as
    /// `(generation plus one, time)`; `(0, _)` until computed (a generation's
    /// start never changes once set).
    key_interval_end: (u64, Nanos),
    stats: ConnectionStats,
}

impl Connection {
    /// A connection that starts established at `now`, with keys from the handshake.
    pub fn new(
        config: Arc<TransportConfig>,
        keys: SessionKeys,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let send_channels: Vec<SendChannel> = config
            .channels()
            .iter()
            .enumerate()
            .map(|(i, c)| SendChannel::new(i as ChannelId, c))
            .collect();
        let priorities: Vec<u8> = send_channels.iter().map(SendChannel::priority).collect();
        let recv_channels = RecvChannels::new(
            config.channels().iter().map(|c| c.kind),
            config.max_unreliable_reassemblies,
        );
        let clock = Clock::new(now);
        let mut conn = Self {
            timing: Timing::new(&config),
            clock,
            local_cid: keys.local_cid,
            peer_cid: keys.peer_cid,
            state: State::Established,
            keys: KeyPhases::new(keys.send_secret, keys.recv_secret, config.aead_backend),
            replay: ReplayWindow::new(),
            rtt: RttEstimator::new(config.initial_rtt),
            ack: AckState::new(),
            sent: SentPackets::new(),
            send_channels,
            queued: Queued::default(),
            sendable: 0,
            schedule: SendSchedule::new(&priorities),
            recv_channels,
            inbox: Inbox::new(POOLED_BUFFERS),
            send_pool: BufferPool::new(POOLED_BUFFERS),
            events: VecDeque::new(),
            next_pn: 0,
            largest_acked: None,
            loss_time: NEVER,
            pto_backoff: 0,
            packet_threshold: INITIAL_PACKET_THRESHOLD,
            time_threshold_eighths: 9,
            ping_pending: false,
            last_sent: 0,
            last_received: 0,
            authentication_failures: 0,
            messages_seen: 0,
            messages_seen_at: 0,
            deadline: NEVER,
            key_interval_end: (0, NEVER),
            stats: ConnectionStats::default(),
            config,
        };
        conn.refresh_deadline();
        Ok(conn)
    }

    /// The ID the peer addresses us by.
    pub fn local_cid(&self) -> ConnectionId {
        self.local_cid
    }

    /// The ID we address the peer by.
    pub fn peer_cid(&self) -> ConnectionId {
        self.peer_cid
    }

    /// The configuration this connection runs with.
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    /// Whether the connection can still send and receive messages.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the connection is finished: nothing more to send, the driver may drop it.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Smoothed round-trip time (the initial estimate before any measurement).
    pub fn rtt(&self) -> Duration {
        self.rtt.smoothed()
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> ConnectionStats {
        let mut s = self.stats;
        s.rtt = self.rtt.smoothed();
        s.rtt_var = self.rtt.var();
        s.min_rtt = self.rtt.min();
        s.messages_received = self.inbox.delivered;
        s
    }

    /// Generation of the keys now used for sending (0 before any key update).
    pub fn key_generation(&self) -> u64 {
        self.keys.generation()
    }

    /// Bytes queued for sending or waiting for acknowledgement, all channels.
    pub fn queued_bytes(&self) -> usize {
        self.debug_check_queued();
        self.queued.bytes
    }

    /// Messages queued for sending or waiting for acknowledgement, all channels.
    pub fn queued_messages(&self) -> usize {
        self.debug_check_queued();
        self.queued.messages
    }

    /// Checks the mask of channels with something to send against the
    /// channels (debug builds).
    fn debug_check_sendable(&self) {
        debug_assert_eq!(
            self.sendable,
            self.send_channels
                .iter()
                .enumerate()
                .filter(|(_, c)| c.has_pending())
                .fold(0, |m, (i, _)| m | channel_bit(i)),
            "mask of the channels with something to send"
        );
    }

    /// Checks the running totals against the channels (debug builds).
    fn debug_check_queued(&self) {
        debug_assert_eq!(
            self.queued,
            Queued {
                bytes: self
                    .send_channels
                    .iter()
                    .map(SendChannel::queued_bytes)
                    .sum(),
                messages: self
                    .send_channels
                    .iter()
                    .map(SendChannel::queued_messages)
                    .sum(),
            },
            "running totals of the send queues"
        );
    }

    /// When the connection times out if nothing authenticated arrives (`None`
    /// once closed).
    pub fn idle_deadline(&self) -> Option<Instant> {
        self.is_established().then(|| {
            self.clock
                .instant(self.last_received.saturating_add(self.timing.idle_timeout))
        })
    }

    /// Largest packet number authenticated so far. A driver that sees it grow
    /// after `handle_datagram` knows the datagram was the newest, the only kind
    /// that may move the peer's address (RFC 9000 §9.3).
    pub fn largest_received(&self) -> Option<u64> {
        self.replay.largest()
    }

    /// Messages delivered and waiting for the application.
    pub fn pending_messages(&self) -> usize {
        self.inbox.queue.len()
    }

    /// Bytes of received messages held for reordering or reassembly.
    pub fn reassembly_bytes(&self) -> usize {
        self.recv_channels.held_bytes()
    }

    // ----- application side -------------------------------------------------

    /// Queues a message on a channel. It goes out with the next `poll_transmit`.
    ///
    /// Never drops silently: a message that cannot be queued is refused with the
    /// reason (too large for the channel, queue full, unknown channel, closed).
    #[inline]
    pub fn send(&mut self, channel: ChannelId, data: &[u8]) -> Result<(), SendError> {
        if self.state != State::Established {
            return Err(SendError::Closed);
        }
        let max = self
            .send_channels
            .get(channel as usize)
            .ok_or(SendError::UnknownChannel(channel))?
            .max_message_bytes();
        if data.len() > max {
            return Err(SendError::MessageTooLarge {
                size: data.len(),
                max,
            });
        }
        if self.queued_bytes() + data.len() > self.config.send_queue_bytes
            || self.queued_messages() >= self.config.send_queue_messages
        {
            return Err(SendError::WouldBlock);
        }
        let fragment_bytes = self.config.fragment_bytes();
        self.send_channels[channel as usize].push(data, fragment_bytes, &mut self.send_pool);
        self.sendable |= channel_bit(channel as usize);
        self.queued.bytes += data.len();
        self.queued.messages += 1;
        self.stats.messages_sent += 1;
        Ok(())
    }

    /// Takes the next delivered message, swapping its bytes into `out` (whose
    /// previous buffer is kept for reuse): no allocation and no copy once the
    /// connection is warm. Returns the message's channel, or `None` if no
    /// message is waiting.
    #[inline]
    pub fn recv_into(&mut self, out: &mut Vec<u8>) -> Option<ChannelId> {
        let (channel, mut data) = self.inbox.queue.pop_front()?;
        self.inbox.bytes -= data.len();
        std::mem::swap(out, &mut data);
        self.inbox.pool.give(data);
        Some(channel)
    }

    /// Takes the next delivered message as an owned [`Message`].
    pub fn recv(&mut self) -> Option<Message> {
        let (channel, data) = self.inbox.queue.pop_front()?;
        self.inbox.bytes -= data.len();
        Some(Message { channel, data })
    }

    /// Takes the next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Sends a PING with the next `poll_transmit`: the peer answers at once,
    /// which proves this side's keys to it (a client's first packet binds its
    /// address on the server) and measures the RTT.
    pub fn ping(&mut self) {
        if self.state == State::Established {
            self.ping_pending = true;
            self.refresh_deadline();
        }
    }

    /// Starts a key update now, if one may start (the current keys have been
    /// confirmed by the peer). Returns whether it started.
    pub fn update_keys(&mut self, now: Instant) -> bool {
        let started = self.state == State::Established && self.keys.initiate(now);
        self.refresh_deadline();
        started
    }

    /// Closes the connection: the peer is told `code` (PROTOCOL.md §3.4) by the
    /// next `poll_transmit` calls, queued data is discarded.
    pub fn close(&mut self, code: u32) {
        if self.state != State::Established {
            return;
        }
        self.state = State::Closing {
            code,
            packets_left: CLOSE_PACKETS,
        };
        self.release_buffers();
        self.refresh_deadline();
    }

    // ----- network side -----------------------------------------------------

    /// Processes one datagram addressed to this connection, decrypting it in place.
    ///
    /// `Err` says why it was dropped (also counted in [`ConnectionStats::dropped`]);
    /// a dropped datagram changes nothing else. A peer that breaks the protocol
    /// in an authenticated packet is disconnected (see [`Event::Disconnected`]).
    pub fn handle_datagram(&mut self, now: Instant, datagram: &mut [u8]) -> Result<(), DropReason> {
        let result = self.process_datagram(now, datagram);
        self.refresh_deadline();
        if let Err(reason) = result {
            let d = &mut self.stats.dropped;
            *match reason {
                DropReason::BadLength => &mut d.bad_length,
                DropReason::BadHeader => &mut d.bad_header,
                DropReason::WrongConnection => &mut d.wrong_connection,
                DropReason::Duplicate => &mut d.duplicate,
                DropReason::TooOld => &mut d.too_old,
                DropReason::KeysDiscarded => &mut d.keys_discarded,
                DropReason::AuthenticationFailed => &mut d.authentication_failed,
                DropReason::ReceiveQueueFull => &mut d.receive_queue_full,
                DropReason::Closed => &mut d.closed,
            } += 1;
        }
        result
    }

    fn process_datagram(&mut self, at: Instant, datagram: &mut [u8]) -> Result<(), DropReason> {
        if self.state != State::Established {
            return Err(DropReason::Closed);
        }
        let header = Header::decode(datagram).map_err(|e| match e {
            HeaderError::TooShort | HeaderError::TooLong => DropReason::BadLength,
            _ => DropReason::BadHeader,
        })?;
        if header.destination != self.local_cid {
            return Err(DropReason::WrongConnection);
        }
        let pn = decode_packet_number(self.replay.largest(), header.packet_number_low);
        self.replay.check(pn).map_err(|e| match e {
            ReplayError::Duplicate => DropReason::Duplicate,
            ReplayError::TooOld => DropReason::TooOld,
        })?;
        let selection = self
            .keys
            .select_recv_key(header.key_phase, pn)
            .ok_or(DropReason::KeysDiscarded)?;
        let (head, body) = datagram.split_at_mut(HEADER_BYTES);
        let len = match self.keys.open_selected(selection, pn, head, body) {
            Ok(len) => len,
            Err(OpenError::NoKey) => return Err(DropReason::KeysDiscarded),
            Err(OpenError::Crypto(_)) => {
                self.authentication_failures += 1;
                if self.authentication_failures >= MAX_AUTHENTICATION_FAILURES {
                    self.disconnect(
                        DisconnectReason::AuthenticationFailures,
                        Some(close_code::AUTHENTICATION_FAILURES),
                    );
                }
                return Err(DropReason::AuthenticationFailed);
            }
        };
        let payload = &body[..len];
        // Refuse new data, unacknowledged, while the application is not reading.
        if self.inbox.bytes >= self.config.recv_queue_bytes
            && FrameReader::new(payload).any(|f| matches!(f, Ok(Frame::Data(_))))
        {
            return Err(DropReason::ReceiveQueueFull);
        }
        self.replay.insert(pn);
        let pto = Duration::from_nanos(self.rtt.pto_nanos(self.timing.max_ack_delay));
        if self
            .keys
            .on_packet_authenticated(selection, pn, at, pto)
            .is_some()
        {
            self.stats.key_updates += 1;
        }
        let now = self.clock.ticks(at);
        self.last_received = now;
        self.stats.packets_received += 1;
        self.stats.bytes_received += datagram.len() as u64;

        let payload = &datagram[HEADER_BYTES..HEADER_BYTES + len];
        match self.process_frames(now, payload, selection.generation()) {
            Ok(eliciting) => {
                self.ack.on_packet_received(
                    now,
                    pn,
                    eliciting,
                    self.timing.max_ack_delay,
                    self.config.ack_eliciting_threshold,
                );
                Ok(())
            }
            Err(violation) => {
                self.disconnect(
                    DisconnectReason::ProtocolViolation(violation),
                    Some(close_code::PROTOCOL_VIOLATION),
                );
                Ok(())
            }
        }
    }

    /// Applies the frames of an authenticated packet; returns whether it was
    /// ack-eliciting.
    fn process_frames(
        &mut self,
        now: Nanos,
        payload: &[u8],
        key_generation: u64,
    ) -> Result<bool, Violation> {
        let mut eliciting = false;
        let mut any = false;
        let mut reader = Reader::new(payload);
        while !reader.is_empty() {
            let frame = Frame::decode_next(&mut reader).map_err(Violation::MalformedFrame)?;
            any = true;
            eliciting |= frame.is_ack_eliciting();
            match frame {
                Frame::Padding | Frame::Ping => {}
                Frame::Ack(ack) => self.on_ack(now, &ack)?,
                Frame::Disconnect { code } => {
                    self.disconnect(DisconnectReason::ClosedByPeer { code }, None);
                    return Ok(false);
                }
                Frame::KeyUpdate { generation } => {
                    if generation != key_generation {
                        return Err(Violation::KeyUpdateGeneration);
                    }
                }
                Frame::Data(data) => {
                    let channel = self
                        .config
                        .channels()
                        .get(data.channel as usize)
                        .ok_or(Violation::UnknownChannel(data.channel))?;
                    let limits = FrameLimits {
                        fragment_bytes: self.config.fragment_bytes(),
                        max_message_bytes: channel.max_message_bytes,
                        window_bytes: self.config.reliable_window_bytes,
                    };
                    self.recv_channels.on_frame(
                        data.channel,
                        data.message_id,
                        data.fragment,
                        data.payload,
                        limits,
                        &mut self.inbox,
                    )?;
                }
            }
        }
        if any {
            Ok(eliciting)
        } else {
            Err(Violation::EmptyPacket)
        }
    }

    /// Processes timers whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, at: Instant) {
        self.on_timeout(at);
        self.refresh_deadline();
    }

    fn on_timeout(&mut self, at: Instant) {
        if self.state != State::Established {
            return;
        }
        let now = self.clock.ticks(at);
        if now >= self.last_received.saturating_add(self.timing.idle_timeout) {
            self.disconnect(DisconnectReason::Timeout, None);
            return;
        }
        if now >= self.loss_time {
            self.detect_lost(now);
            self.sent.pop_resolved();
        }
        if now >= self.pto_deadline() {
            // Nothing was acknowledged for a whole PTO: everything in flight is lost.
            let had_reliable = self.send_channels.iter().any(SendChannel::has_unacked);
            for pn in self.sent.first_pn()..self.sent.end_pn() {
                if self.sent.in_flight_sent_at(pn).is_some() {
                    self.declare_lost(pn);
                }
            }
            self.sent.pop_resolved();
            self.pto_backoff = (self.pto_backoff + 1).min(MAX_PTO_BACKOFF_EXPONENT);
            if had_reliable {
                self.ping_pending = true;
            }
        }
        if now
            >= self
                .last_sent
                .saturating_add(self.timing.keep_alive_interval)
        {
            self.ping_pending = true;
            self.release_if_idle(now);
        }
        self.keys.on_timeout(at);
    }

    /// At a keep-alive: once no message was sent or delivered for
    /// [`IDLE_RELEASE_KEEP_ALIVES`] keep-alive intervals, frees what only
    /// traffic needs: pooled message buffers (up to 32 of 2 KiB each way),
    /// the capacity of empty queues, spilled ACK ranges. When traffic resumes
    /// its first messages allocate again; a busy connection never gets here
    /// (it sends before its keep-alive is due), so its steady state still
    /// allocates nothing.
    fn release_if_idle(&mut self, now: Nanos) {
        let messages = self.stats.messages_sent + self.inbox.delivered;
        if messages != self.messages_seen {
            self.messages_seen = messages;
            self.messages_seen_at = now;
            return;
        }
        let quiet = self
            .timing
            .keep_alive_interval
            .saturating_mul(IDLE_RELEASE_KEEP_ALIVES.into());
        if now.saturating_sub(self.messages_seen_at) < quiet {
            return;
        }
        self.send_pool.release();
        for c in &mut self.send_channels {
            c.release_idle();
        }
        self.inbox.release_idle();
        self.recv_channels.release_idle();
        self.sent.release_idle();
        self.ack.ranges.shrink();
        if self.events.is_empty() {
            self.events = VecDeque::new();
        }
    }

    /// The next instant at which [`Connection::handle_timeout`] (or
    /// [`Connection::poll_transmit`], for a delayed acknowledgement) has work.
    /// `None` once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        debug_assert_eq!(
            self.deadline,
            self.compute_deadline(),
            "the cached deadline is stale"
        );
        (self.deadline != NEVER).then(|| self.clock.instant(self.deadline))
    }

    /// Brings the cached [`Connection::poll_timeout`] up to date; called by
    /// every public method that can move it.
    fn refresh_deadline(&mut self) {
        self.deadline = self.compute_deadline();
    }

    /// The next deadline, from scratch ([`NEVER`] once closed).
    #[inline]
    fn compute_deadline(&self) -> Nanos {
        match self.state {
            State::Closed => return NEVER,
            State::Closing { .. } => return self.last_sent,
            State::Established => {}
        }
        let mut t = self
            .last_received
            .saturating_add(self.timing.idle_timeout)
            .min(
                self.last_sent
                    .saturating_add(self.timing.keep_alive_interval),
            )
            .min(self.ack.deadline())
            .min(self.loss_time)
            .min(self.pto_deadline());
        if let Some(at) = self.keys.next_timeout() {
            t = t.min(self.clock.ticks_of(at));
        }
        if self.ping_pending {
            t = t.min(self.last_sent);
        }
        t
    }
}

impl Connection {
    /// Ends the connection for `reason`; with a `code`, tells the peer.
    fn disconnect(&mut self, reason: DisconnectReason, code: Option<u32>) {
        if self.state != State::Established {
            return;
        }
        self.state = match code {
            Some(code) => State::Closing {
                code,
                packets_left: CLOSE_PACKETS,
            },
            None => State::Closed,
        };
        self.events.push_back(Event::Disconnected(reason));
        self.release_buffers();
    }

    /// Frees send and reassembly buffers of a connection that is ending.
    fn release_buffers(&mut self) {
        for c in &mut self.send_channels {
            c.clear(&mut self.send_pool);
        }
        self.queued = Queued::default();
        self.sendable = 0;
        self.recv_channels.clear(&mut self.inbox.pool);
        self.sent.clear();
        self.ack = AckState::new();
    }
}

#[cfg(test)]
mod tests;
