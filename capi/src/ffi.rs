//! The API boundary: every exported function runs its body through [`call`],
//! which contains panics and records the thread's last error, plus the helpers
//! that read C arguments (strings, byte buffers, structures) safely.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

use crate::abi::FastNetError::{self, *};

/// Why a call failed: a `FASTNET_ERROR_` code and a readable message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub code: FastNetError,
    pub message: String,
}

impl Failure {
    pub fn new(code: FastNetError, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(FASTNET_ERROR_INVALID_ARGUMENT, message)
    }
}

pub(crate) type Outcome<T> = Result<T, Failure>;

/// The calling thread's last error: its code and its message, NUL-terminated.
struct LastError {
    code: i32,
    text: Vec<u8>,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = RefCell::new(LastError { code: FASTNET_OK as i32, text: vec![0] });
}

/// Forgets the thread's last error (keeps the buffer, so an earlier pointer
/// from `fastnet_last_error` now reads as an empty string).
fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|e| {
        let mut e = e.borrow_mut();
        e.code = FASTNET_OK as i32;
        e.text.clear();
        e.text.push(0);
    });
}

fn set_last_error(code: FastNetError, message: &str) {
    let _ = LAST_ERROR.try_with(|e| {
        let mut e = e.borrow_mut();
        e.code = code as i32;
        e.text.clear();
        push_c_text(&mut e.text, message);
    });
}

/// Appends `text` and a NUL to `out`, with interior NULs replaced so that the
/// C string is the whole message.
pub(crate) fn push_c_text(out: &mut Vec<u8>, text: &str) {
    out.extend(text.bytes().map(|b| if b == 0 { b'?' } else { b }));
    out.push(0);
}

/// The thread's last error message (a NUL-terminated string that lives in the
/// thread-local buffer).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|e| e.borrow().text.as_ptr().cast::<c_char>())
        .unwrap_or(EMPTY_C_STRING.as_ptr().cast())
}

pub(crate) fn last_error_code() -> i32 {
    LAST_ERROR
        .try_with(|e| e.borrow().code)
        .unwrap_or(FASTNET_OK as i32)
}

/// A static empty C string.
pub(crate) static EMPTY_C_STRING: [u8; 1] = [0];

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs the body of an exported function: clears the thread's last error, runs
/// `body` with panics contained, and on failure records the error and returns
/// `on_error(code)`.
pub(crate) fn call<T>(on_error: impl FnOnce(i32) -> T, body: impl FnOnce() -> Outcome<T>) -> T {
    clear_last_error();
    // AssertUnwindSafe: after a panic the only state reused is behind mutexes
    // whose poisoning is ignored on purpose (see `lock`); each handle's state
    // stays structurally valid because the core completes every mutation
    // before it can panic, and the worst case is a handle that reports errors.
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(failure)) => {
            set_last_error(failure.code, &failure.message);
            on_error(failure.code as i32)
        }
        Err(payload) => {
            let message = format!(
                "internal error (a Rust panic, please report it): {}",
                panic_message(payload.as_ref())
            );
            set_last_error(FASTNET_ERROR_PANIC, &message);
            on_error(FASTNET_ERROR_PANIC as i32)
        }
    }
}

/// Runs the body of an exported accessor that must not touch the thread's last
/// error (`fastnet_last_error` and the like), containing panics all the same.
pub(crate) fn guard<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

/// [`call`] for functions returning a status code: `FASTNET_OK` or the error.
pub(crate) fn call_status(body: impl FnOnce() -> Outcome<()>) -> i32 {
    call(|code| code, || body().map(|()| FASTNET_OK as i32))
}

/// Locks a mutex, ignoring poisoning: a panic caught at the boundary must not
/// turn every later call on the handle into another panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Largest byte buffer (PEM text) accepted from C, well below `isize::MAX`.
pub(crate) const MAX_INPUT_BYTES: usize = 64 << 20;

/// A NUL-terminated UTF-8 string argument, `None` when NULL.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged for `'a`.
pub(crate) unsafe fn opt_str<'a>(ptr: *const c_char, what: &str) -> Outcome<Option<&'a str>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string valid for 'a.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str()
        .map(Some)
        .map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
///
/// As [`opt_str`].
pub(crate) unsafe fn req_str<'a>(ptr: *const c_char, what: &str) -> Outcome<&'a str> {
    // SAFETY: forwarded from the caller.
    unsafe { opt_str(ptr, what) }?.ok_or_else(|| Failure::invalid(format!("{what} is NULL")))
}

