//! Sorted sets: ZADD, ZRANGE (with scores), ZSCORE, ZINCRBY, and the
//! blocking BZPOPMIN.

use super::run;
use crate::cmd::{cmd, ConnectionLike};
use crate::error::Result;
use crate::types::{FromValue, ToArg};

/// Sorted-set commands.
pub trait SortedSetCommands: ConnectionLike {
    /// ZADD of `(score, member)` pairs: how many members were new.
    fn zadd<M: ToArg>(&mut self, key: impl ToArg, members: &[(f64, M)]) -> Result<usize> {
        let mut zadd = cmd("ZADD");
        zadd.arg(key);
        for (score, member) in members {
            zadd.arg(*score).arg(member);
        }
        run(self, &zadd)
    }

    /// ZRANGE by index, members only.
    fn zrange<T: FromValue>(&mut self, key: impl ToArg, start: i64, stop: i64) -> Result<Vec<T>> {
        run(self, cmd("ZRANGE").arg(key).arg(start).arg(stop))
    }

    /// ZRANGE by index WITHSCORES: `(member, score)` pairs. RESP2 sends them
    /// flat (`member, score, member, score`), RESP3 as two-element arrays;
    /// both read the same.
    fn zrange_withscores<T: FromValue>(
        &mut self,
        key: impl ToArg,
        start: i64,
        stop: i64,
    ) -> Result<Vec<(T, f64)>> {
        let reply: Vec<crate::resp::Value> = run(
            self,
            cmd("ZRANGE")
                .arg(key)
                .arg(start)
                .arg(stop)
                .arg("WITHSCORES"),
        )?;
        let mut items = reply.into_iter().peekable();
        let mut pairs = Vec::with_capacity(items.len());
        while let Some(item) = items.next() {
            let (member, score) = match item {
                pair @ crate::resp::Value::Array(_) => <(T, f64)>::from_value(pair)?,
                member => {
                    let score = items.next().ok_or(crate::Error::Type {
                        expected: "a score after each member",
                        got: "a member without one".into(),
                    })?;
                    (T::from_value(member)?, f64::from_value(score)?)
                }
            };
            pairs.push((member, score));
        }
        Ok(pairs)
    }

    /// ZSCORE (`None` for a missing member).
    fn zscore(&mut self, key: impl ToArg, member: impl ToArg) -> Result<Option<f64>> {
        run(self, cmd("ZSCORE").arg(key).arg(member))
    }

    /// ZINCRBY: the new score.
    fn zincr_by(&mut self, key: impl ToArg, member: impl ToArg, by: f64) -> Result<f64> {
        run(self, cmd("ZINCRBY").arg(key).arg(by).arg(member))
    }

    /// BZPOPMIN: `(key, member, score)` of the lowest-scored member of the
    /// first non-empty set, or `None` after `timeout` seconds.
    fn bzpopmin<K: ToArg, T: FromValue>(
        &mut self,
        keys: &[K],
        timeout: f64,
    ) -> Result<Option<(String, T, f64)>> {
        run(self, cmd("BZPOPMIN").args(keys).arg(timeout))
    }
}

impl<C: ConnectionLike + ?Sized> SortedSetCommands for C {}
