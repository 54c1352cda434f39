//! Conversions between the core's Rust types and the C structures: events,
//! statistics, link simulations, transport settings and error codes.

use std::ffi::c_char;
use std::io;
use std::time::Duration;

use fastnet_core::net::{ConnectError, LinkSimulation};
use fastnet_core::session::HandshakeError;
use fastnet_core::stats::ConnectionStats;
use fastnet_core::{DisconnectReason, LinkConfig, SendError, TransportConfig};

use crate::abi::FastNetDisconnectReason::*;
use crate::abi::FastNetError::*;
use crate::abi::FastNetEventType::*;
use crate::abi::*;
use crate::ffi::{push_c_text, Failure, Outcome, EMPTY_C_STRING};

/// An event about to be handed to C.
#[derive(Debug)]
pub(crate) enum Ev {
    Connected(u64),
    /// The bytes are in the handle's data buffer.
    Data {
        peer: u64,
        channel: u8,
    },
    Disconnected(u64, DisconnectReason),
    Error(Failure),
    ConnectFailed(Failure),
}

/// The bytes of a data event when the message is empty: `data` is never NULL.
static EMPTY_DATA: [u8; 1] = [0];

/// The empty event written when there is none.
pub(crate) fn no_event() -> FastNetEvent {
    FastNetEvent {
        r#type: FASTNET_EVENT_NONE,
        peer_id: 0,
        channel: 0,
        data: EMPTY_DATA.as_ptr(),
        data_len: 0,
        error_code: FASTNET_OK as i32,
        disconnect_reason: FASTNET_DISCONNECT_NONE,
        disconnect_code: 0,
        message: EMPTY_C_STRING.as_ptr().cast::<c_char>(),
    }
}

/// The C event for `ev`; `data` is the handle's message buffer, `text` its
/// message text buffer (both owned by the handle, so the pointers stay valid
/// until the next poll or the handle's destruction).
pub(crate) fn to_event(ev: Ev, data: &[u8], text: &mut Vec<u8>) -> FastNetEvent {
    let mut out = no_event();
    text.clear();
    match ev {
        Ev::Connected(peer) => {
            out.r#type = FASTNET_EVENT_CONNECTED;
            out.peer_id = peer;
        }
        Ev::Data { peer, channel } => {
            out.r#type = FASTNET_EVENT_DATA;
            out.peer_id = peer;
            out.channel = channel;
            if !data.is_empty() {
                out.data = data.as_ptr();
                out.data_len = data.len();
            }
        }
        Ev::Disconnected(peer, reason) => {
            out.r#type = FASTNET_EVENT_DISCONNECTED;
            out.peer_id = peer;
            out.disconnect_reason = disconnect_reason(&reason);
            out.disconnect_code = reason.code();
            push_c_text(text, &reason.to_string());
        }
        Ev::Error(failure) => {
            out.r#type = FASTNET_EVENT_ERROR;
            out.error_code = failure.code as i32;
            push_c_text(text, &failure.message);
        }
        Ev::ConnectFailed(failure) => {
            out.r#type = FASTNET_EVENT_CONNECT_FAILED;
            out.peer_id = FASTNET_SERVER_PEER_ID;
            out.error_code = failure.code as i32;
            push_c_text(text, &failure.message);
        }
    }
    if !text.is_empty() {
        out.message = text.as_ptr().cast::<c_char>();
    }
    out
}

