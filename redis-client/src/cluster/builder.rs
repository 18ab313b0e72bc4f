//! [`ClusterBuilder`]: the cluster client's settings, checked once when the
//! client is built. `ClusterClient::open` is `builder(urls).build()`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use super::nodes::Nodes;
use super::topology::{NodeAddr, Topology};
use super::{ClusterClient, Shared};
use crate::error::{Error, Result};
use crate::pool::PoolConfig;
use crate::url::{Addr, ConnectionInfo};

/// How long a call may keep retrying (redirections aside) before it returns
/// the last error. Covers a slot migration's TRYAGAIN and a node's LOADING;
/// a failover takes about `cluster-node-timeout` (15 s by default in Redis,
/// 1 s in our tests): raise this to ride one out instead of seeing errors.
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_secs(2);

/// How old the slot map may get before a call refreshes it in the
/// background, even with no MOVED to say it changed (a node added with no
/// slot moved yet, a replica promoted on a shard we do not use).
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// How many MOVED and ASK replies one command may follow. A slot moves at
/// most once per resharding step, so a command sent more times than this
/// is chasing a misconfigured cluster (redis-cli and redis-py stop at 16).
pub const DEFAULT_MAX_REDIRECTS: usize = 16;

/// How long connecting to a node may take when the URL says nothing
/// (`?connect_timeout=`). A node that died without closing its port, or
/// whose host vanished, would otherwise hold a call for the kernel's
/// connect timeout (minutes).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The settings the client runs with.
#[derive(Debug)]
pub(crate) struct Config {
    /// The nodes given at start, asked for the map when the known ones fail.
    pub(crate) seeds: Vec<NodeAddr>,
    pub(crate) retry_timeout: Duration,
    pub(crate) refresh_interval: Option<Duration>,
    pub(crate) max_redirects: usize,
    pub(crate) read_from_replicas: bool,
}

/// Settings for a [`ClusterClient`].
///
/// ```no_run
/// use std::time::Duration;
/// use greenhub_redis::cluster::ClusterClient;
/// let cluster = ClusterClient::builder(&["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])
///     .retry_timeout(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    urls: Vec<String>,
    retry_timeout: Duration,
    refresh_interval: Option<Duration>,
    max_redirects: usize,
    pool: PoolConfig,
    connect_timeout: Option<Duration>,
    read_from_replicas: bool,
}

impl ClusterBuilder {
    pub(crate) fn new<S: AsRef<str>>(urls: &[S]) -> ClusterBuilder {
        ClusterBuilder {
            urls: urls.iter().map(|u| u.as_ref().to_owned()).collect(),
            retry_timeout: DEFAULT_RETRY_TIMEOUT,
            refresh_interval: Some(DEFAULT_REFRESH_INTERVAL),
            max_redirects: DEFAULT_MAX_REDIRECTS,
            pool: PoolConfig::default(),
            connect_timeout: None,
            read_from_replicas: false,
        }
    }

    /// How long one call may keep retrying TRYAGAIN, CLUSTERDOWN, LOADING
    /// and unreachable nodes ([`DEFAULT_RETRY_TIMEOUT`]); a blocking
    /// command's own timeout comes on top.
    pub fn retry_timeout(mut self, timeout: Duration) -> Self {
        self.retry_timeout = timeout;
        self
    }

    /// How often the slot map is refreshed when nothing says it changed
    /// ([`DEFAULT_REFRESH_INTERVAL`]; `None`: only on MOVED and failures).
    pub fn refresh_interval(mut self, interval: Option<Duration>) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// How many redirections one command may follow ([`DEFAULT_MAX_REDIRECTS`]).
    pub fn max_redirects(mut self, redirects: usize) -> Self {
        self.max_redirects = redirects;
        self
    }

    /// The pool settings each node's pool gets (`max_connections` is per node).
    pub fn pool_config(mut self, config: PoolConfig) -> Self {
        self.pool = config;
        self
    }

