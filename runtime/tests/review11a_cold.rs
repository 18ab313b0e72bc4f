//! Review 11a (cold read of the public API): readiness, park identity,
//! kills, remote channels, stale handles and wait queues at scale. Each test
//! judges an outcome; generous timeouts only detect hangs.

use std::cell::{Cell, RefCell};
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use greenhub::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use greenhub::select::Select;
use greenhub::sync::{Channel, Event, Mutex, Semaphore, WaitError};

const HANG: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// 1. Readiness
// ---------------------------------------------------------------------------

/// std's `write_vectored` passes at most IOV_MAX (1024) slices to `writev`:
/// a write of 2000 one-byte slices returns 1024 although the socket buffer
/// is nearly empty. Taken as "the buffer is full", it clears the write
/// side's readiness, and the next write parks for an edge that never comes
/// (the buffer never filled, so the kernel never reports it writable again).
#[test]
fn unix_write_vectored_past_iov_max_does_not_hang_the_next_write() {
    let outcome = greenhub::run(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let bytes = vec![7u8; 2000];
        let slices: Vec<IoSlice<'_>> = bytes.chunks(1).map(IoSlice::new).collect();
        // Let the hub poll once, so that the registration's first edges are
        // consumed: from here on only new edges can set readiness.
        greenhub::sleep(Duration::from_millis(5));
        let first = (&a).write_vectored(&slices).unwrap();
        a.set_write_timeout(Some(HANG)).unwrap();
        // Only ~1 KiB is queued in a buffer of hundreds of KiB: must not park.
        let second = (&a).write(b"x").map_err(|e| e.to_string());
        (first, second)
    });
    eprintln!("first write_vectored wrote {} bytes", outcome.0);
    assert_eq!(
        outcome.1,
        Ok(1),
        "first write_vectored wrote {} bytes",
        outcome.0
    );
}

#[test]
fn tcp_write_vectored_past_iov_max_does_not_hang_the_next_write() {
    let outcome = greenhub::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let a = TcpStream::connect(addr).unwrap();
        let (_b, _) = listener.accept().unwrap();
        let bytes = vec![7u8; 2000];
        let slices: Vec<IoSlice<'_>> = bytes.chunks(1).map(IoSlice::new).collect();
        // Let the hub poll once, so that the registration's first edges are
        // consumed: from here on only new edges can set readiness.
        greenhub::sleep(Duration::from_millis(5));
        let first = (&a).write_vectored(&slices).unwrap();
        a.set_write_timeout(Some(HANG)).unwrap();
        let second = (&a).write(b"x").map_err(|e| e.to_string());
        (first, second)
    });
    eprintln!("first write_vectored wrote {} bytes", outcome.0);
    assert_eq!(
        outcome.1,
        Ok(1),
        "first write_vectored wrote {} bytes",
        outcome.0
    );
}

/// std's `read_vectored` on a socket accepts any number of buffers (it
/// passes at most IOV_MAX of them). greenhub's `recvmsg` passes them all,
/// and the kernel refuses more than 1024 with EMSGSIZE.
#[test]
fn read_vectored_with_more_than_iov_max_buffers_reads_like_std() {
    let outcome = greenhub::run(|| {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(&[1u8; 16]).unwrap();
        let mut storage = vec![[0u8; 1]; 2000];
        let mut bufs: Vec<IoSliceMut<'_>> = storage
            .iter_mut()
            .map(|b| IoSliceMut::new(&mut b[..]))
            .collect();
        (&b).read_vectored(&mut bufs).map_err(|e| e.to_string())
    });
    assert_eq!(outcome, Ok(16));
}

/// A Unix stream read stops short at an out-of-band byte's mark (Linux
/// 5.15+ `MSG_OOB` on AF_UNIX) with ordinary bytes still queued behind it.
/// The short read clears readiness, so the bytes after the mark are slept
/// through: the TCP path guards the same case (urgent data), the Unix path
/// does not.
#[test]
fn unix_read_stopped_at_an_oob_mark_does_not_sleep_through_the_rest() {
    let outcome = greenhub::run(|| {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"abc").unwrap();
        // SAFETY: a valid fd and a one-byte buffer.
        let sent = unsafe { libc::send(a.as_raw_fd(), b"X".as_ptr().cast(), 1, libc::MSG_OOB) };
        if sent != 1 {
            return Err(format!(
                "MSG_OOB unsupported here: {}",
                std::io::Error::last_os_error()
            ));
        }
        a.write_all(b"def").unwrap();
        // The hub polls: every edge of those writes is consumed.
        greenhub::sleep(Duration::from_millis(5));
        b.set_read_timeout(Some(HANG)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 6 {
            match (&b).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("after {:?}: {e}", String::from_utf8_lossy(&got))),
            }
        }
        Ok(got)
    });
    match outcome {
        Err(msg) if msg.starts_with("MSG_OOB unsupported") => eprintln!("skipped: {msg}"),
        other => assert_eq!(other, Ok(b"abcdef".to_vec())),
    }
}

