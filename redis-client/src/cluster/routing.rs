//! Routing: where one command goes, decided before anything is sent.
//! `mod.rs` and `pipeline.rs` call [`Shared::plan`] for each command and
//! hand the resulting units to `dispatch.rs`.
//!
//! 1. The keys are found (`keys.rs`; a command the table does not know is
//!    asked about once with `COMMAND INFO`, then `COMMAND GETKEYS` if its
//!    keys move).
//! 2. All keys in one slot: [`Route::Slot`]. No key: [`Route::AnyMaster`]
//!    (masters in turn), except the commands about the whole data set
//!    (FLUSHDB, DBSIZE, KEYS, SCRIPT LOAD, ...): [`Route::AllMasters`], their
//!    replies combined.
//! 3. Keys in several slots: MGET, MSET, DEL, EXISTS, UNLINK and TOUCH are
//!    split into one command per slot ([`split`], [`Route::Split`]) and their
//!    replies put back in the caller's order ([`combine`]); a split MSET is
//!    no longer atomic across slots. Any other command is refused with a
//!    CROSSSLOT error naming two keys and their slots, before it is sent:
//!    the same code the server would answer.
//! 4. Commands that need one connection for several calls (MULTI, WATCH,
//!    SUBSCRIBE, ...) are refused with the method to use instead.
//!
//! See `docs/cluster.md`, "Routing".

use std::rc::Rc;

use super::keys::{find_keys, keys_by_position, Found, Spec};
use super::slots::key_slot;
use super::Shared;
use crate::cmd::{cmd, Cmd};
use crate::error::{Error, Result, ServerError};
use crate::resp::Value;

/// Where a command goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// The master of this slot.
    Slot(u16),
    /// Any master.
    AnyMaster,
    /// Every master, the replies combined so.
    AllMasters(Combine),
    /// One command per slot, the replies combined so.
    Split(Combine),
}

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

/// A command's route and whether it may be sent again after an unknown
/// outcome (it only reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) route: Route,
    pub(crate) readonly: bool,
}

/// One per-slot piece of a split command.
#[derive(Debug)]
pub(crate) struct Part {
    pub(crate) slot: u16,
    pub(crate) cmd: Cmd,
    /// Where this part's keys were in the original command (for MGET).
    pub(crate) positions: Vec<usize>,
}

/// What a command the key table does not know turned out to be.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Learned {
    spec: Spec,
    readonly: bool,
}

impl Shared {
    /// The route of `cmd` (steps 1 to 4 above).
    pub(crate) fn plan(self: &Rc<Self>, cmd: &Cmd) -> Result<Plan> {
        let args: Vec<&[u8]> = cmd.arg_bytes().collect();
        let name = args
            .first()
            .ok_or_else(|| Error::Usage("an empty command".into()))?
            .to_ascii_uppercase();
        refuse(&name, &args)?;
        let (keys, readonly) = match find_keys(&args) {
            Found::Known { keys, readonly } => (keys, readonly),
            Found::Unknown => self.learn_keys(&name, &args)?,
        };
        let route = match keys.split_first() {
            None => match fan_out(&name, &args) {
                Some(combine) => Route::AllMasters(combine),
                None => Route::AnyMaster,
            },
            Some((first, rest)) => {
                let slot = key_slot(first);
                match rest.iter().find(|k| key_slot(k) != slot) {
                    None => Route::Slot(slot),
                    Some(other) => match splittable(&name) {
                        Some(combine) => Route::Split(combine),
                        None => return Err(cross_slot(&name, first, other)),
                    },
                }
            }
        };
        Ok(Plan { route, readonly })
    }

    /// The keys of a command the table does not know: `COMMAND INFO` once
    /// per name (cached), and `COMMAND GETKEYS` each time for movable keys.
    fn learn_keys<'a>(
        self: &Rc<Self>,
        name: &[u8],
        args: &[&'a [u8]],
    ) -> Result<(Vec<&'a [u8]>, bool)> {
        let cached = self.learned.borrow().get(name).copied();
        let learned = match cached {
            Some(learned) => learned,
            None => {
                let info = self.ask_any(cmd("COMMAND").arg("INFO").arg(name))?;
                let learned = parse_command_info(info);
                self.learned.borrow_mut().insert(name.to_vec(), learned);
                learned
            }
        };
        let keys = match learned.spec {
            Spec::Keys(first, last, step) => keys_by_position(args, first, last, step),
            Spec::Movable => {
                let mut getkeys = cmd("COMMAND");
                getkeys.arg("GETKEYS").args(args);
                match self.ask_any(&getkeys) {
                    Ok(Value::Array(keys)) => {
                        // The server names the keys; find them among our
                        // arguments so the borrowed slices stay ours.
                        let keys: Vec<Vec<u8>> = keys
                            .into_iter()
                            .filter_map(|k| match k {
                                Value::Bulk(bytes) => Some(bytes),
                                _ => None,
                            })
                            .collect();
                        args[1..]
                            .iter()
                            .copied()
                            .filter(|a| keys.iter().any(|k| k == a))
                            .collect()
                    }
                    _ => Vec::new(),
                }
            }
            Spec::NoKeys | Spec::Sub => Vec::new(),
        };
        Ok((keys, learned.readonly))
    }
}