/// `len` bytes at `ptr` as a slice: empty when `len` is 0 (whatever `ptr`),
/// an error when `ptr` is NULL with a non-zero length or when `len` exceeds
/// `max` (checked before the memory is touched, so a huge length is refused
/// without reading anything).
///
/// # Safety
///
/// When `ptr` is non-NULL and `len <= max`, `ptr` points to `len` readable
/// bytes that stay valid and unchanged for `'a`.
pub(crate) unsafe fn bytes<'a>(
    ptr: *const u8,
    len: usize,
    max: usize,
    too_large: FastNetError,
    what: &str,
) -> Outcome<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::invalid(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    if len > max {
        return Err(Failure::new(
            too_large,
            format!("{what} is {len} bytes, more than the limit of {max}"),
        ));
    }
    // SAFETY: non-NULL, len <= max <= isize::MAX, and the caller guarantees
    // `len` readable bytes valid for 'a (u8 has no alignment requirement).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The structure a non-NULL, aligned pointer refers to.
///
/// # Safety
///
/// When non-NULL and aligned, `ptr` points to an initialized `T` valid for `'a`.
pub(crate) unsafe fn input<'a, T>(ptr: *const T, what: &str) -> Outcome<&'a T> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    if !ptr.is_aligned() {
        return Err(Failure::invalid(format!("{what} is misaligned")));
    }
    // SAFETY: non-NULL and aligned; the caller guarantees an initialized T.
    Ok(unsafe { &*ptr })
}

/// Writes `value` through an output pointer after checking it.
///
/// # Safety
///
/// When non-NULL and aligned, `ptr` points to writable memory for one `T`.
pub(crate) unsafe fn output<T>(ptr: *mut T, value: T, what: &str) -> Outcome<()> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    if !ptr.is_aligned() {
        return Err(Failure::invalid(format!("{what} is misaligned")));
    }
    // SAFETY: non-NULL and aligned; the caller guarantees writable memory.
    // `write` does not read or drop the old contents (which C may have left
    // uninitialized).
    unsafe { ptr.write(value) };
    Ok(())
}

/// A static name for an error code.
pub(crate) fn error_name(code: i32) -> &'static CStr {
    ALL_ERRORS
        .iter()
        .find(|e| **e as i32 == code)
        .map_or(c"FASTNET_ERROR_UNKNOWN_CODE", |e| e.name())
}

/// Every error code, for [`error_name`].
pub(crate) const ALL_ERRORS: [FastNetError; 21] = [
    FASTNET_OK,
    FASTNET_ERROR_INVALID_HANDLE,
    FASTNET_ERROR_WRONG_HANDLE_TYPE,
    FASTNET_ERROR_INVALID_ARGUMENT,
    FASTNET_ERROR_UNKNOWN_CHANNEL,
    FASTNET_ERROR_MESSAGE_TOO_LARGE,
    FASTNET_ERROR_WOULD_BLOCK,
    FASTNET_ERROR_CLOSED,
    FASTNET_ERROR_NOT_CONNECTED,
    FASTNET_ERROR_UNKNOWN_PEER,
    FASTNET_ERROR_RESOLVE,
    FASTNET_ERROR_CONNECT,
    FASTNET_ERROR_UNTRUSTED_SERVER,
    FASTNET_ERROR_HANDSHAKE,
    FASTNET_ERROR_TIMEOUT,
    FASTNET_ERROR_NO_UDP_ANSWER,
    FASTNET_ERROR_IO,
    FASTNET_ERROR_CREDENTIALS,
    FASTNET_ERROR_BUFFER_TOO_SMALL,
    FASTNET_ERROR_RESOURCE_LIMIT,
    FASTNET_ERROR_PANIC,
];

