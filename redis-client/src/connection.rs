//! One connection to Redis, in plain blocking style: a socket (`stream.rs`),
//! the read side (`reader.rs`: bytes to frames), a reused write buffer, and
//! the bookkeeping that keeps replies with their callers.
//!
//! ```text
//!   req_command / req_pipeline
//!     refuse what cannot work here (CLIENT REPLY OFF, MONITOR)
//!     session.note(cmd)      for every command sent: SELECT, MULTI, WATCH, ...
//!     known.effect(cmd)      away from the baseline: sticky; back: on its reply
//!                            (queued inside MULTI: known waits for EXEC's
//!                            reply, or its own if not +QUEUED)
//!     encode all, one write  unread += commands
//!     for each command:      read frames until the one that answers it;
//!                            RESP3 pushes and RESP2 pub/sub messages are
//!                            out of band: they go to the push handler;
//!                            known.settle(effect, reply is not an error)
//! ```
//!
//! Invariant: a connection whose reply was not fully read is never reused.
//! `unread` counts replies owed by the server; any I/O error, timeout or
//! protocol error marks the connection broken; a session that is not its
//! baseline (the state the handshake set up from the URL) holds state the
//! next user must not inherit. The pool checks all three
//! ([`Connection::is_reusable`]) and closes such a connection. A coroutine
//! killed mid-read unwinds with `unread > 0`, so its connection is closed;
//! unless the reply owed is a single blocking command's (`blocked`): then
//! the pool hands it to the reaper (`reaper.rs`), which reads that reply
//! and returns the connection in step.
//! See `docs/redis-client.md`, "The connection".

use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use crate::cmd::{cmd, read_deadline, Cmd, ConnectionLike};
use crate::error::{Error, Result, ServerError};
use crate::framing::{first_word, frame_items, out_of_band, pushed_items, refuse};
use crate::pubsub::Message;
use crate::push::{Invalidated, PushHandlers};
use crate::reader::Reader;
use crate::resp::{Limits, Value};
use crate::session::{
    is_confirmation, may_change_session, subscribe_kind, Effect, Replies, Session,
};
use crate::stream::{Context, Stream};
use crate::url::{ConnectionInfo, Protocol};

/// The request buffer's first size: `BRPOP list 1` encodes to 40 bytes; a
/// longer request grows it once, and it keeps that size.
const INITIAL_REQUEST: usize = 64;
/// A write buffer larger than this is given back when the pool takes the
/// connection back (a request of a large value must not be kept for good).
const TRIMMED_REQUEST: usize = 16 * 1024;
/// A write buffer larger than this is replaced before a blocking command.
const PARKED_REQUEST: usize = 1024;

/// The commands an atomic pipeline is wrapped in.
static MULTI: LazyLock<Cmd> = LazyLock::new(|| cmd("MULTI"));
static EXEC: LazyLock<Cmd> = LazyLock::new(|| cmd("EXEC"));
/// How a server at `maxclients` refuses a connection, before it closes it.
const MAX_CLIENTS: &str = "max number of clients reached";
/// Sent ahead of the first blocking command of a connection, in the same
/// write (no round trip of its own): the reaper needs the id to end that
/// connection's block with `CLIENT UNBLOCK` (`reaper.rs`).
static CLIENT_ID: LazyLock<Cmd> = LazyLock::new(|| cmd("CLIENT").arg("ID").clone());

/// A connection to one Redis server.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    /// Received bytes and the reply being parsed from them.
    reader: Reader,
    /// The encoded request being sent; reused, so small requests allocate nothing.
    out: Vec<u8>,
    /// What each command of the request being sent expects back; reused.
    expect: Vec<Expect>,
    socket_timeout: Option<Duration>,
    /// The read timeout set on the socket now (to skip redundant setsockopts).
    read_timeout: Option<Duration>,
    /// Replies the server owes us: requests written, replies not fully read.
    unread: usize,
    /// Why this connection must not be used again, if it must not.
    broken: Option<String>,
    /// The session as the commands sent so far left it (`session.rs`).
    session: Session,
    /// The session as far as replies confirm it (`session.rs`): a change
    /// away from the baseline is sticky, a move back needs its reply.
    known: Session,
    /// The session as the handshake left it; reusable only while `known`
    /// equals it.
    baseline: Session,
    /// The session-changing commands sent inside the open MULTI, in order.
    /// The framing session notes them when they are sent (in send order,
    /// like every command); the known session only once they are shown to
    /// have run: EXEC's reply is an array, or their own reply is not
    /// `+QUEUED` (the MULTI was refused, so they ran at once).
    queued: Transaction,
    /// For each EXEC or DISCARD sent whose reply is not read yet, the
    /// transaction it ends: noted in the known session once EXEC's reply
    /// shows it ran (an array); dropped on nil (a WATCH failed), an error
    /// (EXECABORT) or DISCARD's OK, and then a queued HELLO's protocol is
    /// taken back in the framing session (unless a later HELLO set it).
    executing: VecDeque<Transaction>,
    /// The session-changing commands filed in `queued` by the request being
    /// read, in order, one per `Expect::filed`: a reply other than
    /// `+QUEUED` shows the command ran, and the known session notes it then.
    filed: VecDeque<Cmd>,
    /// How many commands that set the framing session's `multi` (MULTI,
    /// EXEC, DISCARD, RESET) and its `protocol` (HELLO, RESET) were noted:
    /// a correction made when a reply is read (a refused MULTI, a dropped
    /// HELLO) applies only if no later command set the field since.
    multi_sets: u64,
    protocol_sets: u64,
    /// Where out-of-band frames go (shared with the pool).
    handlers: Rc<PushHandlers>,
    /// Set up with `CLIENT TRACKING ON REDIRECT` this id (`Setup`).
    tracking_redirect: Option<i64>,
    /// The server's id for this connection (`CLIENT ID`), learnt with the
    /// first blocking command sent.
    client_id: Option<i64>,
    /// `CLIENT ID` was sent once (asked once even if refused, as by an ACL).
    id_asked: bool,
    /// A single blocking command (BRPOP, BLMOVE, XREAD BLOCK, ...) was
    /// written and its reply is owed; only a kill, a timeout or a drop
    /// leaves it set, and then the pool hands the connection to the reaper
    /// (`reaper.rs`) instead of closing it.
    blocked: bool,
    /// What the pool's health check measures idleness from: when it was
    /// made, when it last went back to a pool that has a
    /// `health_check_interval` (a pool without one never sets it), or when
    /// the reaper read its owed reply. Not set per command, which would
    /// cost two clock reads per request.
    pub(crate) last_used: Instant,
}

