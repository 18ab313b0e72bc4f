//! The runtime against a real redis-server, with hand-written RESP: 1,000
//! coroutines each hold a connection parked in `BRPOP list 1` while a cron
//! coroutine keeps ticking, all in one OS thread.

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use greenhub::net::{TcpStream, UnixStream};
use greenhub_tests::RedisServer;

const BRPOP: &[u8] = b"*3\r\n$5\r\nBRPOP\r\n$4\r\nlist\r\n$1\r\n1\r\n";
/// RESP2's nil array: BRPOP's answer when its timeout passes.
const NIL: &[u8] = b"*-1\r\n";

fn brpop_nil(mut conn: impl Read + Write) -> bool {
    conn.write_all(BRPOP).unwrap();
    let mut reply = [0u8; NIL.len()];
    conn.read_exact(&mut reply).unwrap();
    reply == NIL
}

#[test]
fn a_thousand_coroutines_wait_in_brpop_while_cron_ticks() {
    let server = RedisServer::start();
    let addr = server.addr();
    let (nils, ticks_while_waiting, parked_io) = greenhub::run(move || {
        let ticks = Rc::new(Cell::new(0u32));
        let counter = ticks.clone();
        let cron = greenhub::Builder::new()
            .name("cron")
            .spawn(move || loop {
                greenhub::sleep(Duration::from_millis(100));
                counter.set(counter.get() + 1);
            })
            .unwrap();
        let clients: Vec<_> = (0..1000)
            .map(|_| greenhub::spawn(move || brpop_nil(TcpStream::connect(addr).unwrap())))
            .collect();
        // Wait for the condition, not a fixed time; the server holds each
        // client a full second, so all 1,000 are parked at once.
        let start = std::time::Instant::now();
        while greenhub::stats().parked_io < 1000 && start.elapsed() < Duration::from_millis(900) {
            greenhub::sleep(Duration::from_millis(5));
        }
        let parked_io = greenhub::stats().parked_io;
        let nils = clients
            .into_iter()
            .map(|c| c.join().unwrap())
            .filter(|nil| *nil)
            .count();
        cron.kill();
        (nils, ticks.get(), parked_io)
    });
    assert_eq!(nils, 1000);
    assert_eq!(
        parked_io, 1000,
        "every client was parked on its socket at once"
    );
    assert!(
        ticks_while_waiting >= 1,
        "cron ran while the clients waited"
    );
}

#[test]
fn brpop_over_a_unix_socket_returns_nil() {
    let server = RedisServer::start();
    let path = server.socket_path();
    let nil = greenhub::run(move || brpop_nil(UnixStream::connect(&path).unwrap()));
    assert!(nil);
}
