//! `set_read_timeout(Some(Duration::MAX))` is accepted (only zero is
//! refused), and reads honour it through `Deadline::start`, which uses
//! `checked_add`. But `Stream::wait_readable` (`net/stream.rs`) computes its
//! deadline with `Instant::now() + t`, which panics with "overflow when
//! adding duration to instant" before it even looks at the socket; so do
//! `TcpStream::connect_timeout` and `UnixStream::connect_timeout`
//! (`net/tcp.rs`, `net/unix.rs`: `Instant::now() + timeout`).

use std::io::Write;
use std::time::Duration;

use greenhub::net::UnixStream;

#[test]
fn wait_readable_with_a_read_timeout_of_duration_max_panics_with_instant_overflow() {
    let outcome = std::panic::catch_unwind(|| {
        greenhub::run(|| {
            let (mut a, b) = UnixStream::pair().unwrap();
            a.write_all(b"ready").unwrap();
            b.set_read_timeout(Some(Duration::MAX)).unwrap();
            b.wait_readable().map_err(|err| err.to_string())
        })
    });
    assert!(matches!(outcome, Ok(Ok(()))), "wait_readable panicked or failed");
}
