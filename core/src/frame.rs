//! The frames of a decrypted packet payload (PROTOCOL.md §3): their types,
//! decoding with [`FrameReader`] (which borrows payload bytes and ACK ranges from
//! the packet instead of copying them) and allocation-free encoding through a
//! [`Writer`]. Decoding enforces every rule that can be checked on a frame alone
//! (§3.1 ranges never below zero, §3.2 fragment index below a count of at least
//! 2, field widths); rules that need connection state (packet numbers actually
//! sent, fragment sizes, channel table) belong to the connection. Building an ACK
//! frame from the set of received packet numbers is in [`crate::ack`].

use std::iter::FusedIterator;
use std::ops::RangeInclusive;

use thiserror::Error;

use crate::packet::MAX_DATAGRAM_BYTES;
use crate::varint::{varint_len, BufferTooSmall, Reader, UnexpectedEnd, Writer};

/// Frame type bytes (§3, table).
pub mod frame_type {
    /// PADDING: a single byte, ignored.
    pub const PADDING: u8 = 0x00;
    /// PING: a single byte, ack-eliciting.
    pub const PING: u8 = 0x01;
    /// ACK (§3.1).
    pub const ACK: u8 = 0x02;
    /// DISCONNECT (§3.4).
    pub const DISCONNECT: u8 = 0x03;
    /// KEY_UPDATE (§4).
    pub const KEY_UPDATE: u8 = 0x04;
    /// DATA: a whole message (§3.2).
    pub const DATA: u8 = 0x10;
    /// DATA_FRAGMENT: one fragment of a message (§3.2).
    pub const DATA_FRAGMENT: u8 = 0x11;
}

/// Largest encoded DATA or DATA_FRAGMENT header in bytes, for any `u64` message
/// ID, any `u32` fragment index and count, and a length up to
/// [`MAX_DATAGRAM_BYTES`]: type (1) + channel (1) + message ID (8) + index (8) +
/// count (8) + length (4, as 65,507 needs a four-byte varint) = 30.
///
/// PROTOCOL.md §3.2 quotes 20 bytes: that is the size with index and count below
/// 2^30 and a length below 16,384, true of every fragment of the default
/// 1200-byte datagrams.
pub const MAX_DATA_HEADER_BYTES: usize = 1 + 1 + 8 + 8 + 8 + varint_len(MAX_DATAGRAM_BYTES as u64);

/// Size in bytes of a varint `(gap, range_length)` pair at its smallest: two
/// one-byte varints. Bounds how many pairs a given number of bytes can hold.
const MIN_ACK_PAIR_BYTES: usize = 2;

/// A frame that cannot be decoded or breaks a rule of §3. In an authenticated
/// packet each is a protocol violation (§2.2 step 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum FrameError {
    /// The payload ends in the middle of a frame's fixed fields.
    #[error("frame truncated")]
    UnexpectedEnd,
    /// The type byte is reserved (§3: `0x05`-`0x0f`, `0x12`-`0xff`).
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    /// An ACK range goes below zero, or the range count cannot fit in the
    /// bytes that follow.
    #[error("invalid ACK frame")]
    InvalidAck,
    /// A fragment count below 2, an index not below its count, or an empty
    /// fragment.
    #[error("invalid fragment")]
    InvalidFragment,
    /// A DISCONNECT code, fragment index or fragment count does not fit in 32 bits.
    #[error("value too large for its field")]
    ValueTooLarge,
    /// A DATA or DATA_FRAGMENT length runs past the end of the payload.
    #[error("frame length past the end of the payload")]
    LengthOverrun,
}

impl From<UnexpectedEnd> for FrameError {
    fn from(_: UnexpectedEnd) -> Self {
        FrameError::UnexpectedEnd
    }
}

/// Position of a DATA_FRAGMENT within its message. Valid fragments have
/// `count >= 2` and `index < count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Zero-based index of this fragment.
    pub index: u32,
    /// Number of fragments of the message.
    pub count: u32,
}

/// A DATA (whole message, `fragment` is `None`) or DATA_FRAGMENT frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataFrame<'a> {
    /// Channel index in the channel table (§5).
    pub channel: u8,
    /// Per-channel message ID.
    pub message_id: u64,
    /// Where this fragment belongs, for DATA_FRAGMENT.
    pub fragment: Option<Fragment>,
    /// The message bytes (or fragment bytes), borrowed from the packet.
    pub payload: &'a [u8],
}

