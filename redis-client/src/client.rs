//! [`Client`]: redis-py's `Redis`. It holds a pool and runs each command on a
//! connection checked out for that one call, so one client (or its clones) is
//! shared by any number of coroutines. Commands come from the traits in
//! `commands/` (`use greenhub_redis::prelude::*`).

use crate::cmd::{cmd, Cmd, ConnectionLike};
use crate::error::Result;
use crate::pool::{Pool, PoolConfig, PoolStats, PooledConnection};
use crate::pubsub::PubSub;
use crate::resp::Value;
use crate::types::{FromValue, ToArg};
use crate::url::ConnectionInfo;

/// A Redis client: a connection pool and the commands. Cheap to clone.
///
/// ```no_run
/// use greenhub_redis::prelude::*;
/// greenhub::run(|| {
///     let mut redis = greenhub_redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
///     redis.set("greeting", "hello").unwrap();
///     let greeting: String = redis.get("greeting").unwrap();
///     let popped = redis.brpop(&["list"], 1.0).unwrap(); // None after a second
///     assert!(popped.is_none());
///     println!("{greeting}: {:?}", redis.pool().stats());
/// });
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    pool: Pool,
}

impl Client {
    /// A client for the server at `url` (`redis://...` or `unix://...`) with
    /// an unbounded pool. Connects lazily, at the first command.
    pub fn open(url: &str) -> Result<Client> {
        Ok(Client::with_config(
            ConnectionInfo::from_url(url)?,
            PoolConfig::default(),
        ))
    }

    /// A client with explicit connection settings and pool behaviour.
    pub fn with_config(info: ConnectionInfo, config: PoolConfig) -> Client {
        Client {
            pool: Pool::new(info, config),
        }
    }

    /// The pool, for its [`stats`](Pool::stats).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Created, in use and available connections.
    pub fn stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Opens the pool's `min_idle` connections now (see [`Pool::fill`]).
    pub fn fill(&self) -> Result<usize> {
        self.pool.fill()
    }

    /// Checks a connection out for several commands in a row (WATCH needs one).
    pub fn get_connection(&self) -> Result<PooledConnection> {
        self.pool.get()
    }

    /// A command bound to this client: `client.cmd("SET").arg("k").arg("v").query::<()>()`.
    pub fn cmd(&self, name: &str) -> BoundCmd<'_> {
        BoundCmd {
            client: self,
            cmd: cmd(name),
        }
    }

    /// A pub/sub session on a dedicated connection (not from the pool).
    pub fn pubsub(&self) -> Result<PubSub> {
        PubSub::open(self.pool.info())
    }
}

impl ConnectionLike for Client {
    fn req_command(&mut self, cmd: &Cmd) -> Result<Value> {
        self.pool.get()?.req_command(cmd)
    }

    fn req_pipeline(&mut self, cmds: &[Cmd], atomic: bool) -> Result<Vec<Value>> {
        self.pool.get()?.req_pipeline(cmds, atomic)
    }
}

/// A [`Cmd`] being built for a particular [`Client`].
#[derive(Debug)]
pub struct BoundCmd<'a> {
    client: &'a Client,
    cmd: Cmd,
}

impl BoundCmd<'_> {
    /// Appends one argument.
    pub fn arg(&mut self, arg: impl ToArg) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// Runs the command on a pooled connection and converts the reply.
    pub fn query<T: FromValue>(&self) -> Result<T> {
        T::from_value(self.client.pool.get()?.req_command(&self.cmd)?)
    }
}
