//! The server process: `fastnet-bench serve <kind> <mode> [low-latency]`, and
//! [`ServerProcess`], the parent's handle on it.
//!
//! The child binds to 127.0.0.1 on free ports, prints one line
//! `READY key=value ...` (ports, certificate fingerprint or DER in hex) and
//! serves until its stdin closes. A `report` line on stdin makes it print
//! `REPORT messages=.. bytes=.. span_ns=..` (what it received since the last
//! report: the receiving side of the throughput runs) and reset the counters.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fastnet::net::{
    bind_udp, PeerEvent, SecureEvent, SecureSocket, Server, ServerConfig, SocketConfig,
};
use fastnet::session::{DevCertificate, ServerCredentials};

use crate::{fail, BenchResult};

/// The server implementations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// std `UdpSocket`, blocking `recv_from`.
    UdpBlock,
    /// std `UdpSocket`, non-blocking `recv_from` in a spin loop.
    UdpSpin,
    /// tokio `UdpSocket` on a current-thread runtime.
    UdpTokio,
    /// FastNet game-loop `Server`, `service()` in a spin loop.
    FastnetSpin,
    /// FastNet game-loop `Server`, `service_for` loop (`wait-us=`).
    FastnetBlock,
    /// FastNet Tokio driver `SecureSocket` on a current-thread runtime.
    FastnetTokio,
    /// quinn 0.11 QUIC datagrams on a current-thread runtime.
    Quinn,
    /// ENet 1.3, `enet_host_service(host, &event, 0)` spin.
    Enet,
    /// Sealed UDP (see `floor`), blocking `recv_from`.
    UdpAeadBlock,
    /// Sealed UDP, non-blocking `recv_from` in a spin loop.
    UdpAeadSpin,
    /// Sealed UDP on a tokio current-thread runtime.
    UdpAeadTokio,
    /// FastNet's sans-IO `Endpoint` on a std socket, spin loop (see `floor`).
    SansIoSpin,
    /// FastNet's sans-IO `Endpoint` on a std socket, blocking `recv_from`.
    SansIoBlock,
    /// FastNet's sans-IO `Endpoint` on a tokio socket, current-thread runtime.
    SansIoTokio,
}

impl ServerKind {
    /// Every kind with its command-line name.
    pub const ALL: [(ServerKind, &'static str); 14] = [
        (ServerKind::UdpBlock, "udp-block"),
        (ServerKind::UdpSpin, "udp-spin"),
        (ServerKind::UdpTokio, "udp-tokio"),
        (ServerKind::FastnetSpin, "fastnet-spin"),
        (ServerKind::FastnetBlock, "fastnet-block"),
        (ServerKind::FastnetTokio, "fastnet-tokio"),
        (ServerKind::Quinn, "quinn"),
        (ServerKind::Enet, "enet"),
        (ServerKind::UdpAeadBlock, "udp-aead-block"),
        (ServerKind::UdpAeadSpin, "udp-aead-spin"),
        (ServerKind::UdpAeadTokio, "udp-aead-tokio"),
        (ServerKind::SansIoSpin, "fastnet-sansio-spin"),
        (ServerKind::SansIoBlock, "fastnet-sansio-block"),
        (ServerKind::SansIoTokio, "fastnet-sansio-tokio"),
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map(|(_, n)| *n)
            .expect("every kind is listed")
    }

    /// The kind of a command-line name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(k, _)| *k)
    }
}

/// What the server does with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Sends it back (ping-pong).
    Echo,
    /// Counts it (one-way throughput).
    Sink,
    /// Counts it and answers one byte on the same channel (reliable bulk).
    Ack,
}

impl Mode {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Sink => "sink",
            Mode::Ack => "ack",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Mode::Echo, Mode::Sink, Mode::Ack]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

// ---------------------------------------------------------------------------
// The child side.

/// Received since the last report (the sink side of throughput runs).
struct Counters {
    start: Instant,
    messages: AtomicU64,
    bytes: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    /// Time the server spent on its timed per-datagram work (sans-IO rows).
    work_ns: AtomicU64,
    /// Datagrams whose work was timed.
    work_count: AtomicU64,
}

fn counters() -> &'static Counters {
    static COUNTERS: OnceLock<Counters> = OnceLock::new();
    COUNTERS.get_or_init(|| Counters {
        start: Instant::now(),
        messages: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        first_ns: AtomicU64::new(0),
        last_ns: AtomicU64::new(0),
        work_ns: AtomicU64::new(0),
        work_count: AtomicU64::new(0),
    })
}

