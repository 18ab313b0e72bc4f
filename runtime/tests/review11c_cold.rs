//! Review 11c (cold reviewer): the five commits after 15097e0 (running
//! record, IOV_MAX, SO_INQ on Unix streams, Event set counting, stack pool
//! warm budget, trampoline drops, panic hook chaining, monitor unpark).
//! Written against the public API; panic/abort/stderr/fd-count checks run
//! in a child process (this binary re-run with `REVIEW11C_CHILD=<name>`).

mod util;

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use greenhub::net::UnixStream;
use greenhub::select::Select;
use greenhub::sync::Event;

const CHILD: &str = "REVIEW11C_CHILD";
const HANG: Duration = Duration::from_secs(2);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Sends `bytes` on `fd` with `passed` descriptors attached (SCM_RIGHTS).
fn send_with_fds(fd: i32, bytes: &[u8], passed: &[i32]) {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    #[repr(C)]
    struct Control {
        _align: [libc::cmsghdr; 0],
        bytes: [u8; 1024],
    }
    let mut control = Control {
        _align: [],
        bytes: [0; 1024],
    };
    // SAFETY: pointers to live locals; CMSG_SPACE(4 * n) fits in 1024 bytes.
    unsafe {
        let data = (4 * passed.len()) as u32;
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.bytes.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(data) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(data) as _;
        for (i, p) in passed.iter().enumerate() {
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>().add(i), *p);
        }
        let n = libc::sendmsg(fd, &msg, 0);
        assert_eq!(
            n,
            bytes.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
    }
}

fn send_oob(fd: i32, byte: u8) -> bool {
    // SAFETY: a valid fd and a one-byte buffer.
    unsafe { libc::send(fd, [byte].as_ptr().cast(), 1, libc::MSG_OOB) == 1 }
}

/// Reads until `want` bytes or an error/EOF (read timeout set by caller).
fn read_upto(b: &UnixStream, want: usize) -> Result<Vec<u8>, String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 7];
    while got.len() < want {
        match (&*b).read(&mut buf) {
            Ok(0) => return Err(format!("EOF after {:?}", String::from_utf8_lossy(&got))),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("after {:?}: {e}", String::from_utf8_lossy(&got))),
        }
    }
    Ok(got)
}

// ---------------------------------------------------------------------------
// 1. Select's event arm, reused
// ---------------------------------------------------------------------------

/// `Select::wait` takes `&self`: one select is made to be waited in a loop.
/// The event arm remembers the set count from when the arm was added, so
/// after one set+clear it is "ready" on every later wait, forever: a loop
/// that clears the event and waits again spins instead of parking (before
/// f1ebe86 it parked, as `Event::wait` does after `clear`).
#[test]
fn a_reused_select_parks_again_after_the_event_is_cleared() {
    let outcome = greenhub::run(|| {
        let event = Event::new();
        let mut sel = Select::new();
        let ev = sel.event(&event);
        let timer = sel.after(Duration::from_millis(300));
        event.set();
        let first = sel.wait().unwrap().index();
        event.clear();
        // Nothing sets it again: the only arm that can be ready is the timer.
        let mut spins = 0;
        let second = loop {
            let i = sel.wait().unwrap().index();
            if i != ev {
                break i;
            }
            spins += 1;
            if spins == 1000 {
                break ev;
            }
        };
        (first == ev, second == timer, spins)
    });
    assert_eq!(
        outcome,
        (true, true, 0),
        "(first was the event, then the timer, times the cleared event arm was ready)"
    );
}

/// A select arm added before a set+clear that happened while no one waited:
/// `Event::wait` called after that parks, but the arm remembers the pulse
/// (it was set since the arm was added) and the select returns it once,
/// then parks until its timer (the documented `Select::event` semantics,
/// gevent's `iwait`).
#[test]
fn a_select_event_arm_added_before_an_unwatched_set_and_clear_delivers_it_once() {
    let outcome = greenhub::run(|| {
        let event = Event::new();
        let mut sel = Select::new();
        let ev = sel.event(&event);
        let timer = sel.after(Duration::from_millis(100));
        event.set();
        event.clear();
        let plain = event.wait_timeout(Duration::from_millis(50)).is_ok();
        let first = sel.wait().unwrap().index();
        let second = sel.wait().unwrap().index();
        (plain, first == ev, second == timer)
    });
    assert_eq!(
        outcome,
        (false, true, true),
        "(Event::wait returned Ok, select chose the event arm first, then the timer)"
    );
}

// ---------------------------------------------------------------------------
// 2. Event set counting
// ---------------------------------------------------------------------------

