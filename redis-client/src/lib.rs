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
//!          -> resp::parse                 resp.rs            pure bytes -> Value
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
//! | [`resp`] | RESP2/RESP3 parser and encoder; no I/O |
//! | `types.rs` | [`ToArg`], [`FromValue`]: Rust values in and out |
//! | `cmd.rs` | [`Cmd`], [`ConnectionLike`], blocking-command timeouts |
//! | `url.rs` | [`ConnectionInfo`] from `redis://` and `unix://` URLs |
//! | `connection.rs` | [`Connection`]: socket, buffers, handshake |
//! | `pool.rs` | [`Pool`]: checkout, limits, discarding broken connections |
//! | `client.rs` | [`Client`]: a pool plus commands |
//! | `commands/` | typed methods, one trait per family |
//! | `pipeline.rs` | [`Pipeline`], MULTI/EXEC, [`transaction`] |
//! | `pubsub.rs`, `script.rs` | [`PubSub`], [`Script`] |
//! | [`cluster`] | [`ClusterClient`](cluster::ClusterClient): Redis Cluster, a pool per node |
//!
//! The design is explained in `docs/redis-client.md`.

mod client;
pub mod cluster;
mod cmd;
pub mod commands;
mod connection;
mod error;
mod pipeline;
mod pool;
mod pubsub;
pub mod resp;
mod script;
mod types;
mod url;

pub use client::{BoundCmd, Client};
pub use cmd::{cmd, Cmd, ConnectionLike};
pub use connection::Connection;
pub use error::{Error, Result, ServerError};
pub use pipeline::{pipe, transaction, Pipeline};
pub use pool::{Pool, PoolConfig, PoolStats, PooledConnection, WhenFull};
pub use pubsub::{Message, PubSub};
pub use resp::Value;
pub use script::{Invocation, Script};
pub use types::{FromValue, ToArg};
pub use url::{Addr, ConnectionInfo};

/// Every command trait, for `use greenhub_redis::prelude::*`.
pub mod prelude {
    pub use crate::commands::{
        HashCommands, KeyCommands, ListCommands, ServerCommands, SetCommands, SortedSetCommands,
        StringCommands,
    };
    pub use crate::ConnectionLike;
}