    /// How long connecting to a node may take, overriding the URL's
    /// `connect_timeout` ([`DEFAULT_CONNECT_TIMEOUT`] when neither says).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Sends reads (commands that only read, each on one slot) to the
    /// slot's replicas in turn, between `READONLY` and `READWRITE`, and
    /// writes to its master. A replica lags its master by a little: a read
    /// may not see a write just made (`WAIT` bounds that). A replica that
    /// fails or redirects sends that read to the master. Off by default.
    pub fn read_from_replicas(mut self, on: bool) -> Self {
        self.read_from_replicas = on;
        self
    }

    /// Checks the URLs and makes the client. Nothing is connected yet: the
    /// first command loads the slot map.
    ///
    /// The URLs are all `redis://` ones, or all `rediss://` for TLS
    /// (mixing them is an [`Error::Config`]: a node given as `rediss://`
    /// is never dialled in plaintext, nor the reverse; the first
    /// one's credentials, client name, timeouts and TLS options are used
    /// for every node, each node's certificate checked against its own
    /// host unless `tls_server_name` is set); a cluster has only database 0.
    pub fn build(self) -> Result<ClusterClient> {
        let mut seeds = Vec::new();
        let mut template: Option<ConnectionInfo> = None;
        for url in &self.urls {
            let info = ConnectionInfo::from_url(url)?;
            let Addr::Tcp { host, port } = &info.addr else {
                return Err(Error::Config(format!(
                    "a cluster node is reached over TCP: {url} is not a redis:// or rediss:// URL"
                )));
            };
            if info.db != 0 {
                return Err(Error::Config(format!(
                    "Redis Cluster has only database 0, and {url} asks for database {}",
                    info.db
                )));
            }
            if let Some(first) = &template {
                if first.tls.is_some() != info.tls.is_some() {
                    let scheme = |tls: bool| if tls { "rediss://" } else { "redis://" };
                    return Err(Error::Config(format!(
                        "the cluster's seeds disagree on TLS: {} is {} and {url} is {}; \
                         every node is reached the same way, so give them all one scheme",
                        self.urls[0],
                        scheme(first.tls.is_some()),
                        scheme(info.tls.is_some()),
                    )));
                }
            }
            seeds.push(NodeAddr {
                host: host.clone(),
                port: *port,
            });
            template.get_or_insert(info);
        }
        let mut template = template.ok_or_else(|| {
            Error::Config("a cluster client needs at least one node's URL".into())
        })?;
        template.connect_timeout = self
            .connect_timeout
            .or(template.connect_timeout)
            .or(Some(DEFAULT_CONNECT_TIMEOUT));
        Ok(ClusterClient {
            shared: Rc::new(Shared {
                config: Config {
                    seeds,
                    retry_timeout: self.retry_timeout,
                    refresh_interval: self.refresh_interval,
                    max_redirects: self.max_redirects,
                    read_from_replicas: self.read_from_replicas,
                },
                topology: RefCell::new(Topology::empty()),
                nodes: Nodes::new(template, self.pool),
                refresh: Default::default(),
                learned: RefCell::new(HashMap::new()),
                next_master: Cell::new(0),
                next_replica: Cell::new(0),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_when_the_client_is_built() {
        let err = |urls: &[&str]| ClusterClient::open(urls).unwrap_err().to_string();
        assert!(err(&[]).contains("at least one"));
        assert!(err(&["redis://127.0.0.1:7000/2"]).contains("only database 0"));
        assert!(err(&["unix:///tmp/redis.sock"]).contains("TCP"));
        assert!(ClusterClient::open(&["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]).is_ok());
    }

    /// With the feature: without it, `from_url` refuses every `rediss://`
    /// URL before the seeds are compared.
    #[cfg(feature = "tls")]
    #[test]
    fn seeds_that_disagree_on_tls_are_refused() {
        for urls in [
            ["redis://127.0.0.1:7000", "rediss://127.0.0.1:7001"],
            ["rediss://127.0.0.1:7000", "redis://127.0.0.1:7001"],
        ] {
            match ClusterClient::open(&urls) {
                Err(Error::Config(msg)) => assert!(msg.contains("disagree on TLS"), "{msg}"),
                other => panic!("{urls:?}: {other:?}"),
            }
        }
    }
}
