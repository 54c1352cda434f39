//! What the operating system tells: CPU time, the kernel's UDP counters, a
//! process's resident memory, and a description of the machine, including
//! how often it pauses a thread that never sleeps.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// CPU time (user + system) of this whole process so far.
pub fn process_cpu_time() -> Duration {
    cpu_time::ProcessTime::try_now()
        .map(|t| t.as_duration())
        .unwrap_or_default()
}

/// The kernel's UDP datagram counters (`/proc/net/snmp`, this network
/// namespace: on loopback every datagram is counted once out and once in).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpCounters {
    /// `Udp: InDatagrams`: datagrams delivered to sockets.
    pub in_datagrams: u64,
    /// `Udp: OutDatagrams`: datagrams sent.
    pub out_datagrams: u64,
}

impl UdpCounters {
    /// Reads the counters now (zeros where `/proc` is unavailable).
    pub fn now() -> Self {
        let Ok(text) = std::fs::read_to_string("/proc/net/snmp") else {
            return Self::default();
        };
        let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            return Self::default();
        };
        let mut out = Self::default();
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            let value = value.parse().unwrap_or(0);
            match name {
                "InDatagrams" => out.in_datagrams = value,
                "OutDatagrams" => out.out_datagrams = value,
                _ => {}
            }
        }
        out
    }

    /// Datagrams sent between `self` and `later`.
    pub fn sent_since(&self, earlier: &Self) -> u64 {
        self.out_datagrams.saturating_sub(earlier.out_datagrams)
    }
}

/// Resident set size of a process in bytes (`/proc/<pid>/statm`), or of this
/// process for `None`.
pub fn rss_bytes(pid: Option<u32>) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/statm"),
        None => "/proc/self/statm".to_string(),
    };
    let pages: u64 = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    pages * page_bytes()
}

/// The page size: 4 KiB on the x86-64 and most arm64 Linux machines this runs
/// on (read from `getconf` when available).
fn page_bytes() -> u64 {
    std::process::Command::new("getconf")
        .arg("PAGESIZE")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// The machine the numbers come from.
#[derive(Clone, Debug)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical CPUs.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// The compiler that built the bench.
    pub rustc: String,
    /// UTC date of the run.
    pub date: String,
    /// Whether `perf` can count hardware events here.
    pub perf_counters: bool,
    /// CPU idle driver.
    pub cpuidle: String,
    /// Whether zero wake-up latency was requested for the run.
    pub wake_latency_zero: bool,
    /// Pauses a spinning thread saw (measured before the latency rows).
    pub stalls: Option<Stalls>,
}

/// How often, and for how long, a thread that never sleeps loses its CPU:
/// interrupts, the hypervisor, other processes. Every row sees them; a
/// busy-poll round trip is hit when either side is paused during it.
#[derive(Clone, Copy, Debug)]
pub struct Stalls {
    /// Pauses longer than [`Stalls::THRESHOLD_NS`] per second.
    pub per_second: f64,
    /// Median pause (ns).
    pub median_ns: u64,
    /// Longest pause (ns).
    pub max_ns: u64,
    /// Share of the time lost to them.
    pub lost: f64,
}

impl Stalls {
    /// A gap between two clock reads longer than this counts as a pause.
    pub const THRESHOLD_NS: u64 = 5_000;

    /// Spins for `span`, reading the clock, and collects the gaps between
    /// consecutive reads longer than [`Stalls::THRESHOLD_NS`].
    pub fn measure(span: Duration) -> Self {
        let start = Instant::now();
        let mut last = start;
        let mut gaps = Vec::with_capacity(4096);
        loop {
            let now = Instant::now();
            let gap = now.duration_since(last).as_nanos() as u64;
            if gap > Self::THRESHOLD_NS && gaps.len() < gaps.capacity() {
                gaps.push(gap);
            }
            last = now;
            if now.duration_since(start) >= span {
                break;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let lost = gaps.iter().sum::<u64>() as f64 / 1e9 / secs;
        gaps.sort_unstable();
        Self {
            per_second: gaps.len() as f64 / secs,
            median_ns: gaps.get(gaps.len() / 2).copied().unwrap_or(0),
            max_ns: gaps.last().copied().unwrap_or(0),
            lost,
        }
    }
}

/// The first processor's model name from `/proc/cpuinfo`, with its family,
/// model and stepping numbers: a virtual machine often names only the brand
/// ("AMD EPYC"), and the numbers tell the generation, which sets what the
/// vector code of the AEAD costs.
fn cpu_name(cpuinfo: &str) -> String {
    let field = |key: &str| {
        cpuinfo.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let name = field("model name").unwrap_or_else(|| "unknown".into());
    match (field("cpu family"), field("model"), field("stepping")) {
        (Some(f), Some(m), Some(st)) => format!("{name}, family {f} model {m} stepping {st}"),
        _ => name,
    }
}

impl Machine {
    /// Describes this machine.
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpu_name(&cpuinfo);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let perf_counters = std::process::Command::new("perf")
            .args(["stat", "-x,", "-e", "instructions", "true"])
            .output()
            .map(|o| {
                let err = String::from_utf8_lossy(&o.stderr);
                o.status.success() && !err.contains("not supported")
            })
            .unwrap_or(false);
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel,
            rustc: env!("FASTNET_BENCH_RUSTC").to_string(),
            date: utc_date(SystemTime::now()),
            perf_counters,
            cpuidle: cpuidle_driver(),
            wake_latency_zero: false,
            stalls: None,
        }
    }
}

/// `YYYY-MM-DD HH:MM UTC` of a time (civil-from-days, proleptic Gregorian).
pub fn utc_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(UNIX_EPOCH), "1970-01-01 00:00 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(utc_date(t), "2026-11-18 11:06 UTC");
    }

    #[test]
    fn cpu_names_carry_family_model_and_stepping() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\n\
                    model\t\t: 1\nmodel name\t: AMD EPYC\nstepping\t: 2\n\n\
                    processor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_name(info), "AMD EPYC, family 23 model 1 stepping 2");
        assert_eq!(cpu_name("model name\t: Some CPU\n"), "Some CPU");
        assert_eq!(cpu_name(""), "unknown");
    }
}

/// A PM QoS request for zero CPU wake-up latency (`/dev/cpu_dma_latency`,
/// Linux): while it is held, idle CPUs poll instead of halting, so a thread
/// woken by a datagram runs within microseconds instead of waiting for a
/// halted (virtual) CPU to wake. Released when dropped.
#[derive(Debug)]
pub struct WakeLatencyRequest {
    _file: std::fs::File,
}

impl WakeLatencyRequest {
    /// Requests zero wake-up latency; `None` where the OS does not let us.
    pub fn zero() -> Option<Self> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/cpu_dma_latency")
            .ok()?;
        file.write_all(&0i32.to_ne_bytes()).ok()?;
        Some(Self { _file: file })
    }
}

/// The idle driver and what it does (`/sys/devices/system/cpu/cpuidle`).
pub fn cpuidle_driver() -> String {
    std::fs::read_to_string("/sys/devices/system/cpu/cpuidle/current_driver")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "none".into())
}
