//! The resumable parser: [`Decoder`] turns the bytes a connection receives
//! into [`Value`]s, keeping a partial reply between calls, so each byte of a
//! reply is looked at once however the reply was split into reads.
//!
//! It does no I/O: `connection.rs` feeds it what each read brought and acts
//! on its answer. Its state between calls:
//!
//! ```text
//!   stack   [ *3 got 1 ][ %2 got key ]   aggregates being filled, outermost first
//!   blob    $1000000, 4096 bytes so far  a bulk string whose bytes are arriving
//!   scanned 17                           bytes of an unfinished line already
//!                                        searched for its CRLF (not consumed)
//!   reply   4114 bytes                   consumed for this reply: the size bound
//! ```
//!
//! Memory follows the bytes that arrived, never a length the server
//! announced: a bulk string's buffer grows as its bytes come (as a `Vec`
//! doubles), an aggregate's element list as its elements come. A whole reply
//! is bounded by [`Limits::max_bulk`]: an announced length or count that
//! cannot fit in what is left is refused at once, before its bytes arrive.
//! Nesting lives on the explicit `stack` (no recursion), bounded by
//! [`Limits::max_depth`]. A type byte is checked as soon as it arrives; a
//! line ends at CRLF only (a bare LF, or CR before anything but LF, is an
//! error). See `docs/redis-client.md`, "The parser".

use super::scalars::{bad, big_number, double, finish_blob, integer, length, too_long};
use super::{dismantle, Limits, ProtocolError, Value};
use crate::error::ServerError;

/// The longest line (type byte to CRLF) a reply may have. Simple strings and
/// errors are short; a line with no CRLF after this many bytes is garbage,
/// and waiting for more would buffer without bound.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// The fewest bytes one element of an aggregate can take (`_\r\n`, `+\r\n`):
/// an aggregate announcing `n` elements needs at least `3 n` more bytes.
const MIN_ELEMENT: usize = 3;

/// What one call to [`Decoder::decode`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    /// A whole top-level value, which took `used` bytes of this call's input.
    Complete {
        /// The value.
        value: Value,
        /// Input bytes consumed to finish it.
        used: usize,
    },
    /// No whole value yet. The first `used` bytes of the input are consumed
    /// (their content is kept in the decoder); the rest must be passed again,
    /// followed by new bytes, and nothing can progress before `need` more
    /// bytes than this call's input have arrived.
    Incomplete {
        /// Input bytes consumed.
        used: usize,
        /// New bytes needed, at least, before another call can progress.
        need: usize,
    },
}

/// A parser that resumes where the last call stopped.
///
/// ```
/// use greenhub_redis::resp::{Decoded, Decoder, Limits, Value};
/// let mut decoder = Decoder::new(Limits::default());
/// // The first read brought half a reply: the decoder keeps what it could use.
/// assert_eq!(
///     decoder.decode(b"*2\r\n$5\r\nhel"),
///     Ok(Decoded::Incomplete { used: 11, need: 4 })
/// );
/// // The next call passes only the new bytes; nothing is parsed twice.
/// assert_eq!(
///     decoder.decode(b"lo\r\n:7\r\n"),
///     Ok(Decoded::Complete {
///         value: Value::Array(vec![Value::Bulk(b"hello".to_vec()), Value::Int(7)]),
///         used: 8,
///     })
/// );
/// ```
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// Aggregates being filled, outermost first. Never longer than
    /// `limits.max_depth`; emptied when a reply completes or fails.
    stack: Vec<Frame>,
    /// A blob (`$`, `!`, `=`) whose body is still arriving.
    blob: Option<Blob>,
    /// Bytes consumed for the reply in progress; at most `limits.max_bulk`.
    reply_bytes: usize,
    /// How many bytes after the type byte of the unfinished line at the
    /// input's start were searched for CRLF already, so a long line that
    /// arrives in pieces is searched once.
    scanned: usize,
}

