//! One connection to Redis: a socket, a read buffer and a write buffer, in
//! plain blocking style.
//!
//! The socket is greenhub's cooperative one when the connection is opened in
//! a coroutine, and std's when it is opened on a plain OS thread: the code
//! above [`Stream`] is the same for both. A request is encoded into the reused
//! write buffer and written in one call. The reply is parsed by the
//! connection's [`Decoder`] (`resp/decode.rs`, no I/O), which keeps a partial
//! reply between reads: each read's bytes are parsed once, and the read
//! buffer only ever holds the start of an unfinished line, so its size
//! follows the reads, not the replies.
//!
//! Reads obey one rule, because readiness is edge-triggered: a read tries
//! the socket first, and parks only on `WouldBlock`. The one exception is the
//! first read right after a write, with nothing buffered: the reply to that
//! write cannot be in the kernel yet, its arrival is an edge still to come,
//! and parking at once saves a read that would only say `WouldBlock`. Every
//! other read (the second reply of a pipeline, a pub/sub message that came
//! while the subscriber was busy) may find bytes whose edge was announced
//! while nobody waited, so it must try.
//!
//! Invariant: a connection whose reply was not fully read is never reused.
//! `unread` counts replies owed by the server; any I/O error, timeout or
//! protocol error marks the connection broken; the pool checks both
//! ([`Connection::is_reusable`]) and closes such a connection. A coroutine
//! killed mid-read unwinds with `unread > 0`, so its connection is closed.
//! See `docs/redis-client.md`, "The connection".

use std::io;
use std::time::{Duration, Instant};

use crate::cmd::{cmd, Cmd, ConnectionLike};
use crate::error::{Error, Result};
use crate::resp::{Decoded, Decoder, Limits, Value};
use crate::stream::Stream;
use crate::url::ConnectionInfo;

/// The read buffer's first size: most replies are a few bytes (BRPOP's nil
/// is 5), and 10,000 parked connections with 16 KiB each would be 160 MiB.
/// A read that fills the buffer doubles it, since more is likely waiting.
const INITIAL_BUFFER: usize = 256;
/// The read buffer's largest size: 64 KiB per read system call covers a
/// large reply in few calls, and the buffer must also hold the start of one
/// unfinished line, which the decoder bounds at 64 KiB (`MAX_LINE`).
const MAX_BUFFER: usize = 128 * 1024;
/// The request buffer's first size: `BRPOP list 1` encodes to 40 bytes; a
/// longer request grows it once, and it keeps that size.
const INITIAL_REQUEST: usize = 64;

/// A connection to one Redis server.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    /// Received bytes; `buf[start..end]` is not consumed by the decoder yet
    /// (at most the start of an unfinished line). Between `INITIAL_BUFFER`
    /// and `MAX_BUFFER` long; trimmed back when the pool takes it back.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The reply being parsed, kept between reads.
    decoder: Decoder,
    /// The encoded request being sent; reused, so small requests allocate nothing.
    out: Vec<u8>,
    socket_timeout: Option<Duration>,
    /// The read timeout set on the socket now (to skip redundant setsockopts).
    read_timeout: Option<Duration>,
    /// Replies the server owes us: requests written, replies not fully read.
    unread: usize,
    /// Set by a successful write, cleared by the next read: only then may a
    /// read park before trying (see the module doc).
    park_first: bool,
    /// Why this connection must not be used again, if it must not.
    broken: Option<String>,
    /// Set while subscribed, inside MULTI or with a WATCH: state the next
    /// user must not inherit.
    pub(crate) dirty: bool,
    /// Inside MULTI or holding a WATCH; cleared by EXEC, DISCARD, UNWATCH.
    in_transaction: bool,
    pub(crate) last_used: Instant,
}

