//! A UDP echo server and a hundred peers, in one OS thread: each peer sends
//! a datagram and waits for it to come back, with a read timeout and a
//! retry, as real UDP clients do (a datagram may be dropped).
//!
//! Run it with `cargo run -p greenhub --example 06_udp_echo`. It prints:
//!
//! ```text
//! 100 peers each got their datagram back
//! the server answered 100 distinct addresses
//! a receive with nobody sending gave up after 20 ms: TimedOut
//! ```
//!
//! `recv_from` parks the server coroutine until a datagram arrives; each
//! peer's `recv` parks it with its read timeout in the timer queue. A
//! datagram receive never clears readiness early: one datagram shorter than
//! the buffer says nothing about the next one queued behind it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

use greenhub::net::UdpSocket;

/// How long a peer waits for its echo before sending again.
const RETRY_AFTER: Duration = Duration::from_millis(200);

fn main() {
    greenhub::run(|| {
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = server.local_addr().expect("address");
        let seen = Rc::new(RefCell::new(HashSet::new()));
        {
            let seen = seen.clone();
            greenhub::Builder::new()
                .name("echo")
                .spawn(move || {
                    let mut buf = [0u8; 512];
                    loop {
                        let (n, from) = server.recv_from(&mut buf).expect("recv_from");
                        seen.borrow_mut().insert(from);
                        server.send_to(&buf[..n], from).expect("send_to");
                    }
                })
                .expect("spawn");
        }
        let peers: Vec<_> = (0..100)
            .map(|n| {
                greenhub::spawn(move || {
                    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
                    socket.connect(addr).expect("connect");
                    socket.set_read_timeout(Some(RETRY_AFTER)).expect("timeout");
                    let message = format!("datagram {n}");
                    let mut buf = [0u8; 512];
                    loop {
                        socket.send(message.as_bytes()).expect("send");
                        match socket.recv(&mut buf) {
                            // The socket goes back with the verdict: while
                            // it lives, no later peer is given its port.
                            Ok(len) => return (buf[..len] == *message.as_bytes(), socket),
                            Err(err) if err.kind() == ErrorKind::TimedOut => continue,
                            Err(err) => panic!("recv: {err}"),
                        }
                    }
                })
            })
            .collect();
        let results: Vec<_> = peers
            .into_iter()
            .map(|peer| peer.join().expect("peer"))
            .collect();
        let echoed = results.iter().filter(|(ok, _)| *ok).count();
        println!("{echoed} peers each got their datagram back");
        println!(
            "the server answered {} distinct addresses",
            seen.borrow().len()
        );

        let lonely = UdpSocket::bind("127.0.0.1:0").expect("bind");
        lonely
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let err = lonely.recv(&mut [0u8; 16]).expect_err("nobody sends");
        println!(
            "a receive with nobody sending gave up after 20 ms: {:?}",
            err.kind()
        );
    });
}
