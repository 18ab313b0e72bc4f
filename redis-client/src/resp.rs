//! RESP, Redis's wire protocol: the [`Value`] type, a pure parser and the
//! command encoder. No I/O happens here (the connection feeds bytes in).
//!
//! [`parse`] looks at the bytes received so far and answers one of three
//! things: a complete value and how many bytes it used; "incomplete", with
//! the buffer length known to be needed before it is worth trying again; or a
//! protocol error. Incomplete is not an error: a reply may arrive split at
//! any byte. Both RESP2 and RESP3 are understood. The parser is bounded:
//! lengths above [`Limits::max_bulk`] and nesting deeper than
//! [`Limits::max_depth`] are protocol errors, and nothing is allocated from an
//! announced length before its bytes have arrived. See
//! `docs/redis-client.md`, "The parser".

use std::fmt;

use crate::error::ServerError;

/// A reply from the server.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// RESP2's null bulk string and null array, RESP3's null (`_`).
    Nil,
    /// A simple string (`+OK`).
    Status(String),
    /// An error reply (`-ERR ...`, RESP3 `!`); top-level ones become
    /// `Error::Server`, ones inside a pipeline or transaction stay values.
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
    /// Largest bulk string, and largest element count of an aggregate.
    /// Redis's own `proto-max-bulk-len` defaults to 512 MiB.
    pub max_bulk: usize,
    /// Deepest nesting of aggregates. Real replies nest a few levels.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk: 512 << 20,
            max_depth: 64,
        }
    }
}

/// The longest line (type byte to CRLF) a reply may have. Simple strings and
/// errors are short; a line with no CRLF after this many bytes is garbage,
/// and waiting for more would buffer without bound.
const MAX_LINE: usize = 64 * 1024;

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

/// Parses the first value in `buf`.
///
/// ```
/// use greenhub_redis::resp::{parse, Limits, Parsed, Value};
/// let limits = Limits::default();
/// assert_eq!(parse(b"$5\r\nhel", &limits), Ok(Parsed::Incomplete(11)));
/// assert_eq!(parse(b"$5\r\nhello\r\n", &limits), Ok(Parsed::Complete(Value::Bulk(b"hello".to_vec()), 11)));
/// assert!(parse(b"?what\r\n", &limits).is_err());
/// ```
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    let mut parser = Parser {
        buf,
        pos: 0,
        limits,
    };
    match parser.value() {
        Ok(value) => Ok(Parsed::Complete(value, parser.pos)),
        Err(Stop::Incomplete(need)) => Ok(Parsed::Incomplete(need.max(buf.len() + 1))),
        Err(Stop::Invalid(message)) => Err(ProtocolError(message)),
    }
}

enum Stop {
    Incomplete(usize),
    Invalid(String),
}

fn invalid<T>(message: impl Into<String>) -> Result<T, Stop> {
    Err(Stop::Invalid(message.into()))
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a Limits,
}

/// An aggregate being filled, on the parser's explicit stack.
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

/// What one header line yields: a whole value, or an aggregate to fill.
enum Step {
    Value(Value),
    Open(Frame),
}