/// What a pool adds to a connection's setup beyond its URL.
#[derive(Clone, Debug, Default)]
pub(crate) struct Setup {
    /// The pool's push handlers.
    pub(crate) handlers: Rc<PushHandlers>,
    /// `CLIENT TRACKING ON REDIRECT id` at connect (client-side caching).
    pub(crate) tracking_redirect: Option<i64>,
}

/// What one command sent expects back.
#[derive(Clone, Copy, Debug)]
struct Expect {
    replies: Replies,
    /// Its server-side blocking timeout, if it blocks (`ZERO`: forever).
    blocking: Option<Duration>,
    /// It is an EXEC sent inside MULTI: its reply settles the transaction's
    /// queued commands (`Connection::executing`).
    exec: bool,
    /// The connection was subscribed when it was sent (or it subscribes):
    /// only then can a RESP2 array be a published message, not its reply.
    subscribed: bool,
    /// What it does to the known session, settled when its reply is read
    /// (`None`: nothing, as for most commands).
    effect: Option<Effect>,
    /// It is a MULTI: the framing session's `multi` before it, and
    /// `multi_sets` after it. Refused (an error reply), it opened nothing:
    /// `multi` goes back, if no later command set it.
    multi: Option<(bool, u64)>,
    /// It was filed in `queued` (and `filed`): its reply says whether it
    /// was queued or ran.
    filed: bool,
}

/// The session-changing commands of one transaction, and what their HELLOs
/// did to the framing session's protocol.
#[derive(Debug, Default)]
struct Transaction {
    cmds: Vec<Cmd>,
    /// The protocol before its first HELLO, and `protocol_sets` after its
    /// last one.
    protocol: Option<(u8, u64)>,
    /// It ends with DISCARD, not EXEC.
    discard: bool,
}

/// Why a connection cannot go back to the pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NotReusable {
    /// An I/O error, timeout or protocol error left it out of step.
    Broken(String),
    /// Replies are owed, or part of one is buffered: the next reader would
    /// get someone else's answer.
    RepliesOwed(usize),
    /// Its session is not the baseline (a SELECT, MULTI, subscription, ...).
    Session(String),
    /// It was made in another context (another hub, or a plain thread).
    OtherContext(String),
}

impl std::fmt::Display for NotReusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReusable::Broken(why) => write!(f, "broken: {why}"),
            NotReusable::RepliesOwed(n) => write!(f, "{n} replies not fully read"),
            NotReusable::Session(what) => write!(f, "session state: {what}"),
            NotReusable::OtherContext(what) => f.write_str(what),
        }
    }
}

impl Connection {
    /// Connects and sets the connection up as the URL asks (AUTH, HELLO 3,
    /// SELECT, CLIENT SETNAME).
    pub fn open(info: &ConnectionInfo) -> Result<Connection> {
        Connection::open_with(info, &Setup::default()).map(|conn| *conn)
    }

    /// [`Connection::open`], plus what a pool adds; boxed, so that the pool
    /// and its callers move a pointer, not the whole connection.
    ///
    /// This is the deepest path a coroutine's stack takes (pool checkout,
    /// connect, park until the socket is writable), and a coroutine that
    /// stays within its stack's first page costs one page of memory, not
    /// two (the `brpop` bench's memory per connection). So the frames here
    /// stay small: the connection is built in a function of its own, the
    /// handshake runs only when the URL asks for one, and error text is
    /// formatted out of line.
    #[inline(never)]
    pub(crate) fn open_with(info: &ConnectionInfo, setup: &Setup) -> Result<Box<Connection>> {
        let stream = match Stream::connect(info) {
            Ok(stream) => stream,
            Err(err) => return Err(connect_error(info, err)),
        };
        let mut conn = Connection::assemble(stream, info, setup)?;
        if needs_handshake(info, setup) {
            conn.handshake(info, setup)?;
        }
        Ok(conn)
    }