/// A validated ACK frame (§3.1). The ranges after the first stay encoded in the
/// packet; [`AckFrame::ranges`] decodes them, and cannot fail because decoding
/// the frame checked them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckFrame<'a> {
    largest: u64,
    ack_delay_us: u64,
    first_range: u64,
    /// Number of `(gap, range_length)` pairs in `pairs`.
    pair_count: usize,
    smallest: u64,
    /// The encoded pairs, exactly.
    pairs: &'a [u8],
}

impl<'a> AckFrame<'a> {
    /// Largest packet number acknowledged.
    pub fn largest(&self) -> u64 {
        self.largest
    }

    /// Smallest packet number acknowledged (the low end of the last range).
    pub fn smallest(&self) -> u64 {
        self.smallest
    }

    /// Microseconds between the receipt of [`largest`](Self::largest) and the
    /// sending of this frame, as reported by the peer.
    pub fn ack_delay_us(&self) -> u64 {
        self.ack_delay_us
    }

    /// Number of ranges, the first included (at least 1).
    pub fn range_count(&self) -> usize {
        self.pair_count + 1
    }

    /// The acknowledged ranges, from the highest to the lowest, each non-empty,
    /// disjoint from and not adjacent to the next.
    pub fn ranges(&self) -> AckRangeIter<'a> {
        AckRangeIter {
            reader: Reader::new(self.pairs),
            first: Some(self.largest - self.first_range..=self.largest),
            prev_low: self.largest - self.first_range,
            pairs_left: self.pair_count,
        }
    }

    /// Decodes the body of an ACK frame (after its type byte), checking every range.
    #[inline(always)]
    fn decode(reader: &mut Reader<'a>) -> Result<Self, FrameError> {
        // A local cursor, written back at the end, stays in registers.
        let mut cursor = reader.clone();
        let r = &mut cursor;
        let largest = r.get_varint()?;
        let ack_delay_us = r.get_varint()?;
        let pair_count = r.get_varint()?;
        let first_range = r.get_varint()?;
        let mut low = largest
            .checked_sub(first_range)
            .ok_or(FrameError::InvalidAck)?;
        // Each pair takes at least two bytes: a count beyond that is a lie, and
        // rejecting it bounds the walk below.
        let pair_count = usize::try_from(pair_count)
            .ok()
            .filter(|&n| n <= r.remaining() / MIN_ACK_PAIR_BYTES)
            .ok_or(FrameError::InvalidAck)?;
        let start = r.position();
        let pairs_bytes = r.rest();
        for _ in 0..pair_count {
            let gap = r.get_varint()?;
            let length = r.get_varint()?;
            low = next_range(low, gap, length)
                .ok_or(FrameError::InvalidAck)?
                .0;
        }
        let pairs = &pairs_bytes[..r.position() - start];
        *reader = cursor;
        Ok(AckFrame {
            largest,
            ack_delay_us,
            first_range,
            pair_count,
            smallest: low,
            pairs,
        })
    }

    fn encoded_len(&self) -> usize {
        1 + varint_len(self.largest)
            + varint_len(self.ack_delay_us)
            + varint_len(self.pair_count as u64)
            + varint_len(self.first_range)
            + self.pairs.len()
    }

    fn encode_unchecked(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        w.put_u8(frame_type::ACK)?;
        w.put_varint(self.largest)?;
        w.put_varint(self.ack_delay_us)?;
        w.put_varint(self.pair_count as u64)?;
        w.put_varint(self.first_range)?;
        w.put_bytes(self.pairs)
    }
}

/// The range `(low, high)` that follows a range starting at `prev_low` after a
/// `(gap, length)` pair: `gap + 1` unacknowledged numbers are skipped, then
/// `length + 1` acknowledged. `None` if it would go below zero.
fn next_range(prev_low: u64, gap: u64, length: u64) -> Option<(u64, u64)> {
    let high = prev_low.checked_sub(gap)?.checked_sub(2)?;
    Some((high.checked_sub(length)?, high))
}

/// Iterator over the ranges of an [`AckFrame`], highest first.
#[derive(Debug, Clone)]
pub struct AckRangeIter<'a> {
    reader: Reader<'a>,
    first: Option<RangeInclusive<u64>>,
    prev_low: u64,
    pairs_left: usize,
}

