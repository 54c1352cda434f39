//! The server functions: `fastnet_server_*`.

use std::collections::VecDeque;
use std::ffi::{c_char, c_void};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ptr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fastnet_core::config::MAX_RELIABLE_MESSAGE_LIMIT_BYTES;
use fastnet_core::net::{PeerEvent, PeerId, Server, ServerConfig, SocketConfig};
use fastnet_core::session::{
    certs_from_pem, format_sha256, private_key_from_pem, DevCertificate, ServerCredentials,
};
use fastnet_core::DisconnectReason;

use crate::abi::FastNetError::*;
use crate::abi::FastNetEventType::FASTNET_EVENT_NONE;
use crate::abi::*;
use crate::convert::{self, Ev};
use crate::ffi::{self, call, call_status, lock, Failure, Outcome};
use crate::handle::{Kind, Registry};

/// The opaque type behind `FastNetServer`; never defined, never dereferenced.
pub struct FastNetServer_ {
    _opaque: [u8; 0],
}

/// A server. The value is an opaque handle (not a pointer to memory): NULL
/// means "no server"; any other value is checked on every call, so a destroyed
/// or invalid handle gives `FASTNET_ERROR_INVALID_HANDLE`.
pub type FastNetServer = *mut FastNetServer_;

static SERVERS: Registry<Mutex<Option<ServerInner>>> = Registry::new(Kind::Server);

/// Names of the development certificate of `dev_certificate`.
const DEV_CERTIFICATE_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

struct ServerInner {
    server: Server,
    /// Errors waiting to be polled.
    queue: VecDeque<Ev>,
    /// Disconnections held back until the messages received before them are polled.
    deferred: VecDeque<(PeerId, DisconnectReason)>,
    data: Vec<u8>,
    text: Vec<u8>,
    serviced: bool,
    /// Whether a message was queued since the last service or flush: the next
    /// poll sends it first (without reading the sockets).
    flush_due: bool,
    fingerprint: [u8; 32],
}

fn handle_value(server: FastNetServer) -> usize {
    server.addr()
}

fn with_server<R>(
    server: FastNetServer,
    f: impl FnOnce(&mut ServerInner) -> Outcome<R>,
) -> Outcome<R> {
    let entry = SERVERS.get(handle_value(server))?;
    let mut guard = lock(&entry);
    let inner = guard.as_mut().ok_or_else(|| {
        Failure::new(
            FASTNET_ERROR_INVALID_HANDLE,
            "the server handle was destroyed",
        )
    })?;
    f(inner)
}

impl ServerInner {
    /// The next event: queued errors, then connections, then messages, then
    /// disconnections (after the peer's last message), servicing the server
    /// once per drain when nothing is pending. Messages sent since the last
    /// poll leave first.
    fn next_event(&mut self) -> Option<Ev> {
        if self.flush_due {
            self.flush_due = false;
            self.server.flush();
        }
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Some(ev);
            }
            while let Some(event) = self.server.poll_event() {
                match event {
                    PeerEvent::Connected(peer) => return Some(Ev::Connected(peer)),
                    PeerEvent::Disconnected(peer, reason) => {
                        self.deferred.push_back((peer, reason));
                    }
                }
            }
            if let Some((peer, channel)) = self.server.recv_into(&mut self.data) {
                return Some(Ev::Data { peer, channel });
            }
            if let Some((peer, reason)) = self.deferred.pop_front() {
                return Some(Ev::Disconnected(peer, reason));
            }
            if self.serviced {
                return None;
            }
            self.serviced = true;
            self.flush_due = false;
            if let Err(e) = self.server.service() {
                return Some(Ev::Error(convert::io_failure(
                    "servicing the sockets failed",
                    &e,
                )));
            }
        }
    }

    fn known_peer(&self, peer: u64) -> Outcome<()> {
        match self.server.peer_stats(peer) {
            Some(_) => Ok(()),
            None => Err(Failure::new(
                FASTNET_ERROR_UNKNOWN_PEER,
                format!("no peer {peer}"),
            )),
        }
    }
}

/// Where the C configuration's credentials come from.
enum Credentials<'a> {
    Files(&'a str, &'a str),
    Pem(&'a [u8], &'a [u8]),
    Dev,
}

