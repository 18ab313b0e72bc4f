//! Reader vectors from two outside sources, each parsed whole and fed one
//! byte at a time to a `Decoder`:
//!
//! - hiredis's `test.c`, `test_reply_reader` (github.com/redis/hiredis);
//! - the RESP3 specification, `spec.md` (github.com/antirez/RESP3), with the
//!   examples it gives for each type.
//!
//! Where this parser deliberately differs from the source, the vector says
//! so and why.

use greenhub_redis::resp::{parse, Decoded, Decoder, Limits, Parsed, Value};
use greenhub_redis::ServerError;

fn bulk(text: &str) -> Value {
    Value::Bulk(text.as_bytes().to_vec())
}

fn status(text: &str) -> Value {
    Value::Status(text.into())
}

/// Parses `bytes` whole, and fed byte by byte; both must agree.
fn parsed(bytes: &[u8]) -> Result<Value, String> {
    parsed_with(bytes, Limits::default())
}

fn parsed_with(bytes: &[u8], limits: Limits) -> Result<Value, String> {
    let whole = match parse(bytes, &limits) {
        Ok(Parsed::Complete(value, used)) => {
            assert_eq!(
                used,
                bytes.len(),
                "{:?} left bytes over",
                String::from_utf8_lossy(bytes)
            );
            Ok(value)
        }
        Ok(Parsed::Incomplete(need)) => panic!("incomplete, needs {need}"),
        Err(err) => Err(err.0),
    };
    let mut decoder = Decoder::new(limits);
    let mut pending = Vec::new();
    let mut bytewise = None;
    for &byte in bytes {
        pending.push(byte);
        match decoder.decode(&pending) {
            Ok(Decoded::Complete { value, used }) => {
                pending.drain(..used);
                bytewise = Some(Ok(value));
            }
            Ok(Decoded::Incomplete { used, .. }) => {
                pending.drain(..used);
            }
            Err(err) => {
                bytewise = Some(Err(err.0));
                break;
            }
        }
    }
    // Compared by their Debug forms, so that a NaN equals itself.
    assert_eq!(
        format!(
            "{:?}",
            bytewise.as_ref().map(|r| r.as_ref().map_err(|_| ()))
        ),
        format!("{:?}", Some(whole.as_ref().map_err(|_| ()))),
        "whole and byte by byte disagree on {:?}",
        String::from_utf8_lossy(bytes)
    );
    whole
}

fn refused(bytes: &[u8]) -> String {
    parsed(bytes).expect_err(&format!(
        "{:?} was accepted",
        String::from_utf8_lossy(bytes)
    ))
}

// ---- hiredis test.c, test_reply_reader ----

#[test]
fn hiredis_error_handling_in_reply_parser() {
    // "Error handling in reply parser": @foo\r\n
    assert!(refused(b"@foo\r\n").contains("unknown reply type byte '@'"));
    // "Memory cleanup in reply parser": an error after a partial array.
    assert!(refused(b"*2\r\n$5\r\nhello\r\n@foo\r\n").contains("'@'"));
}

#[test]
fn hiredis_arbitrarily_nested_multi_bulks() {
    // "Can handle / parse arbitrarily nested multi-bulks": 128 levels.
    let bytes = "*1\r\n".repeat(128) + "$6\r\nLOLWUT\r\n";
    let mut value = &parsed(bytes.as_bytes()).unwrap();
    for _ in 0..128 {
        let Value::Array(items) = value else {
            panic!("not an array: {value:?}")
        };
        assert_eq!(items.len(), 1);
        value = &items[0];
    }
    assert_eq!(*value, bulk("LOLWUT"));
}

#[test]
fn hiredis_integer_bounds() {
    // "Correctly parses LLONG_MAX / LLONG_MIN", "Set error when > LLONG_MAX / < LLONG_MIN".
    assert_eq!(
        parsed(b":9223372036854775807\r\n"),
        Ok(Value::Int(i64::MAX))
    );
    assert_eq!(
        parsed(b":-9223372036854775808\r\n"),
        Ok(Value::Int(i64::MIN))
    );
    assert!(refused(b":9223372036854775808\r\n").contains("out of range"));
    assert!(refused(b":-9223372036854775809\r\n").contains("out of range"));
}

#[test]
fn hiredis_lengths_out_of_range() {
    // "Set error when array < -1", "Set error when bulk < -1".
    assert!(refused(b"*-2\r\n+asdf\r\n").contains("negative length"));
    assert!(refused(b"$-2\r\nasdf\r\n").contains("negative length"));
    // "Set error when array > SIZE_MAX", "Set error when bulk > SIZE_MAX":
    // here, beyond the reply size limit, refused before any element.
    assert!(refused(b"*9223372036854775807\r\n+asdf\r\n").contains("exceeds"));
    assert!(refused(b"$9223372036854775807\r\nasdf\r\n").contains("exceeds"));
    // "Can configure maximum multi-bulk elements": hiredis bounds a count
    // (maxelements = 1024 refuses *1025); this parser bounds a reply's bytes,
    // and a count that cannot fit them is refused at once.
    let limits = Limits {
        max_bulk: 1024 * 3,
        max_depth: 8,
    };
    assert!(parsed_with(b"*1025\r\n", limits)
        .unwrap_err()
        .contains("exceeds"));
}

