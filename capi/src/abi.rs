//! The constants and C structures of the ABI (everything in `include/fastnet.h`
//! that is not a function). Field order and types are part of the ABI: change
//! them only together with [`FASTNET_ABI_VERSION`].

use std::ffi::c_char;

/// Version of the binary interface described by this header. It changes
/// whenever a structure, a constant or a function signature changes in an
/// incompatible way. Compare it with `fastnet_abi_version()` at start-up to
/// detect a library that does not match the header you compiled against.
pub const FASTNET_ABI_VERSION: u32 = 1;

/// Peer ID a client reports for its server in its events (a client has exactly
/// one peer).
pub const FASTNET_SERVER_PEER_ID: u64 = 1;

/// Size of the buffer `fastnet_server_certificate_sha256` needs: 32 bytes as
/// colon-separated upper-case hex pairs (95 characters) and the NUL.
pub const FASTNET_SHA256_FINGERPRINT_BUFFER: usize = 96;

/// Default channels of a connection (a client and its server must use the same
/// channel table; the C API uses the default one). Reliable and ordered: chat,
/// RPCs, anything that must arrive in order.
pub const FASTNET_CHANNEL_RELIABLE_ORDERED: u8 = 0;
/// Unreliable: may be lost, arrives in any order (positions).
pub const FASTNET_CHANNEL_UNRELIABLE: u8 = 1;
/// Reliable but unordered: each message arrives once, in any order (pickups).
pub const FASTNET_CHANNEL_RELIABLE_UNORDERED: u8 = 2;
/// Sequenced: unreliable, and never older than the newest delivered (inputs, voice).
pub const FASTNET_CHANNEL_SEQUENCED: u8 = 3;

// ---------------------------------------------------------------------------
// Error codes

/// Error codes: `FASTNET_OK` (0) or a negative `FASTNET_ERROR_` value. Functions
/// return them as `int32_t`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastNetError {
    /// Success.
    FASTNET_OK = 0,
    /// The handle is NULL, was destroyed, is stale (its slot was reused) or is not a
    /// FastNet handle at all. Never a crash: every function checks its handle.
    FASTNET_ERROR_INVALID_HANDLE = -1,
    /// A server handle was passed where a client handle is expected, or the reverse.
    FASTNET_ERROR_WRONG_HANDLE_TYPE = -2,
    /// An argument is invalid: a NULL pointer where one is required, NULL data
    /// with a non-zero length, a string that is not UTF-8, a bad address, an
    /// inconsistent configuration...
    FASTNET_ERROR_INVALID_ARGUMENT = -3,
    /// The channel does not exist in the connection's channel table.
    FASTNET_ERROR_UNKNOWN_CHANNEL = -4,
    /// The message is larger than its channel accepts (1 MiB on reliable channels
    /// and 64 KiB on the others by default); nothing was sent.
    FASTNET_ERROR_MESSAGE_TOO_LARGE = -5,
    /// The send queue is full; try again after the next poll or service.
    FASTNET_ERROR_WOULD_BLOCK = -6,
    /// The connection is closed (or its connect failed).
    FASTNET_ERROR_CLOSED = -7,
    /// A non-blocking connect is still in progress: wait for
    /// `FASTNET_EVENT_CONNECTED`.
    FASTNET_ERROR_NOT_CONNECTED = -8,
    /// No peer with this ID (never connected, or gone).
    FASTNET_ERROR_UNKNOWN_PEER = -9,
    /// The host name did not resolve.
    FASTNET_ERROR_RESOLVE = -10,
    /// No address of the host accepted the TCP connection of the handshake.
    FASTNET_ERROR_CONNECT = -11,
    /// The server's certificate was rejected (not trusted, wrong name, expired,
    /// not the pinned one).
    FASTNET_ERROR_UNTRUSTED_SERVER = -12,
    /// The TLS handshake or the parameter exchange failed for another reason
    /// (incompatible configuration, not a FastNet server, closed during the
    /// handshake).
    FASTNET_ERROR_HANDSHAKE = -13,
    /// The operation did not complete within its time limit.
    FASTNET_ERROR_TIMEOUT = -14,
    /// The handshake succeeded but the server never answered over UDP (a firewall
    /// blocking UDP?).
    FASTNET_ERROR_NO_UDP_ANSWER = -15,
    /// A socket or thread operation failed (address in use, permission denied...).
    FASTNET_ERROR_IO = -16,
    /// The server's certificate or private key could not be loaded or used.
    FASTNET_ERROR_CREDENTIALS = -17,
    /// The output buffer is too small.
    FASTNET_ERROR_BUFFER_TOO_SMALL = -18,
    /// Too many live handles.
    FASTNET_ERROR_RESOURCE_LIMIT = -19,
    /// A bug inside FastNet: a Rust panic was caught at the API boundary. The
    /// handle stays usable, but report the message of `fastnet_last_error()`.
    FASTNET_ERROR_PANIC = -20,
}

