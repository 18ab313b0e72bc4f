//! Commands: [`Cmd`] builds one (name and arguments, packed into one buffer),
//! and [`ConnectionLike`] is what can run it: a `Connection`, a pooled one, or
//! a `Client` (which checks a connection out of its pool per call).
//!
//! A blocking command (BRPOP, BLPOP, BLMOVE, BZPOPMIN, XREAD BLOCK, WAIT, ...)
//! carries its own server-side timeout; [`Cmd::server_timeout`] finds it, and
//! the connection waits for its reply that long plus one server tick
//! ([`SERVER_TICK`]) plus its socket timeout ([`read_deadline`]). So
//! `BRPOP list 1` never fails under a 0.5 s socket timeout, and `BRPOP list 0`
//! waits as long as the server does. In a pipeline each reply gets its own
//! command's deadline.

use std::time::Duration;

/// How late Redis may answer a blocking command's timeout: it checks blocked
/// clients' deadlines on its `hz` cron, every 100 ms at the default hz 10,
/// so `BRPOP list 0.25` may answer up to one tick after 0.25 s.
pub const SERVER_TICK: Duration = Duration::from_millis(100);

/// The read deadline for a reply: the socket timeout, and for a blocking
/// command its server-side timeout plus one [`SERVER_TICK`] on top. `None`
/// (no deadline) without a socket timeout, and for a blocking command that
/// may block forever (`Some(Duration::ZERO)`, as `BRPOP list 0`).
///
/// ```
/// use std::time::Duration;
/// use greenhub_redis::read_deadline;
/// let socket = Some(Duration::from_millis(20));
/// assert_eq!(read_deadline(socket, None), socket);
/// assert_eq!(read_deadline(socket, Some(Duration::from_millis(250))), Some(Duration::from_millis(370)));
/// assert_eq!(read_deadline(socket, Some(Duration::ZERO)), None);
/// ```
pub fn read_deadline(socket: Option<Duration>, blocking: Option<Duration>) -> Option<Duration> {
    match (socket, blocking) {
        (None, _) | (_, Some(Duration::ZERO)) => None,
        (Some(socket), None) => Some(socket),
        (Some(socket), Some(server)) => Some(server + SERVER_TICK + socket),
    }
}

use crate::error::Result;
use crate::resp::{encode_command, Value};
use crate::types::{FromValue, ToArg};

/// A command and its arguments, ready to encode.
///
/// ```
/// let mut set = greenhub_redis::cmd("SET");
/// set.arg("key").arg(b"value").arg("EX").arg(60);
/// assert_eq!(set.arg_bytes().count(), 5);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cmd {
    /// Every argument's bytes, back to back.
    data: Vec<u8>,
    /// Where each argument ends in `data`.
    ends: Vec<usize>,
    /// The caller says running it twice does what running it once does
    /// ([`Cmd::idempotent`]): retried after a lost connection (`retry.rs`).
    idempotent: bool,
}

/// Starts a command: `cmd("SET").arg("k").arg("v")`.
pub fn cmd(name: &str) -> Cmd {
    let mut cmd = Cmd::default();
    cmd.arg(name);
    cmd
}

impl Cmd {
    /// Appends one argument.
    pub fn arg(&mut self, arg: impl ToArg) -> &mut Cmd {
        arg.write_arg(&mut self.data);
        self.ends.push(self.data.len());
        self
    }

    /// Appends each item as one argument.
    pub fn args<A: ToArg>(&mut self, args: impl IntoIterator<Item = A>) -> &mut Cmd {
        for arg in args {
            self.arg(arg);
        }
        self
    }

    /// Marks the command safe to repeat: running it twice has the same
    /// outcome as running it once (`SET k v`, `DEL k`, `HSET h f v`), so
    /// after a connection lost with the reply unread the client may send
    /// it again (see [`RetryPolicy`](crate::RetryPolicy)). Read-only
    /// commands need no mark; never mark INCR, LPUSH or a pop.
    ///
    /// ```
    /// let mut set = greenhub_redis::cmd("SET");
    /// set.arg("k").arg("v").idempotent();
    /// assert!(set.is_idempotent());
    /// ```
    pub fn idempotent(&mut self) -> &mut Cmd {
        self.idempotent = true;
        self
    }

    /// Whether [`Cmd::idempotent`] marked it.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// The arguments, name first.
    pub fn arg_bytes(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.ends.len()).map(|i| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            &self.data[start..self.ends[i]]
        })
    }

    /// The command's name (its first argument), or nothing for an empty command.
    pub(crate) fn name(&self) -> &[u8] {
        &self.data[..self.ends.first().copied().unwrap_or(0)]
    }

    /// Appends the command in RESP to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_command(out, self.arg_bytes());
    }

    /// Runs the command on `con` and converts the reply.
    pub fn query<T: FromValue>(&self, con: &mut impl ConnectionLike) -> Result<T> {
        T::from_value(con.req_command(self)?)
    }

    /// How long the server itself may hold this command before replying:
    /// `None` for an ordinary command, `Some(Duration::ZERO)` for a blocking
    /// command with no timeout (it may block forever).
    pub fn server_timeout(&self) -> Option<Duration> {
        let name = self.arg_bytes().next()?;
        // Every request asks, so the common answer ("not blocking") must be
        // cheap: blocking commands all start with B, W or X.
        if !matches!(name.first()?.to_ascii_uppercase(), b'B' | b'W' | b'X') {
            return None;
        }
        let is = |word: &str| name.eq_ignore_ascii_case(word.as_bytes());
        let argc = self.ends.len();
        let arg = |i: usize| self.arg_bytes().nth(i);
        let seconds = |arg: Option<&[u8]>| arg.and_then(parse_f64).map(duration_secs);
        let millis =
            |arg: Option<&[u8]>| arg.and_then(parse_f64).map(|ms| duration_secs(ms / 1000.0));
        if [
            "BLPOP",
            "BRPOP",
            "BLMOVE",
            "BRPOPLPUSH",
            "BZPOPMIN",
            "BZPOPMAX",
        ]
        .into_iter()
        .any(is)
        {
            seconds(arg(argc - 1))
        } else if is("BLMPOP") || is("BZMPOP") {
            seconds(arg(1))
        } else if is("WAIT") || is("WAITAOF") {
            millis(arg(argc - 1))
        } else if is("XREAD") || is("XREADGROUP") {
            // Options come before STREAMS, in any order; XREADGROUP's
            // `GROUP group consumer` is one of them (Redis takes
            // `XREADGROUP BLOCK 5 GROUP g c STREAMS ...`). A key, group or
            // consumer named "block" is not the option.
            let mut args = self.arg_bytes().skip(1);
            while let Some(option) = args.next() {
                let option_is = |word: &[u8]| option.eq_ignore_ascii_case(word);
                if option_is(b"BLOCK") {
                    return millis(args.next());
                } else if option_is(b"COUNT") {
                    args.next();
                } else if option_is(b"GROUP") && is("XREADGROUP") {
                    args.next();
                    args.next();
                } else if !option_is(b"NOACK") {
                    // STREAMS, or something that is not an option.
                    return None;
                }
            }
            None
        } else {
            None
        }
    }
}

