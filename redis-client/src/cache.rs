//! Client-side caching: a [`Client`](crate::Client) made with
//! [`Client::with_cache`](crate::Client::with_cache) answers read commands
//! (GET, HGET, LRANGE, ...) from a local copy for as long as the server has
//! not said the key changed. redis-py's `cache` option; Redis's "client-side
//! caching" with tracking in redirect mode.
//!
//! ```text
//!   listener connection        CLIENT ID -> 7; SUBSCRIBE __redis__:invalidate;
//!                              then a non-blocking std socket, never waited on
//!   every pooled connection    CLIENT TRACKING ON REDIRECT 7 (part of its baseline)
//!   client.get("k")            drain the listener (one read, WouldBlock) and evict
//!                              what it names -> a copy, or fetch on a pooled
//!                              connection (the server now tracks k) and keep it
//!   another client SETs k      the server sends "invalidate [k]" to connection 7
//! ```
//!
//! Invariants. A value is kept only if no invalidation of its key arrived
//! while it was being fetched (`inflight` counts them), and only if the
//! listener the fetch's connection redirects to is still the one running
//! (`epoch`); the listener is drained before every lookup and before every
//! store. If the listener fails (the server restarted, the connection
//! broke), everything cached is dropped and a new listener is opened on the
//! next lookup, with a new epoch: pooled connections that redirect to the old
//! one are closed by the pool. A reply is as fresh as the invalidations that
//! reached this process when the lookup ran: the consistency Redis's
//! tracking gives. See `docs/redis-client.md`, "Client-side caching".

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::rc::Rc;

use crate::cmd::{cmd, Cmd, ConnectionLike};
use crate::connection::Connection;
use crate::error::Result;
use crate::push::{invalidated, Invalidated};
use crate::reader::Reader;
use crate::resp::Value;
use crate::stream::Stream;
use crate::url::ConnectionInfo;

/// How a client's local cache behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most replies kept; past it, the oldest kept is dropped first.
    pub max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 10_000,
        }
    }
}

/// What a cache did, from [`Client::cache_stats`](crate::Client::cache_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered locally.
    pub hits: u64,
    /// Lookups that went to the server.
    pub misses: u64,
    /// Keys evicted because the server said they changed (a flush counts
    /// every key then cached).
    pub invalidations: u64,
    /// Replies kept now.
    pub entries: usize,
    /// Invalidation listeners opened (more than one: the first one failed).
    pub listeners: u64,
}

/// The read commands whose replies are kept: each reads only the key at its
/// first argument, and its reply depends only on that key's value.
const CACHEABLE: &[&str] = &[
    "GET",
    "GETRANGE",
    "STRLEN",
    "TYPE",
    "HGET",
    "HGETALL",
    "HMGET",
    "HKEYS",
    "HVALS",
    "HLEN",
    "HEXISTS",
    "HSTRLEN",
    "LRANGE",
    "LLEN",
    "LINDEX",
    "SMEMBERS",
    "SISMEMBER",
    "SMISMEMBER",
    "SCARD",
    "ZRANGE",
    "ZSCORE",
    "ZMSCORE",
    "ZCARD",
    "ZRANK",
    "ZREVRANK",
];

/// The key a command's reply may be cached under, if it may be.
fn cacheable(cmd: &Cmd) -> Option<&[u8]> {
    let mut args = cmd.arg_bytes();
    let name = args.next()?;
    let key = args.next()?;
    CACHEABLE
        .iter()
        .any(|word| name.eq_ignore_ascii_case(word.as_bytes()))
        .then_some(key)
}

/// One client's cache (shared by its clones).
pub(crate) struct Cache {
    config: CacheConfig,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    /// The invalidation listener, once opened.
    listener: Option<Listener>,
    /// Bumped each time a listener is opened or everything is flushed.
    epoch: u64,
    /// Replies by the command that fetched them (its encoded arguments).
    entries: HashMap<Vec<u8>, Entry>,
    /// The commands cached under each key.
    by_key: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    /// Commands in the order they were cached, for eviction; may name
    /// entries already invalidated (skipped then).
    order: VecDeque<Vec<u8>>,
    /// Keys being fetched now, and invalidations of each seen meanwhile.
    inflight: HashMap<Vec<u8>, Inflight>,
    stats: CacheStats,
}

struct Entry {
    key: Vec<u8>,
    value: Value,
}

#[derive(Default)]
struct Inflight {
    fetches: usize,
    invalidations: u64,
}

/// The connection the server sends invalidations to.
struct Listener {
    stream: Stream,
    reader: Reader,
    id: i64,
}

