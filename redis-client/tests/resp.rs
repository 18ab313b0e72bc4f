//! The RESP parser on its own: no server, just bytes. Split points, hostile
//! input, limits, and property tests of the encode/parse round trip.

use greenhub_redis::resp::{encode_value, parse, Limits, Parsed, Value};
use greenhub_redis::ServerError;
use proptest::prelude::*;

fn limits() -> Limits {
    Limits::default()
}

fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(&mut out, value);
    out
}

/// Parses `bytes` fed one prefix at a time, as a socket may deliver them.
fn parse_in_pieces(bytes: &[u8], split: usize) -> Value {
    let first = parse(&bytes[..split], &limits()).unwrap();
    if split < bytes.len() {
        match first {
            Parsed::Incomplete(need) => assert!(
                need > split && need <= bytes.len(),
                "need {need} of {}",
                bytes.len()
            ),
            complete => panic!("a strict prefix parsed as {complete:?}"),
        }
    }
    match parse(bytes, &limits()).unwrap() {
        Parsed::Complete(value, used) => {
            assert_eq!(used, bytes.len());
            value
        }
        other => panic!("the whole reply did not parse: {other:?}"),
    }
}

#[test]
fn every_resp2_and_resp3_type_parses() {
    let cases: Vec<(&[u8], Value)> = vec![
        (b"+OK\r\n", Value::Status("OK".into())),
        (
            b"-WRONGTYPE bad kind\r\n",
            Value::Error(ServerError {
                code: "WRONGTYPE".into(),
                message: "bad kind".into(),
                raw: None,
            }),
        ),
        (b":-42\r\n", Value::Int(-42)),
        (b"$3\r\na\r\n\r\n", Value::Bulk(b"a\r\n".to_vec())),
        (b"$-1\r\n", Value::Nil),
        (b"*-1\r\n", Value::Nil),
        (b"_\r\n", Value::Nil),
        (
            b"*2\r\n:1\r\n$0\r\n\r\n",
            Value::Array(vec![Value::Int(1), Value::Bulk(vec![])]),
        ),
        (
            b"%1\r\n+k\r\n:1\r\n",
            Value::Map(vec![(Value::Status("k".into()), Value::Int(1))]),
        ),
        (b"~1\r\n#t\r\n", Value::Set(vec![Value::Boolean(true)])),
        (b",3.5\r\n", Value::Double(3.5)),
        (b",-inf\r\n", Value::Double(f64::NEG_INFINITY)),
        (
            b"(123456789012345678901234567890\r\n",
            Value::BigNumber("123456789012345678901234567890".into()),
        ),
        (
            b"=8\r\ntxt:hey!\r\n",
            Value::Verbatim {
                format: "txt".into(),
                text: b"hey!".to_vec(),
            },
        ),
        (
            b"!9\r\nERR oops!\r\n",
            Value::Error(ServerError {
                code: "ERR".into(),
                message: "oops!".into(),
                raw: None,
            }),
        ),
        (
            b">2\r\n+message\r\n:7\r\n",
            Value::Push(vec![Value::Status("message".into()), Value::Int(7)]),
        ),
        (
            b"|1\r\n+ttl\r\n:3\r\n:9\r\n",
            Value::Attribute {
                data: Box::new(Value::Int(9)),
                attributes: vec![(Value::Status("ttl".into()), Value::Int(3))],
            },
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(
            parse(bytes, &limits()),
            Ok(Parsed::Complete(expected, bytes.len())),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn a_reply_split_at_every_byte_parses_the_same() {
    let reply = b"*3\r\n$5\r\nhello\r\n:12\r\n*2\r\n+a\r\n$-1\r\n";
    let whole = parse_in_pieces(reply, reply.len());
    for split in 0..reply.len() {
        assert_eq!(parse_in_pieces(reply, split), whole);
    }
}

#[test]
fn malformed_input_is_a_protocol_error_not_a_panic() {
    let bad: &[&[u8]] = &[
        b"?what\r\n",                 // unknown type byte
        b":12a\r\n",                  // not an integer
        b":99999999999999999999\r\n", // overflow
        b"$3\r\nabcdef\r\n",          // bulk longer than announced
        b"$-5\r\n",                   // negative length
        b"#x\r\n",                    // bad boolean
        b"+OK\rX",                    // CR without LF
        b"=3\r\nabc\r\n",             // verbatim without a format
    ];
    for bytes in bad {
        assert!(
            parse(bytes, &limits()).is_err(),
            "{:?} was accepted",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn an_announced_gigabyte_is_refused_without_allocating_it() {
    let err = parse(
        b"$1073741824\r\n",
        &Limits {
            max_bulk: 1 << 20,
            max_depth: 8,
        },
    )
    .unwrap_err();
    assert!(err.0.contains("exceeds the reply size limit"), "{err}");
    let err = parse(
        b"*1073741824\r\n",
        &Limits {
            max_bulk: 1 << 20,
            max_depth: 8,
        },
    )
    .unwrap_err();
    assert!(err.0.contains("exceeds"), "{err}");
}

#[test]
fn nesting_is_bounded() {
    let deep = "*1\r\n".repeat(100) + ":1\r\n";
    let err = parse(
        deep.as_bytes(),
        &Limits {
            max_bulk: 1 << 20,
            max_depth: 64,
        },
    )
    .unwrap_err();
    assert!(err.0.contains("nested deeper"), "{err}");
}

#[test]
fn a_line_without_crlf_cannot_grow_without_bound() {
    let garbage = vec![b'+'; 70 * 1024];
    assert!(parse(&garbage, &limits()).is_err());
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let text = "[a-zA-Z0-9 ]{0,12}";
    let leaf = prop_oneof![
        Just(Value::Nil),
        text.prop_map(Value::Status),
        ("[A-Z]{1,8}", "[a-z ]{0,10}").prop_map(|(code, message)| Value::Error(ServerError {
            code,
            message: message.trim().to_owned(),
            raw: None,
        })),
        any::<i64>().prop_map(Value::Int),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bulk),
        any::<bool>().prop_map(Value::Boolean),
        (-1.0e12f64..1.0e12).prop_map(Value::Double),
        "-?[1-9][0-9]{0,30}".prop_map(Value::BigNumber),
        ("[a-z]{3}", proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(format, text)| Value::Verbatim { format, text }),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Set),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Push),
            proptest::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Value::Map),
            (
                inner.clone(),
                proptest::collection::vec((inner.clone(), inner), 1..3)
            )
                .prop_map(|(data, attributes)| Value::Attribute {
                    data: Box::new(data),
                    attributes
                }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&bytes, &limits());
    }

    #[test]
    fn parse_of_encode_is_the_value(value in value_strategy()) {
        let bytes = encoded(&value);
        prop_assert_eq!(parse(&bytes, &limits()), Ok(Parsed::Complete(value, bytes.len())));
    }

    #[test]
    fn any_split_point_gives_the_same_value(value in value_strategy(), at in any::<prop::sample::Index>()) {
        let bytes = encoded(&value);
        let split = at.index(bytes.len() + 1);
        prop_assert_eq!(parse_in_pieces(&bytes, split), value);
    }
}

/// Regression: the parser recursed once per nesting level, and a reply
/// nested 64 deep overflowed a 128 KiB coroutine stack in a debug build.
#[test]
fn nesting_within_the_limit_parses_on_a_small_coroutine_stack() {
    let reply = "*1\r\n".repeat(64) + ":1\r\n";
    let parsed = greenhub::run(move || {
        greenhub::Builder::new()
            .stack_size(32 * 1024)
            .spawn(move || {
                matches!(
                    parse(reply.as_bytes(), &limits()),
                    Ok(Parsed::Complete(_, _))
                )
            })
            .unwrap()
            .join()
            .unwrap()
    });
    assert!(parsed);
}

/// Regression: a `+` or `-` line with a non-UTF-8 byte was a protocol error
/// that dropped the connection; Redis echoes user bytes into both.
#[test]
fn non_utf8_bytes_in_status_and_error_lines_are_accepted() {
    assert_eq!(
        parse(b"+caf\xe9\r\n", &limits()),
        Ok(Parsed::Complete(Value::Bulk(b"caf\xe9".to_vec()), 7)),
        "a status that is not UTF-8 keeps its bytes"
    );
    let line = b"-ERR unknown subcommand '\xff'. Try\r\n";
    let Ok(Parsed::Complete(Value::Error(err), used)) = parse(line, &limits()) else {
        panic!("an error line that is not UTF-8 was refused");
    };
    assert_eq!(used, line.len());
    assert_eq!(err.code, "ERR");
    assert!(
        err.message.starts_with("unknown subcommand '\u{fffd}'"),
        "{err}"
    );
    // The text shows U+FFFD; the bytes as they came stay with the error.
    let sent = &line[1..line.len() - 2];
    assert_eq!(err.raw.as_deref(), Some(sent));
    assert_eq!(&*err.bytes(), sent);
    // A blob error too, and both encode back to the bytes they came from.
    let blob = b"!6\r\nERR \xfe\xff\r\n";
    let Ok(Parsed::Complete(value @ Value::Error(_), _)) = parse(blob, &limits()) else {
        panic!("a blob error that is not UTF-8 was refused");
    };
    let Value::Error(blob_err) = &value else {
        unreachable!()
    };
    assert_eq!(blob_err.raw.as_deref(), Some(&b"ERR \xfe\xff"[..]));
    assert_eq!(encoded(&value), b"-ERR \xfe\xff\r\n");
    let Ok(Parsed::Complete(line_value, _)) = parse(line, &limits()) else {
        unreachable!()
    };
    assert_eq!(encoded(&line_value), line);
    // UTF-8 errors have nothing extra to keep.
    let Ok(Parsed::Complete(Value::Error(plain), _)) = parse(b"-ERR fine\r\n", &limits()) else {
        panic!("a plain error line was refused");
    };
    assert_eq!((plain.raw, &*plain.code), (None, "ERR"));
}

#[test]
fn a_bad_type_byte_is_reported_before_its_line_ends() {
    for bad in [&b"?"[..], b"?partial line", b"*2\r\n:1\r\n@"] {
        assert!(
            parse(bad, &limits()).is_err(),
            "{:?} waited for more",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn a_bare_lf_inside_a_line_is_refused() {
    for bad in [
        &b"+OK\nmore\r\n"[..],
        b"-ERR a\nb\r\n",
        b":1\n\r\n",
        b"+OK\n",
    ] {
        assert!(
            parse(bad, &limits()).is_err(),
            "{:?} was accepted",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn encode_value_keeps_the_sign_of_nan_and_writes_a_multiline_error_as_a_blob_error() {
    let mut out = Vec::new();
    encode_value(&mut out, &Value::Double(-f64::NAN));
    assert_eq!(out, b",-nan\r\n");
    match parse(&out, &limits()) {
        Ok(Parsed::Complete(Value::Double(d), 7)) => assert!(d.is_nan() && d.is_sign_negative()),
        other => panic!("{other:?}"),
    }
    let err = Value::Error(ServerError {
        code: "ERR".into(),
        message: "line one\r\nline two".into(),
        raw: None,
    });
    let bytes = encoded(&err);
    assert_eq!(bytes, b"!22\r\nERR line one\r\nline two\r\n");
    assert_eq!(
        parse(&bytes, &limits()),
        Ok(Parsed::Complete(err, bytes.len()))
    );
}

#[test]
fn nesting_up_to_1024_levels_parses_and_encodes_without_recursion() {
    let reply = "*1\r\n".repeat(1024) + ":1\r\n";
    let parsed = greenhub::run(move || {
        // A small coroutine stack: the parser and encoder keep the nesting on
        // the heap. (Dropping uses `dismantle`: the drop glue recurses.)
        greenhub::Builder::new()
            .stack_size(32 * 1024)
            .spawn(move || {
                let Ok(Parsed::Complete(value, used)) = parse(reply.as_bytes(), &limits()) else {
                    return false;
                };
                let mut again = Vec::new();
                encode_value(&mut again, &value);
                greenhub_redis::resp::dismantle(value);
                used == reply.len() && again == reply.as_bytes()
            })
            .unwrap()
            .join()
            .unwrap()
    });
    assert!(parsed);
    let deeper = "*1\r\n".repeat(1025) + ":1\r\n";
    let err = parse(deeper.as_bytes(), &limits()).unwrap_err();
    assert!(err.0.contains("nested deeper than 1024"), "{err}");
}

/// Review (client-finish): `encode.rs` writes headers by hand now (one- and
/// two-digit lengths without a loop, the rest on a stack buffer). Every
/// argument count and length across the digit boundaries, and integers at
/// the i64 bounds, must come out as `format!` writes them.
#[test]
fn hand_written_headers_match_format_at_every_digit_boundary() {
    use greenhub_redis::resp::encode_command;
    for count in [0usize, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 1001] {
        let args: Vec<Vec<u8>> = (0..count).map(|i| vec![b'a'; i % 3]).collect();
        let mut out = Vec::new();
        encode_command(&mut out, args.iter().map(Vec::as_slice));
        let mut expected = format!("*{count}\r\n").into_bytes();
        for arg in &args {
            expected.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            expected.extend_from_slice(arg);
            expected.extend_from_slice(b"\r\n");
        }
        assert_eq!(out, expected, "{count} arguments");
    }
    for len in (0..=1200).chain([9_999, 10_000, 99_999, 100_000, 1 << 20]) {
        let arg = vec![b'x'; len];
        let mut out = Vec::new();
        encode_command(&mut out, [arg.as_slice()]);
        let mut expected = format!("*1\r\n${len}\r\n").into_bytes();
        expected.extend_from_slice(&arg);
        expected.extend_from_slice(b"\r\n");
        assert_eq!(out, expected, "an argument of {len} bytes");
    }
    for n in [
        i64::MIN,
        i64::MIN + 1,
        -10,
        -9,
        -1,
        0,
        1,
        9,
        10,
        99,
        100,
        i64::MAX,
    ] {
        assert_eq!(encoded(&Value::Int(n)), format!(":{n}\r\n").into_bytes());
    }
}

/// Review (client-finish): `ServerError::bytes` says it gives "the error's
/// bytes as the server sent them", and `raw` is `None` only "when `code` and
/// `message` are exact". Non-UTF-8 lines and blob errors with CRLF do round
/// trip; but a UTF-8 line whose message is empty after its one space (`-ERR `,
/// which a Lua `redis.error_reply("ERR ")` sends) comes back as `ERR`: the
/// space is not kept, so `bytes()` is not what was sent. Fix: keep `raw` (or
/// a flag) whenever `Display` would not reproduce the line, or say so.
#[test]
fn server_error_bytes_are_the_bytes_the_server_sent() {
    for line in [
        &b"-\xff\r\n"[..],
        b"-ERR \xfe x\r\n",
        b"!7\r\n\xff\r\nab c\r\n",
        b"-ERR plain words\r\n",
        b"-ERR \r\n",
    ] {
        let Ok(Parsed::Complete(value @ Value::Error(_), used)) = parse(line, &Limits::default())
        else {
            panic!("{:?} was refused", String::from_utf8_lossy(line));
        };
        assert_eq!(used, line.len());
        let Value::Error(err) = &value else {
            unreachable!()
        };
        let body = match line[0] {
            b'-' => &line[1..line.len() - 2],
            _ => &line[4..line.len() - 2],
        };
        assert_eq!(&*err.bytes(), body, "{:?}", String::from_utf8_lossy(line));
    }
}
