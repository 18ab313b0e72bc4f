//! Conversions between Rust values and RESP: [`ToArg`] turns an argument into
//! the bytes of one bulk string, [`FromValue`] turns a reply into the type the
//! caller asked for, or a type error naming what was expected and what came.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

use crate::error::{Error, Result};
use crate::resp::{push_decimal, Value};

/// One command argument: appends its bytes (one bulk string) to `out`.
pub trait ToArg {
    /// Appends the argument's bytes.
    fn write_arg(&self, out: &mut Vec<u8>);
}

impl ToArg for [u8] {
    fn write_arg(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl<const N: usize> ToArg for [u8; N] {
    fn write_arg(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl ToArg for Vec<u8> {
    fn write_arg(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl ToArg for str {
    fn write_arg(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl ToArg for String {
    fn write_arg(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
}

impl<T: ToArg + ?Sized> ToArg for &T {
    fn write_arg(&self, out: &mut Vec<u8>) {
        (**self).write_arg(out);
    }
}

macro_rules! int_to_arg {
    ($($ty:ty),*) => {$(
        impl ToArg for $ty {
            fn write_arg(&self, out: &mut Vec<u8>) {
                push_decimal(out, *self as i64);
            }
        }
    )*};
}
int_to_arg!(i8, i16, i32, i64, isize, u8, u16, u32);

macro_rules! wide_to_arg {
    ($($ty:ty),*) => {$(
        impl ToArg for $ty {
            fn write_arg(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(self.to_string().as_bytes());
            }
        }
    )*};
}
wide_to_arg!(u64, usize);

impl ToArg for f64 {
    /// Shortest round-trip form; infinities as Redis spells them. A whole
    /// number (a BRPOP timeout of `1.0`) is written as an integer, straight
    /// into the request buffer: no `String` is allocated for it.
    fn write_arg(&self, out: &mut Vec<u8>) {
        if self.is_infinite() {
            out.extend_from_slice(if *self > 0.0 { b"+inf" } else { b"-inf" });
        } else if self.fract() == 0.0
            && self.abs() < 1e15
            && !(*self == 0.0 && self.is_sign_negative())
        {
            push_decimal(out, *self as i64);
        } else {
            out.extend_from_slice(self.to_string().as_bytes());
        }
    }
}

/// A Rust type a reply converts to.
pub trait FromValue: Sized {
    /// Converts `value`; an error reply becomes `Error::Server`.
    fn from_value(value: Value) -> Result<Self>;

    /// How a bulk string converts to `Vec<Self>`: only `u8` says "as bytes".
    #[doc(hidden)]
    fn from_bytes_vec(_bytes: Vec<u8>) -> Option<Vec<Self>> {
        None
    }
}

/// Unwraps attributes and turns an error reply into `Err`.
fn plain(value: Value) -> Result<Value> {
    match value {
        Value::Error(err) => Err(Error::Server(err)),
        Value::Attribute { data, .. } => plain(*data),
        other => Ok(other),
    }
}

impl FromValue for Value {
    fn from_value(value: Value) -> Result<Self> {
        match value {
            Value::Error(err) => Err(Error::Server(err)),
            other => Ok(other),
        }
    }
}

impl FromValue for () {
    fn from_value(value: Value) -> Result<Self> {
        plain(value).map(drop)
    }
}

macro_rules! int_from_value {
    ($($ty:ty),*) => {$(
        impl FromValue for $ty {
            fn from_value(value: Value) -> Result<Self> {
                let value = plain(value)?;
                let parsed = match &value {
                    Value::Int(n) => <$ty>::try_from(*n).ok(),
                    Value::Bulk(bytes) => std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()),
                    Value::Status(s) | Value::BigNumber(s) => s.parse().ok(),
                    Value::Boolean(b) => Some(*b as $ty),
                    _ => None,
                };
                parsed.ok_or_else(|| Error::type_error(stringify!($ty), value))
            }
        }
    )*};
}

// `u8` is not here: `Vec<u8>` means bytes, so u8 has its own impl below.
int_from_value!(i8, i16, i32, i64, isize, u16, u32, u64, usize);

impl FromValue for u8 {
    fn from_value(value: Value) -> Result<Self> {
        let n = i64::from_value(value)?;
        u8::try_from(n).map_err(|_| Error::type_error("u8", n))
    }
    fn from_bytes_vec(bytes: Vec<u8>) -> Option<Vec<u8>> {
        Some(bytes)
    }
}

impl FromValue for f64 {
    fn from_value(value: Value) -> Result<Self> {
        let value = plain(value)?;
        let parsed = match &value {
            Value::Double(d) => Some(*d),
            Value::Int(n) => Some(*n as f64),
            Value::Bulk(bytes) => std::str::from_utf8(bytes).ok().and_then(parse_float),
            Value::Status(s) => parse_float(s),
            _ => None,
        };
        parsed.ok_or_else(|| Error::type_error("f64", value))
    }
}

fn parse_float(text: &str) -> Option<f64> {
    match text {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

impl FromValue for bool {
    fn from_value(value: Value) -> Result<Self> {
        let value = plain(value)?;
        match &value {
            Value::Boolean(b) => Ok(*b),
            Value::Int(n) => Ok(*n != 0),
            Value::Nil => Ok(false),
            Value::Status(s) if s == "OK" => Ok(true),
            Value::Bulk(bytes) if bytes == b"1" || bytes == b"0" => Ok(bytes == b"1"),
            _ => Err(Error::type_error("bool", value)),
        }
    }
}

impl FromValue for String {
    fn from_value(value: Value) -> Result<Self> {
        match plain(value)? {
            Value::Bulk(bytes) | Value::Verbatim { text: bytes, .. } => String::from_utf8(bytes)
                .map_err(|err| Error::type_error("a UTF-8 string", err.into_bytes())),
            Value::Status(s) | Value::BigNumber(s) => Ok(s),
            Value::Int(n) => Ok(n.to_string()),
            Value::Double(d) => Ok(d.to_string()),
            other => Err(Error::type_error("a string", other)),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Self> {
        match plain(value)? {
            Value::Nil => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    fn from_value(value: Value) -> Result<Self> {
        match plain(value)? {
            Value::Bulk(bytes) => {
                T::from_bytes_vec(bytes).ok_or_else(|| Error::type_error("a list", "a bulk string"))
            }
            Value::Status(s) => T::from_bytes_vec(s.into_bytes())
                .ok_or_else(|| Error::type_error("a list", "a status")),
            Value::Array(items) | Value::Set(items) | Value::Push(items) => {
                items.into_iter().map(T::from_value).collect()
            }
            Value::Map(pairs) => {
                let mut flat = Vec::with_capacity(pairs.len() * 2);
                for (key, value) in pairs {
                    flat.push(T::from_value(key)?);
                    flat.push(T::from_value(value)?);
                }
                Ok(flat)
            }
            Value::Nil => Ok(Vec::new()),
            other => Err(Error::type_error("a list", other)),
        }
    }
}

impl<T: FromValue + Eq + Hash> FromValue for HashSet<T> {
    fn from_value(value: Value) -> Result<Self> {
        Vec::<T>::from_value(value).map(|items| items.into_iter().collect())
    }
}

/// Key/value pairs from a RESP3 map or a RESP2 flat array (`HGETALL`).
fn pairs<K: FromValue, V: FromValue>(value: Value) -> Result<Vec<(K, V)>> {
    match plain(value)? {
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| Ok((K::from_value(k)?, V::from_value(v)?)))
            .collect(),
        Value::Array(items) if items.len() % 2 == 0 => {
            let mut items = items.into_iter();
            let mut out = Vec::with_capacity(items.len() / 2);
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                out.push((K::from_value(k)?, V::from_value(v)?));
            }
            Ok(out)
        }
        Value::Nil => Ok(Vec::new()),
        other => Err(Error::type_error("a map (or an even-length array)", other)),
    }
}

impl<K: FromValue + Eq + Hash, V: FromValue> FromValue for HashMap<K, V> {
    fn from_value(value: Value) -> Result<Self> {
        pairs(value).map(|pairs| pairs.into_iter().collect())
    }
}

impl<K: FromValue + Ord, V: FromValue> FromValue for BTreeMap<K, V> {
    fn from_value(value: Value) -> Result<Self> {
        pairs(value).map(|pairs| pairs.into_iter().collect())
    }
}

macro_rules! tuple_from_value {
    ($len:expr; $($name:ident),+) => {
        impl<$($name: FromValue),+> FromValue for ($($name,)+) {
            fn from_value(value: Value) -> Result<Self> {
                match plain(value)? {
                    Value::Array(items) if items.len() == $len => {
                        let mut items = items.into_iter();
                        Ok(($($name::from_value(items.next().expect("length checked"))?,)+))
                    }
                    other => Err(Error::type_error(concat!("an array of ", stringify!($len)), other)),
                }
            }
        }
    };
}
tuple_from_value!(1; A);
tuple_from_value!(2; A, B);
tuple_from_value!(3; A, B, C);
tuple_from_value!(4; A, B, C, D);