    /// A connection over `stream`, before its handshake.
    #[inline(never)]
    fn assemble(stream: Stream, info: &ConnectionInfo, setup: &Setup) -> Result<Box<Connection>> {
        stream.set_write_timeout(info.socket_timeout)?;
        stream.set_read_timeout(info.socket_timeout)?;
        Ok(Box::new(Connection {
            stream,
            reader: Reader::new(info.limits),
            out: Vec::with_capacity(INITIAL_REQUEST),
            expect: Vec::new(),
            socket_timeout: info.socket_timeout,
            read_timeout: info.socket_timeout,
            unread: 0,
            broken: None,
            session: Session::new(),
            known: Session::new(),
            baseline: Session::new(),
            queued: Transaction::default(),
            executing: VecDeque::new(),
            filed: VecDeque::new(),
            multi_sets: 0,
            protocol_sets: 0,
            handlers: setup.handlers.clone(),
            tracking_redirect: setup.tracking_redirect,
            client_id: None,
            id_asked: false,
            blocked: false,
            last_used: Instant::now(),
        }))
    }

    /// Sets the session up as the URL asks; what it leaves is the baseline.
    #[inline(never)]
    #[cold]
    fn handshake(&mut self, info: &ConnectionInfo, setup: &Setup) -> Result<()> {
        if let Some(password) = &info.password {
            let mut auth = cmd("AUTH");
            if let Some(user) = &info.username {
                auth.arg(user);
            }
            auth.arg(password);
            self.req_command(&auth)?;
        }
        if info.protocol == Protocol::Resp3 {
            self.req_command(cmd("HELLO").arg(3))?;
        }
        if info.db != 0 {
            self.req_command(cmd("SELECT").arg(info.db))?;
        }
        if let Some(name) = &info.client_name {
            self.req_command(cmd("CLIENT").arg("SETNAME").arg(name))?;
        }
        if let Some(id) = setup.tracking_redirect {
            self.req_command(
                cmd("CLIENT")
                    .arg("TRACKING")
                    .arg("ON")
                    .arg("REDIRECT")
                    .arg(id),
            )?;
        }
        // AUTH and SETNAME taint a session; here they are what it starts as.
        self.session.tainted = None;
        self.baseline = self.session.clone();
        self.known = self.session.clone();
        Ok(())
    }

    /// Sets the parser's bounds (reply size and nesting) for this connection.
    pub fn set_limits(&mut self, limits: Limits) {
        self.reader.set_limits(limits);
    }

    /// Whether the connection can serve another user: not broken, every
    /// reply read, and its session as the handshake left it (no SELECT of
    /// another database, MULTI, WATCH, subscription, tracking or protocol
    /// change left over).
    pub fn is_reusable(&self) -> bool {
        self.not_reusable().is_none()
    }

    /// Why the connection cannot serve another user, if it cannot.
    pub(crate) fn not_reusable(&self) -> Option<NotReusable> {
        if let Some(why) = self.other_context() {
            return Some(NotReusable::OtherContext(why));
        }
        if let Some(why) = &self.broken {
            return Some(NotReusable::Broken(why.clone()));
        }
        if self.unread > 0 || !self.reader.is_idle() {
            return Some(NotReusable::RepliesOwed(self.unread));
        }
        let changed = self.known.changed_from(&self.baseline)?;
        Some(NotReusable::Session(changed.to_string()))
    }

    /// Why the connection is broken, if it is.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// The socket, in non-blocking mode, and the read side with whatever it
    /// holds: for a reader that never waits (`cache.rs`).
    pub(crate) fn into_nonblocking(self) -> Result<(Stream, Reader)> {
        let stream = self.stream.into_nonblocking()?;
        Ok((stream, self.reader))
    }

    /// The redirect of the `CLIENT TRACKING` this connection was set up with.
    pub(crate) fn tracking_redirect(&self) -> Option<i64> {
        self.tracking_redirect
    }

    /// Gives back the memory a large reply or request took (for the pool):
    /// the read buffer, the write buffer and the list of replies owed.
    pub(crate) fn trim_buffer(&mut self) {
        self.reader.trim();
        if self.out.capacity() > TRIMMED_REQUEST {
            self.out = Vec::with_capacity(INITIAL_REQUEST);
        }
        // Its entries are read only inside the call that wrote them (a
        // finished call leaves them stale, never empty): drop the room.
        if self.expect.capacity() > 2 {
            self.expect = Vec::new();
        }
        if self.filed.capacity() > 2 && self.filed.is_empty() {
            self.filed = VecDeque::new();
        }
    }

