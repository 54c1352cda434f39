//! The record of sent packets: for each packet number still unresolved, when it
//! was sent, whether it needs an acknowledgement, and which reliable fragments it
//! carried. A ring indexed by packet number plus a ring of fragment references;
//! both keep their capacity, so recording a packet does not allocate.

use std::collections::VecDeque;

use super::clock::Nanos;
use crate::channel::FragmentRef;

/// Records kept allocated by [`SentPackets::release_idle`]: an idle
/// connection's keep-alives need one or two, and freeing them all would
/// allocate again at each keep-alive.
const IDLE_RECORDS: usize = 4;

/// What became of a sent packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PacketState {
    /// Ack-eliciting and waiting for an acknowledgement.
    InFlight,
    /// Acknowledged, or never needing an acknowledgement.
    Resolved,
    /// Declared lost; an acknowledgement arriving later shows the loss was
    /// spurious (reordering), which makes loss detection more patient.
    Lost,
}

/// One sent packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SentPacket {
    pub time_sent: Nanos,
    pub state: PacketState,
    /// Absolute indices of this packet's fragments in the fragment ring.
    pub frames_start: u64,
    pub frames_end: u64,
    /// Largest packet number acknowledged by an ACK frame in this packet.
    pub largest_ack_sent: Option<u64>,
}

/// Sent packets from the oldest unresolved one to the newest.
#[derive(Debug)]
pub(crate) struct SentPackets {
    /// Packet number of `packets[0]`.
    first_pn: u64,
    packets: VecDeque<SentPacket>,
    frames: VecDeque<FragmentRef>,
    /// Absolute index of `frames[0]`.
    frames_base: u64,
    in_flight: usize,
    last_eliciting_sent: Option<Nanos>,
}

impl SentPackets {
    pub fn new() -> Self {
        Self {
            first_pn: 0,
            packets: VecDeque::new(),
            frames: VecDeque::new(),
            frames_base: 0,
            in_flight: 0,
            last_eliciting_sent: None,
        }
    }

    /// Ack-eliciting packets waiting for an acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// When the newest ack-eliciting packet still in flight was sent.
    pub fn last_eliciting_sent(&self) -> Option<Nanos> {
        (self.in_flight > 0)
            .then_some(self.last_eliciting_sent)
            .flatten()
    }

    /// Absolute index the next recorded fragment will get.
    pub fn frames_end(&self) -> u64 {
        self.frames_base + self.frames.len() as u64
    }

    /// Records a reliable fragment of the packet being built.
    pub fn push_frame(&mut self, frame: FragmentRef) {
        self.frames.push_back(frame);
    }

    /// Records packet `pn`, which must be the next packet number.
    pub fn push(&mut self, pn: u64, packet: SentPacket) {
        if self.packets.is_empty() {
            self.first_pn = pn;
        }
        debug_assert_eq!(pn, self.first_pn + self.packets.len() as u64);
        if packet.state == PacketState::InFlight {
            self.in_flight += 1;
            self.last_eliciting_sent = Some(packet.time_sent);
        }
        self.packets.push_back(packet);
    }

    /// Packet number of the oldest record kept.
    pub fn first_pn(&self) -> u64 {
        self.first_pn
    }

    /// Moves an in-flight packet to `state` (acknowledged or lost) and returns
    /// its record; `Err` with the state it had if it was not in flight (or
    /// `Resolved` if it is no longer kept).
    pub fn resolve(&mut self, pn: u64, state: PacketState) -> Result<SentPacket, PacketState> {
        let Some(p) = pn
            .checked_sub(self.first_pn)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.packets.get_mut(i))
        else {
            return Err(PacketState::Resolved);
        };
        if p.state != PacketState::InFlight {
            let was = p.state;
            if was == PacketState::Lost && state == PacketState::Resolved {
                p.state = PacketState::Resolved; // report a spurious loss once
            }
            return Err(was);
        }
        p.state = state;
        self.in_flight -= 1;
        Ok(*p)
    }

    /// The fragments a packet carried.
    pub fn frames_of(&self, packet: &SentPacket) -> impl Iterator<Item = FragmentRef> + '_ {
        let start = (packet.frames_start - self.frames_base) as usize;
        let end = (packet.frames_end - self.frames_base) as usize;
        self.frames.range(start..end).copied()
    }

    /// When packet `pn` was sent, if it is in flight.
    pub fn in_flight_sent_at(&self, pn: u64) -> Option<Nanos> {
        let i = usize::try_from(pn.checked_sub(self.first_pn)?).ok()?;
        let p = self.packets.get(i)?;
        (p.state == PacketState::InFlight).then_some(p.time_sent)
    }

    /// Packet number of the newest record kept, plus one.
    pub fn end_pn(&self) -> u64 {
        self.first_pn + self.packets.len() as u64
    }

    /// Drops resolved records from the front, with their fragments.
    pub fn pop_resolved(&mut self) {
        while let Some(p) = self.packets.front() {
            if p.state == PacketState::InFlight {
                break;
            }
            self.packets.pop_front();
            self.first_pn += 1;
        }
        let keep_from = self
            .packets
            .front()
            .map_or(self.frames_end(), |p| p.frames_start);
        while self.frames_base < keep_from {
            self.frames.pop_front();
            self.frames_base += 1;
        }
    }

    /// Gives back the capacity beyond [`IDLE_RECORDS`] records (an idle
    /// connection: it still sends keep-alives, which need a few).
    pub fn release_idle(&mut self) {
        self.packets.shrink_to(IDLE_RECORDS);
        if self.frames.is_empty() {
            // Keep-alives carry no reliable fragments.
            self.frames = VecDeque::new();
        } else {
            self.frames.shrink_to(IDLE_RECORDS);
        }
    }

    /// Forgets everything (connection closed).
    pub fn clear(&mut self) {
        self.first_pn += self.packets.len() as u64;
        self.packets.clear();
        self.frames_base += self.frames.len() as u64;
        self.frames.clear();
        self.in_flight = 0;
    }
}
