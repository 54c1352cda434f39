//! 64-byte ping-pong round trips, one message in flight, client here and
//! server in a child process: raw UDP in three I/O modes, FastNet through the
//! game-loop driver (busy-poll and `service_for`), the Tokio driver and the C
//! ABI, quinn and ENet. Per row: latency percentiles, client CPU time per round
//! trip, UDP datagrams per round trip (kernel counters, and FastNet's own).

use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use fastnet::net::{Client, ClientConfig, SecureEvent, SecureSocket, SocketConfig};
use fastnet::session::ServerTrust;
use fastnet::{channels, ChannelId, ConnectionStats};

use crate::floor::Sealer;
use crate::server::{raw_udp_socket, Mode, ServerKind, ServerProcess};
use crate::stats::{median, Summary};
use crate::sys::{process_cpu_time, UdpCounters};
use crate::{fail, BenchResult, Harness};

/// Message size of every latency row.
pub const PING_BYTES: usize = 64;
/// How long one round trip may take before the row fails.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// An ENet unreliable ping without an answer after this long is sent again.
#[cfg(has_enet)]
const ENET_RESEND_AFTER: Duration = Duration::from_millis(100);
/// What `service_for` is given in the blocking-ish rows: a 60 Hz frame (the
/// README's value). Data wakes the wait at once; the value matters only when
/// nothing comes.
pub const SERVICE_FOR_WAIT: Duration = Duration::from_millis(16);
/// The short wait of the diagnostic row `fastnet-unrel-block-1ms`.
pub const SHORT_SERVICE_FOR_WAIT: Duration = Duration::from_millis(1);
/// `SocketConfig::busy_wait` of the `fastnet-unrel-busywait` row.
pub const BUSY_WAIT: Duration = Duration::from_micros(50);

/// How a row's client (and server) wait for datagrams; ratios compare rows
/// with raw UDP in the same mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoMode {
    /// The thread sleeps in the kernel until a datagram comes.
    Blocking,
    /// The thread spins on non-blocking receives.
    BusyPoll,
    /// A tokio current-thread runtime waits on epoll.
    Tokio,
}

impl IoMode {
    /// The raw UDP row of the same mode.
    pub fn baseline(self) -> &'static str {
        match self {
            IoMode::Blocking => "udp-block",
            IoMode::BusyPoll => "udp-spin",
            IoMode::Tokio => "udp-tokio",
        }
    }

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            IoMode::Blocking => "blocking",
            IoMode::BusyPoll => "busy-poll",
            IoMode::Tokio => "tokio",
        }
    }
}

/// The client side of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// std socket, blocking `recv`.
    UdpBlock,
    /// std socket, non-blocking `recv` spin.
    UdpSpin,
    /// tokio socket, current-thread runtime.
    UdpTokio,
    /// `fastnet::net::Client`, `service()` spin.
    FastnetSpin,
    /// `fastnet::net::Client`, `service_for` (the row's wait).
    FastnetBlock,
    /// `fastnet::net::SecureSocket`, current-thread runtime.
    FastnetTokio,
    /// The C ABI (`fastnet-capi`).
    FastnetCapi,
    /// quinn datagrams, current-thread runtime.
    Quinn,
    /// ENet, `enet_host_service(.., 0)` spin.
    Enet,
    /// Sealed UDP (`floor`): std socket, or tokio in the tokio mode.
    UdpAead,
    /// FastNet's sans-IO `Connection` on a std socket (`floor`).
    SansIo,
}

/// One line of the latency table.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    /// Stable identifier (chart file names, baselines).
    pub id: &'static str,
    /// What it is and how it is driven.
    pub label: &'static str,
    /// The server process.
    pub server: ServerKind,
    /// The client here.
    pub client: ClientKind,
    /// I/O mode, for the ratio to raw UDP.
    pub mode: IoMode,
    /// Reliable delivery (FastNet reliable-ordered, ENet reliable).
    pub reliable: bool,
    /// `SocketConfig::low_latency()` on both sides.
    pub low_latency: bool,
    /// Datagrams are encrypted.
    pub encrypted: bool,
    /// The client checks the server's identity.
    pub identity: bool,
    /// A FastNet row (targets apply).
    pub fastnet: bool,
    /// Batched system calls (`SocketConfig::batching`) on both sides.
    pub batching: bool,
    /// UDP GRO (`SocketConfig::gro`) on both sides.
    pub gro: bool,
    /// `SocketConfig::busy_wait` on both sides.
    pub busy_wait: Duration,
    /// What `service_for` is given (blocking-ish rows).
    pub wait: Duration,
}

const fn row(
    id: &'static str,
    label: &'static str,
    server: ServerKind,
    client: ClientKind,
    mode: IoMode,
) -> Row {
    Row {
        id,
        label,
        server,
        client,
        mode,
        reliable: false,
        low_latency: false,
        encrypted: false,
        identity: false,
        fastnet: false,
        batching: true,
        gro: false,
        busy_wait: Duration::ZERO,
        wait: SERVICE_FOR_WAIT,
    }
}

