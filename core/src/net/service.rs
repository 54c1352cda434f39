//! The opt-in background service thread of the game-loop drivers. It keeps
//! acknowledgements, keep-alives and retransmissions going while the game thread
//! is busy (a long scene load, a debugger pause), so the connection survives.
//!
//! While it runs it owns every read of the UDP socket: it blocks in `recv_from`
//! (with a timeout up to the next protocol deadline) without holding the driver's
//! lock, then locks to hand over the datagram and run timers and transmissions.
//! The game thread's own service call then only transmits and collects events.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::net::io::UdpIo;
use crate::packet::MAX_DATAGRAM_BYTES;

/// Longest the thread sleeps between two looks at the driver, so a server's TCP
/// handshakes and a stop request are noticed quickly.
const MAX_WAIT: Duration = Duration::from_millis(2);
/// Shortest socket timeout (zero means "block forever" to the OS).
const MIN_WAIT: Duration = Duration::from_micros(100);

/// What a game-loop driver's state offers its service loop, whoever runs it.
pub(crate) trait DriverState: Send + 'static {
    /// The driver's socket.
    fn io(&mut self) -> &mut UdpIo;
    /// Hands one received datagram to the protocol.
    fn handle(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]);
    /// Everything due: what the application queued goes out, then the socket
    /// is read (if `read`), timers run and what they and the received
    /// datagrams produced goes out. Returns how many datagrams were read.
    fn service_io(&mut self, now: Instant, read: bool) -> io::Result<usize>;
    /// The next instant the driver has work.
    fn deadline(&self) -> Option<Instant>;
    /// Whether messages or events wait for the application.
    fn has_pending(&self) -> bool;

    /// A datagram the service thread read: through the incoming link
    /// simulation, to the protocol, then everything else that is due.
    fn on_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        if self.io().incoming(now, from, datagram) {
            self.handle(now, from, datagram);
        }
        self.service_without_reading(now);
    }

    /// Timers and transmissions, without reading the socket (the service
    /// thread owns the reads while it runs).
    fn service_without_reading(&mut self, now: Instant) {
        if let Err(e) = self.service_io(now, false) {
            tracing::debug!(error = %e, "service error");
        }
    }
}

/// Locks a driver's state, recovering it if a thread panicked while holding it
/// (the state stays consistent: every mutation completes before unlocking).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A driver's `service_for`: sends what is queued and runs due timers, then,
/// unless messages or events already wait for the application, waits for the
/// first datagram, the next protocol deadline or `max_wait`, whichever comes
/// first, spinning on the non-blocking socket for up to `busy_wait` before
/// sleeping in the OS; then services again. With the service thread running
/// (it owns the socket's reads) it only yields the processor briefly.
///
/// The first pass does not read: the OS wait returns at once if a datagram is
/// already queued, so an idle wait costs one system call fewer.
pub(crate) fn service_for<T: DriverState>(
    state: &Mutex<T>,
    threaded: bool,
    max_wait: Duration,
    busy_wait: Duration,
) -> io::Result<()> {
    let start = Instant::now();
    if threaded {
        let pending = {
            let mut s = lock(state);
            s.service_io(start, false)?;
            s.has_pending()
        };
        if !pending {
            std::thread::sleep(max_wait.min(Duration::from_millis(1)));
        }
        lock(state).service_io(Instant::now(), false)?;
        return Ok(());
    }
    let mut s = lock(state);
    s.service_io(start, false)?;
    if s.has_pending() {
        s.service_io(start, true)?;
        return Ok(());
    }
    let end = s
        .deadline()
        .map_or(start + max_wait, |d| d.min(start + max_wait));
    if !busy_wait.is_zero() {
        let spin_end = end.min(start + busy_wait);
        loop {
            let now = Instant::now();
            if s.service_io(now, true)? > 0 || s.has_pending() {
                return Ok(());
            }
            if now >= spin_end {
                break;
            }
            std::hint::spin_loop();
        }
    }
    let now = Instant::now();
    if end > now {
        s.io().wait(end - now)?;
    }
    s.service_io(Instant::now(), true)?;
    Ok(())
}

/// A running service thread; stopped and joined on drop.
#[derive(Debug)]
pub(crate) struct ServiceThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl ServiceThread {
    /// Starts servicing a driver's state, reading from a clone of its socket.
    pub fn start<T: DriverState>(state: &Arc<Mutex<T>>) -> io::Result<Self> {
        let socket = {
            let mut s = lock(state);
            // The thread sets the shared socket's receive timeout from now on.
            s.io().forget_recv_timeout();
            s.io().socket().try_clone()?
        };
        Self::spawn(state.clone(), socket)
    }

    /// Starts servicing `state`, reading from `socket` (a clone of the driver's).
    fn spawn<T: DriverState>(state: Arc<Mutex<T>>, socket: UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(false)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("fastnet-service".into())
            .spawn(move || run(state, socket, flag))?;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for ServiceThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run<T: DriverState>(state: Arc<Mutex<T>>, socket: UdpSocket, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; MAX_DATAGRAM_BYTES];
    while !stop.load(Ordering::Relaxed) {
        let wait = {
            let mut s = lock(&state);
            let now = Instant::now();
            s.service_without_reading(now);
            s.deadline()
                .map_or(MAX_WAIT, |t| t.saturating_duration_since(now))
                .clamp(MIN_WAIT, MAX_WAIT)
        };
        if socket.set_read_timeout(Some(wait)).is_err() {
            std::thread::sleep(wait);
            continue;
        }
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let mut s = lock(&state);
                s.on_datagram(Instant::now(), from, &mut buf[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                // ICMP errors for earlier sends and the like: not the socket's end.
                tracing::trace!(error = %e, "service thread receive error");
            }
        }
    }
}