    /// Notes `cmd` in the session and appends it to the request being built;
    /// returns what it expects back.
    fn add(&mut self, cmd: &Cmd) -> Expect {
        // Inside MULTI a command is only queued: it answers QUEUED at once,
        // and a blocking command does not block when EXEC runs it.
        let queued = self.session.multi;
        let subscribed = self.session.subscribed;
        cmd.encode(&mut self.out);
        let changing = may_change_session(cmd.name());
        if queued && changing {
            return self.add_queued(cmd, subscribed);
        }
        let (replies, multi) = match changing {
            true => self.note_changing(cmd),
            false => (Replies::One, None),
        };
        let effect = self.known.effect(&self.baseline, queued, cmd);
        if queued {
            Expect {
                replies: Replies::One,
                blocking: None,
                exec: false,
                subscribed,
                effect,
                multi,
                filed: false,
            }
        } else {
            Expect {
                subscribed: subscribed || replies != Replies::One,
                replies,
                blocking: cmd.server_timeout(),
                exec: false,
                effect,
                multi,
                filed: false,
            }
        }
    }

    /// Notes a command that may change the session in the framing session,
    /// counting the commands that set `multi` and `protocol`; for a MULTI,
    /// also what `Expect::multi` keeps.
    #[inline(never)]
    fn note_changing(&mut self, cmd: &Cmd) -> (Replies, Option<(bool, u64)>) {
        let name = cmd.name();
        let is = |word: &[u8]| name.eq_ignore_ascii_case(word);
        let before = self.session.multi;
        let opens = is(b"MULTI");
        let reset = is(b"RESET");
        if opens || reset || is(b"EXEC") || is(b"DISCARD") {
            self.multi_sets += 1;
        }
        if reset || is(b"HELLO") {
            self.protocol_sets += 1;
        }
        let replies = self.session.note_cmd(cmd);
        (replies, opens.then_some((before, self.multi_sets)))
    }

    /// [`Connection::add`] for a command inside MULTI that may change the
    /// session. The framing session notes it now, in send order; the server
    /// queues it, to run only if EXEC runs the transaction: so the known
    /// session waits, with the command filed in `queued`, for its own reply
    /// (not `+QUEUED`: it ran at once, the MULTI was refused) or EXEC's
    /// (`settle_exec`). The transaction's own words are not queued: EXEC and
    /// DISCARD end it, and MULTI, WATCH, QUIT and RESET act at once, as
    /// outside MULTI (RESET ends the transaction, and drops what waits).
    #[inline(never)]
    #[cold]
    fn add_queued(&mut self, cmd: &Cmd, subscribed: bool) -> Expect {
        let name = cmd.name();
        let is = |word: &[u8]| name.eq_ignore_ascii_case(word);
        let protocol_before = self.session.protocol;
        let (_, multi) = self.note_changing(cmd);
        let mut expect = Expect {
            replies: Replies::One,
            blocking: None,
            exec: false,
            subscribed,
            effect: None,
            multi,
            filed: false,
        };
        let discard = is(b"DISCARD");
        if discard || is(b"EXEC") {
            let mut transaction = std::mem::take(&mut self.queued);
            transaction.discard = discard;
            self.executing.push_back(transaction);
            expect.exec = true;
        } else if is(b"RESET") {
            self.queued = Transaction::default();
        } else if !(is(b"MULTI") || is(b"WATCH") || is(b"QUIT")) {
            if is(b"HELLO") {
                let first = self.queued.protocol.map_or(protocol_before, |(p, _)| p);
                self.queued.protocol = Some((first, self.protocol_sets));
            }
            self.queued.cmds.push(cmd.clone());
            self.filed.push_back(cmd.clone());
            expect.filed = true;
            return expect;
        }
        expect.effect = self.known.effect(&self.baseline, true, cmd);
        expect
    }

    /// The reply of a MULTI or of a command filed as queued was read. A
    /// refused MULTI (an error reply) opened nothing: the framing session's
    /// `multi` goes back to what it was, unless a later command set it, and
    /// what was filed since is no transaction (each such command's own
    /// reply shows it ran). A filed command whose reply is not `+QUEUED`
    /// ran at once: the known session notes it now, as away from the
    /// baseline (the known session keeps a refused MULTI's own change: the
    /// connection is closed rather than reused, the safe side).
    #[inline(never)]
    #[cold]
    fn settle_queued(&mut self, expect: &Expect, reply: &Value) {
        if let Some((before, sets)) = expect.multi {
            if matches!(reply, Value::Error(_)) && sets == self.multi_sets {
                self.session.multi = before;
                if !before {
                    self.queued = Transaction::default();
                }
            }
        }
        if !expect.filed {
            return;
        }
        let Some(cmd) = self.filed.pop_front() else {
            return;
        };
        if !matches!(reply, Value::Status(queued) if queued == "QUEUED") {
            if cmd.name().eq_ignore_ascii_case(b"HELLO") {
                // It ran: no dropped transaction takes its protocol back.
                self.protocol_sets += 1;
            }
            self.known.effect(&self.baseline, true, &cmd);
        }
    }