/// An encryption-floor row (`floor`): encrypted, no identity, no protocol.
const fn sealed(mut r: Row) -> Row {
    r.encrypted = true;
    r
}

/// A diagnostic FastNet row: measured and shown, no target applies.
const fn diagnostic(mut r: Row) -> Row {
    r.fastnet = false;
    r
}

const fn fastnet(mut r: Row, reliable: bool, low_latency: bool) -> Row {
    r.reliable = reliable;
    r.low_latency = low_latency;
    r.encrypted = true;
    r.identity = true;
    r.fastnet = true;
    r
}

/// Every latency row, in report order.
pub const ROWS: &[Row] = &[
    row(
        "udp-block",
        "raw UDP, blocking `recv`",
        ServerKind::UdpBlock,
        ClientKind::UdpBlock,
        IoMode::Blocking,
    ),
    row(
        "udp-spin",
        "raw UDP, busy-poll non-blocking `recv`",
        ServerKind::UdpSpin,
        ClientKind::UdpSpin,
        IoMode::BusyPoll,
    ),
    row(
        "udp-tokio",
        "raw UDP through tokio (current_thread)",
        ServerKind::UdpTokio,
        ClientKind::UdpTokio,
        IoMode::Tokio,
    ),
    sealed(row(
        "udp-aead-block",
        "raw UDP + ChaCha20-Poly1305 (FastNet's `PacketKey`, ring) on every datagram, no protocol: the encryption floor, blocking `recv`",
        ServerKind::UdpAeadBlock,
        ClientKind::UdpAead,
        IoMode::Blocking,
    )),
    sealed(row(
        "udp-aead-spin",
        "raw UDP + ChaCha20-Poly1305 on every datagram, no protocol: the encryption floor, busy-poll `recv`",
        ServerKind::UdpAeadSpin,
        ClientKind::UdpAead,
        IoMode::BusyPoll,
    )),
    sealed(row(
        "udp-aead-tokio",
        "raw UDP + ChaCha20-Poly1305 on every datagram, no protocol: the encryption floor, tokio (current_thread)",
        ServerKind::UdpAeadTokio,
        ClientKind::UdpAead,
        IoMode::Tokio,
    )),
    diagnostic(fastnet(
        row(
            "fastnet-sansio-spin",
            "FastNet's sans-IO protocol (client `Connection`, server `Endpoint`) on raw busy-poll UDP loops, no FastNet driver; diagnostic",
            ServerKind::SansIoSpin,
            ClientKind::SansIo,
            IoMode::BusyPoll,
        ),
        false,
        false,
    )),
    diagnostic(fastnet(
        row(
            "fastnet-sansio-block",
            "FastNet's sans-IO protocol on raw blocking UDP loops, no FastNet driver; diagnostic",
            ServerKind::SansIoBlock,
            ClientKind::SansIo,
            IoMode::Blocking,
        ),
        false,
        false,
    )),
    diagnostic(fastnet(
        row(
            "fastnet-sansio-tokio",
            "FastNet's sans-IO protocol on raw tokio UDP loops (current_thread), no FastNet driver; diagnostic",
            ServerKind::SansIoTokio,
            ClientKind::SansIo,
            IoMode::Tokio,
        ),
        false,
        false,
    )),
    fastnet(
        row(
            "fastnet-unrel-spin",
            "FastNet unreliable, game loop, `service()` spin",
            ServerKind::FastnetSpin,
            ClientKind::FastnetSpin,
            IoMode::BusyPoll,
        ),
        false,
        false,
    ),
    fastnet(
        row(
            "fastnet-rel-spin",
            "FastNet reliable-ordered, game loop, `service()` spin",
            ServerKind::FastnetSpin,
            ClientKind::FastnetSpin,
            IoMode::BusyPoll,
        ),
        true,
        false,
    ),
    fastnet(
        row(
            "fastnet-unrel-spin-ll",
            "FastNet unreliable, `service()` spin, `SocketConfig::low_latency()`",
            ServerKind::FastnetSpin,
            ClientKind::FastnetSpin,
            IoMode::BusyPoll,
        ),
        false,
        true,
    ),
    fastnet(
        row(
            "fastnet-unrel-block",
            "FastNet unreliable, game loop, `service_for(16 ms)`",
            ServerKind::FastnetBlock,
            ClientKind::FastnetBlock,
            IoMode::Blocking,
        ),
        false,
        false,
    ),
    fastnet(
        row(
            "fastnet-rel-block",
            "FastNet reliable-ordered, game loop, `service_for(16 ms)`",
            ServerKind::FastnetBlock,
            ClientKind::FastnetBlock,
            IoMode::Blocking,
        ),
        true,
        false,
    ),
    fastnet(
        row(
            "fastnet-unrel-block-ll",
            "FastNet unreliable, `service_for(16 ms)`, `SocketConfig::low_latency()`",
            ServerKind::FastnetBlock,
            ClientKind::FastnetBlock,
            IoMode::Blocking,
        ),
        false,
        true,
    ),
    Row {
        busy_wait: BUSY_WAIT,
        ..fastnet(
            row(
                "fastnet-unrel-busywait",
                "FastNet unreliable, `service_for(16 ms)` with `SocketConfig::busy_wait` 50 µs (spin, then sleep)",
                ServerKind::FastnetBlock,
                ClientKind::FastnetBlock,
                IoMode::BusyPoll,
            ),
            false,
            false,
        )
    },
    diagnostic(Row {
        batching: false,
        ..fastnet(
            row(
                "fastnet-unrel-spin-nobatch",
                "FastNet unreliable, `service()` spin, `SocketConfig::batching` off (`recvfrom` until `EAGAIN`, `sendto` per datagram); diagnostic",
                ServerKind::FastnetSpin,
                ClientKind::FastnetSpin,
                IoMode::BusyPoll,
            ),
            false,
            false,
        )
    }),
    diagnostic(Row {
        gro: true,
        ..fastnet(
            row(
                "fastnet-unrel-spin-gro",
                "FastNet unreliable, `service()` spin, `SocketConfig::gro` on (every receive a `recvmsg` with a control buffer); diagnostic",
                ServerKind::FastnetSpin,
                ClientKind::FastnetSpin,
                IoMode::BusyPoll,
            ),
            false,
            false,
        )
    }),
    diagnostic(Row {
        wait: SHORT_SERVICE_FOR_WAIT,
        ..fastnet(
            row(
                "fastnet-unrel-block-1ms",
                "FastNet unreliable, `service_for(1 ms)`: a wait shorter than the kernel tick; diagnostic",
                ServerKind::FastnetBlock,
                ClientKind::FastnetBlock,
                IoMode::Blocking,
            ),
            false,
            false,
        )
    }),
    fastnet(
        row(
            "fastnet-unrel-tokio",
            "FastNet unreliable, Tokio driver `SecureSocket` (current_thread)",
            ServerKind::FastnetTokio,
            ClientKind::FastnetTokio,
            IoMode::Tokio,
        ),
        false,
        false,
    ),
    fastnet(
        row(
            "fastnet-rel-tokio",
            "FastNet reliable-ordered, Tokio driver `SecureSocket` (current_thread)",
            ServerKind::FastnetTokio,
            ClientKind::FastnetTokio,
            IoMode::Tokio,
        ),
        true,
        false,
    ),
    fastnet(
        row(
            "fastnet-unrel-capi",
            "FastNet unreliable, C ABI client (`fastnet_client_send`, `fastnet_client_poll` spin)",
            ServerKind::FastnetSpin,
            ClientKind::FastnetCapi,
            IoMode::BusyPoll,
        ),
        false,
        false,
    ),
    fastnet(
        row(
            "fastnet-rel-capi",
            "FastNet reliable-ordered, C ABI client (`fastnet_client_send`, `fastnet_client_poll` spin)",
            ServerKind::FastnetSpin,
            ClientKind::FastnetCapi,
            IoMode::BusyPoll,
        ),
        true,
        false,
    ),
    Row {
        encrypted: true,
        identity: true,
        ..row(
            "quinn",
            "quinn 0.11, QUIC datagrams, tokio (current_thread)",
            ServerKind::Quinn,
            ClientKind::Quinn,
            IoMode::Tokio,
        )
    },
    row(
        "enet-unrel",
        "ENet 1.3, unreliable, `enet_host_service(.., 0)` spin",
        ServerKind::Enet,
        ClientKind::Enet,
        IoMode::BusyPoll,
    ),
    Row {
        reliable: true,
        ..row(
            "enet-rel",
            "ENet 1.3, reliable, same loop",
            ServerKind::Enet,
            ClientKind::Enet,
            IoMode::BusyPoll,
        )
    },
];

