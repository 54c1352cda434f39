//! Session establishment: the TLS 1.3 handshake over TCP that authenticates the
//! server and produces the [`SessionKeys`](crate::SessionKeys) the protocol core
//! starts from (PROTOCOL.md "Session establishment", `docs/HANDSHAKE.md`). Like
//! [`Connection`](crate::Connection) it is sans-IO: [`ClientHandshake`] and
//! [`ServerHandshake`] take the bytes received on the TCP stream and give the
//! bytes to send on it, and own no socket, so a game-loop driver over a
//! non-blocking `TcpStream` and a Tokio driver can both pump them.
//!
//! * [`trust`]: how a client decides to trust a server ([`ServerTrust`]) and
//!   SHA-256 certificate fingerprints.
//! * [`certs`]: loading PEM certificates and keys, and self-signed development
//!   certificates ([`DevCertificate`]).
//! * [`params`]: the transport parameters both sides exchange inside TLS
//!   ([`SessionParams`], [`PeerParams`]).
//! * [`handshake`]: the handshake state machines and the key export.
//!
//! ```
//! use std::sync::Arc;
//! use fastnet::session::{
//!     ClientHandshake, DevCertificate, ServerCredentials, ServerHandshake, ServerTrust,
//!     SessionParams,
//! };
//! use fastnet::TransportConfig;
//!
//! let config = TransportConfig::default();
//! let dev = DevCertificate::generate(&["localhost"]).unwrap();
//! let credentials = Arc::new(ServerCredentials::from_dev_certificate(&dev).unwrap());
//! let server_params = SessionParams::from_config(&config)
//!     .with_udp_address("127.0.0.1:4000".parse().unwrap());
//! let mut server = ServerHandshake::new(credentials, server_params).unwrap();
//! let trust = ServerTrust::PinnedSha256(dev.sha256);
//! let mut client =
//!     ClientHandshake::new("localhost", trust, SessionParams::from_config(&config)).unwrap();
//!
//! // In a real driver these bytes travel over TCP.
//! let mut bytes = Vec::new();
//! while !(client.is_done() && server.is_done()) {
//!     client.write_tls(&mut bytes);
//!     server.read_tls(&bytes).unwrap();
//!     bytes.clear();
//!     server.write_tls(&mut bytes);
//!     client.read_tls(&bytes).unwrap();
//!     bytes.clear();
//! }
//! let client_session = client.take_outcome().unwrap();
//! let server_session = server.take_outcome().unwrap();
//! assert_eq!(client_session.keys.local_cid, server_session.keys.peer_cid);
//! assert_eq!(client_session.peer_params.udp_address, Some("127.0.0.1:4000".parse().unwrap()));
//! ```

pub mod certs;
pub mod handshake;
pub mod params;
#[cfg(test)]
mod test_util;
pub mod trust;

pub use certs::{
    certs_from_pem, load_certs, load_private_key, private_key_from_pem, DevCertificate,
    DevCertificateError, DevPemFiles,
};
pub use handshake::{
    ClientHandshake, CredentialsError, HandshakeError, HandshakeOutcome, ServerCredentials,
    ServerHandshake, ALPN_PROTOCOL, EXPORTER_LABEL, MAX_HANDSHAKE_INPUT_BYTES,
};
pub use params::{MalformedParams, ParameterMismatch, PeerParams, SessionParams};
pub use trust::{
    certificate_sha256, format_sha256, parse_sha256, FingerprintError, PinMismatch, ServerTrust,
    TrustError,
};

/// The certificate and key types of the PKI API, re-exported so that
/// applications need no direct dependency on `rustls-pki-types`.
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer};
