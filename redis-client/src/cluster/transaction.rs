//! Optimistic transactions (WATCH, reads, MULTI ... EXEC) on a cluster:
//! [`ClusterClient::transaction`] finds the slot all the watched keys share,
//! checks a connection out of that slot's master's pool and runs the
//! single-server [`transaction`](crate::transaction) on it. If the slot
//! moved meanwhile (MOVED or ASK from WATCH, a read or EXEC: nothing was
//! committed), or the cluster was briefly unable to serve it, the whole
//! transaction starts again on the right node, within the retry time.
//! See `docs/cluster.md`, "Transactions and scripts".

use std::time::Instant;

use super::redirect::{judge, Backoff, Verdict};
use super::refresh::Hint;
use super::slots::key_slot;
use super::ClusterClient;
use crate::connection::Connection;
use crate::error::{Error, Result, ServerError};
use crate::pipeline::{transaction, Pipeline};
use crate::types::{FromValue, ToArg};

impl ClusterClient {
    /// Runs `build` in a WATCH transaction on the master of the slot that
    /// every one of `keys` hashes to (use a `{hash tag}`), as
    /// [`greenhub_redis::transaction`](crate::transaction) does on one
    /// server: `build` reads through the connection and queues commands in
    /// the atomic pipeline; a conflicting write makes it run again.
    ///
    /// Keys in different slots are a CROSSSLOT error, before anything is sent.
    ///
    /// ```no_run
    /// use greenhub_redis::prelude::*;
    /// greenhub::run(|| {
    ///     let cluster = greenhub_redis::cluster::ClusterClient::open(&["redis://127.0.0.1:7000"]).unwrap();
    ///     let (new,): (i64,) = cluster
    ///         .transaction(&["{acct:1}:balance"], |con, pipe| {
    ///             let balance: Option<i64> = con.get("{acct:1}:balance")?;
    ///             pipe.cmd("SET").arg("{acct:1}:balance").arg(balance.unwrap_or(0) + 10);
    ///             pipe.cmd("INCR").arg("{acct:1}:deposits");
    ///             Ok(())
    ///         })
    ///         .map(|((), deposits): ((), i64)| (deposits,))
    ///         .unwrap();
    ///     println!("{new}");
    /// });
    /// ```
    pub fn transaction<K: ToArg, T: FromValue>(
        &self,
        keys: &[K],
        mut build: impl FnMut(&mut Connection, &mut Pipeline) -> Result<()>,
    ) -> Result<T> {
        let slot = one_slot(keys)?;
        let shared = &self.shared;
        let deadline = Instant::now() + shared.config.retry_timeout;
        let mut backoff = Backoff::new(deadline);
        let mut redirected = None;
        let mut redirects = 0;
        loop {
            let seen = shared.generation();
            if seen == 0 {
                let _ = shared.refresh(seen, Hint::default(), deadline);
            }
            let addr = match redirected
                .take()
                .or_else(|| shared.topology.borrow().master(slot).cloned())
            {
                Some(addr) => addr,
                None => {
                    let _ = shared.refresh(seen, Hint::default(), deadline);
                    if backoff.pause() {
                        continue;
                    }
                    return Err(Error::Cluster(format!("no node serves slot {slot}")));
                }
            };
            let node = shared.nodes.pool(&addr);
            let mut conn = match node.pool.get() {
                Ok(conn) => conn,
                Err(err) if err.is_io() || err.is_timeout() => {
                    shared.nodes.retire(&addr, node.generation);
                    let hint = Hint {
                        prefer: None,
                        avoid: vec![addr],
                    };
                    let _ = shared.refresh(seen, hint, deadline);
                    if backoff.pause() {
                        continue;
                    }
                    return Err(err);
                }
                Err(err) => return Err(err),
            };
            let err = match transaction(&mut conn, keys, &mut build) {
                Err(Error::Server(err)) => err,
                other => return other,
            };
            drop(conn);
            match judge(&err, &addr) {
                Verdict::Moved { slot, to } if redirects < shared.config.max_redirects => {
                    shared.topology.borrow_mut().patch(slot, to.clone());
                    shared.moved_from(&addr);
                    redirected = Some(to);
                    redirects += 1;
                }
                // A WATCH cannot follow an ASK (ASKING lasts one command):
                // wait for the migration of the slot to end instead.
                Verdict::Ask { .. } | Verdict::Later { .. } if backoff.pause() => {}
                _ => return Err(Error::Server(err)),
            }
        }
    }
}

/// The slot all `keys` share, or a CROSSSLOT error naming two that differ.
fn one_slot<K: ToArg>(keys: &[K]) -> Result<u16> {
    let bytes: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| {
            let mut out = Vec::new();
            k.write_arg(&mut out);
            out
        })
        .collect();
    let Some(first) = bytes.first() else {
        return Err(Error::Usage(
            "a cluster transaction needs at least one key to watch (it decides the node)".into(),
        ));
    };
    let slot = key_slot(first);
    match bytes.iter().find(|k| key_slot(k) != slot) {
        None => Ok(slot),
        Some(other) => Err(Error::Server(ServerError {
            code: "CROSSSLOT".into(),
            message: format!(
                "Keys in request don't hash to the same slot (a cluster transaction watches \
                 keys of one slot: {:?} is in slot {slot}, {:?} in slot {}; nothing was sent)",
                String::from_utf8_lossy(first),
                String::from_utf8_lossy(other),
                key_slot(other)
            ),
            raw: None,
        })),
    }
}
