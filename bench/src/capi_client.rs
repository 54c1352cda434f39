//! The C ABI row: a FastNet client driven only through `fastnet-capi`'s
//! exported functions (the ones `include/fastnet.h` declares), linked from its
//! rlib, the way a C or C++ game drives it: `fastnet_client_send` queues, the
//! next `fastnet_client_poll` services the connection (the ping leaves), and
//! the polls after it spin until the echo. The row's channel (unreliable or
//! reliable-ordered) is the one the C ABI names.

use std::ffi::CString;
use std::mem::MaybeUninit;
use std::ptr;
use std::time::{Duration, Instant};

use fastnet::ConnectionStats;
use fastnet_capi::{
    fastnet_client_config_default, fastnet_client_connect_with, fastnet_client_disconnect,
    fastnet_client_poll, fastnet_client_send, fastnet_client_stats, FastNetClient,
    FastNetClientConfig, FastNetDisconnectReason, FastNetEvent, FastNetEventType, FastNetStats,
    FASTNET_CHANNEL_RELIABLE_ORDERED, FASTNET_CHANNEL_UNRELIABLE,
};

use crate::rtt::{sync_ping_loop, RunOutcome, PING_BYTES};
use crate::server::ServerProcess;
use crate::{fail, BenchResult, Harness};

/// How long one round trip may take.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected C ABI client, destroyed on drop.
struct CapiClient(FastNetClient);

impl CapiClient {
    fn connect(port: u16, pin: &str) -> BenchResult<Self> {
        let host = CString::new("127.0.0.1")?;
        let pin = CString::new(pin)?;
        let mut cfg = MaybeUninit::<FastNetClientConfig>::uninit();
        // SAFETY: `cfg` points to writable memory for a config, which the call
        // fills completely with the defaults (it returns 0 when it did).
        let cfg = unsafe {
            if fastnet_client_config_default(cfg.as_mut_ptr()) != 0 {
                return Err(fail("fastnet_client_config_default failed"));
            }
            cfg.assume_init()
        };
        let cfg = FastNetClientConfig {
            host: host.as_ptr(),
            port,
            pinned_sha256: pin.as_ptr(),
            ..cfg
        };
        // SAFETY: `cfg` is initialized; its strings are NUL-terminated and
        // outlive the call (the library copies them).
        let client = unsafe { fastnet_client_connect_with(&cfg) };
        if client.is_null() {
            return Err(fail("fastnet_client_connect_with failed"));
        }
        Ok(Self(client))
    }

    fn send(&self, channel: u8, data: &[u8]) -> BenchResult<()> {
        // SAFETY: `data` points to `data.len()` readable bytes.
        let r = unsafe { fastnet_client_send(self.0, channel, data.as_ptr().cast(), data.len()) };
        if r != 0 {
            return Err(fail(format!("fastnet_client_send: {r}")));
        }
        Ok(())
    }

    /// The next event's type and data length, if any.
    fn poll(&self) -> Option<(FastNetEventType, usize)> {
        let mut ev = FastNetEvent {
            r#type: FastNetEventType::FASTNET_EVENT_NONE,
            peer_id: 0,
            channel: 0,
            data: ptr::null(),
            data_len: 0,
            error_code: 0,
            disconnect_reason: FastNetDisconnectReason::FASTNET_DISCONNECT_NONE,
            disconnect_code: 0,
            message: ptr::null(),
        };
        // SAFETY: `ev` is writable memory for an event.
        unsafe { fastnet_client_poll(self.0, &mut ev) }.then_some((ev.r#type, ev.data_len))
    }

    fn stats(&self) -> Option<ConnectionStats> {
        let mut s = FastNetStats::default();
        // SAFETY: `s` is writable memory for a stats record.
        if unsafe { fastnet_client_stats(self.0, &mut s) } != 0 {
            return None;
        }
        Some(ConnectionStats {
            packets_sent: s.packets_sent,
            packets_received: s.packets_received,
            ..ConnectionStats::default()
        })
    }
}

impl Drop for CapiClient {
    fn drop(&mut self) {
        // Closes the connection and frees the handle.
        fastnet_client_disconnect(self.0);
    }
}

/// One run of a C ABI row, on the reliable-ordered channel if `reliable`,
/// else the unreliable one.
pub fn run(h: &Harness, server: &ServerProcess, reliable: bool) -> BenchResult<RunOutcome> {
    let channel = if reliable {
        FASTNET_CHANNEL_RELIABLE_ORDERED
    } else {
        FASTNET_CHANNEL_UNRELIABLE
    };
    let t = Instant::now();
    let client = CapiClient::connect(server.port("tcp")?, server.field("pin")?)?;
    let connect = t.elapsed();
    let payload = [7u8; PING_BYTES];
    let ping = || -> BenchResult<Duration> {
        let t = Instant::now();
        client.send(channel, &payload)?;
        loop {
            match client.poll() {
                Some((FastNetEventType::FASTNET_EVENT_DATA, len)) if len == PING_BYTES => {
                    return Ok(t.elapsed())
                }
                Some((FastNetEventType::FASTNET_EVENT_DISCONNECTED, _)) => {
                    return Err(fail("disconnected"))
                }
                _ => {}
            }
            if t.elapsed() > PING_TIMEOUT {
                return Err(fail("no echo"));
            }
        }
    };
    let mut outcome = sync_ping_loop(h, ping, || client.stats())?;
    outcome.connect = Some(connect);
    Ok(outcome)
}
