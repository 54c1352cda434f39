//! The errors and reasons the connection reports: why a send was refused, why a
//! connection ended, and which rule a misbehaving peer broke.

use crate::config::ChannelId;

/// Why [`Connection::send`](crate::Connection::send) refused a message. Nothing is
/// ever dropped silently: a message is either queued or refused with one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No channel with this ID in the channel table.
    #[error("channel {0} does not exist")]
    UnknownChannel(ChannelId),
    /// The message is larger than its channel accepts.
    #[error("message of {size} bytes exceeds the channel's limit of {max} bytes")]
    MessageTooLarge {
        /// Size of the refused message.
        size: usize,
        /// The channel's `max_message_bytes`.
        max: usize,
    },
    /// The send queue is full (bytes or messages); try again after the peer has
    /// acknowledged some data (after the next `handle_datagram`).
    #[error("send queue full, try again later")]
    WouldBlock,
    /// The connection is closing or closed.
    #[error("connection closed")]
    Closed,
}

/// Close codes below 256 belong to FastNet (PROTOCOL.md §3.4); applications use
/// codes from [`close_code::APPLICATION_MIN`] on.
pub mod close_code {
    /// Normal close, nothing went wrong.
    pub const NORMAL: u32 = 0;
    /// The sender saw the receiver break the protocol.
    pub const PROTOCOL_VIOLATION: u32 = 1;
    /// Local only: nothing arrived for the idle timeout.
    pub const IDLE_TIMEOUT: u32 = 2;
    /// Too many packets failed authentication.
    pub const AUTHENTICATION_FAILURES: u32 = 3;
    /// The 62-bit packet number space is used up.
    pub const PACKET_NUMBERS_EXHAUSTED: u32 = 4;
    /// The peer exceeded a resource limit.
    pub const RESOURCE_LIMIT: u32 = 5;
    /// First code available to applications.
    pub const APPLICATION_MIN: u32 = 256;
}

/// A rule of PROTOCOL.md that an authenticated packet from the peer broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A frame could not be decoded.
    #[error("malformed frame: {0}")]
    MalformedFrame(crate::frame::FrameError),
    /// The packet contained no frame.
    #[error("packet without frames")]
    EmptyPacket,
    /// A data frame named a channel outside the table.
    #[error("data on unknown channel {0}")]
    UnknownChannel(ChannelId),
    /// An ACK acknowledged a packet number never sent.
    #[error("acknowledgement of a packet never sent")]
    AckOfUnsentPacket,
    /// A reliable message ID beyond the receive window.
    #[error("reliable message beyond the window")]
    WindowExceeded,
    /// A message larger than the channel's limit.
    #[error("message larger than the channel allows")]
    MessageTooLarge,
    /// Fragments of one message disagree (count, size or index).
    #[error("inconsistent fragment")]
    BadFragment,
    /// A KEY_UPDATE frame announced a generation other than its packet's keys.
    #[error("KEY_UPDATE generation does not match the packet's keys")]
    KeyUpdateGeneration,
    /// More reliable bytes buffered than the window allows.
    #[error("reliable byte window exceeded")]
    ByteWindowExceeded,
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectReason {
    /// Nothing authenticated arrived for the idle timeout.
    #[error("timed out")]
    Timeout,
    /// The peer closed the connection with this code.
    #[error("closed by peer (code {code})")]
    ClosedByPeer {
        /// The code from the peer's DISCONNECT frame.
        code: u32,
    },
    /// This side closed the connection with this code.
    #[error("closed locally (code {code})")]
    ClosedLocally {
        /// The code passed to `close`.
        code: u32,
    },
    /// The peer broke the protocol; we closed with code 1.
    #[error("protocol violation by peer: {0}")]
    ProtocolViolation(Violation),
    /// Too many packets on this connection failed authentication.
    #[error("too many authentication failures")]
    AuthenticationFailures,
    /// The packet number space is exhausted (after 2^62 packets).
    #[error("packet numbers exhausted")]
    PacketNumbersExhausted,
}

impl DisconnectReason {
    /// The close code that describes this reason on the wire.
    pub fn code(&self) -> u32 {
        match self {
            Self::Timeout => close_code::IDLE_TIMEOUT,
            Self::ClosedByPeer { code } | Self::ClosedLocally { code } => *code,
            Self::ProtocolViolation(_) => close_code::PROTOCOL_VIOLATION,
            Self::AuthenticationFailures => close_code::AUTHENTICATION_FAILURES,
            Self::PacketNumbersExhausted => close_code::PACKET_NUMBERS_EXHAUSTED,
        }
    }
}

/// Why an incoming datagram was dropped before any of its frames were used.
/// Each reason has a counter in [`DropCounters`](crate::stats::DropCounters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// Shorter than the smallest valid packet, or longer than a UDP datagram.
    #[error("bad length")]
    BadLength,
    /// Unknown version or reserved packet type.
    #[error("bad header")]
    BadHeader,
    /// The destination connection ID is not this connection's.
    #[error("not for this connection")]
    WrongConnection,
    /// The packet number was seen before.
    #[error("duplicate packet")]
    Duplicate,
    /// The packet number is older than the replay window.
    #[error("packet too old for the replay window")]
    TooOld,
    /// Sealed with keys of a phase already erased.
    #[error("keys of that phase are discarded")]
    KeysDiscarded,
    /// Authentication failed: forged, corrupted or not for these keys.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The application is not reading fast enough; the packet was not accepted
    /// (not acknowledged), so reliable data in it is retransmitted later.
    #[error("receive queue full")]
    ReceiveQueueFull,
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
}
