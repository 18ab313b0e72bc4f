//! Differential testing against another client: random command sequences
//! (fixed seed) run through greenhub-redis and through `redis-cli`, on a
//! FLUSHDB each, and every reply compared as `redis-cli --no-raw` prints it.
//!
//! The sequences mix strings, keys, lists, hashes, sets, sorted sets and
//! streams over a few shared keys (so wrong-type errors come up), with
//! binary values holding CR, LF, NUL, quotes and high bytes, empty values and
//! a few 1 MB ones, i64 bounds, and pipelines and MULTI/EXEC blocks with an
//! error in the middle (at run time, and at queue time). Replies whose order
//! the server does not define are read through `SORT ... ALPHA` instead.
//!
//! redis-cli reads the whole script from stdin on one connection, with an
//! `ECHO` marker before each operation; greenhub-redis runs the same
//! operations in a hub (single commands, `req_pipeline` for pipelines and
//! MULTI/EXEC), and renders each reply the way redis-cli does
//! (`cliFormatReplyTTY`). A pipeline's replies are the same as its commands
//! run one by one, so redis-cli runs them one by one.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

use greenhub_redis::{cmd, Client, Cmd, ConnectionLike, Error, Value};
use greenhub_tests::{RedisServer, Rng};

/// Sequences, and operations per sequence: about 5,000 commands in all,
/// a few seconds in a debug build.
const SEQUENCES: usize = 200;
const OPS_PER_SEQUENCE: usize = 25;
const SEED: u64 = 0x5eed_d1ff;

/// One step of a sequence.
enum Op {
    One(Vec<Vec<u8>>),
    Pipeline(Vec<Vec<Vec<u8>>>),
    Multi(Vec<Vec<Vec<u8>>>),
}

/// Builds random operations.
struct Gen {
    rng: Rng,
    /// The next stream entry id's sequence part: ids only grow.
    next_id: u64,
    /// 1 MB values still allowed in the whole run (they are slow to escape).
    big_left: usize,
}

impl Gen {
    fn key(&mut self) -> Vec<u8> {
        format!("k{}", self.rng.below(6)).into_bytes()
    }

    fn member(&mut self) -> Vec<u8> {
        // Few distinct members, so that removals and scores find them.
        let pool: [&[u8]; 7] = [b"a", b"b", b"c", b"x y", b"\r\n", b"\0", b"\xff\"\\"];
        pool[self.rng.below(pool.len())].to_vec()
    }

    fn value(&mut self) -> Vec<u8> {
        match self.rng.below(40) {
            0 => Vec::new(),
            1 if self.big_left > 0 => {
                self.big_left -= 1;
                vec![b'B'; 1 << 20]
            }
            2..=8 => self.rng.below(100_000).to_string().into_bytes(),
            _ => {
                let alphabet = b"abcXYZ019 \r\n\0\t\"\\\x07\x08\x7f\x80\xfe\xff";
                let len = self.rng.below(20);
                (0..len)
                    .map(|_| alphabet[self.rng.below(alphabet.len())])
                    .collect()
            }
        }
    }

    /// A short value: hashes keep values under 64 bytes, so the server keeps
    /// them as listpacks, whose order is the insertion order.
    fn short(&mut self) -> Vec<u8> {
        let mut value = self.value();
        value.truncate(40);
        value
    }

    fn int(&mut self) -> Vec<u8> {
        let n: i64 = match self.rng.below(8) {
            0 => i64::MAX,
            1 => i64::MIN,
            2 => -1,
            3 => 0,
            _ => self.rng.below(1000) as i64 - 500,
        };
        n.to_string().into_bytes()
    }

    fn score(&mut self) -> Vec<u8> {
        let scores: [&[u8]; 7] = [b"1", b"-2.5", b"0", b"1e10", b"+inf", b"-inf", b"3.25"];
        scores[self.rng.below(scores.len())].to_vec()
    }

