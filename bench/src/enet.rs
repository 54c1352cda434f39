//! ENet 1.3 (Debian's `libenet-dev`) through a handful of hand-declared C
//! functions, wrapped in a safe [`Host`]: create, connect, send, service.
//!
//! Only the fields of ENet's structures that we read are declared, with the
//! layout of `enet/enet.h` (1.3.x, stable since 2010).

use std::ffi::{c_int, c_void, CString};
use std::net::Ipv4Addr;
use std::ptr;
use std::sync::Once;

/// `ENetAddress`: IPv4 host in network byte order, port in host order.
#[repr(C)]
struct Address {
    host: u32,
    port: u16,
}

/// The first fields of `ENetPacket` (we only read `data` and `dataLength`).
#[repr(C)]
struct Packet {
    reference_count: usize,
    flags: u32,
    data: *mut u8,
    data_length: usize,
}

/// `ENetEvent`.
#[repr(C)]
struct RawEvent {
    kind: c_int,
    peer: *mut c_void,
    channel_id: u8,
    data: u32,
    packet: *mut Packet,
}

const EVENT_CONNECT: c_int = 1;
const EVENT_DISCONNECT: c_int = 2;
const EVENT_RECEIVE: c_int = 3;
/// `ENET_PACKET_FLAG_RELIABLE`.
pub const FLAG_RELIABLE: u32 = 1;

#[link(name = "enet")]
extern "C" {
    fn enet_initialize() -> c_int;
    fn enet_address_set_host_ip(address: *mut Address, host: *const std::ffi::c_char) -> c_int;
    fn enet_host_create(
        address: *const Address,
        peers: usize,
        channels: usize,
        in_bandwidth: u32,
        out_bandwidth: u32,
    ) -> *mut c_void;
    fn enet_host_destroy(host: *mut c_void);
    fn enet_host_connect(
        host: *mut c_void,
        address: *const Address,
        channels: usize,
        data: u32,
    ) -> *mut c_void;
    fn enet_host_service(host: *mut c_void, event: *mut RawEvent, timeout_ms: u32) -> c_int;
    fn enet_host_flush(host: *mut c_void);
    fn enet_packet_create(data: *const c_void, length: usize, flags: u32) -> *mut Packet;
    fn enet_packet_destroy(packet: *mut Packet);
    fn enet_peer_send(peer: *mut c_void, channel: u8, packet: *mut Packet) -> c_int;
    fn enet_peer_disconnect_now(peer: *mut c_void, data: u32);
}

/// A peer handle, valid while its [`Host`] lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(*mut c_void);

/// What [`Host::service`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing happened.
    None,
    /// A peer connected.
    Connect(Peer),
    /// A peer left.
    Disconnect(Peer),
    /// A message arrived; its bytes were copied into the caller's buffer.
    Receive {
        /// From whom.
        peer: Peer,
        /// Its length.
        len: usize,
        /// Whether it was sent reliably.
        reliable: bool,
    },
}

/// An ENet host (server or client).
pub struct Host {
    raw: *mut c_void,
}

fn init() -> std::io::Result<()> {
    static INIT: Once = Once::new();
    let mut ok = true;
    INIT.call_once(|| {
        // SAFETY: called once per process before any other ENet function.
        ok = unsafe { enet_initialize() } == 0;
    });
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::other("enet_initialize failed"))
    }
}

fn address(ip: Ipv4Addr, port: u16) -> std::io::Result<Address> {
    let text = CString::new(ip.to_string()).expect("no NUL in an address");
    let mut addr = Address { host: 0, port };
    // SAFETY: `addr` is a valid ENetAddress and `text` a NUL-terminated string,
    // both alive for the call.
    if unsafe { enet_address_set_host_ip(&mut addr, text.as_ptr()) } != 0 {
        return Err(std::io::Error::other("enet_address_set_host_ip failed"));
    }
    Ok(addr)
}

impl Host {
    /// A server on `ip:port` accepting up to `peers` peers with 2 channels.
    pub fn server(ip: Ipv4Addr, port: u16, peers: usize) -> std::io::Result<Self> {
        init()?;
        let addr = address(ip, port)?;
        // SAFETY: `addr` is valid for the call; ENet copies it.
        let raw = unsafe { enet_host_create(&addr, peers, 2, 0, 0) };
        Self::wrap(raw)
    }

