//! `fastnet-bench`: FastNet against raw UDP, ENet and quinn on loopback.
//!
//! ```text
//! cargo run --release -p fastnet-bench -- all            # everything, writes BENCHMARKS.md and bench/charts/
//! cargo run --release -p fastnet-bench -- rtt crypto     # some sections
//! cargo run --release -p fastnet-bench -- all --quick    # CI smoke: few samples, report under target/
//! ```
//!
//! Options: `--quick`, `--runs N`, `--rounds N`, `--warmup N`, `--rows ID,ID`
//! (latency rows), `--out FILE` (the report), `--charts DIR`, `--no-pm-qos`
//! (let idle CPUs halt: by default the bench holds a zero wake-up latency
//! request on `/dev/cpu_dma_latency` where it may).
//! `serve <kind> <mode>` is the server process the bench starts itself.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use fastnet_bench::report::Report;
use fastnet_bench::rtt::ROWS;
use fastnet_bench::sys::{Machine, Stalls, WakeLatencyRequest};
use fastnet_bench::{
    alloc, charts, crypto, handshake, instructions, memory, rtt, server, throughput, BenchResult,
    Harness,
};

const SECTIONS: [&str; 7] = [
    "rtt",
    "throughput",
    "handshake",
    "crypto",
    "alloc",
    "memory",
    "instructions",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => server::serve(&args[1..]),
        Some("probe") => instructions::probe(&args[1..]),
        _ => run(&args),
    };
    if let Err(e) = result {
        eprintln!("fastnet-bench: {e}");
        std::process::exit(1);
    }
}

fn usage() -> String {
    format!(
        "usage: fastnet-bench [all | {}]... [--quick] [--runs N] [--rounds N] [--warmup N] [--rows ID,..] [--out FILE] [--charts DIR] [--no-pm-qos]\n\
         latency rows: {}",
        SECTIONS.join(" | "),
        ROWS.iter().map(|r| r.id).collect::<Vec<_>>().join(", ")
    )
}

fn run(args: &[String]) -> BenchResult<()> {
    let mut sections: Vec<&str> = Vec::new();
    let mut quick = false;
    let (mut runs, mut rounds, mut warmup) = (None, None, None);
    let mut row_filter: Option<Vec<String>> = None;
    let (mut out, mut charts_dir) = (None, None);
    let mut pm_qos = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| fastnet_bench::fail(format!("{a} needs a value\n{}", usage())))
        };
        match a.as_str() {
            "all" => sections.extend(SECTIONS),
            s if SECTIONS.contains(&s) => {
                sections.push(SECTIONS[SECTIONS.iter().position(|x| *x == s).expect("listed")])
            }
            "--quick" => quick = true,
            "--no-pm-qos" => pm_qos = false,
            "--runs" => runs = Some(value()?.parse::<usize>()?),
            "--rounds" => rounds = Some(value()?.parse::<usize>()?),
            "--warmup" => warmup = Some(value()?.parse::<usize>()?),
            "--rows" => row_filter = Some(value()?.split(',').map(str::to_string).collect()),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--charts" => charts_dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            other => {
                return Err(fastnet_bench::fail(format!(
                    "unknown argument {other:?}\n{}",
                    usage()
                )))
            }
        }
    }
    if sections.is_empty() {
        return Err(fastnet_bench::fail(usage()));
    }
    sections.dedup();
    if let Some(why) = fastnet_bench::enet_missing() {
        eprintln!("warning: no ENet rows: {why}");
    }
    let everything = sections.len() == SECTIONS.len();
    let exe = std::env::current_exe()?;
    let mut h = if quick {
        Harness::quick(exe)
    } else {
        Harness::full(exe)
    };
    h.runs = runs.unwrap_or(h.runs).max(1);
    h.rounds = rounds.unwrap_or(h.rounds).max(1);
    h.warmup = warmup.unwrap_or(h.warmup);
    let rows: Vec<rtt::Row> = ROWS
        .iter()
        .filter(|r| {
            row_filter
                .as_ref()
                .is_none_or(|f| f.iter().any(|id| id == r.id))
        })
        .copied()
        .collect();

    // Where the report goes: the committed files for a full run of everything,
    // target/ otherwise (so smoke runs leave the tree clean).
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let committed = everything && !quick && row_filter.is_none();
    let scratch = root.join("target").join("fastnet-bench");
    let out = out.unwrap_or_else(|| {
        if committed {
            root.join("BENCHMARKS.md")
        } else {
            scratch.join("BENCHMARKS.md")
        }
    });
    let charts_dir = charts_dir.unwrap_or_else(|| {
        if committed {
            root.join("bench").join("charts")
        } else {
            scratch.join("charts")
        }
    });

    let has = |s: &str| sections.contains(&s);
    let available_rows = rows.iter().filter(|r| r.unavailable().is_none()).count();
    let total = [
        ("rtt", available_rows * h.runs),
        ("throughput", throughput::CASE_COUNT * h.runs),
        ("handshake", handshake::CASE_COUNT),
        ("crypto", crypto::case_count()),
        ("alloc", alloc::CASE_COUNT),
        ("memory", 1 + h.idle_clients.len()),
        ("instructions", instructions::CASE_COUNT),
    ]
    .iter()
    .filter(|(s, _)| has(s))
    .map(|(_, n)| n)
    .sum::<usize>();
    h.progress = ProgressBar::new(total as u64);
    h.progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:32.cyan/blue} {pos}/{len} {wide_msg}",
        )
        .expect("valid template"),
    );

    let started = Instant::now();
    // Idle CPUs poll instead of halting while this is held (see BENCHMARKS.md).
    let wake = if pm_qos {
        WakeLatencyRequest::zero()
    } else {
        None
    };
    let mut machine = Machine::describe();
    machine.wake_latency_zero = wake.is_some();
    if has("rtt") {
        // With the PM QoS request held, as the latency rows run.
        machine.stalls = Some(Stalls::measure(Duration::from_millis(500)));
    }
    let mut report = Report::new(
        machine,
        format!("cargo run --release -p fastnet-bench -- {}", args.join(" ")),
        (h.warmup, h.rounds, h.runs),
    );
    if has("crypto") {
        report.crypto = Some(crypto::measure(&h));
    }
    if has("alloc") {
        report.alloc = Some(alloc::measure(&h));
    }
    if has("rtt") {
        report.rtt = Some(rtt::measure(&h, &rows));
    }
    if has("throughput") {
        report.throughput = Some(throughput::measure(&h));
    }
    if has("handshake") {
        report.handshake = Some(handshake::measure(&h));
    }
    if has("memory") {
        report.memory = Some(memory::measure(&h));
    }
    if has("instructions") {
        report.instructions = Some(instructions::measure(&h));
    }
    h.progress.finish_and_clear();
    drop(wake);

    report.charts = charts::write_all(
        &charts_dir,
        report.rtt.as_deref().unwrap_or(&[]),
        report.throughput.as_deref().unwrap_or(&[]),
    )?;
    let mut text = report.markdown();
    if !committed {
        // Chart links point at bench/charts/ in the committed report only.
        text = text.replace("](bench/charts/", &format!("]({}/", charts_dir.display()));
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, &text)?;
    println!("{text}");
    eprintln!(
        "fastnet-bench: done in {:.0} s; report {}, charts {}",
        started.elapsed().as_secs_f64(),
        out.display(),
        charts_dir.display()
    );
    Ok(())
}
