//! Pipelines and transactions.
//!
//! A [`Pipeline`] sends many commands in one write and reads their replies in
//! order: one round trip instead of many. Each command's error reply is kept
//! (`query_values`), or the first one is returned (`query`). An atomic
//! pipeline wraps the commands in MULTI/EXEC. [`transaction`] adds WATCH and
//! optimistic retry: it re-runs the caller's closure while a watched key is
//! changed under it (EXEC aborted), as redis-py's `Redis.transaction`.

use crate::cmd::{cmd, Cmd, ConnectionLike};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::resp::Value;
use crate::types::{FromValue, ToArg};

/// Commands to send together.
///
/// ```no_run
/// use greenhub_redis::{pipe, Client};
/// greenhub::run(|| {
///     let mut redis = Client::open("redis://127.0.0.1:6379").unwrap();
///     let (a, b): (i64, i64) = pipe().cmd("INCR").arg("a").cmd("INCR").arg("b").query(&mut redis).unwrap();
///     println!("{a} {b}");
/// });
/// ```
#[derive(Clone, Debug, Default)]
pub struct Pipeline {
    cmds: Vec<Cmd>,
    atomic: bool,
}

/// An empty pipeline.
pub fn pipe() -> Pipeline {
    Pipeline::default()
}

impl Pipeline {
    /// Starts another command.
    pub fn cmd(&mut self, name: &str) -> &mut Pipeline {
        self.cmds.push(cmd(name));
        self
    }

    /// Appends an argument to the last command.
    ///
    /// # Panics
    ///
    /// Panics if no command was started.
    pub fn arg(&mut self, arg: impl ToArg) -> &mut Pipeline {
        self.cmds
            .last_mut()
            .expect("Pipeline::arg before Pipeline::cmd")
            .arg(arg);
        self
    }

    /// Appends each item as one argument of the last command.
    ///
    /// # Panics
    ///
    /// Panics if no command was started.
    pub fn args<A: ToArg>(&mut self, args: impl IntoIterator<Item = A>) -> &mut Pipeline {
        self.cmds
            .last_mut()
            .expect("Pipeline::args before Pipeline::cmd")
            .args(args);
        self
    }

    /// Adds a built command.
    pub fn add(&mut self, cmd: Cmd) -> &mut Pipeline {
        self.cmds.push(cmd);
        self
    }

    /// Wraps the commands in MULTI/EXEC: all run, or (on a WATCH conflict) none.
    pub fn atomic(&mut self) -> &mut Pipeline {
        self.atomic = true;
        self
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    /// Whether no command was added.
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// Runs the pipeline: one reply per command, error replies kept as
    /// `Value::Error`. An aborted transaction is `Err(Error::ExecAborted)`;
    /// a transaction the server discarded because a command was refused
    /// while queued (a wrong number of arguments, an unknown command) is that
    /// command's own error, as redis-py reports it, not EXECABORT.
    pub fn query_values(&self, con: &mut impl ConnectionLike) -> Result<Vec<Value>> {
        if self.cmds.is_empty() {
            return Ok(Vec::new());
        }
        let mut replies = con.req_pipeline(&self.cmds, self.atomic)?;
        if !self.atomic {
            return Ok(replies);
        }
        let exec = replies.pop();
        match exec {
            Some(Value::Array(results)) => Ok(results),
            Some(Value::Nil) => Err(Error::ExecAborted),
            Some(Value::Error(err)) => {
                // MULTI's reply, then one QUEUED or error per command.
                let queued = replies.into_iter().skip(1).find_map(|reply| match reply {
                    Value::Error(err) => Some(err),
                    _ => None,
                });
                Err(Error::Server(queued.unwrap_or(err)))
            }
            other => Err(Error::Protocol(format!("unexpected EXEC reply {other:?}"))),
        }
    }

    /// Runs the pipeline and converts the replies, as a tuple or a `Vec`;
    /// the first error reply becomes `Err(Error::Server)`.
    pub fn query<T: FromValue>(&self, con: &mut impl ConnectionLike) -> Result<T> {
        let values = self.query_values(con)?;
        if let Some(Value::Error(err)) = values.iter().find(|v| matches!(v, Value::Error(_))) {
            return Err(Error::Server(err.clone()));
        }
        T::from_value(Value::Array(values))
    }
}

/// Runs an optimistic transaction: WATCHes `keys`, lets `build` read what it
/// needs through the connection and queue commands in the (atomic) pipeline,
/// then EXECs; when a watched key changed meanwhile, starts over.
///
/// ```no_run
/// use greenhub_redis::prelude::*;
/// greenhub::run(|| {
///     let client = greenhub_redis::Client::open("redis://127.0.0.1:6379").unwrap();
///     let mut con = client.get_connection().unwrap();
///     let (new,): (i64,) = greenhub_redis::transaction(&mut con, &["counter"], |con, pipe| {
///         let old: Option<i64> = con.get("counter")?;
///         pipe.cmd("SET").arg("counter").arg(old.unwrap_or(0) * 2 + 1).cmd("GET").arg("counter");
///         Ok(())
///     })
///     .map(|(_, new): ((), i64)| (new,))
///     .unwrap();
///     println!("{new}");
/// });
/// ```
pub fn transaction<K: ToArg, T: FromValue>(
    con: &mut Connection,
    keys: &[K],
    mut build: impl FnMut(&mut Connection, &mut Pipeline) -> Result<()>,
) -> Result<T> {
    loop {
        con.req_command(cmd("WATCH").args(keys))?;
        let mut pipeline = pipe();
        pipeline.atomic();
        if let Err(err) = build(con, &mut pipeline) {
            con.req_command(&cmd("UNWATCH"))?;
            return Err(err);
        }
        match pipeline.query_values(con) {
            Err(Error::ExecAborted) => {
                log::debug!("transaction aborted by a WATCH conflict; retrying");
                continue;
            }
            result => {
                let values = result?;
                if let Some(Value::Error(err)) =
                    values.iter().find(|v| matches!(v, Value::Error(_)))
                {
                    return Err(Error::Server(err.clone()));
                }
                return T::from_value(Value::Array(values));
            }
        }
    }
}
