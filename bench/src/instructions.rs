//! Instructions per round trip, counted by callgrind: where a round trip's
//! CPU work goes, in a number that the machine's load does not change.
//!
//! Each case runs a 64-byte ping-pong with both ends in one process on one
//! thread (the bench binary re-executed as `fastnet-bench probe <case>` under
//! `valgrind --tool=callgrind`), and counts only the measured round trips
//! (`--toggle-collect` on its `measured` function). Cases: raw UDP on loopback; the same
//! with FastNet's ChaCha20-Poly1305 on every datagram (the encryption floor);
//! FastNet's sans-IO protocol (client `Connection`, server `Endpoint`) with
//! the datagrams handed over in memory; the game-loop `Client`/`Server`; and
//! the Tokio driver. Every instruction executed in user space is attributed
//! by its source file (inlined code included) to a part: ring's AEAD,
//! FastNet's protocol, FastNet's drivers, Tokio, Rust's standard library,
//! libc (system-call wrappers, `memcpy`) or the harness. The kernel's work
//! (system calls, the network stack) is not counted: the round-trip tables
//! time it.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use fastnet::net::Endpoint;
use fastnet::{channels, Connection, TransportConfig};

use crate::alloc::{GameLoopPair, TokioPair};
use crate::floor::{Sealer, SANS_IO_SEED};
use crate::rtt::PING_BYTES;
use crate::{fail, BenchResult, Harness};

/// Where an instruction's source lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// ring's ChaCha20-Poly1305 (assembly and its Rust wrappers).
    Aead,
    /// FastNet's sans-IO protocol: `core/src` outside `net/`, and the server's
    /// `Endpoint` (`net/endpoint.rs`, `net/deadlines.rs`).
    Protocol,
    /// FastNet's drivers: the rest of `core/src/net/` (sockets, batching,
    /// `Client`, `Server`, `SecureSocket`).
    Drivers,
    /// Tokio and mio.
    Tokio,
    /// Rust's standard library code that no FastNet function inlined
    /// (`Instant::now`, `UdpSocket` calls, locks).
    Std,
    /// libc and the vDSO: system-call wrappers, clock reads, `memcpy`.
    Libc,
    /// The bench's own loop and anything else.
    Other,
}

impl Part {
    /// Every part, in report order.
    pub const ALL: [Part; 7] = [
        Part::Aead,
        Part::Protocol,
        Part::Drivers,
        Part::Tokio,
        Part::Std,
        Part::Libc,
        Part::Other,
    ];

    /// Column heading.
    pub fn label(self) -> &'static str {
        match self {
            Part::Aead => "ring AEAD",
            Part::Protocol => "FastNet protocol",
            Part::Drivers => "FastNet drivers",
            Part::Tokio => "Tokio, mio",
            Part::Std => "Rust std",
            Part::Libc => "libc, vDSO",
            Part::Other => "harness, other",
        }
    }
}

/// The measured cases, in report order.
pub const CASES: [(&str, &str); 6] = [
    ("udp", "raw UDP, blocking `send_to`/`recv_from`"),
    (
        "udp-tokio",
        "raw UDP through Tokio (current_thread), the echo in a task",
    ),
    (
        "floor",
        "raw UDP + ChaCha20-Poly1305 on every datagram (the encryption floor)",
    ),
    (
        "sansio",
        "FastNet's sans-IO protocol, datagrams handed over in memory (no socket)",
    ),
    (
        "gameloop",
        "FastNet game-loop `Client`/`Server`, unreliable, on loopback",
    ),
    (
        "tokio",
        "FastNet Tokio driver `SecureSocket` (`poll_into`), unreliable, on loopback",
    ),
];

/// Number of instruction rows.
pub const CASE_COUNT: usize = CASES.len();

/// The count of one case.
#[derive(Clone, Debug)]
pub struct InstrResult {
    /// Case ID (`probe` argument).
    pub case: &'static str,
    /// What ran.
    pub label: &'static str,
    /// Round trips counted.
    pub round_trips: u64,
    /// Instructions per round trip by part (both ends).
    pub parts: Vec<(Part, f64)>,
    /// Instructions per round trip by FastNet source file (`core/src/...`),
    /// largest first.
    pub fastnet_files: Vec<(String, f64)>,
    /// Bytes of code a round trip runs: the 64-byte lines holding an
    /// instruction executed on at least every other round trip (both ends,
    /// code they share counted once).
    pub hot_code_bytes: u64,
    /// The same, FastNet's protocol and drivers only.
    pub hot_fastnet_code_bytes: u64,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
}