/// 200 waiters (half with timeouts), set then clear at once, one of the
/// woken ones killed before it resumes: every other returns Ok.
#[test]
fn event_set_clear_with_kills_and_timeouts_releases_every_woken_waiter() {
    let outcome = greenhub::run(|| {
        let event = Rc::new(Event::new());
        let oks = Rc::new(std::cell::Cell::new(0));
        let mut handles = Vec::new();
        for i in 0..200 {
            let event = event.clone();
            let oks = oks.clone();
            handles.push(greenhub::spawn(move || {
                let r = if i % 2 == 0 {
                    event.wait()
                } else {
                    event.wait_timeout(Duration::from_secs(5))
                };
                if r.is_ok() {
                    oks.set(oks.get() + 1);
                }
            }));
        }
        greenhub::sleep(Duration::from_millis(10));
        event.set();
        event.clear();
        handles[7].kill();
        event.set();
        event.clear();
        for h in handles {
            let _ = h.join();
        }
        oks.get()
    });
    assert_eq!(outcome, 199);
}

// ---------------------------------------------------------------------------
// 3. Unix streams with SO_INQ: descriptors, credentials, out-of-band bytes
// ---------------------------------------------------------------------------

/// Messages carrying 1, 6, 7, 12 and 40 descriptors (the last ones do not
/// fit the 64-byte control buffer: MSG_CTRUNC) between plain bytes: every
/// byte is read in order, and no descriptor is left open in the reader.
#[test]
fn unix_descriptors_passed_with_bytes_are_closed_and_no_byte_is_lost() {
    const NAME: &str = "unix_descriptors_passed_with_bytes_are_closed_and_no_byte_is_lost";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        let outcome = greenhub::run(|| {
            let (a, b) = UnixStream::pair().unwrap();
            b.set_read_timeout(Some(HANG)).unwrap();
            let spare = std::fs::File::open("/dev/null").unwrap();
            let before = open_fds();
            let mut want = Vec::new();
            for (round, n) in [1usize, 6, 7, 12, 40, 3].into_iter().enumerate() {
                let fds = vec![spare.as_raw_fd(); n];
                let msg = format!("[{round}:{n}]");
                send_with_fds(a.as_raw_fd(), msg.as_bytes(), &fds);
                want.extend_from_slice(msg.as_bytes());
                (&a).write_all(b"--").unwrap();
                want.extend_from_slice(b"--");
            }
            greenhub::sleep(Duration::from_millis(5));
            let got = read_upto(&b, want.len());
            let after = open_fds();
            (got.map(|g| g == want), before, after)
        });
        assert_eq!(outcome.0, Ok(true), "bytes");
        assert_eq!(
            outcome.1, outcome.2,
            "open descriptors before/after the reads"
        );
        return;
    }
    let (ok, _out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{err}");
}

/// The reader has SO_PASSCRED on (every read carries SCM_CREDENTIALS, 32
/// bytes of control) and the peer passes descriptors too: no byte lost, no
/// hang, no descriptor left open.
#[test]
fn unix_passcred_with_descriptors_reads_everything() {
    const NAME: &str = "unix_passcred_with_descriptors_reads_everything";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        let outcome = greenhub::run(|| {
            let (a, b) = UnixStream::pair().unwrap();
            let on: libc::c_int = 1;
            // SAFETY: setsockopt on a live fd with a live int.
            let r = unsafe {
                libc::setsockopt(
                    b.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_PASSCRED,
                    (&on as *const libc::c_int).cast(),
                    4,
                )
            };
            assert_eq!(r, 0);
            b.set_read_timeout(Some(HANG)).unwrap();
            let spare = std::fs::File::open("/dev/null").unwrap();
            let before = open_fds();
            let mut want = Vec::new();
            for round in 0..20 {
                let msg = format!("<{round}>");
                send_with_fds(a.as_raw_fd(), msg.as_bytes(), &[spare.as_raw_fd(); 2]);
                want.extend_from_slice(msg.as_bytes());
                (&a).write_all(b"..").unwrap();
                want.extend_from_slice(b"..");
            }
            greenhub::sleep(Duration::from_millis(5));
            let got = read_upto(&b, want.len());
            (got.map(|g| g == want), before, open_fds())
        });
        assert_eq!(outcome.0, Ok(true), "bytes");
        assert_eq!(outcome.1, outcome.2, "open descriptors");
        return;
    }
    let (ok, _out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{err}");
}

