//! Pub/sub on a dedicated connection: a subscribed connection can do nothing
//! else, so it never comes from (or goes back to) the pool.
//!
//! `subscribe` and `psubscribe` only send the request; the server's
//! confirmations arrive as messages of kind `subscribe` / `psubscribe`, as in
//! redis-py. A coroutine loops on [`PubSub::next_message`] (which skips those
//! confirmations) while others publish with `PUBLISH`.

use std::time::Duration;

use crate::cmd::{cmd, Cmd};
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::resp::Value;
use crate::types::FromValue;
use crate::url::ConnectionInfo;

/// One message from a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `message`, `pmessage`, `subscribe`, `unsubscribe`, `psubscribe`, ...
    pub kind: String,
    /// The channel it was published to (or (un)subscribed).
    pub channel: Vec<u8>,
    /// The matching pattern, for `pmessage`.
    pub pattern: Option<Vec<u8>>,
    /// The message body; for confirmations, the subscription count in decimal.
    pub payload: Vec<u8>,
}

impl Message {
    /// The payload as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// A subscriber.
#[derive(Debug)]
pub struct PubSub {
    conn: Connection,
}

impl PubSub {
    pub(crate) fn open(info: &ConnectionInfo) -> Result<PubSub> {
        Ok(PubSub {
            conn: Connection::open(info)?,
        })
    }

    /// SUBSCRIBE to channels.
    pub fn subscribe(&mut self, channels: &[&str]) -> Result<()> {
        self.send(cmd("SUBSCRIBE").args(channels))
    }

    /// PSUBSCRIBE to glob patterns.
    pub fn psubscribe(&mut self, patterns: &[&str]) -> Result<()> {
        self.send(cmd("PSUBSCRIBE").args(patterns))
    }

    /// UNSUBSCRIBE from channels (all of them with an empty slice).
    pub fn unsubscribe(&mut self, channels: &[&str]) -> Result<()> {
        self.send(cmd("UNSUBSCRIBE").args(channels))
    }

    /// PUNSUBSCRIBE from patterns (all of them with an empty slice).
    pub fn punsubscribe(&mut self, patterns: &[&str]) -> Result<()> {
        self.send(cmd("PUNSUBSCRIBE").args(patterns))
    }

    /// SSUBSCRIBE to shard channels (Redis 7, on the cluster node that
    /// serves their slot; `cluster::ShardedPubSub` finds it and follows it).
    pub fn ssubscribe(&mut self, channels: &[&str]) -> Result<()> {
        self.send(cmd("SSUBSCRIBE").args(channels))
    }

    /// SUNSUBSCRIBE from shard channels (all of them with an empty slice).
    pub fn sunsubscribe(&mut self, channels: &[&str]) -> Result<()> {
        self.send(cmd("SUNSUBSCRIBE").args(channels))
    }

    fn send(&mut self, cmd: &Cmd) -> Result<()> {
        // Replies to (un)subscribe come back as messages, not as replies owed.
        self.conn.send_unowed(cmd)
    }

    /// The next message of any kind, waiting at most `timeout` (`None`:
    /// forever). `Ok(None)` when the time passed with nothing received; the
    /// connection stays usable.
    pub fn get_message(&mut self, timeout: Option<Duration>) -> Result<Option<Message>> {
        match self.conn.read_push(timeout)? {
            None => Ok(None),
            Some(value) => message(value).map(Some),
        }
    }

    /// The next published message (`message`, `pmessage` or `smessage`),
    /// skipping subscription confirmations; waits as long as it takes.
    pub fn next_message(&mut self) -> Result<Message> {
        loop {
            let message = self.get_message(None)?.expect("no timeout was set");
            if matches!(message.kind.as_str(), "message" | "pmessage" | "smessage") {
                return Ok(message);
            }
        }
    }
}

/// A pub/sub frame (RESP3 push or RESP2 array) as a [`Message`].
pub(crate) fn message(value: Value) -> Result<Message> {
    let parts = match value {
        Value::Array(parts) | Value::Push(parts) => parts,
        Value::Error(err) => return Err(Error::Server(err)),
        other => {
            return Err(Error::Protocol(format!(
                "unexpected pub/sub reply {other:?}"
            )))
        }
    };
    let mut parts = parts.into_iter();
    let kind = String::from_value(parts.next().unwrap_or(Value::Nil))?;
    let bytes = |v: Option<Value>| -> Result<Vec<u8>> {
        match v {
            Some(Value::Int(n)) => Ok(n.to_string().into_bytes()),
            Some(v) => Vec::<u8>::from_value(v),
            None => Err(Error::Protocol(format!("short pub/sub {kind} message"))),
        }
    };
    let pattern = if kind == "pmessage" {
        Some(bytes(parts.next())?)
    } else {
        None
    };
    let channel = bytes(parts.next())?;
    let payload = bytes(parts.next())?;
    Ok(Message {
        kind,
        channel,
        pattern,
        payload,
    })
}
