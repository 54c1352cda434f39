//! Helpers of the C ABI tests: a server on free ports with a development
//! certificate, a pinned client configuration, and owned copies of events.
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};
use std::ptr;
use std::time::{Duration, Instant};

use fastnet::FastNetEventType::*;
use fastnet::*;

/// An event copied out of the handle's buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    pub kind: FastNetEventType,
    pub peer: u64,
    pub channel: u8,
    pub data: Vec<u8>,
    pub error_code: i32,
    pub reason: FastNetDisconnectReason,
    pub code: u32,
    pub message: String,
}

/// Copies an event (its data and message are only valid until the next poll).
pub fn own(ev: &FastNetEvent) -> Owned {
    // SAFETY: the library documents `data` as `data_len` readable bytes and
    // `message` as a NUL-terminated string, valid until the next poll.
    let (data, message) = unsafe {
        (
            std::slice::from_raw_parts(ev.data, ev.data_len).to_vec(),
            CStr::from_ptr(ev.message).to_string_lossy().into_owned(),
        )
    };
    Owned {
        kind: ev.r#type,
        peer: ev.peer_id,
        channel: ev.channel,
        data,
        error_code: ev.error_code,
        reason: ev.disconnect_reason,
        code: ev.disconnect_code,
        message,
    }
}

pub fn empty_event() -> FastNetEvent {
    // SAFETY: an all-zero FastNetEvent is valid: NONE (0), null pointers, zeros.
    unsafe { std::mem::zeroed() }
}

pub fn last_error() -> String {
    // SAFETY: fastnet_last_error returns a NUL-terminated thread-local string.
    unsafe { CStr::from_ptr(fastnet_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Polls a client once.
pub fn poll_client(c: FastNetClient) -> Option<Owned> {
    let mut ev = empty_event();
    // SAFETY: `ev` is a valid, writable event.
    unsafe { fastnet_client_poll(c, &mut ev) }.then(|| own(&ev))
}

/// Polls a server once.
pub fn poll_server(s: FastNetServer) -> Option<Owned> {
    let mut ev = empty_event();
    // SAFETY: `ev` is a valid, writable event.
    unsafe { fastnet_server_poll(s, &mut ev) }.then(|| own(&ev))
}

/// A server on loopback with a development certificate and free ports.
pub struct TestServer {
    pub handle: FastNetServer,
    pub tcp_port: u16,
    pub udp_port: u16,
    pub fingerprint: CString,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub fn start_with(tweak: impl FnOnce(&mut FastNetServerConfig)) -> Self {
        // SAFETY: a zeroed config is then filled by config_default.
        let mut cfg: FastNetServerConfig = unsafe { std::mem::zeroed() };
        // SAFETY: `cfg` is writable.
        assert_eq!(unsafe { fastnet_server_config_default(&mut cfg) }, 0);
        cfg.bind_address = c"127.0.0.1".as_ptr();
        cfg.dev_certificate = true;
        // Blocking connects in the test thread need the server serviced meanwhile.
        cfg.service_thread = true;
        tweak(&mut cfg);
        // SAFETY: `cfg` is initialized; its strings are static.
        let handle = unsafe { fastnet_server_create_with(&cfg) };
        assert!(!handle.is_null(), "server: {}", last_error());
        let (mut udp, mut tcp) = (0u16, 0u16);
        // SAFETY: valid out-pointers.
        assert_eq!(
            unsafe { fastnet_server_local_ports(handle, &mut udp, &mut tcp) },
            0
        );
        let mut buf = [0 as c_char; FASTNET_SHA256_FINGERPRINT_BUFFER];
        // SAFETY: `buf` has the size given.
        assert_eq!(
            unsafe { fastnet_server_certificate_sha256(handle, buf.as_mut_ptr(), buf.len()) },
            0
        );
        // SAFETY: the library wrote a NUL-terminated string.
        let fingerprint = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_owned();
        Self {
            handle,
            tcp_port: tcp,
            udp_port: udp,
            fingerprint,
        }
    }

    /// A client configuration for this server, pinning its certificate.
    pub fn client_config(&self) -> FastNetClientConfig {
        // SAFETY: zeroed, then filled by config_default.
        let mut cfg: FastNetClientConfig = unsafe { std::mem::zeroed() };
        // SAFETY: `cfg` is writable.
        assert_eq!(unsafe { fastnet_client_config_default(&mut cfg) }, 0);
        cfg.host = c"127.0.0.1".as_ptr();
        cfg.port = self.tcp_port;
        cfg.pinned_sha256 = self.fingerprint.as_ptr();
        cfg
    }

    /// Connects a client with `tweak` applied to the pinned configuration.
    pub fn connect(&self, tweak: impl FnOnce(&mut FastNetClientConfig)) -> FastNetClient {
        let mut cfg = self.client_config();
        tweak(&mut cfg);
        // SAFETY: `cfg` is initialized and its strings outlive the call.
        let c = unsafe { fastnet_client_connect_with(&cfg) };
        assert!(!c.is_null(), "connect: {}", last_error());
        c
    }

    /// Polls the server (and drives `client`, if any) until `pick` accepts an
    /// event; echoes data back when `echo` is set.
    pub fn run_until<T>(
        &self,
        client: FastNetClient,
        timeout: Duration,
        echo: bool,
        mut pick: impl FnMut(Side, &Owned) -> Option<T>,
    ) -> Option<T> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            while let Some(ev) = poll_server(self.handle) {
                if echo && ev.kind == FASTNET_EVENT_DATA {
                    // SAFETY: `ev.data` is an owned Vec.
                    let rc = unsafe {
                        fastnet_server_send(
                            self.handle,
                            ev.peer,
                            ev.channel,
                            ev.data.as_ptr().cast(),
                            ev.data.len(),
                        )
                    };
                    assert_eq!(rc, 0, "echo: {}", last_error());
                }
                if let Some(t) = pick(Side::Server, &ev) {
                    return Some(t);
                }
            }
            if !client.is_null() {
                while let Some(ev) = poll_client(client) {
                    if let Some(t) = pick(Side::Client, &ev) {
                        return Some(t);
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        None
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = fastnet_server_destroy(self.handle);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

pub fn send(c: FastNetClient, channel: u8, data: &[u8]) -> i32 {
    // SAFETY: `data` is a valid slice.
    unsafe { fastnet_client_send(c, channel, data.as_ptr().cast(), data.len()) }
}

pub fn null_client() -> FastNetClient {
    ptr::null_mut()
}