/// Out-of-band bytes at the start, twice in a row, in the middle and at the
/// end, with the edges consumed by the hub first: every ordinary byte is
/// read and none is slept through, including after a read that left only
/// the OOB byte queued.
#[test]
fn unix_oob_bytes_at_every_position_lose_no_ordinary_byte() {
    let outcome = greenhub::run(|| {
        let (mut a, b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(HANG)).unwrap();
        let fd = a.as_raw_fd();
        if !send_oob(fd, b'1') {
            return Err("MSG_OOB unsupported".to_string());
        }
        a.write_all(b"ab").unwrap();
        send_oob(fd, b'2');
        send_oob(fd, b'3');
        a.write_all(b"cd").unwrap();
        send_oob(fd, b'4');
        a.write_all(b"ef").unwrap();
        greenhub::sleep(Duration::from_millis(5));
        let first = read_upto(&b, 6)?;
        // Only an OOB byte at the end now: a peer writes more later.
        send_oob(fd, b'5');
        let writer = greenhub::spawn(move || {
            greenhub::sleep(Duration::from_millis(50));
            a.write_all(b"gh").unwrap();
            a
        });
        let second = read_upto(&b, 5)?;
        let _a = writer.join();
        Ok((first, second))
    });
    match outcome {
        Err(m) if m == "MSG_OOB unsupported" => eprintln!("skipped"),
        // A later OOB byte turns the earlier one into an ordinary byte (as
        // TCP's urgent pointer): '1' to '4' are ordinary once '5' is sent.
        other => assert_eq!(other, Ok((b"1ab23cd".to_vec(), b"4efgh".to_vec()))),
    }
}

/// read_exact ending exactly at the end of the queue on a Unix stream (the
/// count says 0 left), then a peer's later write: the next read_exact sees it.
#[test]
fn unix_read_exact_to_the_end_then_more_later() {
    let outcome = greenhub::run(|| {
        let (mut a, b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(HANG)).unwrap();
        a.write_all(&[1u8; 100]).unwrap();
        greenhub::sleep(Duration::from_millis(5));
        let mut buf = [0u8; 100];
        (&b).read_exact(&mut buf).unwrap();
        let writer = greenhub::spawn(move || {
            greenhub::sleep(Duration::from_millis(30));
            a.write_all(&[2u8; 50]).unwrap();
            a
        });
        let mut more = [0u8; 50];
        let r = (&b).read_exact(&mut more).map(|()| more == [2u8; 50]);
        let _a = writer.join();
        r.map_err(|e| e.to_string())
    });
    assert_eq!(outcome, Ok(true));
}

/// read_vectored with exactly 1024, then 1025 one-byte buffers on a queue
/// of 3000: reads 1024 each time, and the rest is read without a new edge.
#[test]
fn unix_read_vectored_of_exactly_iov_max_buffers_leaves_readiness() {
    let outcome = greenhub::run(|| {
        let (mut a, b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(HANG)).unwrap();
        a.write_all(&[9u8; 3000]).unwrap();
        greenhub::sleep(Duration::from_millis(5));
        let mut store = vec![[0u8; 1]; 1025];
        let mut bufs: Vec<IoSliceMut<'_>> = store.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let n = (&b)
            .read_vectored(&mut bufs[..1024])
            .map_err(|e| e.to_string())?;
        let m = (&b).read_vectored(&mut bufs).map_err(|e| e.to_string())?;
        let mut rest = [0u8; 4000];
        let k = (&b).read(&mut rest).map_err(|e| e.to_string())?;
        Ok::<_, String>((n, m, k))
    });
    assert_eq!(outcome, Ok((1024, 1024, 952)));
}

// ---------------------------------------------------------------------------
// 4. Trampoline: a detached coroutine's return value dropped
// ---------------------------------------------------------------------------

struct Inner;
impl Drop for Inner {
    fn drop(&mut self) {
        panic!("the payload's own drop panics");
    }
}

struct Bomb;
impl Drop for Bomb {
    fn drop(&mut self) {
        std::panic::panic_any(Inner);
    }
}

/// A detached coroutine returns a value whose drop panics with a payload
/// whose own drop panics: the trampoline's `drop(payload)` runs outside its
/// `catch_unwind`, so that second panic escapes the coroutine's first frame.
/// Expected: reported, and the hub goes on (run returns).
#[test]
fn a_return_value_drop_panicking_with_a_panicking_payload_does_not_escape() {
    const NAME: &str = "a_return_value_drop_panicking_with_a_panicking_payload_does_not_escape";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        let v = greenhub::run(|| {
            drop(greenhub::spawn(|| Bomb));
            greenhub::sleep(Duration::from_millis(20));
            42
        });
        println!("RUN RETURNED {v}");
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(
        ok && out.contains("RUN RETURNED 42"),
        "child ok={ok}\nstdout:\n{out}\nstderr:\n{err}"
    );
}

