//! The encoders: commands as the server reads them (arrays of bulk strings,
//! written by every request) and any [`Value`] in its RESP3 form (for tests
//! and fake servers). Neither recurses: a value nested 1024 deep encodes on a
//! small coroutine stack, as it parses on one (`decode.rs`).

use super::Value;

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
    length_header(out, b'*', args.len());
    for arg in args {
        // One capacity check for the argument's three pieces.
        out.reserve(arg.len() + 24);
        length_header(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends `value` in its RESP3 form: the inverse of
/// [`parse`](super::parse), byte for byte where RESP3 allows one form.
///
/// A status or an error whose text holds CR or LF cannot be a `+`/`-` line,
/// so it is written as a blob (a verbatim `txt` string, a `!` blob error);
/// a NaN keeps its sign (`,-nan`).
///
/// ```
/// use greenhub_redis::resp::{encode_value, Value};
/// let mut out = Vec::new();
/// encode_value(&mut out, &Value::Array(vec![Value::Int(1), Value::Nil]));
/// assert_eq!(out, b"*2\r\n:1\r\n_\r\n");
/// ```
pub fn encode_value(out: &mut Vec<u8>, value: &Value) {
    // An explicit stack of values still to write, last first, so nesting
    // depth costs heap, not stack.
    let mut todo: Vec<&Value> = vec![value];
    while let Some(value) = todo.pop() {
        match value {
            Value::Nil => out.extend_from_slice(b"_\r\n"),
            Value::Status(s) if has_line_break(s.as_bytes()) => {
                let mut body = b"txt:".to_vec();
                body.extend_from_slice(s.as_bytes());
                blob(out, b'=', &body);
            }
            Value::Status(s) => line(out, b'+', s.as_bytes()),
            Value::Error(e) => {
                let text = e.bytes();
                if has_line_break(&text) {
                    blob(out, b'!', &text);
                } else {
                    line(out, b'-', &text);
                }
            }
            Value::Int(n) => header(out, b':', *n),
            Value::Bulk(bytes) => blob(out, b'$', bytes),
            Value::Array(items) => aggregate(out, b'*', items, &mut todo),
            Value::Set(items) => aggregate(out, b'~', items, &mut todo),
            Value::Push(items) => aggregate(out, b'>', items, &mut todo),
            Value::Map(pairs) => map(out, b'%', pairs, &mut todo),
            Value::Double(d) => line(out, b',', double(*d).as_bytes()),
            Value::Boolean(b) => line(out, b'#', if *b { b"t" } else { b"f" }),
            Value::BigNumber(digits) => line(out, b'(', digits.as_bytes()),
            Value::Verbatim { format, text } => {
                let mut body = format!("{format}:").into_bytes();
                body.extend_from_slice(text);
                blob(out, b'=', &body)
            }
            Value::Attribute { data, attributes } => {
                // The attribute map comes first, then the value it annotates.
                todo.push(data);
                map(out, b'|', attributes, &mut todo);
            }
        }
    }
}

/// A double as RESP3 spells it: `inf`, `-inf`, `nan` and `-nan` (the sign of
/// a NaN is kept), otherwise Rust's shortest round-trip form.
fn double(d: f64) -> String {
    if d.is_nan() {
        (if d.is_sign_negative() { "-nan" } else { "nan" }).to_owned()
    } else if d.is_infinite() {
        (if d > 0.0 { "inf" } else { "-inf" }).to_owned()
    } else {
        format!("{d:?}")
    }
}

fn has_line_break(text: &[u8]) -> bool {
    text.iter().any(|&b| b == b'\r' || b == b'\n')
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

fn aggregate<'a>(out: &mut Vec<u8>, kind: u8, items: &'a [Value], todo: &mut Vec<&'a Value>) {
    header(out, kind, items.len() as i64);
    todo.extend(items.iter().rev());
}

fn map<'a>(out: &mut Vec<u8>, kind: u8, pairs: &'a [(Value, Value)], todo: &mut Vec<&'a Value>) {
    header(out, kind, pairs.len() as i64);
    for (key, value) in pairs.iter().rev() {
        todo.push(value);
        todo.push(key);
    }
}

/// [`header`] for a count or length: most are under 100 (a command's
/// argument count, its name, a key), and those take no division loop.
#[inline]
fn length_header(out: &mut Vec<u8>, kind: u8, n: usize) {
    if n < 10 {
        out.extend_from_slice(&[kind, b'0' + n as u8, b'\r', b'\n']);
    } else if n < 100 {
        let (tens, ones) = ((n / 10) as u8, (n % 10) as u8);
        out.extend_from_slice(&[kind, b'0' + tens, b'0' + ones, b'\r', b'\n']);
    } else {
        header(out, kind, n as i64);
    }
}

/// `kind` then the decimal `n` then CRLF, without going through `fmt`:
/// assembled on the stack and appended at once (every request writes one
/// per argument).
#[inline]
fn header(out: &mut Vec<u8>, kind: u8, n: i64) {
    // A kind byte, a sign, 19 digits at most, CRLF.
    let mut buf = [0u8; 24];
    let mut at = buf.len() - 2;
    buf[at..].copy_from_slice(b"\r\n");
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    at -= 1;
    buf[at] = kind;
    out.extend_from_slice(&buf[at..]);
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