/// A blob whose body is arriving.
#[derive(Debug)]
struct Blob {
    kind: u8,
    /// Body bytes still to come (the CRLF after them not counted).
    left: usize,
    /// The body so far: grows with the bytes received.
    bytes: Vec<u8>,
}

/// An aggregate being filled.
#[derive(Debug)]
enum Frame {
    /// An array, set or push: `kind` and the elements still to come.
    Items {
        kind: u8,
        left: usize,
        items: Vec<Value>,
    },
    /// A map or an attribute's pairs; `key` holds a key awaiting its value.
    Pairs {
        kind: u8,
        left: usize,
        pairs: Vec<(Value, Value)>,
        key: Option<Value>,
    },
    /// An attribute whose pairs are complete, awaiting the value it annotates.
    Annotates(Vec<(Value, Value)>),
}

/// What one element header yields.
enum Step {
    /// A whole value.
    Value(Value),
    /// An aggregate to fill, or a blob to collect (already in place).
    Opened,
    /// More bytes are needed: at least this many.
    Need(usize),
}

/// Why a call stopped without a value.
pub(super) enum Stop {
    Need(usize),
    Invalid(String),
}

impl From<String> for Stop {
    fn from(message: String) -> Stop {
        Stop::Invalid(message)
    }
}

impl Decoder {
    /// A decoder that enforces `limits`.
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            stack: Vec::new(),
            blob: None,
            reply_bytes: 0,
            scanned: 0,
        }
    }

    /// The bounds it enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Changes the bounds; takes effect from the next reply on.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Whether no part of a reply is held: the last call ended on a reply
    /// boundary (a partial first line is not held: it stays in the input).
    pub fn is_idle(&self) -> bool {
        self.stack.is_empty() && self.blob.is_none() && self.reply_bytes == 0
    }

    /// Bytes of memory the partial reply holds now (its blob's and its
    /// element lists' capacity, not counting the values' own contents):
    /// what a server can make the client take before a reply is whole.
    pub fn held_bytes(&self) -> usize {
        let blob = self.blob.as_ref().map_or(0, |b| b.bytes.capacity());
        let frames: usize = self
            .stack
            .iter()
            .map(|frame| match frame {
                Frame::Items { items, .. } => items.capacity() * std::mem::size_of::<Value>(),
                Frame::Pairs { pairs, .. } | Frame::Annotates(pairs) => {
                    pairs.capacity() * std::mem::size_of::<(Value, Value)>()
                }
            })
            .sum();
        blob + frames
    }

    /// The commonest replies, whole at the start of `input` while no reply
    /// is in progress: a bulk string (`$3\r\nabc\r\n`, every GET), a
    /// non-negative integer (`:1\r\n`) or a short UTF-8 simple string
    /// (`+OK\r\n`), with the bytes they used. Exactly what
    /// [`Decoder::decode`] returns for them, without its general machinery
    /// (its resumable state, its `Decoded` and error layers); `None` for
    /// anything else, incomplete or invalid included, which `decode` then
    /// handles (and reports) as usual.
    #[inline]
    pub fn quick(&self, input: &[u8]) -> Option<(Value, usize)> {
        if !self.is_idle() || self.scanned != 0 {
            return None;
        }
        let (&kind, rest) = input.split_first()?;
        match kind {
            b'$' => {
                let (len, digits) = short_decimal(rest)?;
                let body = digits + 2;
                let end = body.checked_add(usize::try_from(len).ok()?)?;
                let used = 1 + end + 2;
                if rest.get(end..end + 2)? != b"\r\n" || used > self.limits.max_bulk {
                    return None;
                }
                Some((Value::Bulk(rest[body..end].to_vec()), used))
            }
            b':' => {
                let (n, digits) = short_decimal(rest)?;
                let used = 1 + digits + 2;
                (used <= self.limits.max_bulk).then_some((Value::Int(n), used))
            }
            b'+' => {
                let window = &rest[..rest.len().min(QUICK_LINE)];
                let cr = window.iter().position(|&b| b == b'\r' || b == b'\n')?;
                if window.get(cr..cr + 2)? != b"\r\n" || 1 + cr + 2 > self.limits.max_bulk {
                    return None;
                }
                let text = std::str::from_utf8(&rest[..cr]).ok()?;
                Some((Value::Status(text.to_owned()), 1 + cr + 2))
            }
            _ => None,
        }
    }

    /// Consumes bytes from `input` until a whole value is parsed or the
    /// input runs out. After an error the decoder is idle again, but the
    /// stream it was reading is out of step: the connection is discarded.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, ProtocolError> {
        let mut pos = 0;
        match self.run(input, &mut pos) {
            Ok(value) => {
                self.reply_bytes = 0;
                Ok(Decoded::Complete { value, used: pos })
            }
            Err(Stop::Need(need)) => Ok(Decoded::Incomplete { used: pos, need }),
            Err(Stop::Invalid(message)) => {
                self.reset();
                Err(ProtocolError(message))
            }
        }
    }

    /// Drops any partial reply (without recursion: it may be deep).
    fn reset(&mut self) {
        for frame in self.stack.drain(..) {
            match frame {
                Frame::Items { items, .. } => items.into_iter().for_each(dismantle),
                Frame::Pairs { pairs, key, .. } => {
                    pairs.into_iter().for_each(|(k, v)| {
                        dismantle(k);
                        dismantle(v)
                    });
                    key.into_iter().for_each(dismantle);
                }
                Frame::Annotates(pairs) => pairs.into_iter().for_each(|(k, v)| {
                    dismantle(k);
                    dismantle(v)
                }),
            }
        }
        self.blob = None;
        self.reply_bytes = 0;
        self.scanned = 0;
    }

    /// Marks `n` more bytes of the reply consumed.
    fn consume(&mut self, pos: &mut usize, n: usize) -> Result<(), Stop> {
        *pos += n;
        self.reply_bytes += n;
        if self.reply_bytes > self.limits.max_bulk {
            return Err(Stop::Invalid(format!(
                "reply exceeds the reply size limit of {} bytes",
                self.limits.max_bulk
            )));
        }
        Ok(())
    }

    /// Bytes the reply may still take.
    fn budget(&self) -> usize {
        self.limits.max_bulk.saturating_sub(self.reply_bytes)
    }

    fn run(&mut self, input: &[u8], pos: &mut usize) -> Result<Value, Stop> {
        loop {
            let value = if self.blob.is_some() {
                self.blob_body(input, pos)?
            } else {
                match self.element(input, pos)? {
                    Step::Value(value) => value,
                    Step::Opened => continue,
                    Step::Need(need) => return Err(Stop::Need(need)),
                }
            };
            if let Some(value) = self.close(value) {
                return Ok(value);
            }
        }
    }

    /// Takes what has arrived of the blob in progress; the value once whole.
    fn blob_body(&mut self, input: &[u8], pos: &mut usize) -> Result<Value, Stop> {
        let blob = self.blob.as_mut().expect("called with a blob in progress");
        let take = blob.left.min(input.len() - *pos);
        blob.bytes.extend_from_slice(&input[*pos..*pos + take]);
        blob.left -= take;
        let left = blob.left;
        self.consume(pos, take)?;
        if left > 0 {
            return Err(Stop::Need(left + 2));
        }
        match &input[*pos..] {
            [b'\r', b'\n', ..] => {}
            [] => return Err(Stop::Need(2)),
            [b'\r'] => return Err(Stop::Need(1)),
            _ => {
                return Err(Stop::Invalid(
                    "bulk string longer than its announced length (no CRLF after it)".into(),
                ))
            }
        }
        self.consume(pos, 2)?;
        let blob = self.blob.take().expect("checked above");
        Ok(finish_blob(blob.kind, blob.bytes)?)
    }

    /// Parses one element header at `pos`: a whole simple value, or an
    /// aggregate or blob opened (pushed on the stack, or set as the blob).
    fn element(&mut self, input: &[u8], pos: &mut usize) -> Result<Step, Stop> {
        let Some(&kind) = input.get(*pos) else {
            return Ok(Step::Need(1));
        };
        if !b"+-:_#,($!=*~>%|".contains(&kind) {
            return Err(Stop::Invalid(format!(
                "unknown reply type byte {:?} at offset {}",
                kind as char, self.reply_bytes
            )));
        }
        let Some(line_len) = self.line(&input[*pos + 1..])? else {
            let need = if input.last() == Some(&b'\r') { 1 } else { 2 };
            return Ok(Step::Need(need));
        };
        let line = &input[*pos + 1..*pos + 1 + line_len];
        let header = 1 + line_len + 2;
        let value = match kind {
            b'+' => match std::str::from_utf8(line) {
                Ok(text) => Value::Status(text.to_owned()),
                // Redis echoes user bytes into some status lines (a Lua
                // `status_reply`): keep them, rather than fail the connection.
                Err(_) => Value::Bulk(line.to_vec()),
            },
            b'-' => Value::Error(ServerError::parse_bytes(line)),
            b':' => Value::Int(integer(line)?),
            b'_' if line.is_empty() => Value::Nil,
            b'_' => return Err(Stop::Invalid("a null (`_`) with content".into())),
            b'#' => match line {
                b"t" => Value::Boolean(true),
                b"f" => Value::Boolean(false),
                _ => return Err(bad("boolean", line)),
            },
            b',' => Value::Double(double(line)?),
            b'(' => big_number(line)?,
            b'$' | b'!' | b'=' => {
                let Some(len) = length(line)? else {
                    self.consume(pos, header)?;
                    return Ok(Step::Value(Value::Nil));
                };
                if header + len + 2 > self.budget() {
                    return Err(too_long(len, self.limits.max_bulk));
                }
                self.consume(pos, header)?;
                let rest = &input[*pos..];
                if rest.len() >= len + 2 && &rest[len..len + 2] == b"\r\n" {
                    // The whole body is here: one exact copy.
                    let bytes = rest[..len].to_vec();
                    self.consume(pos, len + 2)?;
                    if kind == b'$' {
                        // The common case (every GET), without the general path.
                        return Ok(Step::Value(Value::Bulk(bytes)));
                    }
                    return Ok(Step::Value(finish_blob(kind, bytes)?));
                } else {
                    let bytes = Vec::with_capacity(len.min(rest.len()));
                    self.blob = Some(Blob {
                        kind,
                        left: len,
                        bytes,
                    });
                    return Ok(Step::Opened);
                }
            }
            _ => {
                // An aggregate: `*`, `~`, `>`, `%` or `|`.
                let Some(count) = length(line)? else {
                    self.consume(pos, header)?;
                    return Ok(Step::Value(Value::Nil));
                };
                let pairs = matches!(kind, b'%' | b'|');
                let elements = if pairs {
                    count.saturating_mul(2)
                } else {
                    count
                };
                if elements.saturating_mul(MIN_ELEMENT) > self.budget().saturating_sub(header) {
                    return Err(Stop::Invalid(format!(
                        "announced count {count} exceeds what the reply size limit of {} bytes can hold",
                        self.limits.max_bulk
                    )));
                }
                self.consume(pos, header)?;
                // Never trust the count for an allocation: grow as elements arrive.
                let room = count.min(64);
                let frame = match (pairs, count) {
                    (false, 0) => return Ok(Step::Value(finished(kind, Vec::new()))),
                    (true, 0) if kind == b'%' => return Ok(Step::Value(Value::Map(Vec::new()))),
                    (true, 0) => Frame::Annotates(Vec::new()),
                    (false, _) => Frame::Items {
                        kind,
                        left: count,
                        items: Vec::with_capacity(room),
                    },
                    (true, _) => Frame::Pairs {
                        kind,
                        left: count,
                        pairs: Vec::with_capacity(room),
                        key: None,
                    },
                };
                self.stack.push(frame);
                if self.stack.len() > self.limits.max_depth {
                    return Err(Stop::Invalid(format!(
                        "reply nested deeper than {} levels",
                        self.limits.max_depth
                    )));
                }
                return Ok(Step::Opened);
            }
        };
        self.consume(pos, header)?;
        Ok(Step::Value(value))
    }

    /// The length of the line at the start of `rest` (after its type byte),
    /// up to its CRLF; `None` while the CRLF has not arrived.
    fn line(&mut self, rest: &[u8]) -> Result<Option<usize>, Stop> {
        let window = &rest[..rest.len().min(MAX_LINE)];
        let from = self.scanned.min(window.len());
        match window[from..]
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
        {
            Some(at) => {
                let cr = from + at;
                if rest[cr] == b'\n' {
                    return Err(Stop::Invalid("bare LF (without CR) in a reply line".into()));
                }
                match rest.get(cr + 1) {
                    Some(b'\n') => {
                        self.scanned = 0;
                        Ok(Some(cr))
                    }
                    Some(_) => Err(Stop::Invalid(
                        "CR not followed by LF in a reply line".into(),
                    )),
                    None => {
                        self.scanned = cr;
                        Ok(None)
                    }
                }
            }
            None if rest.len() >= MAX_LINE => Err(Stop::Invalid(format!(
                "reply line longer than {MAX_LINE} bytes"
            ))),
            None => {
                self.scanned = window.len();
                Ok(None)
            }
        }
    }

    /// Hands a finished value to the aggregate it belongs to, closing every
    /// aggregate it completes; the top-level value once there is one.
    fn close(&mut self, mut value: Value) -> Option<Value> {
        loop {
            match self.stack.last_mut() {
                None => return Some(value),
                Some(Frame::Items { left, items, .. }) => {
                    items.push(value);
                    *left -= 1;
                    if *left > 0 {
                        return None;
                    }
                    let Some(Frame::Items { kind, items, .. }) = self.stack.pop() else {
                        unreachable!("matched as Items above")
                    };
                    value = finished(kind, items);
                }
                Some(Frame::Pairs {
                    left, pairs, key, ..
                }) => {
                    let Some(k) = key.take() else {
                        *key = Some(value);
                        return None;
                    };
                    pairs.push((k, value));
                    *left -= 1;
                    if *left > 0 {
                        return None;
                    }
                    let Some(Frame::Pairs { kind, pairs, .. }) = self.stack.pop() else {
                        unreachable!("matched as Pairs above")
                    };
                    if kind == b'%' {
                        value = Value::Map(pairs);
                    } else {
                        self.stack.push(Frame::Annotates(pairs));
                        return None;
                    }
                }
                Some(Frame::Annotates(_)) => {
                    let Some(Frame::Annotates(attributes)) = self.stack.pop() else {
                        unreachable!("matched as Annotates above")
                    };
                    value = Value::Attribute {
                        data: Box::new(value),
                        attributes,
                    };
                }
            }
        }
    }
}

/// The longest simple string [`Decoder::quick`] looks at (`+OK`, `+QUEUED`,
/// `+PONG` are far shorter); a longer one takes the general path.
const QUICK_LINE: usize = 64;

/// A non-negative decimal of 1 to 18 digits at the start of `rest`, ended by
/// CRLF: its value and its digit count. 18 digits cannot overflow an `i64`;
/// anything else (a sign, a longer number, no CRLF yet) is `None`.
#[inline]
fn short_decimal(rest: &[u8]) -> Option<(i64, usize)> {
    let mut n: i64 = 0;
    for (i, &b) in rest.iter().enumerate().take(19) {
        match b {
            b'0'..=b'9' if i < 18 => n = n * 10 + i64::from(b - b'0'),
            b'\r' if i > 0 && rest.get(i + 1) == Some(&b'\n') => return Some((n, i)),
            _ => return None,
        }
    }
    None
}

/// A finished array, set or push.
fn finished(kind: u8, items: Vec<Value>) -> Value {
    match kind {
        b'*' => Value::Array(items),
        b'~' => Value::Set(items),
        _ => Value::Push(items),
    }
}
