//! Where and how to connect: [`ConnectionInfo`], parsed from a URL.
//!
//! `redis://[[user]:password@]host[:port][/db][?option=value...]` for TCP and
//! `unix:///path/to/redis.sock[?db=N&password=...]` for a Unix socket, and
//! `rediss://...` (the same as `redis://`) for TCP with TLS (feature `tls`).
//! Options: `db`, `username`, `password`, `client_name`, `connect_timeout`,
//! `socket_timeout` (seconds, fractions allowed), `max_reply_bytes`,
//! `protocol` (`2`, the default, or `3`: RESP3 after `HELLO 3`); for
//! `rediss://` only, `tls_ca`, `tls_cert`, `tls_key` (PEM file paths),
//! `tls_server_name` and `tls_insecure` ([`TlsOptions`], `docs/tls.md`). The
//! password is kept out of `Debug` and every message.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::resp::Limits;

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    /// A host name or IP address and a port.
    Tcp {
        /// Host name or IP literal (without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A Unix domain socket.
    Unix(PathBuf),
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Addr::Tcp { host, port } => write!(f, "{host}:{port}"),
            Addr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// The RESP version a connection speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2, what every server speaks on connect.
    #[default]
    Resp2,
    /// RESP3, asked for with `HELLO 3` on connect: maps, sets, doubles,
    /// booleans, and out-of-band pushes (pub/sub messages, invalidations).
    Resp3,
}

/// How a `rediss://` connection sets up TLS (`docs/tls.md`). Used only
/// with the `tls` feature; without it a URL that asks for TLS is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the CA certificates that may sign the server's
    /// (`tls_ca`); `None`: the system's bundle.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate chain, for servers that ask for
    /// one (`tls_cert`, mutual TLS); with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (`tls_key`).
    pub key_file: Option<PathBuf>,
    /// The name the server's certificate must be valid for, sent as SNI
    /// (`tls_server_name`); `None`: the host the connection goes to.
    pub server_name: Option<String>,
    /// Accept any server certificate (`tls_insecure=yes`): for tests only,
    /// and a warning is logged when it is used.
    pub insecure: bool,
}

/// Everything needed to open and set up a connection.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The server's address.
    pub addr: Addr,
    /// Database selected on connect (`SELECT`), 0 by default.
    pub db: i64,
    /// ACL user name for `AUTH`, if any.
    pub username: Option<String>,
    /// Password for `AUTH`; never printed.
    pub password: Option<String>,
    /// Name set with `CLIENT SETNAME` on connect.
    pub client_name: Option<String>,
    /// Bound on establishing the connection.
    pub connect_timeout: Option<Duration>,
    /// Bound on each read and write; a blocking command adds its own timeout.
    pub socket_timeout: Option<Duration>,
    /// What the parser accepts: the largest reply (`max_reply_bytes` in the
    /// URL; 512 MiB by default) and the deepest nesting.
    pub limits: Limits,
    /// The protocol (`protocol=3` in the URL for RESP3).
    pub protocol: Protocol,
    /// TLS over the TCP connection (`rediss://`), or `None` for plaintext.
    pub tls: Option<TlsOptions>,
}

