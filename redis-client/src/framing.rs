//! Which frame answers which command, and which commands this client
//! refuses because their replies could not be kept in step. `connection.rs`
//! asks here about every frame it reads and every command it sends.
//!
//! A frame is *out of band* when it answers no command: a RESP3 push (except
//! a subscription confirmation, which answers its SUBSCRIBE), or on a RESP2
//! connection that subscribed, a published message. Out-of-band frames go to
//! the push handlers (`push.rs`), never to a caller.

use crate::cmd::Cmd;
use crate::error::{Error, Result};
use crate::resp::Value;
use crate::session::{is_confirmation, is_message, Session};

/// Whether `frame` answers no command. `confirmation`: the command being
/// read for is a subscribe command, whose confirmations do answer it.
pub(crate) fn out_of_band(frame: &Value, session: &Session, confirmation: bool) -> bool {
    match frame {
        Value::Push(items) => !(confirmation && first_word(items).is_some_and(is_confirmation)),
        Value::Array(items) if session.subscribed && session.protocol == 2 => {
            first_word(items).is_some_and(is_message)
        }
        _ => false,
    }
}

/// Refuses, before anything is sent, a command whose replies this client
/// cannot keep in step.
#[inline]
pub(crate) fn refuse(cmd: &Cmd) -> Result<()> {
    // Both names are 6 or 7 bytes long, starting with C or M.
    let name = cmd.name();
    if !matches!(name.len(), 6 | 7) || !matches!(name[0] | 0x20, b'c' | b'm') {
        return Ok(());
    }
    refuse_slow(cmd)
}

fn refuse_slow(cmd: &Cmd) -> Result<()> {
    let mut args = cmd.arg_bytes();
    let name = args.next().unwrap_or_default();
    if name.eq_ignore_ascii_case(b"MONITOR") {
        return Err(Error::Usage(
            "MONITOR streams every command the server runs as replies to nothing: \
             it cannot share a request/reply connection"
                .into(),
        ));
    }
    if name.eq_ignore_ascii_case(b"CLIENT")
        && args
            .next()
            .is_some_and(|sub| sub.eq_ignore_ascii_case(b"REPLY"))
        && args
            .next()
            .is_some_and(|mode| !mode.eq_ignore_ascii_case(b"ON"))
    {
        return Err(Error::Usage(
            "CLIENT REPLY OFF/SKIP silences replies, and this client reads one reply per command"
                .into(),
        ));
    }
    Ok(())
}

/// The elements of an array or push frame (empty for anything else).
pub(crate) fn frame_items(frame: &Value) -> &[Value] {
    match frame {
        Value::Array(items) | Value::Push(items) => items,
        _ => &[],
    }
}

/// The elements of a pub/sub frame: a push, or a RESP2 array.
pub(crate) fn pushed_items(frame: &Value) -> Option<&[Value]> {
    match frame {
        Value::Array(items) | Value::Push(items) => Some(items),
        _ => None,
    }
}

/// The first element of a frame as a word (`message`, `invalidate`, ...).
pub(crate) fn first_word(items: &[Value]) -> Option<&[u8]> {
    match items.first()? {
        Value::Bulk(word) => Some(word),
        Value::Status(word) => Some(word.as_bytes()),
        _ => None,
    }
}
