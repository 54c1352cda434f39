//! Linux's batched UDP system calls for both drivers: `recvmmsg`
//! takes every queued datagram (up to [`RECV_BATCH`]) in one call, `sendmmsg`
//! sends everything a service pass produced in one call, and UDP generic
//! segmentation offload (`UDP_SEGMENT`, Linux 4.18+) hands a run of equal-sized
//! datagrams to the same address to the kernel as one buffer, which splits it
//! late (a bulk transfer's fragments). `ppoll` waits on the socket with a
//! nanosecond timeout.
//!
//! A GSO message the kernel refuses (a device that cannot checksum, a path
//! MTU below the segment size, a socket without checksums) is sent again
//! datagram by datagram, and GSO stays off for that socket.
//!
//! Receiving starts with plain `recvfrom` calls (half the cost of an empty
//! `recvmmsg`, see `UdpIo::receive`), and a driver waits for datagrams in a
//! blocking `recvfrom` with a receive timeout counted in kernel ticks
//! ([`RecvBatch::recv_one_blocking`], [`kernel_tick`]).
//!
//! UDP generic receive offload (`UDP_GRO`, Linux 5.0+), when a socket asks
//! for it, is the receiving half of GSO: a run of equal-sized datagrams from
//! one source (a GSO send, or datagrams a network card's GRO merged) stays one
//! buffer in the kernel, and a control message gives the segment size, by
//! which [`Run::for_each`] splits it again. Slots then hold a whole run
//! ([`GRO_SLOT_BYTES`]), and every receive is a `recvmsg` or `recvmmsg` with
//! a control buffer, since only the control message tells one datagram from a
//! run.
//!
//! Every call but that wait passes `MSG_DONTWAIT`, so none blocks whatever the
//! socket's blocking flag (the socket is in blocking mode for that wait, and
//! the service thread shares the socket and sets it too). A lone
//! datagram, and the datagrams of a GSO run the device refused, go out with
//! one `sendto` each ([`send_dontwait`]).
//! The header arrays point into boxed buffers whose addresses never move; they
//! are built once, so a call costs no set-up beyond resetting what the kernel
//! wrote.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use socket2::SockAddr;

use crate::net::io::FlushReport;

/// Datagrams taken by one `recvmmsg`. A game server's tick from many clients
/// arrives in a few calls instead of one per datagram; a bigger batch costs
/// memory (`RECV_BATCH` × the datagram limit) for little more.
pub const RECV_BATCH: usize = 32;
/// Datagrams sent by one `sendmmsg` at most (a full batch is flushed early).
pub const SEND_BATCH: usize = 64;
/// Bytes of queued sends before a flush: the largest UDP payload, so one GSO
/// run can fill it.
const SEND_ARENA_BYTES: usize = 65_507;
/// Segments per GSO send: the kernel's limit (`UDP_MAX_SEGMENTS`) was 64 until
/// Linux 6.2.
const GSO_MAX_SEGMENTS: usize = 64;
/// `UDP_SEGMENT` (linux/udp.h): not in every libc crate target.
const UDP_SEGMENT: libc::c_int = 103;
/// Bytes of a socket address buffer.
const NAME_BYTES: libc::socklen_t = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
/// Bytes of one GSO control message buffer (a `u16` payload), as `u64`s for
/// alignment.
const CONTROL_WORDS: usize = 4;
/// `UDP_GRO` (linux/udp.h): not in every libc crate target.
const UDP_GRO: libc::c_int = 104;
/// Bytes of a receive slot when GRO is on: the largest run the kernel builds
/// (a 16-bit IP length's worth of UDP payload).
pub const GRO_SLOT_BYTES: usize = 1 << 16;

/// The IP socket address the kernel wrote in `name` (`len` bytes).
fn socket_addr(name: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match name.ss_family as libc::c_int {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says it is a sockaddr_in, and it is that long.
            let a =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says it is a sockaddr_in6, and it is that long.
            let a =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// What one receive slot holds: one datagram, or (with GRO) a run of
/// datagrams from one source, `segment` bytes each but the last, which may be
/// shorter.
#[derive(Debug)]
pub struct Run<'a> {
    /// The source of every datagram in the run.
    pub from: SocketAddr,
    /// The datagrams, back to back.
    pub bytes: &'a mut [u8],
    /// Bytes of each datagram but the last (`bytes.len()` for one datagram).
    pub segment: usize,
}

impl Run<'_> {
    /// Datagrams in the run (an empty datagram counts as one).
    pub fn count(&self) -> usize {
        // One datagram (every receive without GRO) costs no division.
        if self.bytes.len() <= self.segment {
            1
        } else {
            self.bytes.len().div_ceil(self.segment.max(1))
        }
    }

    /// Hands each datagram to `f`, in order, and every one of them even when
    /// `f` says to stop (they are off the socket already). Returns whether
    /// every call said to go on.
    pub fn for_each(self, mut f: impl FnMut(SocketAddr, &mut [u8]) -> bool) -> bool {
        let segment = self.segment.max(1);
        let mut go_on = true;
        let mut rest = self.bytes;
        loop {
            let (datagram, tail) = rest.split_at_mut(segment.min(rest.len()));
            go_on &= f(self.from, datagram);
            if tail.is_empty() {
                return go_on;
            }
            rest = tail;
        }
    }
}

/// The receive half: `RECV_BATCH` slots of one datagram each, or of one run
/// each with GRO.
pub struct RecvBatch {
    /// `RECV_BATCH` slots of `slot_bytes` each.
    slots: Box<[u8]>,
    slot_bytes: usize,
    /// The longest datagram kept (longer ones, and runs of them, are dropped):
    /// `slot_bytes` without GRO.
    max_datagram: usize,
    names: Box<[libc::sockaddr_storage]>,
    iovecs: Box<[libc::iovec]>,
    headers: Box<[libc::mmsghdr]>,
    /// One control buffer per slot (GRO only; empty otherwise).
    controls: Box<[[u64; CONTROL_WORDS]]>,
    /// Headers the kernel wrote in the last call, to reset before the next.
    dirty: usize,
    /// A datagram (or run) a blocking wait received into the first slot, for
    /// the next [`RecvBatch::take_held`]: source, length, segment size.
    held: Option<(SocketAddr, usize, usize)>,
}

