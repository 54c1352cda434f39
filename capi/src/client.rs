//! The client functions: `fastnet_client_*`.

use std::collections::VecDeque;
use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Mutex;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use fastnet_core::close_code;
use fastnet_core::config::MAX_RELIABLE_MESSAGE_LIMIT_BYTES;
use fastnet_core::net::{Client, ClientConfig, ClientEvent, ConnectError, SocketConfig};
use fastnet_core::session::ServerTrust;

use crate::abi::FastNetClientState::*;
use crate::abi::FastNetError::*;
use crate::abi::FastNetEventType::FASTNET_EVENT_NONE;
use crate::abi::*;
use crate::convert::{self, Ev};
use crate::ffi::{self, call, call_status, lock, Failure, Outcome};
use crate::handle::{Kind, Registry};

/// The opaque type behind `FastNetClient`; never defined, never dereferenced.
pub struct FastNetClient_ {
    _opaque: [u8; 0],
}

/// A client connection. The value is an opaque handle (not a pointer to
/// memory): NULL means "no client"; any other value is checked on every call,
/// so a destroyed or invalid handle gives `FASTNET_ERROR_INVALID_HANDLE`.
pub type FastNetClient = *mut FastNetClient_;

static CLIENTS: Registry<Mutex<Option<ClientInner>>> = Registry::new(Kind::Client);

/// Extra time a blocking connect waits for the helper thread beyond the connect
/// timeout (the resolver is the one step the timeout cannot interrupt).
const CONNECT_GRACE: Duration = Duration::from_millis(250);

/// Environment variable `fastnet_client_connect` reads for a pinned fingerprint.
const ENV_PIN: &str = "FASTNET_TRUST_PIN_SHA256";
/// Environment variable `fastnet_client_connect` reads for a CA PEM file.
const ENV_CA_FILE: &str = "FASTNET_TRUST_CA_FILE";

type ConnectResult = Result<Client, ConnectError>;

struct Connecting {
    rx: Receiver<ConnectResult>,
    thread: Option<JoinHandle<()>>,
    deadline: Instant,
}

enum State {
    Connecting(Connecting),
    Connected(Client),
    /// The connection ended: `DISCONNECTED` was reported (or the user closed it).
    Closed(Client),
    Failed,
}

struct ClientInner {
    state: State,
    /// Events waiting to be polled, in order (data is pulled from the client
    /// when this is empty, one message at a time).
    queue: VecDeque<Ev>,
    /// The bytes of the last data event.
    data: Vec<u8>,
    /// The message text of the last event.
    text: Vec<u8>,
    /// Whether the next poll services the connection before taking events:
    /// set when a poll returns false (the next drain starts), cleared by the
    /// service. A drain reads the socket once, however busy the link.
    service_due: bool,
    /// Whether a message was queued since the last service or flush: the next
    /// poll sends it (without reading the socket when no service is due).
    flush_due: bool,
    /// Whether a service thread is wanted once connected.
    service_thread: bool,
    /// `fastnet_client_set_busy_wait_us`, applied once connected.
    busy_wait: Duration,
    /// `fastnet_client_enable_gro`, applied once connected.
    gro: bool,
}

fn handle_value(client: FastNetClient) -> usize {
    client.addr()
}

fn with_client<R>(
    client: FastNetClient,
    f: impl FnOnce(&mut ClientInner) -> Outcome<R>,
) -> Outcome<R> {
    let entry = CLIENTS.get(handle_value(client))?;
    let mut guard = lock(&entry);
    let inner = guard.as_mut().ok_or_else(|| {
        Failure::new(
            FASTNET_ERROR_INVALID_HANDLE,
            "the client handle was destroyed",
        )
    })?;
    f(inner)
}

/// Everything a connect needs, owned (the C configuration may be freed once
/// the call returns).
struct Request {
    host: String,
    port: u16,
    config: ClientConfig,
    service_thread: bool,
    nonblocking: bool,
}

