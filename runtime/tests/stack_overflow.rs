//! A coroutine that recurses without bound hits its stack's guard page; the
//! process stops with a message naming the coroutine, never silent memory
//! corruption. Run in a child process, since the process does stop.

use std::hint::black_box;
use std::process::Command;

/// When set, this test binary runs as the overflowing child.
const CHILD: &str = "GREENHUB_STACK_OVERFLOW_CHILD";

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    if depth == u64::MAX {
        return 0;
    }
    black_box(recurse(depth + 1)) + frame[0]
}

#[test]
fn unbounded_recursion_in_a_coroutine_is_reported_as_a_stack_overflow_by_name() {
    if std::env::var_os(CHILD).is_some() {
        greenhub::run(|| {
            let deep = greenhub::Builder::new()
                .name("deep")
                .spawn(|| recurse(0))
                .unwrap();
            let _ = deep.join();
        });
        unreachable!("the recursion cannot end");
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "unbounded_recursion_in_a_coroutine_is_reported_as_a_stack_overflow_by_name",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("coroutine 'deep' has overflowed its stack"),
        "{stderr}"
    );
    assert!(stderr.contains("stack overflow"), "{stderr}");
}
