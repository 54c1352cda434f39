//! The TCP side of the Tokio driver: the session handshakes of
//! `docs/HANDSHAKE.md` pumped over `tokio::net::TcpStream`.
//!
//! * Client: [`client_handshake`] runs one handshake on the caller's task.
//! * Server: [`spawn_acceptor`] starts a task that accepts TCP connections and
//!   runs each handshake in a task of its own, bounded by the handshake timeout,
//!   with at most `max_pending_handshakes` in progress: when the table is full
//!   the oldest handshake is dropped, so stalled connections cannot lock
//!   legitimate clients out. A finished handshake hands its keys to the driver
//!   through a callback. Nothing here ever touches the UDP path, so a stalled
//!   TCP client delays neither data nor other handshakes.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{AbortHandle, JoinSet};

use crate::connection::SessionKeys;
use crate::net::client::ConnectError;
use crate::net::server::HandshakeStats;
use crate::net::service::lock;
use crate::session::{
    ClientHandshake, HandshakeError, HandshakeOutcome, ServerCredentials, ServerHandshake,
    SessionParams,
};

/// Bytes read from a TCP stream at a time during a handshake.
const HANDSHAKE_READ_BYTES: usize = 16 << 10;
/// Pause after a failed `accept` (out of file descriptors and the like) before
/// trying again, so the acceptor does not spin.
const ACCEPT_ERROR_BACKOFF_MS: u64 = 10;
/// Backlog of the TCP listener (connections the OS completes before we accept).
const LISTEN_BACKLOG_CONNECTIONS: i32 = 1024;

/// Writes all of `bytes` to `stream`.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what is available (at least one byte, or 0 at end of stream).
async fn read_some(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Ok(n) => return Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Runs a client handshake on `stream` to completion and flushes our last
/// flight (Finished and parameters). The caller bounds the time.
pub(crate) async fn client_handshake(
    stream: &TcpStream,
    mut handshake: ClientHandshake,
) -> Result<HandshakeOutcome, ConnectError> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; HANDSHAKE_READ_BYTES];
    loop {
        handshake.write_tls(&mut out);
        if !out.is_empty() {
            write_all(stream, &out)
                .await
                .map_err(ConnectError::HandshakeIo)?;
            out.clear();
        }
        if handshake.is_done() {
            break;
        }
        let n = read_some(stream, &mut buf)
            .await
            .map_err(ConnectError::HandshakeIo)?;
        if n == 0 {
            return Err(ConnectError::HandshakeClosed);
        }
        if let Err(e) = handshake.read_tls(&buf[..n]) {
            // Tell the server why (best effort), then report our reason.
            handshake.write_tls(&mut out);
            let _ = stream.try_write(&out);
            return Err(e.into());
        }
    }
    handshake
        .take_outcome()
        .ok_or(ConnectError::HandshakeClosed)
}

/// Why a server handshake did not produce keys (logged, then counted).
#[derive(Debug, thiserror::Error)]
enum ServerHandshakeError {
    #[error("TCP I/O: {0}")]
    Io(#[from] io::Error),
    #[error("the client closed the connection before the handshake completed")]
    Closed,
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
}

/// Runs a server handshake on `stream` to completion.
async fn server_handshake(
    stream: &TcpStream,
    mut handshake: ServerHandshake,
) -> Result<HandshakeOutcome, ServerHandshakeError> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; HANDSHAKE_READ_BYTES];
    loop {
        handshake.write_tls(&mut out);
        if !out.is_empty() {
            write_all(stream, &out).await?;
            out.clear();
        }
        if handshake.is_done() {
            break;
        }
        let n = read_some(stream, &mut buf).await?;
        if n == 0 {
            return Err(ServerHandshakeError::Closed);
        }
        if let Err(e) = handshake.read_tls(&buf[..n]) {
            // Let rustls's alert go out (best effort) before closing.
            handshake.write_tls(&mut out);
            let _ = stream.try_write(&out);
            return Err(e.into());
        }
    }
    handshake.take_outcome().ok_or(ServerHandshakeError::Closed)
}

