//! How an item popped for a caller that was gone is put back where it was
//! taken from. The reaper (`reaper.rs`) reads the reply a cut-short
//! blocking command got and calls [`plan`]: the item as the user's
//! `on_orphaned_item` callback sees it, and the one command that undoes the
//! pop.
//!
//! | popped by | reply | undone by |
//! | --- | --- | --- |
//! | `BRPOP k.. t` | `[k, v]` | `RPUSH k v` (back at the tail it left) |
//! | `BLPOP k.. t` | `[k, v]` | `LPUSH k v` |
//! | `BLMPOP t n k.. LEFT\|RIGHT [COUNT c]` | `[k, [v1..vc]]` | `LPUSH`/`RPUSH k vc..v1` (v1 ends at the end it left; the end is the word after the `n` keys, so a key named `left` is a key) |
//! | `BRPOPLPUSH src dst t` | `v` | a script: `LREM dst 1 v`, and only if it removed one, `RPUSH src v` |
//! | `BLMOVE src dst FROM TO t` | `v` | the same script, from dst's `TO` end back to src's `FROM` end |
//! | `BZPOPMIN`/`BZPOPMAX k.. t` | `[k, m, s]` | `ZADD k NX s m` |
//! | `BZMPOP t n k.. MIN\|MAX [COUNT c]` | `[k, [[m, s]..]]` | `ZADD k NX s m ...` (MIN or MAX does not matter: a score says where a member goes) |
//! | `XREAD BLOCK`, `XREADGROUP BLOCK` | entries | nothing: XREAD removes nothing, and XREADGROUP's entries stay pending for the consumer (claim them with `XAUTOCLAIM`) |
//! | `WAIT`, `WAITAOF` | a count | nothing |
//!
//! The move back of BLMOVE runs as one script, so an item a consumer has
//! already taken from `dst` is never pushed to `src` again (no duplicate).
//! Every push back and every ZADD runs as a script too, guarded by a token
//! key (`SET token 1 NX EX 600` first): so a restore whose reply was lost can
//! be sent again without pushing the item twice. The ZADD is `NX`: a member
//! added again meanwhile keeps the score it was given then. The token key carries the
//! list key's hash tag (or the key itself as one), so on a cluster it lives
//! in the list's slot.

use crate::cmd::{cmd, Cmd};
use crate::resp::Value;

/// An item a blocking pop took from the server for a caller that was gone
/// (killed, timed out, dropped). Handed to the callback set with
/// [`Client::on_orphaned_item`](crate::Client::on_orphaned_item) instead of
/// being put back.
#[derive(Clone, Debug, PartialEq)]
pub struct OrphanedItem {
    /// The command that popped it, as sent (name first).
    pub command: Vec<Vec<u8>>,
    /// The reply it got: what was popped.
    pub reply: Value,
}

impl OrphanedItem {
    /// The command's name, upper-case (`BRPOP`, `BLMOVE`, ...).
    pub fn name(&self) -> String {
        self.command
            .first()
            .map(|name| String::from_utf8_lossy(name).to_uppercase())
            .unwrap_or_default()
    }
}

/// The script that moves `ARGV[2]` back from the `ARGV[1]` end of KEYS[2]
/// (1: head, -1: tail) with `ARGV[3]` (LPUSH or RPUSH) onto KEYS[1], only if
/// it is still there.
const MOVE_BACK: &str = "if redis.call('LREM', KEYS[2], ARGV[1], ARGV[2]) > 0 then \
     return redis.call(ARGV[3], KEYS[1], ARGV[2]) end return 0";

/// Pushes ARGV[2..] with ARGV[1] (LPUSH or RPUSH) onto KEYS[1], once per
/// token KEYS[2]. The token lives 600 s: far longer than the reaper retries
/// a restore (10 s), short enough to leave nothing behind.
const PUSH_ONCE: &str = "if redis.call('SET', KEYS[2], 1, 'NX', 'EX', 600) then \
     return redis.call(ARGV[1], KEYS[1], unpack(ARGV, 2)) end return 0";

