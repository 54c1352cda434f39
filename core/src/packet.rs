//! The unencrypted part of a datagram (PROTOCOL.md §1): the 13-byte header
//! (flags, destination connection ID, low 32 bits of the packet number), its
//! validation on receipt (§2.2 steps 1 and 2), the cheap destination peek an
//! endpoint uses to route datagrams, and packet-number truncation and
//! reconstruction (§1.3, RFC 9000 appendix A.3). Everything after the header is
//! the business of the AEAD and frame layers.

use std::fmt;

use thiserror::Error;

use crate::varint::MAX_VARINT;

/// Protocol version carried in the high four bits of the flags byte (§1.1).
pub const VERSION: u8 = 1;

/// Size of the header in bytes: flags (1) + destination connection ID (8) +
/// packet number low bits (4). It is the AEAD's associated data.
pub const HEADER_BYTES: usize = 13;

/// Size of the AEAD tag in bytes (Poly1305: 128 bits).
const AEAD_TAG_BYTES: usize = 16;

/// Smallest valid datagram in bytes: the header, one frame byte and the tag
/// (13 + 1 + 16 = 30).
pub const MIN_DATAGRAM_BYTES: usize = HEADER_BYTES + 1 + AEAD_TAG_BYTES;

/// Largest datagram in bytes: the largest UDP payload over IPv4
/// (65,535 - 20 bytes of IPv4 header - 8 bytes of UDP header).
pub const MAX_DATAGRAM_BYTES: usize = 65_507;

/// Default `max_datagram_bytes`: fits the 1280-byte IPv6 minimum MTU with the
/// IPv6 and UDP headers and room for tunnels, so IP never fragments (§1).
pub const DEFAULT_MAX_DATAGRAM_BYTES: usize = 1200;

/// Packet type of a protected packet, the only type of version 1 (§1.1).
const TYPE_PROTECTED: u8 = 0;

/// Width of the packet-number field on the wire, in bits.
const PACKET_NUMBER_WIRE_BITS: u32 = 32;

/// Number of distinct low-bit values of the packet-number field: 2^32.
const PACKET_NUMBER_WINDOW: u64 = 1 << PACKET_NUMBER_WIRE_BITS;

/// Half of [`PACKET_NUMBER_WINDOW`]: a packet number is reconstructed correctly
/// when it is less than this far from `largest_received + 1`.
const PACKET_NUMBER_HALF_WINDOW: u64 = PACKET_NUMBER_WINDOW / 2;

/// Identifier of a connection at the receiving endpoint (§1.2): 64 bits chosen by
/// the receiver during the handshake. Displays as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ConnectionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Why a datagram's header was rejected (§2.2 steps 1 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum HeaderError {
    /// The datagram is shorter than [`MIN_DATAGRAM_BYTES`].
    #[error("datagram shorter than {MIN_DATAGRAM_BYTES} bytes")]
    TooShort,
    /// The datagram is longer than [`MAX_DATAGRAM_BYTES`].
    #[error("datagram longer than {MAX_DATAGRAM_BYTES} bytes")]
    TooLong,
    /// The version field is not [`VERSION`]; carries the version found.
    #[error("unsupported protocol version {0}")]
    BadVersion(u8),
    /// The type field is one of the reserved types 1-7; carries the type found.
    #[error("reserved packet type {0}")]
    ReservedType(u8),
}

/// The 13-byte datagram header (§1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Header {
    /// Key phase bit `K` (§4).
    pub key_phase: bool,
    /// Connection ID chosen by the receiver of the packet.
    pub destination: ConnectionId,
    /// Low 32 bits of the packet number; see [`decode_packet_number`].
    pub packet_number_low: u32,
}

impl Header {
    /// Writes the header: flags (`VERSION << 4 | type << 1 | K`), destination
    /// connection ID and packet number, big-endian.
    pub fn encode(&self, out: &mut [u8; HEADER_BYTES]) {
        let [flags, cid @ .., p0, p1, p2, p3] = out;
        *flags = VERSION << 4 | TYPE_PROTECTED << 1 | u8::from(self.key_phase);
        *cid = self.destination.0.to_be_bytes();
        [*p0, *p1, *p2, *p3] = self.packet_number_low.to_be_bytes();
    }