/// Counts the server's work on one received datagram (the sans-IO rows time
/// it from the receive's return to the answer's hand-over to the socket).
pub(crate) fn note_work(work: Duration) {
    let c = counters();
    c.work_ns
        .fetch_add(work.as_nanos() as u64, Ordering::Relaxed);
    c.work_count.fetch_add(1, Ordering::Relaxed);
}

/// Counts one received message.
fn note(bytes: usize) {
    let c = counters();
    let now = c.start.elapsed().as_nanos() as u64;
    if c.messages.fetch_add(1, Ordering::Relaxed) == 0 {
        c.first_ns.store(now, Ordering::Relaxed);
    }
    c.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    c.last_ns.store(now, Ordering::Relaxed);
}

/// Reads commands from stdin; exits the process when stdin closes.
fn spawn_control() {
    let _ = counters();
    std::thread::spawn(|| {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == "report" {
                let c = counters();
                let messages = c.messages.swap(0, Ordering::Relaxed);
                let bytes = c.bytes.swap(0, Ordering::Relaxed);
                let span = c
                    .last_ns
                    .load(Ordering::Relaxed)
                    .saturating_sub(c.first_ns.load(Ordering::Relaxed));
                let work_ns = c.work_ns.swap(0, Ordering::Relaxed);
                let work_count = c.work_count.swap(0, Ordering::Relaxed);
                println!(
                    "REPORT messages={messages} bytes={bytes} span_ns={span} work_ns={work_ns} work_count={work_count}"
                );
            }
        }
        std::process::exit(0);
    });
}

/// `serve <kind> <mode> [low-latency] [no-batching] [no-gso] [gro]
/// [busy-wait-us=N] [wait-us=N] [max-datagram=N]`: runs a server until stdin closes.
pub fn serve(args: &[String]) -> BenchResult<()> {
    let kind = args
        .first()
        .and_then(|k| ServerKind::parse(k))
        .ok_or_else(|| fail("serve: unknown server kind"))?;
    let mode = args
        .get(1)
        .and_then(|m| Mode::parse(m))
        .ok_or_else(|| fail("serve: mode is echo, sink or ack"))?;
    let low_latency = args.iter().any(|a| a == "low-latency");
    let number = |key: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(key)?.parse::<u64>().ok())
    };
    let tuning = Tuning {
        batching: !args.iter().any(|a| a == "no-batching"),
        gso: !args.iter().any(|a| a == "no-gso"),
        gro: args.iter().any(|a| a == "gro"),
        busy_wait: number("busy-wait-us=").map_or(Duration::ZERO, Duration::from_micros),
        wait: number("wait-us=").map_or(crate::rtt::SERVICE_FOR_WAIT, Duration::from_micros),
        max_datagram: number("max-datagram=").map(|n| n as usize),
    };
    spawn_control();
    match kind {
        ServerKind::UdpBlock => serve_udp(mode, false),
        ServerKind::UdpSpin => serve_udp(mode, true),
        ServerKind::UdpTokio => serve_udp_tokio(mode),
        ServerKind::FastnetSpin => serve_fastnet(mode, low_latency, tuning, false),
        ServerKind::FastnetBlock => serve_fastnet(mode, low_latency, tuning, true),
        ServerKind::FastnetTokio => serve_fastnet_tokio(mode, low_latency, tuning),
        ServerKind::Quinn => crate::quic::serve(mode),
        ServerKind::Enet => serve_enet(mode),
        ServerKind::UdpAeadBlock => crate::floor::serve_sealed_udp(mode, false),
        ServerKind::UdpAeadSpin => crate::floor::serve_sealed_udp(mode, true),
        ServerKind::UdpAeadTokio => crate::floor::serve_sealed_tokio(mode),
        ServerKind::SansIoSpin => crate::floor::serve_sans_io(true),
        ServerKind::SansIoBlock => crate::floor::serve_sans_io(false),
        ServerKind::SansIoTokio => crate::floor::serve_sans_io_tokio(),
    }
}

/// Prints the `READY` line.
pub(crate) fn ready(fields: &[(&str, String)]) {
    let line: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("READY {}", line.join(" "));
}

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// A loopback UDP socket with FastNet's default buffer sizes (4 MiB), so raw
/// UDP and FastNet absorb the same bursts.
pub fn raw_udp_socket(blocking: bool) -> std::io::Result<UdpSocket> {
    let (socket, _) = bind_udp(loopback(), &SocketConfig::default())?;
    socket.set_nonblocking(!blocking)?;
    Ok(socket)
}