fn credentials(source: Credentials<'_>) -> Outcome<ServerCredentials> {
    let bad = |e: &dyn std::fmt::Display| Failure::new(FASTNET_ERROR_CREDENTIALS, e.to_string());
    match source {
        Credentials::Files(cert, key) => {
            ServerCredentials::from_pem_files(cert, key).map_err(|e| bad(&e))
        }
        Credentials::Pem(cert, key) => {
            let chain = certs_from_pem(cert).map_err(|e| bad(&format!("cert_pem: {e}")))?;
            let key = private_key_from_pem(key).map_err(|e| bad(&format!("key_pem: {e}")))?;
            ServerCredentials::new(chain, key).map_err(|e| bad(&e))
        }
        Credentials::Dev => {
            let dev = DevCertificate::generate(&DEV_CERTIFICATE_NAMES).map_err(|e| bad(&e))?;
            ServerCredentials::from_dev_certificate(&dev).map_err(|e| bad(&e))
        }
    }
}

fn parse_ip(text: &str) -> Outcome<IpAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse()
        .map_err(|_| Failure::invalid(format!("bind_address {text:?} is not an IP address")))
}

/// Everything `create` needs, owned.
struct Setup {
    bind: Option<IpAddr>,
    udp_port: u16,
    tcp_port: u16,
    config: ServerConfig,
    service_thread: bool,
}

fn bind(setup: &Setup, ip: IpAddr) -> io::Result<Server> {
    Server::bind(
        SocketAddr::new(ip, setup.udp_port),
        SocketAddr::new(ip, setup.tcp_port),
        setup.config.clone(),
    )
}

fn create(setup: Setup) -> Outcome<FastNetServer> {
    let fingerprint = setup.config.credentials.certificate_sha256();
    let bound = match setup.bind {
        Some(ip) => bind(&setup, ip),
        None => match bind(&setup, IpAddr::V6(Ipv6Addr::UNSPECIFIED)) {
            // A port in use on [::] is in use for IPv4 too: report it.
            Err(e) if e.kind() != io::ErrorKind::AddrInUse => {
                bind(&setup, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            }
            other => other,
        },
    };
    let mut server = bound.map_err(|e| {
        let code = if e.kind() == io::ErrorKind::InvalidInput {
            FASTNET_ERROR_INVALID_ARGUMENT
        } else {
            FASTNET_ERROR_IO
        };
        Failure::new(
            code,
            format!(
                "cannot bind UDP port {} and TCP port {}: {e}",
                setup.udp_port, setup.tcp_port
            ),
        )
    })?;
    if setup.service_thread {
        server
            .start_service_thread()
            .map_err(|e| convert::io_failure("cannot start the service thread", &e))?;
    }
    let inner = ServerInner {
        server,
        queue: VecDeque::new(),
        deferred: VecDeque::new(),
        data: Vec::new(),
        text: Vec::new(),
        serviced: false,
        flush_due: false,
        fingerprint,
    };
    let handle = SERVERS.insert(Mutex::new(Some(inner)))?;
    Ok(ptr::without_provenance_mut(handle))
}

/// Creates a server listening for handshakes on TCP `tcp_port` and serving
/// sessions on UDP `udp_port` (0 picks a free port: see
/// `fastnet_server_local_ports`), on all IPv6 and IPv4 addresses (`[::]`, dual
/// stack; `0.0.0.0` where IPv6 is unavailable), with the certificate chain and
/// private key of two PEM files. Returns NULL on failure (reason in
/// `fastnet_last_error()`: `FASTNET_ERROR_CREDENTIALS`, `FASTNET_ERROR_IO` for a
/// port in use, `FASTNET_ERROR_INVALID_ARGUMENT`).
///
/// For a development certificate, other addresses or options, use
/// `fastnet_server_create_with`. Free the server with `fastnet_server_destroy`.
/// Any thread may call this.
///
/// # Safety
///
/// `cert_path` and `key_path` are NULL (an error) or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn fastnet_server_create(
    udp_port: u16,
    tcp_port: u16,
    cert_path: *const c_char,
    key_path: *const c_char,
) -> FastNetServer {
    call(
        |_| ptr::null_mut(),
        || {
            // SAFETY: the caller guarantees NUL-terminated strings (or NULL).
            let cert = unsafe { ffi::req_str(cert_path, "cert_path") }?;
            // SAFETY: as above.
            let key = unsafe { ffi::req_str(key_path, "key_path") }?;
            let credentials = credentials(Credentials::Files(cert, key))?;
            let mut config = ServerConfig::new(Arc::new(credentials));
            config.transport = convert::transport(0)?;
            create(Setup {
                bind: None,
                udp_port,
                tcp_port,
                config,
                service_thread: false,
            })
        },
    )
}

