//! The toolkit's edges, from its review: a link on a finished coroutine
//! that panics, an `output()` abandoned by a timeout, an `Async` over a
//! borrowed fd dropped. Each test states what must hold.

use std::os::fd::AsFd;
use std::time::Duration;

use greenhub::io::Async;

/// Regression (found in review): on a coroutine that had already ended, a
/// link ran at once with no `catch_unwind`, so its panic unwound the caller
/// of `link` (the doc says a panic in the link stops only the link).
#[test]
fn a_panicking_link_on_a_finished_coroutine_stops_only_the_link() {
    let caller_survived = greenhub::run(|| {
        let worker = greenhub::spawn(|| 1);
        while !worker.is_finished() {
            greenhub::sleep(Duration::from_millis(1));
        }
        let linked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            worker.link(|_| panic!("a link that panics"));
        }));
        linked.is_ok()
    });
    assert!(
        caller_survived,
        "the link's panic unwound the caller of link()"
    );
}

/// Regression (found in review): `Command::output()` cut short by a
/// `timeout` dropped the `Child` without killing or reaping it, and the
/// child stayed a zombie for the life of the process. The call now kills
/// and reaps a child whose wait it abandons.
#[test]
fn an_output_abandoned_by_a_timeout_leaves_no_zombie_behind() {
    let pid = greenhub::run(|| {
        let mut command = greenhub::process::Command::new("sh");
        command.args(["-c", "echo $$; sleep 0.3"]);
        command.stdout(std::process::Stdio::piped());
        // Learn the pid through the child's own echo, then abandon output().
        let result = greenhub::timeout(Duration::from_millis(100), || command.output());
        assert!(
            result.is_err() || result.as_ref().unwrap().is_err(),
            "output finished early?"
        );
        greenhub::sleep(Duration::from_secs(2)); // the child has exited by now
                                                 // Our exited `sh` children that nobody reaped, seen twice 500 ms
                                                 // apart (a sibling test's child between exit and wait is not one).
        let first = zombies();
        greenhub::sleep(Duration::from_millis(500));
        let second = zombies();
        first
            .into_iter()
            .filter(|z| second.contains(z))
            .collect::<Vec<_>>()
    });
    assert!(
        pid.is_empty(),
        "zombie children left by an abandoned output(): {pid:?}"
    );
}

fn zombies() -> Vec<std::ffi::OsString> {
    let me = std::process::id();
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = after.1.split(' ').collect();
        if fields[0] == "Z" && fields[1] == me.to_string() && stat.contains("(sh)") {
            zombies.push(entry.file_name());
        }
    }
    zombies
}

/// Regression (found in review): `Async::new` sets `O_NONBLOCK`, and only
/// `into_inner` put it back; dropped instead, an `Async` over an fd it does
/// not own (a `BorrowedFd`, stdin, a TTY) left the shared file description
/// non-blocking for every other user of it.
#[test]
fn dropping_an_async_over_a_borrowed_fd_puts_o_nonblock_back() {
    let (reader, _writer) = std::io::pipe().unwrap();
    let nonblocking = greenhub::run(|| {
        let wrapped = Async::new(reader.as_fd()).unwrap();
        drop(wrapped);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&reader);
        // SAFETY: F_GETFL only reads the flags of `fd`, which `reader` owns
        // and keeps open for the call; std has no way to read O_NONBLOCK.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        flags & libc::O_NONBLOCK != 0
    });
    assert!(
        !nonblocking,
        "the borrowed pipe was left O_NONBLOCK after the Async dropped"
    );
}
