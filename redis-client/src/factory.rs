//! [`ClientFactory`]: one recipe for clients, shared by every hub of a
//! `greenhub::Runtime`. A [`Client`] and its pool belong to the hub that made
//! them (their sockets are registered with that hub), so a runtime of N hubs
//! runs N clients, each with its own pool; the factory is the `Send + Sync`
//! part they share, and [`PoolStats`] add up to the runtime's totals.

use std::iter::Sum;
use std::ops::Add;

use crate::client::Client;
use crate::error::Result;
use crate::pool::{PoolConfig, PoolStats};
use crate::url::ConnectionInfo;

/// The connection settings and pool behaviour every hub's client is made
/// with: `Send`, `Sync` and cheap to clone, so one factory goes to every hub.
///
/// ```no_run
/// use greenhub_redis::prelude::*;
/// use greenhub_redis::{ClientFactory, PoolStats};
/// let factory = ClientFactory::open("redis://127.0.0.1:6379").unwrap();
/// let runtime = greenhub::Runtime::builder().hubs(2).build().unwrap();
/// let handle = runtime.handle();
/// let total: PoolStats = runtime.block_on(move || {
///     let per_hub: Vec<_> = (0..2)
///         .map(|hub| {
///             let factory = factory.clone();
///             handle.spawn_on(hub, move || {
///                 let mut redis = factory.client(); // this hub's own pool
///                 redis.incr("hits").unwrap();
///                 redis.stats()
///             }).unwrap()
///         })
///         .collect();
///     per_hub.into_iter().map(|job| job.join().unwrap()).sum()
/// });
/// assert_eq!(total.created, 2, "one connection per hub");
/// ```
#[derive(Clone, Debug)]
pub struct ClientFactory {
    info: ConnectionInfo,
    config: PoolConfig,
}

impl ClientFactory {
    /// A factory for `url` with an unbounded pool per client, as
    /// [`Client::open`].
    pub fn open(url: &str) -> Result<ClientFactory> {
        Ok(ClientFactory::new(
            ConnectionInfo::from_url(url)?,
            PoolConfig::default(),
        ))
    }

    /// A factory with explicit settings; every client gets its own pool
    /// with `config` (a `max_connections` bounds each hub, not the sum).
    pub fn new(info: ConnectionInfo, config: PoolConfig) -> ClientFactory {
        ClientFactory { info, config }
    }

    /// The connection settings.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// A new client with a pool of its own. Call it once per hub and share
    /// that client's clones among the hub's coroutines: each call makes
    /// another pool.
    pub fn client(&self) -> Client {
        Client::with_config(self.info.clone(), self.config.clone())
    }
}

impl Add for PoolStats {
    type Output = PoolStats;

    fn add(self, other: PoolStats) -> PoolStats {
        PoolStats {
            created: self.created + other.created,
            in_use: self.in_use + other.in_use,
            available: self.available + other.available,
        }
    }
}

impl Sum for PoolStats {
    /// The runtime's totals from each hub's pool.
    fn sum<I: Iterator<Item = PoolStats>>(stats: I) -> PoolStats {
        stats.fold(PoolStats::default(), Add::add)
    }
}
