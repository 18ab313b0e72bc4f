//! The client's one error type. Each variant is a kind a caller can act on:
//! retry on `Io` or `Timeout`, fix the command on `Server` or `Type`, wait on
//! `PoolExhausted`. The connection layer decides from the kind whether a
//! connection may go back to the pool (see `Error::breaks_connection`).

use std::fmt;
use std::io;

/// An error reply from the server, such as `WRONGTYPE Operation against a
/// key holding the wrong kind of value`.
///
/// Redis echoes user bytes into errors (`OBJECT \xff`, a Lua
/// `error_reply`), and they need not be UTF-8: then `code` and `message`
/// show each bad sequence as U+FFFD (as redis-py shows them), and `raw`
/// keeps the line's bytes exactly as the server sent them. `raw` is kept
/// too for the one UTF-8 line `Display` would not reproduce: a code
/// followed by one space and nothing else (`-ERR `, as a Lua
/// `redis.error_reply("ERR ")` sends).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerError {
    /// The first word of the reply: `ERR`, `WRONGTYPE`, `NOSCRIPT`, ...
    pub code: String,
    /// The rest of the reply.
    pub message: String,
    /// The error line's bytes (after its `-`, or a blob error's body) when
    /// `code` and `message` joined as `Display` joins them would not be
    /// those bytes: the line is not UTF-8, or it ends in the space after
    /// its code. `None` when `Display` reproduces the line exactly.
    pub raw: Option<Vec<u8>>,
}

impl ServerError {
    /// Splits an error line into its code and message; a line that ends in
    /// the space after its code (`ERR `) is kept in `raw` too.
    pub fn parse(line: &str) -> ServerError {
        match line.split_once(' ') {
            Some((code, message)) => ServerError {
                code: code.to_owned(),
                message: message.to_owned(),
                raw: message.is_empty().then(|| line.as_bytes().to_vec()),
            },
            None => ServerError {
                code: line.to_owned(),
                message: String::new(),
                raw: None,
            },
        }
    }

    /// [`ServerError::parse`] for the bytes of a line as they arrived: text
    /// that is not UTF-8 is shown with U+FFFD and kept in `raw`.
    pub fn parse_bytes(line: &[u8]) -> ServerError {
        match std::str::from_utf8(line) {
            Ok(text) => ServerError::parse(text),
            Err(_) => ServerError {
                raw: Some(line.to_vec()),
                ..ServerError::parse(&String::from_utf8_lossy(line))
            },
        }
    }

    /// The error's bytes as the server sent them: `raw` if it is kept, else
    /// `code` and `message` joined by a space, which is then the line.
    pub fn bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match &self.raw {
            Some(raw) => std::borrow::Cow::Borrowed(raw),
            None => std::borrow::Cow::Owned(self.to_string().into_bytes()),
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{} {}", self.code, self.message)
        }
    }
}

/// Everything that can go wrong talking to Redis.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Connecting, reading or writing failed, or the server closed the
    /// connection. The connection is discarded.
    Io(io::Error),
    /// A connect, read or write took longer than its timeout, or an enclosing
    /// `greenhub::timeout` elapsed. The connection is discarded (its reply
    /// may still arrive, and must not reach the next user).
    Timeout(String),
    /// The server sent bytes that are not valid RESP, or a reply larger than
    /// the configured limits. The connection is discarded.
    Protocol(String),
    /// The server answered with an error reply. The connection stays usable.
    Server(ServerError),
    /// A reply could not be converted to the requested Rust type.
    Type {
        /// What the caller asked for.
        expected: &'static str,
        /// A short description of what came.
        got: String,
    },
    /// The pool holds `max` connections, all in use, and is set to fail fast
    /// (or its wait timed out).
    PoolExhausted {
        /// The pool's `max_connections`.
        max: usize,
    },
    /// A transaction's EXEC was aborted because a WATCHed key changed.
    ExecAborted,
    /// A bad URL or option.
    Config(String),
    /// The client cannot do this here: for example, wait for a free pooled
    /// connection outside a coroutine, or use a connection after a kill.
    Usage(String),
    /// A Redis Cluster could not serve the command: no node answered with
    /// a slot map, no node serves the slot, or redirections did not end.
    Cluster(String),
}

impl Error {
    /// Whether the connection that saw this error must be closed rather than
    /// reused: anything but a server error reply, a type error, or an
    /// aborted transaction, which leave the protocol in step.
    pub fn breaks_connection(&self) -> bool {
        !matches!(
            self,
            Error::Server(_) | Error::Type { .. } | Error::ExecAborted
        )
    }

    /// Whether this is a connection-level failure (`Io`).
    pub fn is_io(&self) -> bool {
        matches!(self, Error::Io(_))
    }

