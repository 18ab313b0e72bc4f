//! greenhub-redis: a Redis client in plain blocking style. In a greenhub
//! coroutine it runs on cooperative sockets, so thousands of coroutines share
//! one thread, each waiting on its own connection; on a plain OS thread the
//! same code runs on `std::net` sockets.
//!
//! # How a command flows
//!
//! ```text
//!  client.brpop(&["list"], 1.0)          commands/lists.rs  builds a Cmd
//!    -> Client::req_command               client.rs          checks a connection out
//!      -> Pool::get                       pool.rs            LIFO idle list, or connect
//!        -> Connection::req_command       connection.rs      encode, write, read
//!          -> Decoder::decode             resp/decode.rs     pure bytes -> Value
//!    <- FromValue                         types.rs           Value -> Option<(key, value)>
//!    (the connection returns to the pool when the call ends, unless broken)
//! ```
//!
//! # Example
//!
//! ```no_run
//! use greenhub_redis::prelude::*;
//!
//! greenhub::run(|| {
//!     let redis = greenhub_redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
//!     let waiters: Vec<_> = (0..500)
//!         .map(|_| {
//!             let mut redis = redis.clone();
//!             greenhub::spawn(move || redis.brpop(&["list"], 1.0))
//!         })
//!         .collect();
//!     greenhub::sleep(std::time::Duration::from_millis(500));
//!     println!("{:?}", redis.pool().stats()); // created: 500, in_use: 500, available: 0
//!     for waiter in waiters {
//!         assert_eq!(waiter.join().unwrap().unwrap(), None);
//!     }
//! });
//! ```
//!
//! # Module map
//!
//! | module | role |
//! | --- | --- |
//! | [`resp`] | RESP2/RESP3 resumable parser and encoder; no I/O |
//! | `types.rs` | [`ToArg`], [`FromValue`]: Rust values in and out |
//! | `cmd.rs` | [`Cmd`], [`ConnectionLike`], blocking-command timeouts |
//! | `url.rs` | [`ConnectionInfo`] from `redis://`, `rediss://` and `unix://` URLs |
//! | `stream.rs` | the socket: cooperative in a hub, std's on a thread; [`Connection`]s stay in their context |
//! | `tls.rs` | rustls over that socket for `rediss://` (feature `tls`, `docs/tls.md`) |
//! | `reader.rs` | bytes to frames, with the one rule for reads on edge-triggered readiness |
//! | `session.rs` | what each command sent does to the session; the baseline the pool checks |
//! | `framing.rs` | which frame answers which command; commands refused up front |
//! | `push.rs` | out-of-band frames (RESP3 pushes, pub/sub messages) to their handlers |
//! | `connection.rs` | [`Connection`]: handshake, send, read each command's reply |
//! | `pool.rs` | [`Pool`]: checkout, limits, discarding broken connections |
//! | `reaper.rs`, `restore.rs` | a blocking command cut short: end its block, put a popped item back ([`ReaperStats`], [`OrphanedItem`]) |
//! | `retry.rs` | [`RetryPolicy`]: retry after a lost connection or a `LOADING` refusal only what is safe to repeat |
//! | `client.rs` | [`Client`]: a pool plus commands |
//! | `cache.rs` | client-side caching: [`Client::with_cache`], invalidated by the server |
//! | `commands/` | typed methods, one trait per family (strings to streams) |
//! | `pipeline.rs` | [`Pipeline`], MULTI/EXEC, [`transaction`] |
//! | `pubsub.rs`, `script.rs` | [`PubSub`], [`Script`] |
//! | [`cluster`] | [`ClusterClient`](cluster::ClusterClient): Redis Cluster, a pool per node |
//!
//! The design is explained in `docs/redis-client.md`.

mod cache;
mod client;
pub mod cluster;
mod cmd;
pub mod commands;
mod connection;
mod error;
mod factory;
mod framing;
mod pipeline;
mod pool;
mod pubsub;
mod push;
mod reader;
mod reaper;
pub mod resp;
mod restore;
mod retry;
mod script;
mod session;
mod stream;
#[cfg(feature = "tls")]
mod tls;
mod types;
mod url;

pub use cache::{CacheConfig, CacheStats};
pub use client::{BoundCmd, Client};
pub use cmd::{cmd, read_deadline, Cmd, ConnectionLike, SERVER_TICK};
pub use connection::Connection;
pub use error::{Error, Result, ServerError};
pub use factory::ClientFactory;
pub use pipeline::{pipe, transaction, Pipeline};
pub use pool::{Discards, Pool, PoolConfig, PoolStats, PooledConnection, WhenFull};
pub use pubsub::{Message, PubSub};
pub use push::Invalidated;
pub use reaper::ReaperStats;
pub use resp::Value;
pub use restore::OrphanedItem;
pub use retry::RetryPolicy;
pub use script::{Invocation, Script};
#[cfg(feature = "tls")]
pub use tls::DEFAULT_HANDSHAKE_TIMEOUT;
pub use types::{FromValue, ToArg};
pub use url::{Addr, ConnectionInfo, Protocol, TlsOptions};

/// Every command trait, for `use greenhub_redis::prelude::*`.
pub mod prelude {
    pub use crate::commands::{
        HashCommands, KeyCommands, ListCommands, ServerCommands, SetCommands, SortedSetCommands,
        StreamCommands, StringCommands,
    };
    pub use crate::ConnectionLike;
}

// The README's examples, compiled (and run, unless marked `no_run`) as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