impl FastNetError {
    /// The variant's name as a static C string.
    pub(crate) fn name(self) -> &'static CStr {
        match self {
            FASTNET_OK => c"FASTNET_OK",
            FASTNET_ERROR_INVALID_HANDLE => c"FASTNET_ERROR_INVALID_HANDLE",
            FASTNET_ERROR_WRONG_HANDLE_TYPE => c"FASTNET_ERROR_WRONG_HANDLE_TYPE",
            FASTNET_ERROR_INVALID_ARGUMENT => c"FASTNET_ERROR_INVALID_ARGUMENT",
            FASTNET_ERROR_UNKNOWN_CHANNEL => c"FASTNET_ERROR_UNKNOWN_CHANNEL",
            FASTNET_ERROR_MESSAGE_TOO_LARGE => c"FASTNET_ERROR_MESSAGE_TOO_LARGE",
            FASTNET_ERROR_WOULD_BLOCK => c"FASTNET_ERROR_WOULD_BLOCK",
            FASTNET_ERROR_CLOSED => c"FASTNET_ERROR_CLOSED",
            FASTNET_ERROR_NOT_CONNECTED => c"FASTNET_ERROR_NOT_CONNECTED",
            FASTNET_ERROR_UNKNOWN_PEER => c"FASTNET_ERROR_UNKNOWN_PEER",
            FASTNET_ERROR_RESOLVE => c"FASTNET_ERROR_RESOLVE",
            FASTNET_ERROR_CONNECT => c"FASTNET_ERROR_CONNECT",
            FASTNET_ERROR_UNTRUSTED_SERVER => c"FASTNET_ERROR_UNTRUSTED_SERVER",
            FASTNET_ERROR_HANDSHAKE => c"FASTNET_ERROR_HANDSHAKE",
            FASTNET_ERROR_TIMEOUT => c"FASTNET_ERROR_TIMEOUT",
            FASTNET_ERROR_NO_UDP_ANSWER => c"FASTNET_ERROR_NO_UDP_ANSWER",
            FASTNET_ERROR_IO => c"FASTNET_ERROR_IO",
            FASTNET_ERROR_CREDENTIALS => c"FASTNET_ERROR_CREDENTIALS",
            FASTNET_ERROR_BUFFER_TOO_SMALL => c"FASTNET_ERROR_BUFFER_TOO_SMALL",
            FASTNET_ERROR_RESOURCE_LIMIT => c"FASTNET_ERROR_RESOURCE_LIMIT",
            FASTNET_ERROR_PANIC => c"FASTNET_ERROR_PANIC",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_code_and_a_message() {
        let code = call_status(|| panic!("boom {}", 42));
        assert_eq!(code, FASTNET_ERROR_PANIC as i32);
        assert_eq!(last_error_code(), FASTNET_ERROR_PANIC as i32);
        // SAFETY: the thread-local buffer is NUL-terminated and unchanged until the next call.
        let text = unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_str()
            .unwrap();
        assert!(text.contains("boom 42"), "{text}");
        // The next call clears it.
        assert_eq!(call_status(|| Ok(())), 0);
        assert_eq!(last_error_code(), 0);
        // SAFETY: as above.
        assert_eq!(unsafe { CStr::from_ptr(last_error_ptr()) }.to_bytes(), b"");
    }

    #[test]
    fn messages_with_nul_stay_whole() {
        let code = call_status(|| Err(Failure::invalid("a\0b")));
        assert_eq!(code, FASTNET_ERROR_INVALID_ARGUMENT as i32);
        // SAFETY: NUL-terminated thread-local buffer.
        let text = unsafe { CStr::from_ptr(last_error_ptr()) };
        assert_eq!(text.to_bytes(), b"a?b");
    }

    #[test]
    fn every_error_has_its_name() {
        for e in ALL_ERRORS {
            assert_eq!(error_name(e as i32).to_str().unwrap(), format!("{e:?}"));
        }
        assert_eq!(error_name(12345), c"FASTNET_ERROR_UNKNOWN_CODE");
    }

    #[test]
    fn byte_arguments_are_checked_before_reading() {
        // SAFETY: NULL and huge lengths are refused before any read.
        unsafe {
            assert_eq!(
                bytes(
                    std::ptr::null(),
                    4,
                    10,
                    FASTNET_ERROR_MESSAGE_TOO_LARGE,
                    "data"
                )
                .unwrap_err()
                .code,
                FASTNET_ERROR_INVALID_ARGUMENT
            );
            let one = [1u8];
            assert_eq!(
                bytes(
                    one.as_ptr(),
                    usize::MAX,
                    10,
                    FASTNET_ERROR_MESSAGE_TOO_LARGE,
                    "data"
                )
                .unwrap_err()
                .code,
                FASTNET_ERROR_MESSAGE_TOO_LARGE
            );
            assert_eq!(
                bytes(
                    std::ptr::null(),
                    0,
                    10,
                    FASTNET_ERROR_INVALID_ARGUMENT,
                    "data"
                )
                .unwrap(),
                b""
            );
            assert_eq!(
                bytes(one.as_ptr(), 1, 10, FASTNET_ERROR_INVALID_ARGUMENT, "data").unwrap(),
                &[1]
            );
        }
    }
}
