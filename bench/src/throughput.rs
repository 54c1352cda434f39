//! One-way throughput on loopback: the client sends as fast as it can, the
//! server process counts what arrives (messages per second between its first
//! and last arrival). Raw UDP against FastNet unreliable for 64 B and 1200 B
//! messages, and FastNet reliable-ordered with 1 MiB messages (acknowledged by
//! a one-byte answer each), through the game-loop driver and through the
//! Tokio driver (a Tokio client sending to a Tokio server).

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::task::Poll;
use std::time::{Duration, Instant};

use fastnet::net::{Client, ClientConfig, SecureEvent, SecureSocket};
use fastnet::{channels, SendError};

use crate::rtt::{current_thread, fastnet_client_config, server_addr};
use crate::server::{raw_udp_socket, Mode, ServerKind, ServerProcess};
use crate::sys::{process_cpu_time, UdpCounters};
use crate::{fail, BenchResult, Harness};

/// Size of the reliable bulk messages.
pub const BIG_MESSAGE_BYTES: usize = 1 << 20;
/// How long the receiver is given to drain its socket after the last send.
const DRAIN: Duration = Duration::from_millis(300);

/// How a throughput row sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// std UDP socket, one `send` per message.
    RawUdp,
    /// FastNet unreliable, `send_now` per message (transmits at once, unless
    /// the in-flight limit holds it back), `service()` per 32 messages (reads
    /// acknowledgements).
    FastnetEach,
    /// FastNet unreliable, `send` then one `service()` per 32 messages: small
    /// messages share datagrams.
    FastnetBatched,
    /// FastNet reliable-ordered 1 MiB messages.
    FastnetBig,
    /// FastNet Tokio driver, unreliable, `send(..).await` per message (it
    /// transmits at once), to a Tokio server.
    TokioEach,
    /// FastNet Tokio driver, reliable-ordered 1 MiB messages, to a Tokio
    /// server.
    TokioBig,
}

impl Sender {
    /// Whether the row runs the Tokio driver on both sides.
    pub fn is_tokio(self) -> bool {
        matches!(self, Sender::TokioEach | Sender::TokioBig)
    }

    /// Whether the row sends 1 MiB reliable messages.
    pub fn is_big(self) -> bool {
        matches!(self, Sender::FastnetBig | Sender::TokioBig)
    }
}

/// One throughput measurement.
#[derive(Clone, Debug)]
pub struct ThroughputResult {
    /// What was measured.
    pub label: String,
    /// How it was sent.
    pub sender: Sender,
    /// Message size.
    pub message_bytes: usize,
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Received messages per second.
    pub messages_per_sec: f64,
    /// Received payload megabytes (10^6) per second.
    pub mb_per_sec: f64,
    /// UDP datagrams the sender sent per message.
    pub datagrams_per_message: f64,
    /// UDP datagrams that came back per message (acknowledgements).
    pub acks_per_message: f64,
    /// Sender CPU microseconds per message.
    pub cpu_us_per_message: f64,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
}

/// A datagram limit that fits a 1500-byte Ethernet MTU over IPv4 (minus the
/// IP and UDP headers): a 1200-byte message then takes one datagram.
pub const ETHERNET_DATAGRAM_BYTES: usize = 1472;

/// One throughput row's set-up.
#[derive(Clone, Copy, Debug)]
struct Case {
    sender: Sender,
    size: usize,
    /// `TransportConfig::max_datagram_bytes` on both sides (default 1200).
    max_datagram: Option<usize>,
    /// `SocketConfig::batching` and `gso` on both sides.
    batching: bool,
    gso: bool,
    /// `SocketConfig::gro` on the receiving side (the server).
    gro: bool,
}

const fn case(sender: Sender, size: usize) -> Case {
    Case {
        sender,
        size,
        max_datagram: None,
        batching: true,
        gso: true,
        gro: false,
    }
}