    /// A client host (one outgoing peer).
    pub fn client() -> std::io::Result<Self> {
        init()?;
        // SAFETY: a null address asks ENet for an unbound client host.
        let raw = unsafe { enet_host_create(ptr::null(), 1, 2, 0, 0) };
        Self::wrap(raw)
    }

    fn wrap(raw: *mut c_void) -> std::io::Result<Self> {
        if raw.is_null() {
            Err(std::io::Error::other("enet_host_create failed"))
        } else {
            Ok(Self { raw })
        }
    }

    /// Starts connecting to `ip:port`; the peer is up after a `Connect` event.
    pub fn connect(&mut self, ip: Ipv4Addr, port: u16) -> std::io::Result<Peer> {
        let addr = address(ip, port)?;
        // SAFETY: `self.raw` is a live host and `addr` valid for the call.
        let peer = unsafe { enet_host_connect(self.raw, &addr, 2, 0) };
        if peer.is_null() {
            Err(std::io::Error::other("enet_host_connect failed"))
        } else {
            Ok(Peer(peer))
        }
    }

    /// Queues `data` for `peer` on channel 0 (`flags`: 0 or [`FLAG_RELIABLE`]).
    pub fn send(&mut self, peer: Peer, data: &[u8], flags: u32) -> std::io::Result<()> {
        // SAFETY: ENet copies `data` (valid for its length) into a new packet.
        let packet = unsafe { enet_packet_create(data.as_ptr().cast(), data.len(), flags) };
        if packet.is_null() {
            return Err(std::io::Error::other("enet_packet_create failed"));
        }
        // SAFETY: `peer` belongs to this live host; on success ENet owns the
        // packet, on failure we still do and destroy it.
        if unsafe { enet_peer_send(peer.0, 0, packet) } != 0 {
            // SAFETY: the packet was not queued, so nothing else refers to it.
            unsafe { enet_packet_destroy(packet) };
            return Err(std::io::Error::other("enet_peer_send failed"));
        }
        Ok(())
    }

    /// Sends everything queued now.
    pub fn flush(&mut self) {
        // SAFETY: `self.raw` is a live host.
        unsafe { enet_host_flush(self.raw) }
    }

    /// `enet_host_service(host, &event, timeout_ms)`: a received message is
    /// copied into `buf` (resized) and its packet destroyed.
    pub fn service(&mut self, buf: &mut Vec<u8>, timeout_ms: u32) -> std::io::Result<Event> {
        let mut raw = RawEvent {
            kind: 0,
            peer: ptr::null_mut(),
            channel_id: 0,
            data: 0,
            packet: ptr::null_mut(),
        };
        // SAFETY: `self.raw` is a live host and `raw` a writable ENetEvent.
        let r = unsafe { enet_host_service(self.raw, &mut raw, timeout_ms) };
        if r < 0 {
            return Err(std::io::Error::other("enet_host_service failed"));
        }
        Ok(match raw.kind {
            EVENT_CONNECT => Event::Connect(Peer(raw.peer)),
            EVENT_DISCONNECT => Event::Disconnect(Peer(raw.peer)),
            EVENT_RECEIVE if !raw.packet.is_null() => {
                // SAFETY: for a receive event ENet hands us a live packet whose
                // `data` holds `data_length` bytes; we copy them, then destroy
                // the packet, which we own from now on.
                let (len, reliable) = unsafe {
                    let p = &*raw.packet;
                    let (len, reliable) = (p.data_length, p.flags & FLAG_RELIABLE != 0);
                    buf.clear();
                    buf.extend_from_slice(std::slice::from_raw_parts(p.data, len));
                    enet_packet_destroy(raw.packet);
                    (len, reliable)
                };
                Event::Receive {
                    peer: Peer(raw.peer),
                    len,
                    reliable,
                }
            }
            _ => Event::None,
        })
    }

    /// Drops a peer at once (a disconnect datagram, no waiting).
    pub fn disconnect_now(&mut self, peer: Peer) {
        // SAFETY: `peer` belongs to this live host.
        unsafe { enet_peer_disconnect_now(peer.0, 0) }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // SAFETY: `self.raw` is a live host, destroyed once.
        unsafe { enet_host_destroy(self.raw) }
    }
}