impl fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("addr", &self.addr)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("client_name", &self.client_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("socket_timeout", &self.socket_timeout)
            .field("limits", &self.limits)
            .field("protocol", &self.protocol)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ConnectionInfo {
    /// Parses a `redis://` or `unix://` URL.
    ///
    /// ```
    /// let info = greenhub_redis::ConnectionInfo::from_url("redis://:s3cret@localhost:6380/2").unwrap();
    /// assert_eq!(info.db, 2);
    /// assert!(!format!("{info:?}").contains("s3cret"));
    /// ```
    pub fn from_url(url: &str) -> Result<ConnectionInfo> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| Error::Config(format!("not a URL (no scheme): {}", redact(url))))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut info = ConnectionInfo {
            addr: Addr::Unix(PathBuf::new()),
            db: 0,
            username: None,
            password: None,
            client_name: None,
            connect_timeout: None,
            socket_timeout: None,
            limits: Limits::default(),
            protocol: Protocol::Resp2,
            tls: None,
        };
        match scheme {
            "redis" => info.parse_tcp(rest)?,
            "rediss" if cfg!(feature = "tls") => {
                info.parse_tcp(rest)?;
                info.tls = Some(TlsOptions::default());
            }
            "rediss" => {
                return Err(Error::Config(
                    "rediss:// (TLS) needs greenhub-redis's `tls` feature, which this build lacks"
                        .into(),
                ))
            }
            "unix" | "redis+unix" => {
                if rest.is_empty() {
                    return Err(Error::Config("unix:// URL without a socket path".into()));
                }
                info.addr = Addr::Unix(PathBuf::from(decode(rest)?));
            }
            other => {
                return Err(Error::Config(format!(
                    "unknown URL scheme {other:?} (use redis://, rediss:// or unix://)"
                )))
            }
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value)?;
            match key {
                "db" => info.db = parse_db(&value)?,
                "username" | "user" => info.username = Some(value),
                "password" => info.password = Some(value),
                "client_name" => info.client_name = Some(value),
                "connect_timeout" => info.connect_timeout = Some(parse_seconds(key, &value)?),
                "socket_timeout" => info.socket_timeout = Some(parse_seconds(key, &value)?),
                "max_reply_bytes" => {
                    info.limits.max_bulk = value.parse().map_err(|_| {
                        Error::Config(format!(
                            "max_reply_bytes must be a number of bytes, not {value:?}"
                        ))
                    })?
                }
                "protocol" => {
                    info.protocol = match value.as_str() {
                        "2" => Protocol::Resp2,
                        "3" => Protocol::Resp3,
                        _ => {
                            return Err(Error::Config(format!(
                                "protocol must be 2 or 3, not {value:?}"
                            )))
                        }
                    }
                }
                "tls_ca" | "tls_cert" | "tls_key" | "tls_server_name" | "tls_insecure" => {
                    let Some(tls) = info.tls.as_mut() else {
                        return Err(Error::Config(format!(
                            "{key} is a TLS option: use a rediss:// URL"
                        )));
                    };
                    match key {
                        "tls_ca" => tls.ca_file = Some(value.into()),
                        "tls_cert" => tls.cert_file = Some(value.into()),
                        "tls_key" => tls.key_file = Some(value.into()),
                        "tls_server_name" => tls.server_name = Some(value),
                        _ => tls.insecure = parse_switch(key, &value)?,
                    }
                }
                other => return Err(Error::Config(format!("unknown URL option {other:?}"))),
            }
        }
        Ok(info)
    }

    fn parse_tcp(&mut self, rest: &str) -> Result<()> {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_port = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                self.username = Some(decode(user)?).filter(|u| !u.is_empty());
                self.password = Some(decode(password)?).filter(|p| !p.is_empty());
                host_port
            }
            None => authority,
        };
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| Error::Config("unclosed [ in an IPv6 host".into()))?;
            (host, after.strip_prefix(':'))
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        let port = match port {
            Some(port) => port
                .parse()
                .map_err(|_| Error::Config(format!("bad port {port:?}")))?,
            None => 6379,
        };
        let host = if host.is_empty() { "127.0.0.1" } else { host };
        self.addr = Addr::Tcp {
            host: host.to_owned(),
            port,
        };
        if !path.is_empty() {
            self.db = parse_db(path)?;
        }
        Ok(())
    }
}

fn parse_db(text: &str) -> Result<i64> {
    text.parse()
        .map_err(|_| Error::Config(format!("bad database number {text:?}")))
}

fn parse_switch(key: &str, text: &str) -> Result<bool> {
    match text {
        "" | "yes" | "true" | "1" => Ok(true),
        "no" | "false" | "0" => Ok(false),
        _ => Err(Error::Config(format!(
            "{key} must be yes or no, not {text:?}"
        ))),
    }
}

