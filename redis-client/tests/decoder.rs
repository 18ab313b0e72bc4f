//! The resumable parser fed the way a socket feeds it: read by read, each
//! call given only what the last one left (the start of an unfinished line)
//! plus the new bytes. A reply is parsed once, however it was split; memory
//! follows the bytes received, never a length the server announced.

use greenhub_redis::resp::{encode_value, Decoded, Decoder, Limits, Value};

/// Feeds `stream` to a fresh decoder in reads of `chunk` bytes, as the
/// connection does; returns the values and the bytes handed to `decode` in
/// all (the work done).
fn feed(stream: &[u8], chunk: usize, limits: Limits) -> (Vec<Value>, usize) {
    let mut decoder = Decoder::new(limits);
    let mut pending: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut handed = 0;
    let mut values = Vec::new();
    loop {
        handed += pending.len();
        match decoder.decode(&pending).unwrap() {
            Decoded::Complete { value, used } => {
                pending.drain(..used);
                values.push(value);
                continue;
            }
            Decoded::Incomplete { used, need } => {
                assert!(need > 0);
                pending.drain(..used);
            }
        }
        if fed == stream.len() {
            assert!(decoder.is_idle() && pending.is_empty(), "left over");
            return (values, handed);
        }
        let end = (fed + chunk).min(stream.len());
        pending.extend_from_slice(&stream[fed..end]);
        fed = end;
    }
}

fn encoded(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    values.iter().for_each(|v| encode_value(&mut out, v));
    out
}

#[test]
fn replies_fed_in_reads_of_every_size_come_out_the_same() {
    let values = vec![
        Value::Int(1),
        Value::Bulk(b"a\r\nb".to_vec()),
        Value::Array(vec![Value::Status("OK".into()), Value::Nil, Value::Int(-7)]),
        Value::Map(vec![(Value::Bulk(b"k".to_vec()), Value::Double(1.5))]),
        Value::Bulk(vec![b'x'; 1000]),
        Value::Array(vec![]),
    ];
    let stream = encoded(&values);
    for chunk in 1..=stream.len() {
        assert_eq!(
            feed(&stream, chunk, Limits::default()).0,
            values,
            "reads of {chunk}"
        );
    }
}

#[test]
fn a_large_aggregate_arriving_in_many_reads_is_parsed_once() {
    // LRANGE of 200,000 elements, as the server sends it, in 4 KiB reads.
    let items: Vec<Value> = (0..200_000)
        .map(|i| Value::Bulk(format!("element-{i}").into_bytes()))
        .collect();
    let stream = encoded(&[Value::Array(items.clone())]);
    let (values, handed) = feed(&stream, 4096, Limits::default());
    assert_eq!(values, [Value::Array(items)]);
    // Each call is handed the new read plus at most the start of one line:
    // the work is linear in the reply, not quadratic.
    assert!(
        handed < stream.len() * 2,
        "{handed} bytes handed to decode for a reply of {}",
        stream.len()
    );
}

#[test]
fn a_long_line_arriving_byte_by_byte_completes_when_its_crlf_arrives() {
    let line = Value::Status("s".repeat(50_000));
    let stream = encoded(std::slice::from_ref(&line));
    let mut decoder = Decoder::new(Limits::default());
    let mut pending = Vec::new();
    for (i, &byte) in stream.iter().enumerate() {
        pending.push(byte);
        match decoder.decode(&pending).unwrap() {
            Decoded::Complete { value, used } => {
                assert_eq!((i, used), (stream.len() - 1, stream.len()));
                assert_eq!(value, line);
                return;
            }
            Decoded::Incomplete { used, .. } => assert_eq!(used, 0),
        }
    }
    panic!("never completed");
}

#[test]
fn an_announced_half_gigabyte_takes_memory_only_for_the_bytes_that_arrived() {
    let mut decoder = Decoder::new(Limits::default());
    let mut header = b"$536870000\r\n".to_vec();
    header.extend_from_slice(&[b'x'; 100]);
    assert_eq!(
        decoder.decode(&header).unwrap(),
        Decoded::Incomplete {
            used: header.len(),
            need: 536_870_000 - 100 + 2
        }
    );
    assert!(decoder.held_bytes() <= 100, "{} held", decoder.held_bytes());
    let megabyte = vec![b'y'; 1 << 20];
    decoder.decode(&megabyte).unwrap();
    assert!(
        decoder.held_bytes() <= 2 << 20,
        "{} held after 1 MiB arrived",
        decoder.held_bytes()
    );
}