impl InstrResult {
    /// All instructions per round trip.
    pub fn total(&self) -> f64 {
        self.parts.iter().map(|(_, n)| n).sum()
    }

    /// The `n` FastNet files with the most instructions per round trip, as
    /// "`path` count" items separated by commas (paths under `core/src/`).
    pub fn largest_files(&self, n: usize) -> String {
        self.fastnet_files
            .iter()
            .take(n)
            .map(|(f, count)| format!("`{}` {count:.0}", f.trim_start_matches("core/src/")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Instructions per round trip in one part.
    pub fn part(&self, part: Part) -> f64 {
        self.parts
            .iter()
            .find(|(p, _)| *p == part)
            .map_or(0.0, |(_, n)| *n)
    }
}

/// Counts every case, if valgrind is installed.
pub fn measure(h: &Harness) -> Vec<InstrResult> {
    let missing = valgrind_missing();
    let rounds = (h.rounds / 5).max(20);
    let warmup = h.warmup.clamp(10, 200);
    CASES
        .iter()
        .map(|&(case, label)| {
            h.progress
                .set_message(format!("instructions (callgrind): {label}"));
            let r = match &missing {
                Some(why) => Err(fail(why.clone())),
                None => count(&h.exe, case, warmup, rounds),
            };
            h.progress.inc(1);
            match r {
                Ok(mut r) => {
                    r.label = label;
                    r
                }
                Err(e) => InstrResult {
                    case,
                    label,
                    round_trips: 0,
                    parts: Vec::new(),
                    fastnet_files: Vec::new(),
                    hot_code_bytes: 0,
                    hot_fastnet_code_bytes: 0,
                    skipped: Some(e.to_string()),
                },
            }
        })
        .collect()
}

/// Why callgrind cannot run here, if it cannot.
fn valgrind_missing() -> Option<String> {
    match Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        _ => Some("not available: valgrind not installed".into()),
    }
}

/// Runs one case under callgrind and attributes its instructions.
fn count(exe: &Path, case: &'static str, warmup: usize, rounds: usize) -> BenchResult<InstrResult> {
    let out = std::env::temp_dir().join(format!(
        "fastnet-bench-callgrind-{}-{case}.out",
        std::process::id()
    ));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--collect-atstart=no")
        .arg("--toggle-collect=*fastnet_bench*instructions*measured*")
        .arg("--dump-instr=yes")
        .arg("--compress-strings=no")
        .arg("--compress-pos=no")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(["probe", case, &warmup.to_string(), &rounds.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    if !status.status.success() {
        let _ = std::fs::remove_file(&out);
        let err = String::from_utf8_lossy(&status.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty());
        return Err(fail(format!(
            "callgrind run failed: {}",
            last.unwrap_or("no output")
        )));
    }
    let file = std::fs::File::open(&out)?;
    // Code run on most round trips (at least every other one) is the code a
    // round trip needs; rarer paths (timers, keep-alives) are left out.
    let costs = parse(BufReader::new(file), (rounds as u64).div_ceil(2));
    let _ = std::fs::remove_file(&out);
    let costs = costs?;
    if costs.total == 0 {
        return Err(fail("callgrind counted nothing in the measured function"));
    }
    let per = |n: u64| n as f64 / rounds as f64;
    let parts = Part::ALL
        .iter()
        .map(|&p| (p, per(costs.parts.get(&p).copied().unwrap_or(0))))
        .collect();
    let mut fastnet_files: Vec<(String, f64)> = costs
        .fastnet_files
        .into_iter()
        .map(|(f, n)| (f, per(n)))
        .collect();
    fastnet_files.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(InstrResult {
        case,
        label: "",
        round_trips: rounds as u64,
        parts,
        fastnet_files,
        hot_code_bytes: costs.hot_lines.len() as u64 * CODE_LINE_BYTES,
        hot_fastnet_code_bytes: costs.hot_fastnet_lines.len() as u64 * CODE_LINE_BYTES,
        skipped: None,
    })
}

/// Bytes of an instruction cache line.
const CODE_LINE_BYTES: u64 = 64;

/// Instruction counts of one callgrind output, attributed.
#[derive(Debug, Default)]
struct Costs {
    total: u64,
    parts: HashMap<Part, u64>,
    /// FastNet's files, as `core/src/...`.
    fastnet_files: HashMap<String, u64>,
    /// Cache lines (object, address / 64) holding an instruction executed at
    /// least the hot count.
    hot_lines: HashSet<(usize, u64)>,
    /// The same, FastNet's (protocol and drivers).
    hot_fastnet_lines: HashSet<(usize, u64)>,
}

/// Reads a callgrind output written with `--compress-strings=no
/// --compress-pos=no` (one event, `Ir`; positions `line`, or `instr line`
/// with `--dump-instr=yes`): the self cost of every cost line, by the source
/// file it belongs to (`fi=`/`fe=` for inlined code, else the function's
/// `fl=`) and the function (`fn=`) and object (`ob=`) it runs in. The cost
/// line after a `calls=` line is the callee's inclusive cost and is skipped
/// (the callee's own lines count it). With instruction addresses, the cache
/// lines of instructions executed at least `hot` times are collected.
fn parse(input: impl BufRead, hot: u64) -> BenchResult<Costs> {
    let mut costs = Costs::default();
    let (mut ob, mut fl, mut file, mut func) = (String::new(), String::new(), None, String::new());
    // Objects by number, for the hot lines' keys.
    let mut objects: HashMap<String, usize> = HashMap::new();
    let mut ob_id = 0;
    let mut skip_next = false;
    // Attribution of the current (object, file, function), cached.
    let mut current: Option<(Part, Option<String>)> = None;
    for line in input.lines() {
        let line = line?;
        let Some(first) = line.bytes().next() else {
            continue;
        };
        if first.is_ascii_digit() || first == b'+' || first == b'-' || first == b'*' {
            if skip_next {
                skip_next = false;
                continue;
            }
            let mut fields = line.split_ascii_whitespace();
            let position = fields.next().unwrap_or("");
            let Some(ir) = fields.next_back().and_then(|c| c.parse::<u64>().ok()) else {
                continue;
            };
            let (part, fastnet_file) = current.get_or_insert_with(|| {
                let src = file.as_deref().unwrap_or(fl.as_str());
                (attribute(&ob, src, &func), fastnet_source(src))
            });
            costs.total += ir;
            *costs.parts.entry(*part).or_default() += ir;
            if let Some(f) = fastnet_file {
                *costs.fastnet_files.entry(f.clone()).or_default() += ir;
            }
            let address = position
                .strip_prefix("0x")
                .and_then(|a| u64::from_str_radix(a, 16).ok());
            if let Some(address) = address.filter(|_| ir >= hot) {
                let key = (ob_id, address / CODE_LINE_BYTES);
                costs.hot_lines.insert(key);
                if matches!(part, Part::Protocol | Part::Drivers) {
                    costs.hot_fastnet_lines.insert(key);
                }
            }
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line.as_str(), ""));
        match key {
            "ob" => {
                ob = value.to_string();
                let next = objects.len();
                ob_id = *objects.entry(ob.clone()).or_insert(next);
            }
            "fl" => {
                fl = value.to_string();
                file = None;
            }
            "fi" | "fe" => file = Some(value.to_string()),
            "fn" => {
                func = value.to_string();
                file = None;
            }
            "calls" => skip_next = true,
            _ => continue,
        }
        current = None;
    }
    Ok(costs)
}

/// `core/src/...` for a FastNet source file (not for the Rust library's
/// `library/core/src/`, nor a dependency's).
fn fastnet_source(file: &str) -> Option<String> {
    if file.contains("/rustc/") || file.contains("/library/core/") || file.contains("/registry/") {
        return None;
    }
    file.find("core/src/").map(|i| file[i..].to_string())
}

/// The part an instruction belongs to, from the object it is in, its source
/// file and the function it runs in.
fn attribute(object: &str, file: &str, function: &str) -> Part {
    if let Some(src) = fastnet_source(file) {
        return fastnet_part(&src);
    }
    if file.contains("/ring-") || function.contains("ring_core_") || function.starts_with("ring::")
    {
        return Part::Aead;
    }
    if file.contains("/tokio-") || file.contains("/mio-") {
        return Part::Tokio;
    }
    if object.contains("libc.so") || object.contains("vdso") || object.contains("ld-linux") {
        return Part::Libc;
    }
    if file.contains("/rustc/") {
        // Standard library code inlined into a function: the function's crate.
        let crate_path = function.trim_start_matches('<');
        return if let Some(i) = crate_path.find("fastnet::") {
            fastnet_part(&crate_path[i + "fastnet::".len()..].replace("::", "/"))
        } else if crate_path.starts_with("tokio::") || crate_path.starts_with("mio::") {
            Part::Tokio
        } else if crate_path.starts_with("fastnet_bench::") {
            Part::Other
        } else {
            Part::Std
        };
    }
    Part::Other
}

/// Protocol or drivers, from a path under FastNet's `src/` (or a module path
/// written with `/`).
fn fastnet_part(path: &str) -> Part {
    let path = path.trim_start_matches("core/src/");
    let is_protocol_in_net = path.starts_with("net/endpoint") || path.starts_with("net/deadlines");
    if path.starts_with("net/") && !is_protocol_in_net {
        Part::Drivers
    } else {
        Part::Protocol
    }
}

/// What callgrind counts: `f` run once, on this thread. Never inlined, so
/// `--toggle-collect` finds it by name.
#[inline(never)]
fn measured(f: &mut dyn FnMut() -> BenchResult<()>) -> BenchResult<()> {
    f()
}

/// `fastnet-bench probe <case> <warmup> <rounds>`: runs a case's warm-up, then
/// its measured round trips inside `measured`.
pub fn probe(args: &[String]) -> BenchResult<()> {
    let case = args.first().map(String::as_str).unwrap_or("");
    let number = |i: usize| -> BenchResult<usize> {
        Ok(args
            .get(i)
            .ok_or_else(|| fail("probe <case> <warmup> <rounds>"))?
            .parse()?)
    };
    let (warmup, rounds) = (number(1)?, number(2)?);
    let mut round_trips: Box<dyn FnMut(usize) -> BenchResult<()>> = match case {
        "udp" => {
            let mut pair = UdpPair::bind()?;
            Box::new(move |n| pair.round_trips(n, None))
        }
        "udp-tokio" => {
            let mut pair = TokioUdpPair::bind()?;
            Box::new(move |n| pair.round_trips(n))
        }
        "floor" => {
            let mut pair = UdpPair::bind()?;
            let mut sealers = (Sealer::client(), Sealer::server());
            Box::new(move |n| pair.round_trips(n, Some(&mut sealers)))
        }
        "sansio" => {
            let mut pair = SansIoPair::new()?;
            Box::new(move |n| pair.round_trips(n))
        }
        "gameloop" => {
            let mut pair = GameLoopPair::connect(channels::UNRELIABLE)?;
            Box::new(move |n| (0..n).try_for_each(|_| pair.round_trip()))
        }
        "tokio" => {
            let mut pair = TokioPair::connect_poll_into(channels::UNRELIABLE)?;
            Box::new(move |n| pair.round_trips(n))
        }
        _ => return Err(fail(format!("probe: unknown case {case:?}"))),
    };
    round_trips(warmup)?;
    measured(&mut || round_trips(rounds))
}

/// Two blocking UDP sockets on loopback, echoing to each other.
struct UdpPair {
    client: UdpSocket,
    server: UdpSocket,
    server_addr: SocketAddr,
    buf: [u8; 2048],
    out: [u8; 2048],
}

impl UdpPair {
    fn bind() -> BenchResult<Self> {
        let client = crate::server::raw_udp_socket(true)?;
        let server = crate::server::raw_udp_socket(true)?;
        let server_addr = server.local_addr()?;
        Ok(Self {
            client,
            server,
            server_addr,
            buf: [0; 2048],
            out: [0; 2048],
        })
    }

    /// `n` ping-pongs of 64 bytes; with `sealers` (client, server), each
    /// datagram is sealed by its sender and opened by its receiver.
    fn round_trips(
        &mut self,
        n: usize,
        mut sealers: Option<&mut (Sealer, Sealer)>,
    ) -> BenchResult<()> {
        let payload = [7u8; PING_BYTES];
        for _ in 0..n {
            let len = match sealers.as_deref_mut() {
                Some((client, _)) => client.seal(&payload, &mut self.out),
                None => {
                    self.out[..PING_BYTES].copy_from_slice(&payload);
                    PING_BYTES
                }
            };
            self.client.send_to(&self.out[..len], self.server_addr)?;
            let (n, from) = self.server.recv_from(&mut self.buf)?;
            let len = match sealers.as_deref_mut() {
                Some((_, server)) => {
                    let message = server
                        .open(&mut self.buf[..n])
                        .ok_or_else(|| fail("forged"))?;
                    let message: [u8; PING_BYTES] = message.try_into()?;
                    server.seal(&message, &mut self.out)
                }
                None => {
                    self.out[..n].copy_from_slice(&self.buf[..n]);
                    n
                }
            };
            self.server.send_to(&self.out[..len], from)?;
            let (n, _) = self.client.recv_from(&mut self.buf)?;
            if let Some((client, _)) = sealers.as_deref_mut() {
                client
                    .open(&mut self.buf[..n])
                    .ok_or_else(|| fail("forged"))?;
            }
        }
        Ok(())
    }
}

/// Two Tokio UDP sockets on loopback in one current-thread runtime: the
/// client awaits each echo, a task echoes.
struct TokioUdpPair {
    client: tokio::net::UdpSocket,
    server_addr: SocketAddr,
    buf: [u8; 2048],
    /// Dropped last, after the client's socket.
    rt: tokio::runtime::Runtime,
}

impl TokioUdpPair {
    fn bind() -> BenchResult<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (client, server_addr) = rt.block_on(async {
            let server = tokio::net::UdpSocket::from_std(crate::server::raw_udp_socket(false)?)?;
            let client = tokio::net::UdpSocket::from_std(crate::server::raw_udp_socket(false)?)?;
            let server_addr = server.local_addr()?;
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                while let Ok((n, from)) = server.recv_from(&mut buf).await {
                    if server.send_to(&buf[..n], from).await.is_err() {
                        break;
                    }
                }
            });
            BenchResult::Ok((client, server_addr))
        })?;
        Ok(Self {
            client,
            server_addr,
            buf: [0; 2048],
            rt,
        })
    }

