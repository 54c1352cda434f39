//! The key-phase state machine of PROTOCOL.md §4 for one connection, both
//! directions: this module owns the packet keys of the current generation, the
//! secrets (and precomputed receive key) of the next one, the previous receive
//! key kept for reordered packets, and the rules deciding when an update may be
//! initiated, which key opens an incoming packet (from its key-phase bit and
//! packet number, never by trial decryption) and when the previous key is
//! erased. It is sans-IO: time is passed in, nothing here reads a clock, sends
//! or parses anything.
//!
//! Send and receive keys always move together, so one *generation* describes the
//! connection: generation `g` seals with the send key of `g`, expects the peer's
//! packets under the receive key of `g`, and its key-phase bit is `g & 1`.
//!
//! Receive path, per packet: [`KeyPhases::select_recv_key`] and
//! [`KeyPhases::open_selected`] (or both at once, [`KeyPhases::open_in_place`]), then
//! [`KeyPhases::on_packet_authenticated`] *only if the packet authenticated*, then
//! [`KeyPhases::check_key_update_frame`] for a KEY_UPDATE frame it carries.
//!
//! Erasing the previous receive key: its 3-PTO timer starts when the first packet
//! of the new phase is authenticated. For a peer-initiated update that is the
//! packet that triggers the update; for a local one, the peer's first reply in the
//! new phase (until then the peer may still be sending only old-phase packets, and
//! they must keep opening). This is RFC 9001 §6.5's rule.
//!
//! Memory: only the two keys used on every packet (current send and current
//! receive) are held expanded, as [`PacketKey`]s (560 bytes each with ring). The
//! next generation's receive key and the previous one are held as their 32 raw
//! key bytes and expanded on the stack for the packets that need them (a copy
//! for ChaCha20-Poly1305, no derivation, no allocation); the next send key is
//! derived from its secret when an update starts. An idle connection thus holds
//! two expanded keys, not five.

use std::time::{Duration, Instant};

use crate::crypto::{derive_iv, AeadBackend, CryptoError, PacketKey, PacketKeyBytes, Secret};

/// How many PTOs the previous receive key is kept after the first packet of the
/// new phase is authenticated (PROTOCOL.md §4): long enough for packets the
/// network reordered across the update to arrive, as in RFC 9001 §6.5.
pub const PREVIOUS_KEY_RETENTION_PTOS: u32 = 3;

/// Which of the held receive keys opens a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySlot {
    /// The key of the current generation.
    Current,
    /// The key of the generation before the current one (reordered old-phase
    /// packets, while it is retained).
    Previous,
    /// The precomputed key of the next generation (the peer initiated an update).
    Next,
}

/// The receive key chosen for one packet by [`KeyPhases::select_recv_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvKeySelection {
    slot: KeySlot,
    generation: u64,
}

impl RecvKeySelection {
    /// Which held key was chosen.
    pub fn slot(&self) -> KeySlot {
        self.slot
    }

    /// The generation of the chosen key (what a KEY_UPDATE frame in the packet
    /// must announce).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// A KEY_UPDATE frame broke PROTOCOL.md §4 (a protocol violation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyUpdateError {
    /// The announced generation is not that of the key that opened the packet.
    #[error("KEY_UPDATE announces generation {announced}, packet opened with generation {actual}")]
    GenerationMismatch {
        /// Generation carried by the frame.
        announced: u64,
        /// Generation of the key that opened the packet.
        actual: u64,
    },
}

/// Why [`KeyPhases::open_in_place`] did not open a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// An old-phase packet arrived after the previous key was erased: dropped
    /// without decrypting.
    #[error("no key for this key phase any more")]
    NoKey,
    /// The chosen key did not authenticate the packet.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Key phases of one connection (PROTOCOL.md §4).
#[derive(Debug)]
pub struct KeyPhases {
    backend: AeadBackend,
    /// IV of each direction, derived once from its first secret.
    send_iv: [u8; crate::crypto::IV_BYTES],
    recv_iv: [u8; crate::crypto::IV_BYTES],
    /// Number of updates so far; the key-phase bit is its low bit.
    generation: u64,
    send_current: PacketKey,
    recv_current: PacketKey,
    /// The bytes of `recv_current`, which become `recv_previous` at an update.
    recv_current_bytes: PacketKeyBytes,
    /// Receive key of `generation - 1`, until erased (erased on drop).
    recv_previous: Option<PacketKeyBytes>,
    /// Receive key of `generation + 1`, ready before it is needed.
    recv_next: PacketKeyBytes,
    /// Secrets of `generation + 1`: the send key of that generation is derived
    /// from one at the update, the keys after it from both. Current and older
    /// secrets are not kept.
    send_next_secret: Secret,
    recv_next_secret: Secret,
    /// When `recv_previous` is erased.
    previous_discard_at: Option<Instant>,
    /// First packet number authenticated in the current phase.
    first_recv_pn_in_phase: Option<u64>,
    /// First packet number sent in the current phase.
    first_sent_pn_in_phase: Option<u64>,
    packets_sent_in_phase: u64,
    /// An acknowledgement arrived for a packet sent in the current phase.
    phase_confirmed: bool,
    /// When the current phase began (update time, or first packet sent for
    /// generation 0).
    phase_started_at: Option<Instant>,
    /// A local update awaits its KEY_UPDATE frame.
    key_update_frame_pending: bool,
}

