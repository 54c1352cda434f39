//! Heap allocations per packet in steady state: a FastNet client and server
//! on loopback in this process, on one thread, exchanging 64-byte ping-pongs;
//! after a warm-up, the bench binary's counting allocator (`allocation-counter`,
//! per thread) counts every allocation of both ends over the measured round
//! trips. Done for the game-loop driver (both channels), the Tokio driver's
//! zero-allocation receive path `SecureSocket::poll_into` (both channels), and
//! its simple `poll()` (informational: it returns new vectors by design).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fastnet::net::{Client, ClientConfig, SecureEvent, SecureSocket, Server, ServerConfig};
use fastnet::session::{DevCertificate, ServerCredentials, ServerTrust};
use fastnet::{channels, ChannelId};

use crate::rtt::PING_BYTES;
use crate::{fail, BenchResult, Harness};

/// Allocations over a number of round trips.
#[derive(Clone, Debug)]
pub struct AllocResult {
    /// What was measured.
    pub label: &'static str,
    /// Round trips measured.
    pub round_trips: u64,
    /// Datagrams sent by both ends meanwhile.
    pub datagrams: u64,
    /// Allocations (and reallocations) by both ends.
    pub allocations: u64,
    /// Bytes allocated.
    pub bytes: u64,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
    /// Whether the target of 0 allocations per packet applies (not to the
    /// Tokio driver's simple `poll()`, which allocates by design).
    pub target: bool,
}

impl AllocResult {
    /// Allocations per datagram.
    pub fn per_packet(&self) -> f64 {
        self.allocations as f64 / self.datagrams.max(1) as f64
    }
}

/// Number of allocation rows.
pub const CASE_COUNT: usize = 5;

/// How a measured driver receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Receive {
    /// Game loop: `recv_into`.
    GameLoop,
    /// Tokio: `poll_into` with one event vector per end.
    PollInto,
    /// Tokio: `poll()`, a new vector per call (the brief's API).
    Poll,
}

