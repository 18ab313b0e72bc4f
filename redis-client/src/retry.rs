//! Retries after a lost connection or a loading server's refusal, only
//! where repeating the command cannot change the outcome. Shared by [`Client`](crate::Client) (its
//! `req_command` and `req_pipeline` call [`RetryPolicy::run`] when the first
//! attempt fails) and the cluster client (`cluster/dispatch.rs` asks
//! [`may_retry`] about each unit whose connection failed, and both pause with
//! [`Backoff`]).
//!
//! The rule ([`may_retry`]):
//!
//! | the failure | retried? |
//! | --- | --- |
//! | nothing was sent (the connect refused, or the write of a single command failed with an I/O error: reset, broken pipe) | yes, any command: it never ran |
//! | the connect or the write timed out | no: a timeout is never retried (an enclosing `greenhub::timeout` would cut every later attempt too), and a write that timed out may have been partly sent |
//! | sent, then the connection was lost (reset, end of file) | only a read-only command (the built-in table of Redis 7's `readonly` flags in `cluster/command_table.rs`; the cluster client also learns unknown commands' flags from `COMMAND INFO`) or one the caller marked with [`Cmd::idempotent`], and never a blocking one ([`Cmd::server_timeout`] is `Some`: BRPOP, WAIT, `XREAD BLOCK`, ...) |
//! | sent, then the reply timed out, or came garbled | no: the server may be stalled, and the caller's deadline is what bounds the call |
//! | the error reply `LOADING` with the server's own message ([`is_loading_refusal`]: a server restarted and still loading its data set refuses every command but a few connection ones, and runs nothing); for a pipeline, `LOADING` for every command, or for a transaction a queued `LOADING` and EXEC's EXECABORT | yes, any command: it never ran (each later attempt is judged by this table afresh) |
//! | a pipeline refused only in part, or `LOADING` with another message (a script's own error reply) | no: something ran |
//! | any other error reply, a type error, the pool exhausted | no: nothing about the connection |
//!
//! So INCR, LPUSH and EVAL are never repeated after they were sent unless the
//! caller marks them, and a blocking command never is, marked or not: a
//! repeated BRPOP may pop a second item, and a repeated `XREAD BLOCK ... $`
//! reads only entries added after the repeat, skipping the one the lost
//! reply carried (Redis flags XREAD `readonly`, but also `blocking`). redis-py's
//! `Retry` repeats everything, and its users see doubled INCRs and lost
//! BRPOP items. A failure after the write that is not retried says so with
//! [`Error::is_ambiguous`]. Retries pause with growing, jittered pauses
//! and stop at the policy's deadline; an enclosing `greenhub::timeout` cuts
//! them short too. See `docs/reliability.md`, "Retries".

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use crate::cmd::Cmd;
use crate::error::{Error, Result};
use crate::resp::Value;

/// The first pause after a failed attempt. A TRYAGAIN lasts as long as one
/// key's MIGRATE (well under a millisecond for small keys), a restart or a
/// failover a few hundred milliseconds to seconds: start small, double.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause: 4 attempts a second per waiting caller keeps a
/// thousand coroutines waiting on a restart at a few thousand connection
/// attempts a second in all, and none of them notices the server back more
/// than this late.
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// How a [`Client`](crate::Client) retries a command whose connection was
/// lost, or that a server still loading its data set refused with
/// `LOADING`. Only commands safe to repeat are retried (the table at the top
/// of `retry.rs` says which).
///
/// ```
/// use std::time::Duration;
/// use greenhub_redis::RetryPolicy;
/// let patient = RetryPolicy { max_time: Duration::from_secs(10) };
/// assert!(RetryPolicy::never().max_time.is_zero());
/// # let _ = patient;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How long after the first attempt a retry may still start; zero turns
    /// retries off. Pauses between attempts grow from 5 ms to 250 ms.
    pub max_time: Duration,
}

