//! The session handshake as two sans-IO state machines, [`ClientHandshake`] and
//! [`ServerHandshake`]: TLS 1.3 (rustls, ring, ALPN `fastnet/1`), then one
//! parameters message each way inside TLS, then the session secrets and
//! connection IDs from the TLS exporter. Bytes received on the TCP stream go in
//! through `read_tls`, bytes to send come out of `write_tls`; the result is a
//! [`HandshakeOutcome`] holding the [`SessionKeys`] of a
//! [`Connection`](crate::Connection). `docs/HANDSHAKE.md` specifies the
//! exchange; this module also owns [`ServerCredentials`], the server's
//! certificate and key prepared once for all its handshakes.
//!
//! # Driving a handshake
//!
//! After creating the handshake (the client's first flight is queued at once):
//!
//! 1. While [`wants_write`](ClientHandshake::wants_write), send the bytes of
//!    [`write_tls`](ClientHandshake::write_tls) (or let
//!    [`write_tls_to`](ClientHandshake::write_tls_to) write into a non-blocking
//!    stream: rustls keeps what the stream did not take).
//! 2. Pass every chunk read from TCP to [`read_tls`](ClientHandshake::read_tls);
//!    then go back to 1, since reading usually produces bytes to send.
//! 3. Once [`is_done`](ClientHandshake::is_done), take the outcome, **flush the
//!    remaining output** (the client's last flight is still queued when it
//!    becomes done), then close the TCP connection. Nothing else travels on it.
//!
//! On an error, flush the output once more (it carries the TLS alert or
//! `close_notify` that tells the peer why), then close the TCP connection. A
//! TCP end-of-stream before `is_done` is a failed handshake. The state machine
//! has no clock: drivers abort handshakes that take too long (a few seconds).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::NoServerSessionStorage;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, ClientConnection, ServerConfig,
    ServerConnection,
};
use thiserror::Error;
use zeroize::Zeroizing;

use super::certs::{self, DevCertificate};
use super::params::{
    self, MalformedParams, ParameterMismatch, PeerParams, SessionParams, MAX_PARAMS_BODY_BYTES,
};
use super::trust::{
    certificate_sha256, PinMismatch, ServerTrust, TrustError, SHA256_FINGERPRINT_BYTES,
};
use crate::connection::SessionKeys;
use crate::crypto::{Secret, KEY_BYTES};
use crate::packet::ConnectionId;

/// The ALPN protocol both sides require; a peer that does not negotiate it is
/// refused.
pub const ALPN_PROTOCOL: &[u8] = b"fastnet/1";
/// The TLS exporter label (RFC 8446 §7.5) the session secrets and connection
/// IDs are derived with; the exporter context is absent.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-fastnet-v1 session";
/// Most bytes a handshake accepts from its peer (64 KiB): enough for a TLS
/// handshake with a long certificate chain (typically 3 to 10 KiB), small
/// enough that a peer sending garbage or stalling mid-message cannot make us
/// buffer without limit. More is refused with [`HandshakeError::TooManyBytes`].
pub const MAX_HANDSHAKE_INPUT_BYTES: usize = 64 * 1024;
/// Bytes of keying material exported: two 32-byte secrets and two 8-byte IDs (80).
const KEYING_MATERIAL_BYTES: usize = 2 * KEY_BYTES + 2 * CID_BYTES;
/// Bytes of a connection ID (64 bits, PROTOCOL.md §1.2).
const CID_BYTES: usize = 8;
/// Bytes of plaintext read from rustls at a time: one whole parameters message
/// (length byte and the largest body, 256).
const PLAINTEXT_CHUNK_BYTES: usize = 1 + MAX_PARAMS_BODY_BYTES;

