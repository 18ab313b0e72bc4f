//! Loading the slot map, one load at a time. `dispatch.rs` asks for a
//! refresh when a node failed or the cluster said CLUSTERDOWN
//! ([`Shared::refresh`]: the caller waits for the new map), after a MOVED
//! and on an interval ([`Shared::refresh_soon`]: a background coroutine
//! loads it while the caller goes on).
//!
//! The protocol, so that a thousand callers who saw the same failure cause
//! one load, not a thousand (the thundering herd that cluster clients are
//! known for):
//!
//! 1. Each caller notes the map's `generation` before it sends. A caller
//!    that asks for a refresh passes it; if a newer map was installed since,
//!    there is nothing to do: retry with that one. Nor if a load started
//!    less than [`MIN_LOAD_GAP`] ago: the caller pauses and retries anyway.
//! 2. Otherwise, if a load is in flight, the caller parks on its
//!    [`AsyncResult`] (at most until its own deadline) and retries with
//!    whatever map it installs.
//! 3. Otherwise the caller becomes the loader: it stores a fresh
//!    `AsyncResult` in `in_flight`, asks the nodes one by one (the node that
//!    sent the MOVED first, then the masters, then the other nodes, then
//!    the seeds; the nodes that just failed last) for `CLUSTER SHARDS`
//!    (`CLUSTER SLOTS` on a server before 7.0), installs the first map that
//!    serves slots, bumps `generation` and sets the result, waking every
//!    waiter. A guard sets the result and clears `in_flight` even if the
//!    loader is killed or its deadline passes, so no waiter waits forever.
//!
//! Each node gets [`FETCH_TIMEOUT`] to answer, so a frozen node delays a
//! refresh by that much and no more. See `docs/cluster.md`, "The slot map".

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenhub::sync::{AsyncResult, WaitError};

use super::topology::{parse_shards, parse_slots, NodeAddr, Topology};
use super::Shared;
use crate::cmd::{cmd, ConnectionLike};
use crate::error::{Error, Result};

/// How long one node may take to answer `CLUSTER SHARDS` (connecting
/// included) before the next one is asked. A healthy node answers in well
/// under a millisecond; a second covers a loaded one.
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);

/// Loads start at most this often, unless asked for explicitly
/// (`ClusterClient::refresh_slots`): the nodes' own view changes on their
/// cluster cron, every 100 ms, so a map loaded sooner than that after the
/// last one is rarely newer. A caller refused by a dead node meanwhile just
/// pauses and retries with the map it has. Measured on a failover under
/// 1,000 coroutines: about 120 loads a second without this gap, about 10
/// with it.
const MIN_LOAD_GAP: Duration = Duration::from_millis(100);

/// The state of refreshes; lives in [`Shared`].
#[derive(Debug, Default)]
pub(crate) struct RefreshState {
    /// The load in flight, if any: waiters park on it.
    in_flight: RefCell<Option<AsyncResult<(), String>>>,
    /// How many maps were installed; 0 before the first.
    generation: Cell<u64>,
    /// When the last load started.
    last_start: Cell<Option<Instant>>,
}

/// Where to look first and last.
#[derive(Clone, Debug, Default)]
pub(crate) struct Hint {
    /// Ask this node first (the node that answered MOVED: it knows).
    pub(crate) prefer: Option<NodeAddr>,
    /// Ask these last (they just failed).
    pub(crate) avoid: Vec<NodeAddr>,
}

impl Shared {
    /// How many maps were installed so far.
    pub(crate) fn generation(&self) -> u64 {
        self.refresh.generation.get()
    }

    /// Makes sure a map newer than generation `seen` is installed: returns
    /// at once if one is, waits for the load in flight if there is one, or
    /// loads it. Gives up at `deadline`.
    pub(crate) fn refresh(self: &Rc<Self>, seen: u64, hint: Hint, deadline: Instant) -> Result<()> {
        if self.generation() != seen {
            return Ok(());
        }
        if self.refresh.in_flight.borrow().is_none() && self.loaded_recently() {
            return Ok(());
        }
        self.join_or_load(hint, deadline)
    }

