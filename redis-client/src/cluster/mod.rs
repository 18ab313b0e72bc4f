//! Redis Cluster: [`ClusterClient`] runs the same command traits,
//! pipelines and scripts as [`Client`](crate::Client), over a pool per node,
//! and takes care of where each key lives and of the cluster moving it.
//!
//! # How a command flows
//!
//! ```text
//!  cluster.incr("counter")                 commands/strings.rs  builds a Cmd
//!    -> ClusterClient::req_command          mod.rs         one command = a batch of one
//!      -> Shared::plan                      routing.rs     keys (keys.rs) -> slots (slots.rs)
//!                                                          -> Slot / AnyMaster / AllMasters / Split
//!                                                          (split.rs cuts and recombines)
//!      -> Batch::add                        pipeline.rs    commands -> units, how replies come back
//!      -> Shared::execute                   dispatch.rs    rounds: resolve on the slot map
//!                                                          (topology.rs), group by node, send,
//!                                                          judge MOVED / ASK / TRYAGAIN (redirect.rs)
//!        -> send_all                        send.rs        a coroutine per node, one write each
//!        -> Pool::get, req_pipeline         nodes.rs       one pool per node
//!        -> Shared::refresh                 refresh.rs     one CLUSTER SHARDS load at a time
//!    <- Batch::run                          pipeline.rs    replies in the caller's order
//! ```
//!
//! # Example
//!
//! ```no_run
//! use greenhub_redis::prelude::*;
//! use greenhub_redis::cluster::ClusterClient;
//!
//! greenhub::run(|| {
//!     let mut cluster = ClusterClient::open(&["redis://127.0.0.1:7000"]).unwrap();
//!     cluster.set("user:1", "ada").unwrap();
//!     cluster.mset(&[("a", 1), ("b", 2), ("c", 3)]).unwrap(); // three slots, split
//!     let values: Vec<Option<i64>> = cluster.mget(&["a", "b", "c"]).unwrap();
//!     assert_eq!(values, [Some(1), Some(2), Some(3)]);
//!     println!("{:?}", cluster.stats().total);
//! });
//! ```
//!
//! What the user sees of redirections, resharding and failover is described
//! in `docs/cluster.md`.

mod builder;
mod command_table;
mod dispatch;
mod keys;
mod nodes;
mod pipeline;
mod pubsub;
mod redirect;
mod refresh;
mod routing;
mod scan;
mod send;
mod slots;
mod split;
mod topology;
mod transaction;

pub use builder::{
    ClusterBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_REDIRECTS, DEFAULT_REFRESH_INTERVAL,
    DEFAULT_RETRY_TIMEOUT,
};
pub use nodes::{ClusterStats, NodeStats};
pub use pubsub::ShardedPubSub;
pub use scan::ClusterScan;
pub use slots::{key_slot, SLOT_COUNT};
pub use topology::NodeAddr;

/// Whether the built-in table (Redis 7's `readonly` flags) says `cmd` only
/// reads: the retry policy's test of "safe to repeat" (`retry.rs`).
pub(crate) fn is_read_only(cmd: &crate::cmd::Cmd) -> bool {
    keys::lookup(cmd.name()).is_some_and(|(_, readonly)| readonly)
}

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use builder::Config;
use nodes::Nodes;
use pipeline::Batch;
use refresh::{Hint, RefreshState};
use routing::Learned;
use topology::Topology;

use crate::cmd::{cmd, Cmd, ConnectionLike};
use crate::error::{Error, Result};
use crate::pool::PooledConnection;
use crate::pubsub::PubSub;
use crate::resp::Value;
use crate::types::{FromValue, ToArg};

/// A Redis Cluster client: a pool per node, the slot map, and the commands.
/// Cheap to clone (clones share everything); one hub's coroutines share it.
///
/// ```no_run
/// use greenhub_redis::prelude::*;
/// use greenhub_redis::cluster::ClusterClient;
/// greenhub::run(|| {
///     let mut cluster = ClusterClient::open(&["redis://127.0.0.1:7000"]).unwrap();
///     let workers: Vec<_> = (0..100)
///         .map(|i| {
///             let mut cluster = cluster.clone();
///             greenhub::spawn(move || cluster.incr(format!("counter:{i}")))
///         })
///         .collect();
///     for worker in workers {
///         assert_eq!(worker.join().unwrap().unwrap(), 1);
///     }
///     for node in cluster.stats().nodes {
///         println!("{} {:?}", node.addr, node.pool);
///     }
/// });
/// ```
#[derive(Clone, Debug)]
pub struct ClusterClient {
    shared: Rc<Shared>,
}