/// Every allocation row.
pub fn measure(h: &Harness) -> Vec<AllocResult> {
    let cases: [(&'static str, ChannelId, Receive); CASE_COUNT] = [
        (
            "game-loop `Client`/`Server`, unreliable",
            channels::UNRELIABLE,
            Receive::GameLoop,
        ),
        (
            "game-loop `Client`/`Server`, reliable-ordered",
            channels::RELIABLE_ORDERED,
            Receive::GameLoop,
        ),
        (
            "Tokio driver `SecureSocket::poll_into`, unreliable",
            channels::UNRELIABLE,
            Receive::PollInto,
        ),
        (
            "Tokio driver `SecureSocket::poll_into`, reliable-ordered",
            channels::RELIABLE_ORDERED,
            Receive::PollInto,
        ),
        (
            "Tokio driver `SecureSocket::poll` (simple API, informational), unreliable",
            channels::UNRELIABLE,
            Receive::Poll,
        ),
    ];
    cases
        .into_iter()
        .map(|(label, channel, receive)| {
            h.progress.set_message(format!("allocations: {label}"));
            let r = match receive {
                Receive::GameLoop => game_loop(h, channel),
                Receive::PollInto | Receive::Poll => tokio_driver(h, channel, receive),
            };
            h.progress.inc(1);
            let target = receive != Receive::Poll;
            match r {
                Ok(r) => AllocResult { label, target, ..r },
                Err(e) => AllocResult {
                    label,
                    round_trips: 0,
                    datagrams: 0,
                    allocations: 0,
                    bytes: 0,
                    skipped: Some(format!("failed: {e}")),
                    target,
                },
            }
        })
        .collect()
}

fn dev_server_config() -> BenchResult<(ServerConfig, ServerTrust)> {
    let dev = DevCertificate::generate(&["localhost", "127.0.0.1"])?;
    let credentials = Arc::new(ServerCredentials::from_dev_certificate(&dev)?);
    Ok((
        ServerConfig::new(credentials),
        ServerTrust::PinnedSha256(dev.sha256),
    ))
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A game-loop `Client` and `Server` connected on loopback, both driven by the
/// caller's thread, exchanging 64-byte ping-pongs.
pub struct GameLoopPair {
    client: Client,
    server: Server,
    channel: ChannelId,
    payload: [u8; PING_BYTES],
    server_buf: Vec<u8>,
    client_buf: Vec<u8>,
}

impl GameLoopPair {
    /// Binds a server with a fresh development certificate and connects a
    /// client that pins it; ping-pongs go on `channel`.
    pub fn connect(channel: ChannelId) -> BenchResult<Self> {
        let (config, trust) = dev_server_config()?;
        let mut server = Server::bind(loopback(), loopback(), config)?;
        let port = server.tcp_addr().port();
        // The server is serviced by a helper thread while the client connects
        // (a blocking call), then comes back to this thread.
        let stop = Arc::new(AtomicBool::new(false));
        let helper = {
            let stop = stop.clone();
            std::thread::spawn(move || -> std::io::Result<Server> {
                while !stop.load(Ordering::Relaxed) {
                    server.service_for(Duration::from_micros(200))?;
                }
                Ok(server)
            })
        };
        let client = Client::connect("127.0.0.1", port, ClientConfig::with_trust(trust));
        stop.store(true, Ordering::Relaxed);
        let server = helper
            .join()
            .map_err(|_| fail("server thread panicked"))??;
        Ok(Self {
            client: client?,
            server,
            channel,
            payload: [7u8; PING_BYTES],
            server_buf: Vec::new(),
            client_buf: Vec::new(),
        })
    }

    /// One ping-pong: the client sends, the server echoes, the client takes
    /// the echo in.
    ///
    /// The guard against a lost echo counts passes instead of reading the
    /// clock: on loopback the echo is in after the first pass, and a clock
    /// read per round trip would add the harness's instructions to what the
    /// instructions table counts for the drivers.
    pub fn round_trip(&mut self) -> BenchResult<()> {
        let (client, server) = (&mut self.client, &mut self.server);
        client
            .send_now(self.channel, &self.payload)
            .map_err(|e| fail(e.to_string()))?;
        let mut passes = 0u32;
        loop {
            server.service()?;
            while server.poll_event().is_some() {}
            while let Some((peer, ch)) = server.recv_into(&mut self.server_buf) {
                server
                    .send(peer, ch, &self.server_buf)
                    .map_err(|e| fail(e.to_string()))?;
            }
            server.service()?;
            client.service()?;
            if client.recv_into(&mut self.client_buf).is_some() {
                return Ok(());
            }
            passes += 1;
            if passes >= MAX_PASSES_PER_ECHO {
                return Err(fail("no echo"));
            }
        }
    }

    /// Datagrams the client has sent and received so far.
    pub fn client_datagrams(&self) -> u64 {
        let stats = self.client.stats();
        stats.packets_sent + stats.packets_received
    }
}

fn game_loop(h: &Harness, channel: ChannelId) -> BenchResult<AllocResult> {
    let mut pair = GameLoopPair::connect(channel)?;
    for _ in 0..h.warmup.max(100) {
        pair.round_trip()?;
    }
    let before = pair.client_datagrams();
    let mut result = Ok(());
    let info = allocation_counter::measure(|| {
        for _ in 0..h.rounds {
            if let Err(e) = pair.round_trip() {
                result = Err(e);
                return;
            }
        }
    });
    result?;
    Ok(AllocResult {
        label: "",
        round_trips: h.rounds as u64,
        // Every datagram is sent by one end and received by the other.
        datagrams: pair.client_datagrams() - before,
        allocations: info.count_total,
        bytes: info.bytes_total,
        skipped: None,
        target: true,
    })
}

/// Receives events on `socket` the way `receive` says: into `events` (kept
/// across calls) through `poll_into`, or as a new vector from `poll()`.
async fn receive_events(
    socket: &SecureSocket,
    receive: Receive,
    events: &mut Vec<SecureEvent>,
) -> std::io::Result<()> {
    if receive == Receive::Poll {
        *events = socket.poll().await?;
    } else {
        socket.poll_into(events).await?;
    }
    Ok(())
}

/// A Tokio driver client and server socket connected on loopback, on one
/// current-thread runtime, the server answering every message from a task.
pub struct TokioPair {
    client: SecureSocket,
    /// Kept open for the echo task, which holds a clone.
    _server: SecureSocket,
    channel: ChannelId,
    receive: Receive,
    events: Vec<SecureEvent>,
    /// Dropped last (fields drop in order), after the sockets.
    rt: tokio::runtime::Runtime,
}

/// The client socket's ID for its server.
const SERVER_PEER: fastnet::net::PeerId = 1;

/// Passes of [`GameLoopPair::round_trip`]'s loop before it gives up on an echo
/// (a pass is three service calls, a microsecond or more: several seconds).
const MAX_PASSES_PER_ECHO: u32 = 5_000_000;

/// How long a batch of `n` Tokio round trips may take before it counts as
/// stuck: generous enough for a run under valgrind.
fn batch_timeout(n: usize) -> Duration {
    Duration::from_secs(5)
        + Duration::from_millis(5).saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
}

impl TokioPair {
    /// Binds a server with a fresh development certificate, spawns its echo
    /// task and connects a client that pins it; both receive as `receive` says.
    fn connect(channel: ChannelId, receive: Receive) -> BenchResult<Self> {
        let (config, trust) = dev_server_config()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (server, client) = rt.block_on(async {
            let server = SecureSocket::bind_server_with(loopback(), loopback(), config).await?;
            let tcp = server
                .local_tcp_addr()
                .ok_or_else(|| fail("no TCP address"))?;
            let echo = server.clone();
            tokio::spawn(async move {
                let mut events = Vec::new();
                while receive_events(&echo, receive, &mut events).await.is_ok() {
                    for event in &events {
                        if let SecureEvent::Data(peer, channel, data) = event {
                            let _ = echo.send(*peer, *channel, data).await;
                        }
                    }
                }
            });
            let client = SecureSocket::connect_with(tcp, ClientConfig::with_trust(trust)).await?;
            BenchResult::Ok((server, client))
        })?;
        Ok(Self {
            client,
            _server: server,
            channel,
            receive,
            events: Vec::new(),
            rt,
        })
    }

    /// The same, receiving with `poll_into`.
    pub fn connect_poll_into(channel: ChannelId) -> BenchResult<Self> {
        Self::connect(channel, Receive::PollInto)
    }

    /// `n` ping-pongs, each awaited to its echo.
    ///
    /// One timeout guards the whole batch, not one per echo: a timer
    /// registered and cancelled per round trip cost Tokio about 480
    /// instructions more, which the instructions table counted as the
    /// driver's. The batch's timer is still polled at each wake-up, about
    /// 140 instructions per round trip that the table counts as Tokio's. The
    /// raw Tokio echo it is compared with runs without a timer: one would
    /// switch on Tokio's timer processing, which a raw echo does not
    /// otherwise need (about 580 instructions per round trip there).
    pub fn round_trips(&mut self, n: usize) -> BenchResult<()> {
        let payload = [7u8; PING_BYTES];
        let Self {
            rt,
            client,
            channel,
            receive,
            events,
            ..
        } = self;
        let batch = async {
            for _ in 0..n {
                client.send(SERVER_PEER, *channel, payload).await?;
                loop {
                    receive_events(client, *receive, events).await?;
                    if events.iter().any(|e| matches!(e, SecureEvent::Data(..))) {
                        break;
                    }
                }
            }
            BenchResult::Ok(())
        };
        rt.block_on(async {
            tokio::time::timeout(batch_timeout(n), batch)
                .await
                .map_err(|_| fail("no echo"))?
        })
    }

    /// Datagrams the client has sent and received so far.
    pub fn client_datagrams(&self) -> BenchResult<u64> {
        let stats = self
            .client
            .peer_stats(SERVER_PEER)
            .ok_or_else(|| fail("no server peer"))?;
        Ok(stats.packets_sent + stats.packets_received)
    }
}

fn tokio_driver(h: &Harness, channel: ChannelId, receive: Receive) -> BenchResult<AllocResult> {
    let mut pair = TokioPair::connect(channel, receive)?;
    pair.round_trips(h.warmup.max(100))?;
    let before = pair.client_datagrams()?;
    let mut result = Ok(());
    let info = allocation_counter::measure(|| result = pair.round_trips(h.rounds));
    result?;
    let after = pair.client_datagrams()?;
    Ok(AllocResult {
        label: "",
        round_trips: h.rounds as u64,
        datagrams: after - before,
        allocations: info.count_total,
        bytes: info.bytes_total,
        skipped: None,
        target: true,
    })
}
