//! The connection pool: redis-py's `ConnectionPool` and
//! `BlockingConnectionPool` in one.
//!
//! Connections are created lazily and reused last-in first-out (the most
//! recently used is the likeliest to be alive). Every parked BRPOP holds its
//! connection, so 500 coroutines in BRPOP need 500 connections: exactly what
//! the article's `created / in use / available` lines show, and what
//! [`Pool::stats`] returns. With `max_connections`, a checkout beyond the
//! limit either fails at once ([`Error::PoolExhausted`], redis-py's "Too many
//! connections") or parks until a connection is returned, optionally with a
//! timeout. A returned connection goes back only if
//! `Connection::is_reusable`: one that saw an error, a timeout or a kill
//! before its reply was read is closed instead. Returning never parks, so it
//! is safe during a kill's unwinding. See `docs/redis-client.md`, "The pool".

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenhub::sync::{Semaphore, SemaphorePermit, WaitError};

use crate::cmd::{cmd, Cmd, ConnectionLike};
use crate::connection::{Connection, NotReusable, Setup};
use crate::error::{Error, Result};
use crate::push::PushHandlers;
use crate::reaper::{self, Reaper, ReaperStats};
use crate::resp::Value;
use crate::url::ConnectionInfo;

/// What a checkout does when `max_connections` are all in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Fail at once with `Error::PoolExhausted` (redis-py's `ConnectionPool`).
    #[default]
    Fail,
    /// Park until a connection is returned, at most this long if given
    /// (redis-py's `BlockingConnectionPool`). Needs a coroutine.
    Wait(Option<Duration>),
}

/// How a pool behaves.
#[derive(Clone, Debug, Default)]
pub struct PoolConfig {
    /// Most connections open at once (in use plus available); `None`: no limit.
    pub max_connections: Option<usize>,
    /// What a checkout does at the limit.
    pub when_full: WhenFull,
    /// A connection idle longer than this is checked with PING before reuse.
    pub health_check_interval: Option<Duration>,
    /// Connections kept open even when nobody uses them (at most
    /// `max_connections`): opened by [`Pool::fill`], or by the first
    /// checkout, and topped up by a checkout after connections were closed.
    /// Each connection is verified with a PING before it is pooled (a
    /// server at `maxclients` accepts, writes an error and closes). A
    /// checkout whose top-up fails logs it and counts it
    /// ([`Discards::failed_top_ups`]), and is still served by an idle
    /// connection or a fresh one: a top-up never fails a checkout.
    pub min_idle: usize,
}

/// Why connections were closed instead of pooled, counted over the pool's
/// life (the closed ones are `created - in_use - available`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Discards {
    /// An I/O error, timeout or protocol error had left them out of step.
    pub broken: usize,
    /// A reply was owed, or part of one buffered (a kill or timeout mid-read).
    pub replies_owed: usize,
    /// Their session was not the URL's (SELECT, MULTI, WATCH, SUBSCRIBE, ...).
    pub session: usize,
    /// They were made in another context: on a plain thread and checked out
    /// in a hub, or in one hub and checked out in another hub or on a thread.
    pub other_context: usize,
    /// They failed the health check's PING, or the PING that verifies a
    /// connection [`Pool::fill`] opened before it is pooled.
    pub unhealthy: usize,
    /// Top-ups of `min_idle` by a checkout that failed (the checkout itself
    /// was still served if it could be).
    pub failed_top_ups: usize,
}

/// The article's three figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections opened over the pool's life (`created - in_use -
    /// available` were closed: errors, timeouts, kills).
    pub created: usize,
    /// Connections checked out now.
    pub in_use: usize,
    /// Idle connections waiting in the pool.
    pub available: usize,
}

/// A pool of connections to one server; cheap to clone (clones share it).
#[derive(Clone)]
pub struct Pool {
    inner: Rc<Inner>,
}

struct Inner {
    info: ConnectionInfo,
    config: PoolConfig,
    /// Idle connections, most recently returned last. Boxed, as in
    /// [`PooledConnection`]: a checkout moves a pointer, not 550 bytes, and
    /// the frames on a coroutine's stack stay small (see
    /// `Connection::open_with`); clippy's `vec_box` assumes the opposite
    /// trade.
    #[allow(clippy::vec_box)]
    idle: RefCell<Vec<Box<Connection>>>,
    created: Cell<usize>,
    in_use: Cell<usize>,
    discards: Cell<Discards>,
    /// One permit per checked-out connection, when there is a limit.
    permits: Option<Semaphore>,
    /// What each new connection gets beyond the URL: the push handlers
    /// (shared with every connection), client tracking's redirect.
    setup: RefCell<Setup>,
    /// What ends the blocks of blocking commands cut short (`reaper.rs`).
    reaper: Reaper,
}