#[test]
fn an_announced_count_of_a_billion_elements_allocates_nothing_for_them() {
    let mut decoder = Decoder::new(Limits {
        max_bulk: usize::MAX,
        max_depth: 8,
    });
    let got = decoder.decode(b"*1000000000\r\n:1\r\n").unwrap();
    assert_eq!(got, Decoded::Incomplete { used: 17, need: 1 });
    assert!(decoder.held_bytes() < 64 * 1024, "{}", decoder.held_bytes());
}

#[test]
fn max_reply_bytes_bounds_the_whole_reply_not_just_one_bulk() {
    // Two bulks of 600 KiB each fit a 1 MiB bound alone, not together.
    let half = Value::Bulk(vec![b'z'; 600 * 1024]);
    let stream = encoded(&[Value::Array(vec![half.clone(), half])]);
    let limits = Limits {
        max_bulk: 1 << 20,
        max_depth: 8,
    };
    let err = Decoder::new(limits).decode(&stream).unwrap_err();
    assert!(err.0.contains("reply size limit of 1048576"), "{err}");
    // Fed in small reads, the reply is refused before it is all buffered.
    let mut decoder = Decoder::new(limits);
    let mut refused_at = None;
    for (i, piece) in stream.chunks(64 * 1024).enumerate() {
        if decoder.decode(piece).is_err() {
            refused_at = Some(i);
            break;
        }
    }
    assert!(refused_at.is_some(), "accepted a reply over the bound");
    // Many small elements count too.
    let many = Value::Array(vec![Value::Int(1); 300_000]);
    let err = Decoder::new(limits).decode(&encoded(&[many])).unwrap_err();
    assert!(err.0.contains("reply size limit"), "{err}");
}

#[test]
fn the_decoder_is_idle_again_after_a_protocol_error() {
    let mut decoder = Decoder::new(Limits::default());
    assert!(matches!(
        decoder.decode(b"*2\r\n:1\r\n").unwrap(),
        Decoded::Incomplete { .. }
    ));
    assert!(!decoder.is_idle());
    assert!(decoder.decode(b"?").is_err());
    assert!(decoder.is_idle());
    assert_eq!(
        decoder.decode(b":5\r\n").unwrap(),
        Decoded::Complete {
            value: Value::Int(5),
            used: 4
        }
    );
}

/// `Decoder::quick` (the shortcut every GET takes) must answer exactly what
/// `decode` answers, or leave the input to `decode`: for each input below and
/// every prefix of it, and under a reply size bound it may cross.
#[test]
fn the_quick_path_agrees_with_decode_on_every_prefix() {
    let inputs: &[&[u8]] = &[
        b"$3\r\nabc\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b"$03\r\nabc\r\n",
        b"$3\r\nabcd\r\n",
        b"$3\r\nab\r\n\r\n",
        b"$4\r\na\r\nb\r\n",
        b"$999999999999999999\r\n",
        b"$9999999999999999999\r\nx",
        b"$1\nx\r\n",
        b"$+1\r\nx\r\n",
        b":0\r\n",
        b":42\r\n:7\r\n",
        b":-5\r\n",
        b":999999999999999999\r\n",
        b":9223372036854775807\r\n",
        b":9223372036854775808\r\n",
        b":\r\n",
        b":1\n",
        b"+OK\r\n",
        b"+\r\n",
        b"+QUEUED\r\n+OK\r\n",
        b"+a\nb\r\n",
        b"+a\rb\r\n",
        b"+\xff\xfe\r\n",
        b"+caf\xc3\xa9\r\n",
        b"-ERR no\r\n",
        b"*1\r\n$1\r\na\r\n",
    ];
    let long = [b"+".as_slice(), &[b'x'; 100], b"\r\n"].concat();
    for limits in [
        Limits::default(),
        Limits {
            max_bulk: 8,
            ..Limits::default()
        },
    ] {
        for input in inputs.iter().copied().chain([long.as_slice()]) {
            for end in 0..=input.len() {
                let prefix = &input[..end];
                let quick = Decoder::new(limits).quick(prefix);
                let full = Decoder::new(limits).decode(prefix);
                if let Some((value, used)) = quick {
                    assert_eq!(
                        full,
                        Ok(Decoded::Complete { value, used }),
                        "{:?}",
                        String::from_utf8_lossy(prefix)
                    );
                }
            }
        }
    }
    // And it does take the common replies.
    let limits = Limits::default();
    assert!(Decoder::new(limits).quick(b"$3\r\nabc\r\n").is_some());
    assert!(Decoder::new(limits).quick(b":1\r\n").is_some());
    assert!(Decoder::new(limits).quick(b"+OK\r\n").is_some());
    // Never while a reply is in progress.
    let mut midway = Decoder::new(limits);
    assert!(matches!(
        midway.decode(b"*2\r\n"),
        Ok(Decoded::Incomplete { .. })
    ));
    assert_eq!(midway.quick(b":1\r\n"), None);
}

