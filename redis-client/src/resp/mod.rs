//! RESP, Redis's wire protocol: the [`Value`] type, the parser and the
//! encoders. No I/O happens here: the connection feeds bytes in and writes
//! bytes out.
//!
//! | file | role |
//! | --- | --- |
//! | `mod.rs` | [`Value`], [`Limits`], and [`parse`]: one call over a whole buffer |
//! | `decode.rs` | [`Decoder`]: the resumable parser the connection feeds, read by read |
//! | `scalars.rs` | integers, lengths, doubles, big numbers, blobs: one line's worth |
//! | `encode.rs` | [`encode_command`] for requests, [`encode_value`] for tests and fake servers |
//!
//! The parser answers one of three things: a complete value and how many
//! bytes it used; "incomplete", with how many more bytes are needed at least;
//! or a protocol error. Incomplete is not an error: a reply may arrive split
//! at any byte. Both RESP2 and RESP3 are understood. The parser is bounded:
//! a reply larger than [`Limits::max_bulk`] and nesting deeper than
//! [`Limits::max_depth`] are protocol errors, and memory grows with the bytes
//! received, never with a length the server announced. See
//! `docs/redis-client.md`, "The parser".

mod decode;
mod encode;
mod scalars;

pub use decode::{Decoded, Decoder};
pub(crate) use encode::push_decimal;
pub use encode::{encode_command, encode_value};

use std::fmt;

use crate::error::ServerError;

/// A reply from the server.
///
/// Dropping a `Value` is the compiler's drop glue, which recurses once per
/// level of nesting: measured here, about 90 bytes of stack per level in a
/// release build and 250 in a debug build. Real replies nest a few levels,
/// but a script's reply may nest up to [`Limits::max_depth`] (1024 by
/// default), which takes about 96 KiB of stack to drop in release and
/// 256 KiB in debug, more than a coroutine's default 128 KiB there: drop a
/// reply that may be that deep with [`dismantle`], which does not recurse.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// RESP2's null bulk string and null array, RESP3's null (`_`).
    Nil,
    /// A simple string (`+OK`). Redis echoes user bytes into some status
    /// lines (a Lua `status_reply`); one whose bytes are not UTF-8 arrives as
    /// [`Value::Bulk`] holding them, rather than failing the connection.
    Status(String),
    /// An error reply (`-ERR ...`, RESP3 `!`); top-level ones become
    /// `Error::Server`, ones inside a pipeline or transaction stay values.
    /// Errors echo user bytes too (`OBJECT \xff`): bytes that are not UTF-8
    /// are shown as U+FFFD in its text, as redis-py shows them, and kept
    /// as they came in [`ServerError::raw`].
    Error(ServerError),
    /// An integer (`:`).
    Int(i64),
    /// A bulk string (`$`): binary-safe bytes.
    Bulk(Vec<u8>),
    /// An array (`*`).
    Array(Vec<Value>),
    /// A RESP3 map (`%`), in the order the server sent it.
    Map(Vec<(Value, Value)>),
    /// A RESP3 set (`~`).
    Set(Vec<Value>),
    /// A RESP3 double (`,`).
    Double(f64),
    /// A RESP3 boolean (`#t`, `#f`).
    Boolean(bool),
    /// A RESP3 big number (`(`), as its decimal digits.
    BigNumber(String),
    /// A RESP3 verbatim string (`=`): a three-letter format and the text.
    Verbatim {
        /// `txt` or `mkd`.
        format: String,
        /// The text.
        text: Vec<u8>,
    },
    /// A RESP3 push (`>`): pub/sub messages and other out-of-band data.
    Push(Vec<Value>),
    /// A RESP3 attribute (`|`) and the value it annotates.
    Attribute {
        /// The value.
        data: Box<Value>,
        /// The attribute pairs.
        attributes: Vec<(Value, Value)>,
    },
}

/// Bounds on what the parser accepts from a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest reply, in bytes. Everything one reply spans counts: its
    /// headers, every element, nested aggregates. An announced length or
    /// element count that cannot fit in what is left of it is refused at
    /// once, before its bytes arrive. (Named for the bulk string it first
    /// bounded alone.) Set by the URL's `max_reply_bytes`; 512 MiB by
    /// default, Redis's own `proto-max-bulk-len`.
    pub max_bulk: usize,
    /// Deepest nesting of aggregates. Real replies nest a few levels, but an
    /// EVAL returns whatever its script built; 1024 by default, as hiredis.
    /// (See [`Value`] on the stack a deep reply takes to drop.)
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk: 512 << 20,
            max_depth: 1024,
        }
    }
}

/// What [`parse`] found in a buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// A whole value, and the number of bytes it used.
    Complete(Value, usize),
    /// Not enough bytes yet; do not retry before the buffer holds this many.
    Incomplete(usize),
}

/// Bytes that are not valid RESP, or a reply beyond the [`Limits`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Parses the first value in `buf`, in one call: a [`Decoder`] that starts
/// and ends with the call. (The connection keeps its decoder between reads
/// instead, so that a reply arriving in many reads is parsed once.)
///
/// ```
/// use greenhub_redis::resp::{parse, Limits, Parsed, Value};
/// let limits = Limits::default();
/// assert_eq!(parse(b"$5\r\nhel", &limits), Ok(Parsed::Incomplete(11)));
/// assert_eq!(parse(b"$5\r\nhello\r\n", &limits), Ok(Parsed::Complete(Value::Bulk(b"hello".to_vec()), 11)));
/// assert!(parse(b"?what\r\n", &limits).is_err());
/// ```
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    match Decoder::new(*limits).decode(buf)? {
        Decoded::Complete { value, used } => Ok(Parsed::Complete(value, used)),
        Decoded::Incomplete { need, .. } => Ok(Parsed::Incomplete(buf.len() + need)),
    }
}

/// Drops `value` without recursion. The drop glue the compiler writes for a
/// nested `Value` recurses once per level, and a reply nested 1024 deep
/// would need about 250 KiB of stack for it in a debug build; the client
/// drops the values it discards through here.
pub fn dismantle(value: Value) {
    let mut todo = vec![value];
    while let Some(value) = todo.pop() {
        match value {
            Value::Array(items) | Value::Set(items) | Value::Push(items) => todo.extend(items),
            Value::Map(pairs) => {
                for (key, value) in pairs {
                    todo.push(key);
                    todo.push(value);
                }
            }
            Value::Attribute { data, attributes } => {
                todo.push(*data);
                for (key, value) in attributes {
                    todo.push(key);
                    todo.push(value);
                }
            }
            _ => {}
        }
    }
}
