//! A small pool of byte buffers, so that the steady state of a connection reuses
//! message buffers instead of allocating one per packet.

/// Buffers larger than this are not kept: the pool serves the common case,
/// messages that fit a datagram, and a burst of large messages must not pin
/// their memory to the connection (64 buffers of 64 KiB per direction did:
/// 8 MiB per connection under a soak).
const MAX_POOLED_CAPACITY_BYTES: usize = 2 << 10;

/// Reusable `Vec<u8>` buffers, at most `max_buffers` of them.
#[derive(Debug)]
pub struct BufferPool {
    free: Vec<Vec<u8>>,
    max_buffers: usize,
}

impl BufferPool {
    /// An empty pool that keeps at most `max_buffers` buffers.
    pub fn new(max_buffers: usize) -> Self {
        Self {
            free: Vec::new(),
            max_buffers,
        }
    }

    /// An empty buffer with at least `capacity` bytes of room.
    #[inline]
    pub fn take(&mut self, capacity: usize) -> Vec<u8> {
        match self.free.pop() {
            Some(mut buf) => {
                buf.reserve(capacity);
                buf
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Returns a buffer for reuse (dropped if the pool is full or it is large).
    #[inline(always)]
    pub fn give(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > MAX_POOLED_CAPACITY_BYTES {
            return;
        }
        if self.free.len() < self.max_buffers {
            if self.free.capacity() == 0 {
                self.free.reserve_exact(self.max_buffers);
            }
            buf.clear();
            self.free.push(buf);
        }
    }

    /// Frees every buffer waiting for reuse, and the list of them (an idle
    /// connection; the pool fills again when traffic resumes).
    pub fn release(&mut self) {
        self.free = Vec::new();
    }

    /// Number of buffers waiting for reuse.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_and_bounds() {
        let mut p = BufferPool::new(2);
        let mut a = p.take(100);
        a.extend_from_slice(&[1; 100]);
        let ptr = a.as_ptr();
        p.give(a);
        let b = p.take(50);
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), ptr, "the same allocation comes back");
        p.give(b);
        p.give(vec![0; 10]);
        p.give(vec![0; 10]);
        assert_eq!(p.len(), 2);
        p.give(Vec::with_capacity(MAX_POOLED_CAPACITY_BYTES + 1));
        assert_eq!(p.len(), 2);
        p.release();
        assert_eq!((p.len(), p.free.capacity()), (0, 0));
        p.give(vec![0; 10]);
        assert_eq!(p.len(), 1);
    }
}