/// The popped item in `reply` to `args`, and the command that puts it back
/// (safe to send twice: see the module's note on tokens); `None` when
/// nothing was popped (a nil reply, an error, a command that removes
/// nothing). `token` is unique to this restore.
pub(crate) fn plan(args: &[Vec<u8>], reply: Value, token: &str) -> Option<(OrphanedItem, Cmd)> {
    let (item, restore) = plan_once(args, reply)?;
    Some((item, guarded(restore, token)))
}

/// Adds the members ARGV (score, member, ...) to the sorted set KEYS[1]
/// with `ZADD NX`, once per token KEYS[2].
const ZADD_ONCE: &str = "if redis.call('SET', KEYS[2], 1, 'NX', 'EX', 600) then \
     return redis.call('ZADD', KEYS[1], 'NX', unpack(ARGV)) end return 0";

/// A list push or a ZADD becomes its token-guarded script; a move back
/// (already a script) gets the token as its third key.
fn guarded(restore: Cmd, token: &str) -> Cmd {
    let args: Vec<&[u8]> = restore.arg_bytes().collect();
    let name = args[0];
    let token_of = |key: &[u8]| token_key(key, token);
    if name == b"LPUSH" || name == b"RPUSH" {
        let key = args[1];
        let Some(token) = token_of(key) else {
            return restore;
        };
        let mut script = cmd("EVAL");
        script
            .arg(PUSH_ONCE)
            .arg(2)
            .arg(key)
            .arg(token)
            .arg(name)
            .args(args[2..].iter().copied());
        script
    } else if name == b"ZADD" {
        let key = args[1];
        let Some(token) = token_of(key) else {
            return restore;
        };
        let mut script = cmd("EVAL");
        script
            .arg(ZADD_ONCE)
            .arg(2)
            .arg(key)
            .arg(token)
            .args(args[2..].iter().copied());
        script
    } else if name == b"EVAL" {
        // EVAL MOVE_BACK 2 src dst count item push
        let Some(token) = token_of(args[3]) else {
            return restore;
        };
        let mut script = cmd("EVAL");
        script
            .arg(MOVE_BACK_ONCE)
            .arg(3)
            .arg(args[3])
            .arg(args[4])
            .arg(token)
            .args(args[5..].iter().copied());
        script
    } else {
        restore
    }
}

/// [`MOVE_BACK`] once per token KEYS[3].
const MOVE_BACK_ONCE: &str =
    "if not redis.call('SET', KEYS[3], 1, 'NX', 'EX', 600) then return 0 end \
     if redis.call('LREM', KEYS[2], ARGV[1], ARGV[2]) > 0 then \
     return redis.call(ARGV[3], KEYS[1], ARGV[2]) end return 0";

/// The token's key, in `key`'s cluster slot: `key`'s own hash tag kept,
/// or `key` made the tag. `None` for a key with braces but no tag (such as
/// `a{}b`), whose slot no other key name shares: its restore goes unguarded.
fn token_key(key: &[u8], token: &str) -> Option<Vec<u8>> {
    let open = key.iter().position(|&b| b == b'{');
    let close = |open: usize| key[open + 1..].iter().position(|&b| b == b'}');
    let mut out = Vec::with_capacity(key.len() + token.len() + 24);
    match open.map(|open| (open, close(open))) {
        // A tag: kept as it is.
        Some((_, Some(len))) if len > 0 => out.extend_from_slice(key),
        // No brace at all: the key itself becomes the tag.
        None if !key.contains(&b'}') => {
            out.push(b'{');
            out.extend_from_slice(key);
            out.push(b'}');
        }
        _ => return None,
    }
    out.extend_from_slice(b":greenhub-restore:");
    out.extend_from_slice(token.as_bytes());
    Some(out)
}