/// Everything the clones of one client share. Each field is changed only
/// by the file named.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The slot map: patched by `dispatch.rs` on MOVED, replaced by
    /// `refresh.rs`. Never borrowed across a park.
    pub(crate) topology: RefCell<Topology>,
    /// One pool per node (`nodes.rs`).
    pub(crate) nodes: Nodes,
    /// The refresh in flight and the map's generation (`refresh.rs`).
    pub(crate) refresh: RefreshState,
    /// Key positions of commands missing from the key table, learned with
    /// `COMMAND INFO` (`routing.rs`).
    pub(crate) learned: RefCell<HashMap<Vec<u8>, Learned>>,
    /// Whose turn it is among the masters for a keyless command.
    pub(crate) next_master: Cell<usize>,
    /// Whose turn it is among a shard's replicas for a read.
    pub(crate) next_replica: Cell<usize>,
}

impl ClusterClient {
    /// A client for the cluster that the nodes at `urls` belong to (one is
    /// enough; more are tried in turn if it is down). Connects lazily: the
    /// first command loads the slot map.
    pub fn open<S: AsRef<str>>(urls: &[S]) -> Result<ClusterClient> {
        ClusterClient::builder(urls).build()
    }

    /// Settings beyond the URLs: retry time, refresh interval, pools.
    pub fn builder<S: AsRef<str>>(urls: &[S]) -> ClusterBuilder {
        ClusterBuilder::new(urls)
    }

    /// Created, in use and available connections, per node and in total.
    pub fn stats(&self) -> ClusterStats {
        let topology = self.shared.topology.borrow();
        let mut stats = self.shared.nodes.stats(|addr| topology.is_master(addr));
        stats.map_loads = self.shared.generation();
        stats
    }

    /// The masters serving slots, as the client's slot map has them now.
    pub fn masters(&self) -> Vec<NodeAddr> {
        let topology = self.shared.topology.borrow();
        topology.masters().into_iter().cloned().collect()
    }

    /// The master serving `slot` in the client's slot map, if it knows one.
    pub fn master_of_slot(&self, slot: u16) -> Option<NodeAddr> {
        self.shared.topology.borrow().master(slot).cloned()
    }

    /// Loads the slot map now (it is also loaded on MOVED, after failures
    /// and on the refresh interval).
    pub fn refresh_slots(&self) -> Result<()> {
        let deadline = Instant::now() + self.shared.config.retry_timeout;
        self.shared.join_or_load(Hint::default(), deadline)
    }

    /// Checks a connection out of the pool of the master serving `key`'s
    /// slot, for several commands in a row on one node (like
    /// [`Client::get_connection`](crate::Client::get_connection)); loads the
    /// slot map first if none is loaded yet. It goes back to that node's pool
    /// when dropped, and counts as in use in [`ClusterClient::stats`] until
    /// then.
    ///
    /// Commands on it go to that node only: the client does not route,
    /// redirect or retry them. If the slot moved since the map was loaded,
    /// the node's `MOVED` (or, during a migration, `ASK`) reply reaches the
    /// caller as [`Error::Server`] with that code; call
    /// [`ClusterClient::refresh_slots`] and check out again. A connect that
    /// fails retires the node's pool and starts a background refresh of the
    /// map, as a failed command does (`docs/cluster.md`, "Checking out a
    /// connection").
    pub fn get_connection_for_key(&self, key: impl AsRef<[u8]>) -> Result<PooledConnection> {
        let slot = key_slot(key.as_ref());
        let shared = &self.shared;
        shared.refresh_if_due();
        if shared.generation() == 0 {
            let deadline = Instant::now() + shared.config.retry_timeout;
            shared.refresh(0, Hint::default(), deadline)?;
        }
        let addr = shared.topology.borrow().master(slot).cloned();
        let Some(addr) = addr else {
            return Err(Error::Cluster(format!(
                "no node serves slot {slot} (the slot map could not be loaded, or the cluster \
                 is incomplete)"
            )));
        };
        let node = shared.nodes.pool(&addr);
        node.pool.get().inspect_err(|err| {
            if err.is_io() || err.is_timeout() {
                shared.nodes.retire(&addr, node.generation);
                shared.refresh_soon(Hint {
                    prefer: None,
                    avoid: vec![addr.clone()],
                });
            }
        })
    }

