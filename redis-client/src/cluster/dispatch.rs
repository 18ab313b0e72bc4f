//! Sending: units of commands to the nodes that serve them, again and again
//! until each has a final reply or the call's deadline passes. Every call of
//! a [`ClusterClient`](super::ClusterClient), one command or a pipeline,
//! comes down to [`Shared::execute`].
//!
//! A [`Unit`] is what must stay together on one connection: one command; a
//! command and the keyless ones after it in a pipeline (`INCR k` then
//! `WAIT 1 0`); or a whole MULTI ... EXEC. One *round*:
//!
//! ```text
//!   resolve       each unfinished unit -> a node: the redirect it was given,
//!                 else the slot map (the master of its slot, or any master)
//!   group         units by node, in the caller's order
//!   send          one pooled connection per node, all its units in one
//!                 write; several nodes at once, one coroutine each (send.rs)
//!   judge         per unit, the first cluster error among its replies:
//!                   MOVED  -> patch the map, resend there, refresh soon
//!                   ASK    -> resend there after ASKING (map unchanged)
//!                   TRYAGAIN, CLUSTERDOWN, LOADING, ... -> pause, resend
//!                 per node, a connection failure:
//!                   not sent (connect failed) -> retire the pool, refresh,
//!                     pause, resend
//!                   sent, reply lost -> reads are resent; anything else gets
//!                     the error (it may have run: never run it twice)
//! ```
//!
//! Rounds repeat while units are unfinished. Redirections alone do not
//! pause (each unit may be redirected `max_redirects` times); every other
//! retry pauses ([`Backoff`], growing, jittered) and refreshes the map when
//! it may be stale, so a dead node is never spun on. When the deadline
//! passes, each unfinished unit gets what its last attempt got.
//! See `docs/cluster.md`, "Redirections" and "Failover".

use std::rc::Rc;
use std::time::Instant;

use super::nodes::NodePool;
use super::redirect::{duplicate, judge, shorten_blocking, Backoff, Shortened, Verdict};
use super::refresh::Hint;
use super::send::{send_all, Sent};
use super::topology::NodeAddr;
use super::Shared;
use crate::cmd::{cmd, Cmd};
use crate::error::{Error, Result};
use crate::resp::Value;

/// Commands that go to one node together.
#[derive(Debug)]
pub(crate) struct Unit {
    pub(crate) cmds: Vec<Cmd>,
    pub(crate) target: Target,
    /// Every command only reads: resent after a lost reply.
    pub(crate) safe: bool,
}

/// Where a unit goes, before any redirection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The master of this slot.
    Slot(u16),
    /// Any master (in turn).
    AnyMaster,
    /// This node (one master of a fan-out).
    Node(NodeAddr),
}

/// A unit on its way.
#[derive(Debug)]
struct Progress {
    unit: Unit,
    /// Set by MOVED or ASK: the next attempt goes there (with ASKING if
    /// `asking`).
    redirect: Option<(NodeAddr, bool)>,
    redirects: usize,
    /// The final replies (one per command), or the error.
    outcome: Option<Result<Vec<Value>>>,
    /// What the last attempt got, for when the deadline passes.
    last: Option<Result<Vec<Value>>>,
    /// A read that may go to a replica (`read_from_replicas`); cleared by
    /// any trouble, so that the next attempt asks the master.
    replica_ok: bool,
    /// This round sends it to a replica, between READONLY and READWRITE.
    via_replica: bool,
}

/// One node's share of a round: its address, its pool (with the pool's
/// generation, to retire it by) and the indexes of its units.
type Group = (NodeAddr, NodePool, Vec<usize>);

/// What judging one node's replies found.
#[derive(Debug, Default)]
struct Judged {
    /// The node failed: retire its pool, refresh the map.
    failed: bool,
    /// A MOVED came back: refresh the map in the background.
    moved: bool,
    /// The node hinted the map is stale (CLUSTERDOWN, READONLY, ...).
    stale: bool,
}

