//! [`Client`]: redis-py's `Redis`. It holds a pool and runs each command on a
//! connection checked out for that one call, so one client (or its clones) is
//! shared by any number of coroutines. Commands come from the traits in
//! `commands/` (`use greenhub_redis::prelude::*`).

use std::rc::Rc;

use crate::cache::{Cache, CacheConfig, CacheStats};
use crate::cmd::{cmd, Cmd, ConnectionLike};
use crate::error::Result;
use crate::pool::{Pool, PoolConfig, PoolStats, PooledConnection};
use crate::pubsub::PubSub;
use crate::resp::Value;
use crate::restore::OrphanedItem;
use crate::retry::{is_repeatable, refused_while_loading, RetryPolicy};
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
    /// The local cache of read replies, with [`Client::with_cache`].
    cache: Option<Rc<Cache>>,
    /// What is retried after a lost connection or a `LOADING` refusal
    /// ([`Client::with_retry`]).
    retry: RetryPolicy,
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
            cache: None,
            retry: RetryPolicy::default(),
        }
    }

    /// A client with a local cache of read replies (client-side caching):
    /// GET, HGET, HGETALL, LRANGE, SMEMBERS, ZSCORE and the other read
    /// commands of one key run through the client itself are answered from
    /// the cache for as long as the server has not said the key changed.
    /// The server says so through `CLIENT TRACKING ... REDIRECT` to a
    /// connection of the cache's own, opened at the first command; every
    /// pooled connection is set up to be tracked. Pipelines, transactions and
    /// checked-out connections bypass the cache.
    ///
    /// ```no_run
    /// use greenhub_redis::prelude::*;
    /// use greenhub_redis::{CacheConfig, Client, ConnectionInfo, PoolConfig};
    /// greenhub::run(|| {
    ///     let info = ConnectionInfo::from_url("redis://127.0.0.1:6379").unwrap();
    ///     let mut redis = Client::with_cache(info, PoolConfig::default(), CacheConfig::default());
    ///     redis.set("motd", "hello").unwrap();
    ///     let first: String = redis.get("motd").unwrap(); // from the server
    ///     let again: String = redis.get("motd").unwrap(); // from the cache
    ///     assert_eq!(redis.cache_stats().unwrap().hits, 1);
    ///     # let _ = (first, again);
    /// });
    /// ```
    pub fn with_cache(info: ConnectionInfo, config: PoolConfig, cache: CacheConfig) -> Client {
        Client {
            pool: Pool::new(info, config),
            cache: Some(Rc::new(Cache::new(cache))),
            retry: RetryPolicy::default(),
        }
    }

    /// This client (and its clones made after) with `policy` for commands
    /// whose connection is lost: by default ([`RetryPolicy::default`]) a
    /// command is sent again within 2 s when nothing had been sent, or when
    /// it only reads or was marked [`Cmd::idempotent`]; never an INCR, a
    /// push or a pop that may have run. A command a restarting server
    /// refused with `LOADING` (and its own message) ran nothing and is sent
    /// again too; each attempt after that is judged by the same rule, so a
    /// resent INCR whose reply is lost is not sent a third time. A pipeline
    /// refused only in part is returned as it came.
    /// [`RetryPolicy::never`] turns it off.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Client {
        self.retry = policy;
        self
    }

    /// Sets what receives an item that a blocking pop (BRPOP, BLMOVE,
    /// BZPOPMIN, ...) took from the server for a caller that was gone:
    /// killed, cut by a `timeout`, or dropped. Without a callback the reaper
    /// puts the item back where it was taken from (`docs/reliability.md`,
    /// "Kill-safe blocking commands"). The callback runs in the reaper's
    /// coroutine and may park.
    pub fn on_orphaned_item(&self, handler: impl Fn(OrphanedItem) + 'static) {
        self.pool.reaper().set_on_orphaned(Rc::new(handler));
    }

    /// What the local cache did, for a client made [`with_cache`](Client::with_cache).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|cache| cache.stats())
    }

    /// Runs `cmd` through the cache.
    fn cached(&self, cache: &Rc<Cache>, cmd: &Cmd) -> Result<Value> {
        let redirect = cache.redirect(self.pool.info())?;
        self.pool.set_tracking_redirect(redirect);
        match cache.lookup(cmd) {
            None => self.pool.get()?.req_command(cmd),
            Some(Ok(value)) => Ok(value),
            Some(Err(ticket)) => {
                let mut conn = self.pool.get()?;
                let reply = conn.req_command(cmd)?;
                ticket.finish(&reply, conn.tracking_redirect());
                Ok(reply)
            }
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

    /// Sets what receives pub/sub messages that arrive out of band on the
    /// pool's connections: on a RESP3 connection (`?protocol=3`) that was
    /// subscribed with a plain command, messages are pushes, never replies.
    /// (A [`PubSub`] session reads its own messages.) Without a handler they
    /// are logged and dropped.
    pub fn on_message(&self, handler: impl Fn(crate::Message) + 'static) {
        self.pool.handlers().set_message(handler);
    }

    /// Sets what receives `invalidate` pushes on the pool's connections
    /// (RESP3 after `CLIENT TRACKING ON`): the keys whose values changed,
    /// `None` for all of them. Without a handler they are logged and dropped.
    /// Client-side caching ([`Client::with_cache`]) needs none of this: it
    /// follows invalidations on its own connection.
    pub fn on_invalidate(&self, handler: impl Fn(crate::Invalidated) + 'static) {
        self.pool.handlers().set_invalidate(handler);
    }

    /// A pub/sub session on a dedicated connection (not from the pool).
    pub fn pubsub(&self) -> Result<PubSub> {
        PubSub::open(self.pool.info())
    }
}

impl ConnectionLike for Client {
    fn req_command(&mut self, cmd: &Cmd) -> Result<Value> {
        let once = || match &self.cache {
            Some(cache) => self.cached(cache, cmd),
            None => self.pool.get()?.req_command(cmd),
        };
        self.retry.run(|| is_repeatable(cmd), once)
    }

    fn req_pipeline(&mut self, cmds: &[Cmd], atomic: bool) -> Result<Vec<Value>> {
        let once = || {
            let replies = self.pool.get()?.req_pipeline(cmds, atomic)?;
            refused_while_loading(replies, atomic)
        };
        self.retry.run(|| cmds.iter().all(is_repeatable), once)
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

    /// Runs the command on a pooled connection (or the client's cache) and
    /// converts the reply.
    pub fn query<T: FromValue>(&self) -> Result<T> {
        T::from_value(self.client.clone().req_command(&self.cmd)?)
    }
}
