//! What a cluster's error replies mean for the client, and how long to wait
//! before trying again. `dispatch.rs` calls [`judge`] on every error reply
//! and [`Backoff::pause`] between rounds that could not make progress.
//!
//! | reply | meaning | the client |
//! | --- | --- | --- |
//! | `MOVED slot host:port` | the slot lives there now | patches the slot, resends there, refreshes the map in the background |
//! | `ASK slot host:port` | this key is being migrated: this once, there | sends `ASKING` and the command there; the map is unchanged |
//! | `TRYAGAIN` | a multi-key command during a slot's migration | waits, resends |
//! | `CLUSTERDOWN` | the cluster has no quorum or an uncovered slot | waits, refreshes, resends |
//! | `LOADING` | the node is loading its data set | waits, resends |
//! | `MASTERDOWN`, `READONLY` | a replica without its master, or a write that reached a replica | waits, refreshes, resends |
//!
//! None of these replies means the command ran, so resending is always safe.
//! A blocking command resent after a redirection gets what is left of its
//! timeout ([`shorten_blocking`]), so it still ends when the caller expects.
//! Every wait is bounded by the call's deadline (`ClusterBuilder::retry_timeout`).
//! See `docs/cluster.md`, "Redirections".

use std::time::Duration;

use super::topology::NodeAddr;
use crate::cmd::{cmd, Cmd};
use crate::error::{Error, ServerError};

/// What an error reply asks the client to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not a cluster condition: the caller gets the error.
    Final,
    /// The slot moved for good.
    Moved {
        /// The slot.
        slot: u16,
        /// Its master now.
        to: NodeAddr,
    },
    /// Ask `to`, once, after ASKING.
    Ask {
        /// The node importing the slot.
        to: NodeAddr,
    },
    /// The cluster cannot serve the command now: wait, maybe refresh, resend.
    Later {
        /// Whether the slot map is likely stale (a write reached a replica,
        /// or the cluster is down: a failover may be under way).
        refresh: bool,
    },
}

/// The verdict on `err`, an error reply from the node at `asked`.
pub(crate) fn judge(err: &ServerError, asked: &NodeAddr) -> Verdict {
    match err.code.as_str() {
        "MOVED" | "ASK" => {
            let mut words = err.message.split_whitespace();
            let slot = words.next().and_then(|s| s.parse().ok());
            let to = words.next().and_then(|a| NodeAddr::parse(a, &asked.host));
            match (slot, to, err.code.as_str()) {
                (Some(slot), Some(to), "MOVED") => Verdict::Moved { slot, to },
                (Some(_), Some(to), _) => Verdict::Ask { to },
                _ => Verdict::Final,
            }
        }
        "TRYAGAIN" => Verdict::Later { refresh: false },
        "LOADING" if crate::retry::is_loading_refusal(err) => Verdict::Later { refresh: false },
        "CLUSTERDOWN" | "MASTERDOWN" | "READONLY" => Verdict::Later { refresh: true },
        _ => Verdict::Final,
    }
}

/// The pauses between rounds: the retry policy's (`retry.rs`), shared with
/// the single-node client.
pub(crate) use crate::retry::Backoff;

/// A copy of `err` for the other commands that failed with it (a pipeline's
/// commands on one broken connection). `Error` is not `Clone`, because an
/// `io::Error` is not; the copy keeps the kind and the message.
pub(crate) fn duplicate(err: &Error) -> Error {
    match err {
        Error::Io(io) if err.is_ambiguous() => {
            Error::Io(std::io::Error::new(io.kind(), io.to_string())).after_write()
        }
        Error::Io(io) => Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        Error::Timeout(what) => Error::Timeout(what.clone()),
        Error::Protocol(what) => Error::Protocol(what.clone()),
        Error::Server(err) => Error::Server(err.clone()),
        Error::Type { expected, got } => Error::Type {
            expected,
            got: got.clone(),
        },
        Error::PoolExhausted { max } => Error::PoolExhausted { max: *max },
        Error::ExecAborted => Error::ExecAborted,
        Error::Config(what) => Error::Config(what.clone()),
        Error::Usage(what) => Error::Usage(what.clone()),
        Error::Cluster(what) => Error::Cluster(what.clone()),
    }
}

/// A blocking command resent after a redirection, with what is left of
/// its timeout.
pub(crate) enum Shortened {
    NotBlocking,
    Remaining(Cmd),
    Expired,
}