impl Connection {
    /// Connects and sets the connection up (AUTH, SELECT, CLIENT SETNAME).
    pub fn open(info: &ConnectionInfo) -> Result<Connection> {
        let stream = Stream::connect(info).map_err(|err| connect_error(info, err))?;
        stream.set_write_timeout(info.socket_timeout)?;
        stream.set_read_timeout(info.socket_timeout)?;
        let mut conn = Connection {
            stream,
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            decoder: Decoder::new(info.limits),
            out: Vec::with_capacity(INITIAL_REQUEST),
            socket_timeout: info.socket_timeout,
            read_timeout: info.socket_timeout,
            unread: 0,
            park_first: false,
            broken: None,
            dirty: false,
            in_transaction: false,
            last_used: Instant::now(),
        };
        conn.handshake(info)?;
        Ok(conn)
    }

    fn handshake(&mut self, info: &ConnectionInfo) -> Result<()> {
        if let Some(password) = &info.password {
            let mut auth = cmd("AUTH");
            if let Some(user) = &info.username {
                auth.arg(user);
            }
            auth.arg(password);
            self.req_command(&auth)?;
        }
        if info.db != 0 {
            self.req_command(cmd("SELECT").arg(info.db))?;
        }
        if let Some(name) = &info.client_name {
            self.req_command(cmd("CLIENT").arg("SETNAME").arg(name))?;
        }
        Ok(())
    }

    /// Sets the parser's bounds (reply size and nesting) for this connection.
    pub fn set_limits(&mut self, limits: Limits) {
        self.decoder.set_limits(limits);
    }

    /// Whether the connection can serve another request: not broken, every
    /// reply read, no subscription, transaction or WATCH left over.
    pub fn is_reusable(&self) -> bool {
        self.broken.is_none() && self.unread == 0 && !self.dirty && !self.in_transaction
    }

    /// Why the connection is broken, if it is.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Writes `packed` (one or more encoded commands) and counts `replies` as owed.
    pub(crate) fn send(&mut self, packed: &[u8], replies: usize) -> Result<()> {
        self.check()?;
        self.unread += replies;
        self.last_used = Instant::now();
        let written = self.stream.write_all(packed);
        written.map_err(|err| self.fail(err.into()))?;
        self.park_first = true;
        Ok(())
    }

    /// Reads the next reply; `blocking` extends the read deadline by a
    /// blocking command's server-side timeout (`ZERO`: no deadline).
    pub(crate) fn read_reply(&mut self, blocking: Option<Duration>) -> Result<Value> {
        self.check()?;
        let timeout = match (self.socket_timeout, blocking) {
            (_, Some(Duration::ZERO)) => None,
            (Some(socket), Some(server)) => Some(socket + server),
            (socket, _) => socket,
        };
        if timeout != self.read_timeout {
            self.stream
                .set_read_timeout(timeout)
                .map_err(|err| self.fail(err.into()))?;
            self.read_timeout = timeout;
        }
        let value = self.parse_reply().map_err(|err| self.fail(err))?;
        self.unread = self.unread.saturating_sub(1);
        self.last_used = Instant::now();
        Ok(value)
    }

    /// Reads until the decoder has a whole value.
    fn parse_reply(&mut self) -> Result<Value> {
        loop {
            match self.decoder.decode(&self.buf[self.start..self.end]) {
                Ok(Decoded::Complete { value, used }) => {
                    self.start += used;
                    if self.start == self.end {
                        (self.start, self.end) = (0, 0);
                    }
                    return Ok(value);
                }
                Ok(Decoded::Incomplete { used, .. }) => self.start += used,
                Err(err) => return Err(Error::Protocol(err.0)),
            }
            self.fill()?;
        }
    }

