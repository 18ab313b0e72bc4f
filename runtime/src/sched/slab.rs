//! A slab with generations: the storage behind the task table, the
//! reactor's token table and the wait queues' lists.
//!
//! Both tables hand out keys that outlive the entry they name: a timer or a
//! readiness event can still carry the key of a coroutine that finished, or of
//! a socket that was closed while its event was in flight. A key is therefore
//! a slot index plus the generation the slot had when the entry was inserted;
//! a lookup with a key from an older generation finds nothing. Lookups are an
//! index and a compare, with no hashing (see `docs/architecture.md`).

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

    /// The inverse of [`Key::to_usize`].
    pub(crate) fn from_usize(raw: usize) -> Key {
        Key {
            index: raw as u32,
            generation: (raw >> 32) as u32,
        }
    }
}

#[derive(Debug)]
struct Slot<T> {
    /// Bumped every time the slot is vacated, so old keys stop matching.
    generation: u32,
    value: Option<T>,
}

/// Entries addressed by generation-checked keys; freed slots are reused LIFO.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    /// Indices of empty slots. Invariant: exactly the slots whose value is None.
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab::new()
    }
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Stores `value` and returns its key.
    pub(crate) fn insert(&mut self, value: T) -> Key {
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.value = Some(value);
                Key {
                    index,
                    generation: slot.generation,
                }
            }
            None => {
                let index = u32::try_from(self.slots.len()).expect("more than 2^32 live entries");
                self.slots.push(Slot {
                    generation: 0,
                    value: Some(value),
                });
                Key {
                    index,
                    generation: 0,
                }
            }
        }
    }

    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation == key.generation {
            slot.value.as_ref()
        } else {
            None
        }
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation == key.generation {
            slot.value.as_mut()
        } else {
            None
        }
    }

    /// Removes the entry; its key, and every copy of it, stops matching.
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        Some(value)
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Live entries with their keys, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            let key = Key {
                index: index as u32,
                generation: slot.generation,
            };
            slot.value.as_ref().map(|value| (key, value))
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
        assert_eq!(slab.get(new), Some(&"second"));
        assert_eq!(Key::from_usize(new.to_usize()), new);
        assert_eq!(slab.len(), 1);
    }
}
