//! Synchronisation between coroutines of one hub, built on the same park and
//! wake mechanism as sockets and timers: a waiter parks on a `WaitQueue`,
//! never polls. See `docs/architecture.md`, "Parking".

mod semaphore;

pub use semaphore::{AcquireError, Semaphore, SemaphorePermit};
