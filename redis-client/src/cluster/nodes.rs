//! One connection [`Pool`] per cluster node, created the first time a
//! command is routed to the node. `dispatch.rs` checks connections out of
//! these pools; `refresh.rs` drops the pools of nodes that left the map.
//!
//! When a node fails (its connection broke, or it refused a new one), its
//! pool is *retired* and a fresh one takes its place: the idle connections
//! of a node that died are dead too, and a coroutine must not find one by
//! checking it out. Connections of the retired pool that are still checked
//! out go back to it when their call ends and are closed with it; the
//! retired pool is kept only to count them in [`ClusterStats`].
//! See `docs/cluster.md`, "Connections and stats".

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::topology::NodeAddr;
use crate::pool::{Pool, PoolConfig, PoolStats};
use crate::url::{Addr, ConnectionInfo};

/// One node's connection figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStats {
    /// The node.
    pub addr: NodeAddr,
    /// Whether the slot map has it as a master serving slots now.
    pub master: bool,
    /// Its pool's created / in use / available (`created` counts the
    /// connections of pools retired after a failure of the node too).
    pub pool: PoolStats,
}

/// Connection figures of every node a [`ClusterClient`](super::ClusterClient)
/// has talked to, and their sum.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Per node, masters first.
    pub nodes: Vec<NodeStats>,
    /// The sum over all nodes.
    pub total: PoolStats,
    /// How many slot maps were loaded (`CLUSTER SHARDS`), the first one
    /// included: one per refresh, however many callers wanted it.
    pub map_loads: u64,
}

/// The pools, by node.
#[derive(Debug)]
pub(crate) struct Nodes {
    /// Settings shared by every node's connections (credentials, timeouts);
    /// only the address changes.
    template: ConnectionInfo,
    config: PoolConfig,
    entries: RefCell<BTreeMap<NodeAddr, Entry>>,
}

#[derive(Debug)]
struct Entry {
    pool: Pool,
    /// Bumped when the pool is retired, so that many callers who saw the
    /// same failure retire it once (see [`Nodes::retire`]).
    generation: u64,
    /// Pools retired with connections still checked out.
    retired: Vec<Pool>,
    /// Connections created by pools retired and dropped.
    created_before: usize,
}

/// A pool checked out of [`Nodes`], with the generation to retire it by.
#[derive(Clone, Debug)]
pub(crate) struct NodePool {
    pub(crate) pool: Pool,
    pub(crate) generation: u64,
}

impl Nodes {
    pub(crate) fn new(template: ConnectionInfo, config: PoolConfig) -> Nodes {
        Nodes {
            template,
            config,
            entries: RefCell::new(BTreeMap::new()),
        }
    }

    /// Whether the nodes are reached over TLS (`rediss://`).
    pub(crate) fn tls(&self) -> bool {
        self.template.tls.is_some()
    }

    /// The connection settings for `addr`.
    pub(crate) fn info(&self, addr: &NodeAddr) -> ConnectionInfo {
        let mut info = self.template.clone();
        info.addr = Addr::Tcp {
            host: addr.host.clone(),
            port: addr.port,
        };
        info
    }

    /// The pool for `addr`, created if new.
    pub(crate) fn pool(&self, addr: &NodeAddr) -> NodePool {
        let mut entries = self.entries.borrow_mut();
        let entry = entries.entry(addr.clone()).or_insert_with(|| Entry {
            pool: Pool::new(self.info(addr), self.config.clone()),
            generation: 0,
            retired: Vec::new(),
            created_before: 0,
        });
        NodePool {
            pool: entry.pool.clone(),
            generation: entry.generation,
        }
    }

    /// Replaces `addr`'s pool with a fresh one, unless it was replaced since
    /// `generation` (another caller saw the same failure first).
    pub(crate) fn retire(&self, addr: &NodeAddr, generation: u64) {
        let mut entries = self.entries.borrow_mut();
        let Some(entry) = entries.get_mut(addr) else {
            return;
        };
        if entry.generation != generation {
            return;
        }
        let fresh = Pool::new(self.info(addr), self.config.clone());
        let old = std::mem::replace(&mut entry.pool, fresh);
        entry.generation += 1;
        entry.retired.push(old);
        prune(entry);
        log::debug!("cluster node {addr} failed: its idle connections are closed");
    }

    /// Drops the pools of nodes for which `keep` is false and that have no
    /// connection checked out (their idle connections close).
    pub(crate) fn retain(&self, keep: impl Fn(&NodeAddr) -> bool) {
        self.entries.borrow_mut().retain(|addr, entry| {
            prune(entry);
            keep(addr) || entry.pool.stats().in_use > 0 || !entry.retired.is_empty()
        });
    }

    /// Per-node figures (with `is_master` deciding the role), and the sum.
    pub(crate) fn stats(&self, is_master: impl Fn(&NodeAddr) -> bool) -> ClusterStats {
        let mut entries = self.entries.borrow_mut();
        let mut stats = ClusterStats::default();
        for (addr, entry) in entries.iter_mut() {
            prune(entry);
            let current = entry.pool.stats();
            let retired = entry.retired.iter().map(Pool::stats);
            let pool = retired.fold(
                PoolStats {
                    created: current.created + entry.created_before,
                    ..current
                },
                |sum, old| PoolStats {
                    created: sum.created + old.created,
                    in_use: sum.in_use + old.in_use,
                    available: sum.available,
                },
            );
            stats.total.created += pool.created;
            stats.total.in_use += pool.in_use;
            stats.total.available += pool.available;
            stats.nodes.push(NodeStats {
                addr: addr.clone(),
                master: is_master(addr),
                pool,
            });
        }
        // Masters first, each group in address order (stable sort).
        stats.nodes.sort_by_key(|n| !n.master);
        stats
    }
}

/// Drops the retired pools whose connections have all come back; their
/// idle connections close with them.
fn prune(entry: &mut Entry) {
    let mut created = 0;
    entry.retired.retain(|old| {
        let stats = old.stats();
        if stats.in_use == 0 {
            created += stats.created;
        }
        stats.in_use > 0
    });
    entry.created_before += created;
}
