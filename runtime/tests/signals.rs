//! Unix signals in coroutines: every waiter of a signal wakes, signals
//! caught while nobody waits are kept, and waiting is not a deadlock.
//! Each test uses its own signal, since they share one process.

use std::time::Duration;

use greenhub::signal::{self, Signals};

/// Sends `signal` to this process, as `kill` from a shell would.
fn raise(signal: i32) {
    // SAFETY: kill(2) with our own pid and a signal number has no memory effects.
    let rc = unsafe { libc::kill(libc::getpid(), signal) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

/// Waits (with a generous cap) until `n` coroutines are parked on
/// something other than sockets and sleeps: here, on a signal.
fn until_parked(n: usize) {
    for _ in 0..5000 {
        if greenhub::stats().parked_other >= n {
            return;
        }
        greenhub::sleep(Duration::from_millis(1));
    }
    panic!("{n} coroutines never parked");
}

#[test]
fn sigusr1_to_the_process_wakes_both_of_its_waiters() {
    let woken = greenhub::run(|| {
        let waiters: Vec<_> = (0..2)
            .map(|_| greenhub::spawn(|| signal::wait(&[libc::SIGUSR1]).unwrap()))
            .collect();
        until_parked(2);
        raise(libc::SIGUSR1);
        waiters
            .into_iter()
            .map(|w| w.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(woken, [libc::SIGUSR1, libc::SIGUSR1]);
}

#[test]
fn a_signal_caught_while_nobody_waits_is_kept_for_the_next_recv() {
    greenhub::run(|| {
        let signals = Signals::new(&[libc::SIGUSR2, libc::SIGWINCH]).unwrap();
        assert_eq!(signals.try_recv(), None);
        raise(libc::SIGWINCH);
        raise(libc::SIGUSR2);
        // Both arrive through the helper thread, each exactly once. Their
        // order is the kernel's: two signals pending at once on a thread
        // other than the raiser's are delivered lowest number first.
        let mut got = [
            signals.recv_timeout(Duration::from_secs(5)).unwrap(),
            signals.recv_timeout(Duration::from_secs(5)).unwrap(),
        ];
        got.sort();
        assert_eq!(got, [libc::SIGUSR2, libc::SIGWINCH]);
        assert_eq!(signals.try_recv(), None);
    });
}

#[test]
fn waiting_for_a_signal_is_not_a_deadlock_and_honours_timeouts() {
    greenhub::run(|| {
        let err = greenhub::timeout(Duration::from_millis(20), || signal::wait(&[libc::SIGALRM]));
        assert!(
            err.is_err(),
            "the timeout ended the wait, no deadlock was reported"
        );
        let signals = Signals::new(&[libc::SIGALRM]).unwrap();
        let err = signals.recv_timeout(Duration::from_millis(5)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    });
}

#[test]
fn a_killed_waiter_unwinds_and_the_others_still_get_the_signal() {
    greenhub::run(|| {
        let doomed = greenhub::spawn(|| signal::wait(&[libc::SIGPROF]));
        let survivor = greenhub::spawn(|| signal::wait(&[libc::SIGPROF]).unwrap());
        until_parked(2);
        doomed.kill();
        assert!(matches!(doomed.join(), Err(greenhub::JoinError::Killed)));
        raise(libc::SIGPROF);
        assert_eq!(survivor.join().unwrap(), libc::SIGPROF);
    });
}

#[test]
fn signals_that_cannot_be_caught_are_refused() {
    for signal in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, 1000] {
        let err = Signals::new(&[signal]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{signal}");
    }
}
