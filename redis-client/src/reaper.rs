//! The reaper: what happens to a blocking command (BRPOP, BLMOVE, BZPOPMIN,
//! XREAD BLOCK, ...) whose caller is gone before its reply came: killed,
//! cut by a `greenhub::timeout`, or dropped with the reply owed.
//!
//! Closing such a connection is not enough. Until the server sees the close,
//! the request is still blocked there, and an item pushed meanwhile (or just
//! before the kill) is popped for a caller that will never read it: lost.
//! So `pool.rs`, when a connection comes back with a blocking command's reply
//! owed ([`Connection::orphaned_block`]), hands it here instead, from a
//! `Drop` that may be running during an unwind and so must not park:
//! [`hand_off`] only spawns a coroutine. That coroutine:
//!
//! ```text
//!   read the CLIENT ID reply, if the kill came before it      (connection.rs
//!                                                              sends CLIENT ID
//!                                                              ahead of the first
//!                                                              blocking command)
//!   loop until the one owed reply is read:
//!     read, waiting a little (a reply already sent is taken at once)
//!     CLIENT UNBLOCK <id> on the pool's control connection    (the server answers
//!                                                              the blocked request
//!                                                              at once with nil)
//!     no control connection (server gone, refused), or no id (an ACL
//!     refused CLIENT ID): wait out the command's own server timeout if it
//!     is short, else give up (the connection is closed, its slot freed)
//!   an item in the reply: put it back where it was taken from (RPUSH for
//!     BRPOP, LPUSH for BLPOP, the reverse move for BLMOVE/BRPOPLPUSH, ZADD
//!     with its score for BZPOP*), or hand it to `on_orphaned_item`
//!   the connection, now in step, goes back to the pool (the guard's Drop)
//! ```
//!
//! What is not covered, and why: a hub shutting down kills the reaper
//! before it runs (its guard closes the connection: an item in flight then
//! is lost, and the guard logs it with `log::warn` and counts it `lost`); a server that dies after popping and before answering loses the
//! item with it; a command inside a pipeline or MULTI is not reaped (its
//! connection is closed). The reliable-queue pattern (BLMOVE to a
//! processing list) covers all of these. See `docs/reliability.md`,
//! "Kill-safe blocking commands".

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use greenhub::sync::{Mutex, SemaphorePermit};

use crate::cmd::{cmd, Cmd, ConnectionLike, SERVER_TICK};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::pool::Pool;
use crate::resp::{Decoded, Decoder, Limits, Value};
use crate::restore::{plan, OrphanedItem};

/// How long a reaper may take in all before it gives up and closes the
/// connection. Ending a block takes one CLIENT UNBLOCK round trip; the rest
/// is room for a server that is restarting (a restore that waits for it).
const PATIENCE: Duration = Duration::from_secs(10);
/// How long it goes on trying to put a popped item back: the item lives
/// only in the reaper's memory, so it waits out a server that restarts
/// (and loads its data) several times over.
const RESTORE_PATIENCE: Duration = Duration::from_secs(60);
/// The first wait for a reply already on its way, before CLIENT UNBLOCK.
const FIRST_WAIT: Duration = Duration::from_millis(2);
/// The longest wait between two CLIENT UNBLOCKs. An UNBLOCK that found the
/// request not yet blocked (it was still in flight) is sent again.
const MAX_WAIT: Duration = Duration::from_millis(200);
/// A server timeout no longer than this is waited out when CLIENT UNBLOCK
/// cannot be sent (the demo's `BRPOP list 1`).
const WAIT_OUT: Duration = Duration::from_secs(2);

/// What reapers did, over the pool's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReaperStats {
    /// Connections handed to a reaper (a blocking command cut short).
    pub handed: usize,
    /// Reaped connections that went back to the pool, in step.
    pub returned: usize,
    /// Reaped connections that were closed: the server was gone, the hub
    /// was shutting down, or the reply never came within the reaper's time.
    pub closed: usize,
    /// Popped items put back where they were taken from.
    pub restored: usize,
    /// Popped items handed to `on_orphaned_item`.
    pub delivered: usize,
    /// Popped items that could be neither: their restore did not succeed
    /// within 60 s of tries, or the server refused it (each logged with its
    /// bytes); and connections closed with the reply still owed because no
    /// reaper could run (the hub shutting down, a connection given back
    /// outside a hub): an item may have been popped for them, unread, so
    /// each is counted and logged with `log::warn` naming its command.
    pub lost: usize,
    /// Reapers running now.
    pub running: usize,
}

