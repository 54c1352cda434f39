//! Smoke test: every harness function runs end to end with tiny sample counts
//! (client here, servers as child processes of the real bench binary) and the
//! report and charts are produced. It asserts that things ran, never timings.

use std::path::PathBuf;

use fastnet_bench::instructions::{self, Part};
use fastnet_bench::report::Report;
use fastnet_bench::rtt::ROWS;
use fastnet_bench::sys::Machine;
use fastnet_bench::{alloc, charts, crypto, handshake, memory, rtt, throughput, Harness};

#[test]
fn every_measurement_runs_with_tiny_counts() {
    let h = Harness::tiny(PathBuf::from(env!("CARGO_BIN_EXE_fastnet-bench")));

    let rows = rtt::measure(&h, ROWS);
    for r in &rows {
        match (&r.skipped, r.row.unavailable()) {
            (None, _) => {
                assert_eq!(r.summary.count, h.rounds, "{}", r.row.id);
                assert!(
                    r.summary.p50 > 0.0 && r.summary.max >= r.summary.p99,
                    "{}",
                    r.row.id
                );
                assert_eq!(r.samples.len(), h.rounds * h.runs, "{}", r.row.id);
            }
            (Some(why), Some(_)) => {
                assert!(why.starts_with("not available"), "{}: {why}", r.row.id)
            }
            (Some(why), None) => panic!("{} failed: {why}", r.row.id),
        }
        if r.row.fastnet && r.skipped.is_none() {
            assert!(
                r.stats_datagrams.is_some(),
                "{} has FastNet statistics",
                r.row.id
            );
        }
    }

    let tp = throughput::measure(&h);
    assert_eq!(tp.len(), throughput::CASE_COUNT);
    for t in &tp {
        assert!(t.skipped.is_none(), "{}: {:?}", t.label, t.skipped);
        assert!(t.received > 0, "{} received something", t.label);
    }

    let hs = handshake::measure(&h);
    for x in &hs {
        if x.label.starts_with("ENet") && !fastnet_bench::HAS_ENET {
            continue;
        }
        assert!(x.skipped.is_none(), "{}: {:?}", x.label, x.skipped);
        assert_eq!(x.summary.count, h.connects, "{}", x.label);
    }

    let cr = crypto::measure(&h);
    assert_eq!(cr.len(), crypto::case_count());
    assert!(cr.iter().any(|c| c.backend == crypto::AES_GCM_REFERENCE));
    assert!(cr.iter().all(|c| c.seal_open_ns > 0.0 && c.seal_ns > 0.0));

    let al = alloc::measure(&h);
    for a in &al {
        assert!(a.skipped.is_none(), "{}: {:?}", a.label, a.skipped);
        assert!(a.datagrams >= 2 * a.round_trips, "{}", a.label);
    }

    let mem = memory::measure(&h);
    for m in &mem {
        assert!(m.skipped.is_none(), "{}: {:?}", m.method, m.skipped);
    }
    assert!(mem
        .iter()
        .any(|m| m.heap_per_client.is_some_and(|b| b > 0.0)));

    // Callgrind's counts are exact, so their attribution can be checked:
    // only the encrypted cases run ring, only FastNet's cases run FastNet.
    let ins = instructions::measure(&h);
    assert_eq!(ins.len(), instructions::CASE_COUNT);
    let valgrind = std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    for r in &ins {
        if !valgrind {
            assert!(r
                .skipped
                .as_deref()
                .is_some_and(|w| w.starts_with("not available")));
            continue;
        }
        assert!(r.skipped.is_none(), "{}: {:?}", r.case, r.skipped);
        assert!(r.total() > 0.0, "{} counted", r.case);
        // Thousands per round trip, not exact counts: a debug build's line
        // tables blur a few instructions across files.
        let runs = |p: Part| r.part(p) > 1000.0;
        let encrypted = !r.case.starts_with("udp");
        assert_eq!(runs(Part::Aead), encrypted, "{}: AEAD", r.case);
        let tokio = r.case.contains("tokio");
        assert_eq!(runs(Part::Tokio), tokio, "{}: Tokio", r.case);
        let protocol = r
            .fastnet_files
            .iter()
            .any(|(f, _)| f.starts_with("core/src/connection/"));
        let fastnet = encrypted && r.case != "floor";
        assert_eq!(protocol, fastnet, "{}: FastNet's connection code", r.case);
    }

    let dir = std::env::temp_dir().join(format!("fastnet-bench-smoke-{}", std::process::id()));
    let written = charts::write_all(&dir, &rows, &tp).expect("charts");
    assert!(written.iter().any(|c| c == "throughput.svg"));
    for c in &written {
        let svg = std::fs::read_to_string(dir.join(c)).expect("chart written");
        assert!(svg.contains("<svg"), "{c} is an SVG");
    }
    let report = Report {
        machine: Machine::describe(),
        command: "smoke test".into(),
        counts: (h.warmup, h.rounds, h.runs),
        rtt: Some(rows),
        throughput: Some(tp),
        handshake: Some(hs),
        crypto: Some(cr),
        alloc: Some(al),
        memory: Some(mem),
        instructions: Some(ins),
        charts: written,
    };
    let md = report.markdown();
    for section in [
        "## Targets",
        "## Ping-pong round trip",
        "## One-way throughput",
        "## Connection set-up",
        "## Per-packet AEAD",
        "## Heap allocations",
        "## Memory per idle connection",
        "## Instructions per round trip",
        "## Charts",
    ] {
        assert!(md.contains(section), "report has {section}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