// ---------------------------------------------------------------------------
// Events

/// What a `FastNetEvent` reports.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastNetEventType {
    /// No event (what `fastnet_client_poll` and `fastnet_server_poll` write when they
    /// return false).
    FASTNET_EVENT_NONE = 0,
    /// Client: the connection to the server is up (`peer_id` is
    /// `FASTNET_SERVER_PEER_ID`). Server: a client completed its handshake and its
    /// first datagram arrived (`peer_id` is the new peer's ID, never reused).
    FASTNET_EVENT_CONNECTED = 1,
    /// A message arrived: `peer_id` sent `data_len` bytes at `data` on `channel`.
    FASTNET_EVENT_DATA = 2,
    /// The connection with `peer_id` ended: `disconnect_reason` says why,
    /// `disconnect_code` is the close code, `message` describes it.
    FASTNET_EVENT_DISCONNECTED = 3,
    /// Servicing the socket failed: `error_code` and `message` say how. The
    /// connection may still work; a closed connection is reported by
    /// `FASTNET_EVENT_DISCONNECTED`.
    FASTNET_EVENT_ERROR = 4,
    /// A non-blocking connect failed: `error_code` and `message` say why. No other
    /// event follows; destroy the handle.
    FASTNET_EVENT_CONNECT_FAILED = 5,
}

/// Why a connection ended (`FastNetEvent.disconnect_reason`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastNetDisconnectReason {
    /// Not a disconnection event.
    FASTNET_DISCONNECT_NONE = 0,
    /// Nothing arrived from the peer for the idle timeout.
    FASTNET_DISCONNECT_TIMEOUT = 1,
    /// The peer closed the connection (`disconnect_code` is its code).
    FASTNET_DISCONNECT_CLOSED_BY_PEER = 2,
    /// This side closed the connection (`disconnect_code` is the code given).
    FASTNET_DISCONNECT_CLOSED_LOCALLY = 3,
    /// The peer broke the protocol.
    FASTNET_DISCONNECT_PROTOCOL_VIOLATION = 4,
    /// Too many packets failed authentication.
    FASTNET_DISCONNECT_AUTHENTICATION_FAILURES = 5,
    /// The packet number space is used up (after 2^62 packets).
    FASTNET_DISCONNECT_PACKET_NUMBERS_EXHAUSTED = 6,
}

/// Close code of a normal disconnection. Codes below 256 belong to FastNet;
/// applications use `FASTNET_CLOSE_APPLICATION_MIN` and up.
pub const FASTNET_CLOSE_NORMAL: u32 = 0;
/// First close code available to applications.
pub const FASTNET_CLOSE_APPLICATION_MIN: u32 = 256;

/// State of a client handle, as `fastnet_client_state` returns it (an
/// `int32_t`, negative for an invalid handle).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastNetClientState {
    /// A non-blocking connect is in progress.
    FASTNET_CLIENT_CONNECTING = 0,
    /// The connection is up.
    FASTNET_CLIENT_CONNECTED = 1,
    /// The connection ended (`FASTNET_EVENT_DISCONNECTED`) or is closing.
    FASTNET_CLIENT_DISCONNECTED = 2,
    /// The non-blocking connect failed (`FASTNET_EVENT_CONNECT_FAILED`).
    FASTNET_CLIENT_FAILED = 3,
}