// SAFETY (both batches): the raw pointers in `iovecs` and `headers` point into the boxed
// buffers owned by the same value; they move with it between threads and are
// only used through `&mut self`.
unsafe impl Send for RecvBatch {}
// SAFETY: as for `RecvBatch`.
unsafe impl Send for SendBatch {}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("slot_bytes", &self.slot_bytes)
            .field("max_datagram", &self.max_datagram)
            .field("gro", &self.gro())
            .finish()
    }
}

impl RecvBatch {
    /// Slots for datagrams of up to `max_datagram` bytes (longer ones are
    /// dropped). With `gro` (the socket has [`enable_gro`] on), each slot
    /// holds a run of [`GRO_SLOT_BYTES`] at most, with a control buffer for
    /// its segment size.
    pub fn new(max_datagram: usize, gro: bool) -> Self {
        let slot_bytes = if gro {
            GRO_SLOT_BYTES.max(max_datagram)
        } else {
            max_datagram
        };
        // Zeroed: at GRO's 2 MiB the allocator normally maps fresh pages,
        // which become resident only as the kernel writes runs into them.
        let mut slots = vec![0u8; RECV_BATCH * slot_bytes].into_boxed_slice();
        // SAFETY: sockaddr_storage is plain data; all-zero is valid.
        let mut names: Box<[libc::sockaddr_storage]> =
            (0..RECV_BATCH).map(|_| unsafe { zeroed() }).collect();
        let mut controls: Box<[[u64; CONTROL_WORDS]]> =
            vec![[0; CONTROL_WORDS]; if gro { RECV_BATCH } else { 0 }].into_boxed_slice();
        let mut iovecs: Box<[libc::iovec]> = (0..RECV_BATCH)
            .map(|i| libc::iovec {
                // SAFETY: in bounds: slot i of RECV_BATCH.
                iov_base: unsafe { slots.as_mut_ptr().add(i * slot_bytes) }.cast(),
                iov_len: slot_bytes,
            })
            .collect();
        let headers: Box<[libc::mmsghdr]> = (0..RECV_BATCH)
            .map(|i| {
                // SAFETY: mmsghdr is plain data; all-zero is a valid value.
                let mut h: libc::mmsghdr = unsafe { zeroed() };
                h.msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = NAME_BYTES;
                h.msg_hdr.msg_iov = &mut iovecs[i];
                h.msg_hdr.msg_iovlen = 1;
                if let Some(control) = controls.get_mut(i) {
                    h.msg_hdr.msg_control = control.as_mut_ptr().cast();
                    h.msg_hdr.msg_controllen = size_of::<[u64; CONTROL_WORDS]>() as _;
                }
                h
            })
            .collect();
        Self {
            slots,
            slot_bytes,
            max_datagram,
            names,
            iovecs,
            headers,
            controls,
            dirty: 0,
            held: None,
        }
    }

    /// Turns UDP GRO on for `socket` (see [`enable_gro`]) and, if the
    /// kernel takes it, makes the slots take runs; returns whether they do.
    /// The caller must not let a receive run on `socket` between the two
    /// (both drivers hold their lock).
    pub fn enable_gro(&mut self, socket: &UdpSocket) -> bool {
        debug_assert!(self.held.is_none(), "a held datagram is taken first");
        if !self.gro() && enable_gro(socket) {
            *self = Self::new(self.max_datagram, true);
        }
        self.gro()
    }

    /// Whether slots take GRO runs.
    pub fn gro(&self) -> bool {
        !self.controls.is_empty()
    }