impl Row {
    /// Why the row cannot run in this build, if it cannot.
    pub fn unavailable(&self) -> Option<&'static str> {
        match self.client {
            ClientKind::Enet => crate::enet_missing(),
            _ => None,
        }
    }

    /// The server process's options for this row (see `server::serve`).
    pub fn server_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.low_latency {
            args.push("low-latency".to_string());
        }
        if !self.batching {
            args.push("no-batching".to_string());
        }
        if self.gro {
            args.push("gro".to_string());
        }
        if !self.busy_wait.is_zero() {
            args.push(format!("busy-wait-us={}", self.busy_wait.as_micros()));
        }
        args.push(format!("wait-us={}", self.wait.as_micros()));
        args
    }

    /// The socket options of this row's FastNet sides.
    pub fn socket_config(&self) -> SocketConfig {
        let mut c = if self.low_latency {
            SocketConfig::low_latency()
        } else {
            SocketConfig::default()
        };
        c.batching = self.batching;
        c.gro = self.gro;
        c.busy_wait = self.busy_wait;
        c
    }

    fn channel(&self) -> ChannelId {
        if self.reliable {
            channels::RELIABLE_ORDERED
        } else {
            channels::UNRELIABLE
        }
    }
}

/// One run of one row.
#[derive(Clone, Debug, Default)]
pub struct RunOutcome {
    /// Round-trip times in nanoseconds.
    pub samples: Vec<u64>,
    /// Client process CPU time over the measured round trips.
    pub cpu: Duration,
    /// UDP datagrams sent on this machine over the measured round trips.
    pub kernel_datagrams: u64,
    /// Datagrams the FastNet client sent and received (its own statistics).
    pub stats_datagrams: Option<u64>,
    /// Time to connect, where there is a connection.
    pub connect: Option<Duration>,
    /// Pings lost and sent again (ENet unreliable; not in the samples).
    pub lost: u64,
    /// Time the client spent in its per-message work (sealing and opening,
    /// or FastNet's protocol calls) over the measured round trips, where the
    /// client times it (the sans-IO rows).
    pub work: Option<Duration>,
    /// The server's timed work per datagram it answered, warm-up included
    /// (the sans-IO rows).
    pub server_work: Option<Duration>,
}

