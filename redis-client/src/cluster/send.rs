//! Sending one round's batches: a pooled connection per node, every
//! command of the node's batch in one write, all nodes at once. `dispatch.rs`
//! builds the batches and judges what comes back; this file is the only one
//! of the cluster client that talks to a connection ([`send_commands`]).
//!
//! Several nodes are served by one coroutine each, the first by the caller
//! itself. Should the caller be killed (or its `timeout` fire) while it
//! waits for them, the [`Children`] guard kills them too: their
//! connections, replies unread, are closed rather than pooled.
//! See `docs/cluster.md`, "Pipelines".

use super::nodes::NodePool;
use crate::cmd::{Cmd, ConnectionLike};
use crate::error::{Error, Result};
use crate::pool::PooledConnection;
use crate::resp::Value;

/// What happened to one node's share of a round.
#[derive(Debug)]
pub(crate) enum Sent {
    /// No connection: nothing reached the node.
    NotSent(Error),
    /// Written; the replies, or why they were not all read.
    Sent(Result<Vec<Value>>),
}

/// Sends every node's batch: the first in the calling coroutine, the
/// others each in a coroutine of its own, so that nodes work at once. One
/// outcome per batch, in order.
pub(crate) fn send_all(batches: Vec<(NodePool, Vec<Cmd>)>) -> Vec<Sent> {
    if batches.len() < 2 || greenhub::current().is_none() {
        return batches
            .into_iter()
            .map(|(node, cmds)| send_to(&node, &cmds))
            .collect();
    }
    let mut batches = batches.into_iter();
    let (first_node, first_cmds) = batches.next().expect("two or more");
    let mut children = Children(
        batches
            .map(|(node, cmds)| {
                let spawned = greenhub::Builder::new()
                    .name("cluster-pipeline")
                    .spawn(move || send_to(&node, &cmds));
                Some(spawned.map_err(|err| {
                    Error::Usage(format!(
                        "cannot start a coroutine for a cluster node: {err}"
                    ))
                }))
            })
            .collect(),
    );
    let mut sent = vec![send_to(&first_node, &first_cmds)];
    for child in &mut children.0 {
        // Wait while the handle stays in `children` (a kill of the
        // caller here kills the child too), then take its value.
        if let Some(Ok(handle)) = child {
            let _ = handle.wait();
        }
        sent.push(match child.take().expect("taken once") {
            Ok(handle) => match handle.join() {
                Ok(sent) => sent,
                Err(err) => Sent::Sent(Err(Error::Usage(format!(
                    "the coroutine sending to a cluster node ended: {err}"
                )))),
            },
            Err(err) => Sent::NotSent(err),
        });
    }
    sent
}

/// One node's share of a round, on one pooled connection.
fn send_to(node: &NodePool, cmds: &[Cmd]) -> Sent {
    match node.pool.get() {
        Ok(mut conn) => Sent::Sent(send_commands(&mut conn, cmds)),
        Err(err) => Sent::NotSent(err),
    }
}

/// Writes `cmds` in one go and reads one reply each, error replies kept as
/// values. The one place the cluster client talks to a connection.
fn send_commands(conn: &mut PooledConnection, cmds: &[Cmd]) -> Result<Vec<Value>> {
    if let [only] = cmds {
        return match conn.req_command(only) {
            Ok(value) => Ok(vec![value]),
            Err(Error::Server(err)) => Ok(vec![Value::Error(err)]),
            Err(err) => Err(err),
        };
    }
    conn.req_pipeline(cmds, false)
}

/// The coroutines of a round; any still running when the round is
/// abandoned (the caller killed, or its timeout fired) are killed too, so
/// none goes on writing for a caller that is gone.
struct Children(Vec<Option<Result<greenhub::JoinHandle<Sent>>>>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in self.0.iter().flatten().flatten() {
            child.kill();
        }
    }
}
