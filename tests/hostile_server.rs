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
fn get_against(reply: &'static [u8], then: Then, options: &'static str) -> (Error, PoolStats) {
    let (result, stats) = get_result_against(reply, then, options, |_| {});
    (result.unwrap_err(), stats)
}

/// The same, with the client prepared by `prepare`, returning the result.
fn get_result_against(
    reply: &'static [u8],
    then: Then,
    options: &'static str,
    prepare: impl FnOnce(&Client) + 'static,
) -> (Result<Option<String>, Error>, PoolStats) {
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
        prepare(&client);
        let result = client.clone().get::<Option<String>>("key");
        server.kill();
        (result, client.stats())
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

/// The RESP3 specification's example (spec.md, "Push type"): after `GET
/// key`, a push may come before the reply; "the first non push type reply
/// processed will be the actual reply to GET".
#[test]
fn a_push_that_arrives_before_a_reply_goes_to_its_handler_not_to_the_caller() {
    let messages = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen = messages.clone();
    let (result, stats) = get_result_against(
        b">3\r\n$7\r\nmessage\r\n$11\r\nsomechannel\r\n$19\r\nthis is the message\r\n$9\r\nGet-Reply\r\n",
        Then::Silence,
        "",
        move |client| client.on_message(move |m| seen.borrow_mut().push(m.text())),
    );
    assert_eq!(result.unwrap().as_deref(), Some("Get-Reply"));
    assert_eq!(*messages.borrow(), ["this is the message"]);
    assert_eq!((stats.created, stats.available), (1, 1), "in step: pooled");
}

/// Regression: a bad type byte was reported only once its line's CRLF
/// arrived; a server that sends one and goes silent hit the timeout instead.
#[test]
fn a_bad_type_byte_is_a_protocol_error_before_its_line_ends() {
    let (err, stats) = get_against(b"?no line end yet", Then::Silence, NO_TIMEOUT_EXPECTED);
    assert!(matches!(err, Error::Protocol(_)), "{err}");
    assert_discarded(stats);
}

#[test]
fn a_bare_lf_in_a_status_line_is_a_protocol_error() {
    let (err, stats) = get_against(b"+OK\nsmuggled\r\n", Then::Silence, NO_TIMEOUT_EXPECTED);
    assert!(
        matches!(err, Error::Protocol(_)) && err.to_string().contains("bare LF"),
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
        "socket_timeout=30&max_reply_bytes=1048576",
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
fn nesting_deeper_than_1024_levels_is_refused() {
    let deep: &'static [u8] = Box::leak(
        ("*1\r\n".repeat(1025) + ":1\r\n")
            .into_bytes()
            .into_boxed_slice(),
    );
    let (err, stats) = get_against(deep, Then::Silence, NO_TIMEOUT_EXPECTED);
    assert!(err.to_string().contains("nested deeper than 1024"), "{err}");
    assert_discarded(stats);
}

#[test]
fn a_bulk_announced_at_half_a_gigabyte_takes_memory_only_for_the_bytes_that_arrive() {
    // 536,870,000 bytes fit the default 512 MiB bound: the header alone is
    // no reason to refuse, nor to allocate. The server sends 1 MiB and closes.
    let mut reply = b"$536870000\r\n".to_vec();
    reply.extend_from_slice(&vec![b'x'; 1 << 20]);
    let reply: &'static [u8] = Box::leak(reply.into_boxed_slice());
    let (err, stats) = get_against(reply, Then::Close, NO_TIMEOUT_EXPECTED);
    assert!(err.is_io() && err.to_string().contains("closed"), "{err}");
    assert_discarded(stats);
    let peak = greenhub_tests::peak_rss();
    assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
}

#[test]
fn max_reply_bytes_bounds_a_whole_reply_of_bulks_each_under_it() {
    let half = format!("$614400\r\n{}\r\n", "z".repeat(614_400));
    let reply: &'static [u8] = Box::leak(
        format!("*2\r\n{half}{half}")
            .into_bytes()
            .into_boxed_slice(),
    );
    let (err, stats) = get_against(
        reply,
        Then::Silence,
        "socket_timeout=30&max_reply_bytes=1048576",
    );
    assert!(
        matches!(err, Error::Protocol(_))
            && err.to_string().contains("reply size limit of 1048576"),
        "{err}"
    );
    assert_discarded(stats);
}