impl Default for RetryPolicy {
    /// Retries for up to 2 s: longer than a local server takes to restart
    /// and load a small data set, short enough that a caller without its
    /// own deadline hears of a dead server soon.
    fn default() -> Self {
        RetryPolicy {
            max_time: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn never() -> RetryPolicy {
        RetryPolicy {
            max_time: Duration::ZERO,
        }
    }

    /// Runs `attempt` until it succeeds, fails in a way that must not be
    /// retried, or the policy's time runs out; `repeatable` says whether the
    /// commands are safe to repeat after they were sent. The first attempt
    /// costs nothing extra: the table and the clock are read only after it
    /// failed.
    pub(crate) fn run<T>(
        &self,
        repeatable: impl FnOnce() -> bool,
        mut attempt: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        let first = attempt();
        let Err(mut err) = first else {
            return first;
        };
        // Judged per failure: an attempt refused with LOADING ran nothing,
        // but the attempt after it may run and lose its reply, and that one
        // may be repeated only if the commands are safe to repeat. The
        // commands' table is read once, the first time a failure needs it.
        let mut commands = Some(repeatable);
        let mut known = None;
        let mut retry = |err: &Error| {
            let repeatable = !err.is_ambiguous()
                || *known.get_or_insert_with(|| commands.take().is_some_and(|f| f()));
            may_retry(err, repeatable)
        };
        if self.max_time.is_zero() || !retry(&err) {
            return Err(err);
        }
        // Giving up returns the first failure: it says what went wrong
        // with the command itself (a reply cut short), where the last one
        // often says only that the server is still away (refused). But a
        // later failure that may have run the commands replaces one that
        // says they never ran, so `is_ambiguous` tells the caller the truth.
        let mut backoff = Backoff::new(Instant::now() + self.max_time);
        while backoff.pause() {
            log::debug!("retrying after {err}");
            match attempt() {
                Err(later) if retry(&later) => {
                    log::debug!("the retry failed too: {later}");
                    if later.is_ambiguous() && !err.is_ambiguous() {
                        err = later;
                    }
                }
                done => return done,
            }
        }
        Err(err)
    }
}

/// Whether a call that failed with `err` may be sent again: a connection
/// failure (not an error reply, not a timeout) that either happened before
/// anything was sent, or hit a command safe to repeat (`repeatable`).
pub(crate) fn may_retry(err: &Error, repeatable: bool) -> bool {
    // A timeout is not retried even before the write (a connect that timed
    // out): an enclosing `greenhub::timeout` that elapsed would cut every
    // later attempt at once too.
    let lost = matches!(err, Error::Io(_)) && !err.is_timeout();
    lost && (repeatable || !err.is_ambiguous()) || is_loading(err)
}

/// Whether `err` is a server's `LOADING` refusal: the command did not run.
fn is_loading(err: &Error) -> bool {
    matches!(err, Error::Server(reply) if is_loading_refusal(reply))
}

/// Whether the error reply is the refusal of a server still loading its
/// data set: the code `LOADING` and the server's own words ("Redis is
/// loading the dataset in memory"). A script or module may answer with any
/// code after it wrote (`redis.error_reply('LOADING ...')`): only the
/// server's sentence is taken to mean that nothing ran.
pub(crate) fn is_loading_refusal(err: &crate::ServerError) -> bool {
    err.code == "LOADING" && err.message.ends_with("is loading the dataset in memory")
}

/// A pipeline's replies, or its `LOADING` refusal as an error when the
/// server ran none of its commands: every reply is `LOADING`, or (a
/// transaction, `atomic`) a queued command was refused with `LOADING` and
/// EXEC discarded the transaction. Replies where only some commands were
/// refused (the loading ended part way through) are returned as they are:
/// the others ran, and the pipeline is not repeated.
pub(crate) fn refused_while_loading(replies: Vec<Value>, atomic: bool) -> Result<Vec<Value>> {
    let loading = |reply: &Value| matches!(reply, Value::Error(err) if is_loading_refusal(err));
    let refused = replies.iter().find(|reply| loading(reply));
    let Some(Value::Error(err)) = refused else {
        return Ok(replies);
    };
    let discarded =
        atomic && matches!(replies.last(), Some(Value::Error(exec)) if exec.code == "EXECABORT");
    if discarded || replies.iter().all(loading) {
        return Err(Error::Server(err.clone()));
    }
    Ok(replies)
}

/// Whether `cmd` may run twice with the same outcome: not a blocking
/// command, and marked idempotent by the caller or read-only by the
/// built-in table (an unknown command is not).
pub(crate) fn is_repeatable(cmd: &Cmd) -> bool {
    repeatable_as(cmd, crate::cluster::is_read_only(cmd))
}

/// [`is_repeatable`]'s rule with the read-only flag given by the caller:
/// the cluster client's, which also learns flags from `COMMAND INFO`. A
/// command with a [`Cmd::server_timeout`] (BRPOP, WAIT, `XREAD BLOCK`) is
/// never repeatable: what a repeat sees depends on when it runs (`XREAD
/// BLOCK ... $` skips the entry the lost reply carried; a pop pops again).
pub(crate) fn repeatable_as(cmd: &Cmd, read_only: bool) -> bool {
    cmd.server_timeout().is_none() && (read_only || cmd.is_idempotent())
}

/// Exponential pauses with jitter, never past a deadline.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    deadline: Instant,
}

impl Backoff {
    /// Pauses that end by `deadline`.
    pub(crate) fn new(deadline: Instant) -> Backoff {
        Backoff {
            next: FIRST_PAUSE,
            deadline,
        }
    }