/// Why a handshake failed, or could not start.
#[derive(Debug, Error)]
pub enum HandshakeError {
    /// The client's server name is neither a DNS name nor an IP address.
    #[error("invalid server name {name:?}: not a DNS name or an IP address")]
    InvalidServerName {
        /// The name as given.
        name: String,
    },
    /// The [`ServerTrust`] cannot be turned into a certificate verifier.
    #[error("the server trust policy is unusable: {0}")]
    Trust(#[from] TrustError),
    /// rustls refused the configuration or could not start the connection.
    #[error("setting up the TLS connection failed: {0}")]
    Config(rustls::Error),
    /// A server's [`SessionParams`] have no UDP address to advertise.
    #[error("the server has no UDP address to advertise: use SessionParams::with_udp_address")]
    MissingUdpAddress,
    /// A server's advertised UDP address has port 0, which clients cannot send to.
    #[error("the server's advertised UDP address {0} has port 0")]
    UdpAddressPortZero(SocketAddr),
    /// The client rejected the server's certificate (unknown issuer, wrong
    /// name, expired, ...).
    #[error("the server's certificate was rejected: {0}")]
    Certificate(CertificateError),
    /// The client rejected the server's certificate because it is not the
    /// one pinned with [`ServerTrust::PinnedSha256`].
    #[error("the server's certificate was rejected: {0}")]
    PinMismatch(PinMismatch),
    /// The peer aborted the TLS handshake with this alert (for example
    /// `UnknownCA` or `BadCertificate` on a server whose client distrusts it).
    #[error("the peer aborted the TLS handshake with the alert {0:?}")]
    PeerAlert(AlertDescription),
    /// The peer did not negotiate ALPN `fastnet/1`: it is not a FastNet peer
    /// of this protocol version.
    #[error("the peer did not negotiate the application protocol \"fastnet/1\" (ALPN)")]
    NoApplicationProtocol,
    /// Any other TLS failure: malformed or unexpected messages (garbage bytes),
    /// a peer that only offers TLS 1.2, a failed handshake signature, ...
    #[error("the TLS handshake failed: {0}")]
    Tls(rustls::Error),
    /// rustls refused to buffer bytes (it bounds its own buffers).
    #[error("rustls refused the bytes: {0}")]
    TlsBuffer(io::Error),
    /// The peer sent more than [`MAX_HANDSHAKE_INPUT_BYTES`] before the
    /// handshake completed.
    #[error("the peer sent more than {limit} bytes without completing the handshake")]
    TooManyBytes {
        /// The bound, [`MAX_HANDSHAKE_INPUT_BYTES`].
        limit: usize,
    },
    /// The peer closed the TLS session (`close_notify`) before the handshake
    /// completed; it usually found us incompatible.
    #[error("the peer closed the TLS session before the handshake completed")]
    PeerClosed,
    /// The peer's parameters message does not follow `docs/HANDSHAKE.md`.
    #[error("the peer's parameters message is malformed: {0}")]
    MalformedParameters(#[from] MalformedParams),
    /// The peer's transport configuration differs from ours where both sides
    /// must agree.
    #[error("incompatible transport parameters: {mismatch}")]
    IncompatibleParameters {
        /// What differs.
        mismatch: ParameterMismatch,
    },
    /// The TLS exporter failed (never expected once TLS has completed).
    #[error("exporting the session keys from TLS failed: {0}")]
    KeyExport(rustls::Error),
    /// `read_tls` was called again after the handshake failed.
    #[error("the handshake has already failed; start a new one")]
    AlreadyFailed,
}

impl HandshakeError {
    /// Sorts a rustls error into the variant that says what happened.
    fn from_tls(error: rustls::Error) -> Self {
        match error {
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
                match other.0.downcast_ref::<PinMismatch>() {
                    Some(mismatch) => Self::PinMismatch(*mismatch),
                    None => Self::Certificate(CertificateError::Other(other)),
                }
            }
            rustls::Error::InvalidCertificate(e) => Self::Certificate(e),
            rustls::Error::AlertReceived(alert) => Self::PeerAlert(alert),
            rustls::Error::NoApplicationProtocol => Self::NoApplicationProtocol,
            other => Self::Tls(other),
        }
    }
}

impl From<ParameterMismatch> for HandshakeError {
    fn from(mismatch: ParameterMismatch) -> Self {
        Self::IncompatibleParameters { mismatch }
    }
}

/// What a completed handshake yields, from this side's point of view.
#[derive(Debug)]
pub struct HandshakeOutcome {
    /// Connection IDs and secrets for [`Connection::new`](crate::Connection::new).
    pub keys: SessionKeys,
    /// What the peer announced (on the client, the server's UDP address).
    pub peer_params: PeerParams,
    /// On the client: SHA-256 of the certificate the server presented (log it,
    /// or remember it for [`ServerTrust::PinnedSha256`]). `None` on the server.
    pub server_certificate_sha256: Option<[u8; SHA256_FINGERPRINT_BYTES]>,
}

/// Why [`ServerCredentials`] could not be built.
#[derive(Debug, Error)]
pub enum CredentialsError {
    /// The certificate chain holds no certificate.
    #[error("the certificate chain is empty")]
    EmptyChain,
    /// Reading the certificate chain's PEM file failed (the error names it).
    #[error("reading the certificate chain failed: {0}")]
    ReadCertificates(io::Error),
    /// Reading the private key's PEM file failed (the error names it).
    #[error("reading the private key failed: {0}")]
    ReadKey(io::Error),
    /// rustls refused the chain or the key: an unsupported key type, or a key
    /// that does not belong to the first certificate.
    #[error("the certificate chain or private key is unusable: {0}")]
    Tls(rustls::Error),
}

/// A server's certificate chain and private key, prepared once as a TLS 1.3
/// rustls configuration and shared (in an `Arc`) by all its handshakes.
#[derive(Clone, Debug)]
pub struct ServerCredentials {
    config: Arc<ServerConfig>,
    certificate_sha256: [u8; SHA256_FINGERPRINT_BYTES],
}

impl ServerCredentials {
    /// Credentials from a chain (the server's certificate first, then the
    /// intermediates) and the private key of the first certificate.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, CredentialsError> {
        let Some(end_entity) = chain.first() else {
            return Err(CredentialsError::EmptyChain);
        };
        let certificate_sha256 = certificate_sha256(end_entity);
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(CredentialsError::Tls)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(CredentialsError::Tls)?;
        config.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
        // The parameters message leaves with the server's Finished, so the
        // client is done after one round trip.
        config.send_half_rtt_data = true;
        // Every session is a fresh handshake: no resumption, no early data,
        // and no tickets trailing after the handshake on the TCP stream.
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.max_early_data_size = 0;
        Ok(Self {
            config: Arc::new(config),
            certificate_sha256,
        })
    }

    /// Credentials from PEM files: the chain ([`certs::load_certs`]) and the
    /// key ([`certs::load_private_key`]).
    pub fn from_pem_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self, CredentialsError> {
        let chain = certs::load_certs(cert_path).map_err(CredentialsError::ReadCertificates)?;
        let key = certs::load_private_key(key_path).map_err(CredentialsError::ReadKey)?;
        Self::new(chain, key)
    }

    /// Credentials of a development certificate.
    pub fn from_dev_certificate(dev: &DevCertificate) -> Result<Self, CredentialsError> {
        Self::new(vec![dev.cert.clone()], dev.key.clone_key())
    }

    /// SHA-256 of the server's own certificate: what clients pin.
    pub fn certificate_sha256(&self) -> [u8; SHA256_FINGERPRINT_BYTES] {
        self.certificate_sha256
    }

    /// The rustls configuration (TLS 1.3 only, ALPN `fastnet/1`, no
    /// resumption), for drivers that need to inspect it.
    pub fn tls_config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
}

/// The client side of the session handshake (see the module docs for the
/// driving loop).
#[derive(Debug)]
pub struct ClientHandshake {
    engine: Engine,
}

