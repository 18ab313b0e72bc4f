//! A chat server: each connection has a coroutine reading lines and a
//! channel carrying the lines it should be sent; a broadcaster coroutine
//! fans every line out. Three clients join, each says one thing, and each
//! reads what the others said.
//!
//! Run it with `cargo run -p greenhub --example 05_chat_server`. It prints:
//!
//! ```text
//! alice heard: bob: hi from bob | carol: hi from carol
//! bob heard: alice: hi from alice | carol: hi from carol
//! carol heard: alice: hi from alice | bob: hi from bob
//! ```
//!
//! Channels do the coordination: `send` never blocks the hub, `recv` parks
//! the writer coroutine until there is a line, and closing a channel ends the
//! coroutines that read it.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::rc::Rc;

use greenhub::net::{TcpListener, TcpStream};
use greenhub::sync::{Channel, WaitGroup};

/// A line from one member: who said it, and what.
type Line = (usize, String);

fn main() {
    greenhub::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let inbox: Channel<Line> = Channel::unbounded();
        let members: Rc<RefCell<Vec<Channel<String>>>> = Rc::default();

        // The broadcaster: every line goes to every other member.
        {
            let (inbox, members) = (inbox.clone(), members.clone());
            greenhub::spawn(move || {
                for (from, line) in inbox.iter() {
                    for (id, outbox) in members.borrow().iter().enumerate() {
                        if id != from {
                            let _ = outbox.send(line.clone());
                        }
                    }
                }
            });
        }

        // The server: a reader and a writer coroutine per connection.
        let joined = WaitGroup::new();
        joined.add(3);
        {
            let (inbox, members, joined) = (inbox.clone(), members.clone(), joined.clone());
            greenhub::spawn(move || loop {
                let (conn, _) = listener.accept().expect("accept");
                let conn = Rc::new(conn);
                let outbox = Channel::unbounded();
                let id = {
                    let mut members = members.borrow_mut();
                    members.push(outbox.clone());
                    members.len() - 1
                };
                let writer = conn.clone();
                greenhub::spawn(move || {
                    for line in outbox.iter() {
                        if (&*writer)
                            .write_all(format!("{line}\n").as_bytes())
                            .is_err()
                        {
                            return;
                        }
                    }
                });
                let inbox = inbox.clone();
                greenhub::spawn(move || {
                    for line in BufReader::new(&*conn).lines().map_while(Result::ok) {
                        let _ = inbox.send((id, line));
                    }
                });
                joined.done();
            });
        }

        // Three clients: connect, wait until all have joined, speak, listen.
        let clients: Vec<_> = ["alice", "bob", "carol"]
            .into_iter()
            .map(|name| {
                let joined = joined.clone();
                greenhub::spawn(move || {
                    let conn = TcpStream::connect(addr).expect("connect");
                    joined.wait().expect("everyone joins");
                    (&conn)
                        .write_all(format!("{name}: hi from {name}\n").as_bytes())
                        .expect("write");
                    let mut heard: Vec<String> = BufReader::new(&conn)
                        .lines()
                        .take(2)
                        .map(|l| l.expect("line"))
                        .collect();
                    heard.sort();
                    format!("{name} heard: {}", heard.join(" | "))
                })
            })
            .collect();
        for client in clients {
            println!("{}", client.join().expect("client"));
        }
        inbox.close();
    });
}