/// Creates a server as `cfg` says (see `FastNetServerConfig`); returns NULL on
/// failure (reason in `fastnet_last_error()`). Strings and bytes of `cfg` are
/// copied: `cfg` may be freed when this returns. Free the server with
/// `fastnet_server_destroy`. Any thread may call this.
///
/// # Safety
///
/// `cfg` is NULL (an error) or points to an initialized `FastNetServerConfig`
/// whose non-NULL strings are NUL-terminated and whose non-NULL byte pointers
/// have their lengths' worth of readable bytes.
#[no_mangle]
pub unsafe extern "C" fn fastnet_server_create_with(
    cfg: *const FastNetServerConfig,
) -> FastNetServer {
    call(
        |_| ptr::null_mut(),
        || {
            // SAFETY: the caller guarantees an initialized configuration (or NULL).
            let cfg = unsafe { ffi::input(cfg, "cfg") }?;
            // SAFETY: the caller guarantees the configuration's pointers.
            let setup = unsafe { setup_from(cfg) }?;
            create(setup)
        },
    )
}

/// Builds the server set-up of a C configuration, copying everything.
///
/// # Safety
///
/// As `fastnet_server_create_with`.
unsafe fn setup_from(cfg: &FastNetServerConfig) -> Outcome<Setup> {
    // SAFETY: guaranteed by the caller (as every string and byte pointer below).
    let bind = unsafe { ffi::opt_str(cfg.bind_address, "config.bind_address") }?;
    let bind = bind.map(parse_ip).transpose()?;
    // SAFETY: as above.
    let cert_path = unsafe { ffi::opt_str(cfg.cert_pem_path, "config.cert_pem_path") }?;
    // SAFETY: as above.
    let key_path = unsafe { ffi::opt_str(cfg.key_pem_path, "config.key_pem_path") }?;
    let pem = |ptr, len, what| {
        // SAFETY: as above.
        unsafe {
            ffi::bytes(
                ptr,
                len,
                ffi::MAX_INPUT_BYTES,
                FASTNET_ERROR_INVALID_ARGUMENT,
                what,
            )
        }
    };
    let cert_pem = pem(cfg.cert_pem, cfg.cert_pem_len, "config.cert_pem")?;
    let key_pem = pem(cfg.key_pem, cfg.key_pem_len, "config.key_pem")?;
    let files = cert_path.is_some() || key_path.is_some();
    let texts = !cert_pem.is_empty() || !key_pem.is_empty();
    let source = match (files, texts, cfg.dev_certificate) {
        (true, false, false) => match (cert_path, key_path) {
            (Some(c), Some(k)) => Credentials::Files(c, k),
            _ => return Err(Failure::invalid("set both cert_pem_path and key_pem_path")),
        },
        (false, true, false) => {
            if cert_pem.is_empty() || key_pem.is_empty() {
                return Err(Failure::invalid("set both cert_pem and key_pem"));
            }
            Credentials::Pem(cert_pem, key_pem)
        }
        (false, false, true) => Credentials::Dev,
        (false, false, false) => {
            return Err(Failure::invalid(
                "no credentials: set cert_pem_path and key_pem_path, cert_pem and key_pem, \
                 or dev_certificate",
            ))
        }
        _ => {
            return Err(Failure::invalid(
                "set only one kind of credentials: PEM files, PEM text or dev_certificate",
            ))
        }
    };
    let mut config = ServerConfig::new(Arc::new(credentials(source)?));
    config.transport = convert::transport(cfg.idle_timeout_ms)?;
    // SAFETY: as above.
    let advertised =
        unsafe { ffi::opt_str(cfg.advertised_udp_address, "config.advertised_udp_address") }?;
    if let Some(addr) = advertised {
        config.advertised_udp_addr = Some(addr.parse().map_err(|_| {
            Failure::invalid(format!(
                "advertised_udp_address {addr:?} is not an address with a port"
            ))
        })?);
    }
    if cfg.handshake_timeout_ms != 0 {
        config.handshake_timeout = Duration::from_millis(cfg.handshake_timeout_ms.into());
    }
    if cfg.max_pending_handshakes != 0 {
        config.max_pending_handshakes =
            usize::try_from(cfg.max_pending_handshakes).unwrap_or(usize::MAX);
    }
    if cfg.low_latency_socket {
        config.socket = SocketConfig::low_latency();
    }
    config.link = convert::link_simulation(&cfg.link_outgoing, &cfg.link_incoming)?;
    Ok(Setup {
        bind,
        udp_port: cfg.udp_port,
        tcp_port: cfg.tcp_port,
        config,
        service_thread: cfg.service_thread,
    })
}