/// A fetch in progress: what must hold for its reply to be kept. Dropped
/// without [`Ticket::finish`] (the fetch failed, or its coroutine was
/// killed), it only ends the fetch.
pub(crate) struct Ticket {
    cache: Rc<Cache>,
    command: Vec<u8>,
    key: Vec<u8>,
    epoch: u64,
    invalidations: u64,
    done: bool,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Cache {
    pub(crate) fn new(config: CacheConfig) -> Cache {
        Cache {
            config,
            state: RefCell::new(State::default()),
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let state = self.state.borrow();
        CacheStats {
            entries: state.entries.len(),
            ..state.stats
        }
    }

    /// The listener's client id, opening a listener first if none runs.
    /// Opening one parks (it talks to the server), so no borrow of the
    /// state is held meanwhile; of two coroutines that open one at once, the
    /// first to finish wins.
    pub(crate) fn redirect(&self, info: &ConnectionInfo) -> Result<i64> {
        if let Some(listener) = &self.state.borrow().listener {
            return Ok(listener.id);
        }
        let listener = Listener::open(info)?;
        let mut state = self.state.borrow_mut();
        if let Some(running) = &state.listener {
            return Ok(running.id);
        }
        let id = listener.id;
        state.listener = Some(listener);
        state.epoch += 1;
        state.stats.listeners += 1;
        Ok(id)
    }

    /// A copy of `cmd`'s cached reply, or a ticket to fetch it with (`None`
    /// for a command whose reply is not cached).
    pub(crate) fn lookup(
        self: &Rc<Cache>,
        cmd: &Cmd,
    ) -> Option<std::result::Result<Value, Ticket>> {
        let key = cacheable(cmd)?;
        let mut state = self.state.borrow_mut();
        state.drain();
        let command = encoded(cmd);
        if let Some(entry) = state.entries.get(&command) {
            let value = entry.value.clone();
            state.stats.hits += 1;
            return Some(Ok(value));
        }
        state.stats.misses += 1;
        let epoch = state.epoch;
        let inflight = state.inflight.entry(key.to_vec()).or_default();
        inflight.fetches += 1;
        Some(Err(Ticket {
            cache: self.clone(),
            command,
            key: key.to_vec(),
            epoch,
            invalidations: inflight.invalidations,
            done: false,
        }))
    }
}

impl Ticket {
    /// Ends the fetch: keeps `reply` if nothing invalidated its key
    /// meanwhile and it came through a connection tracked by the running
    /// listener (`redirect`).
    pub(crate) fn finish(mut self, reply: &Value, redirect: Option<i64>) {
        self.done = true;
        let cache = self.cache.clone();
        let mut state = cache.state.borrow_mut();
        state.drain();
        let invalidations = state.end_fetch(&self.key);
        let listening = state.listener.as_ref().map(|l| l.id);
        let fresh = invalidations == Some(self.invalidations)
            && self.epoch == state.epoch
            && listening.is_some()
            && redirect == listening;
        if fresh {
            let command = std::mem::take(&mut self.command);
            let key = std::mem::take(&mut self.key);
            state.keep(command, key, reply.clone(), cache.config.max_entries);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            if let Ok(mut state) = self.cache.state.try_borrow_mut() {
                state.end_fetch(&self.key);
            }
        }
    }
}

impl State {
    /// Ends one fetch of `key`; the invalidations of it seen while in flight.
    fn end_fetch(&mut self, key: &[u8]) -> Option<u64> {
        let inflight = self.inflight.get_mut(key)?;
        inflight.fetches -= 1;
        let seen = inflight.invalidations;
        if inflight.fetches == 0 {
            self.inflight.remove(key);
        }
        Some(seen)
    }

    /// Applies every invalidation that has arrived, without waiting. A
    /// listener that fails is dropped, with everything cached.
    fn drain(&mut self) {
        loop {
            let Some(listener) = &mut self.listener else {
                return;
            };
            match listener.reader.poll_frame(&mut listener.stream) {
                Ok(Some(frame)) => {
                    if let Some(keys) = invalidated(&frame) {
                        self.invalidate(keys);
                    }
                }
                Ok(None) => return,
                Err(err) => {
                    log::warn!(
                        "the cache's invalidation listener failed ({err}); flushing the cache"
                    );
                    self.listener = None;
                    self.invalidate(None);
                    return;
                }
            }
        }
    }

    fn invalidate(&mut self, keys: Invalidated) {
        match keys {
            Some(keys) => {
                for key in keys {
                    if let Some(inflight) = self.inflight.get_mut(&key) {
                        inflight.invalidations += 1;
                    }
                    for command in self.by_key.remove(&key).unwrap_or_default() {
                        if self.entries.remove(&command).is_some() {
                            self.stats.invalidations += 1;
                        }
                    }
                }
            }
            None => {
                self.stats.invalidations += self.entries.len() as u64;
                self.entries.clear();
                self.by_key.clear();
                self.order.clear();
                self.epoch += 1;
            }
        }
    }

    fn keep(&mut self, command: Vec<u8>, key: Vec<u8>, value: Value, max_entries: usize) {
        while self.entries.len() >= max_entries.max(1) {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&oldest) {
                if let Some(commands) = self.by_key.get_mut(&entry.key) {
                    commands.retain(|c| *c != oldest);
                }
            }
        }
        self.by_key
            .entry(key.clone())
            .or_default()
            .push(command.clone());
        self.order.push_back(command.clone());
        self.entries.insert(command, Entry { key, value });
        if self.order.len() > 2 * max_entries.max(1) {
            let entries = &self.entries;
            self.order.retain(|command| entries.contains_key(command));
        }
    }
}

impl Listener {
    /// Opens the connection invalidations are redirected to: its client id,
    /// a subscription to `__redis__:invalidate` (how a RESP2 connection
    /// receives them; a RESP3 one gets pushes), then non-blocking.
    fn open(info: &ConnectionInfo) -> Result<Listener> {
        let mut conn = Connection::open(info)?;
        let id: i64 = cmd("CLIENT").arg("ID").query(&mut conn)?;
        conn.req_command(cmd("SUBSCRIBE").arg("__redis__:invalidate"))?;
        let (stream, reader) = conn.into_nonblocking()?;
        Ok(Listener { stream, reader, id })
    }
}

/// A command's arguments, encoded: the cache's key for its reply.
fn encoded(cmd: &Cmd) -> Vec<u8> {
    let mut out = Vec::new();
    cmd.encode(&mut out);
    out
}