impl Pool {
    /// A pool for `info`; no connection is opened until the first checkout.
    pub fn new(info: ConnectionInfo, config: PoolConfig) -> Pool {
        let permits = config.max_connections.map(Semaphore::new);
        Pool {
            inner: Rc::new(Inner {
                info,
                config,
                idle: RefCell::new(Vec::new()),
                created: Cell::new(0),
                in_use: Cell::new(0),
                discards: Cell::new(Discards::default()),
                setup: RefCell::new(Setup::default()),
                reaper: Reaper::default(),
                permits,
            }),
        }
    }

    /// Created, in use and available, as the article prints them.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            created: self.inner.created.get(),
            in_use: self.inner.in_use.get(),
            available: self.inner.idle.borrow().len(),
        }
    }

    /// Why connections were closed instead of pooled.
    pub fn discards(&self) -> Discards {
        self.inner.discards.get()
    }

    /// What the reapers of cut-short blocking commands did (see
    /// `docs/reliability.md`, "Kill-safe blocking commands").
    pub fn reaper_stats(&self) -> ReaperStats {
        self.inner.reaper.stats()
    }

    pub(crate) fn reaper(&self) -> &Reaper {
        &self.inner.reaper
    }

    /// The connection settings.
    pub fn info(&self) -> &ConnectionInfo {
        &self.inner.info
    }

    /// Takes an idle connection or opens a new one. An idle connection made
    /// in another context than the caller's (a plain thread, another hub) is
    /// closed and counted, never handed out.
    pub fn get(&self) -> Result<PooledConnection> {
        if self.open_connections() < self.min_idle() {
            self.top_up();
        }
        let permit = self.acquire_permit()?;
        let conn = match self.take_idle() {
            Some(conn) => conn,
            None => self.open_new()?,
        };
        self.inner.in_use.set(self.inner.in_use.get() + 1);
        Ok(PooledConnection {
            conn: Some(conn),
            pool: self.clone(),
            permit,
        })
    }

    /// The most recently returned idle connection that can serve the
    /// caller; closes (and counts) the ones that cannot on the way.
    fn take_idle(&self) -> Option<Box<Connection>> {
        loop {
            let mut conn = self.inner.idle.borrow_mut().pop()?;
            if let Some(why) = self.not_reusable(&conn) {
                self.close_unusable(conn, &why);
                continue;
            }
            if self.healthy(&conn) || self.ping(&mut conn) {
                return Some(conn);
            }
        }
    }

    /// Closes an idle connection that cannot serve the caller.
    #[inline(never)]
    #[cold]
    fn close_unusable(&self, conn: Box<Connection>, why: &NotReusable) {
        self.discard(why);
        log::debug!("closing a pooled connection instead of using it: {why}");
        drop(conn);
    }

    /// Opens `min_idle`'s missing connections for a checkout; a failure is
    /// logged and counted, never the checkout's.
    #[inline(never)]
    #[cold]
    fn top_up(&self) {
        if let Err(err) = self.fill() {
            log::warn!("could not top up the pool to min_idle: {err}");
            let mut discards = self.inner.discards.get();
            discards.failed_top_ups += 1;
            self.inner.discards.set(discards);
        }
    }

    /// A new connection for a checkout, counted as created.
    #[inline(never)]
    fn open_new(&self) -> Result<Box<Connection>> {
        let conn = self.open()?;
        self.inner.created.set(self.inner.created.get() + 1);
        Ok(conn)
    }

    /// Opens connections until `min_idle` are open (idle or in use), in the
    /// caller's context, each verified with a PING before it is pooled;
    /// returns how many it opened. A server calls it at
    /// start, before it accepts clients, to have its Redis connections
    /// before its descriptors are spent.
    pub fn fill(&self) -> Result<usize> {
        let mut opened = 0;
        while self.open_connections() < self.min_idle() {
            let mut conn = self.open()?;
            self.inner.created.set(self.inner.created.get() + 1);
            // A server at maxclients accepts, writes its refusal and closes;
            // with nothing read in the handshake, only a round trip sees it.
            if let Err(err) = conn.req_command(&cmd("PING")) {
                let mut discards = self.inner.discards.get();
                discards.unhealthy += 1;
                self.inner.discards.set(discards);
                return Err(err);
            }
            self.inner.idle.borrow_mut().push(conn);
            opened += 1;
        }
        Ok(opened)
    }

    /// A new connection, set up for this pool.
    fn open(&self) -> Result<Box<Connection>> {
        let setup = self.inner.setup.borrow().clone();
        Connection::open_with(&self.inner.info, &setup)
    }

    /// Sets up every new connection with `CLIENT TRACKING ON REDIRECT id`;
    /// idle ones that redirect elsewhere are closed at their next checkout.
    pub(crate) fn set_tracking_redirect(&self, id: i64) {
        self.inner.setup.borrow_mut().tracking_redirect = Some(id);
    }

    /// The handlers every connection of this pool hands out-of-band frames to.
    pub(crate) fn handlers(&self) -> Rc<PushHandlers> {
        self.inner.setup.borrow().handlers.clone()
    }

    /// Idle plus in use.
    fn open_connections(&self) -> usize {
        self.inner.idle.borrow().len() + self.inner.in_use.get()
    }

    /// `min_idle`, within `max_connections`.
    fn min_idle(&self) -> usize {
        let config = &self.inner.config;
        config
            .min_idle
            .min(config.max_connections.unwrap_or(usize::MAX))
    }

    /// Why `conn` cannot serve this pool's next user, if it cannot: its own
    /// reasons, or a tracking redirect the pool no longer uses.
    fn not_reusable(&self, conn: &Connection) -> Option<NotReusable> {
        if let Some(why) = conn.not_reusable() {
            return Some(why);
        }
        let redirect = self.inner.setup.borrow().tracking_redirect;
        (conn.tracking_redirect() != redirect).then(|| {
            NotReusable::Session("its client tracking redirects to an old listener".into())
        })
    }

    /// Counts a connection closed for `why`.
    fn discard(&self, why: &NotReusable) {
        let mut discards = self.inner.discards.get();
        match why {
            NotReusable::Broken(_) => discards.broken += 1,
            NotReusable::RepliesOwed(_) => discards.replies_owed += 1,
            NotReusable::Session(_) => discards.session += 1,
            NotReusable::OtherContext(_) => discards.other_context += 1,
        }
        self.inner.discards.set(discards);
    }

    fn acquire_permit(&self) -> Result<Option<SemaphorePermit>> {
        let Some(permits) = &self.inner.permits else {
            return Ok(None);
        };
        let max = self.inner.config.max_connections.unwrap_or_default();
        let acquired = match self.inner.config.when_full {
            WhenFull::Fail => permits.try_acquire().ok_or(Error::PoolExhausted { max }),
            WhenFull::Wait(None) => permits.acquire().map_err(|err| wait_error(err, max)),
            WhenFull::Wait(Some(timeout)) => permits
                .acquire_timeout(timeout)
                .map_err(|err| wait_error(err, max)),
        };
        acquired.map(Some)
    }

    fn healthy(&self, conn: &Connection) -> bool {
        match self.inner.config.health_check_interval {
            Some(interval) => conn.last_used.elapsed() < interval,
            None => true,
        }
    }

    /// PINGs an idle connection; false (and the connection is dropped by the
    /// caller) if it does not answer.
    fn ping(&self, conn: &mut Connection) -> bool {
        let ok = conn.req_command(&cmd("PING")).is_ok();
        if !ok {
            log::debug!("discarding a pooled connection that failed its health check");
            let mut discards = self.inner.discards.get();
            discards.unhealthy += 1;
            self.inner.discards.set(discards);
        }
        ok
    }

    pub(crate) fn put_back(&self, mut conn: Box<Connection>) {
        self.inner.in_use.set(self.inner.in_use.get() - 1);
        match self.not_reusable(&conn) {
            None => {
                conn.trim_buffer();
                if self.inner.config.health_check_interval.is_some() {
                    conn.last_used = Instant::now();
                }
                self.inner.idle.borrow_mut().push(conn);
            }
            Some(why) => self.close_returned(conn, &why),
        }
    }

    /// Closes a returned connection that cannot serve another user.
    #[inline(never)]
    #[cold]
    fn close_returned(&self, conn: Box<Connection>, why: &NotReusable) {
        self.discard(why);
        log::debug!("closing a connection instead of pooling it: {why}");
        drop(conn);
    }
}

