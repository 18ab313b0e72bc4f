//! Hashes: HSET, HGET, HGETALL, HDEL, HINCRBY, and HSCAN as an iterator.

use std::collections::VecDeque;

use super::{run, ScanIter};
use crate::cmd::{cmd, ConnectionLike};
use crate::error::Result;
use crate::types::{FromValue, ToArg};

/// Hash commands.
pub trait HashCommands: ConnectionLike {
    /// HSET of field/value pairs: how many fields were new.
    fn hset<F: ToArg, V: ToArg>(&mut self, key: impl ToArg, pairs: &[(F, V)]) -> Result<usize> {
        let mut hset = cmd("HSET");
        hset.arg(key);
        for (field, value) in pairs {
            hset.arg(field).arg(value);
        }
        run(self, &hset)
    }

    /// HGET (`Option<T>`).
    fn hget<T: FromValue>(&mut self, key: impl ToArg, field: impl ToArg) -> Result<T> {
        run(self, cmd("HGET").arg(key).arg(field))
    }

    /// HGETALL, as a `HashMap` or `BTreeMap`, or as a flat `Vec` (field,
    /// value, field, value, ...), alike over RESP2 and RESP3. Not as a
    /// `Vec` of pairs: that is a type error.
    fn hgetall<T: FromValue>(&mut self, key: impl ToArg) -> Result<T> {
        run(self, cmd("HGETALL").arg(key))
    }

    /// HDEL: how many fields were removed.
    fn hdel<F: ToArg>(&mut self, key: impl ToArg, fields: &[F]) -> Result<usize> {
        run(self, cmd("HDEL").arg(key).args(fields))
    }

    /// HINCRBY: the new value.
    fn hincr_by(&mut self, key: impl ToArg, field: impl ToArg, by: i64) -> Result<i64> {
        run(self, cmd("HINCRBY").arg(key).arg(field).arg(by))
    }

    /// HSCAN as an iterator over `(field, value)` pairs matching `pattern`.
    fn hscan<K: ToArg, F: FromValue, V: FromValue>(
        &mut self,
        key: K,
        pattern: &str,
    ) -> HScanIter<'_, Self, F, V>
    where
        Self: Sized,
    {
        let mut key_bytes = Vec::new();
        key.write_arg(&mut key_bytes);
        HScanIter {
            inner: ScanIter {
                con: self,
                pattern: pattern.to_owned(),
                command: "HSCAN",
                key: Some(key_bytes),
                cursor: Some(0),
                batch: VecDeque::new(),
            },
            _pair: std::marker::PhantomData,
        }
    }
}

impl<C: ConnectionLike + ?Sized> HashCommands for C {}

/// HSCAN's iterator: the server sends fields and values flat; this pairs them.
#[derive(Debug)]
pub struct HScanIter<'a, C, F, V> {
    inner: ScanIter<'a, C, crate::resp::Value>,
    _pair: std::marker::PhantomData<(F, V)>,
}

impl<C: ConnectionLike, F: FromValue, V: FromValue> Iterator for HScanIter<'_, C, F, V> {
    type Item = Result<(F, V)>;

    fn next(&mut self) -> Option<Result<(F, V)>> {
        let field = match self.inner.next()? {
            Ok(field) => field,
            Err(err) => return Some(Err(err)),
        };
        let value = match self.inner.next() {
            Some(Ok(value)) => value,
            Some(Err(err)) => return Some(Err(err)),
            None => {
                return Some(Err(crate::Error::Protocol(
                    "HSCAN returned a field without a value".into(),
                )))
            }
        };
        Some(F::from_value(field).and_then(|f| Ok((f, V::from_value(value)?))))
    }
}