    fn command(&mut self) -> Vec<Vec<u8>> {
        let w = |s: &str| s.as_bytes().to_vec();
        let k = self.key();
        match self.rng.below(46) {
            0 => vec![w("SET"), k, self.value()],
            1 => vec![w("GET"), k],
            2 => vec![w("APPEND"), k, self.value()],
            3 => vec![w("STRLEN"), k],
            4 => vec![w("INCR"), k],
            5 => vec![w("INCRBY"), k, self.int()],
            6 => vec![w("DECRBY"), k, self.int()],
            7 => vec![w("GETRANGE"), k, self.int(), self.int()],
            8 => vec![
                w("SETRANGE"),
                k,
                w(&self.rng.below(50).to_string()),
                self.value(),
            ],
            9 => vec![w("MGET"), k, self.key(), self.key()],
            10 => vec![w("MSET"), k, self.value(), self.key(), self.value()],
            11 => vec![w("GETDEL"), k],
            12 => vec![w("SETNX"), k, self.value()],
            13 => vec![w("DEL"), k, self.key()],
            14 => vec![w("EXISTS"), k, self.key()],
            15 => vec![w("TYPE"), k],
            16 => vec![w("RENAME"), k, self.key()],
            17 => vec![w("EXPIRE"), k, w("1000")],
            18 => vec![w("PERSIST"), k],
            19 => vec![w("LPUSH"), k, self.member(), self.value()],
            20 => vec![w("RPUSH"), k, self.member()],
            21 => vec![w("LPOP"), k],
            22 => vec![w("RPOP"), k, w("2")],
            23 => vec![w("LRANGE"), k, w("0"), w("-1")],
            24 => vec![w("LLEN"), k],
            25 => vec![w("LINDEX"), k, self.int()],
            26 => vec![w("LSET"), k, w("0"), self.member()],
            27 => vec![w("LREM"), k, w("0"), self.member()],
            28 => vec![w("LINSERT"), k, w("BEFORE"), self.member(), self.member()],
            29 => vec![
                w("HSET"),
                k,
                self.member(),
                self.short(),
                self.member(),
                self.short(),
            ],
            30 => vec![w("HGET"), k, self.member()],
            31 => vec![w("HGETALL"), k],
            32 => vec![w("HDEL"), k, self.member()],
            33 => vec![w("HINCRBY"), k, self.member(), self.int()],
            34 => vec![w("HMGET"), k, self.member(), self.member()],
            35 => vec![w("SADD"), k, self.member(), self.member()],
            36 => vec![w("SREM"), k, self.member()],
            37 => vec![w("SORT"), k, w("ALPHA")],
            38 => vec![w("SISMEMBER"), k, self.member()],
            39 => vec![w("SINTERSTORE"), w("dst"), k, self.key()],
            40 => vec![w("ZADD"), k, self.score(), self.member()],
            41 => vec![w("ZINCRBY"), k, self.score(), self.member()],
            42 => vec![w("ZRANGE"), k, w("0"), w("-1"), w("WITHSCORES")],
            43 => vec![w("ZSCORE"), k, self.member()],
            44 => {
                self.next_id += 1;
                vec![
                    w("XADD"),
                    k,
                    w(&format!("1-{}", self.next_id)),
                    self.member(),
                    self.short(),
                ]
            }
            _ => vec![w("XRANGE"), k, w("-"), w("+")],
        }
    }

    fn op(&mut self) -> Op {
        match self.rng.below(10) {
            0 => Op::Pipeline((0..2 + self.rng.below(6)).map(|_| self.command()).collect()),
            1 => {
                let mut cmds: Vec<_> = (0..1 + self.rng.below(4)).map(|_| self.command()).collect();
                if self.rng.below(4) == 0 {
                    // Refused while queued: the server discards the transaction.
                    cmds.insert(self.rng.below(cmds.len() + 1), vec![b"SET".to_vec()]);
                }
                Op::Multi(cmds)
            }
            _ => Op::One(self.command()),
        }
    }
}

/// An argument as redis-cli reads it: double-quoted, with escapes.
fn quoted(arg: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in arg {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

fn script_line(args: &[Vec<u8>], out: &mut Vec<u8>) {
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        quoted(arg, out);
    }
    out.push(b'\n');
}

/// A bulk string as redis-cli prints it (`sdscatrepr`).
fn repr(bytes: &[u8], out: &mut String) {
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(b as char),
            _ => write!(out, "\\x{b:02x}").unwrap(),
        }
    }
    out.push('"');
}

/// A reply as `redis-cli --no-raw` prints it (`cliFormatReplyTTY`).
fn render(value: &Value, prefix: &str, out: &mut String) {
    match value {
        Value::Array(items) if items.is_empty() => out.push_str("(empty array)\n"),
        Value::Array(items) => {
            let width = items.len().to_string().len();
            let nested = format!("{prefix}{}", " ".repeat(width + 2));
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(prefix);
                }
                write!(out, "{:>width$}) ", i + 1).unwrap();
                render(item, &nested, out);
            }
        }
        Value::Nil => out.push_str("(nil)\n"),
        Value::Int(n) => writeln!(out, "(integer) {n}").unwrap(),
        Value::Status(text) => writeln!(out, "{text}").unwrap(),
        Value::Error(err) => writeln!(out, "(error) {err}").unwrap(),
        Value::Bulk(bytes) => {
            repr(bytes, out);
            out.push('\n');
        }
        other => writeln!(out, "<not RESP2: {other:?}>").unwrap(),
    }
}

fn to_cmd(args: &[Vec<u8>]) -> Cmd {
    let mut command = cmd(std::str::from_utf8(&args[0]).unwrap());
    command.args(&args[1..]);
    command
}