impl KeyPhases {
    /// Generation 0 of a connection from the handshake's two directional secrets
    /// (our sending secret and the peer's). The secrets of generation 1 and its
    /// receive key are derived at once.
    pub fn new(send_secret: Secret, recv_secret: Secret, backend: AeadBackend) -> KeyPhases {
        let send_iv = derive_iv(&send_secret);
        let recv_iv = derive_iv(&recv_secret);
        let send_next_secret = send_secret.next();
        let recv_next_secret = recv_secret.next();
        let recv_current_bytes = PacketKeyBytes::derive(&recv_secret);
        KeyPhases {
            backend,
            send_iv,
            recv_iv,
            generation: 0,
            send_current: PacketKey::new(&send_secret, send_iv, backend),
            recv_current: PacketKey::from_bytes(&recv_current_bytes, recv_iv, backend),
            recv_current_bytes,
            recv_previous: None,
            recv_next: PacketKeyBytes::derive(&recv_next_secret),
            send_next_secret,
            recv_next_secret,
            previous_discard_at: None,
            first_recv_pn_in_phase: None,
            first_sent_pn_in_phase: None,
            packets_sent_in_phase: 0,
            phase_confirmed: false,
            phase_started_at: None,
            key_update_frame_pending: false,
        }
    }

    /// The current generation (number of key updates so far), shared by both
    /// directions.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The key-phase bit `K` to put in outgoing packets (and the phase incoming
    /// packets of the current generation carry).
    pub fn send_phase(&self) -> bool {
        self.generation & 1 == 1
    }

    /// The key sealing outgoing packets.
    pub fn send_key(&self) -> &PacketKey {
        &self.send_current
    }

    /// Packets sent in the current phase (for the `key_update_packets` trigger).
    pub fn packets_sent_in_phase(&self) -> u64 {
        self.packets_sent_in_phase
    }

    /// When the current phase began: the update, or the first packet sent
    /// for generation 0 (`None` before it). Fixed for a given generation once
    /// set.
    pub(crate) fn phase_started_at(&self) -> Option<Instant> {
        self.phase_started_at
    }

    /// Whether the previous generation's receive key is still held.
    pub fn previous_key_retained(&self) -> bool {
        self.recv_previous.is_some()
    }

    /// Records that packet `pn` was sealed with [`KeyPhases::send_key`] and sent.
    pub fn on_packet_sent(&mut self, pn: u64, now: Instant) {
        if self.first_sent_pn_in_phase.is_none() {
            self.first_sent_pn_in_phase = Some(pn);
        }
        if self.phase_started_at.is_none() {
            self.phase_started_at = Some(now);
        }
        self.packets_sent_in_phase += 1;
    }

    /// Records that the peer acknowledged packet `pn` (call for each newly
    /// acknowledged number, or just the largest). An acknowledgement of a packet
    /// sent in the current phase confirms it.
    pub fn on_packet_acked(&mut self, pn: u64) {
        if self.first_sent_pn_in_phase.is_some_and(|first| pn >= first) {
            self.phase_confirmed = true;
        }
    }

    /// Whether a local update is allowed now: a packet sent in the current phase
    /// has been acknowledged (the peer has the current keys, so two updates are
    /// never in flight) and the previous receive key has been erased (so an
    /// update never drops a key reordered packets may still need).
    pub fn can_initiate(&self) -> bool {
        self.phase_confirmed && self.recv_previous.is_none()
    }

    /// Whether an automatic update is due: allowed ([`KeyPhases::can_initiate`])
    /// and either `max_packets` packets were sent in this phase or
    /// `max_interval` passed since it began.
    pub fn should_initiate(&self, now: Instant, max_packets: u64, max_interval: Duration) -> bool {
        self.can_initiate()
            && (self.packets_sent_in_phase >= max_packets
                || self
                    .phase_started_at
                    .is_some_and(|start| now.saturating_duration_since(start) >= max_interval))
    }