/// Everything measured for a row over all runs.
#[derive(Clone, Debug)]
pub struct RowResult {
    /// The row.
    pub row: Row,
    /// Why it did not run (not available, or the error it failed with).
    pub skipped: Option<String>,
    /// Per-run summaries.
    pub runs: Vec<Summary>,
    /// Median of the runs' summaries.
    pub summary: Summary,
    /// Every sample of every run (for the charts), nanoseconds.
    pub samples: Vec<u64>,
    /// Median client CPU microseconds per round trip.
    pub cpu_us: f64,
    /// Median UDP datagrams per round trip from the kernel counters.
    pub kernel_datagrams: f64,
    /// Median datagrams per round trip from FastNet's statistics.
    pub stats_datagrams: Option<f64>,
    /// Median connect time, milliseconds.
    pub connect_ms: Option<f64>,
    /// Pings lost and resent, all runs.
    pub lost: u64,
    /// Median nanoseconds per round trip of the client's timed per-message
    /// work (see [`RunOutcome::work`]).
    pub work_ns: Option<f64>,
    /// Median nanoseconds of the server's timed work per datagram (see
    /// [`RunOutcome::server_work`]).
    pub server_work_ns: Option<f64>,
    rounds: usize,
    outcomes: Vec<RunOutcome>,
}

impl RowResult {
    pub(crate) fn new(row: Row) -> Self {
        Self {
            row,
            skipped: row.unavailable().map(str::to_string),
            runs: Vec::new(),
            summary: Summary::default(),
            samples: Vec::new(),
            cpu_us: 0.0,
            kernel_datagrams: 0.0,
            stats_datagrams: None,
            connect_ms: None,
            lost: 0,
            work_ns: None,
            server_work_ns: None,
            rounds: 0,
            outcomes: Vec::new(),
        }
    }

    fn finish(&mut self) {
        if self.outcomes.is_empty() {
            return;
        }
        let n = self.rounds.max(1) as f64;
        self.runs = self
            .outcomes
            .iter()
            .map(|o| Summary::of_nanos(&o.samples))
            .collect();
        self.summary = Summary::median_of(&self.runs);
        self.samples = self
            .outcomes
            .iter()
            .flat_map(|o| o.samples.iter().copied())
            .collect();
        self.cpu_us = median(
            self.outcomes
                .iter()
                .map(|o| o.cpu.as_secs_f64() * 1e6 / n)
                .collect(),
        );
        self.kernel_datagrams = median(
            self.outcomes
                .iter()
                .map(|o| o.kernel_datagrams as f64 / n)
                .collect(),
        );
        let stats: Vec<f64> = self
            .outcomes
            .iter()
            .filter_map(|o| o.stats_datagrams)
            .map(|d| d as f64 / n)
            .collect();
        self.stats_datagrams = (!stats.is_empty()).then(|| median(stats));
        let work: Vec<f64> = self
            .outcomes
            .iter()
            .filter_map(|o| o.work)
            .map(|w| w.as_nanos() as f64 / n)
            .collect();
        self.work_ns = (!work.is_empty()).then(|| median(work));
        let server_work: Vec<f64> = self
            .outcomes
            .iter()
            .filter_map(|o| o.server_work)
            .map(|w| w.as_nanos() as f64)
            .collect();
        self.server_work_ns = (!server_work.is_empty()).then(|| median(server_work));
        let connects: Vec<f64> = self
            .outcomes
            .iter()
            .filter_map(|o| o.connect)
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        self.connect_ms = (!connects.is_empty()).then(|| median(connects));
        self.lost = self.outcomes.iter().map(|o| o.lost).sum();
    }
}