fn serve_udp(mode: Mode, spin: bool) -> BenchResult<()> {
    let socket = raw_udp_socket(!spin)?;
    ready(&[("udp", socket.local_addr()?.port().to_string())]);
    let mut buf = vec![0u8; 65_536];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => match mode {
                Mode::Echo => {
                    socket.send_to(&buf[..n], from)?;
                }
                Mode::Sink | Mode::Ack => note(n),
            },
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn serve_udp_tokio(mode: Mode) -> BenchResult<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let socket = tokio::net::UdpSocket::from_std(raw_udp_socket(false)?)?;
        ready(&[("udp", socket.local_addr()?.port().to_string())]);
        let mut buf = vec![0u8; 65_536];
        loop {
            match socket.recv_from(&mut buf).await {
                Ok((n, from)) => match mode {
                    Mode::Echo => {
                        socket.send_to(&buf[..n], from).await?;
                    }
                    Mode::Sink | Mode::Ack => note(n),
                },
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e.into()),
            }
        }
    })
}

/// A development certificate and the server configuration around it.
fn fastnet_config(low_latency: bool) -> BenchResult<(ServerConfig, String)> {
    let dev = DevCertificate::generate(&["localhost", "127.0.0.1"])?;
    let credentials = Arc::new(ServerCredentials::from_dev_certificate(&dev)?);
    let mut config = ServerConfig::new(credentials);
    if low_latency {
        config.socket = SocketConfig::low_latency();
    }
    Ok((config, dev.sha256_hex()))
}

/// The FastNet server's options a row sets (`busy_wait` and `wait` only
/// matter to the game-loop server).
#[derive(Clone, Copy, Debug)]
struct Tuning {
    batching: bool,
    gso: bool,
    gro: bool,
    busy_wait: Duration,
    wait: Duration,
    max_datagram: Option<usize>,
}

/// [`fastnet_config`] with `tuning` applied.
fn tuned_config(low_latency: bool, tuning: Tuning) -> BenchResult<(ServerConfig, String)> {
    let (mut config, pin) = fastnet_config(low_latency)?;
    config.socket.batching = tuning.batching;
    config.socket.gso = tuning.gso;
    config.socket.gro = tuning.gro;
    config.socket.busy_wait = tuning.busy_wait;
    if let Some(bytes) = tuning.max_datagram {
        config.transport.set_max_datagram_bytes(bytes);
    }
    Ok((config, pin))
}

fn serve_fastnet(mode: Mode, low_latency: bool, tuning: Tuning, block: bool) -> BenchResult<()> {
    let (config, pin) = tuned_config(low_latency, tuning)?;
    let mut server = Server::bind(loopback(), loopback(), config)?;
    let refused: Vec<&str> = server
        .socket_report()
        .refused
        .iter()
        .map(|(o, _)| *o)
        .collect();
    ready(&[
        ("udp", server.udp_addr().port().to_string()),
        ("tcp", server.tcp_addr().port().to_string()),
        ("pin", pin),
        (
            "refused",
            if refused.is_empty() {
                "-".into()
            } else {
                refused.join(",")
            },
        ),
    ]);
    let mut buf = Vec::new();
    loop {
        if block {
            server.service_for(tuning.wait)?;
        } else {
            server.service()?;
        }
        while let Some(event) = server.poll_event() {
            if let PeerEvent::Disconnected(..) = event {}
        }
        while let Some((peer, channel)) = server.recv_into(&mut buf) {
            match mode {
                Mode::Echo => {
                    let _ = server.send(peer, channel, &buf);
                }
                Mode::Sink => note(buf.len()),
                Mode::Ack => {
                    note(buf.len());
                    let _ = server.send(peer, channel, &[1]);
                }
            }
        }
    }
}

fn serve_fastnet_tokio(mode: Mode, low_latency: bool, tuning: Tuning) -> BenchResult<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (config, pin) = tuned_config(low_latency, tuning)?;
        let socket = SecureSocket::bind_server_with(loopback(), loopback(), config).await?;
        ready(&[
            ("udp", socket.local_udp_addr().port().to_string()),
            (
                "tcp",
                socket.local_tcp_addr().map_or(0, |a| a.port()).to_string(),
            ),
            ("pin", pin),
        ]);
        // The zero-allocation receive path: one event vector throughout.
        let mut events = Vec::new();
        loop {
            socket.poll_into(&mut events).await?;
            for event in &events {
                if let SecureEvent::Data(peer, channel, data) = event {
                    let (peer, channel) = (*peer, *channel);
                    match mode {
                        Mode::Echo => {
                            let _ = socket.send(peer, channel, data).await;
                        }
                        Mode::Sink => note(data.len()),
                        Mode::Ack => {
                            note(data.len());
                            let _ = socket.send(peer, channel, [1u8]).await;
                        }
                    }
                }
            }
        }
    })
}

