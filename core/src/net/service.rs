//! The opt-in background service thread of the game-loop drivers. It keeps
//! acknowledgements, keep-alives and retransmissions going while the game thread
//! is busy (a long scene load, a debugger pause), so the connection survives.
//!
//! While it runs it owns every read of the UDP socket: it blocks in `recv_from`
//! (`recvmsg` when the socket takes GRO runs, which it splits) with a timeout
//! up to the next protocol deadline, without holding the driver's lock, then
//! locks to hand over the datagrams and run timers and transmissions.
//! The game thread's own service call then only transmits and collects events.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
use crate::net::batch;
use crate::net::io::{Received, UdpIo};
use crate::packet::MAX_DATAGRAM_BYTES;

/// Longest the thread sleeps between two looks at the driver, so a stop
/// request is noticed quickly.
const MAX_WAIT: Duration = Duration::from_millis(2);
/// Shortest socket timeout (zero means "block forever" to the OS).
const MIN_WAIT: Duration = Duration::from_micros(100);

/// Turns of a budgeted busy-wait between two yields of the processor (a turn
/// is a service pass and an empty read, a fraction of a microsecond).
const BUSY_WAIT_TURNS_PER_YIELD: u32 = 8;

/// Calls closer together than this make a tight loop (see [`ReadPace`]): a
/// game that spins on `service()` calls every microsecond or so, a ping-pong
/// in `service_for` every few tens, while a game servicing once per frame
/// calls every millisecond or more.
const TIGHT_LOOP_INTERVAL: Duration = Duration::from_micros(200);

/// How much a service call reads, from how often the game loop calls.
///
/// A call reads until the socket is empty: the last read, which finds it
/// empty, is one more system call, on the critical path of a reply. A game
/// loop that services in a tight loop gets a datagram's messages as soon as
/// they are decoded instead: reading stops after the datagram that gave it
/// something to look at, and the next call, which first sends what the game
/// answered, reads on, without stopping early, so a burst is still drained
/// within two calls. A game servicing once per frame gets everything that
/// arrived.
#[derive(Debug, Default)]
pub(crate) struct ReadPace {
    last_call: Option<Instant>,
    tight: bool,
    /// The last receive stopped before finding the socket empty.
    unproven: bool,
}

impl ReadPace {
    /// A service call of the application starts at `now`.
    pub fn on_call(&mut self, now: Instant) {
        self.tight = self
            .last_call
            .is_some_and(|t| now.saturating_duration_since(t) < TIGHT_LOOP_INTERVAL);
        self.last_call = Some(now);
    }

    /// Whether this call's receive may stop once the application has
    /// something to look at.
    pub fn may_stop_early(&self) -> bool {
        self.tight && !self.unproven
    }

    /// Whether the last receive stopped before finding the socket empty.
    pub fn unproven(&self) -> bool {
        self.unproven
    }

    /// What the receive did.
    pub fn on_received(&mut self, received: Received) {
        self.unproven = !received.drained;
    }
}