#[test]
fn hiredis_a_crlf_split_across_two_feeds() {
    // "Works when a single newline (\r\n) covers two calls to feed".
    let mut decoder = Decoder::new(Limits::default());
    assert!(matches!(
        decoder.decode(b"+OK\r").unwrap(),
        Decoded::Incomplete { used: 0, .. }
    ));
    assert_eq!(
        decoder.decode(b"+OK\r\n").unwrap(),
        Decoded::Complete {
            value: status("OK"),
            used: 5
        }
    );
}

#[test]
fn hiredis_state_after_a_protocol_error() {
    // "Don't reset state after protocol error": hiredis keeps failing. Here
    // the connection that saw the error is discarded, and the decoder is idle
    // again (nothing of the bad reply is held).
    let mut decoder = Decoder::new(Limits::default());
    assert!(decoder.decode(b"x").is_err());
    assert!(decoder.is_idle());
}

#[test]
fn hiredis_empty_multi_bulk() {
    // "Don't do empty allocation for empty multi bulk" (hiredis issue #45).
    assert_eq!(parsed(b"*0\r\n"), Ok(Value::Array(vec![])));
}

#[test]
fn hiredis_resp3_types() {
    // "Can parse RESP3 verbatim strings" (hiredis issue #802).
    assert_eq!(
        parsed(b"=10\r\ntxt:LOLWUT\r\n"),
        Ok(Value::Verbatim {
            format: "txt".into(),
            text: b"LOLWUT".to_vec()
        })
    );
    // "Can parse RESP3 push messages" (hiredis issue #815).
    assert_eq!(
        parsed(b">2\r\n$6\r\nLOLWUT\r\n:42\r\n"),
        Ok(Value::Push(vec![bulk("LOLWUT"), Value::Int(42)]))
    );
    // "Can parse RESP3 doubles", "Correctly parses RESP3 double INFINITY".
    assert_eq!(
        parsed(b",3.14159265358979323846\r\n"),
        Ok(Value::Double(std::f64::consts::PI))
    );
    assert_eq!(parsed(b",inf\r\n"), Ok(Value::Double(f64::INFINITY)));
    // "Set error when RESP3 double is NaN": hiredis refuses `,nan`; the
    // current RESP3 specification allows it, and so does this parser.
    assert!(matches!(parsed(b",nan\r\n"), Ok(Value::Double(d)) if d.is_nan()));
    // "Can parse RESP3 nil", "Set error on invalid RESP3 nil".
    assert_eq!(parsed(b"_\r\n"), Ok(Value::Nil));
    refused(b"_nil\r\n");
    // "Can parse RESP3 bool (true)/(false)", "Set error on invalid RESP3 bool".
    assert_eq!(parsed(b"#t\r\n"), Ok(Value::Boolean(true)));
    assert_eq!(parsed(b"#f\r\n"), Ok(Value::Boolean(false)));
    assert!(refused(b"#foobar\r\n").contains("bad boolean"));
    // "Can parse RESP3 map".
    assert_eq!(
        parsed(b"%2\r\n+first\r\n:123\r\n$6\r\nsecond\r\n#t\r\n"),
        Ok(Value::Map(vec![
            (status("first"), Value::Int(123)),
            (bulk("second"), Value::Boolean(true))
        ]))
    );
    // "Can parse RESP3 set".
    assert_eq!(
        parsed(b"~5\r\n+orange\r\n$5\r\napple\r\n#f\r\n:100\r\n:999\r\n"),
        Ok(Value::Set(vec![
            status("orange"),
            bulk("apple"),
            Value::Boolean(false),
            Value::Int(100),
            Value::Int(999)
        ]))
    );
}

// ---- The RESP3 specification, spec.md ----

