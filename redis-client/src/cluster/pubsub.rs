//! Sharded pub/sub (Redis 7): [`ShardedPubSub`] holds a dedicated
//! connection to the master serving its channels' slot, SSUBSCRIBEd, and
//! follows the slot when it moves. `SPUBLISH` needs nothing special: its
//! channel is its key, so `routing.rs` sends it to the same master.
//!
//! Following the slot: when a resharding moves the slot away, or a failover
//! hands it to the replica, the old master tells its subscribers so (a
//! `sunsubscribe` they did not ask for), answers MOVED, or its connection
//! breaks. Each means the same here: reload the slot map
//! (`ClusterClient::refresh_slots`), connect to the slot's master now,
//! SSUBSCRIBE again, and go on reading, pausing between tries (growing to
//! 250 ms; the map is loaded at most every 100 ms). `next_message` follows
//! as long as it takes, as it waits for a message as long as it takes;
//! `get_message(timeout)` follows until its timeout and then returns the
//! last error. Pub/sub delivers at most once: messages published while no
//! node had the subscription are not seen.
//! See `docs/cluster.md`, "Pub/sub".

use std::time::{Duration, Instant};

use super::redirect::{judge, Backoff, Verdict};
use super::slots::key_slot;
use super::topology::NodeAddr;
use super::ClusterClient;
use crate::error::{Error, Result, ServerError};
use crate::pubsub::{Message, PubSub};

impl ClusterClient {
    /// A subscriber to shard `channels`, which must share a slot (use a
    /// `{hash tag}`; else CROSSSLOT). It connects to the slot's master and
    /// sends SSUBSCRIBE; read with [`ShardedPubSub::next_message`].
    pub fn sharded_pubsub(&self, channels: &[&str]) -> Result<ShardedPubSub> {
        let Some(first) = channels.first() else {
            return Err(Error::Usage(
                "a sharded subscriber needs at least one channel".into(),
            ));
        };
        let slot = key_slot(first.as_bytes());
        if let Some(other) = channels.iter().find(|c| key_slot(c.as_bytes()) != slot) {
            return Err(Error::Server(ServerError {
                code: "CROSSSLOT".into(),
                message: format!(
                    "Keys in request don't hash to the same slot (shard channels {first:?} \
                     and {other:?} live on slots {slot} and {}; one subscriber per slot)",
                    key_slot(other.as_bytes())
                ),
                raw: None,
            }));
        }
        let mut subscriber = ShardedPubSub {
            client: self.clone(),
            slot,
            channels: channels.iter().map(|c| c.to_string()).collect(),
            conn: None,
        };
        let deadline = Instant::now() + self.shared.config.retry_timeout;
        subscriber.subscribe(deadline)?;
        Ok(subscriber)
    }
}

/// A subscriber to shard channels of one slot, following the slot across
/// reshardings and failovers.
#[derive(Debug)]
pub struct ShardedPubSub {
    client: ClusterClient,
    slot: u16,
    channels: Vec<String>,
    /// The subscribed connection and its node; `None` between a move and
    /// the next subscription.
    conn: Option<(NodeAddr, PubSub)>,
}

impl ShardedPubSub {
    /// The slot of the channels.
    pub fn slot(&self) -> u16 {
        self.slot
    }

    /// The node subscribed to now, if any.
    pub fn node(&self) -> Option<&NodeAddr> {
        self.conn.as_ref().map(|(addr, _)| addr)
    }

    /// The next message (`smessage`, or a confirmation such as `ssubscribe`),
    /// waiting at most `timeout` (`None`: forever); `Ok(None)` if it passed.
    /// A move of the slot is followed here, unseen by the caller but for the
    /// new `ssubscribe` confirmations; if no node takes the subscription
    /// before the timeout, the last error.
    pub fn get_message(&mut self, timeout: Option<Duration>) -> Result<Option<Message>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if self.conn.is_none() {
                // "Forever" as a deadline: thirty years.
                let forever = || Instant::now() + Duration::from_secs(86_400 * 365 * 30);
                self.subscribe(deadline.unwrap_or_else(forever))?;
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let (addr, conn) = self.conn.as_mut().expect("subscribed above");
            match conn.get_message(left) {
                // Not asked for: the node no longer serves the slot.
                Ok(Some(message)) if message.kind == "sunsubscribe" => self.lost(None),
                Ok(other) => return Ok(other),
                Err(Error::Server(err)) => match judge(&err, addr) {
                    Verdict::Moved { slot, to } => {
                        let topology = &self.client.shared.topology;
                        topology.borrow_mut().patch(slot, to);
                        self.lost(None);
                    }
                    Verdict::Final => return Err(Error::Server(err)),
                    _ => self.lost(None),
                },
                Err(err) if err.is_io() => self.lost(Some(err)),
                Err(err) => return Err(err),
            }
        }
    }

    /// The next published message (`smessage`), skipping confirmations;
    /// waits as long as it takes.
    pub fn next_message(&mut self) -> Result<Message> {
        loop {
            let message = self.get_message(None)?.expect("no timeout was set");
            if message.kind == "smessage" {
                return Ok(message);
            }
        }
    }

    /// Drops the subscription after the slot moved or the node failed.
    fn lost(&mut self, err: Option<Error>) {
        if let Some((addr, _)) = self.conn.take() {
            match err {
                Some(err) => log::debug!(
                    "shard subscription on {addr} lost ({err}): following slot {}",
                    self.slot
                ),
                None => log::debug!("slot {} left {addr}: following it", self.slot),
            }
        }
    }

    /// Subscribes on the slot's master now, reloading the map and pausing
    /// between tries until `deadline`.
    fn subscribe(&mut self, deadline: Instant) -> Result<()> {
        let shared = &self.client.shared;
        let mut backoff = Backoff::new(deadline);
        let channels: Vec<&str> = self.channels.iter().map(String::as_str).collect();
        let mut first = self.conn.is_none() && shared.generation() > 0;
        loop {
            if !first {
                let _ = self.client.refresh_slots();
            }
            first = false;
            let master = shared.topology.borrow().master(self.slot).cloned();
            let outcome = match master {
                Some(addr) => PubSub::open(&shared.nodes.info(&addr))
                    .and_then(|mut conn| conn.ssubscribe(&channels).map(|()| conn))
                    .map(|conn| (addr, conn)),
                None => Err(Error::Cluster(format!("no node serves slot {}", self.slot))),
            };
            match outcome {
                Ok(conn) => {
                    self.conn = Some(conn);
                    return Ok(());
                }
                Err(err) if backoff.pause() => {
                    log::debug!("shard subscription failed ({err}); retrying")
                }
                Err(err) => return Err(err),
            }
        }
    }
}
