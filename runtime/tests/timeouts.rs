//! `timeout(d, ...)` and socket timeouts: every park honours the deadline.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use greenhub::net::{TcpListener, TcpStream, UnixStream};
use util::SLACK;

#[test]
fn a_timeout_cuts_a_read_that_never_completes() {
    greenhub::run(|| {
        let (mut quiet, _peer) = UnixStream::pair().unwrap();
        let start = Instant::now();
        let result = greenhub::timeout(Duration::from_millis(30), || {
            let mut buf = [0u8; 8];
            quiet.read(&mut buf)
        });
        assert!(result.is_err(), "timeout reports Elapsed");
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(30) && elapsed < Duration::from_millis(30) + SLACK
        );
        assert_eq!(greenhub::stats().timers, 0, "the timer left with the scope");
    });
}

#[test]
fn the_read_inside_sees_timed_out_and_the_socket_stays_usable() {
    greenhub::run(|| {
        let (mut quiet, peer) = UnixStream::pair().unwrap();
        let inner = greenhub::timeout(Duration::from_millis(10), || {
            quiet.read(&mut [0u8; 8]).map_err(|e| e.kind())
        });
        assert!(inner.is_err());
        let mut kind = None;
        let outer = greenhub::timeout(Duration::from_secs(60), || {
            greenhub::timeout(Duration::from_millis(10), || {
                kind = quiet.read(&mut [0u8; 8]).err().map(|e| e.kind())
            })
        });
        assert!(
            matches!(outer, Ok(Err(_))),
            "the inner scope elapsed, the outer did not"
        );
        assert_eq!(
            kind,
            Some(ErrorKind::TimedOut),
            "the read inside saw TimedOut"
        );
        std::io::Write::write_all(&mut &peer, b"late").unwrap();
        let mut buf = [0u8; 4];
        quiet.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"late");
    });
}

#[test]
fn nested_timeouts_the_nearest_deadline_wins() {
    greenhub::run(|| {
        let start = Instant::now();
        let outer = greenhub::timeout(Duration::from_secs(10), || {
            greenhub::timeout(Duration::from_millis(20), || {
                greenhub::sleep(Duration::from_secs(10))
            })
        });
        assert_eq!(
            outer.map(|inner| inner.is_err()),
            Ok(true),
            "the inner scope elapsed, the outer did not"
        );
        assert!(start.elapsed() < Duration::from_millis(20) + SLACK);

        let start = Instant::now();
        let outer = greenhub::timeout(Duration::from_millis(20), || {
            greenhub::timeout(Duration::from_secs(10), || {
                greenhub::sleep(Duration::from_secs(10))
            })
        });
        assert!(outer.is_err(), "the outer, nearer deadline elapsed");
        assert!(start.elapsed() < Duration::from_millis(20) + SLACK);
    });
}

#[test]
fn a_timeout_that_does_not_fire_returns_the_value() {
    greenhub::run(|| {
        let value = greenhub::timeout(Duration::from_secs(5), || {
            greenhub::sleep(Duration::from_millis(1));
            7
        });
        assert_eq!(value, Ok(7));
    });
}

#[test]
fn a_socket_read_timeout_fails_with_timed_out() {
    greenhub::run(|| {
        let (mut quiet, _peer) = UnixStream::pair().unwrap();
        quiet
            .set_read_timeout(Some(Duration::from_millis(15)))
            .unwrap();
        let err = quiet.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(
            quiet.set_read_timeout(Some(Duration::ZERO)).is_err(),
            "zero is refused, as in std"
        );
    });
}

#[test]
fn joining_under_a_timeout_reports_timed_out_and_the_coroutine_goes_on() {
    greenhub::run(|| {
        let slow = greenhub::spawn(|| greenhub::sleep(Duration::from_millis(50)));
        let done = greenhub::spawn(|| greenhub::sleep(Duration::from_millis(50)));
        let result = greenhub::timeout(Duration::from_millis(5), move || slow.join());
        assert!(result.is_err(), "the join was cut short");
        assert_eq!(done.join(), Ok(()));
    });
}

#[test]
fn a_connect_timeout_fails_with_timed_out_when_the_backlog_is_full() {
    greenhub::run(|| {
        // A listener nobody accepts from: its tiny backlog fills, then new
        // connects hang in SYN_SENT until the timeout.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        let err = loop {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(50)) {
                Ok(stream) => held.push(stream),
                Err(err) => break err,
            }
            assert!(held.len() < 10_000, "the backlog never filled");
        };
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        drop(listener);
        let _ = TcpListener::bind("127.0.0.1:0").unwrap();
    });
}

/// Regression (found in review): `wait_readable` and `connect_timeout`
/// computed `Instant::now() + t` and panicked for `Duration::MAX`.
#[test]
fn timeouts_of_duration_max_mean_forever_and_never_overflow() {
    let outcome = std::panic::catch_unwind(|| {
        greenhub::run(|| {
            let (mut a, b) = UnixStream::pair().unwrap();
            a.write_all(b"ready").unwrap();
            b.set_read_timeout(Some(Duration::MAX)).unwrap();
            let listener = greenhub::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            greenhub::net::TcpStream::connect_timeout(&addr, Duration::MAX).unwrap();
            b.wait_readable().map_err(|err| err.to_string())
        })
    });
    assert!(
        matches!(outcome, Ok(Ok(()))),
        "wait_readable panicked or failed"
    );
}
