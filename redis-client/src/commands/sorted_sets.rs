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

    /// ZRANGE by index WITHSCORES: `(member, score)` pairs.
    fn zrange_withscores<T: FromValue>(
        &mut self,
        key: impl ToArg,
        start: i64,
        stop: i64,
    ) -> Result<Vec<(T, f64)>> {
        let flat: Vec<crate::resp::Value> = run(
            self,
            cmd("ZRANGE")
                .arg(key)
                .arg(start)
                .arg(stop)
                .arg("WITHSCORES"),
        )?;
        let mut flat = flat.into_iter();
        let mut pairs = Vec::with_capacity(flat.len() / 2);
        while let (Some(member), Some(score)) = (flat.next(), flat.next()) {
            pairs.push((T::from_value(member)?, f64::from_value(score)?));
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