    fn round_trips(&mut self, n: usize) -> BenchResult<()> {
        let payload = [7u8; PING_BYTES];
        let Self {
            client,
            server_addr,
            buf,
            rt,
        } = self;
        rt.block_on(async {
            for _ in 0..n {
                client.send_to(&payload, *server_addr).await?;
                client.recv_from(buf).await?;
            }
            Ok(())
        })
    }
}

/// A client `Connection` and a server `Endpoint` handing datagrams to each
/// other in memory, making the calls the drivers make per datagram.
struct SansIoPair {
    client: Connection,
    server: Endpoint,
    from: SocketAddr,
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    message: Vec<u8>,
}

impl SansIoPair {
    fn new() -> BenchResult<Self> {
        let config = Arc::new(TransportConfig::default());
        let (client_keys, server_keys) = fastnet::sim::session_keys_pair(SANS_IO_SEED);
        let now = Instant::now();
        let client = Connection::new(config.clone(), client_keys, now)?;
        let mut server = Endpoint::new(config);
        server.insert(server_keys, None, now)?;
        Ok(Self {
            client,
            server,
            from: SocketAddr::from(([127, 0, 0, 1], 5000)),
            to_server: vec![0; 2048],
            to_client: vec![0; 2048],
            message: Vec::new(),
        })
    }

