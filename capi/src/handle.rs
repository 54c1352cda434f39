//! Handles that survive misuse.
//!
//! A handle given to C is not a pointer to a Rust object: it is a number that
//! encodes a slot of a global registry (one per kind of handle), the slot's
//! generation, and a tag naming the kind:
//!
//! ```text
//!   64-bit: | generation (32) | slot (28) | tag (4) |
//!   32-bit: | generation (16) | slot (12) | tag (4) |
//! ```
//!
//! The tag's low bits are never all zero, so a real (aligned) pointer passed
//! by mistake is refused, and a server handle passed as a client is recognized
//! as such. A destroyed handle's slot gets a new generation, so the old value
//! no longer matches, even after the slot is reused: destroyed, stale, NULL or
//! invented handles give `FASTNET_ERROR_INVALID_HANDLE`, never a crash.
//!
//! The registry hands out `Arc`s: its lock is held only to look a slot up, and
//! a handle destroyed while another thread uses it is freed when that use ends.

use std::sync::{Arc, Mutex};

use crate::abi::FastNetError::{
    FASTNET_ERROR_INVALID_HANDLE, FASTNET_ERROR_RESOURCE_LIMIT, FASTNET_ERROR_WRONG_HANDLE_TYPE,
};
use crate::ffi::{lock, Failure, Outcome};

const TAG_BITS: u32 = 4;
const TAG_MASK: usize = (1 << TAG_BITS) - 1;
const SLOT_BITS: u32 = if usize::BITS >= 64 { 28 } else { 12 };
const SLOT_MASK: usize = (1 << SLOT_BITS) - 1;
const GENERATION_BITS: u32 = usize::BITS - TAG_BITS - SLOT_BITS;
const GENERATION_MASK: usize = (1 << GENERATION_BITS) - 1;

/// The kinds of handle, each with its own registry and tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Client,
    Server,
}

impl Kind {
    const fn tag(self) -> usize {
        match self {
            Kind::Client => 0b1010,
            Kind::Server => 0b0110,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Client => "client",
            Kind::Server => "server",
        }
    }

    fn other(self) -> Kind {
        match self {
            Kind::Client => Kind::Server,
            Kind::Server => Kind::Client,
        }
    }
}

struct Slot<T> {
    /// Never 0 (so that no handle is 0 = NULL, even for slot 0).
    generation: usize,
    value: Option<Arc<T>>,
}

struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
    live: usize,
}

/// A registry of live handles of one kind.
pub(crate) struct Registry<T> {
    kind: Kind,
    slab: Mutex<Slab<T>>,
}

fn encode(kind: Kind, slot: usize, generation: usize) -> usize {
    (generation << (TAG_BITS + SLOT_BITS)) | (slot << TAG_BITS) | kind.tag()
}

fn next_generation(generation: usize) -> usize {
    match (generation + 1) & GENERATION_MASK {
        0 => 1,
        g => g,
    }
}

impl<T> Registry<T> {
    pub const fn new(kind: Kind) -> Self {
        Self {
            kind,
            slab: Mutex::new(Slab {
                slots: Vec::new(),
                free: Vec::new(),
                live: 0,
            }),
        }
    }

    /// Decodes a handle of this registry's kind into its slot and generation.
    fn decode(&self, handle: usize) -> Outcome<(usize, usize)> {
        let what = self.kind.name();
        if handle == 0 {
            return Err(Failure::new(
                FASTNET_ERROR_INVALID_HANDLE,
                format!("the {what} handle is NULL"),
            ));
        }
        let tag = handle & TAG_MASK;
        if tag != self.kind.tag() {
            if tag == self.kind.other().tag() {
                return Err(Failure::new(
                    FASTNET_ERROR_WRONG_HANDLE_TYPE,
                    format!(
                        "a {} handle was passed where a {what} handle is expected",
                        self.kind.other().name()
                    ),
                ));
            }
            return Err(Failure::new(
                FASTNET_ERROR_INVALID_HANDLE,
                format!("{handle:#x} is not a FastNet {what} handle"),
            ));
        }
        Ok((
            (handle >> TAG_BITS) & SLOT_MASK,
            handle >> (TAG_BITS + SLOT_BITS),
        ))
    }

    fn stale(&self) -> Failure {
        Failure::new(
            FASTNET_ERROR_INVALID_HANDLE,
            format!(
                "the {} handle is not (or no longer) valid: destroyed, or never created",
                self.kind.name()
            ),
        )
    }

