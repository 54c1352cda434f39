//! `BENCHMARKS.md`: the machine, the command, every table with ratios to raw
//! UDP in the same I/O mode, and the targets of `shared/ANCHORS.md` with
//! met / missed.

use std::fmt::Write as _;

use crate::alloc::AllocResult;
use crate::crypto::CryptoResult;
use crate::handshake::HandshakeResult;
use crate::instructions::{InstrResult, Part};
use crate::memory::MemoryResult;
use crate::rtt::{RowResult, PING_BYTES, SERVICE_FOR_WAIT};
use crate::sys::{self, Machine};

use crate::throughput::{Sender, ThroughputResult};

/// Share of a spinning thread's time lost to pauses above which a report
/// warns that the run was noisy (this VM loses about 1.2 % when quiet).
const NOISY_RUN_LOST: f64 = 0.015;

/// An encryption floor faster than raw UDP by more than this (ratio of
/// p50s) means the raw UDP runs were held up.
const DISTURBED_FLOOR_RATIO: f64 = 0.97;

/// Everything one invocation measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// The command line.
    pub command: String,
    /// Warm-up round trips, measured round trips, runs.
    pub counts: (usize, usize, usize),
    /// Latency rows.
    pub rtt: Option<Vec<RowResult>>,
    /// Throughput rows.
    pub throughput: Option<Vec<ThroughputResult>>,
    /// Handshake rows.
    pub handshake: Option<Vec<HandshakeResult>>,
    /// AEAD rows.
    pub crypto: Option<Vec<CryptoResult>>,
    /// Allocation rows.
    pub alloc: Option<Vec<AllocResult>>,
    /// Memory rows.
    pub memory: Option<Vec<MemoryResult>>,
    /// Instruction rows (callgrind).
    pub instructions: Option<Vec<InstrResult>>,
    /// Chart files written (relative to `bench/charts/`).
    pub charts: Vec<String>,
}

/// A round trip split layer by layer (see `Report::notes`).
struct Layers {
    raw: f64,
    floor: f64,
    sans_io: Option<f64>,
    fast: f64,
    fast_to_raw: f64,
    fast_to_floor: f64,
    floor_to_raw: f64,
}

/// Targets from `shared/ANCHORS.md`.
const UNRELIABLE_P50_RATIO: f64 = 1.15;
const UNRELIABLE_P99_RATIO: f64 = 1.3;
const RELIABLE_P50_RATIO: f64 = 1.2;
const THROUGHPUT_FRACTION: f64 = 0.7;
const HANDSHAKE_P50_MS: f64 = 2.0;
const IDLE_CONNECTION_BYTES: f64 = 4096.0;

/// FastNet source files listed per instruction case.
const INSTRUCTION_FILES_SHOWN: usize = 8;

fn verdict(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**missed**"
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.digits$}"))
}

/// A time one layer adds, in µs with `digits` decimals, for the notes' prose.
/// Medians taken in different runs can put a layer slightly below the one
/// beneath it; what rounds to zero or below is said to be within the spread
/// rather than printed as a negative cost.
fn added_us(us: f64, digits: usize) -> String {
    if us * 10f64.powi(digits as i32) >= 0.5 {
        format!("{us:.digits$} µs")
    } else {
        format!("nothing measurable ({us:+.digits$} µs, within the run-to-run spread)")
    }
}

impl Report {
    /// A report of `machine` for `command`, with no section measured yet.
    pub fn new(machine: Machine, command: String, counts: (usize, usize, usize)) -> Self {
        Self {
            machine,
            command,
            counts,
            rtt: None,
            throughput: None,
            handshake: None,
            crypto: None,
            alloc: None,
            memory: None,
            instructions: None,
            charts: Vec::new(),
        }
    }

    /// The AEAD row of `backend` for `payload_bytes`, if measured.
    fn aead(&self, backend: &str, payload_bytes: usize) -> Option<&CryptoResult> {
        self.crypto
            .as_ref()?
            .iter()
            .find(|x| x.backend == backend && x.payload_bytes == payload_bytes)
    }

    fn row(&self, id: &str) -> Option<&RowResult> {
        self.rtt
            .as_ref()?
            .iter()
            .find(|r| r.row.id == id && r.skipped.is_none() && r.summary.count > 0)
    }

    /// `(p50 ratio, p99 ratio)` of a row to raw UDP in the same I/O mode.
    pub fn ratios(&self, r: &RowResult) -> Option<(f64, f64)> {
        self.ratios_to(r, r.row.mode.baseline())
    }

    /// `(p50 ratio, p99 ratio)` of a row to another: the median of the
    /// per-run ratios (runs are interleaved, so each run's pair saw the same
    /// machine state), or the ratio of the medians when runs are missing.
    pub fn ratios_to(&self, r: &RowResult, base: &str) -> Option<(f64, f64)> {
        let base = self.row(base)?;
        if r.runs.len() == base.runs.len() && !r.runs.is_empty() {
            let per_run = |f: fn(&crate::stats::Summary) -> f64| {
                crate::stats::median(
                    r.runs
                        .iter()
                        .zip(&base.runs)
                        .map(|(a, b)| f(a) / f(b))
                        .collect(),
                )
            };
            return Some((per_run(|x| x.p50), per_run(|x| x.p99)));
        }
        Some((
            r.summary.p50 / base.summary.p50,
            r.summary.p99 / base.summary.p99,
        ))
    }

    /// The encryption floor of an I/O mode: raw UDP with ChaCha20-Poly1305 on
    /// every datagram and no protocol (`floor`), measured in the same run.
    fn floor_row(&self, mode: crate::rtt::IoMode) -> Option<&RowResult> {
        let id = match mode {
            crate::rtt::IoMode::Blocking => "udp-aead-block",
            crate::rtt::IoMode::BusyPoll => "udp-aead-spin",
            crate::rtt::IoMode::Tokio => "udp-aead-tokio",
        };
        self.row(id)
    }

    /// Warns about modes whose raw UDP row ran slower than its encryption
    /// floor (raw UDP plus four AEAD calls): impossible unless the machine
    /// held up the raw UDP runs, in which case every ratio of that mode is
    /// flattered.
    fn disturbed_baselines(&self, s: &mut String) {
        use crate::rtt::IoMode;
        let disturbed: Vec<String> = [IoMode::BusyPoll, IoMode::Blocking, IoMode::Tokio]
            .into_iter()
            .filter_map(|mode| {
                let raw = self.row(mode.baseline())?;
                let floor = self.floor_row(mode)?;
                let ratio = self.ratios_to(floor, mode.baseline())?.0;
                (ratio < DISTURBED_FLOOR_RATIO).then(|| {
                    format!(
                        "`{}` p50 {:.1} µs against `{}` {:.1} µs ({ratio:.2}×)",
                        raw.row.id, raw.summary.p50, floor.row.id, floor.summary.p50
                    )
                })
            })
            .collect();
        if !disturbed.is_empty() {
            let _ = writeln!(
                s,
                "**Raw UDP was held up in this run:** {}. Raw UDP cannot be slower than itself plus four AEAD calls, \
                 so the machine slowed those runs down, and every ratio of that mode to raw UDP is flattered. Do not \
                 read that mode's targets from this run.\n",
                disturbed.join("; ")
            );
        }
    }

