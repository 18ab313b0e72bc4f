//! Timeouts: `greenhub::timeout` around any blocking section, nested scopes,
//! and a socket's own read timeout.
//!
//! Run it with `cargo run -p greenhub --example 04_timeouts`. It prints:
//!
//! ```text
//! a read from a silent peer, cut after 20 ms: Err(greenhub::timeout elapsed)
//! the read inside saw: TimedOut
//! nested: the inner 10 ms scope elapsed, the outer 1 s one did not
//! a socket read timeout of 15 ms: TimedOut (read timed out)
//! the peer speaks at last: "hello"
//! ```
//!
//! The deadline acts at parks: the read parks on its socket with the scope's
//! deadline in the timer queue, and whichever fires first wakes it.

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use greenhub::net::UnixStream;

fn main() {
    greenhub::run(|| {
        let (mut quiet, mut peer) = UnixStream::pair().expect("a socket pair");
        let mut seen = None;
        let cut = greenhub::timeout(Duration::from_millis(20), || {
            seen = quiet.read(&mut [0u8; 16]).err().map(|e| e.kind());
        });
        let cut = match cut {
            Ok(()) => "finished".to_owned(),
            Err(elapsed) => format!("Err({elapsed})"),
        };
        println!("a read from a silent peer, cut after 20 ms: {cut}");
        println!("the read inside saw: {:?}", seen.expect("an error"));

        let outer = greenhub::timeout(Duration::from_secs(1), || {
            greenhub::timeout(Duration::from_millis(10), || {
                greenhub::sleep(Duration::from_secs(60))
            })
        });
        if matches!(outer, Ok(Err(_))) {
            println!("nested: the inner 10 ms scope elapsed, the outer 1 s one did not");
        }

        quiet
            .set_read_timeout(Some(Duration::from_millis(15)))
            .expect("a timeout");
        let err = quiet.read(&mut [0u8; 16]).expect_err("nothing to read");
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        println!("a socket read timeout of 15 ms: {:?} ({err})", err.kind());

        peer.write_all(b"hello").expect("write");
        let mut hello = [0u8; 5];
        quiet.read_exact(&mut hello).expect("read");
        println!(
            "the peer speaks at last: {:?}",
            std::str::from_utf8(&hello).expect("text")
        );
    });
}