/// What a game-loop driver's state offers its service loop, whoever runs it.
pub(crate) trait DriverState: Send + 'static {
    /// The driver's socket.
    fn io(&mut self) -> &mut UdpIo;
    /// How the application's service calls read (see [`ReadPace`]).
    fn pace(&mut self) -> &mut ReadPace;
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
        self.on_datagram_only(now, from, datagram);
        self.service_without_reading(now);
    }

    /// Hands a datagram the service thread read to the protocol (through the
    /// incoming conditioner, if any), without running timers.
    fn on_datagram_only(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        if self.io().incoming(now, from, datagram) {
            self.handle(now, from, datagram);
        }
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
/// The first pass does not read (unless the last call cut a drain short):
/// the OS wait returns at once if a datagram is already queued, so an idle
/// wait costs one system call fewer.
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
    s.pace().on_call(start);
    // The first pass reads only to finish a drain the last call cut short
    // (see `ReadPace`): now, while the answer is on its way, rather than
    // after the wait, on its critical path.
    let finish_drain = s.pace().unproven();
    s.service_io(start, finish_drain)?;
    if s.has_pending() {
        s.service_io(start, true)?;
        return Ok(());
    }
    let end = s
        .deadline()
        .map_or(start + max_wait, |d| d.min(start + max_wait));
    if !busy_wait.is_zero() {
        let spin_end = end.min(start + busy_wait);
        let mut turns = 0u32;
        loop {
            let now = Instant::now();
            if s.service_io(now, true)? > 0 || s.has_pending() {
                return Ok(());
            }
            if now >= spin_end {
                break;
            }
            // Yield now and then, not only spin: when another runnable
            // thread shares this CPU (the peer process on a machine with few
            // cores, the game's own threads) it runs within a few
            // microseconds instead of waiting out the whole budget. Alone on
            // the CPU the call returns at once, but it is a system call: not
            // every turn.
            turns = turns.wrapping_add(1);
            if turns % BUSY_WAIT_TURNS_PER_YIELD == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
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
        let (socket, reader) = {
            let mut s = lock(state);
            // The thread sets the shared socket's receive timeout from now on.
            s.io().forget_recv_timeout();
            (s.io().socket().try_clone()?, Reader::for_io(s.io()))
        };
        Self::spawn(state.clone(), socket, reader)
    }

    /// Runs `f` on the driver's socket with its service thread, if one runs
    /// in `thread`, stopped, and starts it again afterwards, so that it
    /// reads the way `f` left the socket (GRO or not).
    pub fn paused_around<T: DriverState, R>(
        thread: &mut Option<Self>,
        state: &Arc<Mutex<T>>,
        f: impl FnOnce(&mut UdpIo) -> R,
    ) -> io::Result<R> {
        let restart = thread.take().is_some();
        let r = f(lock(state).io());
        if restart {
            *thread = Some(Self::start(state)?);
        }
        Ok(r)
    }

    /// Starts servicing `state`, reading from `socket` (a clone of the driver's).
    fn spawn<T: DriverState>(
        state: Arc<Mutex<T>>,
        socket: UdpSocket,
        reader: Reader,
    ) -> io::Result<Self> {
        socket.set_nonblocking(false)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("fastnet-service".into())
            .spawn(move || run(state, socket, reader, flag))?;
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

/// How the service thread reads: `recv_from` into one buffer, or, when the
/// socket takes GRO runs (Linux), `recvmsg` into a run-sized slot whose
/// control message gives the segment size to split the run by (read as one
/// datagram, a run would fail authentication).
enum Reader {
    Plain(Vec<u8>),
    #[cfg(target_os = "linux")]
    Gro(Box<batch::RecvBatch>),
}

impl Reader {
    /// The reader for `io`'s socket.
    fn for_io(io: &UdpIo) -> Self {
        #[cfg(target_os = "linux")]
        if io.gro() {
            return Reader::Gro(Box::new(batch::RecvBatch::new(io.max_datagram(), true)));
        }
        let _ = io;
        Reader::Plain(vec![0u8; MAX_DATAGRAM_BYTES])
    }

    /// Waits (up to the socket's receive timeout) for a datagram, or a run
    /// of them, and hands each to `state`, then runs its timers and
    /// transmissions once.
    fn receive<T: DriverState>(&mut self, socket: &UdpSocket, state: &Mutex<T>) {
        match self {
            Reader::Plain(buf) => match socket.recv_from(buf) {
                Ok((n, from)) => {
                    let mut s = lock(state);
                    s.on_datagram(Instant::now(), from, &mut buf[..n]);
                }
                Err(e) => report(&e),
            },
            #[cfg(target_os = "linux")]
            Reader::Gro(b) => match b.recv_one_blocking(socket, None) {
                Ok(_) => {
                    if let Some(run) = b.take_held() {
                        let mut s = lock(state);
                        let now = Instant::now();
                        run.for_each(|from, d| {
                            s.on_datagram_only(now, from, d);
                            true
                        });
                        s.service_without_reading(now);
                    }
                }
                Err(e) => report(&e),
            },
        }
    }
}

/// Logs a receive error of the service thread: a timeout is none, and ICMP
/// errors for earlier sends and the like are not the socket's end.
fn report(e: &io::Error) {
    if !matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        tracing::trace!(error = %e, "service thread receive error");
    }
}

fn run<T: DriverState>(
    state: Arc<Mutex<T>>,
    socket: UdpSocket,
    mut reader: Reader,
    stop: Arc<AtomicBool>,
) {
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
        reader.receive(&socket, &state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(datagrams: usize, drained: bool) -> Received {
        Received { datagrams, drained }
    }

    #[test]
    fn only_a_tight_loop_stops_early_and_never_twice_in_a_row() {
        let t0 = Instant::now();
        let mut pace = ReadPace::default();
        pace.on_call(t0);
        assert!(!pace.may_stop_early(), "a first call drains");
        pace.on_received(received(1, true));
        pace.on_call(t0 + Duration::from_micros(5));
        assert!(pace.may_stop_early(), "calls 5 µs apart: a tight loop");
        pace.on_received(received(1, false));
        assert!(pace.unproven());
        pace.on_call(t0 + Duration::from_micros(10));
        assert!(
            !pace.may_stop_early(),
            "after a call that stopped early, the next one drains"
        );
        pace.on_received(received(7, true));
        pace.on_call(t0 + Duration::from_micros(15));
        assert!(pace.may_stop_early());
        // A game servicing once per frame always drains.
        pace.on_call(t0 + Duration::from_millis(16));
        assert!(!pace.may_stop_early());
    }
}