/// A detached coroutine's return value whose drop parks (sleeps) and then
/// spawns: at normal time the drop completes and its spawn runs.
#[test]
fn a_return_value_drop_that_parks_and_spawns_completes() {
    thread_local! {
        static DONE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    struct Parks;
    impl Drop for Parks {
        fn drop(&mut self) {
            greenhub::sleep(Duration::from_millis(5));
            DONE.with(|d| d.set(d.get() + 1));
            drop(greenhub::spawn(|| DONE.with(|d| d.set(d.get() + 10))));
        }
    }
    let done = greenhub::run(|| {
        drop(greenhub::spawn(|| Parks));
        greenhub::sleep(Duration::from_millis(100));
        DONE.with(|d| d.get())
    });
    assert_eq!(done, 11);
}

// ---------------------------------------------------------------------------
// 5. Panic reports
// ---------------------------------------------------------------------------

/// A named coroutine catches its unblock job's panic and goes on: stderr
/// still says "coroutine 'catcher' panicked", which did not happen (the
/// coroutine neither panicked nor ended; report_resumed's doc: "not which
/// coroutine it ends").
#[test]
fn a_caught_unblock_panic_is_not_reported_as_the_coroutines() {
    const NAME: &str = "a_caught_unblock_panic_is_not_reported_as_the_coroutines";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        greenhub::run(|| {
            let h = greenhub::Builder::new()
                .name("catcher")
                .spawn(|| {
                    let r = std::panic::catch_unwind(|| {
                        greenhub::unblock(|| -> u32 { panic!("job boom") })
                    });
                    assert!(r.is_err());
                    7
                })
                .unwrap();
            println!("JOINED {:?}", h.join().ok());
        });
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "child failed:\n{err}");
    assert!(out.contains("JOINED Some(7)"), "{out}");
    assert!(
        !err.contains("coroutine 'catcher' panicked"),
        "a caught panic reported as the coroutine's:\n{err}"
    );
}

/// A user hook installed before greenhub's sees a coroutine panic once, and
/// the coroutine is named once; a non-coroutine panic after it goes to the
/// user's hook only.
#[test]
fn a_user_hook_installed_first_is_chained_once() {
    const NAME: &str = "a_user_hook_installed_first_is_chained_once";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        std::panic::set_hook(Box::new(|_| eprintln!("USER HOOK")));
        greenhub::run(|| {
            let h = greenhub::Builder::new()
                .name("p")
                .spawn(|| panic!("in coroutine"))
                .unwrap();
            let _ = h.join();
        });
        let _ = std::panic::catch_unwind(|| panic!("outside"));
        return;
    }
    let (ok, _out, err) = util::run_child(CHILD, NAME);
    assert!(ok, "{err}");
    assert_eq!(err.matches("USER HOOK").count(), 2, "{err}");
    assert_eq!(err.matches("coroutine 'p' panicked").count(), 1, "{err}");
    assert!(!err.contains("thread 'main' panicked"), "{err}");
}

// ---------------------------------------------------------------------------
// 6. Overflow report of an unnamed coroutine, by id, after many coroutines
// ---------------------------------------------------------------------------

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let buf = [n as u8; 4096];
    std::hint::black_box(&buf);
    if n == 0 {
        0
    } else {
        recurse(n - 1) + std::hint::black_box(buf[7]) as u64
    }
}

/// 12,345 coroutines first (ids above 10,000), then an unnamed one that
/// overflows: the report names `coroutine-ID` with its real id.
#[test]
fn an_unnamed_overflow_after_many_coroutines_names_its_id() {
    const NAME: &str = "an_unnamed_overflow_after_many_coroutines_names_its_id";
    if util::other_child(CHILD, NAME) {
        return;
    }
    if util::is_child(CHILD, NAME) {
        greenhub::run(|| {
            for _ in 0..12_345 {
                drop(greenhub::spawn(|| ()));
            }
            greenhub::sleep(Duration::from_millis(1));
            let h = greenhub::spawn(|| recurse(1 << 20));
            println!("ID {}", h.id());
            use std::io::Write as _;
            std::io::stdout().flush().unwrap();
            let _ = h.join();
        });
        return;
    }
    let (ok, out, err) = util::run_child(CHILD, NAME);
    assert!(!ok, "an overflow aborts");
    let id = out
        .lines()
        .find_map(|l| l.split("ID ").nth(1))
        .map(str::trim)
        .unwrap_or_else(|| panic!("child printed no id; stdout:\n{out}\nstderr:\n{err}"));
    assert!(
        err.contains(&format!("coroutine 'coroutine-{id}' has overflowed")),
        "id {id}; stderr:\n{err}"
    );
}