fn plan_once(args: &[Vec<u8>], reply: Value) -> Option<(OrphanedItem, Cmd)> {
    let name = String::from_utf8_lossy(args.first()?).to_uppercase();
    let word = |i: usize| {
        args.get(i)
            .map(|w| String::from_utf8_lossy(w).to_uppercase())
            .unwrap_or_default()
    };
    let restore = match (name.as_str(), &reply) {
        (_, Value::Nil | Value::Error(_)) => return None,
        ("BRPOP" | "BLPOP", Value::Array(kv)) => {
            let [key, value] = [kv.first()?, kv.get(1)?].map(bytes);
            let push = if name == "BRPOP" { "RPUSH" } else { "LPUSH" };
            cmd(push).arg(key?).arg(value?).clone()
        }
        ("BLMPOP", Value::Array(kv)) => {
            let key = bytes(kv.first()?)?;
            let Value::Array(items) = kv.get(1)? else {
                return None;
            };
            // BLMPOP timeout numkeys key.. LEFT|RIGHT [COUNT c]: the end
            // is the word right after the keys (a key may be named `left`).
            let numkeys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            let push = match word(3usize.checked_add(numkeys)?).as_str() {
                "LEFT" => "LPUSH",
                "RIGHT" => "RPUSH",
                _ => return None,
            };
            let mut restore = cmd(push);
            restore.arg(key);
            for item in items.iter().rev() {
                restore.arg(bytes(item)?);
            }
            restore
        }
        ("BRPOPLPUSH", _) => move_back(args.get(1)?, args.get(2)?, "RIGHT", "LEFT", &reply)?,
        ("BLMOVE", _) => move_back(args.get(1)?, args.get(2)?, &word(3), &word(4), &reply)?,
        ("BZPOPMIN" | "BZPOPMAX", Value::Array(kms)) => {
            let key = bytes(kms.first()?)?;
            let member = bytes(kms.get(1)?)?;
            let score = score(kms.get(2)?)?;
            cmd("ZADD").arg(key).arg(score).arg(member).clone()
        }
        ("BZMPOP", Value::Array(kv)) => {
            let key = bytes(kv.first()?)?;
            let mut restore = cmd("ZADD");
            restore.arg(key);
            for pair in pairs(kv.get(1)?) {
                let (member, score_value) = pair?;
                restore.arg(score(&score_value)?).arg(bytes(&member)?);
            }
            restore
        }
        _ => return None,
    };
    Some((
        OrphanedItem {
            command: args.to_vec(),
            reply,
        },
        restore,
    ))
}

/// The script call that undoes a move from `src`'s `from` end to `dst`'s
/// `to` end.
fn move_back(src: &[u8], dst: &[u8], from: &str, to: &str, reply: &Value) -> Option<Cmd> {
    let item = bytes(reply)?;
    let count = if to == "LEFT" { "1" } else { "-1" };
    let push = if from == "LEFT" { "LPUSH" } else { "RPUSH" };
    Some(
        cmd("EVAL")
            .arg(MOVE_BACK)
            .arg(2)
            .arg(src)
            .arg(dst)
            .arg(count)
            .arg(item)
            .arg(push)
            .clone(),
    )
}