/// Review (client-finish): the connection's read loop (`Reader::take_buffered`)
/// tries `Decoder::quick` before `decode` on whatever is buffered, at every
/// point a read may end. This replays random streams (valid replies of every
/// kind mixed with hostile bytes: signs, leading zeros, bare LF, CR without
/// LF, non-UTF-8, 19-digit lengths) through that loop and through `decode`
/// alone, split at random points, under tight and default limits, and
/// requires the same values and the same first error.
#[test]
fn the_quick_path_and_decode_read_the_same_streams_split_anywhere() {
    const TOKENS: &[&[u8]] = &[
        b"$",
        b":",
        b"+",
        b"-",
        b"*",
        b"%",
        b"~",
        b">",
        b"_",
        b"#",
        b",",
        b"(",
        b"!",
        b"=",
        b"|",
        b"0",
        b"1",
        b"3",
        b"9",
        b"-1",
        b"+1",
        b"18446744073709551616",
        b"999999999999999999",
        b"9223372036854775807",
        b"\r\n",
        b"\r",
        b"\n",
        b"a",
        b"OK",
        b"\xff",
        b"\xc3\xa9",
        b"t",
        b"$3\r\nabc\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b":7\r\n",
        b"+OK\r\n",
        b"*2\r\n",
        b"%1\r\n",
        b">2\r\n",
        b"|1\r\n",
        b"_\r\n",
        b"$5\r\na\r\nbc\r\n",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    // The connection's loop: quick first, then decode, on the buffered bytes.
    fn run(stream: &[u8], cuts: &[usize], limits: Limits, quick: bool) -> (Vec<Value>, bool) {
        let mut decoder = Decoder::new(limits);
        let (mut start, mut end, mut values) = (0, 0, Vec::new());
        let mut cuts = cuts.iter().copied().chain([stream.len()]);
        loop {
            if start < end {
                let input = &stream[start..end];
                let found = if quick { decoder.quick(input) } else { None };
                match found
                    .map(Ok)
                    .unwrap_or_else(|| match decoder.decode(input) {
                        Ok(Decoded::Complete { value, used }) => Ok((value, used)),
                        Ok(Decoded::Incomplete { used, .. }) => Err(Some(used)),
                        Err(_) => Err(None),
                    }) {
                    Ok((value, used)) => {
                        start += used;
                        values.push(value);
                        continue;
                    }
                    Err(Some(used)) => start += used,
                    Err(None) => return (values, true),
                }
            }
            match cuts.next() {
                Some(cut) => end = cut.max(end),
                None => return (values, false),
            }
        }
    }
    for case in 0..20_000 {
        let mut stream = Vec::new();
        for _ in 0..1 + next(12) {
            stream.extend_from_slice(TOKENS[next(TOKENS.len())]);
        }
        let mut cuts: Vec<usize> = (0..next(4)).map(|_| next(stream.len() + 1)).collect();
        cuts.sort();
        for limits in [
            Limits::default(),
            Limits {
                max_bulk: 1 + next(12),
                max_depth: 1 + next(3),
            },
        ] {
            let with = run(&stream, &cuts, limits, true);
            let without = run(&stream, &cuts, limits, false);
            assert_eq!(
                with,
                without,
                "case {case}: {:?} cut at {cuts:?}, {limits:?}",
                String::from_utf8_lossy(&stream)
            );
        }
    }
}
