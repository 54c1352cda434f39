//! Byte-level encoding shared by the wire formats: QUIC variable-length integers
//! (RFC 9000 §16, PROTOCOL.md "Notation") and the two cursors every encoder and
//! decoder is built on, [`Writer`] over a caller-provided `&mut [u8]` and
//! [`Reader`] over a borrowed `&[u8]`. Neither cursor allocates; a failed write
//! leaves the buffer and the position untouched, and a failed read leaves the
//! position untouched.

use thiserror::Error;

/// Largest value a varint can carry: 62 bits, because the two high bits of the
/// first byte hold the length.
pub const MAX_VARINT: u64 = (1 << 62) - 1;

/// Largest value of a one-byte varint (6 value bits).
const MAX_VARINT_1_BYTE: u64 = (1 << 6) - 1;
/// Largest value of a two-byte varint (14 value bits).
const MAX_VARINT_2_BYTES: u64 = (1 << 14) - 1;
/// Largest value of a four-byte varint (30 value bits).
const MAX_VARINT_4_BYTES: u64 = (1 << 30) - 1;

/// The write did not fit in the rest of the buffer; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[error("buffer too small")]
pub struct BufferTooSmall;

/// The input ended before the value being read; nothing was consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[error("unexpected end of input")]
pub struct UnexpectedEnd;

/// Number of bytes the shortest varint encoding of `v` takes (1, 2, 4 or 8).
///
/// # Panics
///
/// If `v > MAX_VARINT`: such a value has no encoding, and every value this crate
/// encodes (packet numbers, message IDs, lengths, codes) is bounded well below it.
pub const fn varint_len(v: u64) -> usize {
    if v <= MAX_VARINT_1_BYTE {
        1
    } else if v <= MAX_VARINT_2_BYTES {
        2
    } else if v <= MAX_VARINT_4_BYTES {
        4
    } else if v <= MAX_VARINT {
        8
    } else {
        panic!("value exceeds MAX_VARINT")
    }
}

/// Cursor that writes forward into a caller-provided byte slice.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Number of bytes written so far.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Number of bytes that can still be written.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.pos]
    }

    /// Takes back everything written after the first `position` bytes (a
    /// writer that wrote part of something and found the rest did not fit).
    /// The bytes stay in the buffer; they are only no longer counted.
    ///
    /// # Panics
    ///
    /// If `position` is beyond [`position`](Self::position).
    pub fn truncate(&mut self, position: usize) {
        assert!(position <= self.pos, "truncating forward");
        self.pos = position;
    }

    /// Reserves `n` bytes and returns them, or fails without moving.
    #[inline]
    fn take(&mut self, n: usize) -> Result<&mut [u8], BufferTooSmall> {
        if n > self.remaining() {
            return Err(BufferTooSmall);
        }
        let start = self.pos;
        self.pos += n;
        Ok(&mut self.buf[start..start + n])
    }

    /// Writes one byte.
    #[inline]
    pub fn put_u8(&mut self, v: u8) -> Result<(), BufferTooSmall> {
        self.take(1)?[0] = v;
        Ok(())
    }

    /// Writes a big-endian `u32`.
    #[inline]
    pub fn put_u32(&mut self, v: u32) -> Result<(), BufferTooSmall> {
        self.put_bytes(&v.to_be_bytes())
    }

    /// Writes a big-endian `u64`.
    #[inline]
    pub fn put_u64(&mut self, v: u64) -> Result<(), BufferTooSmall> {
        self.put_bytes(&v.to_be_bytes())
    }

    /// Writes `v` as a varint in its shortest form ([`varint_len`] bytes).
    ///
    /// # Panics
    ///
    /// If `v > MAX_VARINT` (see [`varint_len`]).
    #[inline]
    pub fn put_varint(&mut self, v: u64) -> Result<(), BufferTooSmall> {
        // The casts keep exactly the value bits, which the comparisons bound.
        if v <= MAX_VARINT_1_BYTE {
            // Most values on the per-packet path: counts, small lengths.
            return self.put_u8(v as u8);
        }
        if v <= MAX_VARINT_2_BYTES {
            // Message IDs and packet numbers of a young connection.
            return self.put_bytes(&(v as u16 | 0x4000).to_be_bytes());
        }
        self.put_long_varint(v)
    }

    /// [`Writer::put_varint`] for values of four bytes or more.
    fn put_long_varint(&mut self, v: u64) -> Result<(), BufferTooSmall> {
        if v <= MAX_VARINT_4_BYTES {
            self.put_u32(v as u32 | 0x8000_0000)
        } else {
            assert!(v <= MAX_VARINT, "value exceeds MAX_VARINT");
            self.put_u64(v | 0xc000_0000_0000_0000)
        }
    }

    /// Writes one byte where the caller made sure there is room (a frame
    /// encoder that checked its whole length first): no `Result` to carry.
    ///
    /// # Panics
    ///
    /// If the buffer is full (the caller's bug; nothing is written out of bounds).
    #[inline(always)]
    pub(crate) fn put_u8_in_room(&mut self, v: u8) {
        self.buf[self.pos] = v;
        self.pos += 1;
    }

    /// [`Writer::put_varint`] where the caller made sure [`varint_len`]`(v)`
    /// bytes fit (see [`Writer::put_u8_in_room`]).
    ///
    /// # Panics
    ///
    /// If they do not fit, or `v > MAX_VARINT`.
    #[inline(always)]
    pub(crate) fn put_varint_in_room(&mut self, v: u64) {
        let pos = self.pos;
        if v <= MAX_VARINT_1_BYTE {
            self.buf[pos] = v as u8;
            self.pos = pos + 1;
        } else if v <= MAX_VARINT_2_BYTES {
            self.buf[pos..pos + 2].copy_from_slice(&(v as u16 | 0x4000).to_be_bytes());
            self.pos = pos + 2;
        } else {
            self.put_long_varint(v)
                .expect("the caller checked the varint fits");
        }
    }

    /// Writes `bytes` as they are.
    #[inline]
    pub fn put_bytes(&mut self, bytes: &[u8]) -> Result<(), BufferTooSmall> {
        self.take(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }
}