    /// Receives the datagrams queued on `socket`, without blocking, into the
    /// slots (a run each, with GRO). Returns how many slots were filled (0:
    /// none queued). Fewer than [`RECV_BATCH`] means the socket was empty
    /// when the call returned.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        debug_assert!(self.held.is_none(), "a held datagram is taken first");
        // The kernel writes the address length, the control length, the
        // flags and the length of each header it fills (and of the one it
        // tried last).
        let dirty = (self.dirty + 1).min(RECV_BATCH);
        let control_bytes = if self.gro() {
            size_of::<[u64; CONTROL_WORDS]>()
        } else {
            0
        };
        for h in &mut self.headers[..dirty] {
            h.msg_hdr.msg_namelen = NAME_BYTES;
            h.msg_hdr.msg_controllen = control_bytes as _;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        loop {
            // SAFETY: `headers` holds RECV_BATCH valid headers whose buffers,
            // names and control buffers live as long as `self`.
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    self.headers.as_mut_ptr(),
                    RECV_BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                self.dirty = n as usize;
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock => return Ok(0),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(e),
            }
        }
    }

    /// Waits in `recvfrom` (`recvmsg` with GRO; the socket must be in
    /// blocking mode, with its receive timeout set) for one datagram or run,
    /// and keeps it in the first slot for [`RecvBatch::take_held`]. This is
    /// the cheapest way to sleep until a datagram comes: one system call that
    /// returns with the datagram, where `ppoll` then `recvfrom` take two, and
    /// `ppoll`'s high-resolution timeout costs a timer reprogramming when
    /// cancelled. Returns whether anything arrived (`false`: the timeout
    /// passed, or a signal interrupted the wait).
    pub fn recv_one_blocking(
        &mut self,
        socket: &UdpSocket,
        connected: Option<SocketAddr>,
    ) -> io::Result<bool> {
        match self.recv_held(socket, connected, libc::MSG_TRUNC) {
            Ok(Some(_)) => Ok(true),
            Ok(None) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// [`RecvBatch::recv_one`] that keeps what came for
    /// [`RecvBatch::take_held`] instead of lending it (the Tokio driver
    /// receives inside a closure that cannot return a borrow). Returns
    /// `Ok(None)` when nothing is queued, `Ok(Some(false))` for a datagram
    /// that had to be dropped, `Ok(Some(true))` when one is held.
    #[cfg(feature = "tokio")]
    pub fn recv_one_held(
        &mut self,
        socket: &UdpSocket,
        connected: Option<SocketAddr>,
    ) -> io::Result<Option<bool>> {
        debug_assert!(self.held.is_none(), "a held datagram is taken first");
        self.recv_held(socket, connected, libc::MSG_DONTWAIT | libc::MSG_TRUNC)
    }

    /// `recv_from` with `flags`, keeping what came for `take_held`.
    fn recv_held(
        &mut self,
        socket: &UdpSocket,
        connected: Option<SocketAddr>,
        flags: libc::c_int,
    ) -> io::Result<Option<bool>> {
        Ok(match self.recv_from(socket, connected, flags)? {
            Some(Some(run)) => {
                self.held = Some((run.from, run.bytes.len(), run.segment));
                Some(true)
            }
            Some(None) => Some(false),
            None => None,
        })
    }

    /// The datagram (or run) a blocking wait received, once.
    pub fn take_held(&mut self) -> Option<Run<'_>> {
        let (from, len, segment) = self.held.take()?;
        Some(Run {
            from,
            bytes: &mut self.slots[..len],
            segment,
        })
    }

    /// Receives one datagram (or run), without blocking, into the first slot
    /// with a plain `recvfrom` (`recv` when `connected` names the socket's
    /// only peer; `recvmsg` with GRO). An empty socket costs about half an
    /// empty `recvmmsg` here (no message header and I/O vector to copy in from
    /// user memory), which is what a spinning or freshly woken receiver pays
    /// most often.
    ///
    /// Returns `Ok(None)` when nothing is queued, `Ok(Some(None))` for a
    /// datagram that had to be dropped (longer than the datagram limit, so not
    /// ours, or from a source that is not an IP address), and
    /// `Ok(Some(Some(_)))` with what came.
    pub fn recv_one(
        &mut self,
        socket: &UdpSocket,
        connected: Option<SocketAddr>,
    ) -> io::Result<Option<Option<Run<'_>>>> {
        debug_assert!(self.held.is_none(), "a held datagram is taken first");
        self.recv_from(socket, connected, libc::MSG_DONTWAIT | libc::MSG_TRUNC)
    }

    /// `recvfrom` (or, with GRO, `recvmsg`) into the first slot with `flags`
    /// (which include `MSG_TRUNC`), as [`RecvBatch::recv_one`] describes; an
    /// interrupted call is retried unless the call may block.
    fn recv_from(
        &mut self,
        socket: &UdpSocket,
        connected: Option<SocketAddr>,
        flags: libc::c_int,
    ) -> io::Result<Option<Option<Run<'_>>>> {
        if self.gro() {
            return self.recv_msg(socket, connected, flags);
        }
        let slot = &mut self.slots[..self.slot_bytes];
        let mut name_len = NAME_BYTES;
        let (name, name_len_ptr) = if connected.is_some() {
            (std::ptr::null_mut(), std::ptr::null_mut())
        } else {
            (
                (&mut self.names[0] as *mut libc::sockaddr_storage).cast::<libc::sockaddr>(),
                &mut name_len as *mut libc::socklen_t,
            )
        };
        let Some(n) = receive_call(flags, || {
            // SAFETY: `slot` is `slot_bytes` long and writable; `name` is
            // null or a sockaddr_storage with its length in `name_len`.
            // MSG_TRUNC makes the call return the datagram's real length.
            unsafe {
                libc::recvfrom(
                    socket.as_raw_fd(),
                    slot.as_mut_ptr().cast(),
                    slot.len(),
                    flags,
                    name,
                    name_len_ptr,
                )
            }
        })?
        else {
            return Ok(None);
        };
        if n > self.max_datagram {
            return Ok(Some(None));
        }
        let from = match connected {
            Some(peer) => peer,
            None => match socket_addr(&self.names[0], name_len) {
                Some(from) => from,
                None => return Ok(Some(None)),
            },
        };
        Ok(Some(Some(Run {
            from,
            bytes: &mut self.slots[..n],
            segment: n,
        })))
    }

    /// [`RecvBatch::recv_from`] with GRO: `recvmsg` into the first slot and
    /// its control buffer, through the first header.
    fn recv_msg(
        &mut self,
        socket: &UdpSocket,
        connected: Option<SocketAddr>,
        flags: libc::c_int,
    ) -> io::Result<Option<Option<Run<'_>>>> {
        // The first header is also the batch's: `recv` resets it before each
        // `recvmmsg` whatever it holds.
        let h = &mut self.headers[0].msg_hdr;
        let Some(n) = receive_call(flags, || {
            h.msg_namelen = NAME_BYTES;
            h.msg_controllen = size_of::<[u64; CONTROL_WORDS]>() as _;
            h.msg_flags = 0;
            // SAFETY: the first header points at the first slot, its name and
            // its control buffer, all owned by `self`.
            unsafe { libc::recvmsg(socket.as_raw_fd(), h, flags & !libc::MSG_TRUNC) }
        })?
        else {
            return Ok(None);
        };
        self.headers[0].msg_len = n as libc::c_uint;
        Ok(Some(self.run(0, connected)))
    }

    /// Datagram `i` of the last [`RecvBatch::recv`] (a run of them with GRO):
    /// its source and bytes, or `None` when it was truncated or longer than
    /// the datagram limit (not ours), or its source is not an IP address.
    pub fn get(&mut self, i: usize) -> Option<Run<'_>> {
        self.run(i, None)
    }

    /// What slot `i` holds, as its header describes it; the source is
    /// `connected` when given.
    fn run(&mut self, i: usize, connected: Option<SocketAddr>) -> Option<Run<'_>> {
        let h = &self.headers[i];
        if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let len = (h.msg_len as usize).min(self.slot_bytes);
        let segment = match self.gro() {
            // SAFETY: the kernel wrote `msg_controllen` bytes of control
            // messages into this header's control buffer.
            true => unsafe { gro_segment(&h.msg_hdr) }.unwrap_or(len),
            false => len,
        };
        if segment > self.max_datagram {
            return None;
        }
        let from = match connected {
            Some(peer) => peer,
            None => socket_addr(&self.names[i], h.msg_hdr.msg_namelen)?,
        };
        let _ = &self.iovecs;
        let start = i * self.slot_bytes;
        Some(Run {
            from,
            bytes: &mut self.slots[start..start + len],
            segment: segment.max(1),
        })
    }
}

/// Makes a receive system call (`call`, passed `flags`) until a signal does
/// not interrupt it; a call that may block returns its interruption, so a
/// signal ends a wait. Returns the length it received, or `None` when nothing
/// was queued.
fn receive_call(flags: libc::c_int, mut call: impl FnMut() -> isize) -> io::Result<Option<usize>> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => return Ok(None),
            io::ErrorKind::Interrupted if flags & libc::MSG_DONTWAIT != 0 => continue,
            _ => return Err(e),
        }
    }
}