/// The cases, in report order.
const CASES: [Case; 17] = [
    case(Sender::RawUdp, 64),
    case(Sender::FastnetEach, 64),
    case(Sender::FastnetBatched, 64),
    Case {
        batching: false,
        ..case(Sender::FastnetBatched, 64)
    },
    case(Sender::RawUdp, 1200),
    case(Sender::FastnetEach, 1200),
    Case {
        max_datagram: Some(ETHERNET_DATAGRAM_BYTES),
        ..case(Sender::FastnetEach, 1200)
    },
    Case {
        max_datagram: Some(ETHERNET_DATAGRAM_BYTES),
        ..case(Sender::FastnetBatched, 1200)
    },
    Case {
        max_datagram: Some(ETHERNET_DATAGRAM_BYTES),
        gro: true,
        ..case(Sender::FastnetBatched, 1200)
    },
    case(Sender::FastnetBig, BIG_MESSAGE_BYTES),
    Case {
        gro: true,
        ..case(Sender::FastnetBig, BIG_MESSAGE_BYTES)
    },
    Case {
        gso: false,
        ..case(Sender::FastnetBig, BIG_MESSAGE_BYTES)
    },
    Case {
        batching: false,
        gso: false,
        ..case(Sender::FastnetBig, BIG_MESSAGE_BYTES)
    },
    case(Sender::TokioEach, 64),
    case(Sender::TokioBig, BIG_MESSAGE_BYTES),
    Case {
        gro: true,
        ..case(Sender::TokioBig, BIG_MESSAGE_BYTES)
    },
    Case {
        batching: false,
        gso: false,
        ..case(Sender::TokioBig, BIG_MESSAGE_BYTES)
    },
];

/// Number of throughput rows (for progress).
pub const CASE_COUNT: usize = CASES.len();

fn label(c: &Case) -> String {
    let size = c.size;
    let mut label = match c.sender {
        Sender::RawUdp => format!("raw UDP, {size} B"),
        Sender::FastnetEach => {
            format!("FastNet unreliable, {size} B, `send_now` each, `service()` per 32")
        }
        Sender::FastnetBatched => {
            format!("FastNet unreliable, {size} B, `send` + `service()` per 32")
        }
        Sender::FastnetBig => "FastNet reliable-ordered, 1 MiB messages".to_string(),
        Sender::TokioEach => format!("FastNet Tokio unreliable, {size} B, `send` each"),
        Sender::TokioBig => "FastNet Tokio reliable-ordered, 1 MiB messages".to_string(),
    };
    if let Some(bytes) = c.max_datagram {
        label.push_str(&format!(", datagram limit {bytes}"));
    }
    match (c.batching, c.gso) {
        (false, _) => label.push_str(", batching off"),
        (true, false) => label.push_str(", GSO off"),
        _ if c.sender.is_big() => label.push_str(", batching and GSO on"),
        _ => {}
    }
    if c.gro {
        label.push_str(", receiver GRO on");
    }
    label
}

/// Every throughput row, `h.runs` times interleaved; each row reports its run
/// with the median rate.
pub fn measure(h: &Harness) -> Vec<ThroughputResult> {
    let mut runs: Vec<Vec<ThroughputResult>> = vec![Vec::new(); CASES.len()];
    for run in 0..h.runs {
        for (i, c) in CASES.iter().enumerate() {
            let label = label(c);
            h.progress
                .set_message(format!("throughput: {label} (run {}/{})", run + 1, h.runs));
            let (sender, size) = (c.sender, c.size);
            let result = measure_one(h, c).unwrap_or_else(|e| ThroughputResult {
                label: String::new(),
                sender,
                message_bytes: size,
                sent: 0,
                received: 0,
                messages_per_sec: 0.0,
                mb_per_sec: 0.0,
                datagrams_per_message: 0.0,
                acks_per_message: 0.0,
                cpu_us_per_message: 0.0,
                skipped: Some(format!("failed: {e}")),
            });
            runs[i].push(ThroughputResult { label, ..result });
            h.progress.inc(1);
        }
    }
    runs.into_iter()
        .map(|mut r| {
            r.sort_by(|a, b| a.messages_per_sec.total_cmp(&b.messages_per_sec));
            let ok: Vec<ThroughputResult> =
                r.iter().filter(|x| x.skipped.is_none()).cloned().collect();
            if ok.is_empty() {
                r.swap_remove(0)
            } else {
                ok[ok.len() / 2].clone()
            }
        })
        .collect()
}

/// Messages sent for a case.
fn message_count(h: &Harness, sender: Sender, size: usize) -> usize {
    match sender {
        Sender::FastnetBig | Sender::TokioBig => h.big_messages,
        _ if size > 256 => (h.throughput_messages / 4).max(1),
        _ => h.throughput_messages,
    }
}

/// What a row's sending side did.
struct Sent {
    /// UDP datagrams the sender sent, and received (acknowledgements).
    datagrams: u64,
    acks: u64,
    /// Sender CPU time over the send loop.
    cpu: Duration,
    /// 1 MiB rows: from the first send to the last acknowledgement.
    elapsed: Option<Duration>,
}

