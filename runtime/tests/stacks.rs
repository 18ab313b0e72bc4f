//! Pooled stacks: deep coroutines do not pin their memory after they end
//! (the hub trims the pool while it waits for events), and the pool still
//! reuses stacks (regression: 2,000 finished coroutines that each went
//! 100 KiB deep left 216 MiB resident).

mod util;

use util::{deep_stacks_after_idling, deep_wave};

#[test]
fn stacks_of_finished_deep_coroutines_are_trimmed_when_pooled() {
    let (deep, reused) = greenhub::run(|| {
        deep_wave(2000);
        let pooled = greenhub::stats().stacks_pooled;
        // The hub trims pooled stacks while it waits for events, a batch a
        // wait (at most 256, as many as fit before the next deadline), so
        // 1,936 of them take a few waits; fresh coroutines reuse the stacks
        // and `dump()` tells how much of each is resident.
        (deep_stacks_after_idling(2000), pooled)
    });
    assert!(reused >= 2000, "the stacks were pooled ({reused})");
    assert!(
        deep <= 64,
        "{deep} reused stacks still hold more than 64 KiB (at most 64 are kept warm)"
    );
}