fn wait_error(err: WaitError, max: usize) -> Error {
    match err {
        WaitError::TimedOut => Error::PoolExhausted { max },
        WaitError::Deadlock(message) => Error::Usage(message),
        WaitError::CannotWait => Error::Usage(
            "the pool is full and waiting for a connection needs a coroutine (or use WhenFull::Fail)".into(),
        ),
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("info", &self.inner.info)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A connection checked out of a [`Pool`]; goes back when dropped.
#[derive(Debug)]
pub struct PooledConnection {
    conn: Option<Box<Connection>>,
    pool: Pool,
    /// Released after the connection is back (field order), or handed to
    /// the reaper with it.
    permit: Option<SemaphorePermit>,
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A blocking command cut short (kill, timeout): the reaper ends
            // its block and returns the connection. Never parks.
            if conn.orphaned_block().is_some() {
                reaper::hand_off(&self.pool, conn, self.permit.take());
            } else {
                self.pool.put_back(conn);
            }
        }
    }
}

impl Deref for PooledConnection {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl ConnectionLike for PooledConnection {
    fn req_command(&mut self, cmd: &Cmd) -> Result<Value> {
        (**self).req_command(cmd)
    }

    fn req_pipeline(&mut self, cmds: &[Cmd], atomic: bool) -> Result<Vec<Value>> {
        (**self).req_pipeline(cmds, atomic)
    }
}
