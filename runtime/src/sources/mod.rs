//! The wake sources: each owns its waiters and, when it fires, hands them
//! back (or wakes them through the scheduler it is given). None calls the
//! hub; only the hub knows them all.
//!
//! | file | source |
//! | --- | --- |
//! | `reactor.rs` | socket readiness, cached per token and direction |
//! | `timers.rs` | deadlines, ordered by (deadline, sequence) |
//! | `wait_queue.rs` | FIFO queues with O(1) removal: join and every sync primitive |
//! | `inbox.rs` | posts from other OS threads, announced by one coalesced wake |
//! | `helpers.rs` | helper-thread lanes for `unblock` |
//! | `signals.rs` | Unix signal subscriptions, woken by one helper thread reading the handler's self-pipe |

pub(crate) mod helpers;
pub(crate) mod inbox;
pub(crate) mod reactor;
pub(crate) mod signals;
pub(crate) mod timers;
pub(crate) mod wait_queue;