    /// Waits for the load in flight, or loads the map now, whatever the
    /// generation and however recent the last load.
    pub(crate) fn join_or_load(self: &Rc<Self>, hint: Hint, deadline: Instant) -> Result<()> {
        let in_flight = self.refresh.in_flight.borrow().clone();
        match in_flight {
            Some(load) => {
                let timeout = deadline.saturating_duration_since(Instant::now());
                match load.get_timeout(timeout) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(why)) => Err(Error::Cluster(why)),
                    Err(WaitError::TimedOut) => Err(Error::Cluster(
                        "timed out waiting for the cluster's slot map".into(),
                    )),
                    Err(err) => Err(Error::Usage(err.to_string())),
                }
            }
            None => self.load(hint),
        }
    }

    /// Whether a load started less than [`MIN_LOAD_GAP`] ago.
    fn loaded_recently(&self) -> bool {
        self.refresh
            .last_start
            .get()
            .is_some_and(|t| t.elapsed() < MIN_LOAD_GAP)
    }

    /// Starts a load in a background coroutine (inline outside a hub),
    /// unless one is in flight or one started less than [`MIN_LOAD_GAP`] ago.
    pub(crate) fn refresh_soon(self: &Rc<Self>, hint: Hint) {
        if self.refresh.in_flight.borrow().is_some() || self.loaded_recently() {
            return;
        }
        if greenhub::current().is_none() {
            if let Err(err) = self.load(hint) {
                log::debug!("refreshing the cluster's slot map failed: {err}");
            }
            return;
        }
        let shared = self.clone();
        let spawned = greenhub::Builder::new()
            .name("cluster-refresh")
            .spawn(move || {
                if let Err(err) = shared.load(hint) {
                    log::debug!("refreshing the cluster's slot map failed: {err}");
                }
            });
        if let Err(err) = spawned {
            log::debug!("cannot start a background refresh of the slot map: {err}");
        }
    }

    /// Starts a background refresh if the map is older than the configured
    /// interval.
    pub(crate) fn refresh_if_due(self: &Rc<Self>) {
        let Some(interval) = self.config.refresh_interval else {
            return;
        };
        if self
            .refresh
            .last_start
            .get()
            .is_some_and(|t| t.elapsed() >= interval)
        {
            self.refresh_soon(Hint::default());
        }
    }

    /// Step 3 of the protocol: load the map as the one loader.
    fn load(&self, hint: Hint) -> Result<()> {
        let result = AsyncResult::new();
        *self.refresh.in_flight.borrow_mut() = Some(result.clone());
        self.refresh.last_start.set(Some(Instant::now()));
        let mut guard = InFlight {
            shared: self,
            result,
            outcome: Err("the refresh of the slot map was interrupted".into()),
        };
        let loaded = self.fetch_any(&hint);
        guard.outcome = loaded.as_ref().map(|_| ()).map_err(|e| e.to_string());
        let map = loaded?;
        let nodes: Vec<NodeAddr> = map.nodes().into_iter().cloned().collect();
        *self.topology.borrow_mut() = map;
        self.refresh.generation.set(self.generation() + 1);
        let seeds = &self.config.seeds;
        self.nodes
            .retain(|addr| nodes.contains(addr) || seeds.contains(addr));
        Ok(())
    }

    /// Asks the candidates in turn; the first map that serves slots.
    fn fetch_any(&self, hint: &Hint) -> Result<Topology> {
        let mut candidates: Vec<NodeAddr> = Vec::new();
        let mut add = |addr: &NodeAddr| {
            if !candidates.contains(addr) {
                candidates.push(addr.clone());
            }
        };
        hint.prefer.iter().for_each(&mut add);
        {
            let topology = self.topology.borrow();
            topology
                .nodes()
                .into_iter()
                .filter(|a| !hint.avoid.contains(a))
                .for_each(&mut add);
        }
        self.config
            .seeds
            .iter()
            .filter(|a| !hint.avoid.contains(a))
            .for_each(&mut add);
        hint.avoid.iter().for_each(&mut add);
        let mut failures = Vec::new();
        for addr in &candidates {
            let fetched = if greenhub::current().is_some() {
                greenhub::timeout(FETCH_TIMEOUT, || self.fetch(addr)).unwrap_or_else(|_| {
                    Err(Error::Timeout(format!(
                        "no answer within {FETCH_TIMEOUT:?}"
                    )))
                })
            } else {
                self.fetch(addr)
            };
            match fetched {
                Ok(map) if map.served() > 0 => {
                    log::debug!("slot map from {addr}: {} slots served", map.served());
                    return Ok(map);
                }
                Ok(_) => failures.push(format!("{addr} serves no slots")),
                Err(err) => failures.push(format!("{addr}: {err}")),
            }
        }
        Err(Error::Cluster(format!(
            "no node gave a slot map ({})",
            failures.join("; ")
        )))
    }

    /// `CLUSTER SHARDS` from `addr`, or `CLUSTER SLOTS` if it predates it.
    fn fetch(&self, addr: &NodeAddr) -> Result<Topology> {
        let node = self.nodes.pool(addr);
        let mut conn = node.pool.get().inspect_err(|err| {
            if err.is_io() {
                self.nodes.retire(addr, node.generation);
            }
        })?;
        match conn.req_command(cmd("CLUSTER").arg("SHARDS")) {
            Ok(reply) => parse_shards(reply, addr, self.nodes.tls()),
            Err(Error::Server(err))
                if err
                    .message
                    .to_ascii_lowercase()
                    .contains("unknown subcommand") =>
            {
                parse_slots(conn.req_command(cmd("CLUSTER").arg("SLOTS"))?, addr)
            }
            Err(err) => Err(err),
        }
    }
}

/// The loader's guard: on every exit (success, error, kill) it clears
/// `in_flight` and sets the result, waking the waiters.
struct InFlight<'a> {
    shared: &'a Shared,
    result: AsyncResult<(), String>,
    outcome: std::result::Result<(), String>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shared.refresh.in_flight.borrow_mut().take();
        // Setting never parks: safe while a kill unwinds the loader.
        let _ = self.result.set(self.outcome.clone());
    }
}
