//! `select`: several kinds of waits at once, the ready one reported, and
//! nothing lost from the arms that did not win.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use greenhub::net::UnixStream;
use greenhub::select::Select;
use greenhub::sync::{Channel, Event};

const PER_SOURCE: u32 = 50_000;

#[test]
fn a_select_over_a_channel_and_a_socket_sees_a_hundred_thousand_events_and_loses_none() {
    let (from_channel, from_socket) = greenhub::run(|| {
        let channel: Channel<u32> = Channel::bounded(16);
        let (reader, writer) = UnixStream::pair().unwrap();
        {
            let channel = channel.clone();
            greenhub::spawn(move || {
                for n in 0..PER_SOURCE {
                    channel.send(n).unwrap();
                }
                channel.close();
            });
        }
        greenhub::spawn(move || {
            let mut writer = writer;
            // Batches of varying size, so reads see partial records too.
            let mut n = 0;
            while n < PER_SOURCE {
                let batch = (1 + n % 7).min(PER_SOURCE - n);
                let bytes: Vec<u8> = (n..n + batch).flat_map(u32::to_le_bytes).collect();
                writer.write_all(&bytes).unwrap();
                n += batch;
                if n % 64 == 0 {
                    greenhub::yield_now();
                }
            }
        });
        let (mut from_channel, mut from_socket) = (Vec::new(), Vec::new());
        let mut pending: Vec<u8> = Vec::new();
        let (mut channel_open, mut socket_open) = (true, true);
        let mut buf = [0u8; 1024];
        while channel_open || socket_open {
            let mut sel = Select::new();
            let recv = channel_open.then(|| sel.recv(&channel));
            let read = socket_open.then(|| sel.readable(&reader));
            let ready = sel.wait().unwrap();
            if Some(ready.index()) == recv {
                match ready.recv(&channel) {
                    Ok(n) => from_channel.push(n),
                    Err(_) => channel_open = false,
                }
            } else if Some(ready.index()) == read {
                drop(ready);
                // readable means this read does not park.
                let n = (&reader).read(&mut buf).unwrap();
                if n == 0 {
                    socket_open = false;
                }
                pending.extend_from_slice(&buf[..n]);
                let whole = pending.len() / 4 * 4;
                from_socket.extend(
                    pending[..whole]
                        .chunks(4)
                        .map(|c| u32::from_le_bytes(c.try_into().unwrap())),
                );
                pending.drain(..whole);
            }
        }
        (from_channel, from_socket)
    });
    let expected: Vec<u32> = (0..PER_SOURCE).collect();
    assert_eq!(from_channel.len() + from_socket.len(), 100_000);
    assert!(
        from_channel == expected,
        "every channel message, once, in order"
    );
    assert!(
        from_socket == expected,
        "every socket record, once, in order"
    );
}

#[test]
fn a_selecting_receiver_and_a_plain_one_share_a_channel_without_losing_a_message() {
    let (selected, plain) = greenhub::run(|| {
        let channel: Channel<u32> = Channel::bounded(4);
        let never = Event::new();
        let plain = {
            let channel = channel.clone();
            greenhub::spawn(move || channel.iter().collect::<Vec<_>>())
        };
        let selected = {
            let channel = channel.clone();
            greenhub::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let mut sel = Select::new();
                    let stop = sel.event(&never);
                    let recv = sel.recv(&channel);
                    let ready = sel.wait().unwrap();
                    assert_ne!(ready.index(), stop);
                    assert_eq!(ready.index(), recv);
                    match ready.recv(&channel) {
                        Ok(n) => got.push(n),
                        Err(_) => return got,
                    }
                    if got.len() % 3 == 0 {
                        greenhub::yield_now();
                    }
                }
            })
        };
        for n in 0..10_000 {
            channel.send(n).unwrap();
        }
        channel.close();
        (selected.join().unwrap(), plain.join().unwrap())
    });
    let mut all: Vec<u32> = selected.iter().chain(&plain).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..10_000).collect::<Vec<_>>());
    assert!(!selected.is_empty() && !plain.is_empty(), "both received");
}

