//! A slab with generations: the storage behind the task table, the
//! reactor's token table and the wait queues' lists.
//!
//! Both tables hand out keys that outlive the entry they name: a timer or a
//! readiness event can still carry the key of a coroutine that finished, or of
//! a socket that was closed while its event was in flight. A key is therefore
//! a slot index plus the generation the slot had when the entry was inserted;
//! a lookup with a key from an older generation finds nothing. Lookups are an
//! index and a compare, with no hashing (see `docs/architecture.md`).
//!
//! Slot 0 lives inside the slab itself and the free slots are chained
//! through their own storage, so a slab that never holds two entries at once
//! never allocates: a coroutine's join queue, which usually sees one joiner,
//! costs no heap memory. The alternative, a `Vec` of free indices beside the
//! slots, cost two allocations the first time a queue was used.

/// A key into a [`Slab`]: a slot and the generation of the entry it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// Packs the key into one `usize`, as a mio `Token` needs.
    pub(crate) fn to_usize(self) -> usize {
        ((self.generation as usize) << 32) | self.index as usize
    }

    /// The slot the key names: a dense index, for tables kept beside the
    /// slab (the hub's coroutines).
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }

    /// The inverse of [`Key::to_usize`].
    pub(crate) fn from_usize(raw: usize) -> Key {
        Key {
            index: raw as u32,
            generation: (raw >> 32) as u32,
        }
    }
}

/// The end of the free chain.
const NONE: u32 = u32::MAX;

#[derive(Debug)]
enum Entry<T> {
    Occupied(T),
    /// Empty; the index of the next empty slot, or [`NONE`].
    Vacant(u32),
}

#[derive(Debug)]
struct Slot<T> {
    /// Bumped every time the slot is vacated, so old keys stop matching.
    generation: u32,
    entry: Entry<T>,
}

/// Entries addressed by generation-checked keys; freed slots are reused LIFO.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    /// Slot 0, kept inline (see the module doc).
    first: Slot<T>,
    /// Slots 1 and up.
    rest: Vec<Slot<T>>,
    /// The first empty slot, or [`NONE`] when every slot is taken.
    /// Invariant: the chain from here names exactly the vacant slots.
    free: u32,
    /// Occupied slots (fewer than 2^32: see `insert`; a `u32` keeps a wait
    /// queue, which holds a slab, a word smaller).
    len: u32,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab::new()
    }
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Slab {
            first: Slot {
                generation: 0,
                entry: Entry::Vacant(NONE),
            },
            rest: Vec::new(),
            free: 0,
            len: 0,
        }
    }

    fn slot(&self, index: u32) -> Option<&Slot<T>> {
        match index {
            0 => Some(&self.first),
            _ => self.rest.get(index as usize - 1),
        }
    }

    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot<T>> {
        match index {
            0 => Some(&mut self.first),
            _ => self.rest.get_mut(index as usize - 1),
        }
    }

    /// Stores `value` and returns its key.
    pub(crate) fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if self.free == NONE {
            let index = u32::try_from(self.rest.len() + 1)
                .ok()
                .filter(|&index| index != NONE)
                .expect("fewer than 2^32 live entries");
            self.rest.push(Slot {
                generation: 0,
                entry: Entry::Occupied(value),
            });
            return Key {
                index,
                generation: 0,
            };
        }
        let index = self.free;
        let slot = self.slot_mut(index).expect("the free chain names slots");
        let Entry::Vacant(next) = slot.entry else {
            unreachable!("the free chain names vacant slots");
        };
        slot.entry = Entry::Occupied(value);
        let generation = slot.generation;
        self.free = next;
        Key { index, generation }
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        match self.slot(key.index)? {
            Slot {
                generation,
                entry: Entry::Occupied(value),
            } if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slot_mut(key.index)? {
            Slot {
                generation,
                entry: Entry::Occupied(value),
            } if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    /// The key of the live entry in slot `index`, if the slot holds one: for
    /// a structure that links its own entries by slot index (a wait
    /// queue's list), where no stale index can exist.
    pub(crate) fn key_at(&self, index: u32) -> Option<Key> {
        match self.slot(index)? {
            Slot {
                generation,
                entry: Entry::Occupied(_),
            } => Some(Key {
                index,
                generation: *generation,
            }),
            Slot {
                entry: Entry::Vacant(_),
                ..
            } => None,
        }
    }

    /// Starts loading the slot `key` names into the cache (see
    /// `sys/prefetch.rs`): computes its address without reading it.
    pub(crate) fn prefetch(&self, key: Key) {
        let Some(at) = (key.index as usize).checked_sub(1) else {
            return; // slot 0 lives in the slab itself, hot already
        };
        if at < self.rest.len() {
            let low = self.rest.as_ptr().wrapping_add(at) as usize;
            crate::sys::prefetch::range(low, low + std::mem::size_of::<Slot<T>>());
        }
    }

    /// Removes the entry; its key, and every copy of it, stops matching.
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let free = self.free;
        let slot = self.slot_mut(key.index)?;
        if slot.generation != key.generation || matches!(slot.entry, Entry::Vacant(_)) {
            return None;
        }
        let Entry::Occupied(value) = std::mem::replace(&mut slot.entry, Entry::Vacant(free)) else {
            unreachable!("checked above");
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free = key.index;
        self.len -= 1;
        Some(value)
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Live entries with their keys, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        std::iter::once(&self.first)
            .chain(&self.rest)
            .enumerate()
            .filter_map(|(index, slot)| match &slot.entry {
                Entry::Occupied(value) => Some((
                    Key {
                        index: index as u32,
                        generation: slot.generation,
                    },
                    value,
                )),
                Entry::Vacant(_) => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_from_a_removed_entry_never_finds_the_next_one() {
        let mut slab = Slab::new();
        let old = slab.insert("first");
        assert_eq!(slab.remove(old), Some("first"));
        let new = slab.insert("second");
        assert_eq!(slab.get(old), None);
        assert_eq!(slab.remove(old), None);
        assert_eq!(slab.get(new), Some(&"second"));
        assert_eq!(Key::from_usize(new.to_usize()), new);
        assert_eq!(slab.len(), 1);
    }

    #[test]
    fn freed_slots_are_reused_last_freed_first_and_iteration_skips_them() {
        let mut slab = Slab::new();
        let keys: Vec<Key> = (0..5).map(|n| slab.insert(n)).collect();
        slab.remove(keys[1]);
        slab.remove(keys[3]);
        let again = slab.insert(30);
        assert_eq!(again.index, keys[3].index);
        assert_ne!(again.generation, keys[3].generation);
        let again = slab.insert(10);
        assert_eq!(again.index, keys[1].index);
        let fresh = slab.insert(5);
        assert_eq!(fresh.index, 5);
        let values: Vec<i32> = slab.iter().map(|(_, v)| *v).collect();
        assert_eq!(values, [0, 10, 2, 30, 4, 5]);
        assert_eq!(slab.len(), 6);
        for (key, value) in slab.iter() {
            assert_eq!(slab.get(key), Some(value));
        }
    }
}