/// The same as a wait: after the read that stopped at the mark,
/// `wait_readable` must return at once (bytes are in the kernel).
#[test]
fn unix_wait_readable_after_a_read_stopped_at_an_oob_mark_returns() {
    let outcome = greenhub::run(|| {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"abc").unwrap();
        // SAFETY: a valid fd and a one-byte buffer.
        let sent = unsafe { libc::send(a.as_raw_fd(), b"X".as_ptr().cast(), 1, libc::MSG_OOB) };
        if sent != 1 {
            return Err("MSG_OOB unsupported".to_string());
        }
        a.write_all(b"def").unwrap();
        greenhub::sleep(Duration::from_millis(5));
        let mut buf = [0u8; 64];
        let n = (&b).read(&mut buf).unwrap();
        b.set_read_timeout(Some(HANG)).unwrap();
        b.wait_readable()
            .map_err(|e| format!("first read took {n} bytes; then: {e}"))
    });
    match outcome {
        Err(msg) if msg == "MSG_OOB unsupported" => eprintln!("skipped: {msg}"),
        other => assert_eq!(other, Ok(())),
    }
}

/// read_exact that ends exactly at the end of the queue, then more bytes
/// from a peer coroutine: the wait must see them.
#[test]
fn tcp_read_exact_to_the_end_then_wait_for_more() {
    let got = greenhub::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut a = TcpStream::connect(addr).unwrap();
        let (mut b, _) = listener.accept().unwrap();
        a.write_all(b"12345").unwrap();
        greenhub::sleep(Duration::from_millis(5));
        let mut five = [0u8; 5];
        b.read_exact(&mut five).unwrap();
        let writer = greenhub::spawn(move || {
            greenhub::sleep(Duration::from_millis(5));
            a.write_all(b"678").unwrap();
            a
        });
        b.set_read_timeout(Some(HANG)).unwrap();
        b.wait_readable().unwrap();
        let mut three = [0u8; 3];
        b.read_exact(&mut three).unwrap();
        drop(writer.join().unwrap());
        (five, three)
    });
    assert_eq!(&got.0, b"12345");
    assert_eq!(&got.1, b"678");
}

/// Two datagrams queued, one read: the second must be received without a
/// new edge, including through a select readiness arm.
#[test]
fn udp_second_queued_datagram_is_seen_by_select() {
    let outcome = greenhub::run(|| {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"one", rx.local_addr().unwrap()).unwrap();
        tx.send_to(b"two", rx.local_addr().unwrap()).unwrap();
        greenhub::sleep(Duration::from_millis(5));
        let mut buf = [0u8; 16];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"one");
        let mut sel = Select::new();
        let readable = sel.readable(&rx);
        let idle = sel.after(HANG);
        let picked = sel.wait().unwrap().index();
        (picked == readable, picked == idle)
    });
    assert_eq!(outcome, (true, false));
}

/// Peer closes after readiness was consumed by a read that drained the
/// queue: wait_readable must return (EOF is readable).
#[test]
fn unix_peer_close_after_drain_wakes_wait_readable() {
    let outcome = greenhub::run(|| {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"hi").unwrap();
        let mut buf = [0u8; 64];
        let n = (&b).read(&mut buf).unwrap();
        assert_eq!(n, 2);
        let closer = greenhub::spawn(move || {
            greenhub::sleep(Duration::from_millis(5));
            drop(a);
        });
        b.set_read_timeout(Some(HANG)).unwrap();
        let waited = b.wait_readable().map_err(|e| e.to_string());
        closer.join().unwrap();
        (waited, (&b).read(&mut buf).map_err(|e| e.to_string()))
    });
    assert_eq!(outcome, (Ok(()), Ok(0)));
}

// ---------------------------------------------------------------------------
// 5. Handles carry their hub's identity
// ---------------------------------------------------------------------------