    fn round_trips(&mut self, n: usize) -> BenchResult<()> {
        let payload = [7u8; PING_BYTES];
        for _ in 0..n {
            let now = Instant::now();
            self.client
                .send(channels::UNRELIABLE, &payload)
                .map_err(|e| fail(e.to_string()))?;
            let len = self
                .client
                .poll_transmit(now, &mut self.to_server)
                .ok_or_else(|| fail("no datagram"))?;
            while self
                .client
                .poll_transmit(now, &mut self.to_client)
                .is_some()
            {}
            let now = Instant::now();
            self.server
                .handle_datagram(now, self.from, &mut self.to_server[..len]);
            if self.server.poll_timeout().is_some_and(|t| t <= now) {
                self.server.handle_timeout(now);
            }
            while let Some((peer, channel)) = self.server.recv_into(&mut self.message) {
                self.server
                    .send(peer, channel, &self.message)
                    .map_err(|e| fail(e.to_string()))?;
            }
            let (_, len) = self
                .server
                .poll_transmit(now, &mut self.to_client)
                .ok_or_else(|| fail("no echo"))?;
            let now = Instant::now();
            self.client
                .handle_datagram(now, &mut self.to_client[..len])
                .map_err(|e| fail(format!("{e:?}")))?;
            if self.client.recv_into(&mut self.message).is_none() {
                return Err(fail("echo not delivered"));
            }
            if self.client.poll_timeout().is_some_and(|t| t <= now) {
                self.client.handle_timeout(now);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_costs_are_attributed_by_source_file_and_calls_are_not_counted_twice() {
        let out = "\
version: 1
events: Ir
ob=/bench
fl=/work/core/src/connection/transmit.rs
fn=fastnet::connection::Connection::transmit
10 100
fi=/root/.cargo/registry/src/x/ring-0.17.14/src/aead.rs
11 40
fe=/rustc/abc/library/core/src/num/uint_macros.rs
12 7
cfl=/work/core/src/net/io.rs
cfn=fastnet::net::io::UdpIo::send
calls=1 50
13 999
fl=/work/core/src/net/io.rs
fn=fastnet::net::io::UdpIo::send
50 30
ob=/usr/lib/x86_64-linux-gnu/libc.so.6
fl=???
fn=sendto
0 5
totals: 182
";
        let costs = parse(out.as_bytes(), 1).expect("parses");
        assert_eq!(costs.total, 182);
        assert_eq!(
            costs.parts[&Part::Protocol],
            107,
            "own lines and inlined std"
        );
        assert_eq!(costs.parts[&Part::Aead], 40);
        assert_eq!(costs.parts[&Part::Drivers], 30);
        assert_eq!(costs.parts[&Part::Libc], 5);
        assert_eq!(costs.fastnet_files["core/src/connection/transmit.rs"], 100);
        assert_eq!(costs.fastnet_files["core/src/net/io.rs"], 30);
        assert_eq!(
            costs.fastnet_files.len(),
            2,
            "the Rust library's core/src is not FastNet's"
        );
    }

    #[test]
    fn hot_code_is_the_cache_lines_of_instructions_run_often_enough() {
        let out = "\
positions: instr line
events: Ir
ob=/bench
fl=/work/core/src/connection/mod.rs
fn=fastnet::connection::Connection::handle_datagram
0x1000 10 4
0x1004 10 4
0x1040 11 4
0x1080 12 1
cfn=fastnet::net::io::UdpIo::send
calls=4 0x2000
0x1090 12 400
ob=/usr/lib/x86_64-linux-gnu/libc.so.6
fl=???
fn=sendto
0x1000 0 4
";
        let costs = parse(out.as_bytes(), 2).expect("parses");
        assert_eq!(costs.total, 17, "the call's inclusive cost is not counted");
        // 0x1000 and 0x1040 of the bench; 0x1080 ran once; libc's 0x1000 is
        // another object's line.
        assert_eq!(costs.hot_lines.len(), 3);
        assert_eq!(costs.hot_fastnet_lines.len(), 2);
    }

    #[test]
    fn the_endpoint_is_protocol_and_the_sockets_are_drivers() {
        assert_eq!(fastnet_part("core/src/net/endpoint.rs"), Part::Protocol);
        assert_eq!(fastnet_part("core/src/ack.rs"), Part::Protocol);
        assert_eq!(fastnet_part("core/src/net/batch.rs"), Part::Drivers);
        assert_eq!(
            attribute(
                "/bench",
                "/rustc/x/library/std/src/time.rs",
                "fastnet::net::client::Client::service"
            ),
            Part::Drivers
        );
        assert_eq!(
            attribute(
                "/bench",
                "/rustc/x/library/std/src/time.rs",
                "std::time::Instant::now"
            ),
            Part::Std
        );
    }
}
