//! Keys: DEL, EXISTS, EXPIRE, TTL, TYPE, RENAME, and SCAN as an iterator.

use std::collections::VecDeque;
use std::time::Duration;

use super::run;
use crate::cmd::{cmd, ConnectionLike};
use crate::error::Result;
use crate::types::{FromValue, ToArg};

/// Key-space commands.
pub trait KeyCommands: ConnectionLike {
    /// DEL: how many keys were removed.
    fn del<K: ToArg>(&mut self, keys: &[K]) -> Result<usize> {
        run(self, cmd("DEL").args(keys))
    }

    /// EXISTS: how many of the keys exist.
    fn exists<K: ToArg>(&mut self, keys: &[K]) -> Result<usize> {
        run(self, cmd("EXISTS").args(keys))
    }

    /// EXPIRE (whole seconds): false if the key does not exist.
    fn expire(&mut self, key: impl ToArg, ttl: Duration) -> Result<bool> {
        run(self, cmd("EXPIRE").arg(key).arg(ttl.as_secs()))
    }

    /// TTL in seconds: -1 without expiry, -2 for a missing key.
    fn ttl(&mut self, key: impl ToArg) -> Result<i64> {
        run(self, cmd("TTL").arg(key))
    }

    /// TYPE: `string`, `list`, `hash`, ..., or `none`.
    fn key_type(&mut self, key: impl ToArg) -> Result<String> {
        run(self, cmd("TYPE").arg(key))
    }

    /// RENAME.
    fn rename(&mut self, from: impl ToArg, to: impl ToArg) -> Result<()> {
        run(self, cmd("RENAME").arg(from).arg(to))
    }

    /// SCAN as an iterator over keys matching `pattern` (`*` for all). Each
    /// step asks the server for the next batch; keys may repeat, as SCAN's
    /// guarantees allow.
    fn scan_match<T: FromValue>(&mut self, pattern: &str) -> ScanIter<'_, Self, T>
    where
        Self: Sized,
    {
        ScanIter {
            con: self,
            pattern: pattern.to_owned(),
            command: "SCAN",
            key: None,
            cursor: Some(0),
            batch: VecDeque::new(),
        }
    }
}

impl<C: ConnectionLike + ?Sized> KeyCommands for C {}

/// The iterator behind `scan_match` and `hscan`: yields `Result<T>` items.
#[derive(Debug)]
pub struct ScanIter<'a, C, T> {
    pub(crate) con: &'a mut C,
    pub(crate) pattern: String,
    pub(crate) command: &'static str,
    /// The key for HSCAN/SSCAN; `None` for SCAN.
    pub(crate) key: Option<Vec<u8>>,
    /// The next cursor; `None` once the server said 0.
    pub(crate) cursor: Option<u64>,
    pub(crate) batch: VecDeque<T>,
}

impl<C: ConnectionLike, T: FromValue> Iterator for ScanIter<'_, C, T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(item) = self.batch.pop_front() {
                return Some(Ok(item));
            }
            let cursor = self.cursor?;
            let mut scan = cmd(self.command);
            if let Some(key) = &self.key {
                scan.arg(key);
            }
            scan.arg(cursor).arg("MATCH").arg(&self.pattern);
            match run::<(u64, Vec<T>)>(self.con, &scan) {
                Ok((next, items)) => {
                    self.cursor = (next != 0).then_some(next);
                    self.batch.extend(items);
                }
                Err(err) => {
                    self.cursor = None;
                    return Some(Err(err));
                }
            }
        }
    }
}
