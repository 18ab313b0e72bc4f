//! Typed methods for the common command families, one trait (and file) per
//! family. Each is implemented for everything that is [`ConnectionLike`]:
//! `Client`, `Connection`, `PooledConnection`. Import them all with
//! `use greenhub_redis::prelude::*`. Method names are Redis's, in lowercase.
//! Anything not covered here runs through `cmd("NAME").arg(..).query(..)`.

mod hashes;
mod keys;
mod lists;
mod server;
mod sets;
mod sorted_sets;
mod streams;
mod strings;

pub use hashes::HashCommands;
pub use keys::{KeyCommands, ScanIter};
pub use lists::{Direction, ListCommands};
pub use server::ServerCommands;
pub use sets::SetCommands;
pub use sorted_sets::SortedSetCommands;
pub use streams::{
    AutoClaim, PendingEntry, PendingSummary, ReadOptions, StreamCommands, StreamEntry, StreamRead,
};
pub use strings::{Expiry, SetOptions, StringCommands};

use crate::cmd::{Cmd, ConnectionLike};
use crate::error::Result;
use crate::types::FromValue;

/// Runs `cmd` on `con` and converts the reply: the body of every method.
/// The conversion is out of line: a command parked on its reply sits in
/// this frame, which then holds no conversion's locals.
fn run<T: FromValue>(con: &mut (impl ConnectionLike + ?Sized), cmd: &Cmd) -> Result<T> {
    let value = con.req_command(cmd)?;
    convert(value)
}

#[inline(never)]
fn convert<T: FromValue>(value: crate::Value) -> Result<T> {
    T::from_value(value)
}