/// One event, written by `fastnet_client_poll` or `fastnet_server_poll`.
///
/// Lifetime: `data` and `message` point into memory owned by the handle that
/// produced the event. They stay valid until the next `fastnet_*_poll` on the
/// same handle (from any thread) or until the handle is destroyed, whichever
/// comes first. Copy what you need to keep. Nothing has to be freed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FastNetEvent {
    /// One of the `FASTNET_EVENT_` values.
    pub r#type: FastNetEventType,
    /// The peer concerned: on a client always `FASTNET_SERVER_PEER_ID` (1), on a
    /// server the client's peer ID. 0 for `FASTNET_EVENT_NONE`.
    pub peer_id: u64,
    /// `FASTNET_EVENT_DATA`: the channel the message arrived on.
    pub channel: u8,
    /// `FASTNET_EVENT_DATA`: the message bytes (never NULL, even when empty).
    pub data: *const u8,
    /// `FASTNET_EVENT_DATA`: the message length in bytes.
    pub data_len: usize,
    /// `FASTNET_EVENT_ERROR` and `FASTNET_EVENT_CONNECT_FAILED`: a
    /// `FASTNET_ERROR_` code; otherwise `FASTNET_OK`.
    pub error_code: i32,
    /// `FASTNET_EVENT_DISCONNECTED`: one of the `FASTNET_DISCONNECT_` values.
    pub disconnect_reason: FastNetDisconnectReason,
    /// `FASTNET_EVENT_DISCONNECTED`: the close code (`FASTNET_CLOSE_NORMAL`,
    /// a protocol code below 256, or an application code).
    pub disconnect_code: u32,
    /// A NUL-terminated, human-readable description (never NULL; empty for data).
    pub message: *const c_char,
}

/// A snapshot of one connection's statistics (`fastnet_client_stats`,
/// `fastnet_server_peer_stats`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FastNetStats {
    /// Smoothed round-trip time, microseconds.
    pub rtt_us: u64,
    /// Round-trip time variation, microseconds.
    pub rtt_var_us: u64,
    /// Smallest round-trip time seen, microseconds.
    pub min_rtt_us: u64,
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Authenticated datagrams received.
    pub packets_received: u64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes of authenticated datagrams received.
    pub bytes_received: u64,
    /// Packets declared lost.
    pub packets_lost: u64,
    /// `packets_lost / packets_sent` (0 before anything was sent).
    pub loss: f64,
    /// Reliable frames sent again after a loss.
    pub retransmissions: u64,
    /// Messages accepted for sending.
    pub messages_sent: u64,
    /// Messages delivered to the application.
    pub messages_received: u64,
    /// Key updates completed.
    pub key_updates: u64,
    /// Incoming datagrams dropped (duplicates, replays, forgeries, too old...).
    pub packets_dropped: u64,
}

/// A simulated bad network on one direction of a socket, for testing (the link
/// conditioner). Zero everywhere with `enabled` false means a real network.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FastNetLinkConfig {
    /// Apply this simulation at all.
    pub enabled: bool,
    /// Probability (0.0 to 1.0) that a datagram is lost.
    pub loss: f64,
    /// Fixed one-way delay added to every datagram, milliseconds.
    pub latency_ms: u32,
    /// Extra random delay from 0 to this, milliseconds (reorders datagrams when
    /// larger than their spacing).
    pub jitter_ms: u32,
    /// Probability (0.0 to 1.0) that a datagram is held back by `reorder_delay_ms`.
    pub reorder: f64,
    /// Extra delay of reordered datagrams, milliseconds.
    pub reorder_delay_ms: u32,
    /// Probability (0.0 to 1.0) that a datagram is delivered twice.
    pub duplicate: f64,
    /// Bandwidth cap in bytes per second; 0 means unlimited.
    pub bandwidth_bytes_per_sec: u64,
    /// Bytes the simulated link may hold before dropping; 0 means the default (1 MiB).
    pub queue_limit_bytes: u64,
}

