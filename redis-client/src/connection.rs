//! One connection to Redis: a socket, a read buffer and a write buffer, in
//! plain blocking style.
//!
//! The socket is greenhub's cooperative one when the connection is opened in
//! a coroutine, and std's when it is opened on a plain OS thread: the code
//! above [`Stream`] is the same for both. A request is encoded into the reused
//! write buffer and written in one call; the reply is parsed from the read
//! buffer by the pure parser in `resp.rs`, reading more only when it says
//! "incomplete".
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

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::cmd::{cmd, Cmd, ConnectionLike};
use crate::error::{Error, Result};
use crate::resp::{parse, Limits, Parsed, Value};
use crate::url::{Addr, ConnectionInfo};

/// The read buffer's first size: most replies are a few bytes (BRPOP's nil
/// is 5), and 10,000 parked connections with 16 KiB each would be 160 MiB.
/// A reply that needs more doubles it (or grows it to the reply's size, when
/// that is known).
const INITIAL_BUFFER: usize = 256;
/// The request buffer's first size: `BRPOP list 1` encodes to 40 bytes; a
/// longer request grows it once, and it keeps that size.
const INITIAL_REQUEST: usize = 64;

/// The socket under a connection: cooperative inside a coroutine, std's on a
/// plain thread.
#[derive(Debug)]
enum Stream {
    GreenTcp(greenhub::net::TcpStream),
    GreenUnix(greenhub::net::UnixStream),
    StdTcp(std::net::TcpStream),
    StdUnix(std::os::unix::net::UnixStream),
}

impl Stream {
    fn connect(info: &ConnectionInfo) -> io::Result<Stream> {
        let green = greenhub::current().is_some();
        match (&info.addr, green) {
            (Addr::Tcp { host, port }, true) => {
                let stream = match info.connect_timeout {
                    None => greenhub::net::TcpStream::connect((host.as_str(), *port))?,
                    Some(t) => {
                        let addrs =
                            greenhub::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))?;
                        first_ok(addrs, |addr| {
                            greenhub::net::TcpStream::connect_timeout(&addr, t)
                        })?
                    }
                };
                stream.set_nodelay(true)?;
                Ok(Stream::GreenTcp(stream))
            }
            (Addr::Unix(path), true) => Ok(Stream::GreenUnix(match info.connect_timeout {
                None => greenhub::net::UnixStream::connect(path)?,
                Some(t) => greenhub::net::UnixStream::connect_timeout(path, t)?,
            })),
            (Addr::Tcp { host, port }, false) => {
                let stream = match info.connect_timeout {
                    None => std::net::TcpStream::connect((host.as_str(), *port))?,
                    Some(t) => {
                        let addrs =
                            std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))?;
                        first_ok(addrs.collect(), |addr| {
                            std::net::TcpStream::connect_timeout(&addr, t)
                        })?
                    }
                };
                stream.set_nodelay(true)?;
                Ok(Stream::StdTcp(stream))
            }
            (Addr::Unix(path), false) => Ok(Stream::StdUnix(
                std::os::unix::net::UnixStream::connect(path)?,
            )),
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::GreenTcp(s) => s.set_read_timeout(timeout),
            Stream::GreenUnix(s) => s.set_read_timeout(timeout),
            Stream::StdTcp(s) => s.set_read_timeout(timeout),
            Stream::StdUnix(s) => s.set_read_timeout(timeout),
        }
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::GreenTcp(s) => s.set_write_timeout(timeout),
            Stream::GreenUnix(s) => s.set_write_timeout(timeout),
            Stream::StdTcp(s) => s.set_write_timeout(timeout),
            Stream::StdUnix(s) => s.set_write_timeout(timeout),
        }
    }

    /// Parks until readable (cooperative sockets); a no-op for std sockets,
    /// whose read blocks the thread anyway.
    fn wait_readable(&self) -> io::Result<()> {
        match self {
            Stream::GreenTcp(s) => s.wait_readable(),
            Stream::GreenUnix(s) => s.wait_readable(),
            Stream::StdTcp(_) | Stream::StdUnix(_) => Ok(()),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::GreenTcp(s) => s.read(buf),
            Stream::GreenUnix(s) => s.read(buf),
            Stream::StdTcp(s) => s.read(buf),
            Stream::StdUnix(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::GreenTcp(s) => s.write_all(buf),
            Stream::GreenUnix(s) => s.write_all(buf),
            Stream::StdTcp(s) => s.write_all(buf),
            Stream::StdUnix(s) => s.write_all(buf),
        }
    }
}

fn first_ok<S>(
    addrs: Vec<std::net::SocketAddr>,
    connect: impl Fn(std::net::SocketAddr) -> io::Result<S>,
) -> io::Result<S> {
    let mut last = io::Error::new(
        io::ErrorKind::InvalidInput,
        "the host resolved to no address",
    );
    for addr in addrs {
        match connect(addr) {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// A connection to one Redis server.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    /// Received bytes; `buf[start..end]` is not parsed yet.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The encoded request being sent; reused, so small requests allocate nothing.
    out: Vec<u8>,
    limits: Limits,
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
            out: Vec::with_capacity(INITIAL_REQUEST),
            limits: info.limits,
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
        self.limits = limits;
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

    fn parse_reply(&mut self) -> Result<Value> {
        loop {
            let need = match parse(&self.buf[self.start..self.end], &self.limits) {
                Ok(Parsed::Complete(value, used)) => {
                    self.start += used;
                    if self.start == self.end {
                        (self.start, self.end) = (0, 0);
                    }
                    return Ok(value);
                }
                Ok(Parsed::Incomplete(need)) => need,
                Err(err) => return Err(Error::Protocol(err.0)),
            };
            if self.start == self.end {
                (self.start, self.end) = (0, 0);
            }
            // Only the first read after a write, with nothing buffered, may
            // park first: the reply it waits for is an edge still to come.
            let park_first = std::mem::take(&mut self.park_first);
            if park_first && self.start == self.end {
                self.stream.wait_readable()?;
            }
            self.make_room(need);
            let n = self.stream.read(&mut self.buf[self.end..])?;
            if n == 0 {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            self.end += n;
        }
    }

    /// Makes space to read into: moves unparsed bytes to the front when the
    /// tail is full, and grows the buffer when it is full or smaller than the
    /// `need` the parser reported (relative to `start`).
    fn make_room(&mut self, need: usize) {
        if self.start > 0 && self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let wanted = (self.start + need).max(if self.end == self.buf.len() {
            self.buf.len() * 2
        } else {
            0
        });
        if self.buf.len() < wanted {
            self.buf.resize(wanted, 0);
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
            Err(Error::Timeout(_)) if self.start == self.end => Ok(None),
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