    /// Starts a local key update if [`KeyPhases::can_initiate`]: send and
    /// receive keys move to the next generation, the previous receive key is kept
    /// for the peer's old-phase packets. Returns whether it happened; if so the
    /// next packet must carry the frame from
    /// [`KeyPhases::take_pending_key_update_frame`].
    pub fn initiate(&mut self, now: Instant) -> bool {
        if !self.can_initiate() {
            return false;
        }
        self.rotate(now);
        // The erase timer starts with the peer's first packet of the new phase.
        self.previous_discard_at = None;
        self.first_recv_pn_in_phase = None;
        self.key_update_frame_pending = true;
        tracing::debug!(generation = self.generation, "key update initiated");
        true
    }

    /// The generation a KEY_UPDATE frame must announce in the next packet, once
    /// after each local update.
    pub fn take_pending_key_update_frame(&mut self) -> Option<u64> {
        std::mem::take(&mut self.key_update_frame_pending).then_some(self.generation)
    }

    /// Chooses the key for an incoming packet from its key-phase bit and full
    /// packet number, without decrypting. `None`: the packet is from the previous
    /// phase and its key was erased; drop it.
    ///
    /// Call [`KeyPhases::on_timeout`] first so an expired key is not used.
    pub fn select_recv_key(&self, phase_bit: bool, packet_number: u64) -> Option<RecvKeySelection> {
        let current = RecvKeySelection {
            slot: KeySlot::Current,
            generation: self.generation,
        };
        let next = RecvKeySelection {
            slot: KeySlot::Next,
            generation: self.generation + 1,
        };
        if phase_bit == self.send_phase() {
            return Some(current);
        }
        // The peer numbers its packets in order, so its old-phase packets are all
        // below the first one it sent (hence we received) in the current phase,
        // and its next-phase packets all above.
        let old_phase = match self.first_recv_pn_in_phase {
            Some(first) => packet_number < first,
            // Nothing received in this phase: after a local update the peer's
            // packets of the other phase are old ones.
            None => self.recv_previous.is_some(),
        };
        if !old_phase {
            return Some(next);
        }
        self.recv_previous.as_ref().map(|_| RecvKeySelection {
            slot: KeySlot::Previous,
            generation: self.generation - 1,
        })
    }

    /// Opens a packet in place (see [`PacketKey::open_in_place`]) with the key
    /// of a selection just returned by [`KeyPhases::select_recv_key`], and
    /// returns the plaintext length; [`OpenError::NoKey`] if the state changed
    /// since (stale selection). Does not change any state.
    ///
    /// The current key is used as held; the previous and next ones are expanded
    /// from their bytes on the stack (no allocation).
    pub fn open_selected(
        &self,
        selection: RecvKeySelection,
        packet_number: u64,
        header: &[u8],
        payload_and_tag: &mut [u8],
    ) -> Result<usize, OpenError> {
        let bytes = match selection.slot {
            KeySlot::Current if selection.generation == self.generation => {
                return Ok(self.recv_current.open_in_place(
                    packet_number,
                    header,
                    payload_and_tag,
                )?);
            }
            KeySlot::Next if selection.generation == self.generation + 1 => &self.recv_next,
            KeySlot::Previous if selection.generation + 1 == self.generation => {
                self.recv_previous.as_ref().ok_or(OpenError::NoKey)?
            }
            _ => return Err(OpenError::NoKey),
        };
        self.open_expanded(bytes, packet_number, header, payload_and_tag)
    }

    /// Opens with a key held as bytes, expanded for this packet only (kept out
    /// of line: the current key's path stays small).
    #[cold]
    #[inline(never)]
    fn open_expanded(
        &self,
        bytes: &PacketKeyBytes,
        packet_number: u64,
        header: &[u8],
        payload_and_tag: &mut [u8],
    ) -> Result<usize, OpenError> {
        let key = PacketKey::from_bytes(bytes, self.recv_iv, self.backend);
        Ok(key.open_in_place(packet_number, header, payload_and_tag)?)
    }

    /// Selects the key and opens the packet in place (see
    /// [`PacketKey::open_in_place`]); returns the selection (for
    /// [`KeyPhases::on_packet_authenticated`]) and the plaintext length. Does not
    /// change any state.
    pub fn open_in_place(
        &self,
        phase_bit: bool,
        packet_number: u64,
        header: &[u8],
        payload_and_tag: &mut [u8],
    ) -> Result<(RecvKeySelection, usize), OpenError> {
        let selection = self
            .select_recv_key(phase_bit, packet_number)
            .ok_or(OpenError::NoKey)?;
        let len = self.open_selected(selection, packet_number, header, payload_and_tag)?;
        Ok((selection, len))
    }