/// Fills `cfg` with the defaults: all addresses (dual stack), ports 0 (set
/// them, or read the chosen ones with `fastnet_server_local_ports`), no
/// credentials (set some), 5 s handshake timeout, 1024 pending handshakes, 10 s
/// idle timeout, no service thread, no link simulation. Returns `FASTNET_OK`,
/// or `FASTNET_ERROR_INVALID_ARGUMENT` when `cfg` is NULL.
///
/// # Safety
///
/// `cfg` is NULL or points to writable memory for a `FastNetServerConfig`.
#[no_mangle]
pub unsafe extern "C" fn fastnet_server_config_default(cfg: *mut FastNetServerConfig) -> i32 {
    call_status(|| {
        let defaults = FastNetServerConfig {
            bind_address: ptr::null(),
            udp_port: 0,
            tcp_port: 0,
            cert_pem_path: ptr::null(),
            key_pem_path: ptr::null(),
            cert_pem: ptr::null(),
            cert_pem_len: 0,
            key_pem: ptr::null(),
            key_pem_len: 0,
            dev_certificate: false,
            advertised_udp_address: ptr::null(),
            handshake_timeout_ms: 5000,
            max_pending_handshakes: 1024,
            idle_timeout_ms: 10_000,
            service_thread: false,
            low_latency_socket: false,
            link_outgoing: convert::default_link(),
            link_incoming: convert::default_link(),
        };
        // SAFETY: the caller guarantees writable memory (or NULL).
        unsafe { ffi::output(cfg, defaults, "cfg") }
    })
}

/// Takes the next event of the server into `*out` and returns true, or returns
/// false at once when there is none (and writes a `FASTNET_EVENT_NONE` event).
/// Never blocks.
///
/// Events come one per call: `FASTNET_EVENT_CONNECTED` when a client's
/// session is up (before its messages), `FASTNET_EVENT_DATA` per message,
/// `FASTNET_EVENT_DISCONNECTED` when a peer's connection ended (after the
/// messages it sent before), `FASTNET_EVENT_ERROR` when a socket fails. When
/// nothing is queued, the server is serviced first (without blocking:
/// handshakes, datagrams, timers, queued sends), once per drain: poll until
/// it returns false, every frame (or tick). Each poll first sends what
/// `fastnet_server_send` queued since the previous one, so answers given while
/// handling events leave during the drain, not with the next one.
///
/// The event's `data` and `message` stay valid until the next poll on this
/// handle or its destruction (see `FastNetEvent`).
///
/// Returns false with `fastnet_last_error_code()` set on an invalid handle or a
/// NULL `out`. Any thread; calls on one handle are serialized.
///
/// # Safety
///
/// `out` is NULL (an error) or points to writable memory for a `FastNetEvent`.
#[no_mangle]
pub unsafe extern "C" fn fastnet_server_poll(
    server: FastNetServer,
    out: *mut FastNetEvent,
) -> bool {
    call(
        |_| false,
        || {
            if out.is_null() {
                return Err(Failure::invalid("out is NULL"));
            }
            let event = with_server(server, |inner| {
                Ok(match inner.next_event() {
                    Some(ev) => convert::to_event(ev, &inner.data, &mut inner.text),
                    None => {
                        inner.serviced = false;
                        convert::no_event()
                    }
                })
            });
            let event = match event {
                Ok(event) => event,
                Err(failure) => {
                    // SAFETY: `out` is non-NULL and, per the contract, writable.
                    let _ = unsafe { ffi::output(out, convert::no_event(), "out") };
                    return Err(failure);
                }
            };
            let found = event.r#type != FASTNET_EVENT_NONE;
            // SAFETY: the caller guarantees writable memory for one event.
            unsafe { ffi::output(out, event, "out") }?;
            Ok(found)
        },
    )
}

