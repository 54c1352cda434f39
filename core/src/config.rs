//! Transport configuration: the channel table, every per-connection limit and
//! every timer, with the defaults of `docs/PROTOCOL.md` and the reason for each.
//!
//! Both sides of a connection must use the same channel table and the same
//! `max_datagram_bytes` (the handshake exchanges them); everything else is local.

use std::time::Duration;

use crate::crypto::AeadBackend;
use crate::packet::{DEFAULT_MAX_DATAGRAM_BYTES, HEADER_BYTES, MAX_DATAGRAM_BYTES};

/// A channel's index in the channel table, as carried on the wire.
pub type ChannelId = u8;

/// The channel IDs of the default table (PROTOCOL.md §5), as the brief numbers them.
pub mod channels {
    use super::ChannelId;
    /// Channel 0: reliable and ordered (chat, commands, RPCs).
    pub const RELIABLE_ORDERED: ChannelId = 0;
    /// Channel 1: unreliable (position updates).
    pub const UNRELIABLE: ChannelId = 1;
    /// Channel 2: reliable, delivered as soon as complete (item pickups).
    pub const RELIABLE_UNORDERED: ChannelId = 2;
    /// Channel 3: unreliable, older than the latest delivered is dropped (input, voice).
    pub const SEQUENCED: ChannelId = 3;
}

/// Largest number of channels a connection may have: channel IDs fit one byte,
/// and 64 bounds the per-connection channel state.
pub const MAX_CHANNELS: usize = 64;
/// Largest message a reliable channel may be configured for (64 MiB): larger
/// transfers belong to the asset-distribution layer, which can resume.
pub const MAX_RELIABLE_MESSAGE_LIMIT_BYTES: usize = 64 << 20;
/// Largest message an unreliable or sequenced channel may be configured for (1 MiB):
/// losing one of its ~900 fragments loses it all, so more is never useful.
pub const MAX_UNRELIABLE_MESSAGE_LIMIT_BYTES: usize = 1 << 20;
/// Default maximum reliable message (1 MiB).
pub const DEFAULT_RELIABLE_MESSAGE_BYTES: usize = 1 << 20;
/// Default maximum unreliable or sequenced message (64 KiB).
pub const DEFAULT_UNRELIABLE_MESSAGE_BYTES: usize = 64 << 10;
/// Message IDs a reliable channel may have in flight beyond the lowest
/// unacknowledged one: the size of the receiver's reorder and duplicate bitmap.
pub const RELIABLE_WINDOW_MESSAGES: u64 = 1024;
/// Smallest `max_datagram_bytes` accepted: room for the header, the tag, an ACK
/// frame and a useful fragment.
pub const MIN_MAX_DATAGRAM_BYTES: usize = 512;
/// Bytes of each packet kept free of fragment payload so that a fragment can
/// share its packet with the largest fragment header and a typical ACK frame.
pub const FRAGMENT_RESERVE_BYTES: usize = 64;
/// Size of the AEAD tag at the end of every packet.
pub const TAG_BYTES: usize = 16;

/// How a channel treats its messages (PROTOCOL.md §3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// Delivered exactly once, in the order sent.
    ReliableOrdered,
    /// Delivered at most once, as soon as it arrives; lost messages stay lost.
    Unreliable,
    /// Delivered exactly once, as soon as it is complete, in any order.
    ReliableUnordered,
    /// Unreliable, and never older than a message already delivered on the channel.
    Sequenced,
}

impl ChannelKind {
    /// Whether messages on this kind of channel are retransmitted until acknowledged.
    pub fn is_reliable(self) -> bool {
        matches!(self, Self::ReliableOrdered | Self::ReliableUnordered)
    }
}

/// One entry of the channel table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Delivery guarantees.
    pub kind: ChannelKind,
    /// Scheduling priority: when several channels have data, the higher goes first;
    /// equal priorities take turns. Default 0.
    pub priority: u8,
    /// Largest message accepted by `send` on this channel (and by the receiver).
    /// Default 1 MiB for reliable kinds, 64 KiB for the others.
    pub max_message_bytes: usize,
}

impl ChannelConfig {
    /// A channel of the given kind with the default priority and message limit.
    pub fn new(kind: ChannelKind) -> Self {
        let max_message_bytes = if kind.is_reliable() {
            DEFAULT_RELIABLE_MESSAGE_BYTES
        } else {
            DEFAULT_UNRELIABLE_MESSAGE_BYTES
        };
        Self {
            kind,
            priority: 0,
            max_message_bytes,
        }
    }

