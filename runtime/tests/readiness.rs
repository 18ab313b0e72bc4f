//! Readiness is remembered: mio reports an edge once, and a wait or read
//! after a read that stopped short of what the kernel holds must not sleep
//! through those bytes (regressions of the reactor rebuild).

use std::io::{Read, Write};
use std::time::Duration;

use greenhub::net::UnixStream;

/// Generous: only a hang would reach it.
const LONG: Duration = Duration::from_secs(10);

/// Lets the hub poll, so that the event announcing the bytes is consumed
/// before the reader looks: the case an edge-triggered poller gets wrong.
fn let_the_hub_poll() {
    greenhub::sleep(Duration::from_millis(5));
}

/// Regression: with bytes queued, `wait_readable()` timed out.
#[test]
fn wait_readable_returns_at_once_when_bytes_are_already_in_the_kernel() {
    let outcome = greenhub::run(|| {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(b"0123456789").unwrap();
        let_the_hub_poll();
        let mut four = [0; 4];
        b.read_exact(&mut four).unwrap();
        b.set_read_timeout(Some(LONG)).unwrap();
        let waited = greenhub::timeout(LONG, || b.wait_readable());
        let mut rest = [0; 6];
        b.read_exact(&mut rest).unwrap();
        (waited, four, rest)
    });
    assert!(matches!(outcome.0, Ok(Ok(()))), "{:?}", outcome.0);
    assert_eq!(&outcome.1, b"0123");
    assert_eq!(&outcome.2, b"456789");
}

#[test]
fn wait_readable_sees_bytes_that_arrived_before_the_socket_was_first_read() {
    let waited = greenhub::run(|| {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"x").unwrap();
        let_the_hub_poll();
        let_the_hub_poll();
        greenhub::timeout(LONG, || b.wait_readable())
    });
    assert!(matches!(waited, Ok(Ok(()))), "{waited:?}");
}

/// A read that fills its buffer exactly leaves readiness set; the next read
/// tries, sees `WouldBlock` and parks until more comes.
#[test]
fn a_read_that_ends_exactly_on_the_buffer_boundary_then_waits_for_more() {
    let got = greenhub::run(|| {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(LONG)).unwrap();
        let writer = greenhub::spawn(move || {
            let mut a = a;
            a.write_all(b"12345").unwrap();
            greenhub::sleep(Duration::from_millis(20));
            a.write_all(b"678").unwrap();
        });
        let mut five = [0; 5];
        b.read_exact(&mut five).unwrap();
        let mut three = [0; 3];
        b.read_exact(&mut three).unwrap();
        writer.join().unwrap();
        (five, three)
    });
    assert_eq!(&got.0, b"12345");
    assert_eq!(&got.1, b"678");
}

/// Regression found while building the cache: a short read that took the
/// last bytes cleared readiness, and the EOF reported with them was lost.
#[test]
fn the_end_of_stream_behind_a_short_read_is_not_slept_through() {
    let got = greenhub::run(|| {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(b"hello").unwrap();
        drop(a);
        let_the_hub_poll();
        b.set_read_timeout(Some(LONG)).unwrap();
        let mut all = String::new();
        let read = b.read_to_string(&mut all);
        (read.map_err(|e| e.to_string()), all)
    });
    assert_eq!(got, (Ok(5), "hello".to_owned()));
}

/// Many small messages, each read as soon as it arrives or in batches, with
/// the reader sometimes busy: nothing waits in the kernel unseen.
#[test]
fn a_busy_reader_misses_none_of_a_thousand_messages() {
    let total = greenhub::run(|| {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(LONG)).unwrap();
        let writer = greenhub::spawn(move || {
            let mut a = a;
            for n in 0..1000u32 {
                a.write_all(&n.to_le_bytes()).unwrap();
                if n % 7 == 0 {
                    greenhub::yield_now();
                }
            }
        });
        let mut total = 0u64;
        let mut word = [0; 4];
        for n in 0..1000u32 {
            b.read_exact(&mut word).unwrap();
            assert_eq!(u32::from_le_bytes(word), n);
            total += u64::from(n);
            if n % 5 == 0 {
                let_the_hub_poll(); // busy elsewhere while more arrive
            }
        }
        writer.join().unwrap();
        total
    });
    assert_eq!(total, (0..1000u64).sum());
}