impl ClientHandshake {
    /// Starts a handshake with the server known as `server_name` (a host name,
    /// or an IP literal such as `"192.0.2.1"`, `"::1"` or `"[::1]"`), trusted
    /// according to `trust`. The ClientHello is queued at once
    /// ([`wants_write`](Self::wants_write) is true).
    pub fn new(
        server_name: &str,
        trust: ServerTrust,
        params: SessionParams,
    ) -> Result<Self, HandshakeError> {
        let bare = server_name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(server_name);
        let name = ServerName::try_from(bare.to_string()).map_err(|_| {
            HandshakeError::InvalidServerName {
                name: server_name.to_string(),
            }
        })?;
        let provider = provider();
        let verifier = trust.verifier(&provider, server_name)?;
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(HandshakeError::Config)?
            // "dangerous" only because the verifier is ours: it implements the
            // ServerTrust policy, WebPKI verification included.
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
        config.resumption = Resumption::disabled();
        let tls = ClientConnection::new(Arc::new(config), name).map_err(HandshakeError::Config)?;
        Ok(Self {
            engine: Engine::new(rustls::Connection::Client(tls), params, None),
        })
    }

    /// Feeds bytes received from the TCP stream, in order. After the handshake
    /// is done further bytes are ignored; after a failure every call returns
    /// [`HandshakeError::AlreadyFailed`].
    pub fn read_tls(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        self.engine.read_tls(bytes)
    }

    /// Appends every byte waiting to be sent on the TCP stream to `out`.
    pub fn write_tls(&mut self, out: &mut Vec<u8>) {
        self.engine.write_tls(out)
    }

    /// Writes waiting bytes into `writer` (for example a non-blocking
    /// `TcpStream`) until all are written or it would block; returns how many
    /// it took. Bytes not taken stay queued for the next call.
    pub fn write_tls_to(&mut self, writer: &mut dyn Write) -> io::Result<usize> {
        self.engine.write_tls_to(writer)
    }

    /// Whether bytes are waiting to be sent.
    pub fn wants_write(&self) -> bool {
        self.engine.tls.wants_write()
    }

    /// Whether the handshake still needs bytes from the peer (neither done
    /// nor failed).
    pub fn wants_read(&self) -> bool {
        self.engine.stage == Stage::InProgress
    }

    /// Whether the handshake has completed (the outcome is, or was, available).
    pub fn is_done(&self) -> bool {
        self.engine.stage == Stage::Done
    }

    /// The outcome, once: `Some` the first time after [`is_done`](Self::is_done).
    pub fn take_outcome(&mut self) -> Option<HandshakeOutcome> {
        self.engine.outcome.take()
    }
}

/// The server side of the session handshake (see the module docs for the
/// driving loop).
#[derive(Debug)]
pub struct ServerHandshake {
    engine: Engine,
}

impl ServerHandshake {
    /// Starts a handshake for one accepted TCP connection. `params` must carry
    /// the UDP address to advertise ([`SessionParams::with_udp_address`]).
    pub fn new(
        credentials: Arc<ServerCredentials>,
        params: SessionParams,
    ) -> Result<Self, HandshakeError> {
        let address = params
            .udp_address()
            .ok_or(HandshakeError::MissingUdpAddress)?;
        if address.port() == 0 {
            return Err(HandshakeError::UdpAddressPortZero(address));
        }
        let tls =
            ServerConnection::new(credentials.config.clone()).map_err(HandshakeError::Config)?;
        Ok(Self {
            engine: Engine::new(rustls::Connection::Server(tls), params, Some(address)),
        })
    }

    /// Feeds bytes received from the TCP stream, in order; at most
    /// [`MAX_HANDSHAKE_INPUT_BYTES`] in all. After the handshake is done further
    /// bytes are ignored; after a failure every call returns
    /// [`HandshakeError::AlreadyFailed`].
    pub fn read_tls(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        self.engine.read_tls(bytes)
    }

    /// Appends every byte waiting to be sent on the TCP stream to `out`.
    pub fn write_tls(&mut self, out: &mut Vec<u8>) {
        self.engine.write_tls(out)
    }

    /// Writes waiting bytes into `writer` (for example a non-blocking
    /// `TcpStream`) until all are written or it would block; returns how many
    /// it took. Bytes not taken stay queued for the next call.
    pub fn write_tls_to(&mut self, writer: &mut dyn Write) -> io::Result<usize> {
        self.engine.write_tls_to(writer)
    }

    /// Whether bytes are waiting to be sent.
    pub fn wants_write(&self) -> bool {
        self.engine.tls.wants_write()
    }

    /// Whether the handshake still needs bytes from the peer (neither done
    /// nor failed).
    pub fn wants_read(&self) -> bool {
        self.engine.stage == Stage::InProgress
    }

    /// Whether the handshake has completed (the outcome is, or was, available).
    pub fn is_done(&self) -> bool {
        self.engine.stage == Stage::Done
    }

    /// The outcome, once: `Some` the first time after [`is_done`](Self::is_done).
    pub fn take_outcome(&mut self) -> Option<HandshakeOutcome> {
        self.engine.outcome.take()
    }
}

/// The ring crypto provider every configuration of this module uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    InProgress,
    Done,
    Failed,
}

/// The state both sides share: the TLS connection, our parameters, the
/// peer's message as it arrives, and the input count.
#[derive(Debug)]
struct Engine {
    tls: rustls::Connection,
    params: SessionParams,
    /// On the server, the address advertised; `None` on the client.
    server_udp_address: Option<SocketAddr>,
    received_bytes: usize,
    params_sent: bool,
    peer_message: Vec<u8>,
    stage: Stage,
    outcome: Option<HandshakeOutcome>,
}

impl Engine {
    fn new(
        tls: rustls::Connection,
        params: SessionParams,
        server_udp_address: Option<SocketAddr>,
    ) -> Self {
        Self {
            tls,
            params,
            server_udp_address,
            received_bytes: 0,
            params_sent: false,
            peer_message: Vec::with_capacity(PLAINTEXT_CHUNK_BYTES),
            stage: Stage::InProgress,
            outcome: None,
        }
    }

    fn is_client(&self) -> bool {
        matches!(self.tls, rustls::Connection::Client(_))
    }