    /// Validates a received datagram's length and flags and reads its header.
    /// Checks run in the order of §2.2: length first, then version, then type.
    pub fn decode(datagram: &[u8]) -> Result<Header, HeaderError> {
        let header = checked_header(datagram)?;
        let [flags, c0, c1, c2, c3, c4, c5, c6, c7, p0, p1, p2, p3] = *header;
        Ok(Header {
            key_phase: flags & 1 == 1,
            destination: ConnectionId(u64::from_be_bytes([c0, c1, c2, c3, c4, c5, c6, c7])),
            packet_number_low: u32::from_be_bytes([p0, p1, p2, p3]),
        })
    }
}

/// Checks the length, version and type of a datagram and returns its header bytes.
fn checked_header(datagram: &[u8]) -> Result<&[u8; HEADER_BYTES], HeaderError> {
    if datagram.len() < MIN_DATAGRAM_BYTES {
        return Err(HeaderError::TooShort);
    }
    if datagram.len() > MAX_DATAGRAM_BYTES {
        return Err(HeaderError::TooLong);
    }
    let (header, _) = datagram
        .split_first_chunk::<HEADER_BYTES>()
        .ok_or(HeaderError::TooShort)?;
    let flags = header[0];
    let version = flags >> 4;
    if version != VERSION {
        return Err(HeaderError::BadVersion(version));
    }
    let packet_type = (flags >> 1) & 0b111;
    if packet_type != TYPE_PROTECTED {
        return Err(HeaderError::ReservedType(packet_type));
    }
    Ok(header)
}

/// The destination connection ID of a datagram whose length, version and type are
/// valid, for routing a datagram to its connection before any further work.
/// `None` when [`Header::decode`] would fail.
pub fn peek_destination(datagram: &[u8]) -> Option<ConnectionId> {
    let header = checked_header(datagram).ok()?;
    let [_, c0, c1, c2, c3, c4, c5, c6, c7, ..] = *header;
    Some(ConnectionId(u64::from_be_bytes([
        c0, c1, c2, c3, c4, c5, c6, c7,
    ])))
}

/// The low 32 bits of a packet number, as carried in the header.
pub fn truncate_packet_number(pn: u64) -> u32 {
    // Keeping the low bits is the point of the truncation.
    (pn & (PACKET_NUMBER_WINDOW - 1)) as u32
}