/// The segment size of a GRO run, from the `UDP_GRO` control message the
/// kernel wrote in `h` (`None`: a single datagram).
///
/// # Safety
/// `h.msg_control` holds `h.msg_controllen` bytes of control messages
/// written by the kernel.
unsafe fn gro_segment(h: &libc::msghdr) -> Option<usize> {
    // SAFETY: per the contract, the CMSG macros walk valid control data.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return usize::try_from(size).ok().filter(|&s| s > 0);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// One queued datagram: where its bytes sit in the arena and where it goes.
#[derive(Clone, Copy, Debug)]
struct Queued {
    to: SocketAddr,
    offset: usize,
    len: usize,
}

/// The send half: datagrams queued back to back in one arena, so a run of
/// equal-sized ones to one address is already the single buffer GSO wants.
pub struct SendBatch {
    arena: Box<[u8]>,
    used: usize,
    queued: Vec<Queued>,
    /// Scratch for one `sendmmsg`, rebuilt per flush (entries point into the
    /// arena and into these boxes).
    names: Vec<SockAddr>,
    iovecs: Box<[libc::iovec]>,
    headers: Box<[libc::mmsghdr]>,
    controls: Box<[[u64; CONTROL_WORDS]]>,
    max_datagram: usize,
    /// Whether the kernel takes `UDP_SEGMENT` (turned off if a send says no).
    gso: bool,
    /// The address the socket is connected to: datagrams for it go without
    /// one (no route lookup per send).
    connected: Option<SocketAddr>,
    /// When the socket's buffer is full, keep what did not go for the next
    /// flush (the Tokio driver, which then awaits writability) instead of
    /// dropping it as UDP would (the game-loop drivers).
    keep_blocked: bool,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("queued", &self.queued.len())
            .field("gso", &self.gso)
            .finish()
    }
}

impl SendBatch {
    /// An empty batch for datagrams of up to `max_datagram` bytes, using GSO
    /// when `gso` (see [`gso_supported`]).
    pub fn new(max_datagram: usize, gso: bool) -> Self {
        Self {
            arena: vec![0u8; SEND_ARENA_BYTES.max(max_datagram)].into_boxed_slice(),
            used: 0,
            queued: Vec::with_capacity(SEND_BATCH),
            names: Vec::with_capacity(SEND_BATCH),
            // SAFETY: plain C data; all-zero is valid.
            iovecs: (0..SEND_BATCH).map(|_| unsafe { zeroed() }).collect(),
            headers: (0..SEND_BATCH).map(|_| unsafe { zeroed() }).collect(),
            controls: vec![[0u64; CONTROL_WORDS]; SEND_BATCH].into_boxed_slice(),
            max_datagram,
            gso,
            connected: None,
            keep_blocked: false,
        }
    }

    /// When a flush finds the socket's buffer full, keep the datagrams that
    /// did not go, in order, for the next flush (which sends them first), and
    /// report [`FlushReport::blocked`]; meanwhile the batch stays
    /// [`full`](SendBatch::is_full) once its arena is, so a sender that
    /// checks stops producing. Off (the default), they are dropped, as a
    /// full UDP socket would.
    #[cfg(feature = "tokio")]
    pub fn keep_when_blocked(&mut self) {
        self.keep_blocked = true;
    }

    /// The socket was connected to `peer`: datagrams to it name no address.
    pub fn set_connected(&mut self, peer: SocketAddr) {
        self.connected = Some(peer);
    }