    /// Registers `value`; returns its handle (never 0).
    pub fn insert(&self, value: T) -> Outcome<usize> {
        let mut slab = lock(&self.slab);
        let slot = match slab.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = slab.slots.len();
                if slot > SLOT_MASK {
                    return Err(Failure::new(
                        FASTNET_ERROR_RESOURCE_LIMIT,
                        format!("too many live {} handles", self.kind.name()),
                    ));
                }
                slab.slots.push(Slot {
                    generation: 1,
                    value: None,
                });
                slot
            }
        };
        slab.live += 1;
        let entry = &mut slab.slots[slot];
        entry.value = Some(Arc::new(value));
        Ok(encode(self.kind, slot, entry.generation))
    }

    /// The value of a live handle.
    pub fn get(&self, handle: usize) -> Outcome<Arc<T>> {
        let (slot, generation) = self.decode(handle)?;
        let slab = lock(&self.slab);
        match slab.slots.get(slot) {
            Some(Slot {
                generation: g,
                value: Some(value),
            }) if *g == generation => Ok(value.clone()),
            _ => Err(self.stale()),
        }
    }

    /// Unregisters a live handle and returns its value: from now on the handle
    /// is invalid, and its slot will come back with another generation.
    pub fn remove(&self, handle: usize) -> Outcome<Arc<T>> {
        let (slot, generation) = self.decode(handle)?;
        let mut slab = lock(&self.slab);
        let value = match slab.slots.get_mut(slot) {
            Some(entry) if entry.generation == generation && entry.value.is_some() => {
                entry.generation = next_generation(entry.generation);
                entry.value.take()
            }
            _ => None,
        };
        let Some(value) = value else {
            return Err(self.stale());
        };
        slab.free.push(slot);
        slab.live -= 1;
        Ok(value)
    }

    /// Live handles (for tests and diagnostics).
    #[allow(dead_code)]
    pub fn live(&self) -> usize {
        lock(&self.slab).live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_never_null_nor_aligned_pointers() {
        let r = Registry::new(Kind::Client);
        let h = r.insert(1u32).unwrap();
        assert_ne!(h, 0);
        assert_ne!(h % 8, 0, "not mistaken for an aligned pointer");
        assert_eq!(*r.get(h).unwrap(), 1);
    }

    #[test]
    fn destroyed_and_double_destroyed_handles_are_refused() {
        let r = Registry::new(Kind::Client);
        let h = r.insert(7u32).unwrap();
        assert_eq!(*r.remove(h).unwrap(), 7);
        assert_eq!(r.get(h).unwrap_err().code, FASTNET_ERROR_INVALID_HANDLE);
        assert_eq!(r.remove(h).unwrap_err().code, FASTNET_ERROR_INVALID_HANDLE);
        assert_eq!(r.live(), 0);
    }

    #[test]
    fn a_reused_slot_does_not_revive_a_stale_handle() {
        let r = Registry::new(Kind::Server);
        let old = r.insert("old").unwrap();
        r.remove(old).unwrap();
        let new = r.insert("new").unwrap();
        assert_ne!(old, new, "same slot, new generation");
        assert_eq!(r.get(old).unwrap_err().code, FASTNET_ERROR_INVALID_HANDLE);
        assert_eq!(*r.get(new).unwrap(), "new");
    }

    #[test]
    fn the_other_kind_and_garbage_are_recognized() {
        let clients = Registry::new(Kind::Client);
        let servers = Registry::new(Kind::Server);
        let s = servers.insert(()).unwrap();
        let c = clients.insert(()).unwrap();
        assert_eq!(
            clients.get(s).unwrap_err().code,
            FASTNET_ERROR_WRONG_HANDLE_TYPE
        );
        assert_eq!(
            servers.remove(c).unwrap_err().code,
            FASTNET_ERROR_WRONG_HANDLE_TYPE
        );
        for garbage in [
            0usize,
            8,
            0x1000,
            usize::MAX,
            usize::MAX & !TAG_MASK | 0b1010,
        ] {
            let e = clients.get(garbage).unwrap_err();
            assert!(
                e.code == FASTNET_ERROR_INVALID_HANDLE,
                "{garbage:#x}: {e:?}"
            );
        }
    }

    #[test]
    fn generations_wrap_without_reaching_zero() {
        assert_eq!(next_generation(GENERATION_MASK), 1);
        assert_eq!(next_generation(1), 2);
    }

    #[test]
    fn a_handle_in_use_survives_its_destruction_until_released() {
        let r = Registry::new(Kind::Client);
        let h = r.insert(vec![1u8, 2, 3]).unwrap();
        let in_use = r.get(h).unwrap();
        r.remove(h).unwrap();
        assert_eq!(*in_use, [1, 2, 3], "still readable by the thread using it");
        assert!(r.get(h).is_err());
    }
}