/// Reconstructs a full packet number from its low 32 bits: the value closest to
/// `largest_received + 1` with those low bits (RFC 9000 appendix A.3), where
/// `largest_received` is the largest packet number authenticated so far (`None`
/// before the first, which makes the expected number 0).
///
/// The result is exact whenever the true number is less than 2^31 away from
/// `largest_received + 1`. It never exceeds [`MAX_VARINT`] (2^62 - 1, the
/// largest packet number a sender may use): when the closest candidate would,
/// the candidate 2^32 below is returned, and a packet a misbehaving peer sent
/// above the limit then fails authentication. No input makes it overflow or
/// panic.
#[inline]
pub fn decode_packet_number(largest_received: Option<u64>, low: u32) -> u64 {
    // The common case, an in-order packet: the expected number itself.
    if let Some(largest) = largest_received {
        let expected = largest.wrapping_add(1);
        if truncate_packet_number(expected) == low && (1..=MAX_VARINT).contains(&expected) {
            return expected;
        }
    }
    // Clamping the expectation to 2^62 keeps every candidate below 2^62 + 2^32.
    let expected =
        largest_received.map_or(0, |largest| largest.saturating_add(1).min(MAX_VARINT + 1));
    let mask = PACKET_NUMBER_WINDOW - 1;
    let candidate = (expected & !mask) | u64::from(low);
    let too_low = expected
        .checked_sub(PACKET_NUMBER_HALF_WINDOW)
        .is_some_and(|floor| candidate <= floor);
    if too_low && candidate + PACKET_NUMBER_WINDOW <= MAX_VARINT {
        return candidate + PACKET_NUMBER_WINDOW;
    }
    let too_high = candidate > expected + PACKET_NUMBER_HALF_WINDOW;
    if (too_high || candidate > MAX_VARINT) && candidate >= PACKET_NUMBER_WINDOW {
        return candidate - PACKET_NUMBER_WINDOW;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn datagram(header: &Header, len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        let mut h = [0u8; HEADER_BYTES];
        header.encode(&mut h);
        bytes[..HEADER_BYTES].copy_from_slice(&h);
        bytes
    }

    const SAMPLE: Header = Header {
        key_phase: false,
        destination: ConnectionId(0x0123_4567_89ab_cdef),
        packet_number_low: 0xdead_beef,
    };

    #[test]
    fn constants() {
        assert_eq!(MIN_DATAGRAM_BYTES, 30);
        assert_eq!(
            DEFAULT_MAX_DATAGRAM_BYTES - HEADER_BYTES - AEAD_TAG_BYTES,
            1171
        );
    }

    #[test]
    fn encoding_layout() {
        let mut h = [0u8; HEADER_BYTES];
        Header {
            key_phase: true,
            ..SAMPLE
        }
        .encode(&mut h);
        assert_eq!(
            h,
            [0x11, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xde, 0xad, 0xbe, 0xef]
        );
        SAMPLE.encode(&mut h);
        assert_eq!(h[0], 0x10);
    }

    #[test]
    fn connection_id_display() {
        assert_eq!(ConnectionId(0xab).to_string(), "00000000000000ab");
        assert_eq!(ConnectionId(u64::MAX).to_string(), "ffffffffffffffff");
    }

    #[test]
    fn length_limits() {
        for len in [0, 1, HEADER_BYTES, MIN_DATAGRAM_BYTES - 1] {
            let d = datagram(&SAMPLE, len.max(HEADER_BYTES))[..len].to_vec();
            assert_eq!(Header::decode(&d), Err(HeaderError::TooShort), "len {len}");
            assert_eq!(peek_destination(&d), None);
        }
        for len in [
            MIN_DATAGRAM_BYTES,
            DEFAULT_MAX_DATAGRAM_BYTES,
            MAX_DATAGRAM_BYTES,
        ] {
            let d = datagram(&SAMPLE, len);
            assert_eq!(Header::decode(&d), Ok(SAMPLE), "len {len}");
            assert_eq!(peek_destination(&d), Some(SAMPLE.destination));
        }
        let d = datagram(&SAMPLE, MAX_DATAGRAM_BYTES + 1);
        assert_eq!(Header::decode(&d), Err(HeaderError::TooLong));
        assert_eq!(peek_destination(&d), None);
    }

    #[test]
    fn every_flags_bit_flip() {
        for key_phase in [false, true] {
            let header = Header {
                key_phase,
                ..SAMPLE
            };
            let original = datagram(&header, MIN_DATAGRAM_BYTES);
            for bit in 0..8 {
                let mut d = original.clone();
                d[0] ^= 1 << bit;
                let decoded = Header::decode(&d);
                let expected = match bit {
                    0 => Ok(Header {
                        key_phase: !key_phase,
                        ..header
                    }),
                    1..=3 => Err(HeaderError::ReservedType(1 << (bit - 1))),
                    _ => Err(HeaderError::BadVersion(VERSION ^ (1 << (bit - 4)))),
                };
                assert_eq!(decoded, expected, "bit {bit}, key phase {key_phase}");
                assert_eq!(peek_destination(&d), decoded.ok().map(|h| h.destination));
            }
        }
    }

    #[test]
    fn every_flags_byte() {
        for flags in 0..=u8::MAX {
            let mut d = datagram(&SAMPLE, MIN_DATAGRAM_BYTES);
            d[0] = flags;
            let decoded = Header::decode(&d);
            match flags {
                0x10 | 0x11 => assert_eq!(decoded.map(|h| h.key_phase), Ok(flags == 0x11)),
                _ if flags >> 4 != VERSION => {
                    assert_eq!(decoded, Err(HeaderError::BadVersion(flags >> 4)))
                }
                _ => assert_eq!(decoded, Err(HeaderError::ReservedType((flags >> 1) & 7))),
            }
        }
    }

    #[test]
    fn packet_number_edges() {
        let max_pn = MAX_VARINT;
        let cases: [(Option<u64>, u64); 14] = [
            (None, 0),
            (None, 1),
            (None, 0x7fff_ffff),
            (None, 0xffff_ffff),
            (Some(0), 0),
            (Some(0), 1),
            (Some(5), 0),
            (Some(0xffff_fffe), 0xffff_ffff),
            (Some(0xffff_ffff), 0x1_0000_0000),
            (Some(0x1_0000_0003), 0xffff_fff0),
            (Some(max_pn - 1), max_pn),
            (Some(max_pn), max_pn),
            (Some(max_pn), max_pn - 0x7fff_ffff),
            (Some(max_pn - 0x7fff_fff0), max_pn - 0xffff_ffe0),
        ];
        for (largest, pn) in cases {
            assert_eq!(
                decode_packet_number(largest, truncate_packet_number(pn)),
                pn,
                "largest {largest:?}, pn {pn}"
            );
        }
        // RFC 9000 appendix A.3 example, widened to 32 bits.
        assert_eq!(
            decode_packet_number(Some(0xa82f_30ea), truncate_packet_number(0xa82f_9b32)),
            0xa82f_9b32
        );
    }

    #[test]
    fn packet_number_never_exceeds_limit() {
        for largest in [
            MAX_VARINT - 1,
            MAX_VARINT,
            MAX_VARINT + 1,
            u64::MAX - 1,
            u64::MAX,
        ] {
            for low in [0, 1, 0x7fff_ffff, 0x8000_0000, 0x8000_0001, u32::MAX] {
                assert!(decode_packet_number(Some(largest), low) <= MAX_VARINT);
            }
        }
    }

    proptest! {
        #[test]
        fn header_round_trip(
            key_phase in any::<bool>(),
            cid in any::<u64>(),
            low in any::<u32>(),
            len in MIN_DATAGRAM_BYTES..=DEFAULT_MAX_DATAGRAM_BYTES,
        ) {
            let header = Header {
                key_phase,
                destination: ConnectionId(cid),
                packet_number_low: low,
            };
            let d = datagram(&header, len);
            prop_assert_eq!(Header::decode(&d), Ok(header));
            prop_assert_eq!(peek_destination(&d), Some(ConnectionId(cid)));
        }

        #[test]
        fn packet_number_reconstruction(
            largest in 0..=MAX_VARINT,
            offset in -(PACKET_NUMBER_HALF_WINDOW as i64 - 1)..=(PACKET_NUMBER_HALF_WINDOW as i64 - 1),
        ) {
            let expected = i128::from(largest) + 1;
            let pn = expected + i128::from(offset);
            prop_assume!(pn >= 0 && pn <= i128::from(MAX_VARINT));
            let pn = pn as u64;
            prop_assert_eq!(decode_packet_number(Some(largest), truncate_packet_number(pn)), pn);
        }

        #[test]
        fn packet_number_near_limits(
            near_top in any::<bool>(),
            largest_offset in 0..(1u64 << 33),
            pn_offset in 0..(1u64 << 33),
        ) {
            let (largest, pn) = if near_top {
                (MAX_VARINT - largest_offset, MAX_VARINT - pn_offset)
            } else {
                (largest_offset, pn_offset)
            };
            let decoded = decode_packet_number(Some(largest), truncate_packet_number(pn));
            prop_assert!(decoded <= MAX_VARINT);
            prop_assert_eq!(truncate_packet_number(decoded), truncate_packet_number(pn));
            if (i128::from(pn) - i128::from(largest) - 1).abs() < i128::from(PACKET_NUMBER_HALF_WINDOW) {
                prop_assert_eq!(decoded, pn);
            }
        }

        #[test]
        fn next_packet_number_is_itself(largest in 0..MAX_VARINT) {
            // The in-order fast path, up to the last packet number.
            let next = largest + 1;
            prop_assert_eq!(decode_packet_number(Some(largest), truncate_packet_number(next)), next);
        }

        #[test]
        fn packet_number_first(pn in 0..PACKET_NUMBER_WINDOW) {
            prop_assert_eq!(decode_packet_number(None, truncate_packet_number(pn)), pn);
        }

        #[test]
        fn packet_number_any_input(largest in proptest::option::of(any::<u64>()), low in any::<u32>()) {
            let decoded = decode_packet_number(largest, low);
            prop_assert_eq!(truncate_packet_number(decoded), low);
            prop_assert!(decoded <= MAX_VARINT);
        }
    }
}
