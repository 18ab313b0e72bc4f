//! Session state the server may not have taken, and pools under a full
//! server, from the review of issue 12. Each test states what must hold and
//! was a regression when written: session effects were noted when a command
//! was sent, as if it ran, so a refused or never-run command could move the
//! note back to the baseline while the server's state stayed changed, and
//! the pool reused the connection. Now a change back counts only once its
//! own reply says it ran.

use greenhub_redis::prelude::*;
use greenhub_redis::{pipe, Client, ConnectionInfo, PoolConfig, Value};
use greenhub_tests::{with_client, RedisServer};

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

fn client_info(r: &Client) -> String {
    r.cmd("CLIENT").arg("INFO").query::<String>().unwrap()
}

// What goes wrong: `SELECT 0 extra` is refused by the server (wrong number
// of arguments), but session.rs notes `db = 0` from its first argument
// (Session::note, the `is("SELECT")` arm), so a connection still on
// database 5 looks like the baseline and goes back to the pool; the next
// GET on "database 0" reads database 5.
#[test]
fn a_refused_select_does_not_put_a_connection_on_another_database_back_in_the_pool() {
    with_client("", |mut r| {
        r.set("k", "db0").unwrap();
        let replies = pipe()
            .cmd("SELECT")
            .arg(5)
            .cmd("SET")
            .arg("k")
            .arg("db5")
            .cmd("SELECT")
            .arg(0)
            .arg("extra")
            .query_values(&mut r)
            .unwrap();
        assert!(matches!(replies[2], Value::Error(_)), "{replies:?}");
        assert_eq!(
            r.get::<String>("k").unwrap(),
            "db0",
            "a GET on the URL's database 0 read database 5 ({})",
            client_info(&r)
        );
    });
}

// What goes wrong: commands queued inside MULTI are noted as if they ran.
// `SELECT 5`, then `MULTI; SELECT 0; DISCARD`: the discarded SELECT 0 never
// ran, the server is still on database 5, but the session says 0 (the
// baseline) and the pool reuses the connection.
#[test]
fn a_select_queued_in_a_discarded_transaction_does_not_count_as_run() {
    with_client("", |mut r| {
        r.set("k", "db0").unwrap();
        pipe()
            .cmd("SELECT")
            .arg(5)
            .cmd("SET")
            .arg("k")
            .arg("db5")
            .cmd("MULTI")
            .cmd("SELECT")
            .arg(0)
            .cmd("DISCARD")
            .query::<()>(&mut r)
            .unwrap();
        assert_eq!(
            r.get::<String>("k").unwrap(),
            "db0",
            "a GET on the URL's database 0 read database 5 ({})",
            client_info(&r)
        );
    });
}

// What goes wrong: `DISCARD` (or `EXEC`) without MULTI is refused and leaves
// a WATCH in place (Redis returns before unwatching), but Session::note
// clears `watching` for any DISCARD/EXEC sent. The connection goes back to
// the pool still watching "w"; the next user's transaction, which watched
// nothing, is aborted when someone else writes "w".
#[test]
fn a_refused_discard_does_not_leave_a_watch_for_the_next_user() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut r = Client::open(&url).unwrap();
        let replies = pipe()
            .cmd("WATCH")
            .arg("w")
            .cmd("DISCARD")
            .query_values(&mut r)
            .unwrap();
        assert!(matches!(replies[1], Value::Error(_)), "{replies:?}");
        // Someone else changes the key the first user watched.
        server.raw_command(&["SET", "w", "changed"]);
        // The next user: a transaction that watches nothing.
        let result = pipe()
            .atomic()
            .cmd("SET")
            .arg("x")
            .arg(1)
            .query::<((),)>(&mut r);
        assert!(
            result.is_ok(),
            "a transaction without WATCH was aborted by the previous user's WATCH: {result:?} \
             (created {})",
            r.stats().created
        );
    });
}

// What goes wrong: `CLIENT TRACKING OFF bogus` is a syntax error and
// tracking stays on, but Session::client notes `tracking = false` for any
// `CLIENT TRACKING OFF ...`; the pool reuses a connection the server tracks.
#[test]
fn a_refused_client_tracking_off_does_not_return_a_tracked_connection_to_the_pool() {
    with_client("?protocol=3", |mut r| {
        let replies = pipe()
            .cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .cmd("CLIENT")
            .arg("TRACKING")
            .arg("OFF")
            .arg("bogus")
            .query_values(&mut r)
            .unwrap();
        assert!(matches!(replies[1], Value::Error(_)), "{replies:?}");
        let info = client_info(&r);
        let flags = info
            .split(' ')
            .find_map(|f| f.strip_prefix("flags="))
            .unwrap_or("");
        assert!(
            !flags.contains('t'),
            "the next user got a connection with CLIENT TRACKING on: {info}"
        );
    });
}