    /// Sets the scheduling priority (higher goes first).
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the largest message this channel accepts.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }
}

/// A configuration value out of its allowed range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The channel table is empty or longer than [`MAX_CHANNELS`].
    #[error("a connection needs between 1 and {MAX_CHANNELS} channels, got {0}")]
    ChannelCount(usize),
    /// A channel's maximum message size is zero or above its kind's limit.
    #[error("channel {channel}: max_message_bytes {bytes} is outside 1..={limit}")]
    MessageLimit {
        /// The channel.
        channel: usize,
        /// The configured value.
        bytes: usize,
        /// The largest value allowed for the channel's kind.
        limit: usize,
    },
    /// `max_datagram_bytes` is outside
    /// [`MIN_MAX_DATAGRAM_BYTES`]`..=`[`MAX_DATAGRAM_BYTES`].
    #[error("max_datagram_bytes {0} is outside {MIN_MAX_DATAGRAM_BYTES}..={MAX_DATAGRAM_BYTES}")]
    DatagramSize(usize),
    /// A named limit is zero or too small to be useful.
    #[error("{name} is {value}, it must be at least {min}")]
    TooSmall {
        /// Which setting.
        name: &'static str,
        /// The configured value.
        value: u64,
        /// The smallest value allowed.
        min: u64,
    },
    /// The idle timeout is not longer than the keep-alive interval, so an idle
    /// connection would time out between two keep-alives.
    #[error("idle_timeout must be longer than keep_alive_interval")]
    KeepAliveTooSlow,
}

/// Everything a connection needs to know besides its keys: channels, limits, timers.
///
/// Built with [`TransportConfig::default`] and the setters, which say each default.
/// [`TransportConfig::validate`] checks the whole; connections refuse an invalid one.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub(crate) channels: Vec<ChannelConfig>,
    pub(crate) max_datagram_bytes: usize,
    pub(crate) max_ack_delay: Duration,
    pub(crate) ack_eliciting_threshold: u32,
    pub(crate) idle_timeout: Duration,
    pub(crate) keep_alive_interval: Duration,
    pub(crate) initial_rtt: Duration,
    pub(crate) key_update_packets: u64,
    pub(crate) key_update_interval: Duration,
    pub(crate) max_in_flight_packets: usize,
    pub(crate) send_queue_bytes: usize,
    pub(crate) send_queue_messages: usize,
    pub(crate) reliable_window_bytes: usize,
    pub(crate) recv_queue_bytes: usize,
    pub(crate) max_unreliable_reassemblies: usize,
    pub(crate) aead_backend: AeadBackend,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            channels: vec![
                ChannelConfig::new(ChannelKind::ReliableOrdered),
                ChannelConfig::new(ChannelKind::Unreliable),
                ChannelConfig::new(ChannelKind::ReliableUnordered),
                ChannelConfig::new(ChannelKind::Sequenced),
            ],
            max_datagram_bytes: DEFAULT_MAX_DATAGRAM_BYTES,
            max_ack_delay: Duration::from_millis(25),
            ack_eliciting_threshold: 8,
            idle_timeout: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(1),
            initial_rtt: Duration::from_millis(100),
            key_update_packets: 1 << 20,
            key_update_interval: Duration::from_secs(600),
            max_in_flight_packets: 1024,
            send_queue_bytes: 8 << 20,
            send_queue_messages: 16_384,
            reliable_window_bytes: 4 << 20,
            recv_queue_bytes: 8 << 20,
            max_unreliable_reassemblies: 8,
            aead_backend: AeadBackend::default(),
        }
    }
}

impl TransportConfig {
    /// The channel table (default: the four channels of [`channels`]).
    pub fn channels(&self) -> &[ChannelConfig] {
        &self.channels
    }

    /// Replaces the whole channel table.
    pub fn set_channels(&mut self, channels: Vec<ChannelConfig>) -> &mut Self {
        self.channels = channels;
        self
    }

    /// Appends a channel and returns its ID. Fails when the table is full.
    pub fn add_channel(&mut self, channel: ChannelConfig) -> Result<ChannelId, ConfigError> {
        if self.channels.len() >= MAX_CHANNELS {
            return Err(ConfigError::ChannelCount(self.channels.len() + 1));
        }
        self.channels.push(channel);
        Ok((self.channels.len() - 1) as ChannelId)
    }