/// `COMMAND INFO name` → its key positions and readonly flag. An unknown
/// command (a nil entry) has no keys; the server will refuse it itself.
fn parse_command_info(info: Value) -> Learned {
    let unknown = Learned {
        spec: Spec::NoKeys,
        readonly: false,
    };
    let Value::Array(mut entries) = info else {
        return unknown;
    };
    let Some(Value::Array(fields)) = entries.pop() else {
        return unknown;
    };
    let int = |i: usize| match fields.get(i) {
        Some(Value::Int(n)) => *n,
        _ => 0,
    };
    let flags: Vec<Vec<u8>> = match fields.get(2) {
        Some(Value::Array(flags) | Value::Set(flags)) => flags
            .iter()
            .filter_map(|f| match f {
                Value::Status(s) => Some(s.as_bytes().to_vec()),
                Value::Bulk(b) => Some(b.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let has = |flag: &[u8]| flags.iter().any(|f| f.eq_ignore_ascii_case(flag));
    let (first, last, step) = (int(3), int(4), int(5));
    let spec = if has(b"movablekeys") {
        Spec::Movable
    } else if first <= 0 {
        Spec::NoKeys
    } else {
        Spec::Keys(
            first.clamp(0, 255) as u8,
            last.clamp(-128, 127) as i8,
            step.clamp(1, 255) as u8,
        )
    };
    Learned {
        spec,
        readonly: has(b"readonly"),
    }
}

/// Refuses the commands a cluster client cannot run as one call (step 4).
fn refuse(name: &[u8], args: &[&[u8]]) -> Result<()> {
    let why = match name {
        b"MULTI" | b"EXEC" | b"DISCARD" | b"WATCH" | b"UNWATCH" => {
            "a transaction needs one connection to one slot's master: use an atomic pipeline \
             (pipe().atomic()) or ClusterClient::transaction"
        }
        b"SUBSCRIBE" | b"PSUBSCRIBE" | b"SSUBSCRIBE" | b"UNSUBSCRIBE" | b"PUNSUBSCRIBE"
        | b"SUNSUBSCRIBE" | b"MONITOR" => {
            "a subscription needs a connection of its own: use ClusterClient::pubsub"
        }
        b"SELECT" => "Redis Cluster has only database 0",
        b"SCAN" => "SCAN must run on every master: use ClusterClient::scan_match",
        b"ASKING" | b"READONLY" | b"READWRITE" => {
            "the cluster client sends ASKING, READONLY and READWRITE itself"
        }
        _ => return Ok(()),
    };
    let shown = String::from_utf8_lossy(args[0]);
    Err(Error::Usage(format!(
        "{shown} through a ClusterClient: {why}"
    )))
}

/// The keyless commands about the whole data set, and how their replies
/// from every master combine.
fn fan_out(name: &[u8], args: &[&[u8]]) -> Option<Combine> {
    let sub = args.get(1).map(|s| s.to_ascii_uppercase());
    match (name, sub.as_deref()) {
        (b"FLUSHDB" | b"FLUSHALL", _) => Some(Combine::AllOk),
        (b"DBSIZE", _) => Some(Combine::Sum),
        (b"KEYS", _) => Some(Combine::Concat),
        (b"SCRIPT", Some(b"LOAD")) => Some(Combine::First),
        (b"SCRIPT", Some(b"FLUSH")) => Some(Combine::AllOk),
        (b"SCRIPT", Some(b"EXISTS")) => Some(Combine::Least),
        (b"FUNCTION", Some(b"LOAD")) => Some(Combine::First),
        (b"FUNCTION", Some(b"DELETE" | b"FLUSH" | b"RESTORE")) => Some(Combine::AllOk),
        _ => None,
    }
}

/// The multi-key commands split by slot, and how their parts combine.
fn splittable(name: &[u8]) -> Option<Combine> {
    match name {
        b"MGET" => Some(Combine::Mget),
        b"MSET" => Some(Combine::AllOk),
        b"DEL" | b"EXISTS" | b"UNLINK" | b"TOUCH" => Some(Combine::Sum),
        _ => None,
    }
}

/// The CROSSSLOT error, with the keys that disagree.
fn cross_slot(name: &[u8], a: &[u8], b: &[u8]) -> Error {
    Error::Server(ServerError {
        code: "CROSSSLOT".into(),
        message: format!(
            "Keys in request don't hash to the same slot ({} on a cluster: {:?} is in slot {}, \
             {:?} in slot {}; nothing was sent; put a common {{hash tag}} in the keys to keep \
             them together)",
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(a),
            key_slot(a),
            String::from_utf8_lossy(b),
            key_slot(b),
        ),
    })
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

    #[test]
    fn command_info_teaches_positions_and_flags() {
        let info = Value::Array(vec![Value::Array(vec![
            Value::Bulk(b"mod.get".to_vec()),
            Value::Int(2),
            Value::Array(vec![Value::Status("readonly".into())]),
            Value::Int(1),
            Value::Int(1),
            Value::Int(1),
        ])]);
        let learned = parse_command_info(info);
        assert_eq!(learned.spec, Spec::Keys(1, 1, 1));
        assert!(learned.readonly);
        let unknown = parse_command_info(Value::Array(vec![Value::Nil]));
        assert_eq!(unknown.spec, Spec::NoKeys);
    }

    #[test]
    fn transactions_and_subscriptions_are_refused_with_the_method_to_use() {
        let err = refuse(b"MULTI", &[b"multi"]).unwrap_err().to_string();
        assert!(err.contains("atomic pipeline"), "{err}");
        let err = refuse(b"SUBSCRIBE", &[b"SUBSCRIBE", b"c"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("pubsub"), "{err}");
        assert!(refuse(b"GET", &[b"GET", b"k"]).is_ok());
    }
}
