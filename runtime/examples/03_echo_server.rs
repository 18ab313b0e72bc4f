//! An echo server and 1,000 clients, all coroutines in one OS thread.
//!
//! Run it with `cargo run --release -p greenhub --example 03_echo_server`. It prints:
//!
//! ```text
//! echo server listening on 127.0.0.1:PORT
//! 1000 clients echoed 10000 messages in one OS thread (helper threads: 0)
//! hub: 2002 coroutines spawned, at most N parked on sockets at once
//! ```
//! PORT is chosen by the OS, and N (up to 2,000: every client and every
//! server-side coroutine) depends on timing. 2002 is `main`, the acceptor,
//! 1,000 clients and 1,000 echo coroutines.

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;

use greenhub::net::{TcpListener, TcpStream};

const CLIENTS: usize = 1000;
const MESSAGES: usize = 10;

fn main() {
    greenhub::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local address");
        println!("echo server listening on {addr}");

        // The server: one coroutine accepts, one more per connection echoes.
        let server = greenhub::Builder::new()
            .name("acceptor")
            .spawn(move || loop {
                let (conn, _) = listener.accept().expect("accept");
                greenhub::spawn(move || echo(conn));
            })
            .expect("spawn the acceptor");

        // The clients: each connects, sends its messages and checks the echo.
        let peak_parked = Rc::new(Cell::new(0));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let peak_parked = peak_parked.clone();
                greenhub::spawn(move || {
                    let mut conn = TcpStream::connect(addr).expect("connect");
                    let mut reply = Vec::new();
                    for n in 0..MESSAGES {
                        let message = format!("client {client} message {n}\n");
                        conn.write_all(message.as_bytes()).expect("write");
                        reply.resize(message.len(), 0);
                        conn.read_exact(&mut reply).expect("read");
                        assert_eq!(reply, message.as_bytes());
                        peak_parked.set(peak_parked.get().max(greenhub::stats().parked_io));
                    }
                    MESSAGES
                })
            })
            .collect();
        let echoed: usize = clients.into_iter().map(|c| c.join().expect("client")).sum();
        server.kill();
        let stats = greenhub::stats();
        println!(
            "{CLIENTS} clients echoed {echoed} messages in one OS thread (helper threads: {})",
            stats.helper_threads
        );
        println!(
            "hub: {} coroutines spawned, at most {} parked on sockets at once",
            stats.spawned,
            peak_parked.get()
        );
    });
}

/// Writes back whatever arrives until the client hangs up.
fn echo(mut conn: TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