    /// Whether GSO is in use.
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Whether no datagram is queued.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Whether the next datagram may not fit: flush first.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.queued.len() == SEND_BATCH || self.arena.len() - self.used < self.max_datagram
    }

    /// Where the next datagram is written (at least the datagram limit long).
    /// Flush first if [`SendBatch::is_full`].
    pub fn slot(&mut self) -> &mut [u8] {
        let end = (self.used + self.max_datagram).min(self.arena.len());
        &mut self.arena[self.used..end]
    }

    /// Queues the `len` bytes written at [`SendBatch::slot`] for `to`.
    pub fn commit(&mut self, to: SocketAddr, len: usize) {
        debug_assert!(len <= self.max_datagram && !self.is_full());
        self.queued.push(Queued {
            to,
            offset: self.used,
            len,
        });
        self.used += len;
    }

    /// Sends everything queued in as few system calls as the kernel allows:
    /// one `sendmmsg`, with consecutive equal-sized datagrams to the same
    /// address merged into one GSO message. With
    /// [`keep_when_blocked`](SendBatch::keep_when_blocked), a full socket
    /// buffer ends the flush with the rest still queued.
    pub fn flush(&mut self, socket: &UdpSocket) -> FlushReport {
        let mut report = FlushReport::default();
        if self.queued.is_empty() {
            return report;
        }
        if self.queued.len() == 1 {
            let q = self.queued[0];
            report.calls = 1;
            let datagram = &self.arena[q.offset..q.offset + q.len];
            let to = (self.connected != Some(q.to)).then_some(q.to);
            match send_dontwait(socket, datagram, to) {
                Ok(_) => report.sent = 1,
                Err(e) if self.keep_blocked && e.kind() == io::ErrorKind::WouldBlock => {
                    report.blocked = true;
                    return report;
                }
                Err(_) => report.failed = 1,
            }
        } else if let Some(unsent) = self.flush_many(socket, &mut report) {
            // The first `unsent` went; the rest stay where they are in the
            // arena, back to back, for the next flush.
            self.queued.drain(..unsent);
            return report;
        }
        self.queued.clear();
        self.used = 0;
        report
    }

    /// Sends the whole queue; returns the index of the first datagram kept
    /// when the socket's buffer filled up with `keep_blocked`.
    fn flush_many(&mut self, socket: &UdpSocket, report: &mut FlushReport) -> Option<usize> {
        let mut from = 0;
        loop {
            // Group the queue into messages: runs for GSO, else one datagram each.
            let mut runs: [(usize, usize); SEND_BATCH] = [(0, 0); SEND_BATCH];
            let n_runs = self.group(from, &mut runs);
            let mut start = 0;
            while start < n_runs {
                match self.send_runs(socket, &runs[start..n_runs], report) {
                    Sent::Runs(done) => start += done,
                    Sent::Blocked => return Some(runs[start].0),
                    // GSO is now off: the rest goes again, one datagram per
                    // message, through the same path (and the same handling
                    // of a full socket) as a batch that never had GSO.
                    Sent::GsoRefused => break,
                }
            }
            if start == n_runs {
                return None;
            }
            from = runs[start].0;
        }
    }

    /// Groups the queue from index `from` into messages in `runs`: runs of
    /// consecutive equal-sized datagrams to the same address (the last may be
    /// shorter) when GSO is on, else one datagram each. Returns their number.
    fn group(&self, from: usize, runs: &mut [(usize, usize); SEND_BATCH]) -> usize {
        let mut n_runs = 0;
        let mut i = from;
        while i < self.queued.len() {
            let first = self.queued[i];
            let mut j = i + 1;
            if self.gso {
                let max_segments = GSO_MAX_SEGMENTS.min(SEND_ARENA_BYTES / first.len.max(1));
                while j < self.queued.len()
                    && j - i < max_segments
                    && self.queued[j].to == first.to
                    && self.queued[j].len <= first.len
                {
                    let shorter = self.queued[j].len < first.len;
                    j += 1;
                    // A shorter datagram can only end a run.
                    if shorter {
                        break;
                    }
                }
            }
            runs[n_runs] = (i, j);
            n_runs += 1;
            i = j;
        }
        n_runs
    }

    /// One `sendmmsg` of `runs`: how many runs it consumed (at least one
    /// unless interrupted: a refused first message is counted as failed and
    /// skipped), or why it stopped.
    fn send_runs(
        &mut self,
        socket: &UdpSocket,
        runs: &[(usize, usize)],
        report: &mut FlushReport,
    ) -> Sent {
        let count = runs.len();
        self.names.clear();
        for (k, &(a, b)) in runs.iter().enumerate() {
            let first = self.queued[a];
            let last = self.queued[b - 1];
            self.names.push(SockAddr::from(first.to));
            self.iovecs[k] = libc::iovec {
                // SAFETY: in bounds of the arena: queued bytes.
                iov_base: unsafe { self.arena.as_mut_ptr().add(first.offset) }.cast(),
                iov_len: last.offset + last.len - first.offset,
            };
            // SAFETY: plain C data; all-zero is valid.
            self.headers[k] = unsafe { zeroed() };
            let h = &mut self.headers[k].msg_hdr;
            if self.connected != Some(first.to) {
                h.msg_name = self.names[k].as_ptr() as *mut libc::c_void;
                h.msg_namelen = self.names[k].len();
            }
            h.msg_iov = &mut self.iovecs[k];
            h.msg_iovlen = 1;
            if b - a > 1 {
                let control = &mut self.controls[k];
                // SAFETY: pure arithmetic.
                let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
                debug_assert!(space <= size_of::<[u64; CONTROL_WORDS]>());
                h.msg_control = control.as_mut_ptr().cast();
                h.msg_controllen = space as _;
                // SAFETY: the control buffer is aligned (u64) and `space` long.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(h);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), first.len as u16);
                }
            }
        }
        report.calls += 1;
        // SAFETY: `count` headers, each pointing into `self`'s buffers.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        let datagrams = |runs: &[(usize, usize)]| runs.iter().map(|(a, b)| b - a).sum::<usize>();
        if n > 0 {
            report.sent += datagrams(&runs[..n as usize]);
            return Sent::Runs(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => Sent::Runs(0),
            // The socket buffer is full: the rest waits for the next flush
            // (`keep_blocked`), or is dropped, as UDP would.
            io::ErrorKind::WouldBlock if self.keep_blocked => {
                report.blocked = true;
                Sent::Blocked
            }
            io::ErrorKind::WouldBlock => {
                report.failed += datagrams(runs);
                Sent::Runs(count)
            }
            // A GSO message refused: the device cannot segment or checksum
            // (`EIO`), or the segment is larger than the path's MTU or the
            // socket sends without checksums (`EINVAL`). Plain datagrams still
            // go (fragmented by IP if they must): stop merging runs, and the
            // caller sends this run and the rest one datagram each.
            _ if runs[0].1 - runs[0].0 > 1
                && matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) =>
            {
                tracing::debug!(error = %e, "UDP GSO refused; sending datagram by datagram");
                self.gso = false;
                Sent::GsoRefused
            }
            _ => {
                tracing::debug!(error = %e, "UDP send failed");
                report.failed += runs[0].1 - runs[0].0;
                Sent::Runs(1)
            }
        }
    }
}

/// What one `sendmmsg` of a flush did.
enum Sent {
    /// It consumed this many messages (sent, or failed and counted).
    Runs(usize),
    /// The socket's buffer is full and the batch keeps the rest.
    Blocked,
    /// The kernel refused a GSO message; GSO is now off.
    GsoRefused,
}

/// Sends one datagram with `sendto` (`send` when `to` is `None`: the
/// socket's connected peer), passing `MSG_DONTWAIT` so that it never blocks,
/// whatever the socket's blocking flag (see [`RecvBatch::recv_one_blocking`]).
pub fn send_dontwait(
    socket: &UdpSocket,
    datagram: &[u8],
    to: Option<SocketAddr>,
) -> io::Result<usize> {
    let name = to.map(SockAddr::from);
    let (name_ptr, name_len) = name
        .as_ref()
        .map_or((std::ptr::null(), 0), |n| (n.as_ptr(), n.len()));
    loop {
        // SAFETY: `datagram` is readable for its length; `name_ptr` is null
        // or a socket address `name_len` bytes long that lives through the call.
        let n = unsafe {
            libc::sendto(
                socket.as_raw_fd(),
                datagram.as_ptr().cast(),
                datagram.len(),
                libc::MSG_DONTWAIT,
                name_ptr.cast(),
                name_len,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The kernel's timer tick (the resolution of `CLOCK_MONOTONIC_COARSE`): the
/// unit in which it counts a socket's receive timeout (`SO_RCVTIMEO`).
/// `None` if the clock reports something implausible for a tick.
pub fn kernel_tick() -> Option<Duration> {
    static TICK: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *TICK.get_or_init(|| {
        // SAFETY: plain C data; all-zero is valid.
        let mut res: libc::timespec = unsafe { zeroed() };
        // SAFETY: a valid out-parameter.
        let r = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) };
        let tick = Duration::new(res.tv_sec as u64, res.tv_nsec as u32);
        // HZ is between 100 and 1000 on every Linux configuration.
        (r == 0 && (Duration::from_millis(1)..=Duration::from_millis(10)).contains(&tick))
            .then_some(tick)
    })
}

/// Whether the kernel knows `UDP_SEGMENT` on this socket.
pub fn gso_supported(socket: &UdpSocket) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid int-sized out-parameter.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    r == 0
}

/// Asks the kernel to keep runs of datagrams from one source together
/// (`UDP_GRO`, Linux 5.0+). Returns whether it agreed; receives on the socket
/// must then use a [`RecvBatch`] made with GRO, or runs would be truncated.
pub fn enable_gro(socket: &UdpSocket) -> bool {
    let one: libc::c_int = 1;
    // SAFETY: a valid int option value on an open socket.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            UDP_GRO,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "UDP GRO refused");
    }
    r == 0
}