/// `wait_readable` on a socket kept from an earlier run fails with a clear
/// error; a `select` readiness arm on the same socket instead registers its
/// waiter with the dead hub's reactor and parks forever.
#[test]
fn select_on_a_socket_kept_from_an_earlier_run_does_not_hang() {
    let (old_a, old_b) = greenhub::run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        // Make the read side known-not-ready: a read that times out.
        b.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let _ = (&b).read(&mut [0u8; 1]);
        (a, b)
    });
    let outcome = greenhub::run(move || {
        let direct = old_b.wait_readable().map_err(|e| e.to_string());
        let sel_outcome = greenhub::timeout(HANG, || {
            let mut sel = Select::new();
            sel.readable(&old_b);
            sel.wait().map(|s| s.index()).map_err(|e| e.to_string())
        });
        drop(old_a);
        (direct.is_err(), sel_outcome.is_ok())
    });
    assert!(outcome.0, "wait_readable on the old socket should fail");
    assert!(
        outcome.1,
        "select on a socket of a finished hub hung instead of reporting it ready (its read then errors)"
    );
}

// ---------------------------------------------------------------------------
// Event: set wakes every waiter
// ---------------------------------------------------------------------------

/// `Event::set` "wakes every waiter". A `set` followed by `clear` before the
/// waiters run wakes them and sends them back to sleep (they re-check the
/// flag): the wake is lost. (gevent's and Python's Event return True to
/// every waiter woken by `set`.)
#[test]
fn event_set_then_clear_still_releases_the_waiters_it_woke() {
    let outcome = greenhub::run(|| {
        let event = Event::new();
        let waiter = {
            let event = event.clone();
            greenhub::spawn(move || event.wait_timeout(HANG))
        };
        greenhub::yield_now();
        event.set();
        event.clear();
        waiter.join().unwrap()
    });
    assert_eq!(outcome, Ok(()));
}

// ---------------------------------------------------------------------------
// 2. Early park exits retire their identity
// ---------------------------------------------------------------------------

/// A zero timeout around each kind of park, then a second park of the same
/// kind: the second gets its own result, nothing from the first.
#[test]
fn zero_timeouts_around_each_park_leave_the_next_park_its_own_result() {
    let outcome = greenhub::run(|| {
        let mut log = Vec::new();
        // unblock
        let cut = greenhub::timeout(Duration::ZERO, || {
            greenhub::unblock(|| {
                std::thread::sleep(Duration::from_millis(30));
                "slow"
            })
        });
        log.push(format!("unblock cut: {}", cut.is_err()));
        let second = greenhub::unblock(|| {
            std::thread::sleep(Duration::from_millis(60));
            "fast"
        });
        log.push(format!("unblock second: {second:?}"));
        // channel recv
        let ch: Channel<u32> = Channel::unbounded();
        let cut = greenhub::timeout(Duration::ZERO, || ch.recv());
        log.push(format!("recv cut: {}", cut.is_err()));
        {
            let ch = ch.clone();
            greenhub::spawn(move || {
                greenhub::sleep(Duration::from_millis(5));
                ch.send(9).unwrap();
            });
        }
        log.push(format!("recv second: {:?}", ch.recv_timeout(HANG)));
        // event
        let ev = Event::new();
        let cut = greenhub::timeout(Duration::ZERO, || ev.wait());
        log.push(format!("event cut: {}", cut.is_err()));
        log.push(format!(
            "event second: {:?}",
            ev.wait_timeout(Duration::from_millis(20))
        ));
        // semaphore and mutex
        let sem = Semaphore::new(0);
        let cut = greenhub::timeout(Duration::ZERO, || sem.acquire().map(drop));
        log.push(format!("sem cut: {}", cut.is_err()));
        {
            let sem = sem.clone();
            greenhub::spawn(move || sem.release());
        }
        log.push(format!(
            "sem second: {:?}",
            sem.acquire_timeout(HANG).map(drop)
        ));
        log.push(format!("sem left: {}", sem.available()));
        // join
        let sleeper = greenhub::spawn(|| {
            greenhub::sleep(Duration::from_millis(10));
            3
        });
        let cut = greenhub::timeout(Duration::ZERO, || sleeper.wait());
        log.push(format!("join cut: {}", cut.is_err()));
        log.push(format!("join second: {:?}", sleeper.join()));
        // socket read
        let (mut a, b) = UnixStream::pair().unwrap();
        let cut = greenhub::timeout(Duration::ZERO, || (&b).read(&mut [0u8; 4]));
        log.push(format!("read cut: {}", cut.is_err()));
        a.write_all(b"ok").unwrap();
        let mut buf = [0u8; 4];
        b.set_read_timeout(Some(HANG)).unwrap();
        log.push(format!(
            "read second: {:?}",
            (&b).read(&mut buf).map_err(|e| e.to_string())
        ));
        // select
        let cut = greenhub::timeout(Duration::ZERO, || {
            let mut sel = Select::new();
            sel.recv(&ch);
            sel.wait().map(|s| s.index())
        });
        log.push(format!("select cut: {}", cut.is_err()));
        ch.send(4).unwrap();
        log.push(format!(
            "select-channel second: {:?}",
            ch.recv_timeout(HANG)
        ));
        // sleep
        let cut = greenhub::timeout(Duration::ZERO, || greenhub::sleep(Duration::from_secs(60)));
        log.push(format!("sleep cut: {}", cut.is_err()));
        let t = std::time::Instant::now();
        greenhub::sleep(Duration::from_millis(15));
        log.push(format!(
            "sleep second full: {}",
            t.elapsed() >= Duration::from_millis(15)
        ));
        log
    });
    let expected = [
        "unblock cut: true",
        "unblock second: Ok(\"fast\")",
        "recv cut: true",
        "recv second: Ok(9)",
        "event cut: true",
        "event second: Err(TimedOut)",
        "sem cut: true",
        "sem second: Ok(())",
        "sem left: 1",
        "join cut: true",
        "join second: Ok(3)",
        "read cut: true",
        "read second: Ok(2)",
        "select cut: true",
        "select-channel second: Ok(4)",
        "sleep cut: true",
        "sleep second full: true",
    ];
    assert_eq!(outcome, expected);
}