/// A member/score list as RESP2 (`[m, s]` arrays) or RESP3 (a map, or
/// arrays of a bulk and a double) sends it.
fn pairs(list: &Value) -> Vec<Option<(Value, Value)>> {
    match list {
        Value::Array(items) => items
            .iter()
            .map(|pair| match pair {
                Value::Array(ms) if ms.len() == 2 => Some((ms[0].clone(), ms[1].clone())),
                _ => None,
            })
            .collect(),
        Value::Map(entries) => entries.iter().cloned().map(Some).collect(),
        _ => vec![None],
    }
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Bulk(bytes) => Some(bytes.clone()),
        Value::Status(text) => Some(text.clone().into_bytes()),
        Value::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// A score as ZADD takes it back: the server's own digits (RESP2), or a
/// RESP3 double written so that it parses to the same `f64`.
fn score(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Double(d) if d.is_infinite() => Some(if *d > 0.0 {
            b"+inf".to_vec()
        } else {
            b"-inf".to_vec()
        }),
        Value::Double(d) => Some(format!("{d:?}").into_bytes()),
        other => bytes(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn bulk(text: &str) -> Value {
        Value::Bulk(text.as_bytes().to_vec())
    }

    fn restore(words: &[&str], reply: Value) -> Option<Vec<String>> {
        plan_once(&args(words), reply).map(|(_, cmd)| {
            cmd.arg_bytes()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
    }

    #[test]
    fn each_pop_is_undone_at_the_end_it_left() {
        let kv = Value::Array(vec![bulk("q"), bulk("x")]);
        assert_eq!(
            restore(&["BRPOP", "q", "1"], kv.clone()).unwrap(),
            ["RPUSH", "q", "x"]
        );
        assert_eq!(
            restore(&["blpop", "q", "1"], kv).unwrap(),
            ["LPUSH", "q", "x"]
        );
        let many = Value::Array(vec![bulk("q"), Value::Array(vec![bulk("a"), bulk("b")])]);
        assert_eq!(
            restore(&["BLMPOP", "1", "1", "q", "LEFT", "COUNT", "2"], many).unwrap(),
            ["LPUSH", "q", "b", "a"]
        );
        let from_left = Value::Array(vec![bulk("left"), Value::Array(vec![bulk("c")])]);
        assert_eq!(
            restore(&["BLMPOP", "1", "1", "left", "RIGHT"], from_left.clone()).unwrap(),
            ["RPUSH", "left", "c"]
        );
        assert_eq!(
            restore(
                &["blmpop", "1", "2", "right", "left", "left", "count", "1"],
                from_left.clone()
            )
            .unwrap(),
            ["LPUSH", "left", "c"]
        );
        assert!(restore(&["BLMPOP", "1", "2", "left", "RIGHT"], from_left.clone()).is_none());
        assert!(restore(&["BLMPOP", "1", "x", "q", "LEFT"], from_left).is_none());
        let kms = Value::Array(vec![bulk("z"), bulk("m"), Value::Double(1.5)]);
        assert_eq!(
            restore(&["BZPOPMIN", "z", "1"], kms).unwrap(),
            ["ZADD", "z", "1.5", "m"]
        );
        let moved = restore(&["BLMOVE", "src", "dst", "RIGHT", "LEFT", "1"], bulk("x")).unwrap();
        assert_eq!(moved[2..], ["2", "src", "dst", "1", "x", "RPUSH"]);
        let moved = restore(&["BRPOPLPUSH", "src", "dst", "1"], bulk("x")).unwrap();
        assert_eq!(moved[2..], ["2", "src", "dst", "1", "x", "RPUSH"]);
    }

    #[test]
    fn a_push_back_is_guarded_by_a_token_in_the_list_slot() {
        let kv = Value::Array(vec![bulk("q"), bulk("x")]);
        let (_, cmd) = plan(&args(&["BRPOP", "q", "1"]), kv, "t1").unwrap();
        let words: Vec<String> = cmd
            .arg_bytes()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert_eq!(words[0], "EVAL");
        assert_eq!(
            words[2..],
            ["2", "q", "{q}:greenhub-restore:t1", "RPUSH", "x"]
        );
        let kms = Value::Array(vec![bulk("z"), bulk("m"), bulk("2.5")]);
        let (_, cmd) = plan(&args(&["BZPOPMAX", "z", "1"]), kms, "t2").unwrap();
        let words: Vec<String> = cmd
            .arg_bytes()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert_eq!((words[0].as_str(), words[1].as_str()), ("EVAL", ZADD_ONCE));
        assert_eq!(
            words[2..],
            ["2", "z", "{z}:greenhub-restore:t2", "2.5", "m"]
        );
        assert_eq!(
            token_key(b"{user}:q", "t").unwrap(),
            b"{user}:q:greenhub-restore:t"
        );
        assert_eq!(token_key(b"a{}b", "t"), None);
        assert_eq!(token_key(b"a}b", "t"), None);
    }

    #[test]
    fn nothing_popped_means_nothing_to_undo() {
        assert!(restore(&["BRPOP", "q", "1"], Value::Nil).is_none());
        assert!(restore(&["XREADGROUP", "GROUP", "g", "c", "BLOCK", "10"], bulk("x")).is_none());
        assert!(restore(&["WAIT", "1", "10"], Value::Int(0)).is_none());
    }
}