    /// Reads once into the buffer's free space, making some first.
    fn fill(&mut self) -> Result<()> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buf.len() {
            // What is left is the start of one unfinished line: move it to
            // the front, and grow if it fills the buffer alone.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() && self.buf.len() < MAX_BUFFER {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        // Only the first read after a write, with nothing buffered or held,
        // may park first: the reply it waits for is an edge still to come.
        let park_first = std::mem::take(&mut self.park_first);
        if park_first && self.end == 0 && self.decoder.is_idle() {
            self.stream.wait_readable()?;
        }
        let n = self.stream.read(&mut self.buf[self.end..])?;
        if n == 0 {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        self.end += n;
        if self.end == self.buf.len() && self.buf.len() < MAX_BUFFER {
            // The read filled the space it had: more is likely waiting.
            self.buf.resize(self.buf.len() * 2, 0);
        }
        Ok(())
    }

    /// Gives back the memory a large reply made the read buffer take, once
    /// nothing is buffered (the pool calls it when the connection is idle).
    pub(crate) fn trim_buffer(&mut self) {
        if self.buf.len() > INITIAL_BUFFER && self.start == self.end {
            self.buf = vec![0; INITIAL_BUFFER];
            (self.start, self.end) = (0, 0);
        }
    }

    /// For a subscriber: the next pushed message, or `Ok(None)` if `timeout`
    /// passes before any byte of one arrives (then the connection is still in
    /// step and stays usable; a timeout mid-message breaks it).
    pub(crate) fn read_push(&mut self, timeout: Option<Duration>) -> Result<Option<Value>> {
        self.check()?;
        if timeout != self.read_timeout {
            self.stream
                .set_read_timeout(timeout)
                .map_err(|err| self.fail(err.into()))?;
            self.read_timeout = timeout;
        }
        match self.parse_reply() {
            Ok(value) => Ok(Some(value)),
            Err(Error::Timeout(_)) if self.start == self.end && self.decoder.is_idle() => Ok(None),
            Err(err) => Err(self.fail(err)),
        }
    }

    /// Notes session state a command leaves behind. MULTI and WATCH last
    /// until EXEC, DISCARD or UNWATCH; SELECT, SUBSCRIBE and MONITOR change
    /// the session for good. Either way the next pool user must not inherit it.
    fn track_session(&mut self, cmd: &Cmd) {
        let Some(name) = cmd.arg_bytes().next() else {
            return;
        };
        let is = |word: &[u8]| name.eq_ignore_ascii_case(word);
        if is(b"MULTI") || is(b"WATCH") {
            self.in_transaction = true;
        } else if is(b"EXEC") || is(b"DISCARD") || is(b"UNWATCH") {
            self.in_transaction = false;
        } else if [
            &b"SELECT"[..],
            b"SUBSCRIBE",
            b"PSUBSCRIBE",
            b"SSUBSCRIBE",
            b"MONITOR",
        ]
        .into_iter()
        .any(is)
        {
            self.dirty = true;
        }
    }

    /// Called when a MULTI/EXEC sent as a pipeline has completed.
    pub(crate) fn dirty_session_cleared(&mut self) {
        self.in_transaction = false;
    }

    fn check(&self) -> Result<()> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(Error::Usage(format!(
                "this connection is broken and cannot be reused ({why})"
            ))),
        }
    }

    /// Records a fatal error: the connection is unusable from now on.
    fn fail(&mut self, err: Error) -> Error {
        if err.breaks_connection() {
            self.broken = Some(err.to_string());
        }
        err
    }
}

fn connect_error(info: &ConnectionInfo, err: io::Error) -> Error {
    let kind = err.kind();
    let err = io::Error::new(kind, format!("cannot connect to {}: {err}", info.addr));
    Error::from(err)
}

impl ConnectionLike for Connection {
    fn req_command(&mut self, cmd: &Cmd) -> Result<Value> {
        self.track_session(cmd);
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        cmd.encode(&mut out);
        let sent = self.send(&out, 1);
        self.out = out;
        sent?;
        match self.read_reply(cmd.server_timeout())? {
            Value::Error(err) => {
                // The server refuses the connection itself and closes it.
                if err.message.starts_with("max number of clients reached") {
                    self.broken = Some(err.to_string());
                }
                Err(Error::Server(err))
            }
            value => Ok(value),
        }
    }

    fn req_packed(
        &mut self,
        packed: &[u8],
        replies: usize,
        blocking: Option<Duration>,
    ) -> Result<Vec<Value>> {
        self.send(packed, replies)?;
        (0..replies).map(|_| self.read_reply(blocking)).collect()
    }
}