// ---------------------------------------------------------------------------
// 3. Kills
// ---------------------------------------------------------------------------

/// A coroutine woken by its helper job's completion and killed before it
/// runs: it joins as killed, and the next unblock of another coroutine gets
/// its own result.
#[test]
fn a_kill_while_woken_by_unblock_is_clean_and_the_next_unblock_is_its_own() {
    let outcome = greenhub::run(|| {
        let worker = greenhub::spawn(|| {
            greenhub::unblock(|| {
                std::thread::sleep(Duration::from_millis(10));
                1
            })
        });
        greenhub::yield_now();
        // Block the hub (no park) until the job has surely finished, so the
        // worker is woken by the inbox at the next poll.
        std::thread::sleep(Duration::from_millis(40));
        let killer = {
            let w = Rc::new(worker);
            let w2 = w.clone();
            // A sleep of 0 polls the hub once: the completion wakes the worker
            // (queued, not yet run); kill it right then, before its turn.
            greenhub::spawn(move || w2.kill());
            w
        };
        greenhub::yield_now();
        let worker = Rc::try_unwrap(killer).unwrap();
        let first = worker.join().map(|r| r.map_err(|e| e.to_string()));
        let second = greenhub::unblock(|| {
            std::thread::sleep(Duration::from_millis(20));
            2
        })
        .map_err(|e| e.to_string());
        (format!("{first:?}"), second)
    });
    assert!(
        outcome.0 == "Err(Killed)" || outcome.0 == "Ok(Ok(1))",
        "{}",
        outcome.0
    );
    assert_eq!(outcome.1, Ok(2));
}