/// Services the server, waiting up to `timeout_ms` milliseconds for traffic
/// (at most 5 ms at a time, so handshakes progress), then services again; 0
/// never blocks. Use it instead of sleeping in the server loop, then poll.
/// Returns `FASTNET_OK`, `FASTNET_ERROR_IO` or `FASTNET_ERROR_INVALID_HANDLE`.
/// Holds the handle's lock while waiting.
#[no_mangle]
pub extern "C" fn fastnet_server_service(server: FastNetServer, timeout_ms: u32) -> i32 {
    call_status(|| {
        with_server(server, |inner| {
            inner
                .server
                .service_for(Duration::from_millis(timeout_ms.into()))
                .map_err(|e| convert::io_failure("servicing the sockets failed", &e))
        })
    })
}

/// A message argument: `len` bytes at `data`.
///
/// # Safety
///
/// When `data` is non-NULL and `len` is at most the largest message size,
/// `data` points to `len` readable bytes valid for `'a`.
unsafe fn message<'a>(data: *const c_void, len: usize) -> Outcome<&'a [u8]> {
    // SAFETY: guaranteed by the caller; NULL and oversized lengths are refused
    // before reading.
    unsafe {
        ffi::bytes(
            data.cast(),
            len,
            MAX_RELIABLE_MESSAGE_LIMIT_BYTES,
            FASTNET_ERROR_MESSAGE_TOO_LARGE,
            "data",
        )
    }
}

/// Queues a message of `len` bytes at `data` for `peer` on `channel`; it goes
/// out with the next poll (which sends what is queued first, even in the middle
/// of a drain, without reading the sockets again) or service; the messages
/// queued between two polls share datagrams. The bytes are copied.
///
/// Returns `FASTNET_OK`, or `FASTNET_ERROR_INVALID_HANDLE`,
/// `FASTNET_ERROR_INVALID_ARGUMENT` (NULL `data` with a non-zero `len`),
/// `FASTNET_ERROR_UNKNOWN_PEER`, `FASTNET_ERROR_UNKNOWN_CHANNEL`,
/// `FASTNET_ERROR_MESSAGE_TOO_LARGE` (checked before `data` is read),
/// `FASTNET_ERROR_WOULD_BLOCK` or `FASTNET_ERROR_CLOSED`. Any thread.
///
/// # Safety
///
/// When `data` is non-NULL and `len` is within the channel's limit, `data`
/// points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn fastnet_server_send(
    server: FastNetServer,
    peer: u64,
    channel: u8,
    data: *const c_void,
    len: usize,
) -> i32 {
    call_status(|| {
        with_server(server, |inner| {
            // SAFETY: the caller of this function guarantees `data` and `len`.
            let bytes = unsafe { message(data, len) }?;
            match inner.server.send(peer, channel, bytes) {
                Ok(()) => {
                    inner.flush_due = true;
                    Ok(())
                }
                Err(e) => {
                    inner.known_peer(peer)?;
                    Err(convert::send_failure(e))
                }
            }
        })
    })
}

/// Queues a message for every connected peer. Returns how many peers accepted
/// it (0 or more), or a negative `FASTNET_ERROR_` code (invalid handle or
/// arguments; `FASTNET_ERROR_MESSAGE_TOO_LARGE` for a length above any channel's
/// limit). The bytes are copied. Any thread.
///
/// # Safety
///
/// As `fastnet_server_send`.
#[no_mangle]
pub unsafe extern "C" fn fastnet_server_broadcast(
    server: FastNetServer,
    channel: u8,
    data: *const c_void,
    len: usize,
) -> i32 {
    call(
        |code| code,
        || {
            with_server(server, |inner| {
                // SAFETY: the caller of this function guarantees `data` and `len`.
                let bytes = unsafe { message(data, len) }?;
                let count = inner.server.broadcast(channel, bytes);
                inner.flush_due |= count > 0;
                Ok(i32::try_from(count).unwrap_or(i32::MAX))
            })
        },
    )
}