    /// EXEC's or DISCARD's reply was read. If the transaction ran (EXEC
    /// answered an array), its queued session changes happened, and the
    /// known session notes them (the framing session did when they were
    /// sent). Each counts as away from the baseline whatever its own reply
    /// inside EXEC's array (conservative: a change that failed only costs
    /// the connection its reuse). If it was dropped (EXEC answered nil: a
    /// WATCHed key changed; EXECABORT: a command was refused while queued;
    /// DISCARD answered OK), they never happened: the framing session takes
    /// a queued HELLO's protocol back, unless a later HELLO set it since.
    /// Any other reply (`EXEC without MULTI`: the MULTI was refused) drops
    /// nothing: the commands ran at once, and were noted by their replies.
    #[inline(never)]
    #[cold]
    fn settle_exec(&mut self, reply: &Value) {
        let Some(transaction) = self.executing.pop_front() else {
            return;
        };
        let dropped = match reply {
            Value::Array(_) if !transaction.discard => {
                for cmd in &transaction.cmds {
                    self.known.effect(&self.baseline, true, cmd);
                }
                false
            }
            Value::Status(ok) => transaction.discard && ok == "OK",
            Value::Nil => !transaction.discard,
            Value::Error(err) => !transaction.discard && err.code == "EXECABORT",
            _ => false,
        };
        if let (true, Some((before, sets))) = (dropped, transaction.protocol) {
            if sets == self.protocol_sets {
                self.session.protocol = before;
            }
        }
    }

