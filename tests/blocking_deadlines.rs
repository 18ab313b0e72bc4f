//! Read deadlines of blocking commands: the server-side timeout, plus one
//! server tick (Redis answers blocking timeouts on its `hz` cron), plus the
//! socket timeout; 0 means forever; in a pipeline, each command's own.

use std::time::Duration;

use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, pipe, Client, Value};
use greenhub_tests::with_client;

/// A BRPOP's reply: the list's name and the element, or nil.
type Popped = Option<(String, String)>;

/// Polls INFO until `field` reads `value` (waits for a condition, not a time).
fn wait_for_info(client: &Client, field: &str, value: &str) {
    loop {
        let info: String = client.cmd("INFO").arg("clients").query().unwrap();
        let wanted = format!("{field}:{value}");
        if info.lines().any(|line| line.trim() == wanted) {
            return;
        }
        greenhub::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_pipeline_of_brpop_1_and_brpop_0_waits_for_the_second_instead_of_timing_out() {
    with_client("?socket_timeout=0.1", |mut r| {
        let pusher = {
            let mut r = r.clone();
            greenhub::spawn(move || {
                // BRPOP b 0 is blocked (it is not in the timeout table, as
                // BRPOP a 0.3 was); then wait longer than any deadline the
                // first command's timeout could give the second.
                wait_for_info(&r, "blocked_clients", "1");
                wait_for_info(&r, "clients_in_timeout_table", "0");
                greenhub::sleep(Duration::from_millis(700));
                r.lpush("b", &["finally"]).unwrap()
            })
        };
        let (first, second): (Popped, Popped) = pipe()
            .cmd("BRPOP")
            .arg("a")
            .arg(0.3)
            .cmd("BRPOP")
            .arg("b")
            .arg(0)
            .query(&mut r)
            .unwrap();
        assert_eq!(first, None);
        assert_eq!(second, Some(("b".into(), "finally".into())));
        pusher.join().unwrap();
    });
}

#[test]
fn brpop_of_a_quarter_second_under_a_20_ms_socket_timeout_returns_nil() {
    with_client("?socket_timeout=0.02", |mut r| {
        for _ in 0..10 {
            assert_eq!(r.brpop(&["empty"], 0.25).unwrap(), None);
        }
        let stats = r.stats();
        assert_eq!(
            (stats.created, stats.available),
            (1, 1),
            "no connection discarded"
        );
    });
}

#[test]
fn xreadgroup_with_a_group_named_block_blocks_for_its_block_option() {
    with_client("?socket_timeout=0.05", |mut r| {
        let created: String = cmd("XGROUP")
            .arg("CREATE")
            .arg("s")
            .arg("block")
            .arg("$")
            .arg("MKSTREAM")
            .query(&mut r)
            .unwrap();
        assert_eq!(created, "OK");
        let nothing: Value = cmd("XREADGROUP")
            .arg("GROUP")
            .arg("block")
            .arg("consumer")
            .arg("BLOCK")
            .arg(200)
            .arg("STREAMS")
            .arg("s")
            .arg(">")
            .query(&mut r)
            .unwrap();
        assert_eq!(
            nothing,
            Value::Nil,
            "timed out on the server, not the client"
        );
        assert_eq!(r.stats().created, 1);
    });
}
