//! Misuse through the exported functions: NULL, destroyed, stale, invented
//! and wrong-kind handles, bad arguments. Every call returns an error code.

mod common;

use std::ffi::{c_char, CStr};
use std::ptr;

use common::*;
use fastnet::FastNetError::*;
use fastnet::*;

fn code(e: FastNetError) -> i32 {
    e as i32
}

#[test]
fn null_handles() {
    let null_c: FastNetClient = ptr::null_mut();
    let null_s: FastNetServer = ptr::null_mut();
    let mut ev = empty_event();
    let mut stats = FastNetStats::default();
    // SAFETY: valid out-pointers; the handles are NULL on purpose.
    unsafe {
        assert!(!fastnet_client_poll(null_c, &mut ev));
        assert_eq!(
            fastnet_last_error_code(),
            code(FASTNET_ERROR_INVALID_HANDLE)
        );
        assert!(last_error().contains("NULL"), "{}", last_error());
        assert_eq!(send(null_c, 0, b"x"), code(FASTNET_ERROR_INVALID_HANDLE));
        assert_eq!(
            fastnet_client_stats(null_c, &mut stats),
            code(FASTNET_ERROR_INVALID_HANDLE)
        );
        assert_eq!(
            fastnet_client_rtt_us(null_c),
            i64::from(code(FASTNET_ERROR_INVALID_HANDLE))
        );
        assert_eq!(
            fastnet_client_disconnect(null_c),
            code(FASTNET_ERROR_INVALID_HANDLE)
        );
        assert_eq!(
            fastnet_client_service(null_c, 0),
            code(FASTNET_ERROR_INVALID_HANDLE)
        );
        assert_eq!(
            fastnet_client_state(null_c),
            code(FASTNET_ERROR_INVALID_HANDLE)
        );
        assert_eq!(
            fastnet_client_enable_service_thread(null_c),
            code(FASTNET_ERROR_INVALID_HANDLE)
        );
        assert_eq!(
            fastnet_client_set_busy_wait_us(null_c, 50),
            code(FASTNET_ERROR_INVALID_HANDLE)
        );
        assert_eq!(
            fastnet_server_set_busy_wait_us(null_s, 50),
            code(FASTNET_ERROR_INVALID_HANDLE)
        );
        assert_eq!(
            fastnet_server_enable_gro(null_s),
            code(FASTNET_ERROR_INVALID_HANDLE)
        );
        assert_eq!(
            fastnet_client_enable_gro(null_c),
            code(FASTNET_ERROR_INVALID_HANDLE)
        );
        assert!(!fastnet_server_poll(null_s, &mut ev));
        assert_eq!(
            fastnet_server_peer_count(null_s),
            code(FASTNET_ERROR_INVALID_HANDLE)
        );
        assert_eq!(
            fastnet_server_destroy(null_s),
            code(FASTNET_ERROR_INVALID_HANDLE)
        );
        assert_eq!(
            fastnet_server_send(null_s, 1, 0, b"x".as_ptr().cast(), 1),
            code(FASTNET_ERROR_INVALID_HANDLE)
        );
        assert_eq!(fastnet_client_connect(ptr::null(), 1), ptr::null_mut());
        assert_eq!(
            fastnet_last_error_code(),
            code(FASTNET_ERROR_INVALID_ARGUMENT)
        );
        assert_eq!(fastnet_client_connect_with(ptr::null()), ptr::null_mut());
        assert_eq!(fastnet_server_create_with(ptr::null()), ptr::null_mut());
        assert_eq!(
            fastnet_server_create(0, 0, ptr::null(), ptr::null()),
            ptr::null_mut()
        );
        assert_eq!(
            fastnet_client_config_default(ptr::null_mut()),
            code(FASTNET_ERROR_INVALID_ARGUMENT)
        );
    }
}