impl Shared {
    /// Runs `units` to completion: one result per unit, its replies in
    /// command order (error replies kept as values), or a connection-level
    /// error.
    pub(crate) fn execute(self: &Rc<Self>, units: Vec<Unit>) -> Vec<Result<Vec<Value>>> {
        let start = Instant::now();
        let blocking = units
            .iter()
            .flat_map(|u| &u.cmds)
            .filter_map(Cmd::server_timeout)
            .max()
            .unwrap_or_default();
        let deadline = start + self.config.retry_timeout + blocking;
        let mut backoff = Backoff::new(deadline);
        let mut work: Vec<Progress> = units
            .into_iter()
            .map(|unit| Progress {
                replica_ok: self.config.read_from_replicas
                    && unit.safe
                    && matches!(unit.target, Target::Slot(_)),
                via_replica: false,
                unit,
                redirect: None,
                redirects: 0,
                outcome: None,
                last: None,
            })
            .collect();
        self.refresh_if_due();
        if self.generation() == 0 {
            // The first call loads the map; its failure shows in the rounds.
            let _ = self.refresh(0, Hint::default(), deadline);
        }
        loop {
            let seen = self.generation();
            let (groups, unserved) = self.group(&mut work);
            let batches = groups
                .iter()
                .map(|(_, node, members)| (node.clone(), batch(&work, members)))
                .collect();
            let sent = send_all(batches);
            let mut pause = unserved;
            let mut refresh = unserved;
            let mut avoid = Vec::new();
            for ((addr, node, members), sent) in groups.into_iter().zip(sent) {
                let judged = self.judge_node(&addr, &mut work, &members, sent, start);
                if judged.moved {
                    self.moved_from(&addr);
                }
                if judged.failed {
                    self.nodes.retire(&addr, node.generation);
                    avoid.push(addr);
                }
                refresh |= judged.failed || judged.stale;
                // A unit left without a redirection is waiting for the
                // cluster: the next round comes after a pause.
                pause |= members
                    .iter()
                    .any(|&m| work[m].outcome.is_none() && work[m].redirect.is_none());
            }
            if work.iter().all(|p| p.outcome.is_some()) {
                break;
            }
            if refresh {
                let hint = Hint {
                    prefer: None,
                    avoid,
                };
                if let Err(err) = self.refresh(seen, hint, deadline) {
                    log::debug!("cluster refresh failed: {err}");
                }
            }
            if pause && !backoff.pause() {
                for p in work.iter_mut().filter(|p| p.outcome.is_none()) {
                    p.outcome = Some(p.last.take().unwrap_or_else(|| {
                        Err(Error::Cluster("the call's retry time ran out".into()))
                    }));
                }
                break;
            }
        }
        work.into_iter()
            .map(|p| p.outcome.expect("every unit finished"))
            .collect()
    }

    /// Resolves every unfinished unit to a node and groups them: the
    /// groups in order of first appearance, and whether some unit's slot
    /// has no node.
    fn group(&self, work: &mut [Progress]) -> (Vec<Group>, bool) {
        let mut groups: Vec<Group> = Vec::new();
        let mut unserved = false;
        for (i, p) in work.iter_mut().enumerate() {
            if p.outcome.is_some() {
                continue;
            }
            p.via_replica = false;
            let addr = match &p.redirect {
                Some((addr, _)) => Some(addr.clone()),
                None if p.replica_ok => match self.resolve_replica(&p.unit.target) {
                    Some(replica) => {
                        p.via_replica = true;
                        Some(replica)
                    }
                    None => self.resolve(&p.unit.target),
                },
                None => self.resolve(&p.unit.target),
            };
            let Some(addr) = addr else {
                unserved = true;
                let what = match p.unit.target {
                    Target::Slot(slot) => format!("no node serves slot {slot}"),
                    _ => "no master is known".to_owned(),
                };
                p.last = Some(Err(Error::Cluster(format!(
                    "{what} (the slot map could not be loaded, or the cluster is incomplete)"
                ))));
                continue;
            };
            match groups.iter_mut().find(|(a, _, _)| *a == addr) {
                Some((_, _, members)) => members.push(i),
                None => {
                    let node = self.nodes.pool(&addr);
                    groups.push((addr, node, vec![i]));
                }
            }
        }
        (groups, unserved)
    }

    /// A replica of a slot's shard, in turn, if the map knows one.
    fn resolve_replica(&self, target: &Target) -> Option<NodeAddr> {
        let Target::Slot(slot) = target else {
            return None;
        };
        let topology = self.topology.borrow();
        let replicas = &topology.shard(*slot)?.replicas;
        if replicas.is_empty() {
            return None;
        }
        let turn = self.next_replica.get();
        self.next_replica.set(turn.wrapping_add(1));
        Some(replicas[turn % replicas.len()].clone())
    }

    /// The node a target names in the current map.
    fn resolve(&self, target: &Target) -> Option<NodeAddr> {
        let topology = self.topology.borrow();
        match target {
            Target::Slot(slot) => topology.master(*slot).cloned(),
            Target::AnyMaster => {
                let masters = topology.masters();
                if masters.is_empty() {
                    return None;
                }
                let turn = self.next_master.get();
                self.next_master.set(turn.wrapping_add(1));
                Some(masters[turn % masters.len()].clone())
            }
            Target::Node(addr) => Some(addr.clone()),
        }
    }

