//! The slot map: which master (and which replicas) serve each of the 16,384
//! slots. The router reads it for every command (`dispatch.rs`); a MOVED
//! reply patches one slot of it; a refresh (`refresh.rs`) replaces it with
//! what a node answers to `CLUSTER SHARDS` (Redis 7) or `CLUSTER SLOTS`
//! (older servers), parsed here without I/O.
//!
//! Invariant: `slots[s]` is an index into `shards`, or [`UNSERVED`]. A shard
//! that lost all its slots to MOVED patches stays in `shards` (harmless: it
//! is never routed to) until the next refresh rebuilds the map.
//! See `docs/cluster.md`, "The slot map".

use std::fmt;

use super::slots::SLOT_COUNT;
use crate::error::{Error, Result};
use crate::resp::Value;

/// No shard serves this slot (yet).
const UNSERVED: u16 = u16::MAX;

/// A node's address as the cluster announces it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddr {
    /// Host name or IP address.
    pub host: String,
    /// Client port.
    pub port: u16,
}

impl NodeAddr {
    /// `host:port` (the form of MOVED and ASK replies), or `None`. An empty
    /// host (a node whose endpoint is unknown) means `default_host`: the
    /// node that sent the address.
    pub(crate) fn parse(text: &str, default_host: &str) -> Option<NodeAddr> {
        let (host, port) = text.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some(NodeAddr {
            host: if host.is_empty() || host == "?" {
                default_host.to_owned()
            } else {
                host.to_owned()
            },
            port: port.parse().ok()?,
        })
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A master and its replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) master: NodeAddr,
    /// Replicas not reported failed, for reads when enabled.
    pub(crate) replicas: Vec<NodeAddr>,
}

/// The slot map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Topology {
    /// For each slot, its shard's index in `shards`, or `UNSERVED`.
    slots: Vec<u16>,
    shards: Vec<Shard>,
}

impl Topology {
    /// No slot served: before the first refresh.
    pub(crate) fn empty() -> Topology {
        Topology {
            slots: vec![UNSERVED; usize::from(SLOT_COUNT)],
            shards: Vec::new(),
        }
    }

    /// A map from shards and the inclusive slot ranges each serves.
    fn from_ranges(shards: Vec<(Shard, Vec<(u16, u16)>)>) -> Topology {
        let mut map = Topology::empty();
        for (shard, ranges) in shards {
            let index = map.shard_index(shard);
            for (start, end) in ranges {
                for slot in start..=end.min(SLOT_COUNT - 1) {
                    map.slots[usize::from(slot)] = index;
                }
            }
        }
        map
    }

    /// The shard serving `slot`.
    pub(crate) fn shard(&self, slot: u16) -> Option<&Shard> {
        match self.slots.get(usize::from(slot)) {
            Some(&index) if index != UNSERVED => self.shards.get(usize::from(index)),
            _ => None,
        }
    }

    /// The master serving `slot`.
    pub(crate) fn master(&self, slot: u16) -> Option<&NodeAddr> {
        self.shard(slot).map(|s| &s.master)
    }

    /// The masters that serve at least one slot, in shard order.
    pub(crate) fn masters(&self) -> Vec<&NodeAddr> {
        let mut serving = vec![false; self.shards.len()];
        for &index in self.slots.iter().filter(|&&i| i != UNSERVED) {
            serving[usize::from(index)] = true;
        }
        self.shards
            .iter()
            .zip(serving)
            .filter(|(_, serving)| *serving)
            .map(|(shard, _)| &shard.master)
            .collect()
    }

    /// Every node the map names: masters, then replicas.
    pub(crate) fn nodes(&self) -> Vec<&NodeAddr> {
        let mut nodes: Vec<&NodeAddr> = self.masters();
        for replica in self.shards.iter().flat_map(|s| &s.replicas) {
            if !nodes.contains(&replica) {
                nodes.push(replica);
            }
        }
        nodes
    }

    /// Whether `addr` is the master of a shard that serves slots.
    pub(crate) fn is_master(&self, addr: &NodeAddr) -> bool {
        self.masters().contains(&addr)
    }

    /// How many slots some node serves.
    pub(crate) fn served(&self) -> usize {
        self.slots.iter().filter(|&&i| i != UNSERVED).count()
    }

