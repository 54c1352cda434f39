//! FastNet's stable C ABI: `libfastnet.so` / `fastnet.dll` / `libfastnet.dylib`
//! and `libfastnet.a`, described by `include/fastnet.h` (generated from this
//! crate by cbindgen; see `build.rs`).
//!
//! Design, in short (the header says it to C programmers):
//!
//! * Handles are opaque generational indices into a registry per kind, never
//!   pointers to Rust objects ([`handle`]): NULL, destroyed, stale and
//!   wrong-kind handles give error codes, never a crash.
//! * Every exported function contains panics (`catch_unwind`) and reports them
//!   as `FASTNET_ERROR_PANIC` (so never build it with `panic = "abort"`); every failure leaves a message for
//!   `fastnet_last_error()` on the calling thread ([`ffi`]).
//! * Events are polled one at a time; their bytes live in a buffer owned by
//!   the handle until the next poll, so nothing has to be freed by the caller.
//! * Every function may be called from any thread; calls on one handle are
//!   serialized by a lock per handle.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]
// The C names (`FastNetClient_`, `fastnet_*`) are the ABI.
#![allow(non_camel_case_types)]

pub mod abi;
pub mod client;
mod convert;
mod ffi;
mod handle;
pub mod server;

use std::ffi::c_char;

pub use abi::*;
pub use client::*;
pub use server::*;

/// The version of the FastNet library, as a static NUL-terminated string
/// (`"0.1.0"`); never freed. Any thread.
#[no_mangle]
pub extern "C" fn fastnet_version() -> *const c_char {
    ffi::guard(c"".as_ptr(), || VERSION.as_ptr())
}

/// The crate version as a C string.
const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(v) => v,
    Err(_) => panic!("the version has no interior NUL"),
};

/// The ABI version of the library (`FASTNET_ABI_VERSION` of the header it was
/// built with). A program should refuse to run when it differs from the
/// `FASTNET_ABI_VERSION` it was compiled with. Any thread.
#[no_mangle]
pub extern "C" fn fastnet_abi_version() -> u32 {
    ffi::guard(FASTNET_ABI_VERSION, || FASTNET_ABI_VERSION)
}

/// The message of the last failed FastNet call on the calling thread, as a
/// NUL-terminated string (empty when the last call succeeded). It stays valid
/// until the next FastNet call on this thread (other than
/// `fastnet_last_error`, `fastnet_last_error_code` and `fastnet_error_name`);
/// never free it. Each thread has its own. Never NULL.
#[no_mangle]
pub extern "C" fn fastnet_last_error() -> *const c_char {
    ffi::guard(c"".as_ptr(), ffi::last_error_ptr)
}

/// The `FASTNET_ERROR_` code of the last failed FastNet call on the calling
/// thread, or `FASTNET_OK` when it succeeded: the way to learn why a function
/// that returns a handle (NULL) or a bool (false) failed.
#[no_mangle]
pub extern "C" fn fastnet_last_error_code() -> i32 {
    ffi::guard(
        FastNetError::FASTNET_ERROR_PANIC as i32,
        ffi::last_error_code,
    )
}

/// The name of an error code (`"FASTNET_ERROR_INVALID_HANDLE"`), as a static
/// string; never NULL, never freed. Any thread.
#[no_mangle]
pub extern "C" fn fastnet_error_name(code: i32) -> *const c_char {
    ffi::guard(c"FASTNET_ERROR_PANIC".as_ptr(), || {
        ffi::error_name(code).as_ptr()
    })
}
