//! A server that shuts down gracefully on SIGTERM: it stops accepting, lets
//! the requests in flight finish, and exits. Three clients are mid-request
//! when an operator (here: `kill -TERM <pid>`, run by the example itself)
//! sends the signal.
//!
//! Run it with `cargo run -p greenhub --example 07_graceful_shutdown`. It
//! prints:
//!
//! ```text
//! serving; 3 requests in flight
//! SIGTERM: no longer accepting, draining the requests in flight
//! client 0 got: done 0
//! client 1 got: done 1
//! client 2 got: done 2
//! drained; a new connection is refused (ConnectionRefused)
//! exiting
//! ```
//!
//! `Signals` is subscribed before the signal can come, so it cannot be
//! missed; the signal wakes `main` through the hub's inbox, never by running
//! code in a signal handler. Killing the accept loop unwinds it at its
//! `accept`, which drops (closes) the listener; the handlers are members of
//! a `Group`, which `join_all` drains.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use greenhub::net::{TcpListener, TcpStream};
use greenhub::process::Command;
use greenhub::signal::Signals;
use greenhub::sync::WaitGroup;
use greenhub::Group;

const CLIENTS: usize = 3;

fn main() {
    greenhub::run(|| {
        let terminate = Signals::new(&[libc::SIGTERM]).expect("subscribe to SIGTERM");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let handlers = Group::new();
        let in_flight = WaitGroup::new();
        in_flight.add(CLIENTS);

        let acceptor = {
            let (handlers, in_flight) = (handlers.clone(), in_flight.clone());
            greenhub::spawn(move || loop {
                let (conn, _) = listener.accept().expect("accept");
                let in_flight = in_flight.clone();
                handlers.spawn(move || {
                    let mut request = String::new();
                    BufReader::new(&conn).read_line(&mut request).expect("read");
                    in_flight.done();
                    greenhub::sleep(Duration::from_millis(100)); // the work
                    let reply = format!("done {}", request.trim().trim_start_matches("job "));
                    (&conn)
                        .write_all(format!("{reply}\n").as_bytes())
                        .expect("write");
                });
            })
        };

        let clients: Vec<_> = (0..CLIENTS)
            .map(|n| {
                greenhub::spawn(move || {
                    let conn = TcpStream::connect(addr).expect("connect");
                    (&conn)
                        .write_all(format!("job {n}\n").as_bytes())
                        .expect("write");
                    let mut reply = String::new();
                    BufReader::new(&conn).read_line(&mut reply).expect("read");
                    reply.trim().to_owned()
                })
            })
            .collect();

        in_flight.wait().expect("every request arrives");
        println!("serving; {CLIENTS} requests in flight");
        // The operator's command; the example plays the operator.
        Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .expect("run kill");

        let signal = terminate.recv().expect("wait for SIGTERM");
        assert_eq!(signal, libc::SIGTERM);
        acceptor.kill(); // unwinds at accept: the listener closes
        acceptor.wait().expect("the accept loop ends");
        println!("SIGTERM: no longer accepting, draining the requests in flight");
        handlers.join_all(None).expect("drain");
        for (n, client) in clients.into_iter().enumerate() {
            println!("client {n} got: {}", client.join().expect("client"));
        }
        let refused = TcpStream::connect(addr).expect_err("the listener is closed");
        println!(
            "drained; a new connection is refused ({:?})",
            refused.kind()
        );
        println!("exiting");
    });
}
