//! Broken and hostile servers: a tiny in-process fake server speaks raw bytes
//! (beside the real server's tests, never instead of them). Every case ends
//! in a protocol, timeout or connection error, and the connection is
//! discarded, never pooled.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use greenhub::net::UnixListener;
use greenhub_redis::prelude::*;
use greenhub_redis::{Client, Error, PoolStats};

/// What the fake server does after reading the request.
#[derive(Clone, Copy)]
enum Then {
    Close,
    Silence,
}

/// The socket timeout where a test expects another error than a timeout:
/// long, so that a busy machine's stall is never taken for silence.
const NO_TIMEOUT_EXPECTED: &str = "socket_timeout=30";
/// The socket timeout where a test expects the timeout itself.
const TIMEOUT_EXPECTED: &str = "socket_timeout=0.2";

/// Runs one GET against a fake server that answers `reply` and then closes
/// or goes silent; returns the error and the pool's figures afterwards.
/// `options` is the URL's query string.
fn get_against(reply: &'static [u8], then: Then, options: &str) -> (Error, PoolStats) {
    // A directory of its own for each fake server: the tests run in parallel.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "greenhub-fake-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fake.sock");
    let _ = std::fs::remove_file(&path);
    let url = format!("unix://{}?{options}", path.display());
    let outcome = greenhub::run(move || {
        let listener = UnixListener::bind(&path).unwrap();
        let server = greenhub::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = [0u8; 256];
            let _ = conn.read(&mut request);
            conn.write_all(reply).unwrap();
            if let Then::Silence = then {
                greenhub::sleep(Duration::from_secs(3600));
            }
        });
        let client = Client::open(&url).unwrap();
        let err = client.clone().get::<Option<String>>("key").unwrap_err();
        server.kill();
        (err, client.stats())
    });
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

fn assert_discarded(stats: PoolStats) {
    assert_eq!(
        stats,
        PoolStats {
            created: 1,
            in_use: 0,
            available: 0
        },
        "the connection was closed, not pooled"
    );
}

#[test]
fn a_malformed_type_byte_is_a_protocol_error() {
    let (err, stats) = get_against(b"?what is this\r\n", Then::Silence, NO_TIMEOUT_EXPECTED);
    assert!(matches!(err, Error::Protocol(_)), "{err}");
    assert!(
        err.to_string().contains("unknown reply type byte '?'"),
        "{err}"
    );
    assert_discarded(stats);
}

#[test]
fn a_bulk_string_longer_than_announced_is_a_protocol_error() {
    let (err, stats) = get_against(b"$3\r\nabcdef\r\n", Then::Silence, NO_TIMEOUT_EXPECTED);
    assert!(matches!(err, Error::Protocol(_)), "{err}");
    assert_discarded(stats);
}

#[test]
fn a_bulk_string_shorter_than_announced_then_close_is_a_connection_error() {
    let (err, stats) = get_against(b"$10\r\nabc", Then::Close, NO_TIMEOUT_EXPECTED);
    assert!(
        err.is_io() && err.to_string().contains("closed the connection"),
        "{err}"
    );
    assert_discarded(stats);
}

#[test]
fn a_reply_cut_mid_way_then_silence_is_a_timeout() {
    let (err, stats) = get_against(b"*2\r\n$3\r\nfoo\r\n", Then::Silence, TIMEOUT_EXPECTED);
    assert!(err.is_timeout(), "{err}");
    assert_discarded(stats);
}

#[test]
fn a_reply_cut_mid_way_then_close_is_a_connection_error() {
    let (err, stats) = get_against(b"*2\r\n:1\r\n", Then::Close, NO_TIMEOUT_EXPECTED);
    assert!(err.is_io(), "{err}");
    assert_discarded(stats);
}

#[test]
fn a_gigabyte_announced_is_refused_against_the_configured_limit() {
    let (err, stats) = get_against(
        b"$1073741824\r\n",
        Then::Silence,
        &format!("{NO_TIMEOUT_EXPECTED}&max_reply_bytes=1048576"),
    );
    assert!(
        matches!(err, Error::Protocol(_))
            && err.to_string().contains("reply size limit of 1048576"),
        "{err}"
    );
    assert_discarded(stats);
}

#[test]
fn the_default_limit_refuses_a_gigabyte_too() {
    let (err, stats) = get_against(b"*1073741824\r\n", Then::Silence, NO_TIMEOUT_EXPECTED);
    assert!(matches!(err, Error::Protocol(_)), "{err}");
    assert_discarded(stats);
}

#[test]
fn deep_nesting_is_bounded() {
    const DEEP: &[u8] = b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n\
*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n\
*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n\
*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n";
    let (err, stats) = get_against(DEEP, Then::Silence, NO_TIMEOUT_EXPECTED);
    assert!(err.to_string().contains("nested deeper than 64"), "{err}");
    assert_discarded(stats);
}