    /// Writes the request built in `out` and counts `replies` as owed.
    fn send(&mut self, replies: usize) -> Result<()> {
        let owed_before = self.unread;
        self.unread += replies;
        if let Err(err) = self.stream.write_all(&self.out) {
            let closed = matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            );
            // Nothing was owed, so whatever waits unread is no reply to a
            // request: it is what the server said before it closed.
            if closed && owed_before == 0 {
                if let Some(said) = self.farewell() {
                    self.broken = Some(said.to_string());
                    return Err(Error::Server(said));
                }
            }
            return Err(self.fail(unwinding_write(err.into())));
        }
        self.reader.wrote();
        Ok(())
    }

    /// After a write failed because the server had closed the connection:
    /// the error the server wrote before it closed, if one waits unread. A
    /// server at `maxclients` accepts, writes `ERR max number of clients
    /// reached` and closes; a first request that loses that race fails to
    /// write, but the server's reason is still in the socket. The read does
    /// not park first (nothing was written, so `wrote` was not called): the
    /// peer has closed, so it returns at once with the bytes or end of file.
    fn farewell(&mut self) -> Option<ServerError> {
        match self.reader.next_frame(&mut self.stream) {
            Ok(Value::Error(said)) => Some(said),
            _ => None,
        }
    }

    /// For a subscriber: sends `cmd` without counting a reply as owed (its
    /// confirmations are read as messages).
    pub(crate) fn send_unowed(&mut self, cmd: &Cmd) -> Result<()> {
        self.check()?;
        refuse(cmd)?;
        self.out.clear();
        self.filed.clear();
        self.add(cmd);
        self.send(0)
    }

    /// Reads the reply `expect` describes.
    fn read_reply(&mut self, expect: &Expect) -> Result<Value> {
        self.set_read_timeout(read_deadline(self.socket_timeout, expect.blocking))?;
        // Only the wait itself stays in this frame, which a parked command
        // sits in: the bookkeeping either side is out of line.
        let value = match expect.replies {
            Replies::One => self.next_reply(expect.subscribed, false),
            Replies::Confirmations(n) => self.confirmations(n),
            Replies::AllOf(kind) => self.confirmations(self.session.unsubscribe_all_replies(kind)),
        };
        match value {
            Ok(value) => Ok(self.reply_read(expect, value)),
            Err(err) => Err(self.reply_failed(err)),
        }
    }

    /// A read that failed: a blocking command's reply cut short by a
    /// timeout is still owed, and the reaper may read it yet; anything
    /// else ends it.
    #[inline(never)]
    #[cold]
    fn reply_failed(&mut self, err: Error) -> Error {
        if !(self.blocked && err.is_timeout()) {
            self.blocked = false;
        }
        self.fail(unwinding(err))
    }

    /// Settles what a reply that arrived decides: the transaction and
    /// cache effects its command was filed with.
    #[inline(never)]
    fn reply_read(&mut self, expect: &Expect, value: Value) -> Value {
        if let Some(effect) = &expect.effect {
            // EXECABORT is an error reply, but it did end the transaction
            // (and its WATCH): the server discarded both.
            let ran = match &value {
                Value::Error(err) => expect.exec && err.code == "EXECABORT",
                _ => true,
            };
            self.known.settle(effect, ran);
        }
        if expect.multi.is_some() || expect.filed {
            self.settle_queued(expect, &value);
        }
        if expect.exec {
            self.settle_exec(&value);
        }
        self.unread = self.unread.saturating_sub(1);
        value
    }

    #[inline(never)]
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        if timeout != self.read_timeout {
            self.stream
                .set_read_timeout(timeout)
                .map_err(|err| self.fail(err.into()))?;
            self.read_timeout = timeout;
        }
        Ok(())
    }

    /// The next frame that answers a command. Out-of-band frames (RESP3
    /// pushes, RESP2 pub/sub messages) never answer one: they go to the push
    /// handler. A subscription confirmation answers only a subscribe command
    /// (`confirmation`).
    #[inline(always)]
    fn next_reply(&mut self, subscribed: bool, confirmation: bool) -> Result<Value> {
        loop {
            let frame = self.reader.next_frame(&mut self.stream)?;
            if out_of_band(&frame, &self.session, subscribed, confirmation) {
                self.route(frame);
            } else {
                return Ok(frame);
            }
        }
    }

    /// Hands an out-of-band frame to its handler (`push.rs`).
    #[inline(never)]
    #[cold]
    fn route(&mut self, frame: Value) {
        self.handlers.deliver(frame);
    }

    /// Sets what receives pub/sub messages that arrive out of band on this
    /// connection (a RESP3 connection that subscribed, or RESP2 messages
    /// between the replies of a subscribed connection). A pooled connection
    /// shares its pool's handler ([`Client::on_message`](crate::Client::on_message)).
    /// Setting it here leaves the pool's handlers alone.
    pub fn on_message(&mut self, handler: impl Fn(Message) + 'static) {
        self.handlers = Rc::new(self.handlers.copy());
        self.handlers.set_message(handler);
    }

    /// Sets what receives the keys of `invalidate` pushes (RESP3 with
    /// `CLIENT TRACKING ON`): keys whose cached values are stale.
    pub fn on_invalidate(&mut self, handler: impl Fn(Invalidated) + 'static) {
        self.handlers = Rc::new(self.handlers.copy());
        self.handlers.set_invalidate(handler);
    }

    /// The `n` confirmations of a subscribe command: the one itself when `n`
    /// is 1, an array of them otherwise; or the error reply that refused it.
    #[inline(never)]
    fn confirmations(&mut self, n: usize) -> Result<Value> {
        let mut all = Vec::new();
        while all.len() < n {
            let frame = self.next_reply(true, true)?;
            let items = frame_items(&frame);
            match (first_word(items), items.get(2)) {
                (Some(kind), Some(Value::Int(total))) if is_confirmation(kind) => {
                    self.session.confirmed(kind, *total);
                }
                // Refused (an error, or QUEUED inside MULTI): no confirmations follow.
                _ if all.is_empty() => return Ok(frame),
                _ => {
                    return Err(Error::Protocol(format!(
                        "unexpected frame {frame:?} among subscription confirmations"
                    )))
                }
            }
            all.push(frame);
        }
        Ok(if n == 1 {
            all.pop().expect("one confirmation")
        } else {
            Value::Array(all)
        })
    }

    /// For a subscriber: the next frame of any kind, or `Ok(None)` if
    /// `timeout` passes before any byte of one arrives (then the connection
    /// is still in step and stays usable; a timeout mid-frame breaks it).
    pub(crate) fn read_push(&mut self, timeout: Option<Duration>) -> Result<Option<Value>> {
        self.check()?;
        self.set_read_timeout(timeout)?;
        match self.reader.next_frame(&mut self.stream) {
            Ok(value) => {
                if let Some(items) = pushed_items(&value) {
                    if let (Some(kind), Some(Value::Int(total))) = (first_word(items), items.get(2))
                    {
                        if is_confirmation(kind) {
                            self.session.confirmed(kind, *total);
                        }
                    }
                }
                Ok(Some(value))
            }
            Err(Error::Timeout(_)) if self.reader.is_idle() => Ok(None),
            Err(err) => Err(self.fail(err)),
        }
    }

    /// Whether it may run a command here: not broken, and made in this context.
    fn check(&self) -> Result<()> {
        if let Some(why) = self.other_context() {
            return Err(Error::Usage(why));
        }
        if self.blocked {
            return Err(Error::Usage(
                "this connection still owes the reply of a blocking command that was cut short; \
                 it cannot be reused"
                    .into(),
            ));
        }
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(Error::Usage(format!(
                "this connection is broken and cannot be reused ({why})"
            ))),
        }
    }

    /// Why the caller's context is not this connection's, if it is not: a
    /// std socket would block a hub's thread, a cooperative one cannot wait
    /// outside its own hub.
    fn other_context(&self) -> Option<String> {
        let (made, here) = (self.stream.context(), Context::current());
        (made != here).then(|| {
            format!("this connection was made on {made} and cannot be used on {here}; open another")
        })
    }

    /// Refuses, before anything is sent, a subscribe-family command that
    /// would be queued inside MULTI (an atomic pipeline, a MULTI earlier in
    /// the pipeline, or one left open): its confirmations would come back
    /// inside EXEC's reply, and the subscription would outlive the
    /// transaction unseen.
    fn refuse_queued_subscribe(&self, cmds: &[Cmd], atomic: bool) -> Result<()> {
        let mut multi = atomic || self.session.multi;
        for cmd in cmds {
            let name = cmd.name();
            if !may_change_session(name) {
                continue;
            }
            if name.eq_ignore_ascii_case(b"MULTI") {
                multi = true;
            } else if name.eq_ignore_ascii_case(b"EXEC") || name.eq_ignore_ascii_case(b"DISCARD") {
                multi = false;
            } else if multi && subscribe_kind(name).is_some() {
                return Err(Error::Usage(format!(
                    "{} inside MULTI cannot be kept in step with its confirmations: \
                     use PubSub (Client::pubsub), or a single subscribe command outside a transaction",
                    String::from_utf8_lossy(name)
                )));
            }
        }
        Ok(())
    }

    /// For the reaper: the server's id for this connection and the request
    /// whose reply is owed, if a blocking command's reply is owed and the
    /// connection is otherwise in step (no I/O or protocol error).
    pub(crate) fn orphaned_block(&self) -> Option<(Option<i64>, &[u8])> {
        (self.blocked && self.broken.is_none() && self.unread > 0)
            .then_some((self.client_id, self.out.as_slice()))
    }

    /// For the reaper: the next owed reply, or `Ok(None)` if `wait` passes
    /// first (the parser keeps what it has, so the next call resumes).
    pub(crate) fn read_owed(&mut self, wait: Duration) -> Result<Option<Value>> {
        if let Some(why) = self.other_context() {
            return Err(Error::Usage(why));
        }
        self.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        match self.next_reply(false, false) {
            Ok(value) => {
                self.unread = self.unread.saturating_sub(1);
                if self.unread == 0 {
                    self.blocked = false;
                }
                if self.client_id.is_none() && self.unread > 0 {
                    if let Value::Int(id) = value {
                        self.client_id = Some(id);
                    }
                }
                self.last_used = Instant::now();
                Ok(Some(value))
            }
            Err(err) if err.is_timeout() => Ok(None),
            Err(err) => {
                self.blocked = false;
                Err(self.fail(err))
            }
        }
    }

    /// For the reaper, before it writes a restore: whether the server has
    /// closed this connection already (its end of file waits unread behind
    /// the reply just read). A write into such a socket succeeds and only
    /// the read fails, which would make a restore that never ran look as if
    /// it may have. Waits a millisecond for a frame or the close; either
    /// breaks the connection (nothing is owed).
    pub(crate) fn closed_by_peer(&mut self) -> bool {
        if self
            .set_read_timeout(Some(Duration::from_millis(1)))
            .is_err()
        {
            return true;
        }
        match self.reader.next_frame(&mut self.stream) {
            Err(err) if err.is_timeout() => false,
            Err(err) => {
                self.fail(err);
                true
            }
            Ok(frame) => {
                self.broken = Some(format!("an unasked frame arrived: {frame:?}"));
                true
            }
        }
    }

    /// Ends a reaping that cannot finish: the connection is closed, never pooled.
    pub(crate) fn abandon(&mut self, why: &str) {
        self.blocked = false;
        self.broken = Some(why.to_owned());
    }

    /// The server's id for this connection, once a blocking command learnt it.
    pub(crate) fn client_id(&self) -> Option<i64> {
        self.client_id
    }

    /// Records a fatal error: the connection is unusable from now on.
    fn fail(&mut self, err: Error) -> Error {
        // A blocked command's timeout leaves the connection in step (the
        // parser resumes where it stopped): its owed reply keeps it out of
        // the pool until the reaper has read it.
        if err.breaks_connection() && !(self.blocked && err.is_timeout()) {
            self.broken = Some(err.to_string());
        }
        err
    }
}