/// Cursor that reads forward through a borrowed byte slice; byte strings it
/// returns borrow from the input.
///
/// It holds the bytes not yet read, so a read checks one length and
/// advances by re-slicing (the compiler sees the bound it just checked).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    /// The bytes not yet consumed.
    rest: &'a [u8],
    /// Length of the whole input (for [`Reader::position`]).
    len: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            rest: buf,
            len: buf.len(),
        }
    }

    /// Number of bytes consumed so far.
    #[inline]
    pub fn position(&self) -> usize {
        self.len - self.rest.len()
    }

    /// Number of bytes not yet consumed.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Whether every byte has been consumed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The bytes not yet consumed, without consuming them.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Reads one byte.
    #[inline]
    pub fn get_u8(&mut self) -> Result<u8, UnexpectedEnd> {
        let (&b, rest) = self.rest.split_first().ok_or(UnexpectedEnd)?;
        self.rest = rest;
        Ok(b)
    }

    /// Reads a big-endian `u32`.
    #[inline]
    pub fn get_u32(&mut self) -> Result<u32, UnexpectedEnd> {
        self.get_array().map(u32::from_be_bytes)
    }

    /// Reads a big-endian `u64`.
    #[inline]
    pub fn get_u64(&mut self) -> Result<u64, UnexpectedEnd> {
        self.get_array().map(u64::from_be_bytes)
    }

    /// Reads a varint; encodings longer than necessary are accepted. The result
    /// is at most [`MAX_VARINT`].
    #[inline]
    pub fn get_varint(&mut self) -> Result<u64, UnexpectedEnd> {
        let first = *self.rest.first().ok_or(UnexpectedEnd)?;
        // The two high bits of the first byte give the length, the rest the value.
        let value = match first >> 6 {
            0 => {
                self.rest = &self.rest[1..];
                return Ok(u64::from(first));
            }
            1 => u64::from(u16::from_be_bytes(self.get_array()?) & 0x3fff),
            2 => u64::from(self.get_u32()? & 0x3fff_ffff),
            _ => self.get_u64()? & MAX_VARINT,
        };
        Ok(value)
    }

    /// Reads the next `n` bytes, borrowed from the input.
    #[inline]
    pub fn get_bytes(&mut self, n: usize) -> Result<&'a [u8], UnexpectedEnd> {
        let (bytes, rest) = self.rest.split_at_checked(n).ok_or(UnexpectedEnd)?;
        self.rest = rest;
        Ok(bytes)
    }

    /// Reads the next `N` bytes as an array.
    #[inline]
    fn get_array<const N: usize>(&mut self) -> Result<[u8; N], UnexpectedEnd> {
        let (array, rest) = self.rest.split_first_chunk::<N>().ok_or(UnexpectedEnd)?;
        self.rest = rest;
        Ok(*array)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(v: u64) -> Vec<u8> {
        let mut buf = [0u8; 8];
        let mut w = Writer::new(&mut buf);
        w.put_varint(v).unwrap();
        w.written().to_vec()
    }

    #[test]
    fn rfc9000_examples() {
        // RFC 9000 appendix A.1 sample encodings.
        let samples: [(&[u8], u64); 4] = [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (bytes, value) in samples {
            assert_eq!(Reader::new(bytes).get_varint(), Ok(value));
            assert_eq!(encode(value), bytes);
        }
        // A non-shortest encoding is accepted.
        assert_eq!(Reader::new(&[0x40, 0x25]).get_varint(), Ok(37));
    }

    #[test]
    fn length_boundaries() {
        let cases = [
            (0, 1),
            (63, 1),
            (64, 2),
            (16_383, 2),
            (16_384, 4),
            ((1 << 30) - 1, 4),
            (1 << 30, 8),
            (MAX_VARINT, 8),
        ];
        for (value, len) in cases {
            assert_eq!(varint_len(value), len, "varint_len({value})");
            let bytes = encode(value);
            assert_eq!(bytes.len(), len, "encoding of {value}");
            let mut r = Reader::new(&bytes);
            assert_eq!(r.get_varint(), Ok(value));
            assert!(r.is_empty());
        }
    }

    #[test]
    #[should_panic(expected = "MAX_VARINT")]
    fn varint_above_max_panics() {
        varint_len(MAX_VARINT + 1);
    }

    #[test]
    fn writer_failure_writes_nothing() {
        let mut buf = [0xaau8; 5];
        let mut w = Writer::new(&mut buf);
        w.put_u8(1).unwrap();
        assert_eq!(w.put_u64(7), Err(BufferTooSmall));
        assert_eq!(w.put_varint(1 << 30), Err(BufferTooSmall));
        assert_eq!(w.put_bytes(&[9; 5]), Err(BufferTooSmall));
        assert_eq!(w.position(), 1);
        assert_eq!(w.remaining(), 4);
        w.put_u32(0x0102_0304).unwrap();
        assert_eq!(w.remaining(), 0);
        assert_eq!(w.put_u8(0), Err(BufferTooSmall));
        assert_eq!(w.put_bytes(&[]), Ok(()));
        assert_eq!(buf, [1, 1, 2, 3, 4]);
    }

    #[test]
    fn reader_failure_consumes_nothing() {
        let data = [0x80, 0x00, 0x01];
        let mut r = Reader::new(&data);
        assert_eq!(r.get_varint(), Err(UnexpectedEnd));
        assert_eq!(r.get_u32(), Err(UnexpectedEnd));
        assert_eq!(r.get_u64(), Err(UnexpectedEnd));
        assert_eq!(r.get_bytes(4), Err(UnexpectedEnd));
        assert_eq!(r.position(), 0);
        assert_eq!(r.get_u8(), Ok(0x80));
        assert_eq!(r.get_bytes(2), Ok(&data[1..]));
        assert!(r.is_empty());
        assert_eq!(r.get_u8(), Err(UnexpectedEnd));
        assert_eq!(r.get_varint(), Err(UnexpectedEnd));
        assert_eq!(r.get_bytes(0), Ok(&[][..]));
    }

    #[test]
    fn fixed_width_big_endian() {
        let mut buf = [0u8; 12];
        let mut w = Writer::new(&mut buf);
        w.put_u32(0x0102_0304).unwrap();
        w.put_u64(0x0506_0708_090a_0b0c).unwrap();
        assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let mut r = Reader::new(&buf);
        assert_eq!(r.get_u32(), Ok(0x0102_0304));
        assert_eq!(r.get_u64(), Ok(0x0506_0708_090a_0b0c));
    }

    proptest! {
        #[test]
        fn varint_round_trip(v in 0..=MAX_VARINT) {
            let bytes = encode(v);
            prop_assert_eq!(bytes.len(), varint_len(v));
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(r.get_varint(), Ok(v));
            prop_assert!(r.is_empty());
            // Every truncation fails without consuming.
            for cut in 0..bytes.len() {
                let mut r = Reader::new(&bytes[..cut]);
                prop_assert_eq!(r.get_varint(), Err(UnexpectedEnd));
                prop_assert_eq!(r.position(), 0);
            }
        }

        #[test]
        fn mixed_round_trip(
            a in any::<u8>(),
            b in any::<u32>(),
            c in any::<u64>(),
            d in 0..=MAX_VARINT,
            e in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let mut buf = [0u8; 64];
            let mut w = Writer::new(&mut buf);
            w.put_u8(a).unwrap();
            w.put_u32(b).unwrap();
            w.put_u64(c).unwrap();
            w.put_varint(d).unwrap();
            w.put_bytes(&e).unwrap();
            let len = w.position();
            prop_assert_eq!(len, 1 + 4 + 8 + varint_len(d) + e.len());
            let mut r = Reader::new(&buf[..len]);
            prop_assert_eq!(r.get_u8(), Ok(a));
            prop_assert_eq!(r.get_u32(), Ok(b));
            prop_assert_eq!(r.get_u64(), Ok(c));
            prop_assert_eq!(r.get_varint(), Ok(d));
            prop_assert_eq!(r.get_bytes(e.len()), Ok(&e[..]));
            prop_assert!(r.is_empty());
        }

        #[test]
        fn any_bytes_decode_below_max(bytes in proptest::collection::vec(any::<u8>(), 0..9)) {
            let mut r = Reader::new(&bytes);
            if let Ok(v) = r.get_varint() {
                prop_assert!(v <= MAX_VARINT);
                prop_assert!(r.position() >= varint_len(v));
            }
        }
    }
}
