//! A pooled connection is used only in the context it was made in: a std
//! socket from a plain thread never runs inside a hub (it would block the
//! hub's thread), and a cooperative socket from one hub never runs on a
//! plain thread or in another hub. The pool closes such a connection, counts
//! it in `Discards::other_context`, and opens a fresh one.

use std::time::Duration;

use greenhub_redis::prelude::*;
use greenhub_redis::{Client, Value};
use greenhub_tests::RedisServer;

/// Polls INFO until `field` reads `value` (a condition, not a time).
fn wait_for_info(client: &Client, field: &str, value: &str) {
    let wanted = format!("{field}:{value}");
    loop {
        let info: String = client.cmd("INFO").arg("clients").query().unwrap();
        if info.lines().any(|line| line.trim() == wanted) {
            return;
        }
        if greenhub::hub_id().is_some() {
            greenhub::sleep(Duration::from_millis(5));
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// In a hub: a BRPOP on `client` while another coroutine pushes once the
/// BRPOP is blocked. On a frozen hub the pusher never runs and BRPOP's
/// timeout returns nil.
fn brpop_while_another_coroutine_pushes(client: &Client) -> Option<(String, String)> {
    let mut popper = client.clone();
    let pusher = {
        let mut pusher = client.clone();
        greenhub::spawn(move || {
            wait_for_info(&pusher, "blocked_clients", "1");
            pusher.lpush("handoff", &["item"]).unwrap();
        })
    };
    let popped = popper.brpop(&["handoff"], 5.0).unwrap();
    pusher.join().unwrap();
    popped.map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
}

#[test]
fn a_connection_pooled_on_a_plain_thread_is_not_used_inside_a_hub() {
    let server = RedisServer::start();
    let client = Client::open(&(server.url() + "?socket_timeout=10")).unwrap();
    assert_eq!(client.clone().ping().unwrap(), "PONG");
    assert_eq!(client.stats().available, 1, "a std connection is pooled");
    let in_hub = client.clone();
    let popped = greenhub::run(move || brpop_while_another_coroutine_pushes(&in_hub));
    assert_eq!(
        popped,
        Some(("handoff".into(), "item".into())),
        "the hub never froze"
    );
    assert_eq!(client.pool().discards().other_context, 1);
}

#[test]
fn a_connection_made_in_one_hub_is_not_used_in_the_next_one() {
    let server = RedisServer::start();
    let client = Client::open(&(server.url() + "?socket_timeout=10")).unwrap();
    let first = client.clone();
    greenhub::run(move || {
        // Two connections pooled in the first hub.
        let a = first.get_connection().unwrap();
        let b = first.get_connection().unwrap();
        drop((a, b));
        assert_eq!(first.stats().available, 2);
    });
    let second = client.clone();
    let popped = greenhub::run(move || brpop_while_another_coroutine_pushes(&second));
    assert_eq!(popped, Some(("handoff".into(), "item".into())));
    assert_eq!(client.pool().discards().other_context, 2);
    // The old hub's sockets were shut down: the server sees only live ones.
    let mut check = Client::open(&server.url()).unwrap();
    loop {
        let list: String = check.cmd("CLIENT").arg("LIST").query().unwrap();
        if list.lines().count() <= client.stats().available + 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(check.get::<Option<String>>("handoff").unwrap(), None);
}

#[test]
fn a_connection_made_in_a_hub_is_not_used_on_a_plain_thread_afterwards() {
    let server = RedisServer::start();
    let mut client = Client::open(&server.url()).unwrap();
    let in_hub = client.clone();
    greenhub::run(move || in_hub.clone().set("k", "from the hub").unwrap());
    assert_eq!(client.get::<String>("k").unwrap(), "from the hub");
    assert_eq!(client.pool().discards().other_context, 1);
    assert_eq!(client.stats().created, 2);
}

#[test]
fn a_client_dropped_in_a_later_hub_leaves_that_hub_working() {
    let server = RedisServer::start();
    let old = Client::open(&server.url()).unwrap();
    let used = old.clone();
    greenhub::run(move || {
        used.clone().set("k", "v").unwrap();
    });
    let url = server.url();
    let replies = greenhub::run(move || {
        // The new hub's first socket takes the same token the old hub's did.
        let mut fresh = Client::open(&url).unwrap();
        assert_eq!(fresh.ping().unwrap(), "PONG");
        drop(old);
        // Still woken by its own socket's readiness: many round trips.
        let replies: Vec<Value> = (0..100)
            .map(|_| fresh.cmd("PING").query().unwrap())
            .collect();
        let popped = brpop_while_another_coroutine_pushes(&fresh);
        (replies.len(), popped)
    });
    assert_eq!(replies, (100, Some(("handoff".into(), "item".into()))));
}

#[test]
fn a_connection_used_outside_its_context_is_a_clear_error() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let err = greenhub::run(move || {
        let err = con.ping().unwrap_err();
        drop(con);
        err
    });
    let message = err.to_string();
    assert!(
        message.contains("made on a plain thread")
            && message.contains("cannot be used on greenhub hub"),
        "{message}"
    );
}