    /// Sleeps before the next attempt (parking the coroutine; on a plain
    /// thread, blocking it), between half and all of the current pause so
    /// that callers refused together do not come back together; false,
    /// without sleeping, when the deadline has passed or would pass during
    /// the pause.
    pub(crate) fn pause(&mut self) -> bool {
        let now = Instant::now();
        let jitter = RandomState::new().hash_one(now) % 1000;
        let pause = self.next / 2 + self.next.mul_f64(jitter as f64 / 2000.0);
        if now + pause >= self.deadline {
            return false;
        }
        if greenhub::current().is_some() {
            greenhub::sleep(pause);
        } else {
            std::thread::sleep(pause);
        }
        self.next = (self.next * 2).min(MAX_PAUSE);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::cmd;
    use std::io;

    fn lost() -> Error {
        Error::Io(io::Error::from(io::ErrorKind::ConnectionReset)).after_write()
    }

    fn refused() -> Error {
        Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused))
    }

    #[test]
    fn only_reads_and_marked_commands_are_repeated_after_the_write() {
        assert!(is_repeatable(&cmd("GET")));
        assert!(is_repeatable(&cmd("zrange")));
        for write in ["INCR", "LPUSH", "BRPOP", "EVAL", "BLMOVE", "NOSUCHCOMMAND"] {
            assert!(!is_repeatable(&cmd(write)), "{write}");
        }
        assert!(is_repeatable(cmd("SET").idempotent()));
        // XREAD is not READ in the table (Redis flags it `blocking` too),
        // so even without BLOCK it is repeated only when marked.
        let plain = || cmd("XREAD").arg("STREAMS").arg("s").arg("0").clone();
        assert!(!is_repeatable(&plain()));
        assert!(is_repeatable(plain().idempotent()));
        let block = || {
            cmd("XREAD")
                .arg("BLOCK")
                .arg(10)
                .arg("STREAMS")
                .arg("s")
                .arg("$")
                .clone()
        };
        assert!(!is_repeatable(&block()), "XREAD BLOCK");
        assert!(!is_repeatable(block().idempotent()), "XREAD BLOCK, marked");
        assert!(!is_repeatable(cmd("BRPOP").arg("q").arg(1).idempotent()));
        assert!(!repeatable_as(cmd("WAIT").arg(1).arg(0), true));
        assert!(may_retry(&lost(), true));
        assert!(!may_retry(&lost(), false));
        assert!(lost().is_ambiguous());
    }

    #[test]
    fn what_was_never_sent_is_always_retried_and_timeouts_never() {
        assert!(!refused().is_ambiguous());
        assert!(may_retry(&refused(), false));
        assert!(!may_retry(&Error::Timeout("reply".into()), true));
        assert!(!may_retry(
            &Error::Server(crate::ServerError::parse("ERR x")),
            true
        ));
    }

    fn reply(line: &str) -> Value {
        Value::Error(crate::ServerError::parse(line))
    }

