//! Pipelines on a cluster: the caller's commands become units for
//! `dispatch.rs`, which sends each node its share at once (one coroutine
//! per node); the replies come back here and are put in the caller's order.
//! A single command is a pipeline of one ([`Batch`]).
//!
//! - A command whose keys share a slot is a unit of its own, routed by the
//!   slot and redirected on its own MOVED or ASK.
//! - A keyless command joins the unit before it, so `INCR k` then
//!   `WAIT 1 0` stay on one connection (WAIT counts that connection's
//!   writes); first in a pipeline, it goes to any master.
//! - MGET, MSET, DEL, EXISTS, UNLINK and TOUCH across slots become one unit
//!   per slot, combined back into one reply; DBSIZE, KEYS, FLUSHDB, ... one
//!   unit per master.
//! - MULTI ... EXEC ([`run`] with `atomic`, from `Pipeline::atomic`) is one unit:
//!   all its keys must share a slot (else CROSSSLOT, nothing sent), and a
//!   MOVED or ASK sends the whole transaction again, ASKING first.
//!
//! A connection failure fails the whole pipeline, as on one server (some
//! commands may have run); a read-only unit is resent first. Error replies
//! stay in place as `Value::Error`. See `docs/cluster.md`, "Pipelines".

use std::rc::Rc;

use super::dispatch::{Target, Unit};
use super::routing::Route;
use super::split::{combine, split, Combine};
use super::Shared;
use crate::cmd::{cmd, Cmd};
use crate::error::{Error, Result, ServerError};
use crate::resp::Value;

/// Where one of the caller's commands finds its reply.
#[derive(Debug)]
enum Source {
    /// Reply `index` of unit `unit`.
    At { unit: usize, index: usize },
    /// The combination of several units' (first) replies.
    Combined {
        how: Combine,
        /// Each part's unit and its keys' positions.
        parts: Vec<(usize, Vec<usize>)>,
        keys: usize,
    },
}

/// Commands turned into units, and how to read their replies back.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    units: Vec<Unit>,
    sources: Vec<Source>,
}

impl Batch {
    /// Adds one of the caller's commands; `pipelined` lets a keyless one
    /// join the unit before it.
    pub(crate) fn add(
        &mut self,
        shared: &Rc<Shared>,
        command: &Cmd,
        pipelined: bool,
    ) -> Result<()> {
        let plan = shared.plan(command)?;
        match plan.route {
            Route::Slot(slot) => self.push(command, Target::Slot(slot), plan.readonly),
            Route::AnyMaster => {
                let joins = pipelined
                    && matches!(self.sources.last(),
                        Some(Source::At { unit, .. }) if unit + 1 == self.units.len());
                let unit = self.units.len().wrapping_sub(1);
                match self.units.last_mut() {
                    Some(last) if joins => {
                        last.cmds.push(command.clone());
                        last.safe &= plan.readonly;
                        self.sources.push(Source::At {
                            unit,
                            index: last.cmds.len() - 1,
                        });
                    }
                    _ => self.push(command, Target::AnyMaster, plan.readonly),
                }
            }
            Route::AllMasters(how) => {
                let mut parts = Vec::new();
                for master in shared.masters_now()? {
                    parts.push((self.units.len(), Vec::new()));
                    self.units.push(Unit {
                        cmds: vec![command.clone()],
                        target: Target::Node(master),
                        safe: plan.readonly,
                    });
                }
                self.sources.push(Source::Combined {
                    how,
                    parts,
                    keys: 0,
                });
            }
            Route::Split(how) => {
                let mut parts = Vec::new();
                let mut keys = 0;
                for part in split(command) {
                    keys += part.positions.len();
                    parts.push((self.units.len(), part.positions));
                    self.units.push(Unit {
                        cmds: vec![part.cmd],
                        target: Target::Slot(part.slot),
                        safe: plan.readonly,
                    });
                }
                self.sources.push(Source::Combined { how, parts, keys });
            }
        }
        Ok(())
    }