/// Double kill, kill of self, kill during unwinding: all join as killed,
/// and nothing else is disturbed.
#[test]
fn double_kill_self_kill_and_kill_while_unwinding() {
    let outcome = greenhub::run(|| {
        let bystander = greenhub::spawn(|| {
            greenhub::sleep(Duration::from_millis(30));
            "alive"
        });
        let twice = greenhub::spawn(|| greenhub::sleep(Duration::from_secs(60)));
        twice.kill();
        twice.kill();
        let me: Rc<RefCell<Option<greenhub::JoinHandle<()>>>> = Rc::new(RefCell::new(None));
        let slot = me.clone();
        let selfkill = greenhub::spawn(move || {
            greenhub::yield_now();
            if let Some(h) = slot.borrow().as_ref() {
                h.kill();
            }
            greenhub::sleep(Duration::from_secs(60));
        });
        // The handle lives in the slot; `join` needs ownership, so use `wait`.
        *me.borrow_mut() = Some(selfkill);
        struct KillsAgain(Rc<RefCell<Option<greenhub::JoinHandle<()>>>>);
        impl Drop for KillsAgain {
            fn drop(&mut self) {
                if let Some(h) = self.0.borrow().as_ref() {
                    h.kill(); // the coroutine unwinding this very destructor
                }
                greenhub::sleep(Duration::from_millis(50)); // refused: ends at once
            }
        }
        let me2: Rc<RefCell<Option<greenhub::JoinHandle<()>>>> = Rc::new(RefCell::new(None));
        let guard_slot = me2.clone();
        let unwinding = greenhub::spawn(move || {
            let _g = KillsAgain(guard_slot);
            greenhub::sleep(Duration::from_secs(60));
        });
        *me2.borrow_mut() = Some(unwinding);
        greenhub::yield_now();
        me2.borrow().as_ref().unwrap().kill();
        let a = twice.join();
        // Let the self-kill and the kill-while-unwinding happen (no RefCell
        // borrow may be held across a park: the coroutines borrow the slots).
        greenhub::sleep(Duration::from_millis(5));
        let c = Ok::<(), greenhub::JoinError>(());
        let selfkill = me.borrow_mut().take().unwrap();
        let b = selfkill.join();
        let unwinding = me2.borrow_mut().take().unwrap();
        let c2 = unwinding.join();
        (a, b, c, c2, bystander.join())
    });
    assert_eq!(outcome.0, Err(greenhub::JoinError::Killed));
    assert_eq!(outcome.1, Err(greenhub::JoinError::Killed));
    assert_eq!(outcome.2, Ok(()));
    assert_eq!(outcome.3, Err(greenhub::JoinError::Killed));
    assert_eq!(outcome.4, Ok("alive"));
}

/// A closure killed before it starts owns a value whose Drop logs through a
/// `log` backend that calls `current_name()`, and does socket I/O.
#[test]
fn a_kill_before_start_with_a_drop_that_logs_and_writes() {
    struct NameLogger;
    impl log::Log for NameLogger {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let name = greenhub::current_name();
            let _ = format!("[{name:?}] {}", record.args());
        }
        fn flush(&self) {}
    }
    let _ = log::set_boxed_logger(Box::new(NameLogger));
    log::set_max_level(log::LevelFilter::Trace);
    let outcome = greenhub::run(|| {
        let (a, mut b) = UnixStream::pair().unwrap();
        struct Noisy(UnixStream);
        impl Drop for Noisy {
            fn drop(&mut self) {
                log::info!("dropping the unstarted closure's value");
                let _ = (&self.0).write_all(b"bye");
            }
        }
        let noisy = Noisy(a);
        let victim = greenhub::Builder::new()
            .name("victim")
            .spawn(move || {
                let _keep = &noisy;
                unreachable!("never runs");
            })
            .unwrap();
        victim.kill();
        let joined = victim.join();
        b.set_read_timeout(Some(HANG)).unwrap();
        let mut got = [0u8; 3];
        let read = b
            .read_exact(&mut got)
            .map(|_| got)
            .map_err(|e| e.to_string());
        (joined, read)
    });
    assert_eq!(outcome.0, Err(greenhub::JoinError::Killed));
    assert_eq!(outcome.1, Ok(*b"bye"));
}

// ---------------------------------------------------------------------------
// 4. Remote channels
// ---------------------------------------------------------------------------

/// One receiver shared (Arc) by coroutines of two hubs on two threads, one
/// of them with a receive timeout that may expire right as it is picked:
/// every value sent is received by someone.
#[test]
fn a_remote_receiver_shared_by_two_hubs_loses_no_value() {
    for round in 0..20 {
        let (tx, rx) = std::thread::spawn(|| greenhub::run(greenhub::sync::remote_channel::<u32>))
            .join()
            .unwrap();
        let rx = std::sync::Arc::new(rx);
        let (rx1, rx2) = (rx.clone(), rx.clone());
        let short = std::thread::spawn(move || {
            greenhub::run(move || rx1.recv_timeout(Duration::from_millis(10)).ok())
        });
        let long = std::thread::spawn(move || greenhub::run(move || rx2.recv_timeout(HANG).ok()));
        std::thread::sleep(Duration::from_millis(10));
        tx.send(round).unwrap();
        drop(tx); // closed: a receiver left waiting drains, then sees Closed
        let a = short.join().unwrap();
        let b = long.join().unwrap();
        let got: Vec<u32> = a.into_iter().chain(b).collect();
        assert_eq!(got, [round], "round {round}: short={a:?} long={b:?}");
    }
}