fn parse_seconds(key: &str, text: &str) -> Result<Duration> {
    text.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::Config(format!(
                "{key} must be a positive number of seconds, not {text:?}"
            ))
        })
}

/// Percent-decoding, for passwords and paths with reserved characters.
fn decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::Config("bad percent-escape in the URL".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::Config("the URL decodes to invalid UTF-8".into()))
}

/// The URL with any password replaced, for error messages.
fn redact(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return url.to_owned();
    };
    match url.find("://") {
        Some(scheme) if scheme < at => {
            format!("{}://<credentials hidden>{}", &url[..scheme], &url[at..])
        }
        _ => format!("<credentials hidden>{}", &url[at..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_address_credentials_and_options() {
        let info = ConnectionInfo::from_url(
            "redis://alice:p%40ss@[::1]:7000/3?socket_timeout=0.5&client_name=w1",
        )
        .unwrap();
        assert_eq!(
            info.addr,
            Addr::Tcp {
                host: "::1".into(),
                port: 7000
            }
        );
        assert_eq!(
            (info.username.as_deref(), info.password.as_deref()),
            (Some("alice"), Some("p@ss"))
        );
        assert_eq!(info.db, 3);
        assert_eq!(info.socket_timeout, Some(Duration::from_millis(500)));
        assert_eq!(info.client_name.as_deref(), Some("w1"));
        assert_eq!(info.protocol, Protocol::Resp2);
        let resp3 = ConnectionInfo::from_url("redis://localhost?protocol=3").unwrap();
        assert_eq!(resp3.protocol, Protocol::Resp3);
        assert!(ConnectionInfo::from_url("redis://localhost?protocol=4").is_err());
        let unix = ConnectionInfo::from_url("unix:///tmp/redis.sock?db=4").unwrap();
        assert_eq!(
            (unix.addr, unix.db),
            (Addr::Unix("/tmp/redis.sock".into()), 4)
        );
        let plain = ConnectionInfo::from_url("redis://localhost").unwrap();
        assert_eq!(
            plain.addr,
            Addr::Tcp {
                host: "localhost".into(),
                port: 6379
            }
        );
    }

    #[test]
    fn bad_urls_are_clear_errors_that_hide_the_password() {
        let err = ConnectionInfo::from_url("http://user:hunter2@host")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown URL scheme") && !err.contains("hunter2"),
            "{err}"
        );
        let err = ConnectionInfo::from_url("user:hunter2@host")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(ConnectionInfo::from_url("redis://host:notaport").is_err());
        assert!(ConnectionInfo::from_url("redis://host/x").is_err());
        assert!(ConnectionInfo::from_url("redis://host?socket_timeout=0").is_err());
        let err = ConnectionInfo::from_url("redis://host?tls_ca=/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rediss://"), "{err}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn rediss_urls_carry_their_tls_options() {
        let info = ConnectionInfo::from_url(
            "rediss://:pw@redis.example:6380/1?tls_ca=/etc/ca%20dir/ca.pem&tls_cert=c.pem&tls_key=k.pem&tls_server_name=r1",
        )
        .unwrap();
        assert_eq!(info.db, 1);
        assert_eq!(
            info.tls,
            Some(TlsOptions {
                ca_file: Some("/etc/ca dir/ca.pem".into()),
                cert_file: Some("c.pem".into()),
                key_file: Some("k.pem".into()),
                server_name: Some("r1".into()),
                insecure: false,
            })
        );
        let insecure = ConnectionInfo::from_url("rediss://h?tls_insecure=yes").unwrap();
        assert!(insecure.tls.unwrap().insecure);
        assert!(ConnectionInfo::from_url("rediss://h?tls_insecure=maybe").is_err());
        assert_eq!(
            ConnectionInfo::from_url("rediss://h").unwrap().tls,
            Some(TlsOptions::default())
        );
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn rediss_urls_without_the_feature_say_which_feature() {
        let err = ConnectionInfo::from_url("rediss://h")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`tls` feature"), "{err}");
    }
}