/// Closes the connection of `peer` with close `code` (`FASTNET_CLOSE_NORMAL`
/// or an application code from `FASTNET_CLOSE_APPLICATION_MIN`), telling it
/// at once. A `FASTNET_EVENT_DISCONNECTED` event follows. Returns `FASTNET_OK`,
/// `FASTNET_ERROR_UNKNOWN_PEER` or `FASTNET_ERROR_INVALID_HANDLE`. Any thread.
#[no_mangle]
pub extern "C" fn fastnet_server_disconnect_peer(
    server: FastNetServer,
    peer: u64,
    code: u32,
) -> i32 {
    call_status(|| {
        with_server(server, |inner| {
            inner.known_peer(peer)?;
            inner.server.disconnect(peer, code);
            Ok(())
        })
    })
}

/// The number of peers with an established connection, or a negative
/// `FASTNET_ERROR_` code for an invalid handle. Any thread.
#[no_mangle]
pub extern "C" fn fastnet_server_peer_count(server: FastNetServer) -> i32 {
    call(
        |code| code,
        || {
            with_server(server, |inner| {
                Ok(i32::try_from(inner.server.peer_count()).unwrap_or(i32::MAX))
            })
        },
    )
}

/// Writes the statistics of `peer`'s connection to `*out`. Returns
/// `FASTNET_OK`, `FASTNET_ERROR_UNKNOWN_PEER`, `FASTNET_ERROR_INVALID_ARGUMENT`
/// (NULL `out`) or `FASTNET_ERROR_INVALID_HANDLE`. Any thread.
///
/// # Safety
///
/// `out` is NULL or points to writable memory for a `FastNetStats`.
#[no_mangle]
pub unsafe extern "C" fn fastnet_server_peer_stats(
    server: FastNetServer,
    peer: u64,
    out: *mut FastNetStats,
) -> i32 {
    call_status(|| {
        let stats = with_server(server, |inner| {
            inner
                .server
                .peer_stats(peer)
                .ok_or_else(|| Failure::new(FASTNET_ERROR_UNKNOWN_PEER, format!("no peer {peer}")))
        })?;
        // SAFETY: the caller guarantees writable memory (or NULL).
        unsafe { ffi::output(out, convert::stats(&stats), "out") }
    })
}

/// Writes the SHA-256 fingerprint of the server's certificate to `out` as a
/// NUL-terminated string of colon-separated upper-case hex pairs
/// (`"AB:CD:...:EF"`, what clients pin with `pinned_sha256` or
/// `FASTNET_TRUST_PIN_SHA256`). `len` is the size of `out`; it needs
/// `FASTNET_SHA256_FINGERPRINT_BUFFER` (96) bytes. Returns `FASTNET_OK`,
/// `FASTNET_ERROR_BUFFER_TOO_SMALL` (`out` then holds an empty string if `len`
/// is at least 1), `FASTNET_ERROR_INVALID_ARGUMENT` (NULL `out`) or
/// `FASTNET_ERROR_INVALID_HANDLE`.
///
/// # Safety
///
/// `out` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn fastnet_server_certificate_sha256(
    server: FastNetServer,
    out: *mut c_char,
    len: usize,
) -> i32 {
    call_status(|| {
        let text = with_server(server, |inner| Ok(format_sha256(&inner.fingerprint)))?;
        if out.is_null() {
            return Err(Failure::invalid("out is NULL"));
        }
        let needed = text.len() + 1;
        if len < needed {
            if len > 0 {
                // SAFETY: `out` is non-NULL with at least one writable byte.
                unsafe { out.write(0) };
            }
            return Err(Failure::new(
                FASTNET_ERROR_BUFFER_TOO_SMALL,
                format!("the fingerprint needs {needed} bytes, the buffer has {len}"),
            ));
        }
        // SAFETY: `out` has `len >= needed` writable bytes; `text` is ours and
        // does not overlap it.
        unsafe {
            ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), out, text.len());
            out.add(text.len()).write(0);
        }
        Ok(())
    })
}