/// A `Handle` kept from an earlier run spawns nothing in the next.
#[test]
fn a_handle_kept_from_an_earlier_run_spawns_nothing_in_the_next() {
    let handle = greenhub::run(greenhub::handle);
    let outcome = greenhub::run(move || {
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let spawned = handle.spawn(move || flag.store(true, std::sync::atomic::Ordering::SeqCst));
        greenhub::sleep(Duration::from_millis(20));
        (
            spawned.is_err(),
            ran.load(std::sync::atomic::Ordering::SeqCst),
        )
    });
    assert_eq!(outcome, (true, false));
}

// ---------------------------------------------------------------------------
// 6. Wait queues at scale
// ---------------------------------------------------------------------------

const MANY: usize = 40_000;

/// 40,000 coroutines time out together on a semaphore, a channel, an
/// event and a mutex; one late waiter without a timeout sits behind them
/// on each. Every timed-out waiter gets TimedOut (none early, none twice),
/// and the single later release / send / set / unlock goes to the live one.
#[test]
fn forty_thousand_timeouts_then_one_notify_reaches_the_live_waiter() {
    let outcome = greenhub::run(|| {
        let sem = Semaphore::new(0);
        let ch: Channel<u32> = Channel::unbounded();
        let ev = Event::new();
        let mutex = Rc::new(Mutex::new(0u32));
        let held = Rc::new(RefCell::new(Some(())));
        let timed_out = Rc::new(Cell::new(0usize));
        let early = Rc::new(Cell::new(0usize));
        let wrong = Rc::new(Cell::new(0usize));
        let t = Duration::from_millis(30);
        // The mutex is held by this coroutine for the whole wait.
        let guard = mutex.try_lock().unwrap();
        let mut waiters = Vec::with_capacity(MANY);
        for i in 0..MANY {
            let (sem, ch, ev, mutex) = (sem.clone(), ch.clone(), ev.clone(), mutex.clone());
            let (timed_out, early, wrong) = (timed_out.clone(), early.clone(), wrong.clone());
            waiters.push(greenhub::spawn(move || {
                let start = std::time::Instant::now();
                let ok = match i % 4 {
                    0 => sem.acquire_timeout(t).map(drop) == Err(WaitError::TimedOut),
                    1 => ch.recv_timeout(t).is_err(),
                    2 => ev.wait_timeout(t) == Err(WaitError::TimedOut),
                    _ => mutex.lock_timeout(t).map(drop) == Err(WaitError::TimedOut),
                };
                if start.elapsed() < t {
                    early.set(early.get() + 1);
                }
                if ok {
                    timed_out.set(timed_out.get() + 1);
                } else {
                    wrong.set(wrong.get() + 1);
                }
            }));
        }
        greenhub::yield_now();
        let late_sem = {
            let sem = sem.clone();
            greenhub::spawn(move || sem.acquire_timeout(HANG).map(drop))
        };
        let late_ch = {
            let ch = ch.clone();
            greenhub::spawn(move || ch.recv_timeout(HANG))
        };
        let late_ev = {
            let ev = ev.clone();
            greenhub::spawn(move || ev.wait_timeout(HANG))
        };
        let late_mx = {
            let mutex = mutex.clone();
            greenhub::spawn(move || mutex.lock_timeout(HANG).map(|g| *g))
        };
        for w in waiters {
            w.join().unwrap();
        }
        sem.release();
        ch.send(5).unwrap();
        ev.set();
        drop(guard);
        drop(held);
        let lates = (
            late_sem.join().unwrap(),
            late_ch.join().unwrap(),
            late_ev.join().unwrap(),
            late_mx.join().unwrap(),
        );
        (
            timed_out.get(),
            early.get(),
            wrong.get(),
            lates,
            sem.available(),
            ch.len(),
        )
    });
    assert_eq!(outcome.0, MANY, "{outcome:?}");
    assert_eq!(outcome.1, 0, "woke before their timeout: {outcome:?}");
    assert_eq!(outcome.2, 0);
    assert_eq!(outcome.3, (Ok(()), Ok(5), Ok(()), Ok(0)));
    assert_eq!(outcome.4, 1, "the permit came back");
    assert_eq!(outcome.5, 0);
}