#[test]
fn resp3_spec_simple_types() {
    // Blob string. The spec writes "$11\r\nhelloworld\r\n", 10 bytes for a
    // length of 11 (a typo for "hello world"): that one is refused.
    assert_eq!(parsed(b"$11\r\nhello world\r\n"), Ok(bulk("hello world")));
    refused(b"$11\r\nhelloworld\r\n");
    assert_eq!(parsed(b"$0\r\n\r\n"), Ok(bulk("")));
    // Simple string and simple error.
    assert_eq!(parsed(b"+hello world\r\n"), Ok(status("hello world")));
    assert_eq!(
        parsed(b"-ERR this is the error description\r\n"),
        Ok(Value::Error(ServerError {
            code: "ERR".into(),
            message: "this is the error description".into(),
            raw: None,
        }))
    );
    // "Simple strings cannot contain the <CR> nor the <LF> characters inside."
    refused(b"+hello\nworld\r\n");
    refused(b"+hello\rworld\r\n");
    // Number, null.
    assert_eq!(parsed(b":1234\r\n"), Ok(Value::Int(1234)));
    assert_eq!(parsed(b"_\r\n"), Ok(Value::Nil));
    // Double: ",1.23", ",10" (a double, not a number), infinities; "To just
    // start with `.` assuming an initial zero is invalid." (This early spec
    // also calls exponents invalid; Redis writes doubles with `%.17g`, so
    // `1e+20` is accepted, as the current specification allows.)
    assert_eq!(parsed(b",1.23\r\n"), Ok(Value::Double(1.23)));
    assert_eq!(parsed(b",10\r\n"), Ok(Value::Double(10.0)));
    assert_eq!(parsed(b",inf\r\n"), Ok(Value::Double(f64::INFINITY)));
    assert_eq!(parsed(b",-inf\r\n"), Ok(Value::Double(f64::NEG_INFINITY)));
    refused(b",.5\r\n");
    assert_eq!(parsed(b",1e+20\r\n"), Ok(Value::Double(1e20)));
    // Boolean, blob error, verbatim string, big number.
    assert_eq!(parsed(b"#t\r\n"), Ok(Value::Boolean(true)));
    assert_eq!(
        parsed(b"!21\r\nSYNTAX invalid syntax\r\n"),
        Ok(Value::Error(ServerError {
            code: "SYNTAX".into(),
            message: "invalid syntax".into(),
            raw: None,
        }))
    );
    assert_eq!(
        parsed(b"=15\r\ntxt:Some string\r\n"),
        Ok(Value::Verbatim {
            format: "txt".into(),
            text: b"Some string".to_vec()
        })
    );
    assert_eq!(
        parsed(b"(3492890328409238509324850943850943825024385\r\n"),
        Ok(Value::BigNumber(
            "3492890328409238509324850943850943825024385".into()
        ))
    );
    assert_eq!(parsed(b"(-12\r\n"), Ok(Value::BigNumber("-12".into())));
    refused(b"(1.5\r\n");
}

#[test]
fn resp3_spec_aggregates() {
    assert_eq!(
        parsed(b"*3\r\n:1\r\n:2\r\n:3\r\n"),
        Ok(Value::Array(vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(3)
        ]))
    );
    // [[1,"hello",2],false]
    assert_eq!(
        parsed(b"*2\r\n*3\r\n:1\r\n$5\r\nhello\r\n:2\r\n#f\r\n"),
        Ok(Value::Array(vec![
            Value::Array(vec![Value::Int(1), bulk("hello"), Value::Int(2)]),
            Value::Boolean(false)
        ]))
    );
    // {"first":1, "second":2}: the count is of pairs.
    assert_eq!(
        parsed(b"%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n"),
        Ok(Value::Map(vec![
            (status("first"), Value::Int(1)),
            (status("second"), Value::Int(2))
        ]))
    );
    assert_eq!(
        parsed(b"~5\r\n+orange\r\n+apple\r\n#t\r\n:100\r\n:999\r\n"),
        Ok(Value::Set(vec![
            status("orange"),
            status("apple"),
            Value::Boolean(true),
            Value::Int(100),
            Value::Int(999)
        ]))
    );
}

#[test]
fn resp3_spec_attributes_annotate_the_value_that_follows() {
    // The MGET example: key popularity, then the reply itself.
    assert_eq!(
        parsed(
            b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n\
              *2\r\n:2039123\r\n:9543892\r\n"
        ),
        Ok(Value::Attribute {
            data: Box::new(Value::Array(vec![Value::Int(2039123), Value::Int(9543892)])),
            attributes: vec![(
                status("key-popularity"),
                Value::Map(vec![
                    (bulk("a"), Value::Double(0.1923)),
                    (bulk("b"), Value::Double(0.0012))
                ])
            )]
        })
    );
    // An attribute on the third element of an array (the spec omits the
    // CRLFs after `+ttl` and `:3600`; with them).
    assert_eq!(
        parsed(b"*3\r\n:1\r\n:2\r\n|1\r\n+ttl\r\n:3600\r\n:3\r\n"),
        Ok(Value::Array(vec![
            Value::Int(1),
            Value::Int(2),
            Value::Attribute {
                data: Box::new(Value::Int(3)),
                attributes: vec![(status("ttl"), Value::Int(3600))]
            }
        ]))
    );
}

#[test]
fn resp3_spec_push_and_hello_errors() {
    assert_eq!(
        parsed(b">4\r\n+pubsub\r\n+message\r\n+somechannel\r\n+this is the message\r\n"),
        Ok(Value::Push(vec![
            status("pubsub"),
            status("message"),
            status("somechannel"),
            status("this is the message")
        ]))
    );
    assert_eq!(
        parsed(b"-NOPROTO sorry this protocol version is not supported\r\n"),
        Ok(Value::Error(ServerError {
            code: "NOPROTO".into(),
            message: "sorry this protocol version is not supported".into(),
            raw: None,
        }))
    );
}