    /// Records that packet `packet_number`, opened with `selection`,
    /// authenticated. If it was opened with the next generation's key the peer
    /// initiated an update: both directions move to that generation and the new
    /// generation is returned. The first packet authenticated in a new phase
    /// starts the timer erasing the previous key after
    /// [`PREVIOUS_KEY_RETENTION_PTOS`] × `pto`.
    #[inline]
    pub fn on_packet_authenticated(
        &mut self,
        selection: RecvKeySelection,
        packet_number: u64,
        now: Instant,
        pto: Duration,
    ) -> Option<u64> {
        // Most packets: the current phase, which already had a packet.
        if selection.generation == self.generation && self.first_recv_pn_in_phase.is_some() {
            return None;
        }
        self.on_phase_packet_authenticated(selection, packet_number, now, pto)
    }

    /// [`KeyPhases::on_packet_authenticated`] for a packet that may change
    /// the phase state.
    #[inline(never)]
    fn on_phase_packet_authenticated(
        &mut self,
        selection: RecvKeySelection,
        packet_number: u64,
        now: Instant,
        pto: Duration,
    ) -> Option<u64> {
        // Computed only where needed: most packets take neither branch.
        let discard_at = || {
            now.checked_add(pto.saturating_mul(PREVIOUS_KEY_RETENTION_PTOS))
                .unwrap_or(now)
        };
        if selection.generation == self.generation + 1 {
            self.rotate(now);
            self.first_recv_pn_in_phase = Some(packet_number);
            self.previous_discard_at = Some(discard_at());
            // A local update not announced yet is superseded by the peer's.
            self.key_update_frame_pending = false;
            tracing::debug!(generation = self.generation, "key update by peer");
            return Some(self.generation);
        }
        if selection.generation == self.generation && self.first_recv_pn_in_phase.is_none() {
            self.first_recv_pn_in_phase = Some(packet_number);
            if self.recv_previous.is_some() && self.previous_discard_at.is_none() {
                self.previous_discard_at = Some(discard_at());
            }
        }
        None
    }

    /// Checks a KEY_UPDATE frame carrying `generation`, found in a packet opened
    /// with `selection`.
    pub fn check_key_update_frame(
        &self,
        selection: RecvKeySelection,
        generation: u64,
    ) -> Result<(), KeyUpdateError> {
        if generation == selection.generation {
            Ok(())
        } else {
            Err(KeyUpdateError::GenerationMismatch {
                announced: generation,
                actual: selection.generation,
            })
        }
    }