#[test]
fn destroyed_stale_and_wrong_kind_handles() {
    let server = TestServer::start();
    let client = server.connect(|_| {});
    let as_client: FastNetClient = server.handle.cast();
    let as_server: FastNetServer = client.cast();
    assert_eq!(
        send(as_client, 0, b"x"),
        code(FASTNET_ERROR_WRONG_HANDLE_TYPE)
    );
    assert_eq!(
        fastnet_client_disconnect(as_client),
        code(FASTNET_ERROR_WRONG_HANDLE_TYPE)
    );
    assert_eq!(
        fastnet_server_destroy(as_server),
        code(FASTNET_ERROR_WRONG_HANDLE_TYPE)
    );
    assert_eq!(
        fastnet_server_enable_gro(as_server),
        code(FASTNET_ERROR_WRONG_HANDLE_TYPE)
    );
    assert_eq!(
        fastnet_client_enable_gro(as_client),
        code(FASTNET_ERROR_WRONG_HANDLE_TYPE)
    );
    assert_eq!(
        fastnet_server_peer_count(server.handle),
        fastnet_server_peer_count(server.handle)
    );

    // Invented values, including a real pointer.
    let on_stack = 0u64;
    for bogus in [
        ptr::from_ref(&on_stack) as usize,
        1,
        usize::MAX,
        0xdead_bee0,
    ] {
        let c: FastNetClient = ptr::without_provenance_mut(bogus);
        let rc = send(c, 0, b"x");
        assert!(
            rc == code(FASTNET_ERROR_INVALID_HANDLE) || rc == code(FASTNET_ERROR_WRONG_HANDLE_TYPE),
            "{bogus:#x}: {rc}"
        );
    }

    assert_eq!(fastnet_client_disconnect(client), 0);
    // Destroyed: every call fails cleanly, a second destroy too.
    assert_eq!(send(client, 0, b"x"), code(FASTNET_ERROR_INVALID_HANDLE));
    assert!(poll_client(client).is_none());
    assert_eq!(
        fastnet_last_error_code(),
        code(FASTNET_ERROR_INVALID_HANDLE)
    );
    assert_eq!(
        fastnet_client_disconnect(client),
        code(FASTNET_ERROR_INVALID_HANDLE)
    );
    assert_eq!(
        fastnet_client_destroy(client),
        code(FASTNET_ERROR_INVALID_HANDLE)
    );
    // A new client may reuse the slot; the old handle stays dead.
    let again = server.connect(|_| {});
    assert_ne!(again, client);
    assert_eq!(send(client, 0, b"x"), code(FASTNET_ERROR_INVALID_HANDLE));
    assert_eq!(send(again, 0, b"x"), 0);
    assert_eq!(fastnet_client_destroy(again), 0);
}