impl Iterator for AckRangeIter<'_> {
    type Item = RangeInclusive<u64>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.pairs_left == 0 {
            return None;
        }
        // The frame was validated when decoded, so none of these can fail; a
        // failure would end the iteration rather than panic.
        let gap = self.reader.get_varint().ok()?;
        let length = self.reader.get_varint().ok()?;
        let (low, high) = next_range(self.prev_low, gap, length)?;
        self.prev_low = low;
        self.pairs_left -= 1;
        Some(low..=high)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.pairs_left + usize::from(self.first.is_some());
        (n, Some(n))
    }
}

impl ExactSizeIterator for AckRangeIter<'_> {}
impl FusedIterator for AckRangeIter<'_> {}

/// One frame of a decrypted packet payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// PADDING (one byte; each padding byte is one frame).
    Padding,
    /// PING.
    Ping,
    /// ACK.
    Ack(AckFrame<'a>),
    /// DISCONNECT with its code (§3.4).
    Disconnect {
        /// Close reason: below 256 FastNet's, from 256 the application's.
        code: u32,
    },
    /// KEY_UPDATE with the generation of the keys that sealed the packet (§4).
    KeyUpdate {
        /// Key generation (number of updates so far).
        generation: u64,
    },
    /// DATA or DATA_FRAGMENT.
    Data(DataFrame<'a>),
}

impl<'a> Frame<'a> {
    /// Whether the frame makes its packet ack-eliciting (anything but ACK and
    /// PADDING, §3).
    pub fn is_ack_eliciting(&self) -> bool {
        !matches!(self, Frame::Padding | Frame::Ack(_))
    }

    /// Exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Frame::Padding | Frame::Ping => 1,
            Frame::Ack(ack) => ack.encoded_len(),
            Frame::Disconnect { code } => 1 + varint_len(u64::from(*code)),
            Frame::KeyUpdate { generation } => 1 + varint_len(*generation),
            Frame::Data(data) => {
                data_header_len(data.message_id, data.fragment, data.payload.len())
                    + data.payload.len()
            }
        }
    }

    /// Writes the frame, or nothing when it does not fit in `w`.
    ///
    /// Frames are written as given: a [`Fragment`] that is not valid, or a
    /// generation above [`MAX_VARINT`](crate::varint::MAX_VARINT) (which panics,
    /// see [`Writer::put_varint`]), is the caller's bug.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), BufferTooSmall> {
        if self.encoded_len() > w.remaining() {
            return Err(BufferTooSmall);
        }
        match self {
            Frame::Padding => w.put_u8(frame_type::PADDING),
            Frame::Ping => w.put_u8(frame_type::PING),
            Frame::Ack(ack) => ack.encode_unchecked(w),
            Frame::Disconnect { code } => {
                w.put_u8(frame_type::DISCONNECT)?;
                w.put_varint(u64::from(*code))
            }
            Frame::KeyUpdate { generation } => {
                w.put_u8(frame_type::KEY_UPDATE)?;
                w.put_varint(*generation)
            }
            Frame::Data(data) => {
                encode_data_header(
                    w,
                    data.channel,
                    data.message_id,
                    data.fragment,
                    data.payload.len(),
                )?;
                w.put_bytes(data.payload)
            }
        }
    }
}

/// Size in bytes of the header of a DATA frame (`fragment` is `None`) or
/// DATA_FRAGMENT frame carrying `len` payload bytes; the frame is this plus `len`.
#[inline]
pub fn data_header_len(message_id: u64, fragment: Option<Fragment>, len: usize) -> usize {
    let fragment_len = fragment.map_or(0, |f| {
        varint_len(u64::from(f.index)) + varint_len(u64::from(f.count))
    });
    1 + 1 + varint_len(message_id) + fragment_len + varint_len(len as u64)
}

