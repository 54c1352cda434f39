//! Finds ENet (Debian's `libenet-dev`) and records the compiler version.
//!
//! ENet is optional: without it the ENet rows say "not available" and the rest
//! of the bench builds and runs (the workspace's test suite does not need it).

use std::path::Path;
use std::process::Command;

include!("enet_libraries.rs");

fn main() {
    println!("cargo:rustc-check-cfg=cfg(has_enet)");
    println!("cargo:rerun-if-env-changed=FASTNET_BENCH_NO_ENET");
    // Only an existing file is watched (a missing one would rerun this script
    // on every build). `ci/bench.sh` says in FASTNET_BENCH_ENET_INSTALLED
    // whether ENet is installed, so a build made before it was picks it up
    // there; a plain `cargo run` of a stale build says so in its report.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=enet_libraries.rs");
    println!("cargo:rerun-if-env-changed=FASTNET_BENCH_ENET_INSTALLED");
    let found = ENET_LIBRARIES.iter().find(|c| Path::new(c).exists());
    if let (Some(lib), Err(_)) = (found, std::env::var("FASTNET_BENCH_NO_ENET")) {
        println!("cargo:rerun-if-changed={lib}");
        let dir = Path::new(lib).parent().expect("library directory");
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-link-lib=enet");
        println!("cargo:rustc-cfg=has_enet");
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FASTNET_BENCH_RUSTC={version}");
}
