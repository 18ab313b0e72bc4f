//! Which Redis Cluster the demo talks to (`--cluster`): the nodes named by
//! `--redis URL[,URL...]`, or, with no URL or `--redis private-cluster`, a
//! private one (`private_cluster.rs`), stopped when the run ends. Before any
//! client is spawned, each master must have room for the clients whose keys
//! it serves (`maxclients`), or the run is refused with the numbers.

use std::collections::BTreeMap;

use greenhub_redis::cluster::{key_slot, ClusterClient, NodeAddr};
use greenhub_redis::{Addr, ConnectionInfo};

use crate::private_cluster::PrivateCluster;
use crate::server::{self, SPARE_CLIENTS};

/// The cluster the experiment runs against.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// Seed URLs for `ClusterClient::open`.
    pub(crate) urls: Vec<String>,
    /// What it is, for the log.
    pub(crate) description: String,
    /// The private cluster, stopped when this is dropped.
    _private: Option<PrivateCluster>,
}

/// The cluster at `explicit` (comma-separated seed URLs, spaces around each
/// ignored), or a private one sized for `clients` when `explicit` is `None`
/// or `private-cluster`. `private` (one private server) is refused with the
/// name to use.
pub(crate) fn choose(explicit: Option<&str>, clients: usize) -> Result<Cluster, String> {
    match explicit {
        None | Some("private-cluster") => {
            let private = PrivateCluster::start(clients)?;
            Ok(Cluster {
                urls: private.urls(),
                description: format!(
                    "a private cluster of 3 masters and 3 replicas in {}",
                    private.dir().display()
                ),
                _private: Some(private),
            })
        }
        Some("private") => Err(
            "--redis private starts one server, not a cluster: with --cluster, pass \
             --redis private-cluster (or leave --redis out)"
                .to_owned(),
        ),
        Some(urls) => {
            let urls: Vec<String> = urls
                .split(',')
                .map(str::trim)
                .filter(|url| !url.is_empty())
                .map(str::to_owned)
                .collect();
            if urls.is_empty() {
                return Err("--cluster --redis names no node: pass URL[,URL...]".to_owned());
            }
            Ok(Cluster {
                description: format!("the cluster at {}", urls.join(", ")),
                urls,
                _private: None,
            })
        }
    }
}

/// Refuses a run in which some master would get more clients (those whose
/// keys' slots it serves) than its `maxclients` leaves room for. `seed` gives
/// the credentials and timeouts for connecting to each master.
pub(crate) fn check_capacity(
    cluster: &ClusterClient,
    seed: &str,
    keys: &[String],
) -> Result<(), String> {
    let mut shares: BTreeMap<NodeAddr, usize> = BTreeMap::new();
    for key in keys {
        let slot = key_slot(key.as_bytes());
        let master = cluster
            .master_of_slot(slot)
            .ok_or_else(|| format!("no master serves slot {slot} (of key {key:?})"))?;
        *shares.entry(master).or_default() += 1;
    }
    let template = ConnectionInfo::from_url(seed).map_err(|err| format!("bad Redis URL: {err}"))?;
    for (addr, share) in shares {
        let mut info = template.clone();
        info.addr = Addr::Tcp {
            host: addr.host.clone(),
            port: addr.port,
        };
        let url = format!("redis://{addr}");
        let Some((maxclients, connected)) = server::room(&info, &url)? else {
            continue;
        };
        let free = maxclients.saturating_sub(connected);
        if share > free {
            return Err(format!(
                "--clients {} cannot fit: {share} of their keys live on the master at {url}, which \
                 has maxclients {maxclients} with {connected} connected, so room for {free}; lower \
                 --clients, raise maxclients on every master (redis-cli -h {} -p {} CONFIG SET \
                 maxclients {}), or pass --redis private-cluster for a cluster sized for N",
                keys.len(),
                addr.host,
                addr.port,
                share + connected + SPARE_CLIENTS
            ));
        }
    }
    Ok(())
}
