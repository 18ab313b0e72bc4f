//! Lists: LPUSH, RPUSH, LPOP, RPOP, LRANGE, LLEN, and the blocking BLPOP,
//! BRPOP and BLMOVE (whose server-side timeout extends the read deadline).

use super::run;
use crate::cmd::{cmd, ConnectionLike};
use crate::error::Result;
use crate::types::{FromValue, ToArg};

/// An end of a list, for BLMOVE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The head.
    Left,
    /// The tail.
    Right,
}

impl Direction {
    fn word(self) -> &'static str {
        match self {
            Direction::Left => "LEFT",
            Direction::Right => "RIGHT",
        }
    }
}

/// List commands.
pub trait ListCommands: ConnectionLike {
    /// LPUSH: the new length.
    fn lpush<V: ToArg>(&mut self, key: impl ToArg, values: &[V]) -> Result<usize> {
        run(self, cmd("LPUSH").arg(key).args(values))
    }

    /// RPUSH: the new length.
    fn rpush<V: ToArg>(&mut self, key: impl ToArg, values: &[V]) -> Result<usize> {
        run(self, cmd("RPUSH").arg(key).args(values))
    }

    /// LPOP one element (`Option<T>`).
    fn lpop<T: FromValue>(&mut self, key: impl ToArg) -> Result<T> {
        run(self, cmd("LPOP").arg(key))
    }

    /// RPOP one element (`Option<T>`).
    fn rpop<T: FromValue>(&mut self, key: impl ToArg) -> Result<T> {
        run(self, cmd("RPOP").arg(key))
    }

    /// LRANGE, inclusive, negative indexes from the end.
    fn lrange<T: FromValue>(&mut self, key: impl ToArg, start: i64, stop: i64) -> Result<Vec<T>> {
        run(self, cmd("LRANGE").arg(key).arg(start).arg(stop))
    }

    /// LLEN.
    fn llen(&mut self, key: impl ToArg) -> Result<usize> {
        run(self, cmd("LLEN").arg(key))
    }

    /// BLPOP: `(key, element)` from the first non-empty list, or `None`
    /// after `timeout` seconds (0: wait forever).
    fn blpop<K: ToArg>(&mut self, keys: &[K], timeout: f64) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        run(self, cmd("BLPOP").args(keys).arg(timeout))
    }

    /// BRPOP: like [`blpop`](Self::blpop), from the tail.
    fn brpop<K: ToArg>(&mut self, keys: &[K], timeout: f64) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        run(self, cmd("BRPOP").args(keys).arg(timeout))
    }

    /// BLMOVE: moves an element between lists, waiting up to `timeout`
    /// seconds for one; `None` on timeout.
    fn blmove<T: FromValue>(
        &mut self,
        from: impl ToArg,
        to: impl ToArg,
        from_end: Direction,
        to_end: Direction,
        timeout: f64,
    ) -> Result<Option<T>> {
        run(
            self,
            cmd("BLMOVE")
                .arg(from)
                .arg(to)
                .arg(from_end.word())
                .arg(to_end.word())
                .arg(timeout),
        )
    }
}

impl<C: ConnectionLike + ?Sized> ListCommands for C {}