/// Releases timed to fire at the same deadline as the waiters' timeouts:
/// whatever wins each race, no permit is lost (taken + left == released).
#[test]
fn permits_released_at_the_waiters_deadline_are_never_lost() {
    let outcome = greenhub::run(|| {
        let sem = Semaphore::new(0);
        let got = Rc::new(Cell::new(0usize));
        let n = 4_000;
        let t = Duration::from_millis(20);
        let deadline = std::time::Instant::now() + t;
        let mut all = Vec::new();
        for _ in 0..n {
            let (sem, got) = (sem.clone(), got.clone());
            all.push(greenhub::spawn(move || {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if let Ok(p) = sem.acquire_timeout(left) {
                    got.set(got.get() + 1);
                    std::mem::forget(p); // keep it: count it as taken
                }
            }));
        }
        let releaser = {
            let sem = sem.clone();
            greenhub::spawn(move || {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                greenhub::sleep(left);
                for _ in 0..n / 2 {
                    sem.release();
                }
            })
        };
        for w in all {
            w.join().unwrap();
        }
        releaser.join().unwrap();
        (got.get(), sem.available(), n / 2)
    });
    assert_eq!(outcome.0 + outcome.1, outcome.2, "{outcome:?}");
}

// ---------------------------------------------------------------------------
// Neighbours that held when written (kept as evidence)
// ---------------------------------------------------------------------------

/// TCP's version of the OOB case: a read stops at urgent data's mark; the
/// bytes after it must still be read (TCP_INQ says they are there).
#[test]
fn tcp_read_stopped_at_urgent_mark_does_not_sleep_through_the_rest() {
    let outcome = greenhub::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        a.write_all(b"abc").unwrap();
        // SAFETY: a valid fd and a one-byte buffer.
        let sent = unsafe { libc::send(a.as_raw_fd(), b"X".as_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!(sent, 1);
        a.write_all(b"def").unwrap();
        greenhub::sleep(Duration::from_millis(5));
        b.set_read_timeout(Some(HANG)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 6 {
            match (&b).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("after {:?}: {e}", String::from_utf8_lossy(&got))),
            }
        }
        Ok(got)
    });
    assert_eq!(outcome, Ok(b"abcdef".to_vec()));
}

/// Two pending connections, edges consumed, one accept: the second accept
/// (and a select on the listener) must not park.
#[test]
fn second_pending_connection_is_accepted_without_a_new_edge() {
    let outcome = greenhub::run(|| {
        let listener = greenhub::net::UnixListener::bind(
            std::env::temp_dir().join(format!("rv11a-{}.sock", std::process::id())),
        );
        let path = std::env::temp_dir().join(format!("rv11a-{}.sock", std::process::id()));
        let listener = match listener {
            Ok(l) => l,
            Err(_) => {
                let _ = std::fs::remove_file(&path);
                greenhub::net::UnixListener::bind(&path).unwrap()
            }
        };
        let c1 = UnixStream::connect(&path).unwrap();
        let c2 = UnixStream::connect(&path).unwrap();
        greenhub::sleep(Duration::from_millis(5));
        let first = listener.accept().is_ok();
        let sel_ok = greenhub::timeout(HANG, || {
            let mut sel = Select::new();
            sel.readable(&listener);
            let ok = sel.wait().is_ok();
            ok
        });
        let second = greenhub::timeout(HANG, || listener.accept().is_ok());
        let _ = std::fs::remove_file(&path);
        drop((c1, c2));
        (first, sel_ok, second)
    });
    assert_eq!(outcome, (true, Ok(true), Ok(true)));
}

/// Same stale-socket defect through a writable arm: a socket of a finished
/// hub whose write side is known full.
#[test]
fn select_writable_on_a_socket_kept_from_an_earlier_run_does_not_hang() {
    let (old_a, old_b) = greenhub::run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_write_timeout(Some(Duration::from_millis(1))).unwrap();
        let chunk = vec![0u8; 65536];
        while (&a).write(&chunk).is_ok() {} // until full: write side not ready
        (a, b)
    });
    let hung = greenhub::run(move || {
        let sel_outcome = greenhub::timeout(HANG, || {
            let mut sel = Select::new();
            sel.writable(&old_a);
            let ok = sel.wait().map(|s| s.index()).is_ok();
            ok
        });
        drop(old_b);
        sel_outcome.is_err()
    });
    assert!(!hung, "select.writable on a finished hub's socket hung");
}