fn parse_f64(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    // Most timeouts are whole seconds: the integer parse is the cheap path.
    match text.parse::<i64>() {
        Ok(whole) => Some(whole as f64),
        Err(_) => text.parse().ok(),
    }
}

/// Seconds as a duration; zero, negative or absurd values mean "no limit".
fn duration_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::ZERO)
}

/// Something commands can run on.
pub trait ConnectionLike {
    /// Sends one command and reads its reply. A server error reply is
    /// returned as `Err(Error::Server)`.
    fn req_command(&mut self, cmd: &Cmd) -> Result<Value>;

    /// Sends `cmds` in one write, wrapped in MULTI and EXEC when `atomic`,
    /// and reads every reply (MULTI's and EXEC's too), error replies kept as
    /// `Value::Error`. Each command's reply gets its own read deadline; the
    /// session state each one sets is tracked as for a single command. A
    /// reply is framed by the state as it stood when its command was sent
    /// (a reply to a command before a pipelined SUBSCRIBE is never taken for
    /// a published message), and an unsubscribe from all counts its
    /// confirmations when it is read, after those of earlier subscribes. A
    /// subscribe-family command that would be queued inside MULTI (an atomic
    /// pipeline, or after a MULTI) is refused with `Error::Usage` before
    /// anything is sent: use [`PubSub`](crate::PubSub).
    fn req_pipeline(&mut self, cmds: &[Cmd], atomic: bool) -> Result<Vec<Value>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_commands_report_their_server_timeout() {
        assert_eq!(
            cmd("BRPOP").arg("list").arg(1).server_timeout(),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            cmd("blpop").arg("a").arg("b").arg("0.5").server_timeout(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            cmd("BLPOP").arg("a").arg(0).server_timeout(),
            Some(Duration::ZERO)
        );
        assert_eq!(
            cmd("BZMPOP")
                .arg(2)
                .arg(1)
                .arg("z")
                .arg("MIN")
                .server_timeout(),
            Some(Duration::from_secs(2))
        );
        let mut xread = cmd("XREAD");
        xread
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(1500)
            .arg("STREAMS")
            .arg("s")
            .arg("$");
        assert_eq!(xread.server_timeout(), Some(Duration::from_millis(1500)));
        assert_eq!(
            cmd("WAIT").arg(1).arg(250).server_timeout(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(cmd("GET").arg("k").server_timeout(), None);
    }

    #[test]
    fn block_is_found_only_in_option_position() {
        let mut group = cmd("XREADGROUP");
        group
            .arg("GROUP")
            .arg("block")
            .arg("consumer")
            .arg("BLOCK")
            .arg(100)
            .arg("STREAMS")
            .arg("block")
            .arg(">");
        assert_eq!(group.server_timeout(), Some(Duration::from_millis(100)));
        let mut keys = cmd("XREAD");
        keys.arg("STREAMS")
            .arg("block")
            .arg("BLOCK")
            .arg("0")
            .arg("0");
        assert_eq!(keys.server_timeout(), None, "BLOCK here is a key");
        let mut named = cmd("XREADGROUP");
        named
            .arg("GROUP")
            .arg("g")
            .arg("block")
            .arg("COUNT")
            .arg(5)
            .arg("NOACK")
            .arg("STREAMS")
            .arg("s")
            .arg(">");
        assert_eq!(named.server_timeout(), None, "a consumer named block");
        let mut forever = cmd("XREAD");
        forever.arg("BLOCK").arg(0).arg("STREAMS").arg("s").arg("$");
        assert_eq!(forever.server_timeout(), Some(Duration::ZERO));
        // Redis takes XREADGROUP's options in any order, GROUP included.
        let mut first = cmd("XREADGROUP");
        first
            .arg("BLOCK")
            .arg(250)
            .arg("GROUP")
            .arg("block")
            .arg("block")
            .arg("STREAMS")
            .arg("s")
            .arg(">");
        assert_eq!(first.server_timeout(), Some(Duration::from_millis(250)));
        let mut between = cmd("XREADGROUP");
        between
            .arg("COUNT")
            .arg(1)
            .arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("NOACK")
            .arg("BLOCK")
            .arg(40)
            .arg("STREAMS")
            .arg("s")
            .arg(">");
        assert_eq!(between.server_timeout(), Some(Duration::from_millis(40)));
    }
}