/// Writes the bound UDP and TCP ports (useful after binding port 0) to
/// `*udp_port` and `*tcp_port`; either pointer may be NULL. Returns `FASTNET_OK`
/// or `FASTNET_ERROR_INVALID_HANDLE`.
///
/// # Safety
///
/// Each pointer is NULL or points to a writable `uint16_t`.
#[no_mangle]
pub unsafe extern "C" fn fastnet_server_local_ports(
    server: FastNetServer,
    udp_port: *mut u16,
    tcp_port: *mut u16,
) -> i32 {
    call_status(|| {
        let (udp, tcp) = with_server(server, |inner| {
            Ok((
                inner.server.udp_addr().port(),
                inner.server.tcp_addr().port(),
            ))
        })?;
        if !udp_port.is_null() {
            // SAFETY: non-NULL; the caller guarantees a writable uint16_t.
            unsafe { ffi::output(udp_port, udp, "udp_port") }?;
        }
        if !tcp_port.is_null() {
            // SAFETY: as above.
            unsafe { ffi::output(tcp_port, tcp, "tcp_port") }?;
        }
        Ok(())
    })
}

/// Starts the background service thread: it receives, acknowledges,
/// retransmits and runs handshakes even when the game does not poll for a
/// while. Polling stays necessary to get events. Idempotent. Returns
/// `FASTNET_OK`, `FASTNET_ERROR_IO` or `FASTNET_ERROR_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn fastnet_server_enable_service_thread(server: FastNetServer) -> i32 {
    call_status(|| {
        with_server(server, |inner| {
            inner
                .server
                .start_service_thread()
                .map_err(|e| convert::io_failure("cannot start the service thread", &e))
        })
    })
}

/// Turns on UDP generic receive offload for the server's socket (Linux 5.0+):
/// a run of equal-sized datagrams from one sender (a large message's
/// fragments, sent with segmentation offload) reaches the socket as one
/// buffer, which FastNet splits, so bulk data costs the receiving kernel one
/// buffer per run. Each receive then costs a little more (a control buffer),
/// so it suits a server receiving bulk data (uploads, large reliable
/// messages), not a latency-critical one. Idempotent; a running service
/// thread is restarted around the switch. Elsewhere, or where the kernel
/// refuses it, receives stay as they were: that is not an error. Returns
/// `FASTNET_OK`, `FASTNET_ERROR_IO` (the service thread could not restart)
/// or `FASTNET_ERROR_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn fastnet_server_enable_gro(server: FastNetServer) -> i32 {
    call_status(|| {
        with_server(server, |inner| {
            inner
                .server
                .enable_gro()
                .map(drop)
                .map_err(|e| convert::io_failure("cannot restart the service thread", &e))
        })
    })
}

/// Makes `fastnet_server_service` spin on the socket for up to `us`
/// microseconds (bounded by its timeout) before sleeping in the OS: lower
/// latency for a processor. 0, the default, sleeps at once. Returns
/// `FASTNET_OK` or `FASTNET_ERROR_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn fastnet_server_set_busy_wait_us(server: FastNetServer, us: u32) -> i32 {
    call_status(|| {
        with_server(server, |inner| {
            inner.server.set_busy_wait(Duration::from_micros(us.into()));
            Ok(())
        })
    })
}

/// Closes every connection (telling the peers), closes the sockets, stops the
/// service thread and frees the handle: afterwards the handle is invalid
/// (every call with it, including a second destroy, returns
/// `FASTNET_ERROR_INVALID_HANDLE`) and the data of the last polled event is
/// freed. The ports are free again when this returns. Returns `FASTNET_OK` or
/// `FASTNET_ERROR_INVALID_HANDLE`. Any thread; a call on the same handle running
/// in another thread finishes first.
#[no_mangle]
pub extern "C" fn fastnet_server_destroy(server: FastNetServer) -> i32 {
    call_status(|| {
        let entry = SERVERS.remove(handle_value(server))?;
        let inner = lock(&entry).take();
        drop(inner);
        Ok(())
    })
}

/// Live server handles (tests).
#[doc(hidden)]
pub fn live_servers() -> usize {
    SERVERS.live()
}