/// An error reading a reply while the coroutine unwinds (a `Drop` that runs
/// a command during a kill or a panic): the request was written, so the
/// command may well have run, but a coroutine that unwinds cannot park to
/// wait for its reply. Say so, rather than "cannot wait".
fn unwinding(err: Error) -> Error {
    unwinding_during(
        "the command was sent and may have run on the server, but its reply cannot be read",
        err,
    )
}

/// The same for a write that had to wait: the commands written before it
/// stopped may have run.
fn unwinding_write(err: Error) -> Error {
    unwinding_during(
        "the request was cut short and the commands written before the cut may have run on the server",
        err,
    )
}

fn unwinding_during(what: &str, err: Error) -> Error {
    if !std::thread::panicking() {
        return err;
    }
    Error::Usage(format!(
        "{what}: this coroutine is unwinding (killed or panicking), and an unwinding \
         coroutine cannot wait ({err})"
    ))
}

/// Whether the URL or the pool asks for anything at connect: a fresh
/// connection's session (database 0, RESP2, no name) is the baseline as it is.
fn needs_handshake(info: &ConnectionInfo, setup: &Setup) -> bool {
    info.password.is_some()
        || info.protocol == Protocol::Resp3
        || info.db != 0
        || info.client_name.is_some()
        || setup.tracking_redirect.is_some()
}

#[inline(never)]
#[cold]
fn connect_error(info: &ConnectionInfo, err: io::Error) -> Error {
    let kind = err.kind();
    let err = io::Error::new(kind, format!("cannot connect to {}: {err}", info.addr));
    Error::from(err).unsent()
}