    /// Largest UDP payload sent (default 1200; see PROTOCOL.md §1 for why).
    pub fn max_datagram_bytes(&self) -> usize {
        self.max_datagram_bytes
    }

    /// Sets the largest UDP payload; both sides must agree.
    pub fn set_max_datagram_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_datagram_bytes = bytes;
        self
    }

    /// How long an acknowledgement may wait for outgoing data to ride on (default
    /// 25 ms: longer than a 60 Hz tick, so a game sending every tick never sends an
    /// ACK-only packet).
    pub fn set_max_ack_delay(&mut self, delay: Duration) -> &mut Self {
        self.max_ack_delay = delay;
        self
    }

    /// Ack-eliciting packets received before an acknowledgement goes out at once
    /// (default 8: keeps a bulk sender's window moving).
    pub fn set_ack_eliciting_threshold(&mut self, packets: u32) -> &mut Self {
        self.ack_eliciting_threshold = packets;
        self
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Closes the connection when nothing authenticated arrived for this long
    /// (default 10 s).
    pub fn set_idle_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sends a PING after this long without sending anything (default 1 s).
    pub fn set_keep_alive_interval(&mut self, interval: Duration) -> &mut Self {
        self.keep_alive_interval = interval;
        self
    }

    /// RTT assumed before the first measurement (default 100 ms).
    pub fn set_initial_rtt(&mut self, rtt: Duration) -> &mut Self {
        self.initial_rtt = rtt;
        self
    }

    /// Starts a key update after this many packets in one key phase (default 2^20).
    pub fn set_key_update_packets(&mut self, packets: u64) -> &mut Self {
        self.key_update_packets = packets;
        self
    }

    /// Starts a key update after this long in one key phase (default 10 minutes).
    pub fn set_key_update_interval(&mut self, interval: Duration) -> &mut Self {
        self.key_update_interval = interval;
        self
    }

    /// Ack-eliciting packets that may be in flight at once (default 1024).
    pub fn set_max_in_flight_packets(&mut self, packets: usize) -> &mut Self {
        self.max_in_flight_packets = packets;
        self
    }

    /// Bytes the send side may hold, unsent plus unacknowledged (default 8 MiB);
    /// beyond it `send` returns [`SendError::WouldBlock`](crate::SendError::WouldBlock).
    pub fn set_send_queue_bytes(&mut self, bytes: usize) -> &mut Self {
        self.send_queue_bytes = bytes;
        self
    }

    /// Messages the send side may hold (default 16,384); beyond it `send` returns
    /// [`SendError::WouldBlock`](crate::SendError::WouldBlock).
    pub fn set_send_queue_messages(&mut self, messages: usize) -> &mut Self {
        self.send_queue_messages = messages;
        self
    }

    /// Bytes of a reliable channel that may be outstanding beyond the lowest
    /// unacknowledged message, which bounds the receiver's reorder buffer
    /// (default 4 MiB). Both sides must agree.
    pub fn set_reliable_window_bytes(&mut self, bytes: usize) -> &mut Self {
        self.reliable_window_bytes = bytes;
        self
    }

    /// Received bytes waiting for the application to read them (default 8 MiB);
    /// beyond it new data is refused unacknowledged, so the sender retransmits later.
    pub fn set_recv_queue_bytes(&mut self, bytes: usize) -> &mut Self {
        self.recv_queue_bytes = bytes;
        self
    }

    /// Fragmented unreliable messages reassembled at once (default 8); an older
    /// incomplete one is evicted for a newer one.
    pub fn set_max_unreliable_reassemblies(&mut self, messages: usize) -> &mut Self {
        self.max_unreliable_reassemblies = messages;
        self
    }

    /// Which ChaCha20-Poly1305 implementation seals packets (default: ring).
    pub fn set_aead_backend(&mut self, backend: AeadBackend) -> &mut Self {
        self.aead_backend = backend;
        self
    }

    /// Frame bytes available in one packet.
    pub fn max_payload_bytes(&self) -> usize {
        self.max_datagram_bytes - HEADER_BYTES - TAG_BYTES
    }

    /// Payload bytes of every fragment but the last (PROTOCOL.md §3.2).
    pub fn fragment_bytes(&self) -> usize {
        self.max_payload_bytes() - FRAGMENT_RESERVE_BYTES
    }

    /// Checks every value against its allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.channels.is_empty() || self.channels.len() > MAX_CHANNELS {
            return Err(ConfigError::ChannelCount(self.channels.len()));
        }
        for (i, c) in self.channels.iter().enumerate() {
            let limit = if c.kind.is_reliable() {
                MAX_RELIABLE_MESSAGE_LIMIT_BYTES
            } else {
                MAX_UNRELIABLE_MESSAGE_LIMIT_BYTES
            };
            if c.max_message_bytes == 0 || c.max_message_bytes > limit {
                return Err(ConfigError::MessageLimit {
                    channel: i,
                    bytes: c.max_message_bytes,
                    limit,
                });
            }
        }
        if !(MIN_MAX_DATAGRAM_BYTES..=MAX_DATAGRAM_BYTES).contains(&self.max_datagram_bytes) {
            return Err(ConfigError::DatagramSize(self.max_datagram_bytes));
        }
        let at_least = |name, value: u64, min: u64| {
            if value < min {
                Err(ConfigError::TooSmall { name, value, min })
            } else {
                Ok(())
            }
        };
        at_least(
            "ack_eliciting_threshold",
            self.ack_eliciting_threshold.into(),
            1,
        )?;
        at_least(
            "max_in_flight_packets",
            self.max_in_flight_packets as u64,
            16,
        )?;
        at_least("send_queue_messages", self.send_queue_messages as u64, 1)?;
        at_least(
            "max_unreliable_reassemblies",
            self.max_unreliable_reassemblies as u64,
            1,
        )?;
        at_least("key_update_packets", self.key_update_packets, 16)?;
        at_least("idle_timeout_ms", self.idle_timeout.as_millis() as u64, 1)?;
        at_least(
            "keep_alive_interval_ms",
            self.keep_alive_interval.as_millis() as u64,
            1,
        )?;
        let largest = self
            .channels
            .iter()
            .map(|c| c.max_message_bytes)
            .max()
            .unwrap_or(0) as u64;
        at_least("send_queue_bytes", self.send_queue_bytes as u64, largest)?;
        at_least("recv_queue_bytes", self.recv_queue_bytes as u64, largest)?;
        at_least(
            "reliable_window_bytes",
            self.reliable_window_bytes as u64,
            self.fragment_bytes() as u64,
        )?;
        if self.idle_timeout <= self.keep_alive_interval {
            return Err(ConfigError::KeepAliveTooSlow);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_matches_the_brief() {
        let c = TransportConfig::default();
        c.validate().unwrap();
        assert_eq!(c.channels()[0].kind, ChannelKind::ReliableOrdered);
        assert_eq!(c.channels()[1].kind, ChannelKind::Unreliable);
        assert_eq!(c.channels()[2].kind, ChannelKind::ReliableUnordered);
        assert_eq!(c.channels()[3].kind, ChannelKind::Sequenced);
        assert_eq!(c.fragment_bytes(), 1200 - 13 - 16 - 64);
    }

    #[test]
    fn add_channel_up_to_the_limit() {
        let mut c = TransportConfig::default();
        for i in 4..MAX_CHANNELS {
            assert_eq!(
                c.add_channel(ChannelConfig::new(ChannelKind::Unreliable))
                    .unwrap() as usize,
                i
            );
        }
        assert!(c
            .add_channel(ChannelConfig::new(ChannelKind::Unreliable))
            .is_err());
        c.validate().unwrap();
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let mut c = TransportConfig::default();
        c.set_max_datagram_bytes(100);
        assert_eq!(c.validate(), Err(ConfigError::DatagramSize(100)));
        let mut c = TransportConfig::default();
        c.set_channels(vec![
            ChannelConfig::new(ChannelKind::Unreliable).with_max_message_bytes(2 << 20)
        ]);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::MessageLimit { .. })
        ));
        let mut c = TransportConfig::default();
        c.set_keep_alive_interval(Duration::from_secs(20));
        assert_eq!(c.validate(), Err(ConfigError::KeepAliveTooSlow));
        let mut c = TransportConfig::default();
        c.set_send_queue_bytes(1000);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::TooSmall {
                name: "send_queue_bytes",
                ..
            })
        ));
    }
}