fn render_result(result: greenhub_redis::Result<Value>, out: &mut String) {
    match result {
        Ok(value) => render(&value, "", out),
        Err(Error::Server(err)) => writeln!(out, "(error) {err}").unwrap(),
        Err(err) => writeln!(out, "<client error: {err}>").unwrap(),
    }
}

/// Runs `ops` through greenhub-redis: one rendered transcript per op.
fn through_greenhub(client: &mut Client, ops: &[Op], out: &mut Vec<String>) {
    for op in ops {
        let mut text = String::new();
        match op {
            Op::One(args) => render_result(client.req_command(&to_cmd(args)), &mut text),
            Op::Pipeline(cmds) | Op::Multi(cmds) => {
                let cmds: Vec<Cmd> = cmds.iter().map(|args| to_cmd(args)).collect();
                let atomic = matches!(op, Op::Multi(_));
                match client.req_pipeline(&cmds, atomic) {
                    Ok(values) => values.iter().for_each(|v| render(v, "", &mut text)),
                    Err(err) => writeln!(text, "<client error: {err}>").unwrap(),
                }
            }
        }
        out.push(text);
    }
}

/// The redis-cli script for `ops`, each preceded by `ECHO "#<n>"`.
fn script(ops: &[Op], first: usize, out: &mut Vec<u8>) {
    for (i, op) in ops.iter().enumerate() {
        out.extend_from_slice(format!("ECHO \"#{}\"\n", first + i).as_bytes());
        match op {
            Op::One(args) => script_line(args, out),
            Op::Pipeline(cmds) => cmds.iter().for_each(|args| script_line(args, out)),
            Op::Multi(cmds) => {
                out.extend_from_slice(b"MULTI\n");
                cmds.iter().for_each(|args| script_line(args, out));
                out.extend_from_slice(b"EXEC\n");
            }
        }
    }
}

#[test]
fn random_command_sequences_get_the_same_replies_as_through_redis_cli() {
    let server = RedisServer::start();
    let mut gen = Gen {
        rng: Rng::new(SEED),
        next_id: 0,
        big_left: 3,
    };
    let flush = || Op::One(vec![b"FLUSHDB".to_vec()]);
    let mut ops = Vec::new();
    for _ in 0..SEQUENCES {
        ops.push(flush());
        for _ in 0..OPS_PER_SEQUENCE {
            ops.push(gen.op());
        }
    }

    // greenhub-redis, in a hub.
    let url = server.url();
    let ops = std::rc::Rc::new(ops);
    let ours = {
        let ops = ops.clone();
        greenhub::run(move || {
            let mut client = Client::open(&url).unwrap();
            let mut out = Vec::new();
            through_greenhub(&mut client, &ops, &mut out);
            out
        })
    };

    // redis-cli, on the same server, one connection, the same operations.
    let mut input = Vec::new();
    script(&ops, 0, &mut input);
    let mut cli = Command::new("redis-cli")
        .args(["-p", &server.addr().port().to_string(), "--no-raw"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli is installed (redis-tools)");
    let mut stdin = cli.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = cli.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let theirs = String::from_utf8(output.stdout).expect("redis-cli prints escaped ASCII");

    // Split redis-cli's output at the markers and compare op by op.
    let mut chunks: Vec<String> = Vec::new();
    let mut rest = theirs.as_str();
    for i in 0..ops.len() {
        let marker = format!("\"#{i}\"\n");
        let next = format!("\"#{}\"\n", i + 1);
        rest = rest
            .strip_prefix(&marker)
            .unwrap_or_else(|| panic!("marker {i} missing in redis-cli's output"));
        let end = if i + 1 == ops.len() {
            rest.len()
        } else {
            rest.find(&next).expect("the next marker")
        };
        chunks.push(rest[..end].to_owned());
        rest = &rest[end..];
    }
    let mut disagreements = Vec::new();
    for (i, (ours, theirs)) in ours.iter().zip(&chunks).enumerate() {
        if ours != theirs {
            let mut commands = Vec::new();
            script(std::slice::from_ref(&ops[i]), i, &mut commands);
            let commands = String::from_utf8_lossy(&commands);
            let short = |s: &str| s.chars().take(400).collect::<String>();
            disagreements.push(format!(
                "op {i}:\n{}\ngreenhub-redis:\n{}\nredis-cli:\n{}",
                short(&commands),
                short(ours),
                short(theirs)
            ));
        }
    }
    let commands: usize = ops
        .iter()
        .map(|op| match op {
            Op::One(_) => 1,
            Op::Pipeline(c) => c.len(),
            Op::Multi(c) => c.len() + 2,
        })
        .sum();
    assert!(
        disagreements.is_empty(),
        "{} of {} operations ({commands} commands) disagree; the first:\n{}",
        disagreements.len(),
        ops.len(),
        disagreements[..disagreements.len().min(3)].join("\n---\n")
    );
}