#[test]
fn bad_arguments() {
    let server = TestServer::start();
    let client = server.connect(|_| {});
    // SAFETY: the NULL / oversized arguments are refused before any read.
    unsafe {
        assert_eq!(
            fastnet_client_send(client, 0, ptr::null(), 4),
            code(FASTNET_ERROR_INVALID_ARGUMENT)
        );
        assert_eq!(
            fastnet_client_send(client, 0, ptr::null(), 0),
            0,
            "empty message"
        );
        let one = [1u8];
        assert_eq!(
            fastnet_client_send(client, 0, one.as_ptr().cast(), usize::MAX),
            code(FASTNET_ERROR_MESSAGE_TOO_LARGE)
        );
        assert_eq!(
            fastnet_client_send(client, 0, one.as_ptr().cast(), (64 << 20) + 1),
            code(FASTNET_ERROR_MESSAGE_TOO_LARGE)
        );
        assert_eq!(
            fastnet_client_send(client, 99, one.as_ptr().cast(), 1),
            code(FASTNET_ERROR_UNKNOWN_CHANNEL)
        );
        let big = vec![0u8; 2 << 20];
        assert_eq!(
            fastnet_client_send(client, 0, big.as_ptr().cast(), big.len()),
            code(FASTNET_ERROR_MESSAGE_TOO_LARGE),
            "over the channel's 1 MiB"
        );
        assert!(!fastnet_client_poll(client, ptr::null_mut()));
        assert_eq!(
            fastnet_last_error_code(),
            code(FASTNET_ERROR_INVALID_ARGUMENT)
        );
        assert_eq!(
            fastnet_client_stats(client, ptr::null_mut()),
            code(FASTNET_ERROR_INVALID_ARGUMENT)
        );
        let mut small = [0 as c_char; 10];
        assert_eq!(
            fastnet_server_certificate_sha256(server.handle, small.as_mut_ptr(), small.len()),
            code(FASTNET_ERROR_BUFFER_TOO_SMALL)
        );
        assert_eq!(small[0], 0);
        assert_eq!(
            fastnet_server_send(server.handle, 424242, 0, one.as_ptr().cast(), 1),
            code(FASTNET_ERROR_UNKNOWN_PEER)
        );
        // Not UTF-8.
        let bad = [0xffu8 as c_char, 0];
        assert!(fastnet_client_connect(bad.as_ptr(), 1).is_null());
        assert_eq!(
            fastnet_last_error_code(),
            code(FASTNET_ERROR_INVALID_ARGUMENT)
        );
        assert!(fastnet_client_connect(c"127.0.0.1".as_ptr(), 0).is_null());
    }
    // Inconsistent configurations.
    let mut cfg = server.client_config();
    cfg.dangerous_accept_any_certificate = true; // and a pin: two trusts
                                                 // SAFETY: initialized config.
    assert!(unsafe { fastnet_client_connect_with(&cfg) }.is_null());
    assert_eq!(
        fastnet_last_error_code(),
        code(FASTNET_ERROR_INVALID_ARGUMENT)
    );
    let mut cfg = server.client_config();
    cfg.pinned_sha256 = c"not a fingerprint".as_ptr();
    // SAFETY: initialized config.
    assert!(unsafe { fastnet_client_connect_with(&cfg) }.is_null());
    assert!(last_error().contains("pinned_sha256"), "{}", last_error());
    let mut scfg: FastNetServerConfig = unsafe_zeroed_server_config();
    // SAFETY: writable.
    unsafe { fastnet_server_config_default(&mut scfg) };
    // SAFETY: initialized config, no credentials.
    assert!(unsafe { fastnet_server_create_with(&scfg) }.is_null());
    assert!(last_error().contains("credentials"), "{}", last_error());
    scfg.dev_certificate = true;
    scfg.cert_pem_path = c"/nonexistent.pem".as_ptr();
    // SAFETY: initialized config.
    assert!(unsafe { fastnet_server_create_with(&scfg) }.is_null());
    assert_eq!(
        fastnet_last_error_code(),
        code(FASTNET_ERROR_INVALID_ARGUMENT)
    );
    // SAFETY: static strings.
    let s =
        unsafe { fastnet_server_create(0, 0, c"/nonexistent.pem".as_ptr(), c"/nope.pem".as_ptr()) };
    assert!(s.is_null());
    assert_eq!(fastnet_last_error_code(), code(FASTNET_ERROR_CREDENTIALS));
    // The same ports twice.
    let taken = server.tcp_port;
    let _ = taken;
    let second = TestServer::start();
    scfg.cert_pem_path = ptr::null();
    scfg.bind_address = c"127.0.0.1".as_ptr();
    scfg.udp_port = second.udp_port;
    scfg.tcp_port = second.tcp_port;
    // SAFETY: initialized config.
    assert!(unsafe { fastnet_server_create_with(&scfg) }.is_null());
    assert_eq!(
        fastnet_last_error_code(),
        code(FASTNET_ERROR_IO),
        "{}",
        last_error()
    );
    assert_eq!(fastnet_client_disconnect(client), 0);
}

fn unsafe_zeroed_server_config() -> FastNetServerConfig {
    // SAFETY: all-zero is a valid FastNetServerConfig (NULLs, zeros, false).
    unsafe { std::mem::zeroed() }
}

#[test]
fn version_abi_and_error_names() {
    // SAFETY: static NUL-terminated strings.
    unsafe {
        assert_eq!(
            CStr::from_ptr(fastnet_version()).to_str().unwrap(),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(
            CStr::from_ptr(fastnet_error_name(code(FASTNET_ERROR_PANIC)))
                .to_str()
                .unwrap(),
            "FASTNET_ERROR_PANIC"
        );
    }
    assert_eq!(fastnet_abi_version(), FASTNET_ABI_VERSION);
}
