//! SCAN over a whole cluster: [`ClusterClient::scan_match`] walks every
//! master in turn, each from cursor 0 until it says 0, through
//! `dispatch.rs` like any command (bound to that node, retried like a read).
//!
//! A cursor belongs to one node, so a plain `SCAN` through the cluster
//! client is refused (`routing.rs`) rather than sent to whichever master is
//! next. The masters are the ones the slot map names when the scan starts.
//! SCAN's usual promise holds per master (a key present from start to end
//! is returned at least once); a key moved by a resharding during the scan
//! may be missed or returned twice, and if a master fails over mid-scan its
//! cursor is not valid on the promoted replica: the iterator yields the
//! error. See `docs/cluster.md`, "SCAN".

use std::collections::VecDeque;
use std::marker::PhantomData;

use super::dispatch::{Target, Unit};
use super::topology::NodeAddr;
use super::ClusterClient;
use crate::cmd::cmd;
use crate::error::{Error, Result};
use crate::resp::Value;
use crate::types::FromValue;

impl ClusterClient {
    /// The keys matching `pattern` (`*` for all) on every master, as an
    /// iterator of `Result<T>`; each step asks one master for its next batch.
    ///
    /// ```no_run
    /// greenhub::run(|| {
    ///     let cluster = greenhub_redis::cluster::ClusterClient::open(&["redis://127.0.0.1:7000"]).unwrap();
    ///     let users: Vec<String> = cluster.scan_match("user:*").collect::<Result<_, _>>().unwrap();
    ///     println!("{} users", users.len());
    /// });
    /// ```
    pub fn scan_match<T: FromValue>(&self, pattern: &str) -> ClusterScan<T> {
        let masters = self.shared.masters_now();
        let (masters, failed) = match masters {
            Ok(masters) => (masters.into(), None),
            Err(err) => (VecDeque::new(), Some(err)),
        };
        ClusterScan {
            client: self.clone(),
            pattern: pattern.to_owned(),
            masters,
            current: None,
            batch: VecDeque::new(),
            failed,
            _item: PhantomData,
        }
    }
}

/// The iterator of [`ClusterClient::scan_match`].
#[derive(Debug)]
pub struct ClusterScan<T> {
    client: ClusterClient,
    pattern: String,
    /// Masters not started yet.
    masters: VecDeque<NodeAddr>,
    /// The master being scanned and its next cursor.
    current: Option<(NodeAddr, u64)>,
    batch: VecDeque<Value>,
    /// An error to yield before ending (loading the map failed).
    failed: Option<Error>,
    _item: PhantomData<fn() -> T>,
}

impl<T: FromValue> Iterator for ClusterScan<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        loop {
            if let Some(err) = self.failed.take() {
                self.masters.clear();
                self.current = None;
                return Some(Err(err));
            }
            if let Some(value) = self.batch.pop_front() {
                return Some(T::from_value(value));
            }
            let (node, cursor) = match self.current.take() {
                Some(current) => current,
                None => (self.masters.pop_front()?, 0),
            };
            match self.step(&node, cursor) {
                Ok((next, keys)) => {
                    self.batch.extend(keys);
                    if next != 0 {
                        self.current = Some((node, next));
                    }
                }
                Err(err) => self.failed = Some(err),
            }
        }
    }
}

impl<T> ClusterScan<T> {
    /// One SCAN on `node`: the next cursor and the batch of keys.
    fn step(&self, node: &NodeAddr, cursor: u64) -> Result<(u64, Vec<Value>)> {
        let mut scan = cmd("SCAN");
        scan.arg(cursor).arg("MATCH").arg(&self.pattern);
        let unit = Unit {
            cmds: vec![scan],
            target: Target::Node(node.clone()),
            safe: true,
        };
        let mut results = self.client.shared.execute(vec![unit]);
        let mut replies = results.pop().expect("one unit, one result")?;
        match replies.pop() {
            Some(Value::Error(err)) => Err(Error::Server(err)),
            Some(reply) => <(u64, Vec<Value>)>::from_value(reply),
            None => Err(Error::Protocol("no reply to SCAN".into())),
        }
    }
}
