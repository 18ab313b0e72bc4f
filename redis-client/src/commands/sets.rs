//! Sets: SADD, SREM, SMEMBERS, SISMEMBER.

use super::run;
use crate::cmd::{cmd, ConnectionLike};
use crate::error::Result;
use crate::types::{FromValue, ToArg};

/// Set commands.
pub trait SetCommands: ConnectionLike {
    /// SADD: how many members were new.
    fn sadd<M: ToArg>(&mut self, key: impl ToArg, members: &[M]) -> Result<usize> {
        run(self, cmd("SADD").arg(key).args(members))
    }

    /// SREM: how many members were removed.
    fn srem<M: ToArg>(&mut self, key: impl ToArg, members: &[M]) -> Result<usize> {
        run(self, cmd("SREM").arg(key).args(members))
    }

    /// SMEMBERS, as a `HashSet` or a `Vec`.
    fn smembers<T: FromValue>(&mut self, key: impl ToArg) -> Result<T> {
        run(self, cmd("SMEMBERS").arg(key))
    }

    /// SISMEMBER.
    fn sismember(&mut self, key: impl ToArg, member: impl ToArg) -> Result<bool> {
        run(self, cmd("SISMEMBER").arg(key).arg(member))
    }
}

impl<C: ConnectionLike + ?Sized> SetCommands for C {}