/// The reaper's share of a pool: counters, the control connection that
/// sends CLIENT UNBLOCK, and the user's callback for popped items.
pub(crate) struct Reaper {
    stats: Cell<ReaperStats>,
    /// One connection outside `max_connections`, shared by the pool's
    /// reapers one command at a time, so that a full pool (every
    /// connection checked out, some of them orphans) never keeps a reaper
    /// from ending a block.
    control: Mutex<Option<Connection>>,
    on_orphaned: RefCell<Option<OnOrphaned>>,
}

/// The user's callback for popped items ([`Client::on_orphaned_item`](crate::Client::on_orphaned_item)).
type OnOrphaned = Rc<dyn Fn(OrphanedItem)>;

impl std::fmt::Debug for Reaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reaper")
            .field("stats", &self.stats.get())
            .finish()
    }
}

impl Default for Reaper {
    fn default() -> Reaper {
        Reaper {
            stats: Cell::default(),
            control: Mutex::new(None),
            on_orphaned: RefCell::default(),
        }
    }
}

impl Reaper {
    pub(crate) fn stats(&self) -> ReaperStats {
        self.stats.get()
    }

    pub(crate) fn set_on_orphaned(&self, f: OnOrphaned) {
        *self.on_orphaned.borrow_mut() = Some(f);
    }

    fn count(&self, f: impl FnOnce(&mut ReaperStats)) {
        let mut stats = self.stats.get();
        f(&mut stats);
        self.stats.set(stats);
    }

    /// Sends `CLIENT UNBLOCK id` on the control connection, opening it if
    /// needed: whether the request was blocked (and is answered now).
    fn unblock(&self, pool: &Pool, id: i64) -> Result<bool> {
        let mut control = self
            .control
            .lock()
            .map_err(|err| Error::Usage(format!("the reaper's control connection: {err}")))?;
        if control.as_ref().is_none_or(|conn| !conn.is_reusable()) {
            *control = Some(Connection::open(pool.info())?);
        }
        let conn = control.as_mut().expect("opened");
        let unblocked = conn.req_command(cmd("CLIENT").arg("UNBLOCK").arg(id));
        if unblocked.as_ref().is_err_and(Error::breaks_connection) {
            *control = None;
        }
        Ok(matches!(unblocked?, Value::Int(1)))
    }
}

/// A connection on its way back to the pool through the reaper. Dropped
/// anywhere (the reaper done, killed, never started), it returns the
/// connection to the pool, which pools it if it is in step and closes it
/// otherwise, and releases its permit after.
struct Orphan {
    conn: Option<Box<Connection>>,
    pool: Pool,
    _permit: Option<SemaphorePermit>,
}

impl Drop for Orphan {
    fn drop(&mut self) {
        let reaper = self.pool.reaper();
        reaper.count(|s| s.running -= 1);
        if let Some(conn) = self.conn.take() {
            if let Some((_, request)) = conn.orphaned_block() {
                // No reaper ran to the end: a hub shutting down killed it
                // before it started, or none could start. An item the
                // server popped for the request is unread, and gone.
                reaper.count(|s| s.lost += 1);
                let command = last_request(request).map(|args| name(&args));
                log::warn!(
                    "reaper: closing a cut-short {} with its reply unread (the hub is \
                     shutting down, or no reaper could run): an item it popped, if any, is lost",
                    command.as_deref().unwrap_or("blocking command")
                );
            }
            if conn.is_reusable() {
                reaper.count(|s| s.returned += 1);
            } else {
                reaper.count(|s| s.closed += 1);
            }
            self.pool.put_back(conn);
        }
    }
}

/// Hands `conn`, whose blocking command's caller is gone, to a new reaper
/// coroutine. Never parks (it may run in an unwinding `Drop`). Outside a
/// hub, or when no coroutine can be started, the connection is closed.
pub(crate) fn hand_off(pool: &Pool, conn: Box<Connection>, permit: Option<SemaphorePermit>) {
    let reaper = pool.reaper();
    reaper.count(|s| {
        s.handed += 1;
        s.running += 1;
    });
    let orphan = Orphan {
        conn: Some(conn),
        pool: pool.clone(),
        _permit: permit,
    };
    if greenhub::current().is_none() {
        drop(orphan);
        return;
    }
    // A failed spawn drops the closure, and with it the orphan: closed.
    let spawned = greenhub::Builder::new()
        .name("redis-reaper")
        .spawn(move || reap(orphan));
    if let Err(err) = spawned {
        log::warn!("cannot start a reaper for a cut-short blocking command: {err}");
    }
}