/// One throughput row.
fn measure_one(h: &Harness, c: &Case) -> BenchResult<ThroughputResult> {
    let (sender, size) = (c.sender, c.size);
    let count = message_count(h, sender, size);
    let (kind, mode) = match sender {
        Sender::RawUdp => (ServerKind::UdpSpin, Mode::Sink),
        Sender::FastnetBig => (ServerKind::FastnetSpin, Mode::Ack),
        Sender::TokioBig => (ServerKind::FastnetTokio, Mode::Ack),
        Sender::TokioEach => (ServerKind::FastnetTokio, Mode::Sink),
        Sender::FastnetEach | Sender::FastnetBatched => (ServerKind::FastnetSpin, Mode::Sink),
    };
    let mut args = Vec::new();
    if let Some(bytes) = c.max_datagram {
        args.push(format!("max-datagram={bytes}"));
    }
    if !c.batching {
        args.push("no-batching".to_string());
    }
    if !c.gso {
        args.push("no-gso".to_string());
    }
    if c.gro {
        args.push("gro".to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = ServerProcess::spawn(&h.exe, kind, mode, &args)?;
    let payload = vec![0x5Au8; size];
    let sent = match sender {
        Sender::RawUdp => send_raw(&mut server, count, &payload)?,
        Sender::TokioEach | Sender::TokioBig => send_tokio(&mut server, c, count, &payload)?,
        _ => send_game_loop(&mut server, c, count, &payload)?,
    };
    let received = server.report()?;
    let span = sent.elapsed.unwrap_or(received.span);
    let secs = span.as_secs_f64().max(1e-9);
    let n = count.max(1) as f64;
    Ok(ThroughputResult {
        label: String::new(),
        sender,
        message_bytes: size,
        sent: count as u64,
        received: received.messages,
        messages_per_sec: received.messages as f64 / secs,
        mb_per_sec: (received.messages as f64 * size as f64) / secs / 1e6,
        datagrams_per_message: sent.datagrams as f64 / n,
        acks_per_message: sent.acks as f64 / n,
        cpu_us_per_message: sent.cpu.as_secs_f64() * 1e6 / n,
        skipped: None,
    })
}

/// Lets the server start, then resets its counters.
fn settle(server: &mut ServerProcess) -> BenchResult<()> {
    std::thread::sleep(Duration::from_millis(20));
    server.report()?;
    Ok(())
}

/// Raw UDP: one `send` per message on a connected std socket; the datagrams
/// are what the kernel counted during the loop (the sink answers nothing).
fn send_raw(server: &mut ServerProcess, count: usize, payload: &[u8]) -> BenchResult<Sent> {
    let socket = raw_udp_socket(true)?;
    socket.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, server.port("udp")?)))?;
    settle(server)?;
    let kernel_before = UdpCounters::now();
    let cpu_before = process_cpu_time();
    for _ in 0..count {
        socket.send(payload)?;
    }
    let cpu = process_cpu_time().saturating_sub(cpu_before);
    let datagrams = UdpCounters::now().sent_since(&kernel_before);
    std::thread::sleep(DRAIN);
    Ok(Sent {
        datagrams,
        acks: 0,
        cpu,
        elapsed: None,
    })
}

/// The FastNet client's configuration for a case (either driver).
fn client_config(server: &ServerProcess, c: &Case) -> BenchResult<ClientConfig> {
    let mut config = fastnet_client_config(server, false)?;
    config.socket.batching = c.batching;
    config.socket.gso = c.gso;
    if let Some(bytes) = c.max_datagram {
        config.transport.set_max_datagram_bytes(bytes);
    }
    Ok(config)
}