    /// Whether this is a timeout: a reply that did not come in time
    /// (`Timeout`), or a connect that did not finish in time (`Io` of kind
    /// `TimedOut`: nothing was sent).
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout(_) => true,
            Error::Io(err) => err.kind() == io::ErrorKind::TimedOut,
            _ => false,
        }
    }

    /// Whether the command may have run although its reply never came: the
    /// request was written (wholly, or for a pipeline partly) and then the
    /// connection failed, the reply timed out, or it was garbled. Repeating
    /// such a command by hand may run it twice (an INCR counted twice).
    /// `false` for a failure before anything reached the server (connect
    /// refused or timed out, a single command whose write failed, the pool
    /// exhausted): repeating it is safe. `false` as well for error replies,
    /// which say the server refused the command.
    ///
    /// ```
    /// use greenhub_redis::Error;
    /// let refused = Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    /// assert!(!refused.is_ambiguous());
    /// assert!(Error::Timeout("no reply".into()).is_ambiguous());
    /// ```
    pub fn is_ambiguous(&self) -> bool {
        match self {
            Error::Timeout(_) | Error::Protocol(_) => true,
            Error::Io(err) => err.get_ref().is_some_and(|inner| inner.is::<Unanswered>()),
            _ => false,
        }
    }

    /// Marks an I/O error seen after the request was written as ambiguous
    /// (see [`Error::is_ambiguous`]); timeouts and protocol errors are so
    /// already, other kinds are left alone.
    pub(crate) fn after_write(self) -> Error {
        match self {
            Error::Io(err) if !err.get_ref().is_some_and(|inner| inner.is::<Unanswered>()) => {
                Error::Io(io::Error::new(err.kind(), Unanswered(err)))
            }
            other => other,
        }
    }

    /// Marks a failure while writing a single command as "never sent": the
    /// write stopped before the command's last byte, so the server cannot
    /// have run it. A write timeout becomes `Io` of kind `TimedOut`.
    pub(crate) fn unsent(self) -> Error {
        match self {
            Error::Timeout(what) => Error::Io(io::Error::new(io::ErrorKind::TimedOut, what)),
            other => other,
        }
    }

    /// The server's error code (`WRONGTYPE`, ...) for a `Server` error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Server(err) => Some(&err.code),
            _ => None,
        }
    }

    pub(crate) fn type_error(expected: &'static str, got: impl fmt::Debug) -> Error {
        Error::Type {
            expected,
            got: debug_prefix(&got, 80),
        }
    }
}

/// The first `max` bytes of `value`'s `Debug` form, with `...` if cut. The
/// formatting stops as soon as the prefix is written, so a reply of 200,000
/// elements or 1024 levels costs no more to describe than a short one.
fn debug_prefix(value: &impl fmt::Debug, max: usize) -> String {
    struct Capped {
        text: String,
        max: usize,
        cut: bool,
    }
    impl fmt::Write for Capped {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let room = self.max - self.text.len();
            if s.len() <= room {
                self.text.push_str(s);
                return Ok(());
            }
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&s[..end]);
            self.cut = true;
            // Stops the formatting: nothing more is wanted.
            Err(fmt::Error)
        }
    }
    let mut capped = Capped {
        text: String::new(),
        max: max - 3,
        cut: false,
    };
    let _ = fmt::Write::write_fmt(&mut capped, format_args!("{value:?}"));
    if capped.cut {
        capped.text.push_str("...");
    }
    capped.text
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(err) => write!(f, "connection error: {err}"),
            Error::Timeout(what) => write!(f, "timed out: {what}"),
            Error::Protocol(what) => write!(f, "protocol error: {what}"),
            Error::Server(err) => write!(f, "server error: {err}"),
            Error::Type { expected, got } => {
                write!(f, "type error: expected {expected}, got {got}")
            }
            Error::PoolExhausted { max } => {
                write!(
                    f,
                    "too many connections: the pool's {max} connections are all in use"
                )
            }
            Error::ExecAborted => f.write_str("transaction aborted: a watched key changed"),
            Error::Config(what) => write!(f, "invalid configuration: {what}"),
            Error::Usage(what) => f.write_str(what),
            Error::Cluster(what) => write!(f, "cluster error: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    /// Timeouts (greenhub's `TimedOut`, std's `WouldBlock` after
    /// `SO_RCVTIMEO`) become `Timeout`; everything else `Io`.
    fn from(err: io::Error) -> Error {
        match err.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout(err.to_string()),
            _ => Error::Io(err),
        }
    }
}

/// The payload of an `io::Error` that came after its request was written:
/// [`Error::is_ambiguous`] looks for it. Shows as the error it wraps.
#[derive(Debug)]
struct Unanswered(io::Error);

impl fmt::Display for Unanswered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (the request was sent: it may have run)", self.0)
    }
}

impl std::error::Error for Unanswered {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// `Result<T, Error>`.
pub type Result<T> = std::result::Result<T, Error>;