/// Writes the header of a DATA or DATA_FRAGMENT frame whose `len` payload bytes
/// the caller then writes with [`Writer::put_bytes`]. Writes nothing and fails
/// unless the header *and* the `len` payload bytes fit, so the payload write that
/// follows cannot fail.
///
/// # Panics
///
/// If `message_id` exceeds [`MAX_VARINT`](crate::varint::MAX_VARINT).
#[inline(always)]
pub fn encode_data_header(
    w: &mut Writer<'_>,
    channel: u8,
    message_id: u64,
    fragment: Option<Fragment>,
    len: usize,
) -> Result<(), BufferTooSmall> {
    // The exact header length only matters when the largest could not fit.
    let room = w.remaining();
    if MAX_DATA_HEADER_BYTES.saturating_add(len) > room
        && data_header_len(message_id, fragment, len).saturating_add(len) > room
    {
        return Err(BufferTooSmall);
    }
    debug_assert!(fragment.is_none_or(|f| f.count >= 2 && f.index < f.count && len > 0));
    let frame_type = if fragment.is_some() {
        frame_type::DATA_FRAGMENT
    } else {
        frame_type::DATA
    };
    // Room for every field was checked above.
    w.put_u8_in_room(frame_type);
    w.put_u8_in_room(channel);
    w.put_varint_in_room(message_id);
    if let Some(f) = fragment {
        w.put_varint_in_room(u64::from(f.index));
        w.put_varint_in_room(u64::from(f.count));
    }
    w.put_varint_in_room(len as u64);
    Ok(())
}

/// Iterator over the frames of a decrypted payload, in order. It yields
/// `Err` for the first frame that is invalid and then ends, so a caller that
/// stops at the first error sees every frame before it.
///
/// An empty payload yields no frames; that a packet holds at least one frame is
/// already ensured by [`MIN_DATAGRAM_BYTES`](crate::packet::MIN_DATAGRAM_BYTES).
#[derive(Debug, Clone)]
pub struct FrameReader<'a> {
    reader: Reader<'a>,
    failed: bool,
}

impl<'a> FrameReader<'a> {
    /// A reader over the decrypted frames of one packet.
    pub fn new(payload: &'a [u8]) -> Self {
        FrameReader {
            reader: Reader::new(payload),
            failed: false,
        }
    }
}

impl<'a> Frame<'a> {
    /// Decodes the next frame from `r`, which must not be empty: what
    /// [`FrameReader`] yields, for callers that walk a payload with a
    /// [`Reader`] of their own (inlined there, the frame is built in place
    /// instead of being moved through the iterator's `Option<Result<..>>`).
    #[inline(always)]
    pub fn decode_next(r: &mut Reader<'a>) -> Result<Frame<'a>, FrameError> {
        let frame = match r.get_u8()? {
            frame_type::PADDING => Frame::Padding,
            frame_type::PING => Frame::Ping,
            frame_type::ACK => Frame::Ack(AckFrame::decode(r)?),
            frame_type::DISCONNECT => Frame::Disconnect {
                code: get_u32_varint(r)?,
            },
            frame_type::KEY_UPDATE => Frame::KeyUpdate {
                generation: r.get_varint()?,
            },
            t @ (frame_type::DATA | frame_type::DATA_FRAGMENT) => {
                let channel = r.get_u8()?;
                let message_id = r.get_varint()?;
                let fragment = if t == frame_type::DATA_FRAGMENT {
                    let index = get_u32_varint(r)?;
                    let count = get_u32_varint(r)?;
                    Some(Fragment { index, count })
                } else {
                    None
                };
                let len = r.get_varint()?;
                let payload = usize::try_from(len)
                    .ok()
                    .and_then(|len| r.get_bytes(len).ok())
                    .ok_or(FrameError::LengthOverrun)?;
                if let Some(f) = fragment {
                    if f.count < 2 || f.index >= f.count || payload.is_empty() {
                        return Err(FrameError::InvalidFragment);
                    }
                }
                Frame::Data(DataFrame {
                    channel,
                    message_id,
                    fragment,
                    payload,
                })
            }
            t => return Err(FrameError::UnknownType(t)),
        };
        Ok(frame)
    }
}

/// Reads a varint that must fit in 32 bits.
#[inline]
fn get_u32_varint(r: &mut Reader<'_>) -> Result<u32, FrameError> {
    u32::try_from(r.get_varint()?).map_err(|_| FrameError::ValueTooLarge)
}

impl<'a> Iterator for FrameReader<'a> {
    type Item = Result<Frame<'a>, FrameError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.is_empty() {
            return None;
        }
        let result = Frame::decode_next(&mut self.reader);
        self.failed = result.is_err();
        Some(result)
    }
}