/// How `fastnet_client_connect_with` connects. Start from
/// `fastnet_client_config_default` (or zero the structure: every zero or NULL
/// field means its default), then set what you need. Strings and bytes are
/// copied during the call; the structure may be freed afterwards.
///
/// Trust: at most one of `ca_pem_path`, `ca_pem`, `pinned_sha256` and
/// `dangerous_accept_any_certificate` may be set; none means the public CAs
/// (Mozilla's roots), like a browser. Environment variables are not consulted.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FastNetClientConfig {
    /// Host name, IPv4 or IPv6 address of the server (required, NUL-terminated;
    /// `[::1]` and `::1` are both accepted).
    pub host: *const c_char,
    /// TCP port of the server's handshake listener (required, non-zero).
    pub port: u16,
    /// The name the server's certificate must carry; NULL means `host`.
    pub server_name: *const c_char,
    /// Trust the certificates of this PEM file (a private CA, or the server's
    /// own self-signed certificate). NULL: not used.
    pub ca_pem_path: *const c_char,
    /// Trust the certificates of this PEM text (`ca_pem_len` bytes). NULL: not used.
    pub ca_pem: *const u8,
    /// Length of `ca_pem` in bytes.
    pub ca_pem_len: usize,
    /// Accept exactly the certificate with this SHA-256 fingerprint: 64 hex
    /// digits, or 32 colon-separated hex pairs as `openssl x509 -fingerprint
    /// -sha256` and `fastnet_server_certificate_sha256` print. NULL: not used.
    pub pinned_sha256: *const c_char,
    /// DANGEROUS: accept any certificate. The connection is encrypted but not
    /// authenticated: anyone on the path can impersonate the server. For local
    /// experiments only; prefer `pinned_sha256`.
    pub dangerous_accept_any_certificate: bool,
    /// Bound on the whole connect (resolution, TCP, TLS, first UDP answer),
    /// milliseconds; 0 means 5000.
    pub connect_timeout_ms: u32,
    /// Close the connection when nothing arrived for this long, milliseconds;
    /// 0 means 10000.
    pub idle_timeout_ms: u32,
    /// Start the background service thread once connected (see
    /// `fastnet_client_enable_service_thread`).
    pub service_thread: bool,
    /// Return a handle at once and connect on a helper thread; polling then
    /// yields `FASTNET_EVENT_CONNECTED` or `FASTNET_EVENT_CONNECT_FAILED`.
    pub nonblocking: bool,
    /// Ask the OS for low-latency socket options where allowed (DSCP EF, busy
    /// polling, priority); refused options are ignored.
    pub low_latency_socket: bool,
    /// Simulated network applied to the datagrams this client sends.
    pub link_outgoing: FastNetLinkConfig,
    /// Simulated network applied to the datagrams this client receives.
    pub link_incoming: FastNetLinkConfig,
}

/// How `fastnet_server_create_with` runs a server. Start from
/// `fastnet_server_config_default` (or zero the structure), then set the
/// credentials: exactly one of the PEM file pair (`cert_pem_path` and
/// `key_pem_path`), the PEM text pair (`cert_pem` and `key_pem`) or
/// `dev_certificate`. Strings and bytes are copied during the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FastNetServerConfig {
    /// IP address to bind (`"::"`, `"0.0.0.0"`, `"127.0.0.1"`, `"[::1]"`...);
    /// NULL means `"::"` (IPv6 and IPv4, dual stack), falling back to
    /// `"0.0.0.0"` where IPv6 is unavailable.
    pub bind_address: *const c_char,
    /// UDP port of the data path; 0 picks a free port (see
    /// `fastnet_server_local_ports`).
    pub udp_port: u16,
    /// TCP port of the handshake listener (what clients connect to); 0 picks a
    /// free port.
    pub tcp_port: u16,
    /// PEM file holding the certificate chain, the server's certificate first.
    pub cert_pem_path: *const c_char,
    /// PEM file holding the private key of the first certificate.
    pub key_pem_path: *const c_char,
    /// PEM text of the certificate chain (`cert_pem_len` bytes).
    pub cert_pem: *const u8,
    /// Length of `cert_pem` in bytes.
    pub cert_pem_len: usize,
    /// PEM text of the private key (`key_pem_len` bytes).
    pub key_pem: *const u8,
    /// Length of `key_pem` in bytes.
    pub key_pem_len: usize,
    /// Generate a self-signed development certificate for `localhost`,
    /// `127.0.0.1` and `::1`; clients pin its fingerprint
    /// (`fastnet_server_certificate_sha256`). Never in production.
    pub dev_certificate: bool,
    /// UDP address clients are told to use (`"203.0.113.5:7777"`), when it
    /// differs from the bound one (NAT, port mapping). NULL: the bound address.
    pub advertised_udp_address: *const c_char,
    /// Time a client has to complete its handshake, milliseconds; 0 means 5000.
    pub handshake_timeout_ms: u32,
    /// Handshakes in progress at most (the oldest is dropped beyond); 0 means 1024.
    pub max_pending_handshakes: u32,
    /// Close a connection when nothing arrived for this long, milliseconds; 0
    /// means 10000.
    pub idle_timeout_ms: u32,
    /// Start the background service thread at once (see
    /// `fastnet_server_enable_service_thread`).
    pub service_thread: bool,
    /// Ask the OS for low-latency socket options where allowed.
    pub low_latency_socket: bool,
    /// Simulated network applied to the datagrams the server sends.
    pub link_outgoing: FastNetLinkConfig,
    /// Simulated network applied to the datagrams the server receives.
    pub link_incoming: FastNetLinkConfig,
}
