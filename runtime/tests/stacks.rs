//! Pooled stacks: deep coroutines do not pin their memory after they end
//! (the hub trims the pool when it next waits for events), and the pool
//! still reuses stacks (regression: 2,000 finished coroutines that each went
//! 100 KiB deep left 216 MiB resident).

use std::hint::black_box;

#[inline(never)]
fn touch(bytes: usize) -> u8 {
    let buffer = black_box(vec![0u8; 0]);
    let mut frame = [0u8; 100 * 1024];
    frame[bytes - 1] = 1;
    black_box(&mut frame);
    frame[0] + buffer.len() as u8
}

#[test]
fn stacks_of_finished_deep_coroutines_are_trimmed_when_pooled() {
    let (deep, reused) = greenhub::run(|| {
        let wave: Vec<_> = (0..2000)
            .map(|_| greenhub::spawn(|| touch(100 * 1024)))
            .collect();
        for coroutine in wave {
            coroutine.join().unwrap();
        }
        let pooled = greenhub::stats().stacks_pooled;
        // The hub trims pooled stacks while it waits for events, a batch
        // a wait (125 before a 1 ms wait, at most 256): 1,936 of them over
        // about 16 waits.
        greenhub::sleep(std::time::Duration::from_millis(50));
        // A second wave of idle coroutines reuses those stacks; `dump()`
        // tells how much of each is resident.
        let idle: Vec<_> = (0..2000)
            .map(|_| greenhub::spawn(|| greenhub::sleep(std::time::Duration::from_secs(3600))))
            .collect();
        greenhub::yield_now();
        let deep = greenhub::dump()
            .coroutines
            .iter()
            .filter(|c| c.stack_kib > 64)
            .count();
        for coroutine in &idle {
            coroutine.kill();
        }
        (deep, pooled)
    });
    assert!(reused >= 2000, "the stacks were pooled ({reused})");
    assert!(
        deep <= 64,
        "{deep} reused stacks still hold more than 64 KiB (at most 64 are kept warm)"
    );
}
