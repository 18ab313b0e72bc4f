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
pub(crate) use super::split::Combine;
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

/// A command's route and whether it may be sent again after an unknown
/// outcome (it only reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) route: Route,
    pub(crate) readonly: bool,
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
        // A blocking read (`readonly, blocking`, as XREAD) is not safe to
        // repeat: the same rule as the built-in table.
        readonly: has(b"readonly") && !has(b"blocking"),
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
        raw: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