impl FusedIterator for FrameReader<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::varint::MAX_VARINT;
    use proptest::prelude::*;

    /// Writes raw ACK fields, valid or not.
    fn raw_ack(largest: u64, delay: u64, count: u64, first: u64, pairs: &[(u64, u64)]) -> Vec<u8> {
        let mut buf = vec![0u8; 64 + pairs.len() * 16];
        let mut w = Writer::new(&mut buf);
        w.put_u8(frame_type::ACK).unwrap();
        for v in [largest, delay, count, first] {
            w.put_varint(v).unwrap();
        }
        for &(gap, len) in pairs {
            w.put_varint(gap).unwrap();
            w.put_varint(len).unwrap();
        }
        let n = w.position();
        buf.truncate(n);
        buf
    }

    fn decode_all(payload: &[u8]) -> Vec<Result<Frame<'_>, FrameError>> {
        FrameReader::new(payload).collect()
    }

    fn single_error(payload: &[u8]) -> FrameError {
        match decode_all(payload).as_slice() {
            [Err(e)] => *e,
            other => panic!("expected a single error, got {other:?}"),
        }
    }

    fn encode_one(frame: &Frame<'_>) -> Vec<u8> {
        let mut buf = vec![0u8; frame.encoded_len()];
        let mut w = Writer::new(&mut buf);
        frame.encode(&mut w).unwrap();
        assert_eq!(w.remaining(), 0);
        buf
    }

    #[test]
    fn max_data_header_is_exact() {
        assert_eq!(MAX_DATA_HEADER_BYTES, 30);
        let worst = Some(Fragment {
            index: u32::MAX - 1,
            count: u32::MAX,
        });
        assert_eq!(
            data_header_len(MAX_VARINT, worst, MAX_DATAGRAM_BYTES),
            MAX_DATA_HEADER_BYTES
        );
        // The spec's 20 bytes hold for default-size fragments.
        let default = Some(Fragment {
            index: (1 << 30) - 2,
            count: (1 << 30) - 1,
        });
        assert_eq!(data_header_len(MAX_VARINT, default, 1107), 20);
    }

    #[test]
    fn simple_frames_layout() {
        assert_eq!(encode_one(&Frame::Padding), [0x00]);
        assert_eq!(encode_one(&Frame::Ping), [0x01]);
        assert_eq!(encode_one(&Frame::Disconnect { code: 1 }), [0x03, 0x01]);
        assert_eq!(
            encode_one(&Frame::KeyUpdate { generation: 300 }),
            [0x04, 0x41, 0x2c]
        );
        let data = Frame::Data(DataFrame {
            channel: 3,
            message_id: 7,
            fragment: None,
            payload: b"hi",
        });
        assert_eq!(encode_one(&data), [0x10, 3, 7, 2, b'h', b'i']);
        let frag = Frame::Data(DataFrame {
            channel: 0,
            message_id: 64,
            fragment: Some(Fragment { index: 1, count: 2 }),
            payload: b"x",
        });
        assert_eq!(encode_one(&frag), [0x11, 0, 0x40, 0x40, 1, 2, 1, b'x']);
    }

    #[test]
    fn ack_example() {
        // Acknowledges 10..=12, 5..=7 and 0..=1.
        let bytes = raw_ack(12, 25, 2, 2, &[(1, 2), (2, 1)]);
        let frames = decode_all(&bytes);
        let [Ok(Frame::Ack(ack))] = frames.as_slice() else {
            panic!("{frames:?}")
        };
        assert_eq!(ack.largest(), 12);
        assert_eq!(ack.smallest(), 0);
        assert_eq!(ack.ack_delay_us(), 25);
        assert_eq!(ack.range_count(), 3);
        assert_eq!(ack.ranges().len(), 3);
        assert_eq!(ack.ranges().collect::<Vec<_>>(), [10..=12, 5..=7, 0..=1]);
        assert_eq!(encode_one(&Frame::Ack(*ack)), bytes);
    }

    #[test]
    fn ack_below_zero_rejected() {
        assert_eq!(
            single_error(&raw_ack(3, 0, 0, 4, &[])),
            FrameError::InvalidAck
        );
        // First range 3..=3; a gap of g skips g + 1 numbers below it.
        assert_eq!(
            single_error(&raw_ack(3, 0, 1, 0, &[(2, 0)])),
            FrameError::InvalidAck
        );
        assert!(matches!(
            decode_all(&raw_ack(3, 0, 1, 0, &[(1, 0)]))[..],
            [Ok(_)]
        ));
        // Range length reaching below zero.
        assert_eq!(
            single_error(&raw_ack(3, 0, 1, 0, &[(0, 2)])),
            FrameError::InvalidAck
        );
        assert!(matches!(
            decode_all(&raw_ack(3, 0, 1, 0, &[(0, 1)]))[..],
            [Ok(_)]
        ));
        // The first range can reach 0 exactly.
        assert!(matches!(decode_all(&raw_ack(3, 0, 0, 3, &[]))[..], [Ok(_)]));
    }

    #[test]
    fn ack_implausible_count_rejected() {
        let mut bytes = raw_ack(1000, 0, MAX_VARINT, 0, &[]);
        assert_eq!(single_error(&bytes), FrameError::InvalidAck);
        bytes = raw_ack(1000, 0, 3, 0, &[(0, 0), (0, 0)]);
        assert_eq!(single_error(&bytes), FrameError::InvalidAck);
        // Plausible count but truncated last pair.
        bytes = raw_ack(1000, 0, 2, 0, &[(0, 0), (0, 300)]);
        bytes.pop();
        assert_eq!(single_error(&bytes), FrameError::UnexpectedEnd);
    }

    #[test]
    fn value_width_checks() {
        let mut buf = [0u8; 16];
        let mut w = Writer::new(&mut buf);
        w.put_u8(frame_type::DISCONNECT).unwrap();
        w.put_varint(u64::from(u32::MAX) + 1).unwrap();
        let n = w.position();
        assert_eq!(single_error(&buf[..n]), FrameError::ValueTooLarge);

        let mut w = Writer::new(&mut buf);
        w.put_u8(frame_type::DATA_FRAGMENT).unwrap();
        w.put_u8(0).unwrap();
        w.put_varint(0).unwrap();
        w.put_varint(0).unwrap();
        w.put_varint(u64::from(u32::MAX) + 1).unwrap();
        let n = w.position();
        assert_eq!(single_error(&buf[..n]), FrameError::ValueTooLarge);
    }

    #[test]
    fn fragment_rules() {
        let cases = [
            ((0, 1), 1, Err(FrameError::InvalidFragment)),
            ((0, 0), 1, Err(FrameError::InvalidFragment)),
            ((2, 2), 1, Err(FrameError::InvalidFragment)),
            ((5, 2), 1, Err(FrameError::InvalidFragment)),
            ((1, 2), 0, Err(FrameError::InvalidFragment)),
            ((1, 2), 1, Ok(())),
            ((0, 2), 1, Ok(())),
        ];
        for ((index, count), len, expected) in cases {
            let payload = vec![0xaa; len];
            let frame = Frame::Data(DataFrame {
                channel: 1,
                message_id: 9,
                fragment: Some(Fragment { index, count }),
                payload: &payload,
            });
            // Bypass encode's debug assertion to produce invalid frames.
            let mut buf = vec![0u8; frame.encoded_len()];
            let mut w = Writer::new(&mut buf);
            for v in [frame_type::DATA_FRAGMENT, 1, 9] {
                w.put_u8(v).unwrap();
            }
            for v in [index, count, len as u32] {
                w.put_varint(u64::from(v)).unwrap();
            }
            w.put_bytes(&payload).unwrap();
            let decoded: Result<Vec<_>, _> = FrameReader::new(&buf).collect();
            assert_eq!(
                decoded.map(|f| assert_eq!(f, [frame])),
                expected,
                "{index}/{count}, {len}"
            );
        }
    }

    #[test]
    fn length_overrun_and_truncation() {
        assert_eq!(
            single_error(&[0x10, 0, 0, 5, 1, 2, 3, 4]),
            FrameError::LengthOverrun
        );
        assert_eq!(single_error(&[0x10, 0, 0, 0xff]), FrameError::UnexpectedEnd);
        assert_eq!(single_error(&[0x10, 0]), FrameError::UnexpectedEnd);
        assert_eq!(single_error(&[0x03]), FrameError::UnexpectedEnd);
        assert_eq!(single_error(&[0x02, 1, 0, 0]), FrameError::UnexpectedEnd);
        // An empty DATA message is valid.
        assert_eq!(
            decode_all(&[0x10, 2, 0, 0]),
            [Ok(Frame::Data(DataFrame {
                channel: 2,
                message_id: 0,
                fragment: None,
                payload: &[]
            }))]
        );
    }

    #[test]
    fn unknown_types_and_stop_after_error() {
        for t in (0x05..=0x0f).chain(0x12..=0xff) {
            let bytes = [0x01, t, 0x01];
            let frames = decode_all(&bytes);
            assert_eq!(frames, [Ok(Frame::Ping), Err(FrameError::UnknownType(t))]);
        }
        let mut reader = FrameReader::new(&[0x07, 0x01]);
        assert_eq!(reader.next(), Some(Err(FrameError::UnknownType(7))));
        assert_eq!(reader.next(), None);
        assert_eq!(reader.next(), None);
        assert_eq!(FrameReader::new(&[]).next(), None);
    }

    #[test]
    fn encode_is_all_or_nothing() {
        let frame = Frame::Data(DataFrame {
            channel: 1,
            message_id: 1000,
            fragment: None,
            payload: &[1, 2, 3],
        });
        let len = frame.encoded_len();
        assert_eq!(len, 1 + 1 + 2 + 1 + 3);
        for size in 0..len {
            let mut buf = vec![0u8; size];
            let mut w = Writer::new(&mut buf);
            assert_eq!(frame.encode(&mut w), Err(BufferTooSmall));
            assert_eq!(w.position(), 0);
            assert_eq!(
                encode_data_header(&mut w, 1, 1000, None, 3),
                Err(BufferTooSmall)
            );
            assert_eq!(w.position(), 0);
        }
    }

    #[test]
    fn ack_eliciting() {
        assert!(!Frame::Padding.is_ack_eliciting());
        assert!(Frame::Ping.is_ack_eliciting());
        assert!(Frame::Disconnect { code: 0 }.is_ack_eliciting());
        let bytes = raw_ack(0, 0, 0, 0, &[]);
        let Some(Ok(ack)) = FrameReader::new(&bytes).next() else {
            panic!()
        };
        assert!(!ack.is_ack_eliciting());
    }

    /// Owned description of a frame, for generation.
    #[derive(Debug, Clone)]
    enum Spec {
        Padding,
        Ping,
        /// Ranges from highest to lowest, valid.
        Ack {
            largest: u64,
            delay: u64,
            first: u64,
            pairs: Vec<(u64, u64)>,
        },
        Disconnect(u32),
        KeyUpdate(u64),
        Data {
            channel: u8,
            message_id: u64,
            fragment: Option<Fragment>,
            payload: Vec<u8>,
        },
    }

    fn varint_value() -> impl Strategy<Value = u64> {
        prop_oneof![0..64u64, 0..16_384u64, 0..(1u64 << 30), 0..=MAX_VARINT]
    }

    fn spec() -> impl Strategy<Value = Spec> {
        let ack = (
            0..(1u64 << 40),
            varint_value(),
            0..100_000u64,
            proptest::collection::vec((0..20_000u64, 0..20_000u64), 0..40),
        )
            .prop_map(|(base, delay, first, pairs)| {
                let span: u64 = first + pairs.iter().map(|(g, l)| g + 2 + l).sum::<u64>();
                Spec::Ack {
                    largest: base + span,
                    delay,
                    first,
                    pairs,
                }
            });
        let fragment =
            prop_oneof![2..10u32, 2..=u32::MAX].prop_flat_map(|count| (0..count, Just(count)));
        let data = (
            any::<u8>(),
            varint_value(),
            proptest::option::of(fragment),
            proptest::collection::vec(any::<u8>(), 1..300),
        )
            .prop_map(|(channel, message_id, fragment, payload)| Spec::Data {
                channel,
                message_id,
                fragment: fragment.map(|(index, count)| Fragment { index, count }),
                payload,
            });
        prop_oneof![
            Just(Spec::Padding),
            Just(Spec::Ping),
            ack,
            any::<u32>().prop_map(Spec::Disconnect),
            varint_value().prop_map(Spec::KeyUpdate),
            data,
            // Empty whole messages.
            (any::<u8>(), varint_value()).prop_map(|(channel, message_id)| Spec::Data {
                channel,
                message_id,
                fragment: None,
                payload: Vec::new(),
            }),
        ]
    }

    /// Builds the frame a spec describes; ACK bytes live in `storage`.
    fn build<'a>(spec: &'a Spec, storage: &'a mut Vec<u8>) -> Frame<'a> {
        match spec {
            Spec::Padding => Frame::Padding,
            Spec::Ping => Frame::Ping,
            Spec::Ack {
                largest,
                delay,
                first,
                pairs,
            } => {
                *storage = raw_ack(*largest, *delay, pairs.len() as u64, *first, pairs);
                match FrameReader::new(storage).next() {
                    Some(Ok(frame @ Frame::Ack(_))) => frame,
                    other => panic!("generated ACK does not decode: {other:?}"),
                }
            }
            Spec::Disconnect(code) => Frame::Disconnect { code: *code },
            Spec::KeyUpdate(generation) => Frame::KeyUpdate {
                generation: *generation,
            },
            Spec::Data {
                channel,
                message_id,
                fragment,
                payload,
            } => Frame::Data(DataFrame {
                channel: *channel,
                message_id: *message_id,
                fragment: *fragment,
                payload,
            }),
        }
    }

    fn expected_ranges(spec: &Spec) -> Vec<RangeInclusive<u64>> {
        let Spec::Ack {
            largest,
            first,
            pairs,
            ..
        } = spec
        else {
            return Vec::new();
        };
        let mut out = vec![largest - first..=*largest];
        let mut low = largest - first;
        for (gap, len) in pairs {
            let high = low - gap - 2;
            low = high - len;
            out.push(low..=high);
        }
        out
    }

    proptest! {
        #[test]
        fn frame_round_trip(spec in spec()) {
            let mut storage = Vec::new();
            let frame = build(&spec, &mut storage);
            let bytes = encode_one(&frame);
            let decoded = decode_all(&bytes);
            prop_assert_eq!(&decoded, &[Ok(frame)]);
            if let Frame::Ack(ack) = frame {
                let ranges: Vec<_> = ack.ranges().collect();
                let expected = expected_ranges(&spec);
                prop_assert_eq!(ack.range_count(), expected.len());
                prop_assert_eq!(ack.smallest(), *expected.last().unwrap().start());
                prop_assert_eq!(ranges, expected);
            }
        }

        #[test]
        fn frame_sequence_round_trip(specs in proptest::collection::vec(spec(), 0..12)) {
            let mut storages = vec![Vec::new(); specs.len()];
            let frames: Vec<Frame<'_>> = specs
                .iter()
                .zip(storages.iter_mut())
                .map(|(spec, storage)| build(spec, storage))
                .collect();
            let total: usize = frames.iter().map(Frame::encoded_len).sum();
            let mut buf = vec![0u8; total];
            let mut w = Writer::new(&mut buf);
            for frame in &frames {
                frame.encode(&mut w).unwrap();
            }
            prop_assert_eq!(w.remaining(), 0);
            let decoded: Vec<_> = FrameReader::new(&buf).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(decoded, frames);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut reader = FrameReader::new(&bytes);
            let mut consumed_ok = 0usize;
            for item in reader.by_ref() {
                match item {
                    Ok(frame) => {
                        consumed_ok += frame.encoded_len();
                        if let Frame::Ack(ack) = frame {
                            let ranges: Vec<_> = ack.ranges().collect();
                            prop_assert_eq!(ranges.len(), ack.range_count());
                            prop_assert_eq!(*ranges[0].end(), ack.largest());
                            prop_assert_eq!(*ranges.last().unwrap().start(), ack.smallest());
                            for pair in ranges.windows(2) {
                                prop_assert!(pair[1].end() + 1 < *pair[0].start());
                            }
                        }
                    }
                    Err(_) => break,
                }
            }
            prop_assert!(reader.next().is_none());
            prop_assert!(consumed_ok <= bytes.len());
        }

        #[test]
        fn random_bytes_after_valid_prefix(
            spec in spec(),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut storage = Vec::new();
            let frame = build(&spec, &mut storage);
            let mut bytes = encode_one(&frame);
            bytes.extend_from_slice(&tail);
            let mut reader = FrameReader::new(&bytes);
            prop_assert_eq!(reader.next(), Some(Ok(frame)));
            for item in reader.by_ref() {
                if item.is_err() {
                    break;
                }
            }
            prop_assert!(reader.next().is_none());
        }

        #[test]
        fn truncated_frames_fail(spec in spec()) {
            let mut storage = Vec::new();
            let frame = build(&spec, &mut storage);
            let bytes = encode_one(&frame);
            for cut in 1..bytes.len() {
                let decoded = decode_all(&bytes[..cut]);
                prop_assert!(matches!(decoded.last(), Some(Err(_))), "cut {} of {:?}", cut, frame);
            }
        }
    }
}