impl<'a> Parser<'a> {
    /// Parses one value. Aggregates nest on an explicit stack rather than by
    /// recursion, so a deeply nested reply cannot exhaust a coroutine's
    /// stack; the depth limit bounds the explicit one.
    fn value(&mut self) -> Result<Value, Stop> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            if stack.len() > self.limits.max_depth {
                return invalid(format!(
                    "reply nested deeper than {} levels",
                    self.limits.max_depth
                ));
            }
            let mut value = match self.step()? {
                Step::Value(value) => value,
                Step::Open(frame) => match frame {
                    Frame::Items {
                        kind,
                        left: 0,
                        items,
                    } => finished(kind, items),
                    Frame::Pairs {
                        kind: b'%',
                        left: 0,
                        pairs,
                        ..
                    } => Value::Map(pairs),
                    Frame::Pairs { left: 0, pairs, .. } => {
                        stack.push(Frame::Annotates(pairs));
                        continue;
                    }
                    frame => {
                        stack.push(frame);
                        continue;
                    }
                },
            };
            // Hand the finished value to the aggregate it belongs to, closing
            // every aggregate it completes.
            loop {
                match stack.last_mut() {
                    None => return Ok(value),
                    Some(Frame::Items { left, items, .. }) => {
                        items.push(value);
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                        let Some(Frame::Items { kind, items, .. }) = stack.pop() else {
                            unreachable!()
                        };
                        value = finished(kind, items);
                    }
                    Some(Frame::Pairs {
                        left, pairs, key, ..
                    }) => {
                        let Some(k) = key.take() else {
                            *key = Some(value);
                            break;
                        };
                        pairs.push((k, value));
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                        let Some(Frame::Pairs { kind, pairs, .. }) = stack.pop() else {
                            unreachable!()
                        };
                        if kind == b'%' {
                            value = Value::Map(pairs);
                        } else {
                            stack.push(Frame::Annotates(pairs));
                            break;
                        }
                    }
                    Some(Frame::Annotates(_)) => {
                        let Some(Frame::Annotates(attributes)) = stack.pop() else {
                            unreachable!()
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

    /// Reads one type byte and its line: a whole simple value, or the header
    /// of an aggregate.
    fn step(&mut self) -> Result<Step, Stop> {
        let Some(&kind) = self.buf.get(self.pos) else {
            return Err(Stop::Incomplete(self.pos + 1));
        };
        let at = self.pos;
        self.pos += 1;
        let line = self.line()?;
        let value = match kind {
            b'+' => Value::Status(utf8(line)?.to_owned()),
            b'-' => Value::Error(ServerError::parse(utf8(line)?)),
            b':' => Value::Int(integer(line)?),
            b'_' if line.is_empty() => Value::Nil,
            b'#' => match line {
                b"t" => Value::Boolean(true),
                b"f" => Value::Boolean(false),
                _ => return invalid(format!("bad boolean {:?}", String::from_utf8_lossy(line))),
            },
            b',' => Value::Double(double(line)?),
            b'(' => big_number(line)?,
            b'$' | b'!' | b'=' => {
                let Some(len) = self.length(line)? else {
                    return Ok(Step::Value(Value::Nil));
                };
                let bytes = self.blob(len)?;
                match kind {
                    b'$' => Value::Bulk(bytes.to_vec()),
                    b'!' => Value::Error(ServerError::parse(utf8(bytes)?)),
                    _ => verbatim(bytes)?,
                }
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let Some(left) = self.length(line)? else {
                    return Ok(Step::Value(Value::Nil));
                };
                // Never trust the count for an allocation: grow as elements arrive.
                let room = left.min(64);
                return Ok(Step::Open(if matches!(kind, b'%' | b'|') {
                    Frame::Pairs {
                        kind,
                        left,
                        pairs: Vec::with_capacity(room),
                        key: None,
                    }
                } else {
                    Frame::Items {
                        kind,
                        left,
                        items: Vec::with_capacity(room),
                    }
                }));
            }
            _ => {
                return invalid(format!(
                    "unknown reply type byte {:?} at offset {at}",
                    kind as char
                ))
            }
        };
        Ok(Step::Value(value))
    }

    /// The bytes up to the next CRLF, which is consumed.
    fn line(&mut self) -> Result<&'a [u8], Stop> {
        let rest = &self.buf[self.pos..];
        let window = &rest[..rest.len().min(MAX_LINE)];
        match window.iter().position(|&b| b == b'\r') {
            Some(cr) if cr + 1 < rest.len() => {
                if rest[cr + 1] != b'\n' {
                    return invalid("CR not followed by LF in a reply line");
                }
                self.pos += cr + 2;
                Ok(&rest[..cr])
            }
            Some(cr) => Err(Stop::Incomplete(self.pos + cr + 2)),
            None if rest.len() >= MAX_LINE => {
                invalid(format!("reply line longer than {MAX_LINE} bytes"))
            }
            None => Err(Stop::Incomplete(self.buf.len() + 1)),
        }
    }

    /// A length header: `None` for RESP2's -1 (nil), bounded by the limits.
    fn length(&self, line: &[u8]) -> Result<Option<usize>, Stop> {
        match integer(line)? {
            -1 => Ok(None),
            n if n < 0 => invalid(format!("negative length {n}")),
            n if n as u64 > self.limits.max_bulk as u64 => invalid(format!(
                "announced length {n} exceeds the reply size limit of {} bytes",
                self.limits.max_bulk
            )),
            n => Ok(Some(n as usize)),
        }
    }

    fn blob(&mut self, len: usize) -> Result<&'a [u8], Stop> {
        let end = self.pos + len;
        if self.buf.len() < end + 2 {
            return Err(Stop::Incomplete(end + 2));
        }
        if &self.buf[end..end + 2] != b"\r\n" {
            return invalid("bulk string longer than its announced length (no CRLF after it)");
        }
        let bytes = &self.buf[self.pos..end];
        self.pos = end + 2;
        Ok(bytes)
    }
}

/// A finished array, set or push.
fn finished(kind: u8, items: Vec<Value>) -> Value {
    match kind {
        b'*' => Value::Array(items),
        b'~' => Value::Set(items),
        _ => Value::Push(items),
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, Stop> {
    std::str::from_utf8(bytes).or_else(|_| invalid("reply line is not UTF-8"))
}

/// A signed decimal integer, strictly: no sign-only, no spaces, no overflow.
fn integer(line: &[u8]) -> Result<i64, Stop> {
    let (negative, digits) = match line {
        [b'-', rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return invalid(format!("bad integer {:?}", String::from_utf8_lossy(line)));
    }
    let mut n: i64 = 0;
    for &d in digits {
        n = n
            .checked_mul(10)
            .and_then(|n| {
                if negative {
                    n.checked_sub((d - b'0') as i64)
                } else {
                    n.checked_add((d - b'0') as i64)
                }
            })
            .ok_or_else(|| {
                Stop::Invalid(format!(
                    "integer {:?} out of range",
                    String::from_utf8_lossy(line)
                ))
            })?;
    }
    Ok(n)
}

fn double(line: &[u8]) -> Result<f64, Stop> {
    match line {
        b"inf" | b"+inf" => Ok(f64::INFINITY),
        b"-inf" => Ok(f64::NEG_INFINITY),
        b"nan" => Ok(f64::NAN),
        _ => utf8(line)?
            .parse()
            .or_else(|_| invalid(format!("bad double {:?}", String::from_utf8_lossy(line)))),
    }
}

fn big_number(line: &[u8]) -> Result<Value, Stop> {
    let digits = line.strip_prefix(b"-").unwrap_or(line);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return invalid(format!(
            "bad big number {:?}",
            String::from_utf8_lossy(line)
        ));
    }
    Ok(Value::BigNumber(utf8(line)?.to_owned()))
}

fn verbatim(bytes: &[u8]) -> Result<Value, Stop> {
    if bytes.len() < 4 || bytes[3] != b':' {
        return invalid("verbatim string without a `fmt:` prefix");
    }
    Ok(Value::Verbatim {
        format: utf8(&bytes[..3])?.to_owned(),
        text: bytes[4..].to_vec(),
    })
}

/// Appends a command, as an array of bulk strings, to `out`.
///
/// ```
/// let mut out = Vec::new();
/// greenhub_redis::resp::encode_command(&mut out, [&b"GET"[..], b"k"]);
/// assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
/// ```
pub fn encode_command<'a>(
    out: &mut Vec<u8>,
    args: impl IntoIterator<Item = &'a [u8], IntoIter: ExactSizeIterator>,
) {
    let args = args.into_iter();
    header(out, b'*', args.len() as i64);
    for arg in args {
        header(out, b'$', arg.len() as i64);
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `value` in its RESP3 form (the inverse of [`parse`]; used by
/// tests and fake servers).
pub fn encode_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Nil => out.extend_from_slice(b"_\r\n"),
        Value::Status(s) => line(out, b'+', s.as_bytes()),
        Value::Error(e) => line(out, b'-', e.to_string().as_bytes()),
        Value::Int(n) => header(out, b':', *n),
        Value::Bulk(bytes) => blob(out, b'$', bytes),
        Value::Array(items) => aggregate(out, b'*', items),
        Value::Set(items) => aggregate(out, b'~', items),
        Value::Push(items) => aggregate(out, b'>', items),
        Value::Map(pairs) => map(out, b'%', pairs),
        Value::Double(d) => {
            let text = if d.is_nan() {
                "nan".to_owned()
            } else if d.is_infinite() {
                (if *d > 0.0 { "inf" } else { "-inf" }).to_owned()
            } else {
                format!("{d:?}")
            };
            line(out, b',', text.as_bytes())
        }
        Value::Boolean(b) => line(out, b'#', if *b { b"t" } else { b"f" }),
        Value::BigNumber(digits) => line(out, b'(', digits.as_bytes()),
        Value::Verbatim { format, text } => {
            let mut body = format!("{format}:").into_bytes();
            body.extend_from_slice(text);
            blob(out, b'=', &body)
        }
        Value::Attribute { data, attributes } => {
            map(out, b'|', attributes);
            encode_value(out, data);
        }
    }
}

fn line(out: &mut Vec<u8>, kind: u8, text: &[u8]) {
    out.push(kind);
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

fn blob(out: &mut Vec<u8>, kind: u8, bytes: &[u8]) {
    header(out, kind, bytes.len() as i64);
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

fn aggregate(out: &mut Vec<u8>, kind: u8, items: &[Value]) {
    header(out, kind, items.len() as i64);
    items.iter().for_each(|item| encode_value(out, item));
}

fn map(out: &mut Vec<u8>, kind: u8, pairs: &[(Value, Value)]) {
    header(out, kind, pairs.len() as i64);
    for (key, value) in pairs {
        encode_value(out, key);
        encode_value(out, value);
    }
}

/// `kind` then the decimal `n` then CRLF, without going through `fmt`.
fn header(out: &mut Vec<u8>, kind: u8, n: i64) {
    out.push(kind);
    push_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends the decimal digits of `n`.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}
