//! The bottom layer: everything the runtime asks of the machine, and all of
//! its `unsafe` code. It knows nothing of tasks or hubs.
//!
//! | file | what |
//! | --- | --- |
//! | `stack.rs` | stacks carved from big regions, 64 KiB guard bands, pooling and trimming |
//! | `switch.rs` | the corosensei coroutine type and `suspend` |
//! | `running.rs` | the running coroutine's record; the SIGSEGV handler that names a coroutine that overflowed its stack |
//! | `prefetch.rs` | cache hints for the memory a coroutine's next resume touches |
//! | `os.rs` | page size, `listen` backlog, `mincore`, `SO_REUSEPORT` listeners, `O_NONBLOCK`, `poll(2)` probes |
//! | `signal.rs` | the Unix signal handler: one byte into a self-pipe |
//! | `scoped.rs` | `run`'s borrowing `main`: a lifetime erased, and checked |
//! | `fd.rs` | `FromRawFd` for the API's fd types: raw fd to `OwnedFd` |
//!
//! The poller is mio's, used as it is (safe) by `sources/reactor.rs`.

pub(crate) mod fd;
pub(crate) mod os;
pub(crate) mod prefetch;
pub(crate) mod running;
pub(crate) mod scoped;
pub(crate) mod signal;
pub(crate) mod stack;
pub(crate) mod switch;
