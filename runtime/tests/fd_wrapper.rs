//! `io::Async`: any file descriptor through the hub. A pipe and an eventfd
//! carry data between coroutines and threads, and `readable` / `writable`
//! neither sleep through readiness already reported nor return for
//! readiness already used up.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use greenhub::io::Async;

mod util;

/// A non-blocking eventfd with a counter of zero.
fn eventfd() -> File {
    // SAFETY: eventfd(2) takes two ints and returns a new fd or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` was just created and nothing else owns it.
    File::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[test]
fn a_megabyte_crosses_a_pipe_between_two_coroutines() {
    const TOTAL: usize = 1 << 20;
    let received = greenhub::run(|| {
        let (reader, writer) = std::io::pipe().unwrap();
        let reader = Async::new(reader).unwrap();
        let writer = Async::new(writer).unwrap();
        // The pipe holds 64 KiB: the writer parks on writability again and
        // again while the reader drains it.
        let producer = greenhub::spawn(move || {
            let chunk: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
            for _ in 0..TOTAL / chunk.len() {
                (&writer).write_all(&chunk).unwrap();
            }
        });
        let mut received = Vec::new();
        (&reader).read_to_end(&mut received).unwrap();
        producer.join().unwrap();
        received
    });
    assert_eq!(received.len(), TOTAL);
    assert!(received
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (i % 4096 % 256) as u8));
}

#[test]
fn an_eventfd_written_by_another_thread_wakes_a_parked_coroutine() {
    let total = greenhub::run(|| {
        let efd = Async::new(eventfd()).unwrap();
        let writer = efd.get_ref().try_clone().unwrap();
        let thread = std::thread::spawn(move || {
            for n in 1..=10u64 {
                std::thread::sleep(Duration::from_millis(1));
                (&writer).write_all(&n.to_ne_bytes()).unwrap();
            }
        });
        let mut total = 0;
        while total < 55 {
            // An eventfd read returns the whole counter and resets it; with
            // nothing written it fails with WouldBlock, and the read parks.
            let mut counter = [0; 8];
            (&efd).read_exact(&mut counter).unwrap();
            total += u64::from_ne_bytes(counter);
        }
        thread.join().unwrap();
        total
    });
    assert_eq!(total, 55);
}

#[test]
fn readable_returns_at_once_for_unread_bytes_and_parks_once_they_are_used_up() {
    greenhub::run(|| {
        let (reader, writer) = std::io::pipe().unwrap();
        let reader = Async::new(reader).unwrap();
        let writer = Rc::new(Async::new(writer).unwrap());
        (&*writer).write_all(b"abcd").unwrap();
        // Let the hub poll, so the readiness edge has been delivered.
        greenhub::sleep(Duration::from_millis(2));
        let mut two = [0; 2];
        reader.readable().unwrap();
        reader.get_ref().read_exact(&mut two).unwrap(); // a read the hub never sees
                                                        // Two bytes are left and no new edge will come: readable must see them.
        let quick = greenhub::timeout(Duration::from_secs(5), || reader.readable());
        assert!(
            matches!(quick, Ok(Ok(()))),
            "readable slept through unread bytes"
        );
        reader.get_ref().read_exact(&mut two).unwrap();
        // Drained by reads the hub never saw: readable must park this time,
        // until the writer coroutine writes again.
        let journal = util::journal();
        let later = {
            let (journal, writer) = (journal.clone(), writer.clone());
            greenhub::spawn(move || {
                greenhub::sleep(Duration::from_millis(5));
                journal.borrow_mut().push("written");
                (&*writer).write_all(b"e").unwrap();
            })
        };
        reader.readable().unwrap();
        journal.borrow_mut().push("readable");
        later.join().unwrap();
        assert_eq!(*journal.borrow(), ["written", "readable"]);
    });
}

#[test]
fn writable_parks_on_a_full_pipe_until_the_reader_drains_it() {
    greenhub::run(|| {
        let (reader, writer) = std::io::pipe().unwrap();
        let reader = Async::new(reader).unwrap();
        let writer = Async::new(writer).unwrap();
        let mut filled = 0;
        let chunk = [7u8; 4096];
        loop {
            match writer.get_ref().write(&chunk) {
                Ok(n) => filled += n,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(err) => panic!("{err}"),
            }
        }
        let journal = util::journal();
        let drain = {
            let journal = journal.clone();
            greenhub::spawn(move || {
                journal.borrow_mut().push("drained");
                let mut buf = vec![0; filled];
                (&reader).read_exact(&mut buf).unwrap();
                reader
            })
        };
        writer.writable().unwrap();
        journal.borrow_mut().push("writable");
        drop(drain.join().unwrap());
        assert_eq!(*journal.borrow(), ["drained", "writable"]);
    });
}

#[test]
fn into_inner_gives_the_fd_back_blocking_as_it_was() {
    greenhub::run(|| {
        let (reader, writer) = std::io::pipe().unwrap();
        let before = greenhub::stats().sockets;
        let reader = Async::new(reader).unwrap();
        assert_eq!(greenhub::stats().sockets, before + 1);
        let mut reader = reader.into_inner().unwrap();
        assert_eq!(greenhub::stats().sockets, before);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            (&writer).write_all(b"z").unwrap();
        });
        // Blocking again: this read waits for the thread instead of failing.
        let mut one = [0; 1];
        reader.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"z");
    });
}

#[test]
fn a_regular_file_is_refused_with_the_os_error() {
    greenhub::run(|| {
        let file = File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
        assert!(
            Async::new(file).is_err(),
            "epoll cannot watch a regular file"
        );
    });
}