#[test]
fn a_woken_arm_dropped_unused_passes_its_value_to_the_next_receiver() {
    let got = greenhub::run(|| {
        let channel: Channel<&str> = Channel::unbounded();
        let selector = {
            let channel = channel.clone();
            greenhub::spawn(move || {
                let mut sel = Select::new();
                sel.recv(&channel);
                let ready = sel.wait().unwrap();
                drop(ready); // changed its mind: the value is not taken
            })
        };
        let plain = {
            let channel = channel.clone();
            greenhub::spawn(move || channel.recv().unwrap())
        };
        greenhub::yield_now(); // both park, the selector first
        channel.send("only").unwrap();
        selector.join().unwrap();
        plain.join().unwrap()
    });
    assert_eq!(got, "only");
}

#[test]
fn a_deadline_an_event_and_a_join_each_win_when_they_are_the_ready_one() {
    greenhub::run(|| {
        let empty: Channel<()> = Channel::unbounded();
        let mut sel = Select::new();
        sel.recv(&empty);
        let late = sel.after(Duration::from_millis(50));
        let soon = sel.after(Duration::from_millis(5));
        assert_eq!(sel.wait().unwrap().index(), soon, "the earlier deadline");
        let _ = late;

        let event = Event::new();
        let worker = {
            let event = event.clone();
            greenhub::spawn(move || {
                greenhub::sleep(Duration::from_millis(2));
                event.set();
                "done"
            })
        };
        let mut sel = Select::new();
        let set = sel.event(&event);
        sel.recv(&empty);
        assert_eq!(sel.wait().unwrap().index(), set);
        let mut sel = Select::new();
        sel.recv(&empty);
        let ended = sel.join(&worker);
        assert_eq!(sel.wait().unwrap().index(), ended);
        drop(sel);
        assert_eq!(worker.join().unwrap(), "done");
    });
}

#[test]
fn a_send_arm_fires_when_a_receiver_makes_room_and_the_value_goes_to_the_winner_only() {
    let received = greenhub::run(|| {
        let full: Channel<u32> = Channel::bounded(1);
        full.send(1).unwrap();
        let other: Channel<u32> = Channel::bounded(1);
        other.send(9).unwrap();
        let drain = {
            let full = full.clone();
            greenhub::spawn(move || {
                greenhub::sleep(Duration::from_millis(2));
                full.recv().unwrap()
            })
        };
        let mut sel = Select::new();
        let to_other = sel.send(&other);
        let to_full = sel.send(&full);
        let ready = sel.wait().unwrap();
        assert_eq!(ready.index(), to_full);
        assert_ne!(ready.index(), to_other);
        ready.send(&full, 2).unwrap();
        assert_eq!(drain.join().unwrap(), 1);
        (
            full.try_recv().unwrap(),
            other.try_recv().unwrap(),
            other.len(),
        )
    });
    assert_eq!(received, (2, 9, 0));
}

#[test]
fn a_select_honours_an_enclosing_timeout_and_reports_a_deadlock() {
    greenhub::run(|| {
        let empty: Channel<()> = Channel::unbounded();
        let cut = greenhub::timeout(Duration::from_millis(5), || {
            let mut sel = Select::new();
            sel.recv(&empty);
            sel.wait().map(|ready| ready.index())
        });
        assert!(cut.is_err());
        let mut sel = Select::new();
        sel.recv(&empty);
        let err = sel.wait().unwrap_err();
        assert!(err.to_string().contains("select"), "{err}");
    });
}

#[test]
fn a_killed_selector_leaves_nothing_registered() {
    greenhub::run(|| {
        let channel: Channel<u32> = Channel::unbounded();
        let (reader, _writer) = UnixStream::pair().unwrap();
        let reader = Rc::new(reader);
        let log = Rc::new(RefCell::new(Vec::new()));
        let selector = {
            let (channel, reader, log) = (channel.clone(), reader.clone(), log.clone());
            greenhub::spawn(move || {
                let mut sel = Select::new();
                sel.recv(&channel);
                sel.readable(&*reader);
                let _ = sel.wait();
                log.borrow_mut().push("returned");
            })
        };
        greenhub::yield_now();
        selector.kill();
        assert!(selector.join().is_err());
        assert!(log.borrow().is_empty());
        channel.send(5).unwrap();
        assert_eq!(
            channel.try_recv(),
            Ok(5),
            "the value was not handed to the dead selector"
        );
        assert_eq!(
            greenhub::stats().parked_other + greenhub::stats().parked_io,
            0
        );
    });
}