/// The game-loop client, as the case says.
fn send_game_loop(
    server: &mut ServerProcess,
    c: &Case,
    count: usize,
    payload: &[u8],
) -> BenchResult<Sent> {
    let sender = c.sender;
    let config = client_config(server, c)?;
    let mut client = Client::connect("127.0.0.1", server.port("tcp")?, config)?;
    settle(server)?;
    let before = client.stats();
    let cpu_before = process_cpu_time();
    let started = Instant::now();
    let mut elapsed = None;
    if sender == Sender::FastnetBig {
        let (mut sent, mut acks) = (0usize, 0usize);
        let mut buf = Vec::new();
        let deadline = started + BIG_DEADLINE;
        while acks < count {
            if sent < count {
                match client.send(channels::RELIABLE_ORDERED, payload) {
                    Ok(()) => sent += 1,
                    Err(SendError::WouldBlock) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            client.service()?;
            while client.recv_into(&mut buf).is_some() {
                acks += 1;
            }
            if Instant::now() > deadline {
                return Err(unacknowledged(acks, count));
            }
        }
        elapsed = Some(started.elapsed());
    } else {
        for i in 0..count {
            loop {
                let r = if sender == Sender::FastnetEach {
                    client.send_now(channels::UNRELIABLE, payload)
                } else {
                    client.send(channels::UNRELIABLE, payload)
                };
                match r {
                    Ok(()) => break,
                    Err(SendError::WouldBlock) => client.service()?,
                    Err(e) => return Err(e.into()),
                }
            }
            if (i + 1) % 32 == 0 {
                client.service()?;
            }
        }
        client.service()?;
    }
    let cpu = process_cpu_time().saturating_sub(cpu_before);
    // Let the receiver drain; keep the client serviced meanwhile.
    let drain_end = Instant::now() + DRAIN;
    while Instant::now() < drain_end {
        client.service()?;
        std::thread::sleep(Duration::from_micros(200));
    }
    // Its own counts, including what it still had queued when its send loop
    // ended.
    let after = client.stats();
    client.disconnect(0);
    Ok(Sent {
        datagrams: after.packets_sent - before.packets_sent,
        acks: after.packets_received - before.packets_received,
        cpu,
        elapsed,
    })
}

/// The Tokio client (current-thread runtime), as the case says.
fn send_tokio(
    server: &mut ServerProcess,
    c: &Case,
    count: usize,
    payload: &[u8],
) -> BenchResult<Sent> {
    /// The server is peer 1 of a client.
    const SERVER: fastnet::net::PeerId = 1;
    let config = client_config(server, c)?;
    let tcp = server_addr(server, "tcp")?;
    let rt = current_thread()?;
    let socket = rt.block_on(SecureSocket::connect_with(tcp, config))?;
    settle(server)?;
    let stats = |socket: &SecureSocket| socket.peer_stats(SERVER).unwrap_or_default();
    let before = stats(&socket);
    let cpu_before = process_cpu_time();
    let started = Instant::now();
    let mut events = Vec::new();
    let elapsed = rt.block_on(async {
        let would_block = |e: &std::io::Error| e.kind() == std::io::ErrorKind::WouldBlock;
        if c.sender == Sender::TokioBig {
            let (mut sent, mut acks) = (0usize, 0usize);
            let deadline = started + BIG_DEADLINE;
            while acks < count {
                // Queue until the send queue is full, then poll for the
                // acknowledgements (`poll` transmits and retransmits too).
                while sent < count {
                    match socket
                        .send(SERVER, channels::RELIABLE_ORDERED, payload)
                        .await
                    {
                        Ok(()) => sent += 1,
                        Err(e) if would_block(&e) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, socket.poll_into(&mut events)).await {
                    Ok(r) => r?,
                    Err(_) => return Err(unacknowledged(acks, count)),
                };
                acks += events
                    .iter()
                    .filter(|e| matches!(e, SecureEvent::Data(..)))
                    .count();
            }
            return Ok(Some(started.elapsed()));
        }
        for i in 0..count {
            loop {
                match socket.send(SERVER, channels::UNRELIABLE, payload).await {
                    Ok(()) => break,
                    // The in-flight limit: let the driver read acknowledgements.
                    Err(e) if would_block(&e) => drive_once(&socket, &mut events).await?,
                    Err(e) => return Err(e.into()),
                }
            }
            if (i + 1) % 32 == 0 {
                drive_once(&socket, &mut events).await?;
            }
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(None)
    })?;
    let cpu = process_cpu_time().saturating_sub(cpu_before);
    // Let the receiver drain; keep the client's driver running meanwhile.
    rt.block_on(async {
        let _ = tokio::time::timeout(DRAIN, async {
            loop {
                let _ = socket.poll_into(&mut events).await;
            }
        })
        .await;
    });
    let after = stats(&socket);
    socket.disconnect(SERVER, 0);
    Ok(Sent {
        datagrams: after.packets_sent - before.packets_sent,
        acks: after.packets_received - before.packets_received,
        cpu,
        elapsed,
    })
}

/// One round of the Tokio driver's I/O without waiting: a `poll` polled
/// once (it reads, runs timers and transmits, then would wait) and dropped.
async fn drive_once(socket: &SecureSocket, events: &mut Vec<SecureEvent>) -> BenchResult<()> {
    let mut poll = std::pin::pin!(socket.poll_into(events));
    match std::future::poll_fn(|cx| Poll::Ready(poll.as_mut().poll(cx))).await {
        Poll::Ready(r) => r.map(drop).map_err(Into::into),
        Poll::Pending => Ok(()),
    }
}

/// How long a 1 MiB row may take.
const BIG_DEADLINE: Duration = Duration::from_secs(120);

fn unacknowledged(acks: usize, count: usize) -> Box<dyn std::error::Error + Send + Sync> {
    fail(format!(
        "1 MiB messages: {acks}/{count} acknowledged after {} s",
        BIG_DEADLINE.as_secs()
    ))
}
