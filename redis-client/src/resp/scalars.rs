//! The scalar parts of RESP, each from the bytes of one line or blob:
//! integers (strictly: no sign alone, no spaces, no overflow), lengths,
//! doubles as RESP3 spells them, big numbers, blobs. Pure functions, called
//! by the decoder (`decode.rs`) once a line or blob has arrived whole.

use super::decode::Stop;
use super::Value;
use crate::error::ServerError;

/// A finished blob: a bulk string, a blob error or a verbatim string.
#[inline]
pub(super) fn finish_blob(kind: u8, bytes: Vec<u8>) -> Result<Value, String> {
    Ok(match kind {
        b'$' => Value::Bulk(bytes),
        b'!' => Value::Error(ServerError::parse_bytes(&bytes)),
        _ => verbatim(bytes)?,
    })
}

pub(super) fn bad(what: &str, line: &[u8]) -> Stop {
    Stop::Invalid(format!("bad {what} {:?}", String::from_utf8_lossy(line)))
}

pub(super) fn too_long(len: usize, max: usize) -> Stop {
    Stop::Invalid(format!(
        "announced length {len} exceeds the reply size limit of {max} bytes"
    ))
}

/// A length header: `None` for RESP2's -1 (nil).
pub(super) fn length(line: &[u8]) -> Result<Option<usize>, Stop> {
    match integer(line)? {
        -1 => Ok(None),
        n if n < 0 => Err(Stop::Invalid(format!("negative length {n}"))),
        n => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
    }
}

/// A signed decimal integer, strictly: no sign-only, no spaces, no overflow.
pub(super) fn integer(line: &[u8]) -> Result<i64, Stop> {
    let (negative, digits) = match line {
        [b'-', rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad("integer", line));
    }
    let mut n: i64 = 0;
    for &d in digits {
        let digit = i64::from(d - b'0');
        n = n
            .checked_mul(10)
            .and_then(|n| {
                if negative {
                    n.checked_sub(digit)
                } else {
                    n.checked_add(digit)
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

/// A RESP3 double: `inf`, `-inf`, `nan`, `-nan` or a decimal number.
pub(super) fn double(line: &[u8]) -> Result<f64, Stop> {
    match line {
        b"inf" | b"+inf" => Ok(f64::INFINITY),
        b"-inf" => Ok(f64::NEG_INFINITY),
        b"nan" | b"+nan" => Ok(f64::NAN),
        b"-nan" => Ok(-f64::NAN),
        _ => std::str::from_utf8(line)
            .ok()
            .filter(|text| {
                // Rust also reads "infinity", "NaN" and ".5"; RESP does not:
                // a digit comes first (after a sign), then digits, a point
                // and an exponent (Redis writes `%.17g`: 1e+20).
                let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
                unsigned.starts_with(|c: char| c.is_ascii_digit())
                    && text
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            })
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| bad("double", line)),
    }
}

pub(super) fn big_number(line: &[u8]) -> Result<Value, Stop> {
    let digits = line.strip_prefix(b"-").unwrap_or(line);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad("big number", line));
    }
    let text = std::str::from_utf8(line).expect("ASCII digits");
    Ok(Value::BigNumber(text.to_owned()))
}

fn verbatim(mut bytes: Vec<u8>) -> Result<Value, String> {
    if bytes.len() < 4 || bytes[3] != b':' {
        return Err("verbatim string without a `fmt:` prefix".into());
    }
    let format = String::from_utf8_lossy(&bytes[..3]).into_owned();
    bytes.drain(..4);
    Ok(Value::Verbatim {
        format,
        text: bytes,
    })
}