    /// A command bound to this client: `cluster.cmd("SET").arg("k").arg("v").query::<()>()`.
    pub fn cmd(&self, name: &str) -> BoundCmd<'_> {
        BoundCmd {
            client: self,
            cmd: cmd(name),
        }
    }

    /// A classic pub/sub session (SUBSCRIBE, PSUBSCRIBE) on a dedicated
    /// connection to one master: the cluster forwards every PUBLISH to
    /// every node, so any node hears every channel.
    pub fn pubsub(&self) -> Result<PubSub> {
        let masters = self.shared.masters_now()?;
        PubSub::open(&self.shared.nodes.info(&masters[0]))
    }
}

impl Shared {
    /// The masters, loading the map first if none is known.
    pub(crate) fn masters_now(self: &Rc<Self>) -> Result<Vec<NodeAddr>> {
        if self.topology.borrow().masters().is_empty() {
            let deadline = Instant::now() + self.config.retry_timeout;
            self.refresh(self.generation(), Hint::default(), deadline)?;
        }
        let masters: Vec<NodeAddr> = self
            .topology
            .borrow()
            .masters()
            .into_iter()
            .cloned()
            .collect();
        if masters.is_empty() {
            return Err(Error::Cluster("no master serves any slot".into()));
        }
        Ok(masters)
    }

    /// Runs one command on the first node that answers (masters, then the
    /// seeds), without routing: for `COMMAND INFO` and `COMMAND GETKEYS`.
    pub(crate) fn ask_any(self: &Rc<Self>, cmd: &Cmd) -> Result<Value> {
        let mut candidates = self.masters_now().unwrap_or_default();
        candidates.extend(self.config.seeds.iter().cloned());
        let mut last = Error::Cluster("no node to ask".into());
        for addr in candidates {
            let node = self.nodes.pool(&addr);
            match node.pool.get().and_then(|mut conn| conn.req_command(cmd)) {
                Ok(value) => return Ok(value),
                Err(err @ Error::Server(_)) => return Err(err),
                Err(err) => last = err,
            }
        }
        Err(last)
    }
}

impl ConnectionLike for ClusterClient {
    /// Routes `cmd` by its keys, follows redirections, and splits MGET,
    /// MSET, DEL, EXISTS, UNLINK and TOUCH whose keys span slots.
    fn req_command(&mut self, cmd: &Cmd) -> Result<Value> {
        let mut batch = Batch::default();
        batch.add(&self.shared, cmd, false)?;
        match batch.run(&self.shared)?.pop() {
            Some(Value::Error(err)) => Err(Error::Server(err)),
            Some(value) => Ok(value),
            None => Err(Error::Protocol("no reply for a command".into())),
        }
    }

    /// Runs a pipeline (or, `atomic`, a MULTI ... EXEC) built by
    /// [`Pipeline`](crate::Pipeline): each node gets its share at once,
    /// replies come back in order (see `docs/cluster.md`, "Pipelines").
    fn req_pipeline(&mut self, cmds: &[Cmd], atomic: bool) -> Result<Vec<Value>> {
        pipeline::run(&self.shared, cmds, atomic)
    }
}

/// A [`Cmd`] being built for a particular [`ClusterClient`].
#[derive(Debug)]
pub struct BoundCmd<'a> {
    client: &'a ClusterClient,
    cmd: Cmd,
}

impl BoundCmd<'_> {
    /// Appends one argument.
    pub fn arg(&mut self, arg: impl ToArg) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// Appends each item as one argument.
    pub fn args<A: ToArg>(&mut self, args: impl IntoIterator<Item = A>) -> &mut Self {
        self.cmd.args(args);
        self
    }

    /// Runs the command on the cluster and converts the reply.
    pub fn query<T: FromValue>(&self) -> Result<T> {
        T::from_value(self.client.clone().req_command(&self.cmd)?)
    }
}