fn spawn_connect(request: Request) -> Outcome<Connecting> {
    let (tx, rx) = mpsc::sync_channel(1);
    let deadline = Instant::now() + request.config.connect_timeout + CONNECT_GRACE;
    let Request {
        host, port, config, ..
    } = request;
    let thread = thread::Builder::new()
        .name("fastnet-connect".into())
        .spawn(move || {
            let result = Client::connect(&host, port, config);
            // The receiver is gone when the handle was destroyed meanwhile:
            // the client is then dropped here, which closes it.
            let _ = tx.send(result);
        })
        .map_err(|e| convert::io_failure("cannot start the connect thread", &e))?;
    Ok(Connecting {
        rx,
        thread: Some(thread),
        deadline,
    })
}

impl ClientInner {
    fn new(state: State, service_thread: bool) -> Self {
        Self {
            state,
            queue: VecDeque::new(),
            data: Vec::new(),
            text: Vec::new(),
            service_due: true,
            flush_due: false,
            service_thread,
            busy_wait: Duration::ZERO,
            gro: false,
        }
    }

    /// The connect finished (or failed): moves to the next state and queues
    /// the event that says so.
    fn finish_connect(&mut self, result: Outcome<Client>) {
        match result {
            Ok(mut client) => {
                self.queue.push_back(Ev::Connected(FASTNET_SERVER_PEER_ID));
                client.set_busy_wait(self.busy_wait);
                if self.gro {
                    // Before the service thread starts, so it reads runs too;
                    // without one, turning GRO on cannot fail.
                    let _ = client.enable_gro();
                }
                if self.service_thread {
                    if let Err(e) = client.start_service_thread() {
                        self.queue.push_back(Ev::Error(convert::io_failure(
                            "cannot start the service thread",
                            &e,
                        )));
                    }
                }
                self.state = State::Connected(client);
            }
            Err(failure) => {
                self.queue.push_back(Ev::ConnectFailed(failure));
                self.state = State::Failed;
            }
        }
    }