/// Measures `rows`, `h.runs` times each, interleaved (run 1 of every row, then
/// run 2...), so slow drifts of the shared machine hit every row alike. A row
/// that fails is reported with its error; the others go on.
pub fn measure(h: &Harness, rows: &[Row]) -> Vec<RowResult> {
    let mut results: Vec<RowResult> = rows.iter().map(|r| RowResult::new(*r)).collect();
    for run in 0..h.runs {
        for result in results.iter_mut() {
            if result.skipped.is_some() {
                continue;
            }
            h.progress.set_message(format!(
                "latency: {} (run {}/{})",
                result.row.id,
                run + 1,
                h.runs
            ));
            match measure_once(h, &result.row) {
                Ok(outcome) => {
                    result.rounds = h.rounds;
                    result.outcomes.push(outcome);
                }
                Err(e) => result.skipped = Some(format!("failed: {e}")),
            }
            h.progress.inc(1);
        }
    }
    for r in results.iter_mut() {
        r.finish();
    }
    results
}

/// One run of one row: starts its server, connects, warms up, measures.
pub fn measure_once(h: &Harness, row: &Row) -> BenchResult<RunOutcome> {
    let extra = row.server_args();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut server = ServerProcess::spawn(&h.exe, row.server, Mode::Echo, &extra)?;
    match row.client {
        ClientKind::UdpBlock | ClientKind::UdpSpin => {
            udp_client(h, &server, row.client == ClientKind::UdpSpin)
        }
        ClientKind::UdpTokio => udp_tokio_client(h, &server),
        ClientKind::FastnetSpin | ClientKind::FastnetBlock => game_loop_client(h, &server, row),
        ClientKind::FastnetTokio => tokio_driver_client(h, &server, row),
        ClientKind::FastnetCapi => crate::capi_client::run(h, &server, row.reliable),
        ClientKind::Quinn => quinn_client(h, &server),
        ClientKind::Enet => enet_client(h, &server, row.reliable),
        ClientKind::UdpAead if row.mode == IoMode::Tokio => sealed_tokio_client(h, &server),
        ClientKind::UdpAead => sealed_udp_client(h, &server, row.mode == IoMode::BusyPoll),
        ClientKind::SansIo => {
            let mut outcome = if row.mode == IoMode::Tokio {
                sans_io_tokio_client(h, &server, row)?
            } else {
                sans_io_client(h, &server, row)?
            };
            let r = server.report()?;
            outcome.server_work = (r.work_count > 0).then(|| r.work / r.work_count as u32);
            Ok(outcome)
        }
    }
}

/// The warm-up and measurement loop shared by all clients: `$ping` is an
/// expression (with `.await` inside for async clients) giving one round trip's
/// `BenchResult<Duration>`; `$stats` gives datagram statistics, if any.
macro_rules! ping_loop {
    ($h:expr, $ping:expr, $stats:expr) => {
        ping_loop!($h, $ping, $stats, None::<&Cell<Duration>>)
    };
    ($h:expr, $ping:expr, $stats:expr, $work:expr) => {{
        let h: &Harness = $h;
        let work: Option<&Cell<Duration>> = $work;
        for _ in 0..h.warmup {
            $ping?;
        }
        if let Some(w) = work {
            w.set(Duration::ZERO);
        }
        let stats_before: Option<ConnectionStats> = $stats;
        let kernel_before = UdpCounters::now();
        let cpu_before = process_cpu_time();
        let mut samples = Vec::with_capacity(h.rounds);
        for _ in 0..h.rounds {
            let rtt: Duration = $ping?;
            samples.push(rtt.as_nanos() as u64);
        }
        let cpu = process_cpu_time().saturating_sub(cpu_before);
        let kernel_datagrams = UdpCounters::now().sent_since(&kernel_before);
        let stats_after: Option<ConnectionStats> = $stats;
        let stats_datagrams = match (stats_before, stats_after) {
            (Some(a), Some(b)) => Some(
                (b.packets_sent + b.packets_received)
                    .saturating_sub(a.packets_sent + a.packets_received),
            ),
            _ => None,
        };
        RunOutcome {
            samples,
            cpu,
            kernel_datagrams,
            stats_datagrams,
            connect: None,
            lost: 0,
            work: work.map(Cell::get),
            server_work: None,
        }
    }};
}

/// The measurement loop for a synchronous client (used by the C ABI row).
pub fn sync_ping_loop(
    h: &Harness,
    mut ping: impl FnMut() -> BenchResult<Duration>,
    stats: impl Fn() -> Option<ConnectionStats>,
) -> BenchResult<RunOutcome> {
    Ok(ping_loop!(h, ping(), stats()))
}

pub(crate) fn server_addr(server: &ServerProcess, key: &str) -> BenchResult<SocketAddr> {
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, server.port(key)?)))
}

