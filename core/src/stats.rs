//! Per-connection counters and measurements exposed to the game: traffic, loss,
//! retransmissions, RTT, key updates, and why incoming datagrams were dropped.

use std::time::Duration;

/// Why incoming datagrams were dropped, one counter per [`DropReason`](crate::DropReason).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    /// Too short or too long.
    pub bad_length: u64,
    /// Unknown version or reserved type.
    pub bad_header: u64,
    /// Addressed to another connection ID.
    pub wrong_connection: u64,
    /// Packet number already received (replays, network duplicates).
    pub duplicate: u64,
    /// Packet number older than the replay window.
    pub too_old: u64,
    /// Sealed with keys already erased.
    pub keys_discarded: u64,
    /// Failed authentication (forged or corrupted).
    pub authentication_failed: u64,
    /// Refused because the application did not read its messages.
    pub receive_queue_full: u64,
    /// Arrived after the connection closed.
    pub closed: u64,
}

impl DropCounters {
    /// Sum of all counters.
    pub fn total(&self) -> u64 {
        self.bad_length
            + self.bad_header
            + self.wrong_connection
            + self.duplicate
            + self.too_old
            + self.keys_discarded
            + self.authentication_failed
            + self.receive_queue_full
            + self.closed
    }
}

/// A snapshot of a connection's statistics, from
/// [`Connection::stats`](crate::Connection::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Datagrams sent that carried nothing but an acknowledgement.
    pub ack_only_packets_sent: u64,
    /// Authenticated datagrams received.
    pub packets_received: u64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes of authenticated datagrams received.
    pub bytes_received: u64,
    /// Packets declared lost (by acknowledgements or timeout).
    pub packets_lost: u64,
    /// Packets declared lost that were acknowledged later (reordering, not
    /// loss); each one makes loss detection more patient.
    pub spurious_losses: u64,
    /// Reliable frames sent again after a loss.
    pub frames_retransmitted: u64,
    /// Messages accepted by `send`.
    pub messages_sent: u64,
    /// Messages delivered to the application.
    pub messages_received: u64,
    /// Key updates completed (either side initiating).
    pub key_updates: u64,
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Round-trip time variation.
    pub rtt_var: Duration,
    /// Smallest round-trip time seen.
    pub min_rtt: Duration,
    /// Dropped incoming datagrams, by reason.
    pub dropped: DropCounters,
}