/// BLPOP, BRPOP, BZPOPMIN, BZPOPMAX, BLMOVE and BRPOPLPUSH carry their
/// timeout (seconds) last, BLMPOP and BZMPOP first: the part of it not yet
/// spent, so a redirected call still ends when the caller expects. Zero
/// (wait forever) stays zero.
pub(crate) fn shorten_blocking(original: &Cmd, elapsed: Duration) -> Shortened {
    let args: Vec<&[u8]> = original.arg_bytes().collect();
    let name = args[0].to_ascii_uppercase();
    let at = match name.as_slice() {
        b"BLPOP" | b"BRPOP" | b"BZPOPMIN" | b"BZPOPMAX" | b"BLMOVE" | b"BRPOPLPUSH" => {
            args.len() - 1
        }
        b"BLMPOP" | b"BZMPOP" => 1,
        _ => return Shortened::NotBlocking,
    };
    let Some(seconds) = args
        .get(at)
        .and_then(|a| std::str::from_utf8(a).ok())
        .and_then(|a| a.parse::<f64>().ok())
    else {
        return Shortened::NotBlocking;
    };
    if seconds <= 0.0 {
        return Shortened::NotBlocking;
    }
    let left = seconds - elapsed.as_secs_f64();
    // Redis's timeouts have millisecond resolution.
    if left < 0.001 {
        return Shortened::Expired;
    }
    let mut shorter = cmd(&String::from_utf8_lossy(args[0]));
    for (i, arg) in args.iter().enumerate().skip(1) {
        if i == at {
            shorter.arg(format!("{left:.3}"));
        } else {
            shorter.arg(*arg);
        }
    }
    Shortened::Remaining(shorter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn asked() -> NodeAddr {
        NodeAddr {
            host: "10.0.0.1".into(),
            port: 7000,
        }
    }

    #[test]
    fn redirections_name_their_slot_and_node() {
        let moved = ServerError::parse("MOVED 3999 127.0.0.1:6381");
        assert_eq!(
            judge(&moved, &asked()),
            Verdict::Moved {
                slot: 3999,
                to: NodeAddr {
                    host: "127.0.0.1".into(),
                    port: 6381
                }
            }
        );
        let ask = ServerError::parse("ASK 3999 :6381");
        assert_eq!(
            judge(&ask, &asked()),
            Verdict::Ask {
                to: NodeAddr {
                    host: "10.0.0.1".into(),
                    port: 6381
                }
            },
            "an unknown endpoint is the asked node's host"
        );
        assert_eq!(
            judge(&ServerError::parse("MOVED garbage"), &asked()),
            Verdict::Final
        );
    }

    #[test]
    fn transient_conditions_are_retried_and_others_are_not() {
        let verdict = |line: &str| judge(&ServerError::parse(line), &asked());
        assert_eq!(
            verdict("TRYAGAIN Multiple keys request during rehashing of slot"),
            Verdict::Later { refresh: false }
        );
        assert_eq!(
            verdict("LOADING Redis is loading the dataset in memory"),
            Verdict::Later { refresh: false }
        );
        assert_eq!(
            verdict("CLUSTERDOWN The cluster is down"),
            Verdict::Later { refresh: true }
        );
        assert_eq!(
            verdict("READONLY You can't write against a read only replica."),
            Verdict::Later { refresh: true }
        );
        assert_eq!(verdict("WRONGTYPE Operation against a key"), Verdict::Final);
        assert_eq!(
            verdict("CROSSSLOT Keys in request don't hash to the same slot"),
            Verdict::Final
        );
    }

    #[test]
    fn a_backoff_gives_up_at_its_deadline_instead_of_sleeping_past_it() {
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut backoff = Backoff::new(deadline);
        let mut pauses = 0;
        while backoff.pause() {
            pauses += 1;
        }
        assert!(pauses >= 1, "a 5 ms first pause fits in 200 ms");
        assert!(!Backoff::new(Instant::now()).pause());
    }

    #[test]
    fn a_redirected_blocking_command_keeps_only_what_is_left_of_its_timeout() {
        let mut brpop = cmd("BRPOP");
        brpop.arg("a").arg("b").arg(2);
        let Shortened::Remaining(shorter) = shorten_blocking(&brpop, Duration::from_millis(500))
        else {
            panic!("still blocking");
        };
        let args: Vec<&[u8]> = shorter.arg_bytes().collect();
        assert_eq!(args, [&b"BRPOP"[..], b"a", b"b", b"1.500"]);
        assert!(matches!(
            shorten_blocking(&brpop, Duration::from_secs(3)),
            Shortened::Expired
        ));
        let mut forever = cmd("BLPOP");
        forever.arg("a").arg(0);
        assert!(matches!(
            shorten_blocking(&forever, Duration::from_secs(3)),
            Shortened::NotBlocking
        ));
        assert!(matches!(
            shorten_blocking(cmd("GET").arg("a"), Duration::ZERO),
            Shortened::NotBlocking
        ));
    }
}