    /// Checks a non-blocking connect without waiting (or up to `wait`).
    fn check_connect(&mut self, wait: Duration) {
        let State::Connecting(c) = &mut self.state else {
            return;
        };
        let received = if wait.is_zero() {
            c.rx.try_recv().map_err(|e| match e {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else {
            c.rx.recv_timeout(wait)
        };
        let result = match received {
            Ok(result) => {
                if let Some(t) = c.thread.take() {
                    let _ = t.join(); // it has sent its result: about to end
                }
                result.map_err(|e| convert::connect_failure(&e))
            }
            Err(RecvTimeoutError::Timeout) if Instant::now() >= c.deadline => Err(Failure::new(
                FASTNET_ERROR_TIMEOUT,
                "connect timed out (name resolution did not finish)",
            )),
            Err(RecvTimeoutError::Timeout) => return,
            Err(RecvTimeoutError::Disconnected) => Err(Failure::new(
                FASTNET_ERROR_PANIC,
                "internal error: the connect thread ended without a result",
            )),
        };
        self.finish_connect(result);
    }

    /// The next event. The first poll of a drain services the connection
    /// (send, receive, timers); a later poll of the drain after a send only
    /// sends what is queued. Then the messages and events are taken in order.
    fn next_event(&mut self) -> Option<Ev> {
        if let Some(ev) = self.queue.pop_front() {
            return Some(ev);
        }
        if matches!(self.state, State::Connecting(_)) {
            self.check_connect(Duration::ZERO);
            return self.queue.pop_front();
        }
        let (client, closed) = match &mut self.state {
            State::Connected(client) => (client, false),
            State::Closed(client) => (client, true),
            State::Connecting(_) | State::Failed => return None,
        };
        if !closed && self.service_due {
            self.service_due = false;
            self.flush_due = false;
            if let Err(e) = client.service() {
                return Some(Ev::Error(convert::io_failure(
                    "servicing the socket failed",
                    &e,
                )));
            }
        } else if !closed && self.flush_due {
            self.flush_due = false;
            client.flush();
        }
        if let Some(channel) = client.recv_into(&mut self.data) {
            return Some(Ev::Data {
                peer: FASTNET_SERVER_PEER_ID,
                channel,
            });
        }
        if let Some(ClientEvent::Disconnected(reason)) = client.poll_event() {
            if let State::Connected(client) = std::mem::replace(&mut self.state, State::Failed) {
                self.state = State::Closed(client);
            }
            return Some(Ev::Disconnected(FASTNET_SERVER_PEER_ID, reason));
        }
        None
    }

    fn client(&mut self) -> Outcome<&mut Client> {
        match &mut self.state {
            State::Connected(client) => Ok(client),
            other => Err(unusable(other)),
        }
    }

    /// Statistics are readable after the connection closed, too.
    fn any_client(&mut self) -> Outcome<&mut Client> {
        match &mut self.state {
            State::Connected(client) | State::Closed(client) => Ok(client),
            other => Err(unusable(other)),
        }
    }
}

/// Why a client in `state` cannot send.
fn unusable(state: &State) -> Failure {
    match state {
        State::Connecting(_) => Failure::new(
            FASTNET_ERROR_NOT_CONNECTED,
            "the connect is still in progress: wait for FASTNET_EVENT_CONNECTED",
        ),
        State::Connected(_) | State::Closed(_) => {
            Failure::new(FASTNET_ERROR_CLOSED, "the connection is closed")
        }
        State::Failed => Failure::new(FASTNET_ERROR_CLOSED, "the connect failed"),
    }
}

/// Builds the client configuration of a C configuration, copying everything.
///
/// # Safety
///
/// The non-NULL string pointers of `cfg` are NUL-terminated, and `ca_pem`
/// (when non-NULL) has `ca_pem_len` readable bytes.
unsafe fn request_from(cfg: &FastNetClientConfig) -> Outcome<Request> {
    // SAFETY: guaranteed by the caller (as every string and byte pointer below).
    let host = unsafe { ffi::req_str(cfg.host, "config.host") }?;
    if host.is_empty() {
        return Err(Failure::invalid("config.host is empty"));
    }
    if cfg.port == 0 {
        return Err(Failure::invalid("config.port is 0"));
    }
    // SAFETY: see above.
    let server_name = unsafe { ffi::opt_str(cfg.server_name, "config.server_name") }?;
    // SAFETY: see above.
    let ca_path = unsafe { ffi::opt_str(cfg.ca_pem_path, "config.ca_pem_path") }?;
    // SAFETY: see above.
    let ca_pem = unsafe {
        ffi::bytes(
            cfg.ca_pem,
            cfg.ca_pem_len,
            ffi::MAX_INPUT_BYTES,
            FASTNET_ERROR_INVALID_ARGUMENT,
            "config.ca_pem",
        )
    }?;
    // SAFETY: see above.
    let pin = unsafe { ffi::opt_str(cfg.pinned_sha256, "config.pinned_sha256") }?;
    let chosen = [
        ca_path.is_some(),
        !ca_pem.is_empty(),
        pin.is_some(),
        cfg.dangerous_accept_any_certificate,
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    if chosen > 1 {
        return Err(Failure::invalid(
            "set at most one of ca_pem_path, ca_pem, pinned_sha256 and \
             dangerous_accept_any_certificate",
        ));
    }
    let trust = if let Some(path) = ca_path {
        ServerTrust::ca_pem_file(path)
            .map_err(|e| Failure::invalid(format!("config.ca_pem_path: {e}")))?
    } else if !ca_pem.is_empty() {
        ServerTrust::ca_pem(ca_pem).map_err(|e| Failure::invalid(format!("config.ca_pem: {e}")))?
    } else if let Some(pin) = pin {
        ServerTrust::pinned_sha256_hex(pin)
            .map_err(|e| Failure::invalid(format!("config.pinned_sha256: {e}")))?
    } else if cfg.dangerous_accept_any_certificate {
        ServerTrust::dangerous_accept_any_certificate()
    } else {
        ServerTrust::WebPkiRoots
    };
    let mut config = ClientConfig::with_trust(trust);
    config.transport = convert::transport(cfg.idle_timeout_ms)?;
    config.server_name = server_name.map(str::to_string);
    if cfg.connect_timeout_ms != 0 {
        config.connect_timeout = Duration::from_millis(cfg.connect_timeout_ms.into());
    }
    if cfg.low_latency_socket {
        config.socket = SocketConfig::low_latency();
    }
    config.link = convert::link_simulation(&cfg.link_outgoing, &cfg.link_incoming)?;
    Ok(Request {
        host: host.to_string(),
        port: cfg.port,
        config,
        service_thread: cfg.service_thread,
        nonblocking: cfg.nonblocking,
    })
}

/// The trust of `fastnet_client_connect`: the public roots, unless the
/// environment names a pinned fingerprint or a CA file.
fn trust_from_env() -> Outcome<ServerTrust> {
    let non_empty = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match (non_empty(ENV_PIN), non_empty(ENV_CA_FILE)) {
        (Some(_), Some(_)) => Err(Failure::invalid(format!(
            "both {ENV_PIN} and {ENV_CA_FILE} are set: set one"
        ))),
        (Some(pin), None) => ServerTrust::pinned_sha256_hex(&pin)
            .map_err(|e| Failure::invalid(format!("{ENV_PIN}: {e}"))),
        (None, Some(path)) => ServerTrust::ca_pem_file(&path)
            .map_err(|e| Failure::invalid(format!("{ENV_CA_FILE}: {e}"))),
        (None, None) => Ok(ServerTrust::WebPkiRoots),
    }
}

fn connect(request: Request) -> Outcome<FastNetClient> {
    let service_thread = request.service_thread;
    let nonblocking = request.nonblocking;
    let mut connecting = spawn_connect(request)?;
    let inner = if nonblocking {
        ClientInner::new(State::Connecting(connecting), service_thread)
    } else {
        let wait = connecting
            .deadline
            .saturating_duration_since(Instant::now());
        let result = match connecting.rx.recv_timeout(wait) {
            Ok(result) => {
                if let Some(t) = connecting.thread.take() {
                    let _ = t.join();
                }
                result.map_err(|e| convert::connect_failure(&e))?
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(Failure::new(
                    FASTNET_ERROR_TIMEOUT,
                    "connect timed out (name resolution did not finish)",
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Failure::new(
                    FASTNET_ERROR_PANIC,
                    "internal error: the connect thread ended without a result",
                ))
            }
        };
        let mut inner = ClientInner::new(State::Failed, service_thread);
        inner.finish_connect(Ok(result));
        inner
    };
    let handle = CLIENTS.insert(Mutex::new(Some(inner)))?;
    Ok(ptr::without_provenance_mut(handle))
}

/// Connects to a FastNet server and returns a client handle, or NULL on failure
/// (the reason is in `fastnet_last_error()` and `fastnet_last_error_code()`).
///
/// `host` is a host name or an IPv4/IPv6 address (NUL-terminated; `::1` and
/// `[::1]` both work); `port` is the server's TCP (handshake) port. Blocks
/// until the connection is up or fails, at most the default connect timeout
/// (5 s) plus a quarter of a second.
///
/// Trust: the server's certificate must chain to a public CA (Mozilla's roots)
/// and carry the name `host`, unless the environment variable
/// `FASTNET_TRUST_PIN_SHA256` (a fingerprint, as
/// `fastnet_server_certificate_sha256` prints it) or `FASTNET_TRUST_CA_FILE` (a
/// PEM file of trusted certificates) is set. No environment variable disables
/// verification; for full control use `fastnet_client_connect_with`.
///
/// The first `fastnet_client_poll` after a successful connect yields
/// `FASTNET_EVENT_CONNECTED`. Free the handle with `fastnet_client_disconnect`
/// (or `fastnet_client_destroy`). Any thread may call this.
///
/// # Safety
///
/// `host` is NULL (an error) or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn fastnet_client_connect(host: *const c_char, port: u16) -> FastNetClient {
    call(
        |_| ptr::null_mut(),
        || {
            // SAFETY: the caller guarantees a NUL-terminated string (or NULL).
            let host = unsafe { ffi::req_str(host, "host") }?;
            if host.is_empty() {
                return Err(Failure::invalid("host is empty"));
            }
            if port == 0 {
                return Err(Failure::invalid("port is 0"));
            }
            let mut config = ClientConfig::with_trust(trust_from_env()?);
            config.transport = convert::transport(0)?;
            connect(Request {
                host: host.to_string(),
                port,
                config,
                service_thread: false,
                nonblocking: false,
            })
        },
    )
}

/// Connects as `cfg` says (see `FastNetClientConfig`) and returns a client
/// handle, or NULL on failure (reason in `fastnet_last_error()`).
///
/// Blocking (the default): returns once connected, at most
/// `connect_timeout_ms` plus a quarter of a second later; the first poll yields
/// `FASTNET_EVENT_CONNECTED`. With `cfg->nonblocking`: returns a handle at
/// once (NULL only for an invalid configuration) and connects on a helper
/// thread; polls yield nothing until `FASTNET_EVENT_CONNECTED` or
/// `FASTNET_EVENT_CONNECT_FAILED` (with `error_code` and `message`); sends
/// before that fail with `FASTNET_ERROR_NOT_CONNECTED`.
///
/// Strings and bytes of `cfg` are copied: `cfg` may be freed when this returns.
/// Free the handle with `fastnet_client_disconnect`. Any thread may call this.
///
/// # Safety
///
/// `cfg` is NULL (an error) or points to an initialized `FastNetClientConfig`
/// whose non-NULL string pointers are NUL-terminated and whose `ca_pem` (when
/// non-NULL) has `ca_pem_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn fastnet_client_connect_with(
    cfg: *const FastNetClientConfig,
) -> FastNetClient {
    call(
        |_| ptr::null_mut(),
        || {
            // SAFETY: the caller guarantees an initialized configuration (or NULL).
            let cfg = unsafe { ffi::input(cfg, "cfg") }?;
            // SAFETY: the caller guarantees the configuration's pointers.
            connect(unsafe { request_from(cfg) }?)
        },
    )
}

/// Fills `cfg` with the defaults: no host (set `host` and `port`), public-CA
/// trust, 5 s connect timeout, 10 s idle timeout, blocking connect, no service
/// thread, no link simulation. Returns `FASTNET_OK`, or
/// `FASTNET_ERROR_INVALID_ARGUMENT` when `cfg` is NULL.
///
/// # Safety
///
/// `cfg` is NULL or points to writable memory for a `FastNetClientConfig`.
#[no_mangle]
pub unsafe extern "C" fn fastnet_client_config_default(cfg: *mut FastNetClientConfig) -> i32 {
    call_status(|| {
        let defaults = FastNetClientConfig {
            host: ptr::null(),
            port: 0,
            server_name: ptr::null(),
            ca_pem_path: ptr::null(),
            ca_pem: ptr::null(),
            ca_pem_len: 0,
            pinned_sha256: ptr::null(),
            dangerous_accept_any_certificate: false,
            connect_timeout_ms: 5000,
            idle_timeout_ms: 10_000,
            service_thread: false,
            nonblocking: false,
            low_latency_socket: false,
            link_outgoing: convert::default_link(),
            link_incoming: convert::default_link(),
        };
        // SAFETY: the caller guarantees writable memory (or NULL).
        unsafe { ffi::output(cfg, defaults, "cfg") }
    })
}

/// Takes the next event of the client into `*out` and returns true, or returns
/// false at once when there is none (and writes a `FASTNET_EVENT_NONE` event).
/// Never blocks.
///
/// Events come one per call, in order: `FASTNET_EVENT_CONNECTED` first (or
/// `FASTNET_EVENT_CONNECT_FAILED` after a non-blocking connect), then
/// `FASTNET_EVENT_DATA` for each message, `FASTNET_EVENT_ERROR` when the socket
/// fails, and `FASTNET_EVENT_DISCONNECTED` after the last message once the
/// connection ends. The first poll of each drain services the connection
/// (without blocking: send what `fastnet_client_send` queued, receive, timers):
/// poll until it returns false, every frame. A message sent in the middle of a
/// drain (while handling an event) leaves with the next poll, which sends
/// without reading the socket again, so a drain reads the socket once however
/// busy the link. The messages sent between two polls share a datagram, and a
/// send-then-poll loop answers at once.
///
/// The event's `data` and `message` stay valid until the next poll on this
/// handle or its destruction (see `FastNetEvent`).
///
/// Returns false with `fastnet_last_error_code()` set on an invalid handle or a
/// NULL `out`. Any thread may call this; calls on one handle are serialized.
///
/// # Safety
///
/// `out` is NULL (an error) or points to writable memory for a `FastNetEvent`.
#[no_mangle]
pub unsafe extern "C" fn fastnet_client_poll(
    client: FastNetClient,
    out: *mut FastNetEvent,
) -> bool {
    call(
        |_| false,
        || {
            if out.is_null() {
                return Err(Failure::invalid("out is NULL"));
            }
            let event = with_client(client, |inner| {
                let event = match inner.next_event() {
                    Some(ev) => convert::to_event(ev, &inner.data, &mut inner.text),
                    None => {
                        inner.service_due = true;
                        convert::no_event()
                    }
                };
                Ok(event)
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

/// Services the connection, waiting up to `timeout_ms` milliseconds for
/// traffic or the next protocol deadline, then services again; 0 never blocks.
/// Use it instead of sleeping in the game loop, then poll. During a
/// non-blocking connect it waits up to `timeout_ms` for the outcome.
///
/// Returns `FASTNET_OK`, `FASTNET_ERROR_CLOSED` once the connection has ended
/// or the connect failed, `FASTNET_ERROR_IO`, or `FASTNET_ERROR_INVALID_HANDLE`.
/// Holds the handle's lock while waiting: other calls on this handle wait too.
#[no_mangle]
pub extern "C" fn fastnet_client_service(client: FastNetClient, timeout_ms: u32) -> i32 {
    call_status(|| {
        with_client(client, |inner| {
            let wait = Duration::from_millis(timeout_ms.into());
            if matches!(inner.state, State::Connecting(_)) {
                inner.check_connect(wait);
                return Ok(());
            }
            let c = inner.client()?;
            c.service_for(wait)
                .map_err(|e| convert::io_failure("servicing the socket failed", &e))?;
            if !c.is_connected() {
                return Err(Failure::new(
                    FASTNET_ERROR_CLOSED,
                    "the connection is closed",
                ));
            }
            Ok(())
        })
    })
}

/// Queues a message of `len` bytes at `data` on `channel`; it goes out with the
/// next poll or service (the messages queued until then share a datagram): the
/// next `fastnet_client_poll` sends it first, even in the middle of a drain.
/// It does not send by itself, so sending several messages in a row costs one
/// datagram and one system call. Reliable channels
/// retransmit until acknowledged; messages larger than a datagram are
/// fragmented. The bytes are copied: `data` may be reused when this returns.
///
/// Returns `FASTNET_OK`, or `FASTNET_ERROR_INVALID_HANDLE`,
/// `FASTNET_ERROR_INVALID_ARGUMENT` (NULL `data` with a non-zero `len`),
/// `FASTNET_ERROR_UNKNOWN_CHANNEL`, `FASTNET_ERROR_MESSAGE_TOO_LARGE` (checked
/// before `data` is read, so a wrong huge `len` is harmless),
/// `FASTNET_ERROR_WOULD_BLOCK` (send queue full), `FASTNET_ERROR_NOT_CONNECTED`
/// (non-blocking connect in progress) or `FASTNET_ERROR_CLOSED`. Any thread.
///
/// # Safety
///
/// When `data` is non-NULL and `len` is within the channel's limit, `data`
/// points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn fastnet_client_send(
    client: FastNetClient,
    channel: u8,
    data: *const c_void,
    len: usize,
) -> i32 {
    call_status(|| {
        with_client(client, |inner| {
            let c = inner.client()?;
            // SAFETY: the caller guarantees `len` readable bytes at a non-NULL
            // `data`; NULL and oversized lengths are refused before reading.
            let bytes = unsafe {
                ffi::bytes(
                    data.cast(),
                    len,
                    MAX_RELIABLE_MESSAGE_LIMIT_BYTES,
                    FASTNET_ERROR_MESSAGE_TOO_LARGE,
                    "data",
                )
            }?;
            c.send(channel, bytes).map_err(convert::send_failure)?;
            inner.flush_due = true;
            Ok(())
        })
    })
}

fn destroy(client: FastNetClient, code: u32) -> Outcome<()> {
    let entry = CLIENTS.remove(handle_value(client))?;
    let inner = lock(&entry).take();
    if let Some(mut inner) = inner {
        if let State::Connected(c) | State::Closed(c) = &mut inner.state {
            if c.is_connected() {
                c.disconnect(code);
            }
        }
        // Dropping the client stops its service thread and closes its socket;
        // a connect still in progress finishes on its thread and is dropped there.
        drop(inner);
    }
    Ok(())
}

/// Closes the connection (telling the server, close code `FASTNET_CLOSE_NORMAL`)
/// AND frees the handle: afterwards the handle is invalid (every call with it
/// returns `FASTNET_ERROR_INVALID_HANDLE`, including a second disconnect), and
/// the data of the last polled event is freed. Also cancels a non-blocking
/// connect in progress. Returns `FASTNET_OK` or `FASTNET_ERROR_INVALID_HANDLE`.
/// Any thread; a call on the same handle running in another thread finishes
/// first.
#[no_mangle]
pub extern "C" fn fastnet_client_disconnect(client: FastNetClient) -> i32 {
    call_status(|| destroy(client, close_code::NORMAL))
}

/// `fastnet_client_disconnect` with an application close code (256 and up,
/// see `FASTNET_CLOSE_APPLICATION_MIN`) that the server's
/// `FASTNET_EVENT_DISCONNECTED` reports. Frees the handle.
#[no_mangle]
pub extern "C" fn fastnet_client_disconnect_with_code(client: FastNetClient, code: u32) -> i32 {
    call_status(|| destroy(client, code))
}

/// Same as `fastnet_client_disconnect` (closes and frees the handle), named for
/// symmetry with `fastnet_server_destroy`.
#[no_mangle]
pub extern "C" fn fastnet_client_destroy(client: FastNetClient) -> i32 {
    call_status(|| destroy(client, close_code::NORMAL))
}

/// The smoothed round-trip time in microseconds (0 before the first
/// measurement), or a negative `FASTNET_ERROR_` code (invalid handle, connect
/// in progress or failed).
#[no_mangle]
pub extern "C" fn fastnet_client_rtt_us(client: FastNetClient) -> i64 {
    call(i64::from, || {
        with_client(client, |inner| {
            let rtt = inner.any_client()?.rtt();
            Ok(i64::try_from(rtt.as_micros()).unwrap_or(i64::MAX))
        })
    })
}

/// Writes the connection's statistics to `*out` (also after it closed).
/// Returns `FASTNET_OK`, `FASTNET_ERROR_INVALID_HANDLE`,
/// `FASTNET_ERROR_INVALID_ARGUMENT` (NULL `out`), `FASTNET_ERROR_NOT_CONNECTED`
/// or `FASTNET_ERROR_CLOSED` (connect failed).
///
/// # Safety
///
/// `out` is NULL or points to writable memory for a `FastNetStats`.
#[no_mangle]
pub unsafe extern "C" fn fastnet_client_stats(
    client: FastNetClient,
    out: *mut FastNetStats,
) -> i32 {
    call_status(|| {
        let stats = with_client(client, |inner| {
            Ok(convert::stats(&inner.any_client()?.stats()))
        })?;
        // SAFETY: the caller guarantees writable memory (or NULL).
        unsafe { ffi::output(out, stats, "out") }
    })
}

/// Starts the background service thread: from now on it receives, acknowledges
/// and retransmits even when the game does not poll for a while (a long load, a
/// debugger pause), so the connection survives. Polling stays necessary to get
/// events. Idempotent. During a non-blocking connect, the thread starts once
/// connected. Returns `FASTNET_OK`, `FASTNET_ERROR_INVALID_HANDLE`,
/// `FASTNET_ERROR_CLOSED` or `FASTNET_ERROR_IO`.
#[no_mangle]
pub extern "C" fn fastnet_client_enable_service_thread(client: FastNetClient) -> i32 {
    call_status(|| {
        with_client(client, |inner| {
            inner.service_thread = true;
            if matches!(inner.state, State::Connecting(_)) {
                return Ok(());
            }
            inner
                .client()?
                .start_service_thread()
                .map_err(|e| convert::io_failure("cannot start the service thread", &e))
        })
    })
}

/// Turns on UDP generic receive offload for the client's socket (Linux
/// 5.0+), for a client about to receive bulk data (an asset download, large
/// reliable messages): see `fastnet_server_enable_gro`. Idempotent; during a
/// non-blocking connect it applies once connected. Elsewhere, or where the
/// kernel refuses it, receives stay as they were: that is not an error.
/// Returns `FASTNET_OK`, `FASTNET_ERROR_INVALID_HANDLE`, `FASTNET_ERROR_CLOSED`
/// (the connect failed) or `FASTNET_ERROR_IO` (the service thread could not
/// restart).
#[no_mangle]
pub extern "C" fn fastnet_client_enable_gro(client: FastNetClient) -> i32 {
    call_status(|| {
        with_client(client, |inner| {
            inner.gro = true;
            if matches!(inner.state, State::Connecting(_)) {
                return Ok(());
            }
            inner
                .client()?
                .enable_gro()
                .map(drop)
                .map_err(|e| convert::io_failure("cannot restart the service thread", &e))
        })
    })
}

/// Makes `fastnet_client_service` spin on the socket for up to `us`
/// microseconds (bounded by its timeout) before sleeping in the OS: lower
/// latency for a processor. 0, the default, sleeps at once. During a
/// non-blocking connect it applies once connected. Returns `FASTNET_OK` or
/// `FASTNET_ERROR_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn fastnet_client_set_busy_wait_us(client: FastNetClient, us: u32) -> i32 {
    call_status(|| {
        with_client(client, |inner| {
            inner.busy_wait = Duration::from_micros(us.into());
            if let State::Connected(c) = &mut inner.state {
                c.set_busy_wait(inner.busy_wait);
            }
            Ok(())
        })
    })
}

/// The client's state: `FASTNET_CLIENT_CONNECTING`, `FASTNET_CLIENT_CONNECTED`,
/// `FASTNET_CLIENT_DISCONNECTED` or `FASTNET_CLIENT_FAILED`, or a negative
/// `FASTNET_ERROR_` code for an invalid handle. It changes as events are
/// polled (a connection that ended reads as disconnected once
/// `FASTNET_EVENT_DISCONNECTED` was polled, or when it is closing).
#[no_mangle]
pub extern "C" fn fastnet_client_state(client: FastNetClient) -> i32 {
    call(
        |code| code,
        || {
            with_client(client, |inner| {
                let state = match &inner.state {
                    State::Connecting(_) => FASTNET_CLIENT_CONNECTING,
                    State::Connected(c) if c.is_connected() => FASTNET_CLIENT_CONNECTED,
                    State::Connected(_) | State::Closed(_) => FASTNET_CLIENT_DISCONNECTED,
                    State::Failed => FASTNET_CLIENT_FAILED,
                };
                Ok(state as i32)
            })
        },
    )
}

/// Live client handles (tests).
#[doc(hidden)]
pub fn live_clients() -> usize {
    CLIENTS.live()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client handle without a connection (a failed connect), for tests.
    fn failed_client() -> FastNetClient {
        let handle = CLIENTS
            .insert(Mutex::new(Some(ClientInner::new(State::Failed, false))))
            .unwrap();
        ptr::without_provenance_mut(handle)
    }

    #[test]
    fn a_panic_while_holding_a_handle_leaves_it_usable() {
        let c = failed_client();
        let code = call_status(|| with_client(c, |_| panic!("inside the handle's lock")));
        assert_eq!(code, FASTNET_ERROR_PANIC as i32);
        assert_eq!(ffi::last_error_code(), FASTNET_ERROR_PANIC as i32);
        // The lock was poisoned by the panic; the handle still answers.
        assert_eq!(fastnet_client_state(c), FASTNET_CLIENT_FAILED as i32);
        // SAFETY: NULL data with length 0 is an empty message: nothing is read.
        let sent = unsafe { fastnet_client_send(c, 0, ptr::null(), 0) };
        assert_eq!(sent, FASTNET_ERROR_CLOSED as i32);
        assert_eq!(fastnet_client_destroy(c), 0);
        assert_eq!(
            fastnet_client_destroy(c),
            FASTNET_ERROR_INVALID_HANDLE as i32
        );
    }

    #[test]
    fn polling_a_failed_client_yields_nothing_and_clears_the_event() {
        let c = failed_client();
        let mut ev = convert::no_event();
        ev.r#type = crate::abi::FastNetEventType::FASTNET_EVENT_DATA;
        // SAFETY: `ev` is a valid, writable event.
        assert!(!unsafe { fastnet_client_poll(c, &mut ev) });
        assert_eq!(ev.r#type, FASTNET_EVENT_NONE);
        assert_eq!(ffi::last_error_code(), 0);
        assert_eq!(fastnet_client_destroy(c), 0);
    }
}
