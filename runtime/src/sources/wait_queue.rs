//! A FIFO of parked coroutines waiting for something other than a socket or
//! a timer: a coroutine's end (join), and every synchronisation primitive.
//!
//! Waiters sit in a doubly linked list threaded through a slab, so a park
//! that ends by its deadline or a kill removes its own entry in O(1) by the
//! key it got when it registered: 40,000 coroutines timing out on one `Event`
//! cost 40,000 constant-time removals, not a scan each. The queue never calls
//! the hub: `notify_one` is handed the scheduler to wake through.

use std::cell::{Cell, RefCell};

use crate::sched::{Key, Sched, Slab, Waiter, Wake};

/// The end of a list, in a `prev`/`next`/`head`/`tail` link.
const END: u32 = u32::MAX;

/// One queued waiter and its neighbours, by slot index in the same slab:
/// a node is unlinked before its slot is freed, so a link never names a
/// stale slot, and an index is half the size of a key (every parked
/// coroutine has a node, and every join state a list).
#[derive(Debug)]
struct Node {
    waiter: Waiter,
    /// The tag the park gave this registration, passed back in its wake.
    tag: usize,
    prev: u32,
    next: u32,
}

/// The list itself. Invariant: `head`/`tail` and the `prev`/`next` links
/// name exactly the nodes in `nodes`, in arrival order ([`END`] past
/// either end, and in both while it is empty).
#[derive(Debug)]
struct List {
    nodes: Slab<Node>,
    head: u32,
    tail: u32,
}

impl Default for List {
    fn default() -> Self {
        List::new()
    }
}

impl List {
    const fn new() -> Self {
        List {
            nodes: Slab::new(),
            head: END,
            tail: END,
        }
    }

    fn node(&mut self, index: u32) -> &mut Node {
        let key = self.nodes.key_at(index).expect("a link names a live node");
        self.nodes.get_mut(key).expect("a link names a live node")
    }

    fn push_back(&mut self, waiter: Waiter, tag: usize) -> Key {
        let key = self.nodes.insert(Node {
            waiter,
            tag,
            prev: self.tail,
            next: END,
        });
        let index = key.index() as u32;
        match self.tail {
            END => self.head = index,
            tail => self.node(tail).next = index,
        }
        self.tail = index;
        key
    }

    fn remove(&mut self, key: Key) -> Option<Node> {
        let node = self.nodes.remove(key)?;
        match node.prev {
            END => self.head = node.next,
            prev => self.node(prev).next = node.next,
        }
        match node.next {
            END => self.tail = node.prev,
            next => self.node(next).prev = node.prev,
        }
        Some(node)
    }

    fn pop_front(&mut self) -> Option<Node> {
        let key = self.nodes.key_at(self.head)?;
        self.remove(key)
    }
}

/// The handle of one registration, for its park to take it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry(Key);

/// A FIFO wait queue. See the module doc.
#[derive(Debug)]
pub(crate) struct WaitQueue {
    /// What the waiters wait for, shown by `stats()` and deadlock reports.
    pub(crate) label: &'static str,
    list: RefCell<List>,
    /// Waiters woken by `notify_one` that have not run yet. A primitive
    /// counts what they will take (a permit, an item) as spoken for, so a
    /// newcomer cannot overtake them: that is what makes the queues FIFO.
    /// The park decrements it when the woken coroutine resumes.
    outstanding: Cell<usize>,
}

impl WaitQueue {
    pub(crate) const fn new(label: &'static str) -> Self {
        WaitQueue {
            label,
            list: RefCell::new(List::new()),
            outstanding: Cell::new(0),
        }
    }

    /// Registers a parking coroutine at the back.
    pub(crate) fn push(&self, waiter: Waiter, tag: usize) -> Entry {
        Entry(self.list.borrow_mut().push_back(waiter, tag))
    }

    /// Takes a registration back; false if a notify took it already.
    pub(crate) fn remove(&self, entry: Entry) -> bool {
        self.list.borrow_mut().remove(entry.0).is_some()
    }

    /// Wakes the longest-waiting coroutine; false if none was waiting.
    pub(crate) fn notify_one(&self, sched: &Sched) -> bool {
        loop {
            let Some(node) = self.list.borrow_mut().pop_front() else {
                return false;
            };
            if sched.wake(
                node.waiter,
                Wake::Notified {
                    from: node.tag as u32,
                },
            ) {
                self.outstanding.set(self.outstanding.get() + 1);
                return true;
            }
        }
    }

    /// The woken coroutine has resumed: its notification is consumed.
    pub(crate) fn consumed(&self) {
        self.outstanding
            .set(self.outstanding.get().saturating_sub(1));
    }

    /// Woken waiters that have not run yet (see the field's doc).
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.get()
    }

    /// Parked coroutines.
    pub(crate) fn len(&self) -> usize {
        self.list.borrow().nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(seq: u64) -> Waiter {
        Waiter {
            hub: crate::sched::HubId::for_tests(),
            task: Key::from_usize(0),
            seq,
        }
    }

    #[test]
    fn removal_from_the_middle_keeps_the_others_in_order() {
        let mut list = List::default();
        let keys: Vec<Key> = (0..5).map(|n| list.push_back(waiter(n), 0)).collect();
        assert!(list.remove(keys[2]).is_some());
        assert!(list.remove(keys[2]).is_none(), "a key is removed once");
        assert!(list.remove(keys[0]).is_some());
        let order: Vec<u64> = std::iter::from_fn(|| list.pop_front())
            .map(|node| node.waiter.seq)
            .collect();
        assert_eq!(order, [1, 3, 4]);
        assert_eq!((list.head, list.tail), (END, END));
    }
}
