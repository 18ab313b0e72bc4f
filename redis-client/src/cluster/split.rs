//! Multi-key commands across slots: MGET, MSET, DEL, EXISTS, UNLINK and
//! TOUCH are cut into one command per slot ([`split`]); the replies of the
//! parts, or of a command sent to every master (DBSIZE, KEYS, FLUSHDB, ...),
//! are put back together into the one reply the caller expects
//! ([`combine`]). `routing.rs` decides when; `pipeline.rs` sends the parts
//! as units of their own. See `docs/cluster.md`, "Routing".

use super::slots::key_slot;
use crate::cmd::{cmd, Cmd};
use crate::error::ServerError;
use crate::resp::Value;

/// How replies from several nodes become one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Combine {
    /// MGET: each part's values back at their keys' positions.
    Mget,
    /// `OK` if every part said OK (MSET, FLUSHDB, SCRIPT FLUSH).
    AllOk,
    /// The sum of the integer replies (DEL, EXISTS, UNLINK, TOUCH, DBSIZE).
    Sum,
    /// The arrays one after another (KEYS).
    Concat,
    /// The first reply; all are expected equal (SCRIPT LOAD).
    First,
    /// Element by element, the smallest (SCRIPT EXISTS: 1 only if every
    /// master has the script).
    Least,
}

/// One per-slot piece of a split command.
#[derive(Debug)]
pub(crate) struct Part {
    pub(crate) slot: u16,
    pub(crate) cmd: Cmd,
    /// Where this part's keys were in the original command (for MGET).
    pub(crate) positions: Vec<usize>,
}

/// Splits a splittable command into one command per slot, slots in the
/// order their first key appears. MSET's values go with their keys.
pub(crate) fn split(original: &Cmd) -> Vec<Part> {
    let args: Vec<&[u8]> = original.arg_bytes().collect();
    let name = args[0];
    let pairs = name.eq_ignore_ascii_case(b"MSET");
    let step = if pairs { 2 } else { 1 };
    let mut parts: Vec<Part> = Vec::new();
    for (position, at) in (1..args.len()).step_by(step).enumerate() {
        let slot = key_slot(args[at]);
        let index = match parts.iter().position(|p| p.slot == slot) {
            Some(i) => i,
            None => {
                parts.push(Part {
                    slot,
                    cmd: cmd(&String::from_utf8_lossy(name)),
                    positions: Vec::new(),
                });
                parts.len() - 1
            }
        };
        let part = &mut parts[index];
        part.cmd.arg(args[at]);
        if pairs {
            if let Some(value) = args.get(at + 1) {
                part.cmd.arg(*value);
            }
        }
        part.positions.push(position);
    }
    parts
}

/// Combines the replies of a split or fanned-out command: each reply with
/// the positions of its part's keys (unused but for MGET), and the number
/// of keys in all. An error reply from any part is the reply.
pub(crate) fn combine(how: Combine, replies: Vec<(Vec<usize>, Value)>, keys: usize) -> Value {
    if let Some(err) = replies.iter().find_map(|(_, v)| match v {
        Value::Error(err) => Some(err.clone()),
        _ => None,
    }) {
        return Value::Error(err);
    }
    let unexpected = |what: &Value| {
        Value::Error(ServerError {
            code: "ERR".into(),
            message: format!("unexpected reply from a cluster node: {what:?}"),
            raw: None,
        })
    };
    match how {
        Combine::Mget => {
            let mut values = vec![Value::Nil; keys];
            for (positions, reply) in replies {
                let Value::Array(items) = reply else {
                    return unexpected(&reply);
                };
                for (position, value) in positions.into_iter().zip(items) {
                    if let Some(slot) = values.get_mut(position) {
                        *slot = value;
                    }
                }
            }
            Value::Array(values)
        }
        Combine::AllOk => Value::Status("OK".into()),
        Combine::Sum => {
            let mut sum = 0i64;
            for (_, reply) in &replies {
                match reply {
                    Value::Int(n) => sum += n,
                    other => return unexpected(other),
                }
            }
            Value::Int(sum)
        }
        Combine::Concat => {
            let mut all = Vec::new();
            for (_, reply) in replies {
                match reply {
                    Value::Array(items) | Value::Set(items) => all.extend(items),
                    other => return unexpected(&other),
                }
            }
            Value::Array(all)
        }
        Combine::First => replies.into_iter().next().map_or(Value::Nil, |(_, v)| v),
        Combine::Least => {
            let mut least: Option<Vec<Value>> = None;
            for (_, reply) in replies {
                let Value::Array(items) = reply else {
                    return unexpected(&reply);
                };
                least = Some(match least {
                    None => items,
                    Some(so_far) => so_far
                        .into_iter()
                        .zip(items)
                        .map(|pair| match pair {
                            (Value::Int(a), Value::Int(b)) => Value::Int(a.min(b)),
                            (a, _) => a,
                        })
                        .collect(),
                });
            }
            Value::Array(least.unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mset() -> Cmd {
        let mut mset = cmd("MSET");
        mset.arg("a")
            .arg("1")
            .arg("b")
            .arg("2")
            .arg("{a}c")
            .arg("3");
        mset
    }

    #[test]
    fn a_split_keeps_values_with_their_keys_and_slots_in_first_seen_order() {
        let parts = split(&mset());
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].slot, key_slot(b"a"));
        let args: Vec<&[u8]> = parts[0].cmd.arg_bytes().collect();
        assert_eq!(args, [&b"MSET"[..], b"a", b"1", b"{a}c", b"3"]);
        assert_eq!(parts[0].positions, [0, 2]);
        assert_eq!(parts[1].positions, [1]);
    }

    #[test]
    fn mget_replies_go_back_to_their_keys_positions() {
        let reply = combine(
            Combine::Mget,
            vec![
                (vec![0, 2], Value::Array(vec![Value::Int(1), Value::Nil])),
                (vec![1], Value::Array(vec![Value::Int(2)])),
            ],
            3,
        );
        assert_eq!(
            reply,
            Value::Array(vec![Value::Int(1), Value::Int(2), Value::Nil])
        );
    }

    #[test]
    fn an_error_from_any_part_is_the_reply() {
        let err = ServerError::parse("WRONGTYPE no");
        let reply = combine(
            Combine::Sum,
            vec![
                (vec![0], Value::Int(1)),
                (vec![1], Value::Error(err.clone())),
            ],
            2,
        );
        assert_eq!(reply, Value::Error(err));
    }

    #[test]
    fn sums_and_least_combine_as_documented() {
        let sum = combine(
            Combine::Sum,
            vec![(vec![], Value::Int(2)), (vec![], Value::Int(3))],
            0,
        );
        assert_eq!(sum, Value::Int(5));
        let least = combine(
            Combine::Least,
            vec![
                (vec![], Value::Array(vec![Value::Int(1), Value::Int(1)])),
                (vec![], Value::Array(vec![Value::Int(1), Value::Int(0)])),
            ],
            0,
        );
        assert_eq!(least, Value::Array(vec![Value::Int(1), Value::Int(0)]));
    }
}
