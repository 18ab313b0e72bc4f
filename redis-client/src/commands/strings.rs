//! Strings: GET, SET (with EX/PX/NX/XX), MGET, MSET, INCR/DECR/INCRBY,
//! APPEND, STRLEN, GETDEL.

use std::time::Duration;

use super::run;
use crate::cmd::{cmd, ConnectionLike};
use crate::error::Result;
use crate::types::{FromValue, ToArg};

/// An expiry for SET.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// `EX seconds`.
    Seconds(u64),
    /// `PX milliseconds`.
    Millis(u64),
}

impl From<Duration> for Expiry {
    fn from(d: Duration) -> Self {
        Expiry::Millis(d.as_millis() as u64)
    }
}

/// Options of SET beyond key and value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// EX or PX.
    pub expiry: Option<Expiry>,
    /// NX: only if the key does not exist.
    pub only_if_absent: bool,
    /// XX: only if the key exists.
    pub only_if_present: bool,
}

/// String commands.
pub trait StringCommands: ConnectionLike {
    /// GET: the value, or `None` (as `Option<T>`) when the key is missing.
    fn get<T: FromValue>(&mut self, key: impl ToArg) -> Result<T> {
        run(self, cmd("GET").arg(key))
    }

    /// SET.
    fn set(&mut self, key: impl ToArg, value: impl ToArg) -> Result<()> {
        run(self, cmd("SET").arg(key).arg(value))
    }

    /// SET with EX/PX/NX/XX; false when NX or XX prevented the write.
    fn set_with(
        &mut self,
        key: impl ToArg,
        value: impl ToArg,
        options: SetOptions,
    ) -> Result<bool> {
        let mut set = cmd("SET");
        set.arg(key).arg(value);
        match options.expiry {
            Some(Expiry::Seconds(s)) => set.arg("EX").arg(s),
            Some(Expiry::Millis(ms)) => set.arg("PX").arg(ms),
            None => &mut set,
        };
        if options.only_if_absent {
            set.arg("NX");
        }
        if options.only_if_present {
            set.arg("XX");
        }
        let reply: Option<String> = run(self, &set)?;
        Ok(reply.is_some())
    }

    /// MGET: one `Option` per key.
    fn mget<K: ToArg, T: FromValue>(&mut self, keys: &[K]) -> Result<Vec<Option<T>>> {
        run(self, cmd("MGET").args(keys))
    }

    /// MSET.
    fn mset<K: ToArg, V: ToArg>(&mut self, pairs: &[(K, V)]) -> Result<()> {
        let mut mset = cmd("MSET");
        for (key, value) in pairs {
            mset.arg(key).arg(value);
        }
        run(self, &mset)
    }

    /// INCR.
    fn incr(&mut self, key: impl ToArg) -> Result<i64> {
        run(self, cmd("INCR").arg(key))
    }

    /// DECR.
    fn decr(&mut self, key: impl ToArg) -> Result<i64> {
        run(self, cmd("DECR").arg(key))
    }

    /// INCRBY.
    fn incr_by(&mut self, key: impl ToArg, by: i64) -> Result<i64> {
        run(self, cmd("INCRBY").arg(key).arg(by))
    }

    /// DECRBY.
    fn decr_by(&mut self, key: impl ToArg, by: i64) -> Result<i64> {
        run(self, cmd("DECRBY").arg(key).arg(by))
    }

    /// APPEND: the new length.
    fn append(&mut self, key: impl ToArg, value: impl ToArg) -> Result<usize> {
        run(self, cmd("APPEND").arg(key).arg(value))
    }

    /// STRLEN.
    fn strlen(&mut self, key: impl ToArg) -> Result<usize> {
        run(self, cmd("STRLEN").arg(key))
    }

    /// GETDEL: the value before deleting it.
    fn getdel<T: FromValue>(&mut self, key: impl ToArg) -> Result<T> {
        run(self, cmd("GETDEL").arg(key))
    }
}

impl<C: ConnectionLike + ?Sized> StringCommands for C {}