/// Binds a TCP listener; a wildcard IPv6 address (`[::]`) is dual-stack where
/// the OS allows. Must run inside a Tokio runtime.
pub(crate) fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    #[cfg(not(windows))]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG_CONNECTIONS)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Receives the keys of each completed server handshake; returns whether the
/// session was accepted (`false`: the driver is gone or refused the keys).
pub(crate) type SessionSink = Arc<dyn Fn(SessionKeys) -> bool + Send + Sync>;

/// What the acceptor needs besides its listener.
pub(crate) struct Acceptor {
    /// Certificate chain and key.
    pub credentials: Arc<ServerCredentials>,
    /// Our parameters, with the UDP address to advertise (a wildcard IP is
    /// replaced per connection by the address the client reached over TCP).
    pub params: SessionParams,
    /// Time a client has to complete its handshake.
    pub timeout: Duration,
    /// Handshakes in progress at most.
    pub max_pending: usize,
    /// Counters, shared with the driver.
    pub stats: Arc<Mutex<HandshakeStats>>,
    /// Where finished sessions go.
    pub sink: SessionSink,
}

impl Acceptor {
    /// Our parameters for one accepted stream: a wildcard advertised IP
    /// becomes the (canonical) local IP the client reached.
    fn params_for(&self, stream: &TcpStream) -> SessionParams {
        let Some(udp) = self.params.udp_address() else {
            return self.params.clone();
        };
        match stream.local_addr() {
            Ok(local) if udp.ip().is_unspecified() => self
                .params
                .clone()
                .with_udp_address(SocketAddr::new(local.ip().to_canonical(), udp.port())),
            _ => self.params.clone(),
        }
    }
}

/// Starts the acceptor task; abort it (through the returned handle) to stop
/// accepting and to abort every handshake in progress.
pub(crate) fn spawn_acceptor(listener: TcpListener, acceptor: Acceptor) -> AbortHandle {
    tokio::spawn(accept_loop(listener, acceptor)).abort_handle()
}

async fn accept_loop(listener: TcpListener, acceptor: Acceptor) {
    let acceptor = Arc::new(acceptor);
    let max_pending = acceptor.max_pending.max(1);
    let permits = Arc::new(Semaphore::new(max_pending));
    // Dropped with this task, which aborts every handshake in it.
    let mut tasks = JoinSet::new();
    // Handshakes in start order, oldest first, for eviction.
    let mut order: VecDeque<AbortHandle> = VecDeque::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)).await;
                continue;
            }
        };
        lock(&acceptor.stats).accepted += 1;
        while tasks.try_join_next().is_some() {}
        order.retain(|h| !h.is_finished());
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Full: drop the oldest handshake; its permit returns once the
                // runtime has dropped its task.
                if let Some(oldest) = order.pop_front() {
                    oldest.abort();
                    lock(&acceptor.stats).evicted += 1;
                }
                match permits.clone().acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => return, // never closed
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let handshake = match ServerHandshake::new(
            acceptor.credentials.clone(),
            acceptor.params_for(&stream),
        ) {
            Ok(handshake) => handshake,
            Err(e) => {
                tracing::warn!(error = %e, %peer, "cannot start handshake");
                lock(&acceptor.stats).failed += 1;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let handle = tasks.spawn(async move {
            let _permit = permit;
            let result =
                tokio::time::timeout(acceptor.timeout, server_handshake(&stream, handshake)).await;
            let mut stats = lock(&acceptor.stats);
            match result {
                Err(_) => stats.timed_out += 1,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, %peer, "handshake failed");
                    stats.failed += 1;
                }
                Ok(Ok(outcome)) => {
                    drop(stats);
                    let accepted = (acceptor.sink)(outcome.keys);
                    let mut stats = lock(&acceptor.stats);
                    if accepted {
                        stats.completed += 1;
                    } else {
                        stats.failed += 1;
                    }
                }
            }
        });
        order.push_back(handle);
    }
}
