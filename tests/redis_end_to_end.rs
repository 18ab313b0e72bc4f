//! The runtime against a real redis-server, with hand-written RESP: 1,000
//! coroutines each hold a connection parked in `BRPOP` while a cron
//! coroutine keeps ticking, all in one OS thread.

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use greenhub::net::{TcpStream, UnixStream};
use greenhub_tests::{wait_until, RedisServer};

/// `BRPOP list 0`: wait as long as it takes for an element.
const BRPOP_FOREVER: &[u8] = b"*3\r\n$5\r\nBRPOP\r\n$4\r\nlist\r\n$1\r\n0\r\n";
/// The answer to it once a `job` is pushed.
const POPPED_JOB: &[u8] = b"*2\r\n$4\r\nlist\r\n$3\r\njob\r\n";
/// `BRPOP list 1`: wait one second.
const BRPOP_ONE_SECOND: &[u8] = b"*3\r\n$5\r\nBRPOP\r\n$4\r\nlist\r\n$1\r\n1\r\n";
/// RESP2's nil array: BRPOP's answer when its timeout passes.
const NIL: &[u8] = b"*-1\r\n";

/// Sends `request` and reads exactly `expected.len()` bytes: whether they
/// are `expected`.
fn answers(mut conn: impl Read + Write, request: &[u8], expected: &[u8]) -> bool {
    conn.write_all(request).unwrap();
    let mut reply = vec![0u8; expected.len()];
    conn.read_exact(&mut reply).unwrap();
    reply == expected
}

#[test]
fn a_thousand_coroutines_wait_in_brpop_while_cron_ticks() {
    let server = RedisServer::start();
    let addr = server.addr();
    let (popped, parked_io, blocked_after_ticks) = greenhub::run(move || {
        let ticks = Rc::new(Cell::new(0u32));
        let counter = ticks.clone();
        let cron = greenhub::Builder::new()
            .name("cron")
            .spawn(move || loop {
                greenhub::sleep(Duration::from_millis(10));
                counter.set(counter.get() + 1);
            })
            .unwrap();
        let clients: Vec<_> = (0..1000)
            .map(|_| {
                greenhub::spawn(move || {
                    answers(TcpStream::connect(addr).unwrap(), BRPOP_FOREVER, POPPED_JOB)
                })
            })
            .collect();
        // Wait for the condition, not a fixed time: the server itself says
        // it holds all 1,000 in BRPOP. Each sent its request and parked on
        // its read in the same run, so all are parked on their sockets now.
        wait_until("1,000 clients blocked in BRPOP", || {
            server.blocked_clients() == 1000
        });
        let parked_io = greenhub::stats().parked_io;
        let seen = ticks.get();
        wait_until("cron ticking while the clients wait", || {
            ticks.get() >= seen + 3
        });
        let blocked_after_ticks = server.blocked_clients();
        // Then one RPUSH of 1,000 jobs releases them all at once.
        let mut rpush = vec!["RPUSH", "list"];
        rpush.extend(["job"; 1000]);
        assert_eq!(server.raw_command(&rpush), b":1000\r\n");
        let popped = clients
            .into_iter()
            .map(|c| c.join().unwrap())
            .filter(|got_job| *got_job)
            .count();
        cron.kill();
        (popped, parked_io, blocked_after_ticks)
    });
    assert_eq!(
        parked_io, 1000,
        "every client was parked on its socket at once"
    );
    assert_eq!(
        blocked_after_ticks, 1000,
        "cron ticked while all 1,000 still waited"
    );
    assert_eq!(popped, 1000, "each client got one job");
}

#[test]
fn brpop_over_a_unix_socket_returns_nil() {
    let server = RedisServer::start();
    let path = server.socket_path();
    let nil =
        greenhub::run(move || answers(UnixStream::connect(&path).unwrap(), BRPOP_ONE_SECOND, NIL));
    assert!(nil);
}
