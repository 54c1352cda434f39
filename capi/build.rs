//! Build script of the C ABI crate.
//!
//! * Linux: gives the shared library the SONAME `libfastnet.so`, so programs
//!   linked against `target/<profile>/libfastnet.so` by path find it at run
//!   time through the loader's search path (`LD_LIBRARY_PATH`, rpath, ...).
//! * Feature `generate-header`: runs cbindgen over `src/` with `cbindgen.toml`.
//!   - `FASTNET_REGENERATE_HEADER=1` writes the result to `include/fastnet.h`
//!     (the committed header);
//!   - `FASTNET_HEADER_OUT=<path>` writes it to `<path>` instead (what
//!     `ci/capi-test.sh` compares with the committed header);
//!   - otherwise the header goes to `$OUT_DIR/fastnet.h` and a warning says
//!     when `include/fastnet.h` is out of date.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        // Programs linked by path then record `libfastnet.so`, not the build path.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libfastnet.so");
    }
    if os == "macos" {
        // The same for macOS: programs look for the library on their rpath.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libfastnet.dylib");
    }
    #[cfg(feature = "generate-header")]
    header::generate();
}

#[cfg(feature = "generate-header")]
mod header {
    use std::path::PathBuf;

    pub fn generate() {
        println!("cargo:rerun-if-changed=src");
        println!("cargo:rerun-if-changed=cbindgen.toml");
        println!("cargo:rerun-if-env-changed=FASTNET_REGENERATE_HEADER");
        println!("cargo:rerun-if-env-changed=FASTNET_HEADER_OUT");
        let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
        let committed = dir.join("..").join("include").join("fastnet.h");
        let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
            .unwrap_or_else(|e| panic!("capi/cbindgen.toml: {e}"));
        let bindings = cbindgen::Builder::new()
            .with_crate(&dir)
            .with_config(config)
            .generate()
            .unwrap_or_else(|e| panic!("cbindgen failed: {e}"));
        let regenerate = std::env::var("FASTNET_REGENERATE_HEADER").is_ok_and(|v| v == "1");
        let out = match std::env::var_os("FASTNET_HEADER_OUT") {
            Some(path) => PathBuf::from(path),
            None if regenerate => committed.clone(),
            None => {
                PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("fastnet.h")
            }
        };
        bindings.write_to_file(&out);
        let fresh = std::fs::read(&out).unwrap_or_default();
        if std::fs::read(&committed).ok().as_deref() != Some(fresh.as_slice()) {
            println!(
                "cargo:warning=include/fastnet.h is out of date: regenerate it with \
                 FASTNET_REGENERATE_HEADER=1 cargo build -p fastnet-capi --features generate-header"
            );
        }
    }
}