    /// Records a MOVED: `slot` is served by `master` now.
    pub(crate) fn patch(&mut self, slot: u16, master: NodeAddr) {
        if slot >= SLOT_COUNT {
            return;
        }
        let index = self.shard_index(Shard {
            master,
            replicas: Vec::new(),
        });
        self.slots[usize::from(slot)] = index;
    }

    /// The index of the shard with `shard`'s master, added if new.
    fn shard_index(&mut self, shard: Shard) -> u16 {
        match self.shards.iter().position(|s| s.master == shard.master) {
            Some(i) => i as u16,
            None => {
                self.shards.push(shard);
                (self.shards.len() - 1) as u16
            }
        }
    }
}

/// Parses `CLUSTER SHARDS` (Redis 7): one entry per shard, each a map
/// (RESP3) or a flat list of pairs (RESP2) with `slots` (start, end, start,
/// end, ...) and `nodes` (each with `ip`, `endpoint`, `port`, `role`,
/// `health`, and `tls-port` on a TLS node). `asked` is the node that
/// answered, for nodes whose endpoint is unknown (`?`). Over TLS (`tls`)
/// the node's `tls-port` is the one to use (a TLS-only node has no `port`),
/// and a node with no `tls-port` is an error, never a silent fall-back to
/// its plaintext `port`: Redis reports `tls-port` only with `tls-cluster
/// yes`, and without it the nodes' TLS ports are not known to the cluster.
pub(crate) fn parse_shards(reply: Value, asked: &NodeAddr, tls: bool) -> Result<Topology> {
    let bad = |what: &str| Error::Protocol(format!("unexpected CLUSTER SHARDS reply: {what}"));
    let Value::Array(entries) = reply else {
        return Err(bad("not an array"));
    };
    let mut shards = Vec::new();
    for entry in entries {
        let mut ranges = Vec::new();
        let mut master = None;
        let mut replicas = Vec::new();
        for (field, value) in pairs(entry).ok_or_else(|| bad("a shard is not a map"))? {
            match field.as_str() {
                "slots" => {
                    let bounds = integers(value).ok_or_else(|| bad("slots"))?;
                    ranges.extend(bounds.chunks_exact(2).map(|r| (r[0], r[1])));
                }
                "nodes" => {
                    let Value::Array(nodes) = value else {
                        return Err(bad("nodes"));
                    };
                    for node in nodes {
                        let node = pairs(node).ok_or_else(|| bad("a node is not a map"))?;
                        let text = |name: &str| {
                            node.iter()
                                .find(|(f, _)| f == name)
                                .and_then(|(_, v)| text(v))
                        };
                        let port_named = |name: &str| {
                            node.iter()
                                .find(|(f, _)| f == name)
                                .and_then(|(_, v)| integer::<u16>(v))
                        };
                        let host = text("endpoint")
                            .filter(|h| !h.is_empty() && h != "?")
                            .or_else(|| text("ip").filter(|h| !h.is_empty() && h != "?"))
                            .unwrap_or_else(|| asked.host.clone());
                        let port = match tls {
                            true => match (port_named("tls-port"), port_named("port")) {
                                (Some(port), _) => port,
                                (None, Some(plain)) => {
                                    return Err(no_tls_port(asked, &host, plain));
                                }
                                (None, None) => return Err(bad("a node without a port")),
                            },
                            false => {
                                port_named("port").ok_or_else(|| bad("a node without a port"))?
                            }
                        };
                        let addr = NodeAddr { host, port };
                        // Redis 7.0 reports a replica that has received no
                        // write yet (offset 0) as `loading`: keep it; one
                        // that really loads answers LOADING, and the read
                        // goes to the master. Only `failed` is left out.
                        let healthy = text("health").is_none_or(|h| h != "failed");
                        match text("role").as_deref() {
                            Some("master") => master = Some(addr),
                            _ if healthy => replicas.push(addr),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(master) = master {
            shards.push((Shard { master, replicas }, ranges));
        }
    }
    Ok(Topology::from_ranges(shards))
}

/// Over TLS, `CLUSTER SHARDS` from `asked` names a node by its plaintext
/// port only.
#[cold]
fn no_tls_port(asked: &NodeAddr, host: &str, plain: u16) -> Error {
    Error::Config(format!(
        "over TLS, CLUSTER SHARDS from {asked} reports no tls-port for the node at \
         {host}:{plain} (only its plaintext port): the cluster must run with \
         `tls-cluster yes` for its nodes' TLS ports to be known; connect with redis:// \
         URLs to reach it in plaintext"
    ))
}

/// Parses `CLUSTER SLOTS` (before Redis 7): one entry per slot range,
/// `[start, end, [host, port, id, ...] (master), [host, port, ...] (replicas)...]`.
pub(crate) fn parse_slots(reply: Value, asked: &NodeAddr) -> Result<Topology> {
    let bad = |what: &str| Error::Protocol(format!("unexpected CLUSTER SLOTS reply: {what}"));
    let Value::Array(entries) = reply else {
        return Err(bad("not an array"));
    };
    let mut shards: Vec<(Shard, Vec<(u16, u16)>)> = Vec::new();
    for entry in entries {
        let Value::Array(parts) = entry else {
            return Err(bad("a range is not an array"));
        };
        let mut parts = parts.into_iter();
        let (Some(start), Some(end)) = (
            parts.next().as_ref().and_then(integer),
            parts.next().as_ref().and_then(integer),
        ) else {
            return Err(bad("a range without bounds"));
        };
        let mut nodes = parts.map(|node| {
            let Value::Array(fields) = node else {
                return None;
            };
            let host = fields.first().and_then(text)?;
            let port = fields.get(1).and_then(integer)?;
            let host = if host.is_empty() || host == "?" {
                asked.host.clone()
            } else {
                host
            };
            Some(NodeAddr { host, port })
        });
        let master = nodes
            .next()
            .flatten()
            .ok_or_else(|| bad("a range without a master"))?;
        let replicas = nodes.flatten().collect();
        match shards.iter_mut().find(|(s, _)| s.master == master) {
            Some((_, ranges)) => ranges.push((start, end)),
            None => shards.push((Shard { master, replicas }, vec![(start, end)])),
        }
    }
    Ok(Topology::from_ranges(shards))
}

/// A map (RESP3) or a flat list of name/value pairs (RESP2), as pairs.
fn pairs(value: Value) -> Option<Vec<(String, Value)>> {
    match value {
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(k, v)| Some((text(&k)?, v)))
            .collect(),
        Value::Array(flat) if flat.len() % 2 == 0 => {
            let mut out = Vec::with_capacity(flat.len() / 2);
            let mut items = flat.into_iter();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                out.push((text(&k)?, v));
            }
            Some(out)
        }
        _ => None,
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Bulk(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::Status(s) => Some(s.clone()),
        Value::Verbatim { text, .. } => Some(String::from_utf8_lossy(text).into_owned()),
        _ => None,
    }
}

fn integer<T: TryFrom<i64>>(value: &Value) -> Option<T> {
    match value {
        Value::Int(n) => T::try_from(*n).ok(),
        Value::Bulk(bytes) => {
            T::try_from(std::str::from_utf8(bytes).ok()?.parse::<i64>().ok()?).ok()
        }
        _ => None,
    }
}

fn integers(value: Value) -> Option<Vec<u16>> {
    match value {
        Value::Array(items) | Value::Set(items) => items.iter().map(integer).collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    fn node(port: i64, role: &str, health: &str) -> Value {
        Value::Array(vec![
            bulk("id"),
            bulk("abc"),
            bulk("port"),
            Value::Int(port),
            bulk("ip"),
            bulk("127.0.0.1"),
            bulk("endpoint"),
            bulk("127.0.0.1"),
            bulk("role"),
            bulk(role),
            bulk("health"),
            bulk(health),
        ])
    }

    fn addr(port: u16) -> NodeAddr {
        NodeAddr {
            host: "127.0.0.1".into(),
            port,
        }
    }

    #[test]
    fn over_tls_a_node_is_reached_on_its_tls_port() {
        let mut with_tls = node(7000, "master", "online");
        if let Value::Array(fields) = &mut with_tls {
            fields.extend([bulk("tls-port"), Value::Int(17000)]);
        }
        let shard = |n: Value| {
            Value::Array(vec![Value::Array(vec![
                bulk("slots"),
                Value::Array(vec![Value::Int(0), Value::Int(16383)]),
                bulk("nodes"),
                Value::Array(vec![n]),
            ])])
        };
        let tls = parse_shards(shard(with_tls.clone()), &addr(17000), true).unwrap();
        assert_eq!(tls.master(0), Some(&addr(17000)));
        let plain = parse_shards(shard(with_tls), &addr(7000), false).unwrap();
        assert_eq!(plain.master(0), Some(&addr(7000)));
        // Over TLS, a node that reports no tls-port is an error naming it,
        // not a TLS handshake sent to its plaintext port.
        let only_port = parse_shards(shard(node(7000, "master", "online")), &addr(7000), true);
        match only_port {
            Err(Error::Config(msg)) => {
                assert!(msg.contains("no tls-port"), "{msg}");
                assert!(msg.contains("127.0.0.1:7000"), "{msg}");
                assert!(msg.contains("tls-cluster yes"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cluster_shards_gives_masters_healthy_replicas_and_slot_ranges() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("slots"),
                Value::Array(vec![
                    Value::Int(0),
                    Value::Int(5460),
                    Value::Int(10000),
                    Value::Int(10001),
                ]),
                bulk("nodes"),
                Value::Array(vec![
                    node(7000, "master", "online"),
                    node(7003, "replica", "online"),
                ]),
            ]),
            Value::Array(vec![
                bulk("slots"),
                Value::Array(vec![Value::Int(5461), Value::Int(9999)]),
                bulk("nodes"),
                Value::Array(vec![
                    node(7004, "replica", "failed"),
                    node(7001, "master", "online"),
                ]),
            ]),
        ]);
        let map = parse_shards(reply, &addr(7000), false).unwrap();
        assert_eq!(map.master(0), Some(&addr(7000)));
        assert_eq!(map.master(5460), Some(&addr(7000)));
        assert_eq!(map.master(5461), Some(&addr(7001)));
        assert_eq!(map.master(10001), Some(&addr(7000)));
        assert_eq!(map.master(10002), None);
        assert_eq!(map.shard(0).unwrap().replicas, [addr(7003)]);
        assert!(
            map.shard(6000).unwrap().replicas.is_empty(),
            "the failed replica is left out"
        );
        assert_eq!(map.served(), 5461 + 2 + 4539);
        assert_eq!(map.masters(), [&addr(7000), &addr(7001)]);
    }

    #[test]
    fn cluster_slots_gives_the_same_map() {
        let entry = |start, end, ports: &[i64]| {
            let mut parts = vec![Value::Int(start), Value::Int(end)];
            parts.extend(
                ports
                    .iter()
                    .map(|&p| Value::Array(vec![bulk("127.0.0.1"), Value::Int(p), bulk("id")])),
            );
            Value::Array(parts)
        };
        let reply = Value::Array(vec![
            entry(0, 8191, &[7000, 7003]),
            entry(8192, 16383, &[7001]),
        ]);
        let map = parse_slots(reply, &addr(7000)).unwrap();
        assert_eq!(map.master(8191), Some(&addr(7000)));
        assert_eq!(map.master(16383), Some(&addr(7001)));
        assert_eq!(map.served(), 16384);
        assert_eq!(map.nodes(), [&addr(7000), &addr(7001), &addr(7003)]);
    }

    #[test]
    fn a_moved_patch_changes_one_slot_and_can_name_a_new_master() {
        let mut map = Topology::empty();
        map.patch(42, addr(7005));
        assert_eq!(map.master(42), Some(&addr(7005)));
        assert_eq!(map.master(43), None);
        assert!(map.is_master(&addr(7005)));
        map.patch(SLOT_COUNT, addr(7006));
        assert_eq!(map.served(), 1, "a slot out of range is ignored");
    }

    #[test]
    fn redirect_addresses_parse_with_and_without_a_host() {
        assert_eq!(NodeAddr::parse("127.0.0.1:7001", "x"), Some(addr(7001)));
        assert_eq!(NodeAddr::parse(":7001", "127.0.0.1"), Some(addr(7001)));
        assert_eq!(
            NodeAddr::parse("::1:7001", "x").map(|a| a.to_string()),
            Some("[::1]:7001".into())
        );
        assert_eq!(NodeAddr::parse("nonsense", "x"), None);
    }
}
