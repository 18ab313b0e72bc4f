//! Server: PING, ECHO, INFO, DBSIZE, FLUSHDB.

use super::run;
use crate::cmd::{cmd, ConnectionLike};
use crate::error::Result;
use crate::types::{FromValue, ToArg};

/// Server and connection commands.
pub trait ServerCommands: ConnectionLike {
    /// PING: `PONG`.
    fn ping(&mut self) -> Result<String> {
        run(self, &cmd("PING"))
    }

    /// ECHO.
    fn echo<T: FromValue>(&mut self, message: impl ToArg) -> Result<T> {
        run(self, cmd("ECHO").arg(message))
    }

    /// INFO of a section (`""` for the default set), as text.
    fn info(&mut self, section: &str) -> Result<String> {
        let mut info = cmd("INFO");
        if !section.is_empty() {
            info.arg(section);
        }
        run(self, &info)
    }

    /// DBSIZE: keys in the selected database.
    fn dbsize(&mut self) -> Result<usize> {
        run(self, &cmd("DBSIZE"))
    }

    /// FLUSHDB: removes every key of the selected database.
    fn flushdb(&mut self) -> Result<()> {
        run(self, &cmd("FLUSHDB"))
    }
}

impl<C: ConnectionLike + ?Sized> ServerCommands for C {}