    /// Judges one node's replies (see the module's table).
    fn judge_node(
        &self,
        addr: &NodeAddr,
        work: &mut [Progress],
        members: &[usize],
        sent: Sent,
        start: Instant,
    ) -> Judged {
        let mut judged = Judged::default();
        match sent {
            Sent::NotSent(err) => {
                let failed = err.is_io() || err.is_timeout();
                for &m in members {
                    let p = &mut work[m];
                    p.redirect = None;
                    p.replica_ok = false;
                    if failed {
                        p.last = Some(Err(duplicate(&err)));
                    } else {
                        p.outcome = Some(Err(duplicate(&err)));
                    }
                }
                judged.failed = failed;
            }
            Sent::Sent(Err(err)) => {
                for &m in members {
                    let p = &mut work[m];
                    p.redirect = None;
                    p.replica_ok = false;
                    // The shared retry rule (`retry.rs`): no blocking
                    // command, each a read or marked idempotent; or
                    // nothing sent.
                    let repeatable = p
                        .unit
                        .cmds
                        .iter()
                        .all(|cmd| crate::retry::repeatable_as(cmd, p.unit.safe));
                    if crate::retry::may_retry(&err, repeatable) {
                        p.last = Some(Err(duplicate(&err)));
                    } else {
                        p.outcome = Some(Err(duplicate(&err)));
                    }
                }
                judged.failed = err.is_io();
            }
            Sent::Sent(Ok(replies)) => {
                let mut replies = replies.into_iter();
                for &m in members {
                    let p = &mut work[m];
                    let asking = p.redirect.as_ref().is_some_and(|(_, asking)| *asking);
                    if asking || p.via_replica {
                        replies.next(); // ASKING's or READONLY's OK
                    }
                    let mine: Vec<Value> = replies.by_ref().take(p.unit.cmds.len()).collect();
                    if p.via_replica {
                        replies.next(); // READWRITE's OK
                    }
                    let verdict = self.judge_unit(addr, p, mine, start);
                    if verdict.is_some() {
                        p.replica_ok = false;
                    }
                    match verdict {
                        Some(Verdict::Moved { .. }) => judged.moved = true,
                        Some(Verdict::Later { refresh: true }) => judged.stale = true,
                        _ => {}
                    }
                }
            }
        }
        judged
    }

    /// Judges one unit's replies from `addr`; the cluster condition found
    /// among them, if any.
    fn judge_unit(
        &self,
        addr: &NodeAddr,
        p: &mut Progress,
        replies: Vec<Value>,
        start: Instant,
    ) -> Option<Verdict> {
        // A cluster error means the unit ran nothing only where it stands
        // for the whole unit: in a transaction, any (EXEC then discards
        // it); otherwise the first command's, the one with the key the
        // keyless ones after it go with. A keyless command refused after
        // the first ran (a replica began a full sync and loads) is final:
        // resending would run the first again.
        let atomic = p
            .unit
            .cmds
            .first()
            .is_some_and(|first| first.name().eq_ignore_ascii_case(b"MULTI"));
        let decisive = if atomic {
            &replies[..]
        } else {
            &replies[..replies.len().min(1)]
        };
        let verdict = decisive.iter().find_map(|reply| match reply {
            Value::Error(err) => match judge(err, addr) {
                Verdict::Final => None,
                verdict => Some(verdict),
            },
            _ => None,
        });
        p.redirect = None;
        let Some(verdict) = verdict else {
            p.outcome = Some(Ok(replies));
            return None;
        };
        p.last = Some(Ok(replies));
        match &verdict {
            Verdict::Moved { slot, to } => {
                self.topology.borrow_mut().patch(*slot, to.clone());
                p.redirect = Some((to.clone(), false));
                p.redirects += 1;
            }
            Verdict::Ask { to } => {
                p.redirect = Some((to.clone(), true));
                p.redirects += 1;
            }
            Verdict::Later { .. } | Verdict::Final => {}
        }
        if p.redirects > self.config.max_redirects {
            let last = p.last.take();
            p.outcome = Some(Err(Error::Cluster(format!(
                "gave up after {} redirections (last from {addr}: {})",
                self.config.max_redirects,
                match &last {
                    Some(Ok(replies)) => format!("{:?}", replies.first()),
                    _ => String::new(),
                }
            ))));
            return Some(verdict);
        }
        if let Some(cmd) = p.unit.cmds.first_mut() {
            match shorten_blocking(cmd, start.elapsed()) {
                Shortened::NotBlocking => {}
                Shortened::Remaining(shorter) => *cmd = shorter,
                // Its whole timeout passed while it was redirected: the
                // answer it would have got is a timeout's nil.
                Shortened::Expired => p.outcome = Some(Ok(vec![Value::Nil])),
            }
        }
        Some(verdict)
    }

    /// After a MOVED, the rest of the map is likely stale too: load it in
    /// the background, asking the node that sent the MOVED first.
    pub(crate) fn moved_from(self: &Rc<Self>, addr: &NodeAddr) {
        self.refresh_soon(Hint {
            prefer: Some(addr.clone()),
            avoid: Vec::new(),
        });
    }
}

/// The commands a group sends, in order: each unit's, with ASKING first
/// for a unit that was told ASK, and between READONLY and READWRITE for a
/// read sent to a replica (so the connection goes back to the pool as it
/// came: READONLY is session state).
fn batch(work: &[Progress], members: &[usize]) -> Vec<Cmd> {
    let mut cmds = Vec::new();
    for &m in members {
        let p = &work[m];
        if p.redirect.as_ref().is_some_and(|(_, asking)| *asking) {
            cmds.push(cmd("ASKING"));
        } else if p.via_replica {
            cmds.push(cmd("READONLY"));
        }
        cmds.extend(p.unit.cmds.iter().cloned());
        if p.via_replica {
            cmds.push(cmd("READWRITE"));
        }
    }
    cmds
}