    fn push(&mut self, command: &Cmd, target: Target, safe: bool) {
        self.sources.push(Source::At {
            unit: self.units.len(),
            index: 0,
        });
        self.units.push(Unit {
            cmds: vec![command.clone()],
            target,
            safe,
        });
    }

    /// Sends every unit and returns one reply per command added, in order;
    /// the first unit that failed at the connection level fails the batch.
    pub(crate) fn run(self, shared: &Rc<Shared>) -> Result<Vec<Value>> {
        let mut results: Vec<Vec<Value>> = Vec::with_capacity(self.units.len());
        for result in shared.execute(self.units) {
            results.push(result?);
        }
        let mut take = |unit: usize, index: usize| {
            results
                .get_mut(unit)
                .and_then(|r| r.get_mut(index))
                .map(|value| std::mem::replace(value, Value::Nil))
                .unwrap_or(Value::Nil)
        };
        Ok(self
            .sources
            .into_iter()
            .map(|source| match source {
                Source::At { unit, index } => take(unit, index),
                Source::Combined { how, parts, keys } => {
                    let replies = parts
                        .into_iter()
                        .map(|(unit, positions)| (positions, take(unit, 0)))
                        .collect();
                    combine(how, replies, keys)
                }
            })
            .collect())
    }
}

/// Runs a pipeline: with `atomic`, the commands wrapped in MULTI and EXEC
/// as one transaction; one reply per command sent (MULTI's and EXEC's too).
pub(crate) fn run(shared: &Rc<Shared>, cmds: &[Cmd], atomic: bool) -> Result<Vec<Value>> {
    if atomic {
        let mut wrapped = Vec::with_capacity(cmds.len() + 2);
        wrapped.push(cmd("MULTI"));
        wrapped.extend(cmds.iter().cloned());
        wrapped.push(cmd("EXEC"));
        return self::atomic(shared, wrapped);
    }
    let mut batch = Batch::default();
    for command in cmds {
        batch.add(shared, command, true)?;
    }
    batch.run(shared)
}

/// MULTI, the commands, EXEC: one unit bound for the slot all keys share.
fn atomic(shared: &Rc<Shared>, cmds: Vec<Cmd>) -> Result<Vec<Value>> {
    let mut target = Target::AnyMaster;
    let mut first_keyed: Option<&Cmd> = None;
    for command in &cmds[1..cmds.len() - 1] {
        match shared.plan(command)?.route {
            Route::AnyMaster => {}
            Route::Slot(slot) => match (&target, first_keyed) {
                (Target::Slot(s), Some(first)) if *s != slot => {
                    return Err(cross_slot_transaction(first, command));
                }
                _ => {
                    target = Target::Slot(slot);
                    first_keyed.get_or_insert(command);
                }
            },
            Route::Split(_) => {
                return Err(cross_slot_transaction(command, command));
            }
            Route::AllMasters(_) => {
                return Err(Error::Usage(format!(
                    "{} inside a cluster transaction would run on one master only: send it on its own",
                    name(command)
                )));
            }
        }
    }
    let replies = cmds.len();
    let mut results = shared.execute(vec![Unit {
        cmds,
        target,
        safe: false,
    }]);
    let values = results.pop().expect("one unit, one result")?;
    if values.len() != replies {
        return Err(Error::Protocol(format!(
            "a transaction of {replies} replies came back with {}",
            values.len()
        )));
    }
    Ok(values)
}

fn name(command: &Cmd) -> String {
    String::from_utf8_lossy(command.arg_bytes().next().unwrap_or_default()).into_owned()
}

/// The CROSSSLOT error for a transaction whose commands' keys span slots.
fn cross_slot_transaction(a: &Cmd, b: &Cmd) -> Error {
    let describe = |c: &Cmd| {
        let args: Vec<String> = c
            .arg_bytes()
            .take(3)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        args.join(" ")
    };
    Error::Server(ServerError {
        code: "CROSSSLOT".into(),
        message: format!(
            "Keys in request don't hash to the same slot (a cluster transaction runs on one \
             slot's master: `{}` and `{}` disagree; nothing was sent; put a common {{hash tag}} \
             in the keys)",
            describe(a),
            describe(b)
        ),
        raw: None,
    })
}