    fn read_tls(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        match self.stage {
            Stage::Failed => return Err(HandshakeError::AlreadyFailed),
            Stage::Done => return Ok(()),
            Stage::InProgress => {}
        }
        let result = self.consume(bytes);
        if result.is_err() && self.stage != Stage::Failed {
            // Our own verdict (rustls queues an alert for its own errors and
            // marks the stage itself): tell the peer we are done talking.
            self.tls.send_close_notify();
            self.stage = Stage::Failed;
        }
        result
    }

    fn consume(&mut self, bytes: &[u8]) -> Result<(), HandshakeError> {
        if bytes.len() > MAX_HANDSHAKE_INPUT_BYTES - self.received_bytes {
            return Err(HandshakeError::TooManyBytes {
                limit: MAX_HANDSHAKE_INPUT_BYTES,
            });
        }
        self.received_bytes += bytes.len();
        let mut rest = bytes;
        // Never call rustls's read_tls with nothing: it takes that as TCP EOF.
        while !rest.is_empty() && self.stage == Stage::InProgress {
            let read = self
                .tls
                .read_tls(&mut rest)
                .map_err(HandshakeError::TlsBuffer)?;
            if let Err(e) = self.tls.process_new_packets() {
                // rustls has queued the alert that tells the peer why.
                self.stage = Stage::Failed;
                return Err(HandshakeError::from_tls(e));
            }
            self.advance()?;
            if read == 0 && self.stage == Stage::InProgress {
                // rustls reads nothing once the peer's close_notify arrived.
                return Err(HandshakeError::PeerClosed);
            }
        }
        Ok(())
    }

