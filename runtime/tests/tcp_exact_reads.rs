//! TCP reads go through `recvmsg` with `TCP_INQ`, and clear the side's
//! readiness only when the kernel says nothing is left, so a read that
//! fills its buffer exactly (`read_exact` of whole messages) can clear it. These tests walk the
//! paths where that could sleep through bytes or an end of stream: more
//! bytes behind the read, a FIN behind it, urgent data, a timeout, and reads
//! that switch between exact and short.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::time::Duration;

use greenhub::net::{TcpListener, TcpStream};

/// Generous: only a hang would reach it.
const LONG: Duration = Duration::from_secs(10);

/// Lets the hub poll, so the event announcing the bytes (or the FIN) is
/// consumed before the reader looks: the case an edge-triggered poller gets
/// wrong.
fn let_the_hub_poll() {
    greenhub::sleep(Duration::from_millis(5));
}

/// A connected pair on loopback, the reader with a long read timeout.
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(LONG)).unwrap();
    client.set_read_timeout(Some(LONG)).unwrap();
    (client, server)
}

#[test]
fn an_exact_read_that_took_the_last_byte_waits_for_the_next_message() {
    let got = greenhub::run(|| {
        let (mut a, mut b) = pair();
        let writer = greenhub::spawn(move || {
            for message in [b"12345", b"67890", b"abcde"] {
                a.write_all(message).unwrap();
                greenhub::sleep(Duration::from_millis(20));
            }
            a
        });
        let mut got = Vec::new();
        for _ in 0..3 {
            let mut five = [0; 5];
            b.read_exact(&mut five).unwrap();
            got.extend_from_slice(&five);
        }
        drop(writer.join().unwrap());
        got
    });
    assert_eq!(got, b"1234567890abcde");
}

#[test]
fn messages_already_queued_behind_an_exact_read_are_all_read() {
    let got = greenhub::run(|| {
        let (mut a, mut b) = pair();
        for n in 0..100u32 {
            a.write_all(&n.to_le_bytes()).unwrap();
        }
        let_the_hub_poll();
        (0..100)
            .map(|_| {
                let mut word = [0; 4];
                b.read_exact(&mut word).unwrap();
                u32::from_le_bytes(word)
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

/// The kernel reports 1 byte left once the FIN is in: the read of the end
/// of stream comes next, and is not slept through.
#[test]
fn the_end_of_stream_behind_exact_reads_is_not_slept_through() {
    let got = greenhub::run(|| {
        let (mut a, mut b) = pair();
        a.write_all(b"12345678").unwrap();
        drop(a);
        let_the_hub_poll();
        let mut four = [0; 4];
        b.read_exact(&mut four).unwrap();
        b.read_exact(&mut four).unwrap();
        let mut rest = [0; 4];
        let end = b.read(&mut rest);
        (four, end.map_err(|e| e.kind()))
    });
    assert_eq!(got, (*b"5678", Ok(0)));
}

#[test]
fn the_end_of_stream_after_an_exact_read_that_emptied_the_queue_arrives() {
    let got = greenhub::run(|| {
        let (mut a, mut b) = pair();
        let writer = greenhub::spawn(move || {
            a.write_all(b"1234").unwrap();
            greenhub::sleep(Duration::from_millis(20));
            drop(a);
        });
        let mut four = [0; 4];
        b.read_exact(&mut four).unwrap();
        let mut rest = [0; 4];
        let end = b.read(&mut rest);
        writer.join().unwrap();
        (four, end.map_err(|e| e.kind()))
    });
    assert_eq!(got, (*b"1234", Ok(0)));
}

#[test]
fn an_exact_read_with_nothing_left_then_times_out_on_the_next() {
    let got = greenhub::run(|| {
        let (mut a, b) = pair();
        b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        a.write_all(b"1234").unwrap();
        let_the_hub_poll();
        let mut four = [0; 4];
        (&b).read_exact(&mut four).unwrap();
        let next = (&b).read(&mut four).map_err(|e| e.kind());
        drop(a);
        next
    });
    assert_eq!(got, Err(ErrorKind::TimedOut));
}

/// Urgent data stops a read at its mark; exact reads up to it and past it
/// get every in-band byte (reads that stop short at the mark:
/// `review_inq.rs`).
#[test]
fn urgent_data_in_the_stream_does_not_stall_exact_reads() {
    let got = greenhub::run(|| {
        let (a, mut b) = pair();
        let send = |bytes: &[u8], flags: libc::c_int| {
            // SAFETY: `a` keeps its fd open; the pointer and length describe
            // a live slice.
            let n = unsafe { libc::send(a.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), flags) };
            assert_eq!(n, bytes.len() as isize);
        };
        send(b"abcd", 0);
        send(b"!", libc::MSG_OOB);
        send(b"efgh", 0);
        let_the_hub_poll();
        let mut got = Vec::new();
        let mut four = [0; 4];
        b.read_exact(&mut four).unwrap();
        got.extend_from_slice(&four);
        b.read_exact(&mut four).unwrap();
        got.extend_from_slice(&four);
        drop(a);
        got
    });
    assert_eq!(got, b"abcdefgh");
}

/// A writer sending chunks of varied sizes, a reader taking varied exact
/// sizes and sometimes short reads into a big buffer, the reader now and
/// then busy: every byte arrives, in order, with no hang.
#[test]
fn reads_switching_between_exact_and_short_lose_no_byte() {
    let (sent, got) = greenhub::run(|| {
        let (mut a, mut b) = pair();
        let mut seed = 0x9e37_79b9_u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let total = 200_000usize;
        let sent: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
        let to_send = sent.clone();
        let sizes: Vec<usize> = (0..4000).map(|_| 1 + next() as usize % 300).collect();
        let writer = greenhub::spawn(move || {
            let mut at = 0;
            for (i, size) in sizes.iter().cycle().enumerate() {
                if at == to_send.len() {
                    break;
                }
                let end = (at + size).min(to_send.len());
                a.write_all(&to_send[at..end]).unwrap();
                at = end;
                if i.is_multiple_of(3) {
                    greenhub::yield_now();
                }
            }
            a
        });
        let mut got = Vec::with_capacity(total);
        let mut buf = vec![0; 4096];
        let mut i = 0u32;
        while got.len() < total {
            i += 1;
            let left = total - got.len();
            if i.is_multiple_of(4) {
                let n = b.read(&mut buf).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            } else {
                let want = (1 + next() as usize % 256).min(left);
                b.read_exact(&mut buf[..want]).unwrap();
                got.extend_from_slice(&buf[..want]);
            }
            if i.is_multiple_of(11) {
                let_the_hub_poll();
            }
        }
        drop(writer.join().unwrap());
        (sent, got)
    });
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "the bytes differ");
}