/// Waits until `socket` is readable, or `timeout` passes, with the kernel's
/// high-resolution timer (`ppoll`). An interrupted wait returns early.
pub fn wait_readable(socket: &UdpSocket, timeout: Duration) -> io::Result<()> {
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `fd` is one valid entry; `ts` lives through the call.
    let r = unsafe { libc::ppoll(&mut fd, 1, &ts, std::ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        (a, b)
    }

    fn wait(b: &UdpSocket) {
        wait_readable(b, Duration::from_secs(2)).unwrap();
    }

    /// A connected pair of datagram sockets whose sender blocks while the
    /// receiver holds its datagrams (a Unix datagram socket's send buffer
    /// pays for them until they are read; UDP on loopback drops at the
    /// receiver instead), posing as UDP sockets: the send batch only calls
    /// `sendmmsg` and `send` on them.
    fn blocking_pair() -> (UdpSocket, std::os::unix::net::UnixDatagram, SocketAddr) {
        let (tx, rx) = std::os::unix::net::UnixDatagram::pair().unwrap();
        rx.set_nonblocking(true).unwrap();
        // The smallest send buffer: a few datagrams fill it.
        socket2::SockRef::from(&tx).set_send_buffer_size(1).unwrap();
        let tx = UdpSocket::from(std::os::fd::OwnedFd::from(tx));
        // Datagrams for the "connected" address name none.
        (tx, rx, SocketAddr::from(([127, 0, 0, 1], 9)))
    }

    /// Distinct datagrams (varied lengths, so no GSO run forms either).
    fn numbered(i: usize) -> Vec<u8> {
        vec![i as u8; 40 + i % 7]
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn a_batch_that_keeps_what_a_full_socket_refused_sends_it_first_next_time() {
        let (tx, rx, to) = blocking_pair();
        let mut batch = SendBatch::new(1200, false);
        batch.set_connected(to);
        batch.keep_when_blocked();
        let total = 60;
        let mut queued = 0;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let mut blocked_flushes = 0;
        while got.len() < total {
            // Queue until the batch is full or everything is queued.
            while queued < total && !batch.is_full() {
                let d = numbered(queued);
                batch.slot()[..d.len()].copy_from_slice(&d);
                batch.commit(to, d.len());
                queued += 1;
            }
            let r = batch.flush(&tx);
            assert_eq!(r.failed, 0, "nothing dropped: {r:?}");
            if r.blocked {
                blocked_flushes += 1;
                assert!(!batch.is_empty(), "what was refused is kept");
            } else {
                assert!(batch.is_empty());
            }
            // The receiver reads what it holds.
            while let Ok(n) = rx.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
        }
        assert!(blocked_flushes > 0, "the socket filled up at least once");
        let expected: Vec<Vec<u8>> = (0..total).map(numbered).collect();
        assert_eq!(got, expected, "every datagram once, in order");
    }

    #[test]
    fn a_batch_that_does_not_keep_drops_what_a_full_socket_refused() {
        let (tx, rx, to) = blocking_pair();
        let mut batch = SendBatch::new(1200, false);
        batch.set_connected(to);
        for i in 0..SEND_BATCH {
            let d = numbered(i);
            batch.slot()[..d.len()].copy_from_slice(&d);
            batch.commit(to, d.len());
        }
        let r = batch.flush(&tx);
        assert!(!r.blocked && batch.is_empty(), "{r:?}");
        assert!(r.failed > 0 && r.sent + r.failed == SEND_BATCH, "{r:?}");
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = rx.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        let expected: Vec<Vec<u8>> = (0..r.sent).map(numbered).collect();
        assert_eq!(got, expected, "the first ones, in order");
    }

    #[test]
    fn recvmmsg_takes_everything_queued_in_one_call() {
        let (a, b) = pair();
        for i in 0..40u8 {
            a.send_to(&[i; 100], b.local_addr().unwrap()).unwrap();
        }
        let mut batch = RecvBatch::new(1200, false);
        let mut got = Vec::new();
        while got.len() < 40 {
            wait(&b);
            let n = batch.recv(&b).unwrap();
            for i in 0..n {
                let Run { from, bytes: d, .. } = batch.get(i).unwrap();
                assert_eq!(from, a.local_addr().unwrap());
                assert_eq!(d.len(), 100);
                got.push(d[0]);
            }
        }
        assert_eq!(got, (0..40).collect::<Vec<_>>());
        assert_eq!(batch.recv(&b).unwrap(), 0, "empty: no error, no block");
    }

    #[test]
    fn oversized_datagrams_are_flagged() {
        let (a, b) = pair();
        a.send_to(&[1; 300], b.local_addr().unwrap()).unwrap();
        a.send_to(&[2; 50], b.local_addr().unwrap()).unwrap();
        let mut batch = RecvBatch::new(200, false);
        let mut seen = Vec::new();
        while seen.len() < 2 {
            wait(&b);
            let n = batch.recv(&b).unwrap();
            for i in 0..n {
                seen.push(batch.get(i).map(|r| r.bytes.len()));
            }
        }
        assert_eq!(seen, vec![None, Some(50)]);
    }

    /// Receives `expect` datagrams on `sock`, each filled with one byte value:
    /// (that value, length) of each.
    fn collect(rb: &mut RecvBatch, sock: &UdpSocket, expect: usize) -> Vec<(u8, usize)> {
        let mut got = Vec::new();
        while got.len() < expect {
            wait(sock);
            let n = rb.recv(sock).unwrap();
            for i in 0..n {
                let Run { bytes: d, .. } = rb.get(i).unwrap();
                assert!(d.iter().all(|&x| x == d[0]));
                got.push((d[0], d.len()));
            }
        }
        got
    }

    fn send_and_collect(
        gso: bool,
        sizes: &[(usize, bool)],
    ) -> (Vec<(u8, usize, bool)>, FlushReport) {
        let (a, b) = pair();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = SendBatch::new(1200, gso && gso_supported(&a));
        for (k, &(len, to_b)) in sizes.iter().enumerate() {
            let slot = batch.slot();
            slot[..len].fill(k as u8);
            let to = if to_b { b.local_addr() } else { c.local_addr() }.unwrap();
            batch.commit(to, len);
        }
        assert_eq!(batch.gso(), gso && gso_supported(&a));
        let report = batch.flush(&a);
        let mut got = Vec::new();
        let mut rb = RecvBatch::new(1200, false);
        for (sock, is_b) in [(&b, true), (&c, false)] {
            let expect = sizes.iter().filter(|s| s.1 == is_b).count();
            let from_sock = collect(&mut rb, sock, expect);
            got.extend(from_sock.into_iter().map(|(tag, len)| (tag, len, is_b)));
        }
        got.sort();
        (got, report)
    }

    #[test]
    fn sendmmsg_and_gso_deliver_every_datagram_intact() {
        // Fragments of a bulk message (equal, then a shorter last one), then
        // small datagrams to two addresses interleaved.
        let mut sizes: Vec<(usize, bool)> = vec![(1200, true); 20];
        sizes.push((700, true));
        sizes.extend([(64, true), (64, false), (64, true), (90, true), (90, true)]);
        for gso in [false, true] {
            let (got, report) = send_and_collect(gso, &sizes);
            let mut want: Vec<(u8, usize, bool)> = sizes
                .iter()
                .enumerate()
                .map(|(k, &(len, b))| (k as u8, len, b))
                .collect();
            want.sort();
            assert_eq!(got, want, "gso {gso}");
            assert_eq!(report.sent, sizes.len());
            assert_eq!(report.failed, 0);
            assert_eq!(report.calls, 1, "one system call for the whole batch");
        }
    }

    #[test]
    fn a_refused_gso_send_falls_back_to_one_datagram_each() {
        refused_gso_round(false);
        #[cfg(feature = "tokio")]
        refused_gso_round(true);
    }

    /// A GSO batch whose socket refuses GSO (optionally keeping what a full
    /// socket refuses) still delivers everything, one datagram per message.
    fn refused_gso_round(keep: bool) {
        let (a, b) = pair();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        if !gso_supported(&a) {
            eprintln!("UDP GSO not supported by this kernel: nothing to fall back from");
            return;
        }
        // Without UDP checksums the kernel refuses every GSO message (EINVAL)
        // while plain datagrams still go: the fallback must deliver them all.
        let one: libc::c_int = 1;
        // SAFETY: a valid int option value for SO_NO_CHECK on an open socket.
        let r = unsafe {
            libc::setsockopt(
                a.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NO_CHECK,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        let mut batch = SendBatch::new(1200, true);
        #[cfg(feature = "tokio")]
        if keep {
            batch.keep_when_blocked();
        }
        #[cfg(not(feature = "tokio"))]
        let _ = keep;
        // Two runs GSO would merge (one per destination), then a single one.
        let plan = [(&b, 300, 3), (&c, 200, 3), (&b, 64, 1)];
        let mut tag = 0u8;
        for &(to, len, count) in &plan {
            for _ in 0..count {
                batch.slot()[..len].fill(tag);
                batch.commit(to.local_addr().unwrap(), len);
                tag += 1;
            }
        }
        let report = batch.flush(&a);
        assert!(!batch.gso(), "GSO is off after the refusal");
        assert_eq!((report.sent, report.failed), (7, 0));
        // The refused message, then the rest in one `sendmmsg`.
        assert_eq!(report.calls, 2, "{report:?}");
        assert!(batch.is_empty());
        let mut rb = RecvBatch::new(1200, false);
        let mut got = collect(&mut rb, &b, 4);
        got.extend(collect(&mut rb, &c, 3));
        got.sort();
        let want = vec![
            (0, 300),
            (1, 300),
            (2, 300),
            (3, 200),
            (4, 200),
            (5, 200),
            (6, 64),
        ];
        assert_eq!(got, want);
        // Later batches go datagram by datagram from the start.
        batch.commit(b.local_addr().unwrap(), 100);
        batch.commit(b.local_addr().unwrap(), 100);
        assert_eq!(batch.flush(&a).sent, 2);
    }

    /// Sends `runs` (length, count) from a GSO batch to a socket with GRO
    /// and receives them three ways: a blocking wait, single reads and
    /// `recvmmsg`. Returns each datagram's (tag, length) in arrival order and
    /// the most datagrams one receive slot held; `None` where this kernel
    /// has no GSO or GRO.
    fn gro_round(
        max_datagram: usize,
        runs: &[(usize, usize)],
    ) -> Option<(Vec<(u8, usize)>, usize)> {
        let (a, b) = pair();
        if !gso_supported(&a) || !enable_gro(&b) {
            eprintln!("UDP GSO or GRO not supported by this kernel: skipped");
            return None;
        }
        let mut batch = SendBatch::new(1500, true);
        let mut tag = 0u8;
        for &(len, count) in runs {
            for _ in 0..count {
                batch.slot()[..len].fill(tag);
                batch.commit(b.local_addr().unwrap(), len);
                tag += 1;
            }
        }
        let report = batch.flush(&a);
        assert_eq!((report.sent, report.failed), (tag as usize, 0));
        let mut rb = RecvBatch::new(max_datagram, true);
        assert!(rb.gro());
        let mut got = Vec::new();
        let mut biggest = 0;
        let mut take = |run: Option<Run<'_>>, got: &mut Vec<(u8, usize)>| {
            let Some(run) = run else {
                got.push((u8::MAX, 0));
                return;
            };
            assert_eq!(run.from, a.local_addr().unwrap());
            biggest = biggest.max(run.count());
            let count = run.count();
            let mut seen = 0;
            assert!(run.for_each(|_, d| {
                assert!(d.iter().all(|&x| x == d[0]), "one datagram per segment");
                got.push((d[0], d.len()));
                seen += 1;
                true
            }));
            assert_eq!(seen, count);
        };
        b.set_nonblocking(false).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert!(rb.recv_one_blocking(&b, None).unwrap());
        take(rb.take_held(), &mut got);
        if let Some(run) = rb.recv_one(&b, None).unwrap() {
            take(run, &mut got);
        }
        // Until the socket stays empty (dropped runs count as one entry).
        loop {
            wait_readable(&b, Duration::from_millis(200)).unwrap();
            let n = rb.recv(&b).unwrap();
            if n == 0 {
                break;
            }
            for i in 0..n {
                take(rb.get(i), &mut got);
            }
        }
        Some((got, biggest))
    }

    #[test]
    fn gro_takes_a_gso_run_as_one_buffer_and_splits_it_back() {
        // A bulk message's fragments (equal, then a shorter last one), then
        // runs of small datagrams.
        let runs = [(1200, 20), (700, 1), (64, 5), (90, 2), (30, 1)];
        let Some((got, biggest)) = gro_round(1200, &runs) else {
            return;
        };
        let mut want = Vec::new();
        for &(len, count) in &runs {
            for _ in 0..count {
                want.push((want.len() as u8, len));
            }
        }
        assert_eq!(got, want, "every datagram, intact and in order");
        assert!(
            biggest >= 21,
            "the kernel kept the GSO run together: {biggest}"
        );
    }

    #[test]
    fn gro_runs_of_datagrams_over_the_limit_are_dropped_whole() {
        // Against a 200-byte limit: a run of short datagrams (with its
        // shorter last one) arrives; a run of 300-byte ones and a lone
        // 350-byte one are dropped (`u8::MAX` marks a dropped slot). A GSO
        // run ends where a datagram is longer than the one before.
        let Some((got, _)) = gro_round(200, &[(100, 3), (50, 1), (300, 4), (350, 1)]) else {
            return;
        };
        let kept: Vec<(u8, usize)> = got.iter().copied().filter(|d| d.0 != u8::MAX).collect();
        assert_eq!(kept, vec![(0, 100), (1, 100), (2, 100), (3, 50)]);
        assert!(got.len() >= 6, "two drops at least: {got:?}");
    }

    #[test]
    fn a_run_hands_over_every_datagram_even_after_a_stop() {
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut bytes = [1, 1, 1, 2, 2, 2, 3];
        let run = Run {
            from,
            bytes: &mut bytes,
            segment: 3,
        };
        assert_eq!(run.count(), 3);
        let mut seen = Vec::new();
        let go_on = run.for_each(|f, d| {
            assert_eq!(f, from);
            seen.push(d.to_vec());
            false
        });
        assert!(!go_on);
        assert_eq!(seen, vec![vec![1, 1, 1], vec![2, 2, 2], vec![3]]);
        // An empty datagram is one datagram.
        let empty = Run {
            from,
            bytes: &mut [],
            segment: 1,
        };
        assert_eq!(empty.count(), 1);
        let mut calls = 0;
        assert!(empty.for_each(|_, d| {
            assert!(d.is_empty());
            calls += 1;
            true
        }));
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_full_batch_says_so() {
        let mut batch = SendBatch::new(1200, false);
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut n = 0;
        while !batch.is_full() {
            batch.commit(to, 1200);
            n += 1;
        }
        assert_eq!(n, SEND_ARENA_BYTES / 1200);
        let mut small = SendBatch::new(1200, false);
        for _ in 0..SEND_BATCH {
            assert!(!small.is_full());
            small.commit(to, 10);
        }
        assert!(small.is_full());
    }

    #[test]
    fn single_reads_take_one_datagram_and_drop_oversized_ones() {
        let (a, b) = pair();
        let mut batch = RecvBatch::new(200, false);
        assert!(batch.recv_one(&b, None).unwrap().is_none(), "empty");
        a.send_to(&[1; 300], b.local_addr().unwrap()).unwrap();
        a.send_to(&[2; 50], b.local_addr().unwrap()).unwrap();
        wait(&b);
        assert!(
            matches!(batch.recv_one(&b, None).unwrap(), Some(None)),
            "longer than a slot: dropped"
        );
        let Run { from, bytes: d, .. } = batch.recv_one(&b, None).unwrap().unwrap().unwrap();
        assert_eq!((from, d.len(), d[0]), (a.local_addr().unwrap(), 50, 2));
        assert!(batch.recv_one(&b, None).unwrap().is_none());
        // A connected socket names no source; the peer is the source.
        b.connect(a.local_addr().unwrap()).unwrap();
        a.send_to(&[3; 10], b.local_addr().unwrap()).unwrap();
        wait(&b);
        let peer = a.local_addr().unwrap();
        let Run { from, bytes: d, .. } = batch.recv_one(&b, Some(peer)).unwrap().unwrap().unwrap();
        assert_eq!((from, d), (peer, &mut [3u8; 10][..]));
    }

    #[test]
    fn a_blocking_wait_holds_what_it_received_until_taken() {
        let (a, b) = pair();
        b.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut batch = RecvBatch::new(200, false);
        let t = std::time::Instant::now();
        assert!(!batch.recv_one_blocking(&b, None).unwrap(), "timed out");
        assert!(t.elapsed() >= Duration::from_millis(15), "it blocked");
        assert!(batch.take_held().is_none());
        a.send_to(&[9; 40], b.local_addr().unwrap()).unwrap();
        assert!(batch.recv_one_blocking(&b, None).unwrap());
        let Run { from, bytes: d, .. } = batch.take_held().expect("held");
        assert_eq!((from, d.len(), d[0]), (a.local_addr().unwrap(), 40, 9));
        assert!(batch.take_held().is_none(), "taken once");
        // Sends never block, even on a blocking socket.
        b.connect(a.local_addr().unwrap()).unwrap();
        assert_eq!(send_dontwait(&b, b"hi", None).unwrap(), 2);
        assert_eq!(
            send_dontwait(&a, b"to", Some(b.local_addr().unwrap())).unwrap(),
            2
        );
    }

    #[test]
    fn the_kernel_tick_is_a_plausible_hz() {
        // HZ is 100 to 1000 on Linux; this machine's coarse clock says which.
        let tick = kernel_tick().expect("a coarse clock with a tick resolution");
        assert!(tick >= Duration::from_millis(1) && tick <= Duration::from_millis(10));
    }

    #[test]
    fn ppoll_times_out_precisely_and_wakes_on_data() {
        let (a, b) = pair();
        let t = std::time::Instant::now();
        wait_readable(&b, Duration::from_micros(300)).unwrap();
        let waited = t.elapsed();
        assert!(waited >= Duration::from_micros(300), "{waited:?}");
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        wait(&b);
        let mut batch = RecvBatch::new(64, false);
        assert_eq!(batch.recv(&b).unwrap(), 1);
    }
}
