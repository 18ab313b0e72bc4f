//! Pipelines, transactions (MULTI/EXEC, WATCH), and Lua scripts.

use greenhub_redis::prelude::*;
use greenhub_redis::{pipe, transaction, Client, Error, Script, Value};
use greenhub_tests::RedisServer;

fn on_server(body: impl FnOnce(Client) + 'static) {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || body(Client::open(&url).unwrap()));
}

#[test]
fn a_pipeline_returns_results_in_order_in_one_round_trip() {
    on_server(|mut r| {
        let (a, b, c): (i64, i64, String) = pipe()
            .cmd("INCR")
            .arg("x")
            .cmd("INCRBY")
            .arg("x")
            .arg(10)
            .cmd("ECHO")
            .arg("done")
            .query(&mut r)
            .unwrap();
        assert_eq!((a, b, c.as_str()), (1, 11, "done"));
    });
}

#[test]
fn an_error_in_the_middle_is_kept_and_the_rest_still_run() {
    on_server(|mut r| {
        r.set("str", "x").unwrap();
        let values = pipe()
            .cmd("SET")
            .arg("before")
            .arg("1")
            .cmd("LPUSH")
            .arg("str")
            .arg("oops")
            .cmd("SET")
            .arg("after")
            .arg("2")
            .query_values(&mut r)
            .unwrap();
        assert_eq!(values.len(), 3);
        assert!(matches!(&values[1], Value::Error(e) if e.code == "WRONGTYPE"));
        assert_eq!(
            r.get::<String>("after").unwrap(),
            "2",
            "the command after the error ran"
        );
        let err = pipe()
            .cmd("LPUSH")
            .arg("str")
            .arg("oops")
            .query::<Vec<Value>>(&mut r)
            .unwrap_err();
        assert_eq!(err.code(), Some("WRONGTYPE"));
        assert_eq!(r.stats().created, 1);
    });
}

#[test]
fn an_atomic_pipeline_runs_in_multi_exec() {
    on_server(|mut r| {
        let (set, got): ((), String) = pipe()
            .atomic()
            .cmd("SET")
            .arg("k")
            .arg("v")
            .cmd("GET")
            .arg("k")
            .query(&mut r)
            .unwrap();
        let () = set;
        assert_eq!(got, "v");
        assert_eq!(
            r.stats().available,
            1,
            "the connection went back after EXEC"
        );
    });
}

#[test]
fn a_watch_conflict_made_by_another_coroutine_retries_the_transaction() {
    on_server(|r| {
        let mut setup = r.clone();
        setup.set("counter", 1).unwrap();
        let attempts = std::rc::Rc::new(std::cell::Cell::new(0));
        let seen = attempts.clone();
        let meddler_client = r.clone();
        let mut con = r.get_connection().unwrap();
        let (doubled,): (i64,) = transaction(&mut con, &["counter"], |con, pipe| {
            seen.set(seen.get() + 1);
            let value: i64 = con.get("counter")?;
            if seen.get() == 1 {
                // Another coroutine changes the watched key before EXEC.
                let mut other = meddler_client.clone();
                greenhub::spawn(move || other.incr("counter").unwrap())
                    .join()
                    .unwrap();
            }
            pipe.cmd("SET")
                .arg("counter")
                .arg(value * 2)
                .cmd("GET")
                .arg("counter");
            Ok(())
        })
        .map(|(_, v): ((), i64)| (v,))
        .unwrap();
        assert_eq!(attempts.get(), 2, "the first EXEC was aborted by the WATCH");
        assert_eq!(
            doubled, 4,
            "the retry saw the other coroutine's increment (2 * 2)"
        );
        drop(con);
        let stats = r.stats();
        assert_eq!(
            stats.available, stats.created,
            "both connections (the meddler's too) went back reusable"
        );
    });
}

#[test]
fn an_exec_aborted_by_watch_is_reported_as_such() {
    on_server(|r| {
        let mut con = r.get_connection().unwrap();
        con.req_command(greenhub_redis::cmd("WATCH").arg("w"))
            .unwrap();
        let mut other = r.clone();
        other.set("w", "changed").unwrap();
        let err = pipe()
            .atomic()
            .cmd("SET")
            .arg("w")
            .arg("mine")
            .query::<Vec<Value>>(&mut *con)
            .unwrap_err();
        assert!(matches!(err, Error::ExecAborted), "{err}");
    });
}

#[test]
fn a_connection_left_inside_multi_is_not_reused() {
    on_server(|r| {
        {
            let mut con = r.get_connection().unwrap();
            con.req_command(&greenhub_redis::cmd("MULTI")).unwrap();
        }
        let stats = r.stats();
        assert_eq!(
            (stats.created, stats.available),
            (1, 0),
            "closed, not pooled"
        );
        let mut again = r.clone();
        assert_eq!(again.ping().unwrap(), "PONG");
    });
}

#[test]
fn scripts_use_evalsha_and_fall_back_to_eval_on_noscript() {
    on_server(|mut r| {
        let script = Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
        assert_eq!(
            script
                .prepare()
                .key("c")
                .arg(5)
                .invoke::<i64>(&mut r)
                .unwrap(),
            5
        );
        // Now cached: EVALSHA succeeds directly.
        let cached: Vec<bool> = r
            .cmd("SCRIPT")
            .arg("EXISTS")
            .arg(script.hash())
            .query()
            .unwrap();
        assert_eq!(cached, [true]);
        assert_eq!(
            script
                .prepare()
                .key("c")
                .arg(1)
                .invoke::<i64>(&mut r)
                .unwrap(),
            6
        );
        r.cmd("SCRIPT").arg("FLUSH").query::<()>().unwrap();
        assert_eq!(
            script
                .prepare()
                .key("c")
                .arg(1)
                .invoke::<i64>(&mut r)
                .unwrap(),
            7,
            "reloaded after a flush"
        );
        let err = Script::new("return redis.call('NOPE')")
            .prepare()
            .invoke::<()>(&mut r)
            .unwrap_err();
        assert!(matches!(err, Error::Server(_)), "{err}");
    });
}

#[test]
fn pipeline_args_appends_each_item_to_the_last_command() {
    on_server(|mut r| {
        let keys = ["a", "b", "c"];
        let (pushed, listed): (i64, Vec<String>) = pipe()
            .cmd("RPUSH")
            .arg("list")
            .args(keys)
            .cmd("LRANGE")
            .arg("list")
            .args([0, -1])
            .query(&mut r)
            .unwrap();
        assert_eq!(
            (pushed, listed),
            (3, vec!["a".into(), "b".into(), "c".into()])
        );
    });
}

/// Regression: a command refused while queued came back as EXECABORT only;
/// its own error is what redis-py reports.
#[test]
fn a_command_refused_while_queued_fails_the_transaction_with_its_own_error() {
    on_server(|mut r| {
        let err = pipe()
            .atomic()
            .cmd("SET")
            .arg("a")
            .arg(1)
            .cmd("SET")
            .arg("only-a-key")
            .cmd("INCR")
            .arg("b")
            .query_values(&mut r)
            .unwrap_err();
        assert_eq!(err.code(), Some("ERR"), "{err}");
        assert!(
            err.to_string().contains("wrong number of arguments"),
            "{err}"
        );
        assert_eq!(r.get::<Option<i64>>("a").unwrap(), None, "nothing ran");
        assert_eq!(r.stats().available, 1, "the connection is in step");
    });
}