pub(crate) fn disconnect_reason(reason: &DisconnectReason) -> FastNetDisconnectReason {
    match reason {
        DisconnectReason::Timeout => FASTNET_DISCONNECT_TIMEOUT,
        DisconnectReason::ClosedByPeer { .. } => FASTNET_DISCONNECT_CLOSED_BY_PEER,
        DisconnectReason::ClosedLocally { .. } => FASTNET_DISCONNECT_CLOSED_LOCALLY,
        DisconnectReason::ProtocolViolation(_) => FASTNET_DISCONNECT_PROTOCOL_VIOLATION,
        DisconnectReason::AuthenticationFailures => FASTNET_DISCONNECT_AUTHENTICATION_FAILURES,
        DisconnectReason::PacketNumbersExhausted => FASTNET_DISCONNECT_PACKET_NUMBERS_EXHAUSTED,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub(crate) fn stats(s: &ConnectionStats) -> FastNetStats {
    FastNetStats {
        rtt_us: micros(s.rtt),
        rtt_var_us: micros(s.rtt_var),
        min_rtt_us: micros(s.min_rtt),
        packets_sent: s.packets_sent,
        packets_received: s.packets_received,
        bytes_sent: s.bytes_sent,
        bytes_received: s.bytes_received,
        packets_lost: s.packets_lost,
        loss: if s.packets_sent == 0 {
            0.0
        } else {
            s.packets_lost as f64 / s.packets_sent as f64
        },
        retransmissions: s.frames_retransmitted,
        messages_sent: s.messages_sent,
        messages_received: s.messages_received,
        key_updates: s.key_updates,
        packets_dropped: s.dropped.total(),
    }
}

pub(crate) fn default_link() -> FastNetLinkConfig {
    FastNetLinkConfig {
        enabled: false,
        loss: 0.0,
        latency_ms: 0,
        jitter_ms: 0,
        reorder: 0.0,
        reorder_delay_ms: 0,
        duplicate: 0.0,
        bandwidth_bytes_per_sec: 0,
        queue_limit_bytes: LinkConfig::default().queue_limit_bytes as u64,
    }
}

fn link_config(c: &FastNetLinkConfig, what: &str) -> Outcome<Option<LinkConfig>> {
    if !c.enabled {
        return Ok(None);
    }
    let ms = |v: u32| Duration::from_millis(v.into());
    let config = LinkConfig {
        loss: c.loss,
        latency: ms(c.latency_ms),
        jitter: ms(c.jitter_ms),
        reorder: c.reorder,
        reorder_delay: ms(c.reorder_delay_ms),
        duplicate: c.duplicate,
        bandwidth_bytes_per_sec: (c.bandwidth_bytes_per_sec != 0)
            .then_some(c.bandwidth_bytes_per_sec),
        queue_limit_bytes: match c.queue_limit_bytes {
            0 => LinkConfig::default().queue_limit_bytes,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        },
    };
    config
        .validate()
        .map_err(|e| Failure::invalid(format!("{what}: {e}")))?;
    Ok(Some(config))
}

pub(crate) fn link_simulation(
    outgoing: &FastNetLinkConfig,
    incoming: &FastNetLinkConfig,
) -> Outcome<LinkSimulation> {
    Ok(LinkSimulation {
        outgoing: link_config(outgoing, "link_outgoing")?,
        incoming: link_config(incoming, "link_incoming")?,
    })
}

/// The default transport settings with the idle timeout of a C configuration
/// (0: the default). A keep-alive interval of a third of the idle timeout (at
/// most the default 1 s) keeps a short timeout valid.
pub(crate) fn transport(idle_timeout_ms: u32) -> Outcome<TransportConfig> {
    let mut t = TransportConfig::default();
    if idle_timeout_ms != 0 {
        let idle = Duration::from_millis(idle_timeout_ms.into());
        let keep_alive = (idle / 3)
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(1));
        t.set_idle_timeout(idle).set_keep_alive_interval(keep_alive);
    }
    t.validate()
        .map_err(|e| Failure::invalid(format!("idle_timeout_ms: {e}")))?;
    Ok(t)
}

pub(crate) fn send_failure(e: SendError) -> Failure {
    let code = match e {
        SendError::UnknownChannel(_) => FASTNET_ERROR_UNKNOWN_CHANNEL,
        SendError::MessageTooLarge { .. } => FASTNET_ERROR_MESSAGE_TOO_LARGE,
        SendError::WouldBlock => FASTNET_ERROR_WOULD_BLOCK,
        SendError::Closed => FASTNET_ERROR_CLOSED,
    };
    Failure::new(code, e.to_string())
}

pub(crate) fn io_failure(context: &str, e: &io::Error) -> Failure {
    Failure::new(FASTNET_ERROR_IO, format!("{context}: {e}"))
}

pub(crate) fn connect_failure(e: &ConnectError) -> Failure {
    let code = match e {
        ConnectError::Resolve { .. } => FASTNET_ERROR_RESOLVE,
        ConnectError::Tcp { .. } => FASTNET_ERROR_CONNECT,
        ConnectError::Handshake(
            HandshakeError::Certificate(_)
            | HandshakeError::PinMismatch(_)
            | HandshakeError::InvalidServerName { .. },
        ) => FASTNET_ERROR_UNTRUSTED_SERVER,
        ConnectError::Handshake(HandshakeError::Trust(_)) => FASTNET_ERROR_INVALID_ARGUMENT,
        ConnectError::Handshake(_) | ConnectError::HandshakeClosed => FASTNET_ERROR_HANDSHAKE,
        ConnectError::HandshakeIo(_) | ConnectError::Udp(_) => FASTNET_ERROR_IO,
        ConnectError::NoUdpAnswer(_) => FASTNET_ERROR_NO_UDP_ANSWER,
        ConnectError::Timeout => FASTNET_ERROR_TIMEOUT,
        ConnectError::Config(_) => FASTNET_ERROR_INVALID_ARGUMENT,
    };
    Failure::new(code, format!("connect failed: {e}"))
}