/// The reaper coroutine's work (see the module's diagram).
fn reap(mut orphan: Orphan) {
    let deadline = Instant::now() + PATIENCE;
    let pool = orphan.pool.clone();
    let conn = orphan.conn.as_mut().expect("present until dropped");
    let Some((_, request)) = conn.orphaned_block() else {
        return;
    };
    let id_asked = asked_client_id(request);
    let Some(args) = last_request(request) else {
        conn.abandon("the reaper could not read back its request");
        return;
    };
    let reply = match end_block(&pool, conn, &args, id_asked, deadline) {
        Ok(reply) => reply,
        Err(why) => {
            log::debug!("reaper: closing a cut-short {}: {why}", name(&args));
            conn.abandon(&why);
            return;
        }
    };
    let Some((item, restore)) = plan(&args, reply, &token()) else {
        return;
    };
    let reaper = pool.reaper();
    let callback = reaper.on_orphaned.borrow().clone();
    if let Some(callback) = callback {
        reaper.count(|s| s.delivered += 1);
        callback(item);
        return;
    }
    match put_back(conn, &pool, &restore, Instant::now() + RESTORE_PATIENCE) {
        Ok(()) => reaper.count(|s| s.restored += 1),
        Err(err) => {
            reaper.count(|s| s.lost += 1);
            log::error!(
                "reaper: an item popped for a caller that was gone could not be put back \
                 ({err}); it is lost: {item:?}"
            );
        }
    }
}

/// Reads the one reply owed (and the CLIENT ID reply before it, if owed),
/// ending the block on the server as needed. `id_asked`: the request sent a
/// CLIENT ID ahead of the command. `Err` says why it could not.
fn end_block(
    pool: &Pool,
    conn: &mut Connection,
    args: &[Vec<u8>],
    id_asked: bool,
    deadline: Instant,
) -> std::result::Result<Value, String> {
    let server_timeout = request_cmd(args).server_timeout();
    // Without CLIENT UNBLOCK (no control connection, or no id): a short
    // server timeout is waited out, a longer one (or none) ends the reap:
    // the connection is closed, so the server ends the block, and its pool
    // slot is freed at once rather than held for PATIENCE.
    let cannot_unblock = |why: &str| match server_timeout {
        Some(t) if t > Duration::ZERO && t <= WAIT_OUT => {
            log::debug!("reaper: {why}; waiting out {t:?}");
            Ok(t + SERVER_TICK)
        }
        _ => Err(format!("{why}, and its server timeout is not short")),
    };
    // A CLIENT ID written ahead of the command may still be on its way:
    // until it is read (or a moment has passed), no id does not yet mean
    // that the server refused it.
    let id_grace = Instant::now() + MAX_WAIT;
    let mut wait = FIRST_WAIT;
    let mut can_unblock = true;
    loop {
        let owed = conn.read_owed(wait).map_err(|err| err.to_string())?;
        match owed {
            // The CLIENT ID that went ahead: now the block can be ended.
            Some(_) if conn.orphaned_block().is_some() => continue,
            Some(reply) => return Ok(reply),
            None => {}
        }
        if Instant::now() >= deadline {
            return Err("its reply did not come within the reaper's time".into());
        }
        wait = (wait * 2).min(MAX_WAIT);
        if !can_unblock {
            continue;
        }
        let Some(id) = conn.client_id() else {
            if id_asked && Instant::now() < id_grace {
                continue;
            }
            can_unblock = false;
            wait = cannot_unblock("no CLIENT ID (refused, as by an ACL)")?;
            continue;
        };
        match pool.reaper().unblock(pool, id) {
            // Answered now: the nil (or the item, if it beat the UNBLOCK).
            Ok(true) => wait = MAX_WAIT,
            // Not blocked: its reply is on its way, or the request has not
            // reached the server yet (then the next UNBLOCK ends it).
            Ok(false) => {}
            Err(err) => {
                can_unblock = false;
                wait = cannot_unblock(&format!("cannot send CLIENT UNBLOCK ({err})"))?;
            }
        }
    }
}