    const LOADING: &str = "LOADING Redis is loading the dataset in memory";

    #[test]
    fn a_loading_refusal_is_retried_for_any_command() {
        let loading = Error::Server(crate::ServerError::parse(LOADING));
        assert!(!loading.is_ambiguous());
        assert!(may_retry(&loading, false), "an INCR refused while loading");
        let busy = Error::Server(crate::ServerError::parse("BUSY a script is running"));
        assert!(!may_retry(&busy, true));
    }

    #[test]
    fn a_scripts_own_loading_error_is_not_a_refusal() {
        let script = Error::Server(crate::ServerError::parse("LOADING not really"));
        assert!(
            !may_retry(&script, false),
            "the script ran before it answered"
        );
        let replies = vec![reply("LOADING not really"), reply("LOADING not really")];
        assert_eq!(refused_while_loading(replies, false).unwrap().len(), 2);
    }

    #[test]
    fn an_attempt_after_a_loading_refusal_that_may_have_run_is_not_repeated() {
        let mut attempts = 0;
        let result: Result<()> = RetryPolicy::default().run(
            || false,
            || {
                attempts += 1;
                match attempts {
                    1 => Err(Error::Server(crate::ServerError::parse(LOADING))),
                    _ => Err(lost()),
                }
            },
        );
        assert_eq!(
            attempts, 2,
            "an INCR that may have run is not sent a third time"
        );
        assert!(
            result.unwrap_err().is_ambiguous(),
            "the caller hears it may have run"
        );
        // A read-only command is sent until the policy's time runs out, and
        // giving up reports the failure that may have run it.
        let policy = RetryPolicy {
            max_time: Duration::from_millis(30),
        };
        let mut reads = 0;
        let result: Result<()> = policy.run(
            || true,
            || {
                reads += 1;
                match reads {
                    1 => Err(Error::Server(crate::ServerError::parse(LOADING))),
                    _ => Err(lost()),
                }
            },
        );
        assert!(reads > 2, "{reads}");
        assert!(result.unwrap_err().is_ambiguous());
    }

    #[test]
    fn a_pipeline_is_refused_while_loading_only_when_nothing_ran() {
        let ok = || Value::Status("OK".into());
        let err = refused_while_loading(vec![reply(LOADING), reply(LOADING)], false);
        assert_eq!(err.unwrap_err().code(), Some("LOADING"));
        // The loading ended after the first command: the second ran.
        let mixed = refused_while_loading(vec![reply(LOADING), Value::Int(1)], false).unwrap();
        assert_eq!(mixed.len(), 2);
        let plain = refused_while_loading(vec![reply("ERR x"), Value::Int(1)], false).unwrap();
        assert_eq!(plain.len(), 2);
        // MULTI is allowed while loading; the queued command is refused and
        // EXEC discards the transaction.
        let exec_abort = reply("EXECABORT Transaction discarded because of previous errors.");
        let tx = refused_while_loading(vec![ok(), reply(LOADING), exec_abort.clone()], true);
        assert_eq!(tx.unwrap_err().code(), Some("LOADING"));
        // Refused but not discarded (no EXECABORT): left to the caller.
        let odd = vec![ok(), reply(LOADING), Value::Array(vec![])];
        assert_eq!(refused_while_loading(odd, true).unwrap().len(), 3);
        // A non-atomic pipeline that holds an EXECABORT of its own ran.
        let own = vec![reply(LOADING), exec_abort];
        assert_eq!(refused_while_loading(own, false).unwrap().len(), 2);
    }

    #[test]
    fn a_policy_stops_at_its_deadline() {
        let policy = RetryPolicy {
            max_time: Duration::from_millis(30),
        };
        let mut attempts = 0;
        let result: Result<()> = policy.run(
            || false,
            || {
                attempts += 1;
                Err(refused())
            },
        );
        assert!(result.is_err());
        assert!(attempts >= 2, "{attempts}");
        let mut once = 0;
        let _ = RetryPolicy::default().run(
            || false,
            || -> Result<()> {
                once += 1;
                Err(lost())
            },
        );
        assert_eq!(once, 1, "an INCR that may have run is not repeated");
    }
}