    /// Erases the previous receive key when its time has come.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.previous_discard_at.is_some_and(|at| now >= at) {
            self.recv_previous = None;
            self.previous_discard_at = None;
            tracing::trace!(generation = self.generation, "previous receive key erased");
        }
    }

    /// When [`KeyPhases::on_timeout`] next has something to do.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.previous_discard_at
    }

    /// Moves both directions to the next generation and derives the secrets and
    /// receive key of the one after. Allocates nothing.
    fn rotate(&mut self, now: Instant) {
        let send_secret = self.send_next_secret.next();
        let recv_secret = self.recv_next_secret.next();
        // Assigning over the expanded keys overwrites the old key bytes.
        self.send_current = PacketKey::new(&self.send_next_secret, self.send_iv, self.backend);
        let recv_current =
            std::mem::replace(&mut self.recv_next, PacketKeyBytes::derive(&recv_secret));
        self.recv_current = PacketKey::from_bytes(&recv_current, self.recv_iv, self.backend);
        // A previous key still held (the peer updated again within its
        // retention) is replaced, hence erased.
        self.recv_previous = Some(std::mem::replace(
            &mut self.recv_current_bytes,
            recv_current,
        ));
        // The replaced secrets are erased on drop.
        self.send_next_secret = send_secret;
        self.recv_next_secret = recv_secret;
        self.generation += 1;
        self.first_sent_pn_in_phase = None;
        self.packets_sent_in_phase = 0;
        self.phase_confirmed = false;
        self.phase_started_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KEY_BYTES;

    const PTO: Duration = Duration::from_millis(100);
    const HEADER_BYTES: usize = 13;
    /// Stand-in frame bytes: PING, or KEY_UPDATE followed by a one-byte generation.
    const PING: u8 = 0x01;
    const KEY_UPDATE: u8 = 0x04;

    struct Packet {
        header: [u8; HEADER_BYTES],
        pn: u64,
        sealed: Vec<u8>,
    }

    impl Packet {
        fn phase(&self) -> bool {
            self.header[0] & 1 == 1
        }
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Accepted {
            slot: KeySlot,
            generation: u64,
            update: Option<u64>,
        },
        Dropped,
        AuthFailed,
        Violation(KeyUpdateError),
    }

    struct Peer {
        keys: KeyPhases,
        next_pn: u64,
    }

    impl Peer {
        fn new(send: u8, recv: u8, backend: AeadBackend) -> Peer {
            Peer {
                keys: KeyPhases::new(
                    Secret::from_bytes([send; KEY_BYTES]),
                    Secret::from_bytes([recv; KEY_BYTES]),
                    backend,
                ),
                next_pn: 0,
            }
        }

        fn send(&mut self, now: Instant) -> Packet {
            let pn = self.next_pn;
            self.next_pn += 1;
            let mut header = [0u8; HEADER_BYTES];
            header[0] = 0x10 | u8::from(self.keys.send_phase());
            header[9..].copy_from_slice(&(pn as u32).to_be_bytes());
            let mut sealed = match self.keys.take_pending_key_update_frame() {
                Some(generation) => vec![KEY_UPDATE, generation as u8],
                None => vec![PING],
            };
            let tag = self.keys.send_key().seal_in_place(pn, &header, &mut sealed);
            sealed.extend_from_slice(&tag);
            self.keys.on_packet_sent(pn, now);
            Packet { header, pn, sealed }
        }

        fn recv(&mut self, packet: &Packet, now: Instant) -> Outcome {
            self.keys.on_timeout(now);
            let mut buf = packet.sealed.clone();
            let (sel, len) =
                match self
                    .keys
                    .open_in_place(packet.phase(), packet.pn, &packet.header, &mut buf)
                {
                    Ok(opened) => opened,
                    Err(OpenError::NoKey) => return Outcome::Dropped,
                    Err(OpenError::Crypto(_)) => return Outcome::AuthFailed,
                };
            let update = self.keys.on_packet_authenticated(sel, packet.pn, now, PTO);
            if len == 2 && buf[0] == KEY_UPDATE {
                if let Err(e) = self.keys.check_key_update_frame(sel, u64::from(buf[1])) {
                    return Outcome::Violation(e);
                }
            }
            Outcome::Accepted {
                slot: sel.slot(),
                generation: sel.generation(),
                update,
            }
        }
    }

    fn pair() -> (Peer, Peer) {
        (
            Peer::new(1, 2, AeadBackend::Ring),
            Peer::new(2, 1, AeadBackend::Ring),
        )
    }

    fn accepted(slot: KeySlot, generation: u64, update: Option<u64>) -> Outcome {
        Outcome::Accepted {
            slot,
            generation,
            update,
        }
    }

    /// `from` sends a packet, `to` receives it and acknowledges it in a reply,
    /// which `from` receives. Both must succeed with the current keys.
    fn round_trip(from: &mut Peer, to: &mut Peer, now: Instant) {
        let p = from.send(now);
        assert!(matches!(to.recv(&p, now), Outcome::Accepted { .. }));
        let reply = to.send(now);
        assert!(matches!(from.recv(&reply, now), Outcome::Accepted { .. }));
        from.keys.on_packet_acked(p.pn);
        to.keys.on_packet_acked(reply.pn);
    }

    #[test]
    fn initial_state() {
        let (a, _) = pair();
        assert_eq!(a.keys.generation(), 0);
        assert!(!a.keys.send_phase());
        assert!(!a.keys.can_initiate());
        assert!(!a.keys.previous_key_retained());
        assert_eq!(a.keys.next_timeout(), None);
        assert_eq!(a.keys.packets_sent_in_phase(), 0);
    }

    #[test]
    fn can_initiate_requires_ack_of_current_phase_packet() {
        let (mut a, mut b) = pair();
        let now = Instant::now();
        assert!(!a.keys.initiate(now));
        let p0 = a.send(now);
        assert!(!a.keys.can_initiate());
        b.recv(&p0, now);
        a.keys.on_packet_acked(p0.pn);
        assert!(a.keys.can_initiate());
        assert!(a.keys.initiate(now));
        assert_eq!(a.keys.generation(), 1);
        // Not again: the new phase is unconfirmed (and the old key retained).
        assert!(!a.keys.can_initiate());
        assert!(!a.keys.initiate(now));
        // An ack of a packet from the old phase does not confirm the new one.
        a.keys.on_packet_acked(p0.pn);
        assert!(!a.keys.can_initiate());

        // B follows on A's first new-phase packet; its old-phase packet acked
        // later does not confirm B's new phase either.
        let b_old = b.send(now);
        let p1 = a.send(now);
        assert_eq!(b.recv(&p1, now), accepted(KeySlot::Next, 1, Some(1)));
        b.keys.on_packet_acked(b_old.pn);
        assert!(!b.keys.phase_confirmed);
        let b_new = b.send(now);
        b.keys.on_packet_acked(b_new.pn);
        assert!(b.keys.phase_confirmed);
        // Confirmed, but the previous key is still retained for 3 PTO.
        assert!(!b.keys.can_initiate());
        b.keys.on_timeout(now + 3 * PTO);
        assert!(b.keys.can_initiate());
    }

    #[test]
    fn initiator_and_responder_switch() {
        let (mut a, mut b) = pair();
        let now = Instant::now();
        round_trip(&mut a, &mut b, now);
        assert!(a.keys.initiate(now));
        assert!(a.keys.send_phase());
        let p = a.send(now);
        assert!(p.phase());
        assert_eq!(a.keys.take_pending_key_update_frame(), None);
        // B follows and checks the KEY_UPDATE frame (generation 1).
        assert_eq!(b.recv(&p, now), accepted(KeySlot::Next, 1, Some(1)));
        assert_eq!(b.keys.generation(), 1);
        assert!(b.keys.send_phase());
        // The responder announces nothing.
        assert_eq!(b.keys.take_pending_key_update_frame(), None);
        assert_eq!(b.keys.next_timeout(), Some(now + 3 * PTO));
        // A has no erase timer until it hears the new phase.
        assert_eq!(a.keys.next_timeout(), None);
        let reply = b.send(now);
        assert!(reply.phase());
        let later = now + Duration::from_millis(5);
        assert_eq!(a.recv(&reply, later), accepted(KeySlot::Current, 1, None));
        assert_eq!(a.keys.next_timeout(), Some(later + 3 * PTO));
        // Traffic continues in generation 1 both ways.
        round_trip(&mut a, &mut b, later);
        round_trip(&mut b, &mut a, later);
    }

    #[test]
    fn reordered_old_phase_packets_until_discard() {
        let (mut a, mut b) = pair();
        let now = Instant::now();
        round_trip(&mut a, &mut b, now);
        // Both sides have old-phase packets in flight when A updates.
        let a_old: Vec<Packet> = (0..3).map(|_| a.send(now)).collect();
        let b_old: Vec<Packet> = (0..3).map(|_| b.send(now)).collect();
        assert!(a.keys.initiate(now));
        // Before anything of the new phase arrives, B's old packets open with A's
        // previous key.
        assert_eq!(a.recv(&b_old[0], now), accepted(KeySlot::Previous, 0, None));
        let a_new = a.send(now);
        assert_eq!(b.recv(&a_new, now), accepted(KeySlot::Next, 1, Some(1)));
        // A's reordered old-phase packets still open at B.
        assert_eq!(b.recv(&a_old[1], now), accepted(KeySlot::Previous, 0, None));
        let b_new = b.send(now);
        assert_eq!(a.recv(&b_new, now), accepted(KeySlot::Current, 1, None));
        // B's old packets, numbered below its first new-phase one, still open.
        assert_eq!(a.recv(&b_old[2], now), accepted(KeySlot::Previous, 0, None));
        // Just before 3 PTO: still there.
        let almost = now + 3 * PTO - Duration::from_millis(1);
        assert_eq!(
            b.recv(&a_old[0], almost),
            accepted(KeySlot::Previous, 0, None)
        );
        // After 3 PTO: erased, old-phase packets dropped without decryption.
        let after = now + 3 * PTO;
        assert_eq!(b.recv(&a_old[2], after), Outcome::Dropped);
        assert_eq!(a.recv(&b_old[1], after), Outcome::Dropped);
        assert!(!a.keys.previous_key_retained());
        assert!(!b.keys.previous_key_retained());
        assert_eq!(a.keys.next_timeout(), None);
        // The new phase is unaffected.
        round_trip(&mut a, &mut b, after);
    }

    #[test]
    fn simultaneous_initiation() {
        let (mut a, mut b) = pair();
        let now = Instant::now();
        round_trip(&mut a, &mut b, now);
        assert!(a.keys.can_initiate() && b.keys.can_initiate());
        assert!(a.keys.initiate(now));
        assert!(b.keys.initiate(now));
        let pa = a.send(now);
        let pb = b.send(now);
        // Each sees the other's packet in its own (new) current phase, with a
        // KEY_UPDATE frame of generation 1.
        assert_eq!(b.recv(&pa, now), accepted(KeySlot::Current, 1, None));
        assert_eq!(a.recv(&pb, now), accepted(KeySlot::Current, 1, None));
        assert_eq!(a.keys.generation(), 1);
        assert_eq!(b.keys.generation(), 1);
        round_trip(&mut a, &mut b, now);
        // Previous keys erased 3 PTO after the first new-phase packet.
        assert_eq!(a.keys.next_timeout(), Some(now + 3 * PTO));
        assert_eq!(b.keys.next_timeout(), Some(now + 3 * PTO));
    }

    #[test]
    fn key_update_frame_generation_check() {
        let (mut a, mut b) = pair();
        let now = Instant::now();
        round_trip(&mut a, &mut b, now);
        assert!(a.keys.initiate(now));
        let p = a.send(now);
        let mut buf = p.sealed.clone();
        let (sel, _) = b
            .keys
            .open_in_place(p.phase(), p.pn, &p.header, &mut buf)
            .unwrap();
        assert_eq!(sel.generation(), 1);
        assert_eq!(b.keys.check_key_update_frame(sel, 1), Ok(()));
        assert_eq!(
            b.keys.check_key_update_frame(sel, 0),
            Err(KeyUpdateError::GenerationMismatch {
                announced: 0,
                actual: 1
            })
        );
        assert!(b.keys.check_key_update_frame(sel, 2).is_err());
        // The check uses the selection, so it holds after the update too.
        b.keys.on_packet_authenticated(sel, p.pn, now, PTO);
        assert_eq!(b.keys.check_key_update_frame(sel, 1), Ok(()));
        // A KEY_UPDATE frame in a packet opened with the previous key.
        let sel_prev = RecvKeySelection {
            slot: KeySlot::Previous,
            generation: 0,
        };
        assert!(b.keys.check_key_update_frame(sel_prev, 1).is_err());
        assert_eq!(b.keys.check_key_update_frame(sel_prev, 0), Ok(()));
    }

    #[test]
    fn mismatched_key_update_frame_is_reported() {
        let (mut a, mut b) = pair();
        let now = Instant::now();
        round_trip(&mut a, &mut b, now);
        assert!(a.keys.initiate(now));
        // A buggy peer announcing the wrong generation.
        a.keys.key_update_frame_pending = false;
        let pn = a.next_pn;
        a.next_pn += 1;
        let mut header = [0u8; HEADER_BYTES];
        header[0] = 0x11;
        let mut sealed = vec![KEY_UPDATE, 7];
        let tag = a.keys.send_key().seal_in_place(pn, &header, &mut sealed);
        sealed.extend_from_slice(&tag);
        let p = Packet { header, pn, sealed };
        assert_eq!(
            b.recv(&p, now),
            Outcome::Violation(KeyUpdateError::GenerationMismatch {
                announced: 7,
                actual: 1
            })
        );
    }

    #[test]
    fn consecutive_updates_agree() {
        let (mut a, mut b) = pair();
        let mut now = Instant::now();
        for round in 0..7u64 {
            round_trip(&mut a, &mut b, now);
            round_trip(&mut b, &mut a, now);
            let (init, resp) = if round % 3 == 0 {
                (&mut b, &mut a)
            } else {
                (&mut a, &mut b)
            };
            assert!(init.keys.initiate(now), "round {round}");
            let p = init.send(now);
            assert_eq!(
                resp.recv(&p, now),
                accepted(KeySlot::Next, round + 1, Some(round + 1))
            );
            let r = resp.send(now);
            assert_eq!(
                init.recv(&r, now),
                accepted(KeySlot::Current, round + 1, None)
            );
            assert_eq!(a.keys.generation(), round + 1);
            assert_eq!(b.keys.generation(), round + 1);
            assert_eq!(a.keys.send_phase(), (round + 1) % 2 == 1);
            now += 3 * PTO;
            a.keys.on_timeout(now);
            b.keys.on_timeout(now);
        }
        round_trip(&mut a, &mut b, now);
    }

    #[test]
    fn peer_update_while_previous_key_retained() {
        // A peer that does not wait for its previous key to be erased: B still
        // holds generation 0 when A moves to generation 2.
        let (mut a, mut b) = pair();
        let now = Instant::now();
        round_trip(&mut a, &mut b, now);
        assert!(a.keys.initiate(now));
        let a_gen0 = {
            // An old packet sealed with generation 0, sent before the update.
            let mut old = Peer::new(1, 2, AeadBackend::Ring);
            old.next_pn = 0;
            old.send(now)
        };
        round_trip(&mut a, &mut b, now);
        assert_eq!(b.keys.generation(), 1);
        assert!(b.keys.previous_key_retained());
        // Force A past its own wait.
        a.keys.recv_previous = None;
        assert!(a.keys.initiate(now));
        let p = a.send(now);
        assert_eq!(a.keys.generation(), 2);
        // Phase bit 0 again, but numbered above B's first generation-1 packet.
        assert_eq!(b.recv(&p, now), accepted(KeySlot::Next, 2, Some(2)));
        assert_eq!(b.keys.generation(), 2);
        // Generation 0 is gone: a late generation-0 packet carries the phase of
        // generation 2, is tried with the current key and fails.
        assert_eq!(b.recv(&a_gen0, now), Outcome::AuthFailed);
        let reply = b.send(now);
        assert_eq!(a.recv(&reply, now), accepted(KeySlot::Current, 2, None));
    }

    #[test]
    fn forged_phase_bit_does_not_change_state() {
        let (mut a, mut b) = pair();
        let now = Instant::now();
        round_trip(&mut a, &mut b, now);
        let mut p = a.send(now);
        p.header[0] ^= 1;
        let before = (b.keys.generation(), b.keys.first_recv_pn_in_phase);
        assert_eq!(
            b.keys.select_recv_key(p.phase(), p.pn).map(|s| s.slot()),
            Some(KeySlot::Next)
        );
        assert_eq!(b.recv(&p, now), Outcome::AuthFailed);
        assert_eq!((b.keys.generation(), b.keys.first_recv_pn_in_phase), before);
        assert!(!b.keys.previous_key_retained());
        assert_eq!(b.keys.next_timeout(), None);
        // The genuine packet still opens with the current key.
        p.header[0] ^= 1;
        assert_eq!(b.recv(&p, now), accepted(KeySlot::Current, 0, None));
        round_trip(&mut a, &mut b, now);
    }

    #[test]
    fn should_initiate_by_packets_and_interval() {
        let (mut a, mut b) = pair();
        let now = Instant::now();
        let interval = Duration::from_secs(600);
        assert!(!a.keys.should_initiate(now, 0, Duration::ZERO));
        round_trip(&mut a, &mut b, now);
        assert!(!a.keys.should_initiate(now, 10, interval));
        for _ in 0..8 {
            a.send(now);
        }
        assert_eq!(a.keys.packets_sent_in_phase(), 9);
        assert!(!a.keys.should_initiate(now, 10, interval));
        a.send(now);
        assert!(a.keys.should_initiate(now, 10, interval));
        // Time trigger, counted from the first packet sent.
        assert!(!a
            .keys
            .should_initiate(now + interval - Duration::from_millis(1), 100, interval));
        assert!(a.keys.should_initiate(now + interval, 100, interval));
        // After an update, both counters restart.
        let t = now + interval;
        assert!(a.keys.initiate(t));
        assert_eq!(a.keys.packets_sent_in_phase(), 0);
        assert!(!a.keys.should_initiate(t + interval, 0, interval));
    }

    #[test]
    fn stale_selection_has_no_key() {
        let (mut a, mut b) = pair();
        let now = Instant::now();
        round_trip(&mut a, &mut b, now);
        assert!(a.keys.initiate(now));
        let p = a.send(now);
        let sel = b.keys.select_recv_key(p.phase(), p.pn).unwrap();
        let open = |keys: &KeyPhases| {
            let mut buf = p.sealed.clone();
            keys.open_selected(sel, p.pn, &p.header, &mut buf)
        };
        assert_eq!(open(&b.keys), Ok(p.sealed.len() - crate::crypto::TAG_BYTES));
        b.recv(&p, now);
        // The Next key of generation 1 is now the current one.
        assert_eq!(open(&b.keys), Err(OpenError::NoKey));
        // Re-authenticating with a stale selection changes nothing.
        assert_eq!(b.keys.on_packet_authenticated(sel, p.pn, now, PTO), None);
        assert_eq!(b.keys.generation(), 1);
    }

    #[cfg(feature = "rustcrypto")]
    #[test]
    fn backends_interoperate_across_updates() {
        let mut a = Peer::new(1, 2, AeadBackend::Ring);
        let mut b = Peer::new(2, 1, AeadBackend::RustCrypto);
        let mut now = Instant::now();
        for generation in 1..4 {
            round_trip(&mut a, &mut b, now);
            assert!(a.keys.initiate(now));
            let p = a.send(now);
            assert_eq!(
                b.recv(&p, now),
                accepted(KeySlot::Next, generation, Some(generation))
            );
            round_trip(&mut b, &mut a, now);
            now += 3 * PTO;
            a.keys.on_timeout(now);
            b.keys.on_timeout(now);
        }
    }
}