    /// Sends our parameters as soon as possible, then reads the peer's and
    /// completes once TLS has.
    fn advance(&mut self) -> Result<(), HandshakeError> {
        if !self.params_sent && self.may_send_params() {
            self.check_alpn()?;
            let message = params::encode(&self.params, self.server_udp_address);
            self.tls
                .writer()
                .write_all(&message)
                .map_err(HandshakeError::TlsBuffer)?;
            self.params_sent = true;
        }
        if self.tls.is_handshaking() {
            return Ok(());
        }
        self.check_alpn()?;
        let mut chunk = [0u8; PLAINTEXT_CHUNK_BYTES];
        loop {
            match self.tls.reader().read(&mut chunk) {
                // The peer's close_notify, with our message still incomplete.
                Ok(0) => return Err(HandshakeError::PeerClosed),
                Ok(n) => {
                    self.peer_message.extend_from_slice(&chunk[..n]);
                    // Decoding after every chunk bounds the buffer: a complete
                    // message followed by more bytes is an error at once.
                    if let Some(wire) = params::decode(&self.peer_message, self.is_client())? {
                        let peer = wire.check_against(&self.params)?;
                        return self.finish(peer);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(HandshakeError::TlsBuffer(e)),
            }
        }
    }

    /// The client sends its parameters once TLS has completed (the server is
    /// authenticated); the server as soon as it has answered the ClientHello
    /// with ALPN `fastnet/1` (rustls sends them right after its Finished).
    fn may_send_params(&self) -> bool {
        if self.is_client() {
            !self.tls.is_handshaking()
        } else {
            self.tls.protocol_version().is_some() && self.tls.alpn_protocol().is_some()
        }
    }

    fn check_alpn(&self) -> Result<(), HandshakeError> {
        if self.tls.alpn_protocol() == Some(ALPN_PROTOCOL) {
            Ok(())
        } else {
            Err(HandshakeError::NoApplicationProtocol)
        }
    }

    /// Exports the keys and records the outcome.
    fn finish(&mut self, peer_params: PeerParams) -> Result<(), HandshakeError> {
        let material = self
            .tls
            .export_keying_material(
                Zeroizing::new([0u8; KEYING_MATERIAL_BYTES]),
                EXPORTER_LABEL,
                None,
            )
            .map_err(HandshakeError::KeyExport)?;
        let secret = |offset: usize| {
            let mut bytes = [0u8; KEY_BYTES];
            bytes.copy_from_slice(&material[offset..offset + KEY_BYTES]);
            Secret::from_bytes(bytes)
        };
        let cid = |offset: usize| {
            let mut bytes = [0u8; CID_BYTES];
            bytes.copy_from_slice(&material[offset..offset + CID_BYTES]);
            ConnectionId(u64::from_be_bytes(bytes))
        };
        // Layout (docs/HANDSHAKE.md "Key material"): client-to-server secret,
        // server-to-client secret, client's connection ID, server's connection ID.
        let client_to_server = secret(0);
        let server_to_client = secret(KEY_BYTES);
        let client_cid = cid(2 * KEY_BYTES);
        let server_cid = cid(2 * KEY_BYTES + CID_BYTES);
        let (keys, server_certificate_sha256) = if self.is_client() {
            let keys = SessionKeys {
                local_cid: client_cid,
                peer_cid: server_cid,
                send_secret: client_to_server,
                recv_secret: server_to_client,
            };
            let fingerprint = self
                .tls
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(certificate_sha256);
            (keys, fingerprint)
        } else {
            let keys = SessionKeys {
                local_cid: server_cid,
                peer_cid: client_cid,
                send_secret: server_to_client,
                recv_secret: client_to_server,
            };
            (keys, None)
        };
        self.outcome = Some(HandshakeOutcome {
            keys,
            peer_params,
            server_certificate_sha256,
        });
        self.stage = Stage::Done;
        Ok(())
    }

    fn write_tls(&mut self, out: &mut Vec<u8>) {
        while self.tls.wants_write() {
            // Writing into a Vec cannot fail; stop if it ever makes no progress.
            match self.tls.write_tls(out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    fn write_tls_to(&mut self, writer: &mut dyn Write) -> io::Result<usize> {
        let mut total = 0;
        while self.tls.wants_write() {
            match self.tls.write_tls(writer) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && total > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChannelConfig, ChannelKind, TransportConfig};
    use crate::session::test_util::TempDir;
    use crate::{channels, Connection};
    use std::time::{Duration, Instant};

    const UDP_ADDRESS: &str = "127.0.0.1:4000";
    /// Rounds of the in-memory pump before giving up (a handshake takes 2).
    const MAX_ROUNDS: usize = 16;

    /// Bytes each direction carried, for searching.
    #[derive(Default)]
    struct Wire {
        client_to_server: Vec<u8>,
        server_to_client: Vec<u8>,
    }

    /// The results of both sides after pumping bytes between them.
    struct Pumped {
        client: Result<(), HandshakeError>,
        server: Result<(), HandshakeError>,
        wire: Wire,
    }

    /// Moves bytes between the two sides until both are done or have failed
    /// and have nothing left to send. Failed sides still send (their alert).
    fn pump(client: &mut ClientHandshake, server: &mut ServerHandshake) -> Pumped {
        let mut out = Pumped {
            client: Ok(()),
            server: Ok(()),
            wire: Wire::default(),
        };
        for _ in 0..MAX_ROUNDS {
            let mut bytes = Vec::new();
            client.write_tls(&mut bytes);
            out.wire.client_to_server.extend_from_slice(&bytes);
            if !bytes.is_empty() && out.server.is_ok() {
                out.server = server.read_tls(&bytes);
            }
            bytes.clear();
            server.write_tls(&mut bytes);
            out.wire.server_to_client.extend_from_slice(&bytes);
            if !bytes.is_empty() && out.client.is_ok() {
                out.client = client.read_tls(&bytes);
            }
            let settled = |done: bool, result: &Result<(), HandshakeError>| done || result.is_err();
            if settled(client.is_done(), &out.client)
                && settled(server.is_done(), &out.server)
                && !client.wants_write()
                && !server.wants_write()
            {
                break;
            }
        }
        out
    }

    fn dev_cert() -> DevCertificate {
        DevCertificate::generate(&["localhost", "127.0.0.1", "::1"]).unwrap()
    }

    fn server_with(dev: &DevCertificate, config: &TransportConfig) -> ServerHandshake {
        let credentials = Arc::new(ServerCredentials::from_dev_certificate(dev).unwrap());
        let params =
            SessionParams::from_config(config).with_udp_address(UDP_ADDRESS.parse().unwrap());
        ServerHandshake::new(credentials, params).unwrap()
    }

    fn client_with(name: &str, trust: ServerTrust, config: &TransportConfig) -> ClientHandshake {
        ClientHandshake::new(name, trust, SessionParams::from_config(config)).unwrap()
    }

    /// Runs a handshake between default configs and returns both handshakes.
    fn connect(
        name: &str,
        trust: ServerTrust,
        dev: &DevCertificate,
    ) -> (ClientHandshake, ServerHandshake, Pumped) {
        let config = TransportConfig::default();
        let mut client = client_with(name, trust, &config);
        let mut server = server_with(dev, &config);
        let pumped = pump(&mut client, &mut server);
        (client, server, pumped)
    }

    /// The 80 exported bytes, as the handshake derived them.
    fn exported(engine: &Engine) -> [u8; KEYING_MATERIAL_BYTES] {
        *engine
            .tls
            .export_keying_material(
                Zeroizing::new([0u8; KEYING_MATERIAL_BYTES]),
                EXPORTER_LABEL,
                None,
            )
            .unwrap()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// Sends `message` from `from` to `to` over direct datagram calls.
    fn deliver(
        from: &mut Connection,
        to: &mut Connection,
        now: Instant,
        message: &[u8],
    ) -> Vec<u8> {
        from.send(channels::RELIABLE_ORDERED, message).unwrap();
        let mut buf = vec![0u8; 2048];
        let mut sent = 0;
        while let Some(n) = from.poll_transmit(now, &mut buf) {
            to.handle_datagram(now, &mut buf[..n]).unwrap();
            sent += 1;
        }
        assert!(sent > 0);
        to.recv().expect("message delivered").data
    }

    #[test]
    fn handshake_gives_mirrored_keys_and_working_connections() {
        let dev = dev_cert();
        let (mut client, mut server, pumped) =
            connect("localhost", ServerTrust::PinnedSha256(dev.sha256), &dev);
        pumped.client.unwrap();
        pumped.server.unwrap();
        assert!(client.is_done() && server.is_done());
        assert!(!client.wants_read() && !server.wants_read());
        // Both sides exported the same material.
        assert_eq!(exported(&client.engine), exported(&server.engine));
        let c = client.take_outcome().unwrap();
        let s = server.take_outcome().unwrap();
        assert!(client.take_outcome().is_none(), "the outcome is taken once");
        assert_eq!(c.keys.local_cid, s.keys.peer_cid);
        assert_eq!(c.keys.peer_cid, s.keys.local_cid);
        assert_ne!(c.keys.local_cid, c.keys.peer_cid);
        assert_eq!(
            c.peer_params.udp_address,
            Some(UDP_ADDRESS.parse().unwrap())
        );
        assert_eq!(c.peer_params.max_datagram_bytes, 1200);
        assert_eq!(c.peer_params.idle_timeout, Duration::from_secs(10));
        assert_eq!(s.peer_params.udp_address, None);
        assert_eq!(c.server_certificate_sha256, Some(dev.sha256));
        assert_eq!(s.server_certificate_sha256, None);

        // The keys work: a message each way through real Connections, which
        // only authenticate each other's packets if send/recv secrets are crossed.
        let config = Arc::new(TransportConfig::default());
        let now = Instant::now();
        let mut client_conn = Connection::new(config.clone(), c.keys, now).unwrap();
        let mut server_conn = Connection::new(config, s.keys, now).unwrap();
        assert_eq!(
            deliver(&mut client_conn, &mut server_conn, now, b"hello server"),
            b"hello server"
        );
        assert_eq!(
            deliver(&mut server_conn, &mut client_conn, now, b"hello client"),
            b"hello client"
        );
    }

    #[test]
    fn client_is_done_after_one_round_trip() {
        let dev = dev_cert();
        let config = TransportConfig::default();
        let mut client = client_with("localhost", ServerTrust::PinnedSha256(dev.sha256), &config);
        let mut server = server_with(&dev, &config);
        let mut bytes = Vec::new();
        client.write_tls(&mut bytes); // ClientHello
        server.read_tls(&bytes).unwrap();
        bytes.clear();
        server.write_tls(&mut bytes); // ServerHello .. Finished + parameters (0.5-RTT)
        client.read_tls(&bytes).unwrap();
        assert!(
            client.is_done(),
            "the client has everything after one round trip"
        );
        assert!(
            client.wants_write(),
            "its Finished and parameters are still to be sent"
        );
        assert!(!server.is_done());
        bytes.clear();
        client.write_tls(&mut bytes);
        server.read_tls(&bytes).unwrap();
        assert!(server.is_done());
        assert!(
            !server.wants_write(),
            "nothing trails the handshake on the TCP stream"
        );
        // Bytes after completion are ignored.
        client.read_tls(b"late").unwrap();
        server.read_tls(b"late").unwrap();
    }

    #[test]
    fn byte_at_a_time_delivery_completes() {
        let dev = dev_cert();
        let config = TransportConfig::default();
        let mut client = client_with(
            "127.0.0.1",
            ServerTrust::Ca(vec![dev.cert.clone()]),
            &config,
        );
        let mut server = server_with(&dev, &config);
        for _ in 0..MAX_ROUNDS {
            let mut bytes = Vec::new();
            client.write_tls(&mut bytes);
            for b in &bytes {
                server.read_tls(std::slice::from_ref(b)).unwrap();
            }
            bytes.clear();
            server.write_tls(&mut bytes);
            for b in &bytes {
                client.read_tls(std::slice::from_ref(b)).unwrap();
            }
        }
        assert!(client.is_done() && server.is_done());
    }

    #[test]
    fn exported_secrets_never_cross_the_wire() {
        let dev = dev_cert();
        let (client, _server, pumped) =
            connect("localhost", ServerTrust::PinnedSha256(dev.sha256), &dev);
        pumped.client.unwrap();
        pumped.server.unwrap();
        let material = exported(&client.engine);
        let wire = [pumped.wire.client_to_server, pumped.wire.server_to_client];
        assert!(
            wire[0].len() > 100 && wire[1].len() > 300,
            "the capture holds the handshake"
        );
        for secret in [&material[..KEY_BYTES], &material[KEY_BYTES..2 * KEY_BYTES]] {
            for direction in &wire {
                assert!(!contains(direction, secret));
                // Not even a 16-byte half of it.
                assert!(!contains(direction, &secret[..16]));
                assert!(!contains(direction, &secret[16..]));
            }
        }
    }

    #[test]
    fn two_handshakes_give_different_keys_and_cids() {
        let dev = dev_cert();
        let trust = ServerTrust::PinnedSha256(dev.sha256);
        let (mut a, _, pa) = connect("localhost", trust.clone(), &dev);
        let (mut b, _, pb) = connect("localhost", trust, &dev);
        pa.client.unwrap();
        pb.client.unwrap();
        let (ma, mb) = (exported(&a.engine), exported(&b.engine));
        assert_ne!(ma[..KEY_BYTES], mb[..KEY_BYTES]);
        assert_ne!(ma[KEY_BYTES..2 * KEY_BYTES], mb[KEY_BYTES..2 * KEY_BYTES]);
        let (oa, ob) = (a.take_outcome().unwrap(), b.take_outcome().unwrap());
        assert_ne!(oa.keys.local_cid, ob.keys.local_cid);
        assert_ne!(oa.keys.peer_cid, ob.keys.peer_cid);
    }

    #[test]
    fn untrusted_self_signed_server_is_refused() {
        let dev = dev_cert();
        let (client, server, pumped) = connect("localhost", ServerTrust::WebPkiRoots, &dev);
        let err = pumped.client.unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::Certificate(CertificateError::UnknownIssuer)
            ),
            "{err}"
        );
        assert!(
            matches!(pumped.server, Err(HandshakeError::PeerAlert(_))),
            "{:?}",
            pumped.server
        );
        assert!(!client.is_done() && !server.is_done());
    }

    #[test]
    fn ca_trust_verifies_the_server_name() {
        let dev = dev_cert();
        for name in ["localhost", "127.0.0.1", "::1", "[::1]"] {
            let (client, server, pumped) =
                connect(name, ServerTrust::Ca(vec![dev.cert.clone()]), &dev);
            pumped.client.unwrap_or_else(|e| panic!("{name}: {e}"));
            pumped.server.unwrap();
            assert!(client.is_done() && server.is_done(), "{name}");
        }
        for name in ["example.com", "127.0.0.2"] {
            let (_, _, pumped) = connect(name, ServerTrust::Ca(vec![dev.cert.clone()]), &dev);
            let err = pumped.client.unwrap_err();
            assert!(
                matches!(
                    err,
                    HandshakeError::Certificate(
                        CertificateError::NotValidForName
                            | CertificateError::NotValidForNameContext { .. }
                    )
                ),
                "{name}: {err}"
            );
            assert!(pumped.server.is_err());
        }
        // Trusting another certificate as CA does not trust this one.
        let other = dev_cert();
        let (_, _, pumped) = connect("localhost", ServerTrust::Ca(vec![other.cert]), &dev);
        assert!(matches!(pumped.client, Err(HandshakeError::Certificate(_))));
    }

    #[test]
    fn ca_trust_from_pem_files_and_server_credentials_from_pem_files() {
        let dev = dev_cert();
        let dir = TempDir::new("handshake-pem");
        let files = dev.write_pem(&dir.0).unwrap();
        let credentials =
            Arc::new(ServerCredentials::from_pem_files(&files.cert, &files.key).unwrap());
        assert_eq!(credentials.certificate_sha256(), dev.sha256);
        let config = TransportConfig::default();
        let params =
            SessionParams::from_config(&config).with_udp_address("[::1]:4500".parse().unwrap());
        let mut server = ServerHandshake::new(credentials, params).unwrap();
        let trust = ServerTrust::ca_pem_file(&files.cert).unwrap();
        let mut client = client_with("localhost", trust, &config);
        let pumped = pump(&mut client, &mut server);
        pumped.client.unwrap();
        pumped.server.unwrap();
        let outcome = client.take_outcome().unwrap();
        assert_eq!(
            outcome.peer_params.udp_address,
            Some("[::1]:4500".parse().unwrap())
        );
        assert!(
            matches!(ServerTrust::ca_pem(dev.cert_pem.as_bytes()), Ok(ServerTrust::Ca(c)) if c == vec![dev.cert.clone()])
        );
    }

    #[test]
    fn pinned_certificate_accepts_any_name_and_refuses_a_wrong_pin() {
        let dev = dev_cert();
        for name in ["game.example", "203.0.113.50", "localhost"] {
            let (client, _, pumped) = connect(name, ServerTrust::PinnedSha256(dev.sha256), &dev);
            pumped.client.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(client.is_done());
        }
        let pinned = ServerTrust::pinned_sha256_hex(&dev.sha256_hex()).unwrap();
        let (_, _, pumped) = connect("localhost", pinned, &dev);
        pumped.client.unwrap();

        let mut wrong = dev.sha256;
        wrong[31] ^= 1;
        let (_, _, pumped) = connect("localhost", ServerTrust::PinnedSha256(wrong), &dev);
        let err = pumped.client.unwrap_err();
        let HandshakeError::PinMismatch(mismatch) = &err else {
            panic!("expected a pin mismatch, got {err}");
        };
        assert_eq!(mismatch.expected, wrong);
        assert_eq!(mismatch.presented, dev.sha256);
        assert!(err.to_string().contains("pinned"), "{err}");
        assert!(matches!(pumped.server, Err(HandshakeError::PeerAlert(_))));
    }

    #[test]
    fn dangerous_mode_connects() {
        let dev = dev_cert();
        let (mut client, _, pumped) = connect(
            "anything.invalid",
            ServerTrust::dangerous_accept_any_certificate(),
            &dev,
        );
        pumped.client.unwrap();
        pumped.server.unwrap();
        assert_eq!(
            client.take_outcome().unwrap().server_certificate_sha256,
            Some(dev.sha256)
        );
    }

    /// Runs a handshake between a client and a server with different configs
    /// and returns both errors.
    fn mismatched(client_config: &TransportConfig) -> (HandshakeError, HandshakeError) {
        let dev = dev_cert();
        let mut client = client_with(
            "localhost",
            ServerTrust::PinnedSha256(dev.sha256),
            client_config,
        );
        let mut server = server_with(&dev, &TransportConfig::default());
        let pumped = pump(&mut client, &mut server);
        assert!(!client.is_done() && !server.is_done());
        (pumped.client.unwrap_err(), pumped.server.unwrap_err())
    }

    #[test]
    fn incompatible_channel_tables_are_refused_on_both_sides() {
        let mut config = TransportConfig::default();
        config
            .add_channel(ChannelConfig::new(ChannelKind::Unreliable))
            .unwrap();
        let (client, server) = mismatched(&config);
        for err in [&client, &server] {
            assert!(
                matches!(
                    err,
                    HandshakeError::IncompatibleParameters {
                        mismatch: ParameterMismatch::ChannelTable { .. }
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("channel tables differ"), "{err}");
        }
    }

    #[test]
    fn different_datagram_sizes_are_refused_on_both_sides() {
        let mut config = TransportConfig::default();
        config.set_max_datagram_bytes(1400);
        let (client, server) = mismatched(&config);
        assert!(matches!(
            client,
            HandshakeError::IncompatibleParameters {
                mismatch: ParameterMismatch::MaxDatagramBytes {
                    local: 1400,
                    peer: 1200
                }
            }
        ));
        assert!(matches!(
            server,
            HandshakeError::IncompatibleParameters {
                mismatch: ParameterMismatch::MaxDatagramBytes {
                    local: 1200,
                    peer: 1400
                }
            }
        ));
    }

    #[test]
    fn garbage_bytes_are_an_error_not_a_panic() {
        let dev = dev_cert();
        let config = TransportConfig::default();
        let mut server = server_with(&dev, &config);
        let err = server
            .read_tls(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap_err();
        assert!(matches!(err, HandshakeError::Tls(_)), "{err}");
        assert!(matches!(
            server.read_tls(b"more"),
            Err(HandshakeError::AlreadyFailed)
        ));
        let mut alert = Vec::new();
        server.write_tls(&mut alert);
        assert!(
            !alert.is_empty(),
            "the server tells the peer why with an alert"
        );

        // Random bytes, to either side, in random chunks: errors or waiting, never a panic.
        for seed in 0..64u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut garbage = vec![0u8; rng.usize(1..4096)];
            rng.fill(&mut garbage);
            if seed % 2 == 0 {
                // Look like a handshake record some of the time.
                garbage[0] = 0x16;
            }
            let mut server = server_with(&dev, &config);
            let mut client =
                client_with("localhost", ServerTrust::PinnedSha256(dev.sha256), &config);
            for chunk in garbage.chunks(rng.usize(1..512)) {
                let _ = server.read_tls(chunk);
                let _ = client.read_tls(chunk);
            }
            assert!(!server.is_done() && !client.is_done());
        }
    }

    #[test]
    fn handshake_input_is_bounded() {
        let dev = dev_cert();
        let config = TransportConfig::default();
        // One oversized read is refused before rustls sees it.
        let mut server = server_with(&dev, &config);
        let err = server
            .read_tls(&vec![0x16; MAX_HANDSHAKE_INPUT_BYTES + 1])
            .unwrap_err();
        assert!(matches!(
            err,
            HandshakeError::TooManyBytes {
                limit: MAX_HANDSHAKE_INPUT_BYTES
            }
        ));

        // A client that announces the largest ClientHello rustls would buffer
        // (65,535 bytes) and sends it slowly is cut off at the bound.
        let mut stream = Vec::new();
        let mut handshake = vec![0x01, 0x00, 0xff, 0xff]; // ClientHello, 65,535 bytes
        handshake.resize(4 + 0xffff, 0);
        for record in handshake.chunks(16_384) {
            stream.extend_from_slice(&[0x16, 0x03, 0x01]);
            stream.extend_from_slice(&(record.len() as u16).to_be_bytes());
            stream.extend_from_slice(record);
        }
        assert!(stream.len() > MAX_HANDSHAKE_INPUT_BYTES);
        let mut server = server_with(&dev, &config);
        let mut fed = 0;
        let err = loop {
            let chunk = &stream[fed..(fed + 1000).min(stream.len())];
            match server.read_tls(chunk) {
                Ok(()) => fed += chunk.len(),
                Err(e) => break e,
            }
            assert!(fed < stream.len(), "the whole stream was accepted");
        };
        assert!(matches!(err, HandshakeError::TooManyBytes { .. }), "{err}");
        assert!(
            fed <= MAX_HANDSHAKE_INPUT_BYTES && fed + 1000 > MAX_HANDSHAKE_INPUT_BYTES,
            "cut at {fed}"
        );
    }

    /// Pumps a plain rustls client against a server handshake; returns the
    /// server's result.
    fn pump_raw(
        mut client: ClientConnection,
        server: &mut ServerHandshake,
    ) -> Result<(), HandshakeError> {
        let mut result = Ok(());
        for _ in 0..MAX_ROUNDS {
            let mut bytes = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut bytes).unwrap();
            }
            if !bytes.is_empty() && result.is_ok() {
                result = server.read_tls(&bytes);
            }
            bytes.clear();
            server.write_tls(&mut bytes);
            if !bytes.is_empty() {
                client.read_tls(&mut bytes.as_slice()).unwrap();
                if client.process_new_packets().is_err() {
                    break;
                }
            }
        }
        result
    }

    fn raw_client(
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> ClientConnection {
        let provider = provider();
        let verifier = ServerTrust::dangerous_accept_any_certificate()
            .verifier(&provider, "localhost")
            .unwrap();
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap()
    }

    #[test]
    fn tls12_only_client_is_refused() {
        let dev = dev_cert();
        let mut server = server_with(&dev, &TransportConfig::default());
        let client = raw_client(&[&rustls::version::TLS12], &[ALPN_PROTOCOL]);
        let err = pump_raw(client, &mut server).unwrap_err();
        assert!(
            matches!(err, HandshakeError::Tls(rustls::Error::PeerIncompatible(_))),
            "{err}"
        );
        assert!(!server.is_done());
    }

    #[test]
    fn client_without_fastnet_alpn_is_refused() {
        let dev = dev_cert();
        for alpn in [&[][..], &[b"h2".as_slice()][..]] {
            let mut server = server_with(&dev, &TransportConfig::default());
            let client = raw_client(&[&rustls::version::TLS13], alpn);
            let err = pump_raw(client, &mut server).unwrap_err();
            assert!(
                matches!(err, HandshakeError::NoApplicationProtocol),
                "{alpn:?}: {err}"
            );
            assert!(!server.is_done());
        }
        // A TLS 1.3 client with the right ALPN gets through TLS and then waits
        // for parameters it never sends: not done, no error.
        let mut server = server_with(&dev, &TransportConfig::default());
        let client = raw_client(&[&rustls::version::TLS13], &[ALPN_PROTOCOL]);
        pump_raw(client, &mut server).unwrap();
        assert!(!server.is_done() && server.wants_read());
    }

    #[test]
    fn construction_errors_are_specific() {
        let dev = dev_cert();
        let credentials = Arc::new(ServerCredentials::from_dev_certificate(&dev).unwrap());
        let params = SessionParams::from_config(&TransportConfig::default());
        assert!(matches!(
            ServerHandshake::new(credentials.clone(), params.clone()),
            Err(HandshakeError::MissingUdpAddress)
        ));
        assert!(matches!(
            ServerHandshake::new(
                credentials,
                params
                    .clone()
                    .with_udp_address("0.0.0.0:0".parse().unwrap())
            ),
            Err(HandshakeError::UdpAddressPortZero(_))
        ));
        assert!(matches!(
            ClientHandshake::new("not a host name!", ServerTrust::default(), params.clone()),
            Err(HandshakeError::InvalidServerName { .. })
        ));
        assert!(matches!(
            ClientHandshake::new("localhost", ServerTrust::Ca(Vec::new()), params),
            Err(HandshakeError::Trust(TrustError::NoCaCertificates))
        ));
        assert!(matches!(
            ServerCredentials::new(Vec::new(), dev.key.clone_key()),
            Err(CredentialsError::EmptyChain)
        ));
        // The key of another certificate.
        let other = dev_cert();
        let err = ServerCredentials::new(vec![dev.cert.clone()], other.key).unwrap_err();
        assert!(
            matches!(
                err,
                CredentialsError::Tls(rustls::Error::InconsistentKeys(_))
            ),
            "{err}"
        );
    }

    #[test]
    fn write_tls_to_keeps_what_the_writer_does_not_take() {
        /// Accepts at most `room` bytes, then would block.
        struct Trickle {
            taken: Vec<u8>,
            room: usize,
        }
        impl Write for Trickle {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.room == 0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                let n = buf.len().min(self.room);
                self.taken.extend_from_slice(&buf[..n]);
                self.room -= n;
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let dev = dev_cert();
        let config = TransportConfig::default();
        let mut client = client_with("localhost", ServerTrust::PinnedSha256(dev.sha256), &config);
        let mut server = server_with(&dev, &config);
        let mut pipe = Trickle {
            taken: Vec::new(),
            room: 0,
        };
        assert_eq!(
            client.write_tls_to(&mut pipe).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        while client.wants_write() {
            pipe.room = 100;
            client.write_tls_to(&mut pipe).unwrap();
        }
        server.read_tls(&pipe.taken).unwrap();
        let pumped = pump(&mut client, &mut server);
        pumped.client.unwrap();
        pumped.server.unwrap();
        assert!(client.is_done() && server.is_done());
    }
}