/// Peers an ENet server accepts: room for the handshake run's sequential
/// connects while earlier peers are still being released.
#[cfg(has_enet)]
const ENET_MAX_PEERS: usize = 1024;

#[cfg(has_enet)]
fn serve_enet(mode: Mode) -> BenchResult<()> {
    use crate::enet::{Event, Host, FLAG_RELIABLE};
    // ENet reports no bound port: take a free one from the kernel first.
    let port = UdpSocket::bind(loopback())?.local_addr()?.port();
    let mut host = Host::server(Ipv4Addr::LOCALHOST, port, ENET_MAX_PEERS)?;
    ready(&[("udp", port.to_string())]);
    let mut buf = Vec::new();
    loop {
        if let Event::Receive {
            peer,
            len,
            reliable,
        } = host.service(&mut buf, 0)?
        {
            match mode {
                Mode::Echo => {
                    host.send(peer, &buf[..len], if reliable { FLAG_RELIABLE } else { 0 })?;
                }
                Mode::Sink | Mode::Ack => note(len),
            }
        }
    }
}

#[cfg(not(has_enet))]
fn serve_enet(_: Mode) -> BenchResult<()> {
    Err(fail(
        "ENet was not found at build time (install libenet-dev)",
    ))
}

// ---------------------------------------------------------------------------
// The parent side.

/// What a sink server received between two reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Messages.
    pub messages: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Time from the first to the last message.
    pub span: Duration,
    /// Time the server spent on its timed per-datagram work (sans-IO rows).
    pub work: Duration,
    /// Datagrams whose work was timed.
    pub work_count: u64,
}

/// A server running in a child process; it exits when this is dropped.
pub struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    fields: HashMap<String, String>,
}

impl ServerProcess {
    /// Starts `exe serve <kind> <mode> [extra...]` and waits for its `READY`.
    pub fn spawn(exe: &Path, kind: ServerKind, mode: Mode, extra: &[&str]) -> BenchResult<Self> {
        let mut child = Command::new(exe)
            .arg("serve")
            .arg(kind.name())
            .arg(mode.name())
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut process = Self {
            child,
            stdin,
            stdout,
            fields: HashMap::new(),
        };
        let line = process.read_line("READY")?;
        process.fields = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(process)
    }

    fn read_line(&mut self, prefix: &str) -> BenchResult<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line)? == 0 {
                return Err(fail(format!("server exited before printing {prefix}")));
            }
            if let Some(rest) = line.trim().strip_prefix(prefix) {
                return Ok(rest.trim().to_string());
            }
        }
    }

    /// A field of the `READY` line.
    pub fn field(&self, key: &str) -> BenchResult<&str> {
        self.fields
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| fail(format!("server did not report {key}")))
    }

    /// A port of the `READY` line.
    pub fn port(&self, key: &str) -> BenchResult<u16> {
        Ok(self.field(key)?.parse()?)
    }

    /// The server's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server received since the last report.
    pub fn report(&mut self) -> BenchResult<Received> {
        let stdin = self.stdin.as_mut().expect("stdin open while running");
        stdin.write_all(b"report\n")?;
        stdin.flush()?;
        let line = self.read_line("REPORT")?;
        let mut received = Received::default();
        for (k, v) in line.split_whitespace().filter_map(|kv| kv.split_once('=')) {
            let v: u64 = v.parse()?;
            match k {
                "messages" => received.messages = v,
                "bytes" => received.bytes = v,
                "span_ns" => received.span = Duration::from_nanos(v),
                "work_ns" => received.work = Duration::from_nanos(v),
                "work_count" => received.work_count = v,
                _ => {}
            }
        }
        Ok(received)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stdin = None; // EOF: the server exits
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Decodes a hex string (certificate fingerprints and DER).
pub fn from_hex(hex: &str) -> BenchResult<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return Err(fail("odd-length hex"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(Into::into))
        .collect()
}

/// Encodes bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