fn udp_client(h: &Harness, server: &ServerProcess, spin: bool) -> BenchResult<RunOutcome> {
    let socket = raw_udp_socket(!spin)?;
    socket.connect(server_addr(server, "udp")?)?;
    if !spin {
        socket.set_read_timeout(Some(PING_TIMEOUT))?;
    }
    let payload = [7u8; PING_BYTES];
    let mut buf = [0u8; 2048];
    let mut ping = || -> BenchResult<Duration> {
        let t = Instant::now();
        socket.send(&payload)?;
        loop {
            match socket.recv(&mut buf) {
                Ok(n) if n == PING_BYTES => return Ok(t.elapsed()),
                Ok(_) => return Err(fail("echo of the wrong size")),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && spin => {
                    if t.elapsed() > PING_TIMEOUT {
                        return Err(fail("no echo"));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    Ok(ping_loop!(h, ping(), None))
}

fn sealed_udp_client(h: &Harness, server: &ServerProcess, spin: bool) -> BenchResult<RunOutcome> {
    let socket = raw_udp_socket(!spin)?;
    socket.connect(server_addr(server, "udp")?)?;
    if !spin {
        socket.set_read_timeout(Some(PING_TIMEOUT))?;
    }
    let mut sealer = Sealer::client();
    let payload = [7u8; PING_BYTES];
    let (mut out, mut buf) = ([0u8; 2048], [0u8; 2048]);
    let mut ping = || -> BenchResult<Duration> {
        let t = Instant::now();
        let len = sealer.seal(&payload, &mut out);
        socket.send(&out[..len])?;
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => match sealer.open(&mut buf[..n]) {
                    Some(echo) if echo.len() == PING_BYTES => return Ok(t.elapsed()),
                    _ => return Err(fail("echo of the wrong size or not authentic")),
                },
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && spin => {
                    if t.elapsed() > PING_TIMEOUT {
                        return Err(fail("no echo"));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    Ok(ping_loop!(h, ping(), None))
}

fn sealed_tokio_client(h: &Harness, server: &ServerProcess) -> BenchResult<RunOutcome> {
    let addr = server_addr(server, "udp")?;
    current_thread()?.block_on(async {
        let socket = tokio::net::UdpSocket::from_std(raw_udp_socket(false)?)?;
        socket.connect(addr).await?;
        let mut sealer = Sealer::client();
        let payload = [7u8; PING_BYTES];
        let (mut out, mut buf) = ([0u8; 2048], [0u8; 2048]);
        let mut ping = async || -> BenchResult<Duration> {
            let t = Instant::now();
            let len = sealer.seal(&payload, &mut out);
            socket.send(&out[..len]).await?;
            let n = tokio::time::timeout(PING_TIMEOUT, socket.recv(&mut buf))
                .await
                .map_err(|_| fail("no echo"))??;
            match sealer.open(&mut buf[..n]) {
                Some(echo) if echo.len() == PING_BYTES => Ok(t.elapsed()),
                _ => Err(fail("echo of the wrong size or not authentic")),
            }
        };
        Ok(ping_loop!(h, ping().await, None))
    })
}

/// FastNet's client `Connection` on a std socket: the message is queued and
/// everything the connection has to send goes out; then each datagram is
/// handled as it comes (the echo is taken before the connection is asked what
/// to send next, as a lean driver would hand it over), and timers run when due.
fn sans_io_client(h: &Harness, server: &ServerProcess, row: &Row) -> BenchResult<RunOutcome> {
    let spin = row.mode == IoMode::BusyPoll;
    let socket = raw_udp_socket(!spin)?;
    socket.connect(server_addr(server, "udp")?)?;
    if !spin {
        // Wake for the timers now and then, like a driver's wait.
        socket.set_read_timeout(Some(Duration::from_millis(5)))?;
    }
    let (client_keys, _) = fastnet::sim::session_keys_pair(crate::floor::SANS_IO_SEED);
    let config = std::sync::Arc::new(fastnet::TransportConfig::default());
    let mut conn = fastnet::Connection::new(config, client_keys, Instant::now())?;
    let channel = row.channel();
    let payload = [7u8; PING_BYTES];
    let (mut out, mut buf) = ([0u8; 2048], [0u8; 2048]);
    let mut message = Vec::with_capacity(PING_BYTES);
    let work = Cell::new(Duration::ZERO);
    let mut ping = || -> BenchResult<Duration> {
        let t = Instant::now();
        conn.send(channel, &payload)
            .map_err(|e| fail(e.to_string()))?;
        // The first datagram is built and sealed here, timed as work; the
        // send is not.
        let first = conn.poll_transmit(t, &mut out);
        work.set(work.get() + t.elapsed());
        if let Some(len) = first {
            match socket.send(&out[..len]) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        }
        let transmit = |conn: &mut fastnet::Connection, out: &mut [u8], now| -> BenchResult<()> {
            while let Some(len) = conn.poll_transmit(now, out) {
                match socket.send(&out[..len]) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        };
        transmit(&mut conn, &mut out, t)?;
        loop {
            let received = match socket.recv(&mut buf) {
                Ok(n) => Some(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    None
                }
                Err(e) => return Err(e.into()),
            };
            let now = Instant::now();
            if let Some(n) = received {
                let _ = conn.handle_datagram(now, &mut buf[..n]);
                if conn.recv_into(&mut message).is_some() {
                    let rtt = t.elapsed();
                    work.set(work.get() + (rtt - (now - t)));
                    transmit(&mut conn, &mut out, now)?;
                    return Ok(rtt);
                }
            } else if conn.poll_timeout().is_some_and(|d| d <= now) {
                conn.handle_timeout(now);
            } else {
                if now - t > PING_TIMEOUT {
                    return Err(fail("no echo"));
                }
                std::hint::spin_loop();
                continue;
            }
            transmit(&mut conn, &mut out, now)?;
        }
    };
    Ok(ping_loop!(h, ping(), None, Some(&work)))
}

/// `sans_io_client` on a tokio socket: the message is queued and sent, then
/// the client awaits each datagram (or the connection's next deadline), hands
/// it over, and sends what the connection then has to send.
fn sans_io_tokio_client(h: &Harness, server: &ServerProcess, row: &Row) -> BenchResult<RunOutcome> {
    let addr = server_addr(server, "udp")?;
    current_thread()?.block_on(async {
        let socket = tokio::net::UdpSocket::from_std(raw_udp_socket(false)?)?;
        socket.connect(addr).await?;
        let (client_keys, _) = fastnet::sim::session_keys_pair(crate::floor::SANS_IO_SEED);
        let config = std::sync::Arc::new(fastnet::TransportConfig::default());
        let mut conn = fastnet::Connection::new(config, client_keys, Instant::now())?;
        let channel = row.channel();
        let payload = [7u8; PING_BYTES];
        let (mut out, mut buf) = ([0u8; 2048], [0u8; 2048]);
        let mut message = Vec::with_capacity(PING_BYTES);
        let work = Cell::new(Duration::ZERO);
        let mut ping = async || -> BenchResult<Duration> {
            let t = Instant::now();
            conn.send(channel, &payload)
                .map_err(|e| fail(e.to_string()))?;
            // As in `sans_io_client`: building and sealing the first datagram
            // is timed as work, sending it is not.
            let first = conn.poll_transmit(t, &mut out);
            work.set(work.get() + t.elapsed());
            if let Some(len) = first {
                socket.send(&out[..len]).await?;
            }
            while let Some(len) = conn.poll_transmit(t, &mut out) {
                socket.send(&out[..len]).await?;
            }
            loop {
                let wake = conn.poll_timeout().unwrap_or(t + PING_TIMEOUT);
                let received = tokio::time::timeout_at(wake.into(), socket.recv(&mut buf)).await;
                let now = Instant::now();
                match received {
                    Ok(n) => {
                        let _ = conn.handle_datagram(now, &mut buf[..n?]);
                        if conn.recv_into(&mut message).is_some() {
                            let rtt = t.elapsed();
                            work.set(work.get() + (rtt - (now - t)));
                            while let Some(len) = conn.poll_transmit(now, &mut out) {
                                socket.send(&out[..len]).await?;
                            }
                            return Ok(rtt);
                        }
                    }
                    Err(_) if now - t > PING_TIMEOUT => return Err(fail("no echo")),
                    Err(_) => conn.handle_timeout(now),
                }
                while let Some(len) = conn.poll_transmit(now, &mut out) {
                    socket.send(&out[..len]).await?;
                }
            }
        };
        Ok(ping_loop!(h, ping().await, None, Some(&work)))
    })
}

pub(crate) fn current_thread() -> BenchResult<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn udp_tokio_client(h: &Harness, server: &ServerProcess) -> BenchResult<RunOutcome> {
    let addr = server_addr(server, "udp")?;
    current_thread()?.block_on(async {
        let socket = tokio::net::UdpSocket::from_std(raw_udp_socket(false)?)?;
        socket.connect(addr).await?;
        let payload = [7u8; PING_BYTES];
        let mut buf = [0u8; 2048];
        let ping = async |buf: &mut [u8]| -> BenchResult<Duration> {
            let t = Instant::now();
            socket.send(&payload).await?;
            let n = tokio::time::timeout(PING_TIMEOUT, socket.recv(buf))
                .await
                .map_err(|_| fail("no echo"))??;
            if n != PING_BYTES {
                return Err(fail("echo of the wrong size"));
            }
            Ok(t.elapsed())
        };
        Ok(ping_loop!(h, ping(&mut buf).await, None))
    })
}

/// The client configuration of a FastNet row: the server's certificate pinned.
pub fn fastnet_client_config(
    server: &ServerProcess,
    low_latency: bool,
) -> BenchResult<ClientConfig> {
    let trust = ServerTrust::pinned_sha256_hex(server.field("pin")?)?;
    let mut config = ClientConfig::with_trust(trust);
    if low_latency {
        config.socket = SocketConfig::low_latency();
    }
    Ok(config)
}

/// One round trip through the game-loop client.
pub fn game_loop_ping(
    client: &mut Client,
    channel: ChannelId,
    payload: &[u8],
    buf: &mut Vec<u8>,
    wait: Option<Duration>,
) -> BenchResult<Duration> {
    let t = Instant::now();
    client
        .send_now(channel, payload)
        .map_err(|e| fail(e.to_string()))?;
    loop {
        match wait {
            Some(wait) => client.service_for(wait)?,
            None => client.service()?,
        }
        if client.recv_into(buf).is_some() {
            return Ok(t.elapsed());
        }
        if t.elapsed() > PING_TIMEOUT {
            return Err(fail("no echo"));
        }
    }
}

fn game_loop_client(h: &Harness, server: &ServerProcess, row: &Row) -> BenchResult<RunOutcome> {
    let mut config = fastnet_client_config(server, row.low_latency)?;
    config.socket = row.socket_config();
    let t = Instant::now();
    let mut client = Client::connect("127.0.0.1", server.port("tcp")?, config)?;
    let connect = t.elapsed();
    let wait = (row.client == ClientKind::FastnetBlock).then_some(row.wait);
    let payload = [7u8; PING_BYTES];
    let mut buf = Vec::with_capacity(PING_BYTES);
    let channel = row.channel();
    let mut outcome = ping_loop!(
        h,
        game_loop_ping(&mut client, channel, &payload, &mut buf, wait),
        Some(client.stats())
    );
    outcome.connect = Some(connect);
    client.disconnect(0);
    Ok(outcome)
}

/// Connects the Tokio driver's client to a server process.
pub async fn tokio_driver_connect(
    server: &ServerProcess,
    low_latency: bool,
) -> BenchResult<SecureSocket> {
    let config = fastnet_client_config(server, low_latency)?;
    Ok(SecureSocket::connect_with(server_addr(server, "tcp")?, config).await?)
}

fn tokio_driver_client(h: &Harness, server: &ServerProcess, row: &Row) -> BenchResult<RunOutcome> {
    current_thread()?.block_on(async {
        let t = Instant::now();
        let socket = tokio_driver_connect(server, row.low_latency).await?;
        let connect = t.elapsed();
        const SERVER_PEER: fastnet::net::PeerId = 1;
        let channel = row.channel();
        let payload = [7u8; PING_BYTES];
        // The zero-allocation receive path: one event vector throughout.
        let mut events = Vec::new();
        let mut ping = async || -> BenchResult<Duration> {
            let t = Instant::now();
            socket.send(SERVER_PEER, channel, payload).await?;
            loop {
                tokio::time::timeout(PING_TIMEOUT, socket.poll_into(&mut events))
                    .await
                    .map_err(|_| fail("no echo"))??;
                if events.iter().any(|e| matches!(e, SecureEvent::Data(..))) {
                    return Ok(t.elapsed());
                }
            }
        };
        let mut outcome = ping_loop!(h, ping().await, socket.peer_stats(SERVER_PEER));
        outcome.connect = Some(connect);
        socket.disconnect(SERVER_PEER, 0);
        Ok(outcome)
    })
}

fn quinn_client(h: &Harness, server: &ServerProcess) -> BenchResult<RunOutcome> {
    let port = server.port("udp")?;
    current_thread()?.block_on(async {
        let endpoint = crate::quic::client_endpoint(server.field("cert")?)?;
        let (conn, connect) = crate::quic::connect(&endpoint, port).await?;
        let payload = bytes::Bytes::from_static(&[7u8; PING_BYTES]);
        let mut outcome = ping_loop!(h, crate::quic::ping(&conn, &payload).await, None);
        outcome.connect = Some(connect);
        conn.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
        Ok(outcome)
    })
}

#[cfg(has_enet)]
fn enet_client(h: &Harness, server: &ServerProcess, reliable: bool) -> BenchResult<RunOutcome> {
    use crate::enet::{Event, Host, FLAG_RELIABLE};
    let mut host = Host::client()?;
    let t = Instant::now();
    let peer = host.connect(Ipv4Addr::LOCALHOST, server.port("udp")?)?;
    let mut buf = Vec::with_capacity(PING_BYTES);
    loop {
        if let Event::Connect(_) = host.service(&mut buf, 0)? {
            break;
        }
        if t.elapsed() > PING_TIMEOUT {
            return Err(fail("ENet: no connection"));
        }
    }
    let connect = t.elapsed();
    let flags = if reliable { FLAG_RELIABLE } else { 0 };
    let payload = [7u8; PING_BYTES];
    let mut lost = 0u64;
    let mut ping = || -> BenchResult<Duration> {
        let mut t = Instant::now();
        let started = t;
        host.send(peer, &payload, flags)?;
        loop {
            if let Event::Receive { len, .. } = host.service(&mut buf, 0)? {
                if len != PING_BYTES {
                    return Err(fail("ENet: echo of the wrong size"));
                }
                return Ok(t.elapsed());
            }
            // ENet's packet throttle drops unreliable packets when the RTT
            // varies: count the loss, time the resent ping.
            if !reliable && t.elapsed() > ENET_RESEND_AFTER {
                lost += 1;
                t = Instant::now();
                host.send(peer, &payload, flags)?;
            }
            if started.elapsed() > PING_TIMEOUT {
                return Err(fail("ENet: no echo"));
            }
        }
    };
    let mut outcome = ping_loop!(h, ping(), None);
    outcome.connect = Some(connect);
    outcome.lost = lost;
    host.disconnect_now(peer);
    Ok(outcome)
}

#[cfg(not(has_enet))]
fn enet_client(_: &Harness, _: &ServerProcess, _: bool) -> BenchResult<RunOutcome> {
    Err(fail("ENet not available"))
}
