//! Review: a run queue that drained after every burst gave its memory back
//! every time, so a steady cycle of bursts (one event waking the same 2,048
//! waiters round after round) reallocated the queue every round. A queue
//! now keeps the memory its previous burst needed too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use greenhub::sync::Event;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc`, passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` above with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc`, passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WAITERS: usize = 2048;
const ROUNDS: usize = 60;
const WARM: usize = 10;

#[test]
fn a_steady_cycle_of_bursts_does_not_reallocate_the_run_queue_every_round() {
    let per_round = greenhub::run(|| {
        let events: Rc<[Event; 2]> = Rc::new([Event::new(), Event::new()]);
        let passed = Rc::new(Cell::new(0usize));
        let mut handles = Vec::new();
        for _ in 0..WAITERS {
            let (events, passed) = (events.clone(), passed.clone());
            handles.push(greenhub::spawn(move || {
                for round in 0..ROUNDS {
                    events[round % 2].wait().unwrap();
                    passed.set(passed.get() + 1);
                }
            }));
        }
        let mut counted = Vec::new();
        for round in 0..ROUNDS {
            while passed.get() < WAITERS * round {
                greenhub::yield_now();
            }
            // Everyone waits on events[round % 2] now (or is about to).
            greenhub::yield_now();
            let before = ALLOCS.load(Ordering::Relaxed);
            events[(round + 1) % 2].clear();
            events[round % 2].set();
            while passed.get() < WAITERS * (round + 1) {
                greenhub::yield_now();
            }
            if round >= WARM {
                counted.push(ALLOCS.load(Ordering::Relaxed) - before);
            }
        }
        for h in handles {
            h.join().unwrap();
        }
        counted
    });
    let total: usize = per_round.iter().sum();
    assert!(
        total < per_round.len(),
        "{total} allocations in {} steady rounds: {per_round:?}",
        per_round.len()
    );
}