/// The halves of `req_command`, kept out of line so that the frames a
/// parked blocking command sits in stay small: a parked BRPOP in the demo
/// touches one 4 KiB page of its stack (docs/coroutines-and-stacks.md).
impl Connection {
    /// Checks and sends one command (with CLIENT ID before the first
    /// blocking one), leaving what to expect of each in `self.expect`;
    /// returns whether CLIENT ID went first. Out of line: its frame is gone
    /// before the command waits for its reply.
    #[inline(never)]
    fn send_command(&mut self, cmd: &Cmd) -> Result<bool> {
        self.check()?;
        refuse(cmd)?;
        // Alone and outside MULTI, no command can be a queued subscribe.
        if self.session.multi {
            self.refuse_queued_subscribe(std::slice::from_ref(cmd), false)?;
        }
        self.out.clear();
        self.filed.clear();
        let blocking = cmd.server_timeout().is_some() && !self.session.multi;
        if blocking && self.out.capacity() > PARKED_REQUEST {
            // A command that may park for long does not sit on what an
            // earlier pipeline or large value grew.
            self.out = Vec::with_capacity(INITIAL_REQUEST);
        }
        let id = (blocking && !self.id_asked && !self.session.subscribed).then(|| {
            self.id_asked = true;
            self.add(&CLIENT_ID)
        });
        let expect = self.add(cmd);
        // CLIENT ID's reply gets the blocking command's deadline: the two
        // are one request, and a stalled server delays both alike.
        let id = id.map(|id| Expect {
            blocking: expect.blocking,
            ..id
        });
        // A write cut short never delivered the command's last byte: it
        // cannot have run (nor blocked). A failure after the write is
        // ambiguous.
        self.send(1 + usize::from(id.is_some()))
            .map_err(Error::unsent)?;
        if blocking {
            // A blocking command parks for its reply, maybe for long: its
            // read buffer is given back meanwhile (256 bytes for each of
            // thousands of parked clients). The request stays: a reaper
            // reads it back if the caller is killed.
            self.reader.wrote_blocking();
        }
        self.blocked = blocking;
        // Exactly what one command needs: a first push would take room for
        // four (544 bytes), and 10,000 parked clients each keep theirs; a
        // list a pipeline grew is replaced, not kept.
        let need = 1 + usize::from(id.is_some());
        if self.expect.capacity() > 2 {
            self.expect = Vec::new();
        }
        self.expect.clear();
        self.expect.reserve_exact(need);
        self.expect.extend(id);
        self.expect.push(expect);
        Ok(id.is_some())
    }

    /// The replies to what `send_command` sent: CLIENT ID's first, if it
    /// went, then the command's.
    fn command_reply(&mut self, expect: &[Expect], with_id: bool) -> Result<Value> {
        let (last, id) = expect.split_last().expect("send_command files the command");
        if with_id {
            self.read_client_id(&id[0])?;
        }
        let reply = self.read_reply(last);
        self.command_replied(reply)
    }

    /// What a single command's reply, read, makes of the connection.
    #[inline(never)]
    fn command_replied(&mut self, reply: Result<Value>) -> Result<Value> {
        let reply = reply.map_err(Error::after_write);
        if reply.is_ok() {
            self.blocked = false;
        }
        match reply? {
            Value::Error(err) => Err(self.server_refusal(err)),
            value => Ok(value),
        }
    }

    /// Reads the reply to the CLIENT ID sent before the first blocking
    /// command and notes the id for the reaper. A server at maxclients
    /// answers the first request with its refusal and closes: that is the
    /// command's answer too.
    #[inline(never)]
    #[cold]
    fn read_client_id(&mut self, id: &Expect) -> Result<()> {
        let reply = self.read_reply(id);
        self.client_id_replied(reply)
    }

    /// Notes CLIENT ID's reply (see `read_client_id`).
    #[inline(never)]
    #[cold]
    fn client_id_replied(&mut self, reply: Result<Value>) -> Result<()> {
        match reply.map_err(Error::after_write)? {
            Value::Int(id) => self.client_id = Some(id),
            Value::Error(err) if err.message.starts_with(MAX_CLIENTS) => {
                self.blocked = false;
                self.broken = Some(err.to_string());
                return Err(Error::Server(err));
            }
            // Refused (an ACL without CLIENT ID): no reaper for this one.
            _ => {}
        }
        Ok(())
    }

    /// An error reply to a single command; a maxclients refusal marks the
    /// connection broken (the server closes it).
    #[inline(never)]
    #[cold]
    fn server_refusal(&mut self, err: ServerError) -> Error {
        if err.message.starts_with(MAX_CLIENTS) {
            self.broken = Some(err.to_string());
        }
        Error::Server(err)
    }
}

impl ConnectionLike for Connection {
    fn req_command(&mut self, cmd: &Cmd) -> Result<Value> {
        let with_id = self.send_command(cmd)?;
        // What to expect stays in the connection's own list, read by
        // reference: the frame a parked command sits in holds no copies.
        let expect = std::mem::take(&mut self.expect);
        let reply = self.command_reply(&expect, with_id);
        self.expect = expect;
        reply
    }

    fn req_pipeline(&mut self, cmds: &[Cmd], atomic: bool) -> Result<Vec<Value>> {
        self.check()?;
        cmds.iter().try_for_each(refuse)?;
        self.refuse_queued_subscribe(cmds, atomic)?;
        self.out.clear();
        self.filed.clear();
        let mut expect = std::mem::take(&mut self.expect);
        expect.clear();
        let (multi, exec) = match atomic {
            true => (Some(&*MULTI), Some(&*EXEC)),
            false => (None, None),
        };
        for cmd in multi.into_iter().chain(cmds).chain(exec) {
            expect.push(self.add(cmd));
        }
        // Commands before a cut in the write may have run: every failure
        // here is ambiguous.
        let result = self
            .send(expect.len())
            .and_then(|()| {
                let mut replies = Vec::with_capacity(expect.len());
                for one in &expect {
                    replies.push(self.read_reply(one)?);
                }
                Ok(replies)
            })
            .map_err(Error::after_write);
        self.expect = expect;
        result
    }
}