// What goes wrong: `HELLO 3`, then `MULTI; HELLO 2; DISCARD`: HELLO is queued
// (and discarded), the server still speaks RESP3, the session notes RESP2
// (the baseline) and the pool reuses a RESP3 connection on a RESP2 client.
#[test]
fn a_hello_queued_in_a_discarded_transaction_does_not_count_as_run() {
    with_client("", |mut r| {
        pipe()
            .cmd("HELLO")
            .arg(3)
            .cmd("MULTI")
            .cmd("HELLO")
            .arg(2)
            .cmd("DISCARD")
            .query_values(&mut r)
            .unwrap();
        let info = client_info(&r);
        assert!(
            info.contains("resp=2"),
            "the next user of a RESP2 client got a RESP3 connection: {info}"
        );
    });
}

// What goes wrong: every command of a pipeline is noted before the write,
// so while LRANGE's reply is read the session already says "subscribed";
// on RESP2 (framing.rs out_of_band) an array whose first element is
// "message" is then taken for a published message and handed to the push
// handler. LRANGE's caller gets SUBSCRIBE's confirmation, and SUBSCRIBE's
// read waits for a confirmation that already went (here: until the socket
// timeout).
#[test]
fn a_list_that_looks_like_a_message_reaches_its_lrange_before_a_pipelined_subscribe() {
    with_client("?socket_timeout=5", |mut r| {
        r.rpush("l", &["message", "chan", "body"]).unwrap();
        let replies = pipe()
            .cmd("LRANGE")
            .arg("l")
            .arg(0)
            .arg(-1)
            .cmd("SUBSCRIBE")
            .arg("c")
            .query_values(&mut r);
        let replies = replies.expect("the pipeline's replies");
        assert_eq!(
            replies[0],
            Value::Array(vec![bulk("message"), bulk("chan"), bulk("body")]),
            "LRANGE's reply went elsewhere: {replies:?}"
        );
    });
}

// What goes wrong: an UNSUBSCRIBE of all channels counts its confirmations
// from the subscriptions confirmed so far (Session::note,
// `self.subscriptions.of(kind)`), but in a pipeline SUBSCRIBE's
// confirmations are not read yet when UNSUBSCRIBE is noted: it expects 1,
// the server sends 2, and on RESP2 the second one is returned as PING's
// reply.
#[test]
fn a_pipelined_unsubscribe_from_all_reads_every_confirmation() {
    with_client("?socket_timeout=5", |mut r| {
        let replies = pipe()
            .cmd("SUBSCRIBE")
            .arg("a")
            .arg("b")
            .cmd("UNSUBSCRIBE")
            .cmd("PING")
            .query_values(&mut r)
            .expect("the pipeline's replies");
        // UNSUBSCRIBE from all gets both confirmations as its reply...
        // (in the server's order, which is not the SUBSCRIBE's).
        let Value::Array(confirmations) = &replies[1] else {
            panic!("UNSUBSCRIBE did not get its own confirmations: {replies:?}");
        };
        let counts: Vec<&Value> = confirmations
            .iter()
            .map(|c| match c {
                Value::Array(items) if items.first() == Some(&bulk("unsubscribe")) => &items[2],
                _ => panic!("UNSUBSCRIBE did not get its own confirmations: {replies:?}"),
            })
            .collect();
        assert_eq!(
            counts,
            [&Value::Int(1), &Value::Int(0)],
            "UNSUBSCRIBE did not get its own confirmations: {replies:?}"
        );
        // ...and PING its own: the connection subscribes to nothing by then,
        // so the server answers a plain PONG (not pub/sub's ["pong", ""]).
        assert_eq!(
            replies[2],
            Value::Status("PONG".into()),
            "PING got another command's reply: {replies:?}"
        );
    });
}

// What goes wrong: Pool::get calls `self.fill()?` whenever fewer than
// min_idle connections are open (pool.rs, top of `get`); when the server
// refuses more clients, fill fails and so does every checkout, although
// connections sit idle in the pool. And fill pools connections the server
// accepted only to refuse (with no AUTH/SELECT in the handshake nothing is
// read, so "max number of clients reached" is not seen): the pool counts
// 5 idle connections against a maxclients of 3, and hands the dead ones out.
#[test]
fn a_min_idle_the_server_cannot_reach_does_not_fail_checkouts_while_connections_are_idle() {
    let server = RedisServer::start_with(&["--maxclients", "3"]);
    let info = ConnectionInfo::from_url(&server.url()).unwrap();
    greenhub::run(move || {
        let config = PoolConfig {
            min_idle: 6,
            ..PoolConfig::default()
        };
        let mut r = Client::with_config(info, config);
        let mut results = Vec::new();
        for _ in 0..3 {
            results.push(r.set("k", "v").map_err(|e| e.to_string()));
        }
        assert!(
            results.iter().all(|r| r.is_ok()),
            "checkouts failed with {} connections open and idle: {results:?}",
            r.stats().available
        );
    });
}