    /// The whole document.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(s, "# FastNet benchmarks\n");
        let _ = writeln!(
            s,
            "Generated by `fastnet-bench` (`bench/`); do not edit by hand. Re-run with `./ci/bench.sh` \
             (`cargo run --release -p fastnet-bench -- all`).\n"
        );
        let _ = writeln!(s, "| | |\n|---|---|");
        let _ = writeln!(s, "| date | {} |", m.date);
        let _ = writeln!(s, "| command | `{}` |", self.command);
        let _ = writeln!(s, "| CPU | {} ({} logical CPUs) |", m.cpu, m.cores);
        let _ = writeln!(s, "| kernel | Linux {} |", m.kernel);
        let _ = writeln!(
            s,
            "| compiler | {} (release profile: thin LTO, 1 codegen unit) |",
            m.rustc
        );
        let _ = writeln!(
            s,
            "| hardware counters | {} |",
            if m.perf_counters {
                "available to `perf`"
            } else {
                "not available (VM): profile with `perf record -e cpu-clock` or callgrind"
            }
        );
        let _ = writeln!(
            s,
            "| CPU idle | driver `{}`; {} |",
            m.cpuidle,
            if m.wake_latency_zero {
                "zero wake-up latency requested (`/dev/cpu_dma_latency` = 0) for the run: idle vCPUs poll instead of halting. \
                 Without it (`--no-pm-qos`) a blocking receive on an idle vCPU of this VM waits about 50 µs more per wake-up"
            } else {
                "idle CPUs may halt (no PM QoS request): blocking and tokio rows include the wake-up of halted vCPUs"
            }
        );
        if let Some(st) = m.stalls {
            let _ = writeln!(
                s,
                "| CPU pauses | a thread spinning on its CPU for 0.5 s lost it {:.0} times per second (gaps over {} µs between \
                 two clock reads), for {:.1} µs at the median and {:.0} µs at most: {:.2} % of the time. Every row sees \
                 them; they set the p99 of the shortest round trips (see the notes) |",
                st.per_second,
                sys::Stalls::THRESHOLD_NS / 1000,
                st.median_ns as f64 / 1e3,
                st.max_ns as f64 / 1e3,
                st.lost * 100.0
            );
        }
        let (warmup, rounds, runs) = self.counts;
        let _ = writeln!(
            s,
            "| latency method | loopback, client and server in two processes, {PING_BYTES}-byte ping-pong, one message in flight, \
             {warmup} warm-up then {rounds} measured round trips per run, {runs} interleaved run(s); medians of the runs' percentiles |\n"
        );
        let _ = writeln!(
            s,
            "Absolute times drift by tens of percent on this shared 2-vCPU machine: read the **ratios to raw UDP measured in \
             the same run and the same I/O mode**.\n"
        );
        if let Some(st) = m.stalls.filter(|st| st.lost > NOISY_RUN_LOST) {
            let _ = writeln!(
                s,
                "**This run was noisy.** The machine took {:.1} % of a spinning thread's time in pauses of {:.0} µs at the \
                 median (over {:.1} % is unusual here): rows that should agree (unreliable and reliable, FastNet and its \
                 floor) can disagree by more than their real difference. Compare builds with interleaved runs of both \
                 (`--rows`) before drawing conclusions from one report.\n",
                st.lost * 100.0,
                st.median_ns as f64 / 1e3,
                NOISY_RUN_LOST * 100.0
            );
        }
        self.disturbed_baselines(&mut s);
        self.targets(&mut s);
        self.latency(&mut s);
        self.throughput_section(&mut s);
        self.handshake_section(&mut s);
        self.crypto_section(&mut s);
        self.alloc_section(&mut s);
        self.memory_section(&mut s);
        self.instructions_section(&mut s);
        self.notes(&mut s);
        if !self.charts.is_empty() {
            let _ = writeln!(s, "## Charts\n");
            for c in &self.charts {
                let _ = writeln!(s, "![{c}](bench/charts/{c})\n");
            }
        }
        s
    }

    /// One instruction-count case, if it ran.
    fn instr(&self, case: &str) -> Option<&InstrResult> {
        self.instructions
            .as_ref()?
            .iter()
            .find(|r| r.case == case && r.skipped.is_none())
    }

    /// The protocol's instructions per round trip, from the callgrind table
    /// (or how to count them).
    fn protocol_instructions(&self) -> String {
        let (Some(sans_io), Some(floor)) = (self.instr("sansio"), self.instr("floor")) else {
            return "count its instructions with `fastnet-bench instructions` (callgrind)".into();
        };
        let top = sans_io.largest_files(3);
        format!(
            "callgrind counts {:.0} instructions per round trip in it for both ends together (sans-IO case of the \
             instructions table; the largest files: {top}), beside {:.0} in ring's four AEAD calls; the encryption \
             floor's whole loop, system-call wrappers included, executes {:.0}",
            sans_io.part(Part::Protocol),
            sans_io.part(Part::Aead),
            floor.total()
        )
    }

    /// The Tokio driver's instructions per round trip against raw Tokio and
    /// the game loop, from the callgrind table (or how to count them).
    fn tokio_instructions(&self) -> String {
        let (Some(tokio), Some(raw), Some(game), Some(sans_io)) = (
            self.instr("tokio"),
            self.instr("udp-tokio"),
            self.instr("gameloop"),
            self.instr("sansio"),
        ) else {
            return "Count its instructions with `fastnet-bench instructions` (callgrind)".into();
        };
        let beyond = |r: &InstrResult| r.total() - sans_io.total();
        format!(
            "Counted by callgrind (instructions table, both ends), a Tokio round trip executes {:.0} instructions: \
             {:.0} more than the sans-IO protocol alone, of which {:.0} in FastNet's drivers and {:.0} in Tokio \
             (a raw Tokio UDP echo executes {:.0} in all, {:.0} of them in Tokio); the game-loop drivers add {:.0} to \
             the sans-IO protocol",
            tokio.total(),
            beyond(tokio),
            tokio.part(Part::Drivers),
            tokio.part(Part::Tokio),
            raw.total(),
            raw.part(Part::Tokio),
            beyond(game)
        )
    }

    /// The code a round trip runs, from the callgrind table, as a sentence
    /// (empty without it).
    fn code_footprint(&self) -> String {
        let (Some(sans_io), Some(floor)) = (self.instr("sansio"), self.instr("floor")) else {
            return String::new();
        };
        let fastnet = sans_io.part(Part::Protocol) + sans_io.part(Part::Drivers);
        format!(
            " The instructions table counts that code: a round trip runs {:.1} KiB of FastNet's code (both ends \
             together) for {:.0} of FastNet's instructions, {:.1} bytes of code per instruction executed, so nearly \
             every one of those instructions runs once per round trip and the code to fetch again after a sleep \
             shrinks only with the instructions themselves; the encryption floor's whole loop, AEAD included, runs \
             {:.1} KiB.",
            sans_io.hot_fastnet_code_bytes as f64 / 1024.0,
            fastnet,
            sans_io.hot_fastnet_code_bytes as f64 / fastnet.max(1.0),
            floor.hot_code_bytes as f64 / 1024.0
        )
    }

    /// What would close the gap of a mode whose round trips sleep, from the
    /// callgrind table (empty without it).
    fn what_closes_cold_gap(&self, case: &str) -> String {
        let (Some(r), Some(floor)) = (self.instr(case), self.instr("floor")) else {
            return String::new();
        };
        let fastnet = r.part(Part::Protocol) + r.part(Part::Drivers);
        let largest = r.largest_files(1);
        format!(
            " What would close the rest is a round trip that runs less of FastNet's code: {:.0} instructions and \
             {:.1} KiB of code per round trip in this mode (both ends; instructions table), against {:.1} KiB for the \
             encryption floor's whole loop. They are spread over the protocol's and the driver's files (the largest: \
             {largest}), so there is no single hot spot to remove: every step of a round trip has to get shorter.",
            fastnet,
            r.hot_fastnet_code_bytes as f64 / 1024.0,
            floor.hot_code_bytes as f64 / 1024.0
        )
    }

    fn notes(&self, s: &mut String) {
        let mut notes: Vec<String> = Vec::new();
        let p50 = |id: &str| self.row(id).map(|r| r.summary.p50);
        // Raw UDP, then encryption alone, then FastNet's protocol without its
        // drivers, then FastNet: what each layer adds, per I/O mode.
        // Each layer is what it adds within a run (the median over the runs),
        // so that a machine that changed speed between runs is not counted
        // as a layer; the ratios are the targets table's (medians of the
        // per-run ratios).
        let layers = |raw: &str, floor: &str, sans_io: Option<&str>, fast: &str| {
            let (raw_row, floor_row, fast_row) =
                (self.row(raw)?, self.row(floor)?, self.row(fast)?);
            let sans_io_row = sans_io.and_then(|id| self.row(id));
            let added = |upper: &RowResult, lower: &RowResult| {
                if upper.runs.len() == lower.runs.len() && !upper.runs.is_empty() {
                    crate::stats::median(
                        upper
                            .runs
                            .iter()
                            .zip(&lower.runs)
                            .map(|(u, l)| u.p50 - l.p50)
                            .collect(),
                    )
                } else {
                    upper.summary.p50 - lower.summary.p50
                }
            };
            let raw_p50 = raw_row.summary.p50;
            let floor_p50 = raw_p50 + added(floor_row, raw_row);
            let (sans_io_p50, fast_p50) = match sans_io_row {
                Some(sio) => {
                    let sio_p50 = floor_p50 + added(sio, floor_row);
                    (Some(sio_p50), sio_p50 + added(fast_row, sio))
                }
                None => (None, floor_p50 + added(fast_row, floor_row)),
            };
            Some(Layers {
                raw: raw_p50,
                floor: floor_p50,
                sans_io: sans_io_p50,
                fast: fast_p50,
                fast_to_raw: self.ratios_to(fast_row, raw)?.0,
                fast_to_floor: self.ratios_to(fast_row, floor)?.0,
                floor_to_raw: self.ratios_to(floor_row, raw)?.0,
            })
        };
        let split = |l: &Layers| {
            let method = "each layer is the median over the runs of what it adds within its run, from the raw UDP \
                          row's median p50";
            match l.sans_io {
                Some(sans_io) => format!(
                    "raw UDP {:.1} µs; with ChaCha20-Poly1305 on every datagram and nothing else (the encryption \
                     floor) {:.1} µs; with FastNet's protocol as well, driven by the same raw loops (sans-IO row) \
                     {sans_io:.1} µs; FastNet {:.1} µs ({method}). Encryption adds {}, the protocol {} \
                     and the drivers {}: FastNet is {:.2}× raw UDP and {:.2}× its floor (medians of the \
                     per-run ratios)",
                    l.raw,
                    l.floor,
                    l.fast,
                    added_us(l.floor - l.raw, 1),
                    added_us(sans_io - l.floor, 1),
                    added_us(l.fast - sans_io, 1),
                    l.fast_to_raw,
                    l.fast_to_floor
                ),
                None => format!(
                    "raw UDP {:.1} µs; the encryption floor {:.1} µs; FastNet {:.1} µs ({method}): encryption adds \
                     {}, FastNet's protocol and driver {}, so FastNet is {:.2}× raw UDP and {:.2}× its \
                     floor (medians of the per-run ratios)",
                    l.raw,
                    l.floor,
                    l.fast,
                    added_us(l.floor - l.raw, 1),
                    added_us(l.fast - l.floor, 1),
                    l.fast_to_raw,
                    l.fast_to_floor
                ),
            }
        };
        let aead = self
            .aead(crate::crypto::RING, PING_BYTES)
            .map(|x| format!(" (a seal and an open of a 64-byte packet take {:.2} µs together in a hot loop, AEAD table)", x.seal_open_ns / 1e3))
            .unwrap_or_default();
        if let Some(l) = layers(
            "udp-spin",
            "udp-aead-spin",
            Some("fastnet-sansio-spin"),
            "fastnet-unrel-spin",
        ) {
            let floor_ratio = l.floor_to_raw;
            let seal_open = |backend: &str| self.aead(backend, PING_BYTES).map(|x| x.seal_open_ns);
            let aes = match (
                seal_open(crate::crypto::AES_GCM_REFERENCE),
                seal_open(crate::crypto::RING),
            ) {
                (Some(aes), Some(chacha)) => {
                    // The floor's encryption share, priced at the other cipher.
                    let floor_aes = 1.0 + (floor_ratio - 1.0) * aes / chacha;
                    format!(
                        " On this CPU, ring's AES-128-GCM seals and opens a 64-byte packet in {aes:.0} ns against \
                         {chacha:.0} ns for its ChaCha20-Poly1305 (AEAD table, reference rows): the floor's encryption \
                         share priced at AES-128-GCM would put it near {:.2}× raw UDP. Offering AES-128-GCM as a \
                         negotiated alternative where the CPU has AES instructions, as TLS 1.3 and QUIC do, is a \
                         protocol change that the brief, which specifies ChaCha20-Poly1305 on every packet, would \
                         have to allow.",
                        floor_aes
                    )
                }
                _ => String::new(),
            };
            let verdict = if floor_ratio > UNRELIABLE_P50_RATIO {
                format!(
                    "four AEAD calls per round trip{aead} take more than the {UNRELIABLE_P50_RATIO}× target's \
                     margin over a busy-polling round trip this short, so on this machine no protocol that encrypts \
                     every datagram with ring's ChaCha20-Poly1305 meets that target in busy-poll mode (the reference \
                     lines of the targets table give each mode's floor; the blocking and Tokio round trips are long \
                     enough for the same four calls to fit). What would close it is a cheaper cipher or an AEAD off \
                     the critical path.{aes} Taking ChaCha20-Poly1305 off the critical path (keystreams computed for the \
                     next packet numbers while idle) is not something ring offers: it means composing ChaCha20 and \
                     Poly1305 outside ring, not a trade we make for a few hundred nanoseconds"
                )
            } else {
                format!("four AEAD calls per round trip{aead} fit within the {UNRELIABLE_P50_RATIO}× target here")
            };
            notes.push(format!(
                "**Busy-poll round trip, layer by layer.** {}. The floor alone is {:.2}× raw UDP: {verdict}. \
                 What FastNet adds beyond the floor is its own to cut, and is measured in two parts. \
                 The protocol (framing, ACK and loss bookkeeping, replay window, timers, the endpoint's tables): \
                 {protocol_instructions}. The drivers: a spinning `service()` reads with plain `recvfrom` until the socket is \
                 empty, so it makes raw UDP's system calls plus one empty read per datagram received (an empty \
                 `recvmmsg` costs about twice an empty `recvfrom` on this kernel, so `recvmmsg` batches start from \
                 the third datagram of a burst); the rest is the drivers' bookkeeping per call (clock reads, the \
                 lock, the connection's and endpoint's deadline and transmit checks) and the time to notice a \
                 datagram, which grows with each spin iteration's length.",
                split(&l),
                floor_ratio,
                protocol_instructions = self.protocol_instructions(),
            ));
        }
        if let (Some(st), Some(raw), Some(floor), Some(fast)) = (
            self.machine.stalls,
            self.row("udp-spin"),
            self.row("udp-aead-spin"),
            self.row("fastnet-unrel-spin"),
        ) {
            // Share of a row's round trips that took a pause's length more
            // than its median.
            let tail = |r: &RowResult| {
                let edge = r.summary.p50 * 1e3 + sys::Stalls::THRESHOLD_NS as f64;
                let slow = r.samples.iter().filter(|&&x| x as f64 > edge).count();
                100.0 * slow as f64 / r.samples.len().max(1) as f64
            };
            notes.push(format!(
                "**Busy-poll p99.** This machine pauses a thread that spins on its CPU {:.0} times per second, for \
                 {:.1} µs at the median (machine table). A busy-poll round trip is held up by a pause on either side during \
                 it, so a share of round trips take several microseconds more than the median: more than {} µs more \
                 for {:.2} % of raw UDP's, {:.2} % of the encryption floor's and {:.2} % of FastNet's round trips \
                 (p50 {:.1}, {:.1} and {:.1} µs; p99 {:.1}, {:.1} and {:.1} µs). Where that share is near or above \
                 1 %, the p99 falls among the paused round trips and measures the pauses rather than the protocol, \
                 and a few hundred nanoseconds more per round trip move it across that edge: the busy-poll p99 ratio \
                 swings from run to run for this reason.",
                st.per_second,
                st.median_ns as f64 / 1e3,
                sys::Stalls::THRESHOLD_NS / 1000,
                tail(raw),
                tail(floor),
                tail(fast),
                raw.summary.p50,
                floor.summary.p50,
                fast.summary.p50,
                raw.summary.p99,
                floor.summary.p99,
                fast.summary.p99,
            ));
        }
        let work = |id: &str| self.row(id).and_then(|r| r.work_ns);
        if let (Some(spin), Some(block)) =
            (work("fastnet-sansio-spin"), work("fastnet-sansio-block"))
        {
            let cost = if block > spin {
                format!(
                    " The code and data are the same: the difference, {:.2} µs on the client's side alone (the \
                     server does the same kind of work once per round trip), is what sleeping between datagrams \
                     costs this work (caches and branch predictors lose its state while the process sleeps), and \
                     it only shrinks with the code and memory a round trip touches.{}",
                    (block - spin) / 1e3,
                    self.code_footprint()
                )
            } else {
                " In this run sleeping between datagrams did not make it slower.".to_string()
            };
            let server_work = |id: &str| self.row(id).and_then(|r| r.server_work_ns);
            let server = match (
                server_work("fastnet-sansio-spin"),
                server_work("fastnet-sansio-block"),
            ) {
                (Some(spin), Some(block)) => format!(
                    " The server's `Endpoint`, timed the same way per datagram it answers (from the receive's \
                     return to the answer built and sealed, before its send; warm-up included): {:.2} µs busy-polling, \
                     {:.2} µs blocking{}.",
                    spin / 1e3,
                    block / 1e3,
                    server_work("fastnet-sansio-tokio")
                        .map(|t| format!(", {:.2} µs with Tokio", t / 1e3))
                        .unwrap_or_default()
                ),
                _ => String::new(),
            };
            let tokio = work("fastnet-sansio-tokio")
                .map(|t| format!(", {:.2} µs in the Tokio loop", t / 1e3))
                .unwrap_or_default();
            let hot = self
                .aead(crate::crypto::RING, PING_BYTES)
                .map(|x| format!(" (a seal and an open of a 64-byte packet take {:.2} µs together in a hot loop)", x.seal_open_ns / 1e3))
                .unwrap_or_default();
            notes.push(format!(
                "**The same work, warm and cold.** The sans-IO client rows time the client's own protocol work per \
                 round trip (queueing the message, building and sealing its datagram, then opening the answer and \
                 taking its message out: two AEAD calls{hot} and the protocol's bookkeeping, no system call): \
                 {:.2} µs in the busy-poll loop, {:.2} µs in the blocking loop{tokio}.{cost}{server}",
                spin / 1e3,
                block / 1e3,
            ));
        }
        if let Some(l) = layers(
            "udp-block",
            "udp-aead-block",
            Some("fastnet-sansio-block"),
            "fastnet-unrel-block",
        ) {
            let short = p50("fastnet-unrel-block-1ms")
                .map(|x| format!(
                    " With `service_for(1 ms)` (`fastnet-unrel-block-1ms`) the p50 is {x:.1} µs: the client's whole wait \
                     is then a `ppoll` shorter than the kernel tick (4 ms at this kernel's `CONFIG_HZ=250`), whose \
                     high-resolution timer is the CPU's next event, and programming and cancelling it costs this VM a \
                     hypervisor exit each. Longer waits cost nothing extra, which is why the README suggests a frame."
                ))
                .unwrap_or_default();
            notes.push(format!(
                "**Blocking round trip, layer by layer** (`service_for({} ms)`). {}. After each wake-up the protocol's \
                 work runs with cold caches and costs more than in busy-poll mode (the note on warm and cold work \
                 measures the client's share of that).{} Client and server \
                 sleep in a blocking `recvfrom` whose timeout (`SO_RCVTIMEO`, counted in kernel ticks) ends at \
                 least a tick before their deadline, then in a precise `ppoll` for the rest: a datagram that comes \
                 first is received by the wait itself, so each side makes raw UDP's system calls plus the empty \
                 read that proves the socket drained. The server can wait on its UDP socket alone because its TCP \
                 handshakes run on a thread of their own, which wakes it with an empty datagram when a session is \
                 ready.{short}",
                crate::rtt::SERVICE_FOR_WAIT.as_millis(),
                split(&l),
                self.what_closes_cold_gap("gameloop"),
            ));
        }
        if let Some(l) = layers(
            "udp-tokio",
            "udp-aead-tokio",
            Some("fastnet-sansio-tokio"),
            "fastnet-unrel-tokio",
        ) {
            notes.push(format!(
                "**Tokio round trip, layer by layer.** {}. A client's socket is connected to the server, so each side \
                 makes a plain Tokio echo's system calls (wake, receive, send, an empty receive, wait). On top of the \
                 protocol's work the driver runs one `select!` per wait (socket readiness, the next protocol deadline \
                 on a timer kept registered between waits, and a poke that another task's `send` gives when it moves \
                 the deadline: a counter, and one registered waker per `poll` call), takes its lock and \
                 hands each message over through the event vector. {}; like the protocol it runs with cold caches \
                 after each wake-up.{}",
                split(&l),
                self.tokio_instructions(),
                self.what_closes_cold_gap("tokio"),
            ));
        }
        if let (Some(spin), Some(busy), Some(block)) = (
            p50("udp-spin"),
            p50("fastnet-unrel-busywait"),
            p50("fastnet-unrel-block"),
        ) {
            notes.push(format!(
                "**Budgeted busy-poll.** `SocketConfig::busy_wait` (50 µs here, both sides) makes `service_for` spin on \
                 the socket before sleeping: p50 {busy:.1} µs against {block:.1} µs without it, and {spin:.1} µs for \
                 raw UDP spinning. The spin ends as soon as a datagram arrives, so a server pays the processor only \
                 while traffic is expected."
            ));
        }
        if let Some(r) = self.row("fastnet-unrel-block") {
            let wait_ns = SERVICE_FOR_WAIT.as_nanos() as u64;
            let slept = r
                .samples
                .iter()
                .filter(|&&ns| ns >= wait_ns * 9 / 10)
                .count();
            if slept > 0 {
                notes.push(format!(
                    "**Missed wake-ups in `service_for`.** {:.2} % of `fastnet-unrel-block`'s round trips took at least \
                     0.9 × the {} ms `max_wait` (p99 {:.0} µs): one side slept through a datagram that had arrived \
                     until its wait timed out (blocking UDP never shows this on loopback). Worth a look: the `ppoll` \
                     wait of `UdpIo::wait` and what the server waits on while its answer is queued.",
                    100.0 * slept as f64 / r.samples.len().max(1) as f64,
                    SERVICE_FOR_WAIT.as_millis(),
                    r.summary.p99
                ));
            }
        }
        if let (Some(rust), Some(capi)) = (p50("fastnet-unrel-spin"), p50("fastnet-unrel-capi")) {
            let reliable = match (p50("fastnet-rel-spin"), p50("fastnet-rel-capi")) {
                (Some(rust), Some(capi)) => {
                    format!(" (reliable-ordered: {capi:.1} µs against {rust:.1} µs)")
                }
                _ => String::new(),
            };
            notes.push(format!(
                "**C ABI.** The C ABI client's p50 is {capi:.1} µs against {rust:.1} µs for the Rust `Client` it wraps{reliable}. \
                 In process (`cargo run --release -p fastnet-capi --example call_cost`) the checked handle boundary \
                 (`catch_unwind`, registry lookup, handle lock) costs 20–45 ns per call and an empty \
                 `fastnet_client_poll` 60–80 ns more than an empty `Client::service`, with no allocation; the \
                 difference between the two rows is mostly the run-to-run spread. A poll after `fastnet_client_send` \
                 sends at once (without reading the socket again), so a send-then-poll loop loses no pass."
            ));
        }
        if let (Some(a), Some(b)) = (p50("fastnet-unrel-spin"), p50("fastnet-unrel-spin-ll")) {
            let verdict = if (a - b).abs() <= 0.2 * a {
                "within the run-to-run spread (see the p50 of each run)"
            } else if b < a {
                "faster here, but check the p50 of each run before crediting the options"
            } else {
                "slower here, but check the p50 of each run before blaming the options"
            };
            notes.push(format!(
                "**`SocketConfig::low_latency()`** (DSCP EF, `SO_BUSY_POLL` 100 µs, priority 6, 8 MiB buffers): p50 \
                 {a:.1} µs default, {b:.1} µs low-latency, {verdict}. On loopback there is no NIC queue for busy polling to \
                 spin on, and DSCP and priority only matter on congested links."
            ));
        }
        if let Some(hs) = &self.handshake {
            let find = |prefix: &str| {
                hs.iter()
                    .find(|h| h.label.starts_with(prefix) && h.skipped.is_none())
            };
            let game =
                find("FastNet `Client::connect` (TCP + TLS 1.3 + first UDP answer), server in");
            let spinning = find(
                "FastNet `Client::connect` (TCP + TLS 1.3 + first UDP answer), server spinning",
            );
            let tokio = find("FastNet Tokio");
            let quinn = find("quinn");
            if let (Some(g), Some(sp), Some(t), Some(q)) = (game, spinning, tokio, quinn) {
                notes.push(format!(
                    "**Handshake.** `Client::connect` takes {:.2} ms at p50 and {:.1} ms at p99 against a game-loop \
                     server sleeping in `service_for` between frames, {:.2} ms and {:.1} ms against one spinning in \
                     `service()` (its game thread then keeps one of the machine's CPUs busy); the Tokio driver (client \
                     and server) {:.2} ms and {:.1} ms; quinn {:.2} ms and {:.1} ms. A game-loop server runs its \
                     handshakes on a thread of its own, which answers each TLS flight as it arrives and hands the \
                     finished session to the game thread, ringing an empty datagram on the server's UDP socket to wake \
                     it. The client's first UDP datagram usually overtakes that hand-over: the server keeps a few such \
                     datagrams while handshakes are in flight and delivers them when the session comes in, instead of \
                     waiting for the client's retry (after 250 µs, then doubling). The CPU work is the same as quinn's \
                     (TLS 1.3 with ECDSA P-256 and X25519 in both); the waits are not: a FastNet connect waits for the \
                     server three times (TCP's SYN-ACK, the server's TLS flight with its parameters, then the first \
                     UDP answer, which also waits for the handshake thread to hand the session over) where quinn's \
                     waits for one flight, so on a loaded machine, where every wait for another process or thread to \
                     run takes longer (CPU pauses, machine table), FastNet's connect slows down more than quinn's. \
                     What would close that gap is a handshake carried in the UDP datagrams themselves (no TCP round \
                     trip, no hand-over), the direction of the brief's 0-RTT reconnect.",
                    g.summary.p50 / 1e3,
                    g.summary.p99 / 1e3,
                    sp.summary.p50 / 1e3,
                    sp.summary.p99 / 1e3,
                    t.summary.p50 / 1e3,
                    t.summary.p99 / 1e3,
                    q.summary.p50 / 1e3,
                    q.summary.p99 / 1e3
                ));
            }
        }
        if let Some(a) = self.alloc.as_ref().and_then(|a| {
            a.iter()
                .find(|x| x.label.starts_with("Tokio") && !x.target && x.skipped.is_none())
        }) {
            if a.allocations > 0 {
                notes.push(format!(
                    "**Tokio driver allocations with `poll()`** ({:.1} per packet) come from that simple API: it \
                     returns a new `Vec<SecureEvent>` and every `SecureEvent::Data` owns a new `Vec<u8>`. \
                     `poll_into(&mut events)`, the same call on a vector the caller keeps, hands the message buffers \
                     back to the connections (as the game-loop drivers' `recv_into` does) and allocates nothing.",
                    a.per_packet()
                ));
            }
        }
        if let Some(mem) = &self.memory {
            let inline = mem
                .iter()
                .find(|m| m.method.starts_with("`size_of::<Connection>"));
            let key = mem
                .iter()
                .find(|m| m.method.starts_with("`size_of::<PacketKey>"));
            if let (Some(i), Some(k)) = (
                inline.and_then(|m| m.heap_per_client),
                key.and_then(|m| m.heap_per_client),
            ) {
                notes.push(format!(
                    "**Memory per connection.** A `Connection` is {i:.0} bytes inline, boxed in the endpoint's peer \
                     table (a free slot of the table costs 16 bytes, not a connection). Of that, {:.0} bytes are the \
                     two `PacketKey`s used on every packet (current send and receive keys, {k:.0} bytes each: ring's \
                     `LessSafeKey`, sized for any of ring's algorithms); the next and previous receive keys are kept as \
                     their 32 raw bytes and expanded on the stack when a packet needs them. The rest of an idle \
                     connection is its channel tables and one sent-packet ring on the heap; a connection idle for four \
                     keep-alive intervals also frees the buffers and queue capacity its traffic left behind.",
                    2.0 * k
                ));
            }
        }
        if let Some(tp) = &self.throughput {
            let small = |sender: Sender| {
                tp.iter().find(|t| {
                    t.sender == sender
                        && t.message_bytes == PING_BYTES
                        && !t.label.contains("batching off")
                        && t.skipped.is_none()
                })
            };
            let seal_64 = self
                .aead(crate::crypto::RING, PING_BYTES)
                .map(|x| x.seal_ns / 1e3);
            if let (Some(raw), Some(each), Some(batched), Some(seal)) = (
                small(Sender::RawUdp),
                small(Sender::FastnetEach),
                small(Sender::FastnetBatched),
                seal_64,
            ) {
                let share = |t: &ThroughputResult| {
                    100.0 * t.messages_per_sec / raw.messages_per_sec.max(1e-9)
                };
                let raw_us = raw.cpu_us_per_message;
                notes.push(format!(
                    "**64-byte messages, one datagram each** (`send_now`): FastNet reaches {:.0} % of raw UDP's \
                     messages/s. The sender is bound by its CPU: raw UDP's spends {raw_us:.2} µs per message and a \
                     64-byte seal takes {seal:.2} µs (AEAD table), so a sender that added only the seal would reach \
                     {:.0} %; FastNet's spends {:.2} µs. What it spends beyond raw UDP and the seal, {}, is the \
                     protocol's and the driver's work per datagram: queueing the message, building its frame and header, the \
                     sent-packet record, and the acknowledgements that come back ({:.2} datagrams per message). \
                     Sending a datagram per message is the slow way to stream: `send` then one \
                     `service()` per batch packs many messages into each datagram, and reaches {:.0} % of raw UDP's \
                     messages/s here.",
                    share(each),
                    100.0 * raw_us / (raw_us + seal),
                    each.cpu_us_per_message,
                    added_us(each.cpu_us_per_message - raw_us - seal, 2),
                    each.acks_per_message,
                    share(batched)
                ));
            }
            let each = tp.iter().find(|t| {
                t.sender == Sender::FastnetEach && t.message_bytes == 1200 && t.skipped.is_none()
            });
            let raw = tp.iter().find(|t| {
                t.sender == Sender::RawUdp && t.message_bytes == 1200 && t.skipped.is_none()
            });
            let ethernet = tp.iter().find(|t| {
                t.sender == Sender::FastnetEach
                    && t.message_bytes == 1200
                    && t.label.contains("datagram limit")
                    && t.skipped.is_none()
            });
            if let (Some(e), Some(r)) = (each, raw) {
                let seal_of = |backend: &str| self.aead(backend, 1200).map(|x| x.seal_ns);
                let seal_ns = seal_of(crate::crypto::RING);
                let aes_seal_1200 = seal_of(crate::crypto::AES_GCM_REFERENCE);
                let one = ethernet
                    .map(|x| {
                        // A sender bound by its CPU that did raw UDP's work plus
                        // one seal per message: the encryption ceiling.
                        let ceiling = seal_ns
                            .map(|seal| {
                                let raw_us = r.cpu_us_per_message;
                                format!(
                                    " That sender is bound by its CPU: raw UDP's spends {raw_us:.2} µs per message and \
                                     sealing 1200 bytes takes {:.2} µs more (AEAD table), so a sender that added nothing \
                                     but the seal would reach {:.0} % of raw UDP's rate, the encryption ceiling of a \
                                     sender that makes a system call per datagram, as this row and raw UDP do; \
                                     FastNet's spends {:.2} µs per message.{}",
                                    seal / 1e3,
                                    100.0 * raw_us / (raw_us + seal / 1e3),
                                    x.cpu_us_per_message,
                                    aes_seal_1200
                                        .map(|aes| format!(
                                            " Only a cheaper cipher would lift that ceiling: ring's AES-128-GCM seals \
                                             1200 bytes in {:.2} µs on this CPU (AEAD table, reference row), a ceiling \
                                             of {:.0} %.",
                                            aes / 1e3,
                                            100.0 * raw_us / (raw_us + aes / 1e3)
                                        ))
                                        .unwrap_or_default()
                                )
                            })
                            .unwrap_or_default();
                        format!(
                            " With a 1472-byte limit (a 1500-byte MTU path, set on both sides) a 1200-byte message is one \
                             datagram and FastNet reaches {:.0} % of raw UDP's messages/s.{ceiling}",
                            100.0 * x.messages_per_sec / r.messages_per_sec.max(1e-9)
                        )
                    })
                    .unwrap_or_default();
                let batched = |gro: bool| {
                    tp.iter().find(|t| {
                        t.sender == Sender::FastnetBatched
                            && t.message_bytes == 1200
                            && t.label.contains("GRO") == gro
                            && t.skipped.is_none()
                    })
                };
                let offload = match (batched(false), batched(true)) {
                    (Some(b), Some(g)) => {
                        let share = |t: &ThroughputResult| {
                            100.0 * t.messages_per_sec / r.messages_per_sec.max(1e-9)
                        };
                        let latency = match (
                            self.row("fastnet-unrel-spin").map(|x| x.summary.p50),
                            self.row("fastnet-unrel-spin-gro").map(|x| x.summary.p50),
                        ) {
                            (Some(off), Some(on)) => format!(
                                " (round trip p50 {on:.1} µs with it, {off:.1} µs without: \
                                 `fastnet-unrel-spin-gro` against `fastnet-unrel-spin`)"
                            ),
                            _ => String::new(),
                        };
                        format!(
                            " The `send` rows hand a service pass's datagrams to the kernel together (`sendmmsg`, and \
                             with UDP GSO one buffer per run of equal-sized datagrams), so their kernel cost per \
                             datagram falls below raw UDP's `sendto` and that ceiling does not bind them: {:.0} % of raw \
                             UDP's messages/s, the sender spending {:.2} µs per message. Loopback splits a GSO buffer \
                             back into datagrams at the receiving socket, on the sender's processor; with \
                             `SocketConfig::gro` on the receiver the run reaches the receiving process as one buffer, \
                             which FastNet splits itself: {:.0} %, {:.2} µs per message. GRO is off by default because \
                             every receive then becomes a `recvmsg` with a control buffer, which costs latency{latency}.",
                            share(b),
                            b.cpu_us_per_message,
                            share(g),
                            g.cpu_us_per_message
                        )
                    }
                    _ => String::new(),
                };
                notes.push(format!(
                    "**1200-byte messages** are two datagrams each in FastNet with the default datagram limit (1200 bytes, \
                     headers and tag included, safe on any Internet path), so FastNet moves {:.0} datagrams/s against raw \
                     UDP's {:.0}: per datagram it reaches {:.0} % of raw UDP.{one}{offload} Small messages share \
                     datagrams (the 64-byte rows), so messages/s can exceed raw UDP's.",
                    e.messages_per_sec * e.datagrams_per_message,
                    r.messages_per_sec,
                    100.0 * e.messages_per_sec * e.datagrams_per_message / r.messages_per_sec.max(1e-9)
                ));
            }
            // A 1 MiB row by what its label says, with or without the
            // receiver's GRO.
            let big_of = |sender: Sender, tag: &str, gro: bool| {
                tp.iter().find(|t| {
                    t.sender == sender
                        && t.label.contains(tag)
                        && t.label.contains("GRO") == gro
                        && t.skipped.is_none()
                })
            };
            let big = |tag: &str, gro: bool| big_of(Sender::FastnetBig, tag, gro);
            if let (Some(on), Some(no_gso), Some(off)) = (
                big("GSO on", false),
                big("GSO off", false),
                big("batching off", false),
            ) {
                notes.push(format!(
                    "**Batching and GSO on bulk transfers.** 1 MiB reliable messages: {:.0} MB/s with `sendmmsg` and UDP \
                     segmentation offload, {:.0} MB/s with `sendmmsg` alone, {:.0} MB/s with one system call per \
                     datagram; sender CPU {:.0}, {:.0} and {:.0} µs per message. With GSO a run of up to 64 fragments \
                     crosses the sending stack as one buffer (loopback splits it only at the receiving socket, on the \
                     sender's processor), so the saving is the sender's per-datagram kernel work, not just system \
                     calls.{}",
                    on.mb_per_sec,
                    no_gso.mb_per_sec,
                    off.mb_per_sec,
                    on.cpu_us_per_message,
                    no_gso.cpu_us_per_message,
                    off.cpu_us_per_message,
                    big("GSO on", true)
                        .map(|g| format!(
                            " With `SocketConfig::gro` on the receiver as well, {:.0} MB/s and {:.0} µs per message: \
                             the run stays one buffer all the way to the receiving process, which takes it in one \
                             receive and splits it itself.",
                            g.mb_per_sec, g.cpu_us_per_message
                        ))
                        .unwrap_or_default()
                ));
            }
            let tokio_big = |tag: &str, gro: bool| big_of(Sender::TokioBig, tag, gro);
            if let (Some(on), Some(off)) =
                (tokio_big("GSO on", false), tokio_big("batching off", false))
            {
                let each = tp
                    .iter()
                    .find(|t| t.sender == Sender::TokioEach && t.skipped.is_none());
                let raw_64 = tp.iter().find(|t| {
                    t.sender == Sender::RawUdp
                        && t.message_bytes == PING_BYTES
                        && t.skipped.is_none()
                });
                notes.push(format!(
                    "**The Tokio driver's fast paths.** A Tokio client sending 1 MiB reliable messages to a Tokio \
                     server: {:.0} MB/s with the Linux batching on both sides (a transmit's datagrams leave in one \
                     `sendmmsg`, fragments as GSO runs; bursts arrive through `recvmmsg`), {:.0} MB/s with one system \
                     call per datagram; sender CPU {:.0} and {:.0} µs per message.{}{} (The game-loop rows' server \
                     busy-polls; the Tokio server sleeps in Tokio's reactor between bursts.)",
                    on.mb_per_sec,
                    off.mb_per_sec,
                    on.cpu_us_per_message,
                    off.cpu_us_per_message,
                    tokio_big("GSO on", true)
                        .map(|g| format!(" With the server's GRO, {:.0} MB/s.", g.mb_per_sec))
                        .unwrap_or_default(),
                    each.zip(raw_64)
                        .map(|(e, r)| format!(
                            " 64-byte unreliable messages, one `send(..).await` each: {:.0} % of raw UDP's \
                             messages/s, {:.2} µs of sender CPU per message (raw UDP {:.2}); {:.2} datagrams per \
                             message, as messages the in-flight limit held back share the next datagram.",
                            100.0 * e.messages_per_sec / r.messages_per_sec.max(1e-9),
                            e.cpu_us_per_message,
                            r.cpu_us_per_message,
                            e.datagrams_per_message
                        ))
                        .unwrap_or_default()
                ));
            }
        }
        notes.push(
            "**Tails.** Busy-poll rows run two spinning processes on a 2-vCPU machine shared with other jobs; when the \
             scheduler preempts one of them the round trip waits for a time slice, so their p99.9 and max are scheduler \
             noise (milliseconds) rather than protocol cost. Blocking and tokio rows sleep and suffer less. The C ABI row \
             and the ENet rows call C functions (`unsafe` FFI, the only `unsafe` in the bench). The bench binary's global \
             allocator counts allocations per thread (a thread-local increment per allocation) in every row."
                .to_string(),
        );
        let _ = writeln!(s, "## Where the time and memory go\n");
        for n in notes {
            let _ = writeln!(s, "* {n}\n");
        }
    }

    fn targets(&self, s: &mut String) {
        let mut lines: Vec<(String, String, &'static str)> = Vec::new();
        if let Some(rows) = &self.rtt {
            // What encryption alone costs in each mode: no encrypted row can
            // do better than its floor, whatever its protocol.
            for mode in [
                crate::rtt::IoMode::BusyPoll,
                crate::rtt::IoMode::Blocking,
                crate::rtt::IoMode::Tokio,
            ] {
                let Some(floor) = self.floor_row(mode) else {
                    continue;
                };
                let Some((p50, p99)) = self.ratios(floor) else {
                    continue;
                };
                lines.push((
                    format!(
                        "reference: the encryption floor `{}` (ChaCha20-Poly1305 on raw UDP, no protocol) p50 and p99 ÷ `{}`",
                        floor.row.id,
                        mode.baseline()
                    ),
                    format!("{p50:.2}×, {p99:.2}×"),
                    if p50 > UNRELIABLE_P50_RATIO {
                        "floor above the 1.15× target"
                    } else {
                        "floor within the targets"
                    },
                ));
            }
            for r in rows
                .iter()
                .filter(|r| r.row.fastnet && r.skipped.is_none() && r.summary.count > 0)
            {
                let Some((p50, p99)) = self.ratios(r) else {
                    continue;
                };
                let base = r.row.mode.baseline();
                if r.row.reliable {
                    lines.push((
                        format!("`{}` p50 ≤ {RELIABLE_P50_RATIO}× `{base}`", r.row.id),
                        format!("{p50:.2}×"),
                        verdict(p50 <= RELIABLE_P50_RATIO),
                    ));
                } else {
                    lines.push((
                        format!("`{}` p50 ≤ {UNRELIABLE_P50_RATIO}× `{base}`", r.row.id),
                        format!("{p50:.2}×"),
                        verdict(p50 <= UNRELIABLE_P50_RATIO),
                    ));
                    lines.push((
                        format!("`{}` p99 ≤ {UNRELIABLE_P99_RATIO}× `{base}`", r.row.id),
                        format!("{p99:.2}×"),
                        verdict(p99 <= UNRELIABLE_P99_RATIO),
                    ));
                }
                if let Some(d) = r.stats_datagrams {
                    lines.push((
                        format!("`{}` exactly 2 datagrams per round trip", r.row.id),
                        format!("{d:.3}"),
                        verdict((d - 2.0).abs() < 0.005),
                    ));
                }
            }
        }
        if let Some(tp) = &self.throughput {
            let raw = |size: usize| {
                tp.iter().find(|t| {
                    t.sender == Sender::RawUdp && t.message_bytes == size && t.skipped.is_none()
                })
            };
            for t in tp.iter().filter(|t| {
                matches!(
                    t.sender,
                    Sender::FastnetEach | Sender::FastnetBatched | Sender::TokioEach
                ) && t.skipped.is_none()
            }) {
                if let Some(base) = raw(t.message_bytes) {
                    let f = t.messages_per_sec / base.messages_per_sec;
                    lines.push((
                        format!(
                            "throughput {} ≥ {:.0} % of raw UDP messages/s",
                            t.label,
                            THROUGHPUT_FRACTION * 100.0
                        ),
                        format!("{:.0} %", f * 100.0),
                        verdict(f >= THROUGHPUT_FRACTION),
                    ));
                }
            }
        }
        if let Some(alloc) = &self.alloc {
            for a in alloc.iter().filter(|a| a.target && a.skipped.is_none()) {
                lines.push((
                    format!("0 heap allocations per packet: {}", a.label),
                    format!("{:.3}", a.per_packet()),
                    verdict(a.allocations == 0),
                ));
            }
        }
        if let Some(hs) = &self.handshake {
            let quinn = hs
                .iter()
                .find(|h| h.label.starts_with("quinn") && h.skipped.is_none());
            for h in hs
                .iter()
                .filter(|h| h.label.starts_with("FastNet") && h.skipped.is_none())
            {
                let p50 = h.summary.p50 / 1e3;
                let ok_abs = p50 <= HANDSHAKE_P50_MS;
                let (q, ok_q) = quinn.map_or((String::new(), true), |q| {
                    (
                        format!(", quinn {:.2} ms", q.summary.p50 / 1e3),
                        h.summary.p50 <= q.summary.p50,
                    )
                });
                lines.push((
                    format!(
                        "handshake p50 ≤ {HANDSHAKE_P50_MS} ms and ≤ quinn: {}",
                        h.label
                    ),
                    format!("{p50:.2} ms{q}"),
                    verdict(ok_abs && ok_q),
                ));
            }
        }
        if let Some(mem) = &self.memory {
            for m in mem.iter().filter(|m| m.skipped.is_none()) {
                if m.clients < 2 {
                    continue;
                }
                let v = m.heap_per_client.or(m.rss_per_client).unwrap_or(0.0);
                let what = if m.heap_per_client.is_some() {
                    "live heap"
                } else {
                    "server RSS"
                };
                lines.push((
                    format!(
                        "≤ 4 KiB per idle connection, {} clients, {what} ({})",
                        m.clients,
                        m.method.split(':').next().unwrap_or("")
                    ),
                    format!("{:.0} B", v),
                    verdict(v <= IDLE_CONNECTION_BYTES),
                ));
            }
        }
        if lines.is_empty() {
            return;
        }
        let _ = writeln!(s, "## Targets (`shared/ANCHORS.md`)\n");
        let _ = writeln!(s, "| target | measured | |\n|---|---|---|");
        for (what, value, v) in lines {
            let _ = writeln!(s, "| {what} | {value} | {v} |");
        }
        let _ = writeln!(s);
    }

    fn latency(&self, s: &mut String) {
        let Some(rows) = &self.rtt else { return };
        let _ = writeln!(
            s,
            "## Ping-pong round trip ({PING_BYTES} B, one in flight)\n"
        );
        let _ = writeln!(
            s,
            "Ratios (medians of the per-run ratios): p50 and p99 divided by raw UDP's **in the same I/O mode** (busy-poll rows by `udp-spin`, blocking rows by \
             `udp-block`, tokio rows by `udp-tokio`); the last two ratio columns compare every row with blocking and with \
             busy-poll raw UDP, as `shared/ANCHORS.md` does. The encryption floor rows (`udp-aead-*`) are the raw UDP loops \
             with FastNet's ChaCha20-Poly1305 (`PacketKey`, ring) sealing and opening every datagram behind FastNet's 13-byte header, \
             and nothing else: four AEAD calls per round trip, what any ChaCha20-Poly1305 transport pays at least; \"p50 ÷ encryption \
             floor\" divides an encrypted row by the floor of its mode, so it shows what the rest of the row costs. The sans-IO rows \
             (`fastnet-sansio-*`) run FastNet's protocol state machines (client `Connection`, server `Endpoint`) in the raw UDP loops \
             without FastNet's drivers, which splits FastNet's own cost into protocol and driver. Blocking-ish FastNet rows call `service_for({} ms)`. CPU: the client \
             process's user + system time per round trip. Datagrams: UDP datagrams sent on the machine per round trip (kernel \
             `/proc/net/snmp` `OutDatagrams`, both processes), and FastNet's own count (`ConnectionStats` packets sent + received).\n",
            SERVICE_FOR_WAIT.as_millis()
        );
        let _ = writeln!(
            s,
            "| row | mode | avg µs | p50 µs | p99 µs | p99.9 µs | max µs | p50 ÷ same mode | p99 ÷ same mode | p50 ÷ encryption floor | p50 ÷ blocking UDP | p50 ÷ busy UDP | client CPU µs/RT | datagrams/RT (kernel) | datagrams/RT (FastNet) | encrypted | server identity checked | first connect ms |"
        );
        let _ = writeln!(
            s,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for r in rows {
            if let Some(why) = &r.skipped {
                let _ = writeln!(
                    s,
                    "| `{}` {} | {} | {why} | | | | | | | | | | | | | | | |",
                    r.row.id,
                    r.row.label,
                    r.row.mode.name()
                );
                continue;
            }
            let x = &r.summary;
            let (p50r, p99r) = self
                .ratios(r)
                .map_or((None, None), |(a, b)| (Some(a), Some(b)));
            let over_floor = self
                .floor_row(r.row.mode)
                .filter(|f| r.row.encrypted && f.row.id != r.row.id)
                .and_then(|f| self.ratios_to(r, f.row.id))
                .map(|v| v.0);
            let yes = |b: bool| if b { "yes" } else { "no" };
            let lost = if r.lost > 0 {
                format!(
                    " ({} pings lost and sent again, not in the samples)",
                    r.lost
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "| `{}` {}{lost} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {} | {} | {} | {} | {} | {:.1} | {:.2} | {} | {} | {} | {} |",
                r.row.id,
                r.row.label,
                r.row.mode.name(),
                x.avg,
                x.p50,
                x.p99,
                x.p999,
                x.max,
                opt(p50r, 2),
                opt(p99r, 2),
                opt(over_floor, 2),
                opt(self.ratios_to(r, "udp-block").map(|v| v.0), 2),
                opt(self.ratios_to(r, "udp-spin").map(|v| v.0), 2),
                r.cpu_us,
                r.kernel_datagrams,
                opt(r.stats_datagrams, 3),
                yes(r.row.encrypted),
                if r.row.id.starts_with("udp") { "–" } else { yes(r.row.identity) },
                opt(r.connect_ms, 2),
            );
        }
        let _ = writeln!(s);
        if rows.iter().any(|r| r.runs.len() > 1) {
            let _ = writeln!(s, "<details><summary>p50 of each run (µs)</summary>\n");
            let _ = writeln!(s, "| row | runs |\n|---|---|");
            for r in rows.iter().filter(|r| !r.runs.is_empty()) {
                let runs: Vec<String> = r.runs.iter().map(|x| format!("{:.1}", x.p50)).collect();
                let _ = writeln!(s, "| `{}` | {} |", r.row.id, runs.join(", "));
            }
            let _ = writeln!(s, "\n</details>\n");
        }
    }

    fn throughput_section(&self, s: &mut String) {
        let Some(tp) = &self.throughput else { return };
        let _ = writeln!(s, "## One-way throughput\n");
        let _ = writeln!(
            s,
            "The client sends as fast as it can; the server process (busy-poll) counts what arrives, from its first to its last \
             message. 1 MiB messages: reliable-ordered, each acknowledged by the server with a one-byte message; time from the \
             first send to the last acknowledgement. FastNet's default datagram limit is 1200 bytes, so a 1200-byte message \
             takes two datagrams (fragments).\n"
        );
        let _ = writeln!(s, "| row | sent | received | messages/s | MB/s | ÷ raw UDP (messages/s) | datagrams/s sent | datagrams per message (+ acks back) | sender CPU µs/message |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for t in tp {
            if let Some(why) = &t.skipped {
                let _ = writeln!(s, "| {} | {why} | | | | | | | |", t.label);
                continue;
            }
            let raw = tp.iter().find(|r| {
                r.sender == Sender::RawUdp
                    && r.message_bytes == t.message_bytes
                    && r.skipped.is_none()
            });
            let ratio = raw.map(|r| t.messages_per_sec / r.messages_per_sec);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {:.1} | {} | {:.0} | {:.2} (+ {:.2}) | {:.2} |",
                t.label,
                t.sent,
                t.received,
                t.messages_per_sec,
                t.mb_per_sec,
                opt(ratio, 2),
                t.messages_per_sec * t.datagrams_per_message,
                t.datagrams_per_message,
                t.acks_per_message,
                t.cpu_us_per_message
            );
        }
        let _ = writeln!(s);
    }

    fn handshake_section(&self, s: &mut String) {
        let Some(hs) = &self.handshake else { return };
        let _ = writeln!(s, "## Connection set-up\n");
        let _ = writeln!(
            s,
            "Sequential connects to a server process on loopback (3 warm-up connects first); each connection is closed before \
             the next. FastNet: TCP connect, TLS 1.3 (ECDSA P-256 development certificate, pinned by the client), parameter \
             exchange, first UDP round trip. quinn: QUIC with TLS 1.3 (ECDSA P-256 self-signed certificate, the client's only \
             root), to an established connection.\n"
        );
        let _ = writeln!(s, "| implementation | server identity checked | connects | p50 ms | p99 ms | avg ms | max ms |");
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for h in hs {
            if let Some(why) = &h.skipped {
                let _ = writeln!(s, "| {} | | {why} | | | | |", h.label);
                continue;
            }
            let x = &h.summary;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                h.label,
                if h.verified { "yes" } else { "no" },
                x.count,
                x.p50 / 1e3,
                x.p99 / 1e3,
                x.avg / 1e3,
                x.max / 1e3
            );
        }
        let _ = writeln!(s);
    }

    fn crypto_section(&self, s: &mut String) {
        let Some(c) = &self.crypto else { return };
        let _ = writeln!(s, "## Per-packet AEAD (ChaCha20-Poly1305)\n");
        let _ = writeln!(
            s,
            "`fastnet::crypto::PacketKey::seal_in_place` then `open_in_place` of one packet (12-byte header authenticated), \
             in a calibrated loop, median of 7 samples. The last rows are a reference, not FastNet's cipher: ring's \
             AES-128-GCM (AES instructions on this CPU) sealing and opening the same packets, to price the cipher \
             itself.\n"
        );
        let _ = writeln!(
            s,
            "| backend | payload B | seal + open ns | seal ns | ÷ ring (seal + open) |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for r in c {
            let ring = self
                .aead(crate::crypto::RING, r.payload_bytes)
                .map(|x| r.seal_open_ns / x.seal_open_ns);
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.0} | {} |",
                r.backend,
                r.payload_bytes,
                r.seal_open_ns,
                r.seal_ns,
                opt(ring, 2)
            );
        }
        let _ = writeln!(s);
    }

    fn alloc_section(&self, s: &mut String) {
        let Some(a) = &self.alloc else { return };
        let _ = writeln!(s, "## Heap allocations in steady state\n");
        let _ = writeln!(
            s,
            "Client and server in this process on one thread, 64-byte ping-pong on loopback after a warm-up; the bench \
             binary's counting global allocator (`allocation-counter`, per thread) counts both ends. Per packet: divided by \
             the datagrams sent by both ends. Both Tokio ends receive the way the row says (`poll_into` with one event \
             vector each, or `poll()`); the `poll()` row is informational (no target): that API returns new vectors by \
             design.\n"
        );
        let _ = writeln!(
            s,
            "| driver | round trips | datagrams | allocations | bytes | allocations per packet |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for r in a {
            if let Some(why) = &r.skipped {
                let _ = writeln!(s, "| {} | {why} | | | | |", r.label);
                continue;
            }
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.3} |",
                r.label,
                r.round_trips,
                r.datagrams,
                r.allocations,
                r.bytes,
                r.per_packet()
            );
        }
        let _ = writeln!(s);
    }

    fn memory_section(&self, s: &mut String) {
        let Some(mem) = &self.memory else { return };
        let _ = writeln!(s, "## Memory per idle connection (server side)\n");
        let _ = writeln!(
            s,
            "Real sockets: game-loop `Client`s connected to a server process (`service()` spin) and left idle; server RSS \
             growth from `/proc/<pid>/statm` over its RSS after one warm-up connect, divided by the clients. Sans-IO: \
             `Endpoint::insert` of connections made from `fastnet::sim::session_keys_pair` keys, each answering its client's \
             first packet, in this process; live heap bytes from the counting allocator (exact). The last three rows \
             break one connection down: its inline size (boxed in the endpoint's table), one packet key, and what \
             `Connection::new` allocates on the heap.\n"
        );
        let _ = writeln!(s, "| method | idle connections | server RSS growth per connection | server memory per connection |");
        let _ = writeln!(s, "|---|---|---|---|");
        for m in mem {
            if let Some(why) = &m.skipped {
                let _ = writeln!(s, "| {} | {why} | | |", m.method);
                continue;
            }
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                m.method,
                m.clients,
                m.rss_per_client
                    .map_or("–".to_string(), |h| format!("{h:.0} B")),
                m.heap_per_client
                    .map_or("–".to_string(), |h| format!("{h:.0} B"))
            );
        }
        let _ = writeln!(s);
    }

    fn instructions_section(&self, s: &mut String) {
        let Some(rows) = &self.instructions else {
            return;
        };
        let _ = writeln!(s, "## Instructions per round trip (callgrind)\n");
        let _ = writeln!(
            s,
            "A 64-byte ping-pong with both ends in one process on one thread, run under `valgrind --tool=callgrind`, \
             which counts the instructions executed in user space by the measured round trips only (after a warm-up; \
             `fastnet-bench probe <case>`). The count does not depend on the machine's load, so it compares builds \
             where the round-trip times cannot; it leaves out the kernel (system calls, the network stack) and what \
             the instructions cost in time (cache misses after a sleep cost more than the instructions themselves). \
             Instructions are attributed by their source file, inlined code included: ring's ChaCha20-Poly1305; \
             FastNet's protocol (the sans-IO `Connection` and `Endpoint`: `core/src/` outside `net/`, and \
             `net/endpoint.rs`, `net/deadlines.rs`); FastNet's drivers (the rest of `core/src/net/`); Tokio and mio; \
             Rust's standard library where no FastNet function inlined it; libc and the vDSO (system-call \
             wrappers, clock reads, `memcpy`); the bench's loop. Code run per round trip: the 64-byte cache lines \
             holding an instruction that ran on at least every other round trip, both ends together (code they \
             share counts once): what a round trip brings back into the instruction cache after a sleep, when the \
             kernel's wake-up and network code have evicted it.\n"
        );
        let _ = write!(
            s,
            "| case | round trips | code run per round trip KiB (FastNet's) | instructions per round trip |"
        );
        for p in Part::ALL {
            let _ = write!(s, " {} |", p.label());
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "|---|---|---|---|{}", "---|".repeat(Part::ALL.len()));
        for r in rows {
            if let Some(why) = &r.skipped {
                let _ = writeln!(
                    s,
                    "| {} | {why} |{}",
                    r.label,
                    " |".repeat(Part::ALL.len() + 2)
                );
                continue;
            }
            let _ = write!(
                s,
                "| {} | {} | {:.1} ({:.1}) | {:.0} |",
                r.label,
                r.round_trips,
                r.hot_code_bytes as f64 / 1024.0,
                r.hot_fastnet_code_bytes as f64 / 1024.0,
                r.total()
            );
            for p in Part::ALL {
                let _ = write!(s, " {:.0} |", r.part(p));
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s);
        let files = |case: &str| {
            self.instr(case)
                .map(|r| r.largest_files(INSTRUCTION_FILES_SHOWN))
        };
        if let Some(f) = files("sansio") {
            let _ = writeln!(
                s,
                "FastNet's own instructions per round trip by source file, sans-IO case (both ends, largest first): {f}.\n"
            );
        }
        for (case, what) in [("gameloop", "game-loop"), ("tokio", "Tokio driver")] {
            if let Some(f) = files(case) {
                let _ = writeln!(s, "The same, {what} case: {f}.\n");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtt::ROWS;
    use crate::stats::Summary;

    fn row(id: &str, p50_us: f64) -> RowResult {
        let summary = Summary {
            count: 1,
            p50: p50_us,
            p99: p50_us,
            ..Summary::default()
        };
        let mut r = RowResult::new(*ROWS.iter().find(|r| r.id == id).expect("a known row"));
        r.runs = vec![summary];
        r.summary = summary;
        r
    }

    fn report(rows: Vec<RowResult>) -> Report {
        let mut report = Report::new(Machine::describe(), "test".into(), (0, 1, 1));
        report.rtt = Some(rows);
        report
    }

    #[test]
    fn a_raw_udp_row_slower_than_its_encryption_floor_is_reported_as_held_up() {
        let held_up = report(vec![row("udp-block", 30.0), row("udp-aead-block", 26.0)]);
        let md = held_up.markdown();
        assert!(md.contains("Raw UDP was held up in this run"), "{md}");
        assert!(md.contains("`udp-block` p50 30.0 µs"));

        let normal = report(vec![row("udp-block", 22.0), row("udp-aead-block", 23.0)]);
        assert!(!normal.markdown().contains("Raw UDP was held up"));
    }

    #[test]
    fn a_layer_that_adds_nothing_is_not_printed_as_a_negative_cost() {
        assert_eq!(added_us(1.24, 1), "1.2 µs");
        assert_eq!(added_us(0.05, 1), "0.1 µs");
        assert!(added_us(-0.6, 1).starts_with("nothing measurable (-0.6 µs"));
        assert!(added_us(-0.001, 2).starts_with("nothing measurable (-0.00 µs"));
        assert!(added_us(0.004, 2).starts_with("nothing measurable (+0.00 µs"));
        // A blocking run where the encryption floor came out faster than raw UDP.
        let md = report(vec![
            row("udp-block", 17.2),
            row("udp-aead-block", 16.6),
            row("fastnet-sansio-block", 19.2),
            row("fastnet-unrel-block", 20.1),
        ])
        .markdown();
        assert!(
            md.contains("Encryption adds nothing measurable (-0.6 µs"),
            "{md}"
        );
        assert!(
            md.contains("the protocol 2.6 µs and the drivers 0.9 µs"),
            "{md}"
        );
    }
}
