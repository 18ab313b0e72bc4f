//! Review of the `TCP_INQ` read path (`net/stream.rs`): a read stopped
//! short at urgent data's mark, with bytes still queued behind it, cleared
//! the read side's readiness (a short read was taken as drained), so the
//! next read parked with no edge to come. Each test is bounded by a read
//! timeout, so a hang shows as `TimedOut` instead of a stuck run.

use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::time::Duration;

use greenhub::net::{TcpListener, TcpStream};

/// Long enough that only a read parked with no edge to come reaches it.
const BOUND: Duration = Duration::from_secs(1);

/// A connected pair on loopback, the reading end with a bounded read timeout.
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_read_timeout(Some(BOUND)).unwrap();
    (client, server)
}

/// `send(2)` with `flags` on `stream`'s fd.
fn send(stream: &TcpStream, bytes: &[u8], flags: libc::c_int) {
    // SAFETY: `stream` keeps its fd open; the pointer and length describe a
    // live slice.
    let n = unsafe {
        libc::send(
            stream.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            flags,
        )
    };
    assert_eq!(n, bytes.len() as isize);
}

/// Turns `SO_OOBINLINE` on: the urgent byte stays in the stream.
fn oob_inline(stream: &TcpStream) {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads one c_int from a live local; `stream` keeps
    // its fd open.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_OOBINLINE,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

/// The peer sends "abcd", then "!" as urgent data, then "efgh"; once the
/// hub has seen every event, `first` reads (exact reads to switch the
/// stream to `recvmsg`), then reads into 8-byte buffers collect the rest.
/// Returns what was read, or the error that stopped it.
fn read_around_the_mark(inline: bool, first: usize) -> Result<Vec<u8>, ErrorKind> {
    greenhub::run(move || {
        let (a, mut b) = pair();
        if inline {
            oob_inline(&b);
        }
        send(&a, b"abcd", 0);
        send(&a, b"!", libc::MSG_OOB);
        send(&a, b"efgh", 0);
        // The hub polls: the edges for all of it are used up.
        greenhub::sleep(Duration::from_millis(20));
        let want = if inline { 9 } else { 8 };
        let mut got = vec![0; first];
        b.read_exact(&mut got).map_err(|e| e.kind())?;
        while got.len() < want {
            let mut eight = [0; 8];
            let n = b.read(&mut eight).map_err(|e| e.kind())?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&eight[..n]);
        }
        drop(a);
        Ok(got)
    })
}

/// After an exact read, `recvmsg` stops at the urgent mark ("cd" of an
/// 8-byte buffer, the kernel reporting 5 bytes left): the short read
/// clears readiness though `left` says bytes remain, and the read of
/// "efgh" parks until its timeout.
#[test]
fn review_exact_read_stopped_at_the_urgent_mark_does_not_hide_the_rest() {
    assert_eq!(read_around_the_mark(false, 2), Ok(b"abcdefgh".to_vec()));
}

/// The same with `SO_OOBINLINE` on: the mark still stops the read, and
/// "!efgh" is slept through.
#[test]
fn review_exact_read_stopped_at_the_inline_urgent_mark_does_not_hide_the_rest() {
    assert_eq!(read_around_the_mark(true, 2), Ok(b"abcd!efgh".to_vec()));
}

/// Not the exact path (older than it): the first plain read of 8 stops at
/// the mark with "abcd", the short read clears readiness, and "efgh" is
/// slept through. `tcp_exact_reads.rs`'s urgent test only reads up to the
/// mark exactly, so it never meets this.
#[test]
fn review_plain_read_stopped_at_the_urgent_mark_does_not_hide_the_rest() {
    // `first` = 0: no exact read; the loop's first 8-byte read meets the mark.
    assert_eq!(read_around_the_mark(false, 0), Ok(b"abcdefgh".to_vec()));
}