/// Runs the restore, on the reaped connection, or, if it broke, on new
/// ones until the reaper's time runs out (a server restarting). The restore
/// is guarded by its token (`restore.rs`), so one whose reply was lost is
/// sent again without pushing the item twice.
fn put_back(conn: &mut Connection, pool: &Pool, restore: &Cmd, deadline: Instant) -> Result<()> {
    let mut backoff = crate::retry::Backoff::new(deadline);
    let mut fresh: Option<Connection> = None;
    loop {
        let target = match fresh.as_mut() {
            Some(fresh) => fresh,
            None if conn.is_reusable() && !conn.closed_by_peer() => &mut *conn,
            None => match Connection::open(pool.info()) {
                Ok(opened) => fresh.insert(opened),
                Err(err) if backoff.pause() => {
                    log::debug!("reaper: waiting for the server to put an item back: {err}");
                    continue;
                }
                Err(err) => return Err(err),
            },
        };
        match target.req_command(restore) {
            Ok(_) => return Ok(()),
            // LOADING, a replica's READONLY, ...: the server is not ready.
            Err(Error::Server(err))
                if !matches!(err.code.as_str(), "LOADING" | "BUSY" | "TRYAGAIN") =>
            {
                return Err(Error::Server(err))
            }
            Err(err) => {
                fresh = None;
                if !backoff.pause() {
                    return Err(err);
                }
            }
        }
    }
}

/// A token no other restore uses: the connection's process, the time, and
/// std's per-process random keys.
fn token() -> String {
    use std::hash::{BuildHasher, RandomState};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let random = RandomState::new().hash_one(now);
    format!("{}-{}-{random:016x}", std::process::id(), now.as_nanos())
}

/// The arguments of the last command in `request` (an encoded request: the
/// command, perhaps after a CLIENT ID). Requests are RESP arrays of bulk
/// strings, so the reply parser reads them back.
fn last_request(request: &[u8]) -> Option<Vec<Vec<u8>>> {
    requests(request)?.pop()
}

/// Whether `request` sent `CLIENT ID` ahead of its command.
fn asked_client_id(request: &[u8]) -> bool {
    let Some(commands) = requests(request) else {
        return false;
    };
    commands.len() > 1
        && commands[..commands.len() - 1].iter().any(|args| {
            matches!(args.as_slice(), [client, id]
                if client.eq_ignore_ascii_case(b"CLIENT") && id.eq_ignore_ascii_case(b"ID"))
        })
}

/// Every command in `request`, each as its arguments.
fn requests(request: &[u8]) -> Option<Vec<Vec<Vec<u8>>>> {
    let mut decoder = Decoder::new(Limits::default());
    let mut rest = request;
    let mut all = Vec::new();
    while !rest.is_empty() {
        match decoder.decode(rest).ok()? {
            Decoded::Complete {
                value: Value::Array(items),
                used,
            } => {
                let args = items
                    .into_iter()
                    .map(|item| match item {
                        Value::Bulk(bytes) => Some(bytes),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()?;
                all.push(args);
                rest = &rest[used..];
            }
            _ => return None,
        }
    }
    Some(all)
}

fn request_cmd(args: &[Vec<u8>]) -> Cmd {
    let mut request = Cmd::default();
    request.args(args.iter().map(Vec::as_slice));
    request
}

fn name(args: &[Vec<u8>]) -> String {
    args.first()
        .map(|name| String::from_utf8_lossy(name).to_uppercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_read_back_from_its_encoding() {
        let mut out = Vec::new();
        cmd("CLIENT").arg("ID").encode(&mut out);
        cmd("BRPOP").arg("q").arg(b"\r\n").arg(1).encode(&mut out);
        let args = last_request(&out).unwrap();
        assert_eq!(
            args,
            [
                b"BRPOP".to_vec(),
                b"q".to_vec(),
                b"\r\n".to_vec(),
                b"1".to_vec()
            ]
        );
        assert_eq!(last_request(&out[..out.len() - 1]), None);
        assert!(asked_client_id(&out));
        let mut alone = Vec::new();
        cmd("BRPOP").arg("q").arg(1).encode(&mut alone);
        assert!(!asked_client_id(&alone));
    }
}
