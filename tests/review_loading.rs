//! Review of the LOADING retries (`RetryPolicy`, the cluster client's
//! units): paths where a retry could run a command twice, or where the docs
//! and the code could disagree. Each test says which promise it checks.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use greenhub::net::{TcpListener, UnixListener};
use greenhub_redis::prelude::*;
use greenhub_redis::{cmd, Client, RetryPolicy};
use greenhub_tests::{until_refused_while_loading, Fault, FaultProxy, RedisServer};

/// What a fake server does with one command.
enum Answer {
    /// Writes these bytes.
    Reply(Vec<u8>),
    /// Closes the connection without a reply (after the command "ran").
    Close,
}

/// Splits the complete RESP commands off the front of `buf`.
fn commands(buf: &mut Vec<u8>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    loop {
        let mut at = 0;
        let line = |at: &mut usize, buf: &[u8]| -> Option<String> {
            let end = buf[*at..].windows(2).position(|w| w == b"\r\n")? + *at;
            let text = String::from_utf8_lossy(&buf[*at..end]).into_owned();
            *at = end + 2;
            Some(text)
        };
        let Some(head) = line(&mut at, buf) else {
            break;
        };
        let n: usize = head.trim_start_matches('*').parse().unwrap();
        let mut args = Vec::new();
        let mut complete = true;
        for _ in 0..n {
            let Some(len) = line(&mut at, buf) else {
                complete = false;
                break;
            };
            let len: usize = len.trim_start_matches('$').parse().unwrap();
            if buf.len() < at + len + 2 {
                complete = false;
                break;
            }
            args.push(String::from_utf8_lossy(&buf[at..at + len]).into_owned());
            at += len + 2;
        }
        if !complete {
            break;
        }
        buf.drain(..at);
        out.push(args);
    }
    out
}

/// What the fake server answers each command with, given its connection's number.
type Answerer = Rc<dyn Fn(usize, &[String]) -> Answer>;

/// Serves one accepted connection: each command goes to `answer` with the
/// connection's number.
fn serve<S: Read + Write>(mut conn: S, number: usize, answer: Answerer) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        for args in commands(&mut buf) {
            match answer(number, &args) {
                Answer::Reply(bytes) => out.extend_from_slice(&bytes),
                Answer::Close => {
                    let _ = conn.write_all(&out);
                    return;
                }
            }
        }
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

/// A fake server on a Unix socket, inside the running hub; its URL.
fn fake_unix_server(answer: impl Fn(usize, &[String]) -> Answer + 'static) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "greenhub-rv-loading-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fake.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let answer: Answerer = Rc::new(answer);
    greenhub::spawn(move || {
        let mut number = 0;
        while let Ok((conn, _)) = listener.accept() {
            number += 1;
            let answer = answer.clone();
            greenhub::spawn(move || serve(conn, number, answer));
        }
    });
    format!("unix://{}?socket_timeout=30", path.display())
}

const LOADING: &[u8] = b"-LOADING Redis is loading the dataset in memory\r\n";

/// docs/reliability.md, "Retries": "sent, then the connection was lost |
/// only read-only commands ... and commands marked with Cmd::idempotent()";
/// "So INCR, LPUSH and EVAL are never repeated after they were sent". Here
/// an INCR is refused with LOADING (ran nothing), sent again (fine), runs,
/// and its connection is cut before the reply: it may have run, so it must
/// not be sent a third time. The first failure (LOADING, not ambiguous)
/// made `RetryPolicy::run` treat every later attempt as repeatable.
#[test]
fn an_incr_retried_after_loading_is_not_sent_again_after_its_reply_was_lost() {
    greenhub::run(|| {
        let ran = Rc::new(Cell::new(0i64));
        let seen = Rc::new(Cell::new(0usize));
        let url = {
            let (ran, seen) = (ran.clone(), seen.clone());
            fake_unix_server(move |_conn, args| {
                assert_eq!(args[0], "INCR", "{args:?}");
                seen.set(seen.get() + 1);
                match seen.get() {
                    // A loading server refuses it: nothing ran.
                    1 => Answer::Reply(LOADING.to_vec()),
                    // Loaded: it runs, and the connection is lost before
                    // the reply.
                    2 => {
                        ran.set(ran.get() + 1);
                        Answer::Close
                    }
                    _ => {
                        ran.set(ran.get() + 1);
                        Answer::Reply(format!(":{}\r\n", ran.get()).into_bytes())
                    }
                }
            })
        };
        let mut redis = Client::open(&url).unwrap();
        let result = redis.incr("counter");
        println!(
            "INCR: {result:?}; INCR received {} times, run {} times",
            seen.get(),
            ran.get()
        );
        assert!(
            matches!(&result, Err(err) if err.is_ambiguous()),
            "the INCR's reply was lost after it ran: the caller must get an ambiguous error, got {result:?}"
        );
        assert_eq!(ran.get(), 1, "the INCR ran more than once");
    });
}

/// The same through a pipeline of writes, every command refused with
/// LOADING first (so `refused_while_loading` turns it into a retry).
#[test]
fn a_pipeline_retried_after_loading_is_not_sent_again_after_its_replies_were_lost() {
    greenhub::run(|| {
        let ran = Rc::new(Cell::new(0i64));
        let seen = Rc::new(Cell::new(0usize));
        let url = {
            let (ran, seen) = (ran.clone(), seen.clone());
            fake_unix_server(move |_conn, args| {
                assert_eq!(args[0], "INCR", "{args:?}");
                seen.set(seen.get() + 1);
                match seen.get() {
                    1 | 2 => Answer::Reply(LOADING.to_vec()),
                    3 => {
                        ran.set(ran.get() + 1);
                        Answer::Reply(format!(":{}\r\n", ran.get()).into_bytes())
                    }
                    4 => {
                        ran.set(ran.get() + 1);
                        Answer::Close
                    }
                    _ => {
                        ran.set(ran.get() + 1);
                        Answer::Reply(format!(":{}\r\n", ran.get()).into_bytes())
                    }
                }
            })
        };
        let mut redis = Client::open(&url).unwrap();
        let mut pipe = greenhub_redis::pipe();
        pipe.cmd("INCR").arg("a").cmd("INCR").arg("b");
        let result = pipe.query::<(i64, i64)>(&mut redis);
        println!(
            "pipeline: {result:?}; INCR received {} times, run {} times",
            seen.get(),
            ran.get()
        );
        assert!(
            matches!(&result, Err(err) if err.is_ambiguous()),
            "the pipeline's replies were lost after it ran: expected an ambiguous error, got {result:?}"
        );
        assert_eq!(ran.get(), 2, "the pipeline's INCRs ran more than once");
    });
}

/// The first finding against a real redis-server, through the fault proxy:
/// an INCR sent while the restarted server loads is refused (LOADING); once
/// the loading ends, every reply from the server is cut in its middle (the
/// proxy's `CutMidReply`, as a reset would). Each cut INCR may have run
/// (ambiguous, and `tests/retries.rs` shows such an INCR is not repeated
/// without the LOADING first); here the client repeats it until its policy's
/// time runs out, and the counter counts every repeat.
#[test]
fn an_incr_refused_while_loading_and_then_cut_runs_once_on_a_real_server() {
    let mut server = RedisServer::start_loading_for_a_second();
    let direct = server.url();
    let proxy = std::sync::Arc::new(FaultProxy::start(server.addr()));
    let url = proxy.url();
    let cutter = proxy.clone();
    let restarted = std::thread::spawn(move || {
        server.restart();
        // Once the server has loaded, every reply is cut.
        while server.raw_command(&["GET", "k"]).starts_with(b"-LOADING") {
            std::thread::sleep(Duration::from_micros(200));
        }
        cutter.set(Fault::CutMidReply);
        server
    });
    let result = greenhub::run(move || {
        until_refused_while_loading(&direct);
        let mut redis = Client::open(&url).unwrap().with_retry(RetryPolicy {
            max_time: Duration::from_secs(5),
        });
        redis
            .incr("n")
            .map_err(|err| (err.is_ambiguous(), err.to_string()))
    });
    let server = restarted.join().unwrap();
    let n = String::from_utf8_lossy(&server.raw_command(&["GET", "n"])).into_owned();
    println!(
        "INCR n: {result:?}; replies cut {}; the server's n: {n:?}",
        proxy.cut_replies()
    );
    assert!(
        matches!(&result, Err((true, _))),
        "the INCR's reply was cut after the loading: expected an ambiguous error, got {result:?}"
    );
    assert_eq!(n, "$1\r\n1\r\n", "the INCR ran more than once");
}

/// The same with a blocking pop ("never a blocking command", "every
/// blocking pop [is] never repeated after [it was] sent"): BRPOP refused
/// with LOADING, sent again, pops an item, and its connection is cut before
/// the reply; the client sends it a third time and pops a second item. The
/// first one is gone: no reply carried it and the reaper had no connection.
#[test]
fn a_brpop_retried_after_loading_is_not_sent_again_after_it_popped() {
    greenhub::run(|| {
        let popped = Rc::new(Cell::new(0i64));
        let brpops = Rc::new(Cell::new(0usize));
        let url = {
            let (popped, brpops) = (popped.clone(), brpops.clone());
            fake_unix_server(move |_conn, args| {
                match args[0].to_ascii_uppercase().as_str() {
                    "CLIENT" => return Answer::Reply(b":7\r\n".to_vec()),
                    "BRPOP" => {}
                    other => panic!("unexpected {other}"),
                }
                brpops.set(brpops.get() + 1);
                match brpops.get() {
                    1 => Answer::Reply(LOADING.to_vec()),
                    2 => {
                        popped.set(popped.get() + 1);
                        Answer::Close
                    }
                    _ => {
                        popped.set(popped.get() + 1);
                        let item = format!("item{}", popped.get());
                        Answer::Reply(
                            format!("*2\r\n$4\r\nlist\r\n${}\r\n{item}\r\n", item.len())
                                .into_bytes(),
                        )
                    }
                }
            })
        };
        let mut redis = Client::open(&url).unwrap();
        let result = redis.brpop(&["list"], 1.0);
        println!(
            "BRPOP: {result:?}; BRPOP received {} times, items popped {}",
            brpops.get(),
            popped.get()
        );
        assert!(
            matches!(&result, Err(err) if err.is_ambiguous()),
            "the BRPOP's reply was lost after it popped: expected an ambiguous error, got {result:?}"
        );
        assert_eq!(popped.get(), 1, "the BRPOP popped {} items", popped.get());
    });
}

/// `refused_while_loading` / `may_retry` take the error code as proof that
/// nothing ran. A script's own error reply can carry any code: this EVAL
/// ran its INCR and then answered `-LOADING ...`, and the client runs it
/// again and again for the policy's 2 s ("So INCR, LPUSH and EVAL are never
/// repeated after they were sent unless the caller marks them").
#[test]
fn a_script_that_ran_and_answered_a_loading_error_is_not_run_again() {
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut redis = Client::open(&url).unwrap();
        let script = "redis.call('INCR', KEYS[1]) return redis.error_reply('LOADING not really')";
        let started = std::time::Instant::now();
        let result = cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg("n")
            .query::<i64>(&mut redis);
        let n: i64 = redis.get("n").unwrap();
        println!(
            "EVAL: {result:?} after {:?}; the script ran {n} times",
            started.elapsed()
        );
        assert_eq!(result.unwrap_err().code(), Some("LOADING"));
        assert_eq!(n, 1, "the EVAL was run {n} times");
    });
    drop(server);
}

/// A pipeline sent while the server loads, which holds a command a loading
/// server serves (INFO, SELECT, AUTH, HELLO, CLIENT, PUBLISH, ...), is
/// refused only in part although the loading did not end. It is not
/// retried (the served command ran: a PUBLISH must not go out twice), and
/// the caller gets the replies as they came, as docs/reliability.md says:
/// INFO's answer, and LOADING for the INCR, which did not run.
#[test]
fn a_pipeline_with_a_command_a_loading_server_serves_comes_back_as_it_came() {
    let mut server = RedisServer::start_loading_for_a_second();
    let url = server.url();
    let restarted = std::thread::spawn(move || {
        server.restart();
        server
    });
    greenhub::run(move || {
        until_refused_while_loading(&url);
        let mut patient = Client::open(&url).unwrap().with_retry(RetryPolicy {
            max_time: Duration::from_secs(30),
        });
        let mut pipe = greenhub_redis::pipe();
        pipe.cmd("INFO").arg("server").cmd("INCR").arg("n");
        let values = pipe.query_values(&mut patient).unwrap();
        assert!(
            matches!(&values[0], greenhub_redis::Value::Bulk(info) if info.starts_with(b"# Server")),
            "INFO is served while loading: {:?}",
            values[0]
        );
        assert!(
            matches!(&values[1], greenhub_redis::Value::Error(e) if e.code == "LOADING"),
            "the INCR comes back refused: {:?}",
            values[1]
        );
        // Once loaded, the refused INCR has not run.
        let mut after = Client::open(&url).unwrap().with_retry(RetryPolicy {
            max_time: Duration::from_secs(30),
        });
        assert_eq!(after.get::<String>("n").unwrap(), "0");
    });
    drop(restarted.join().unwrap());
}

/// The cluster client, which the docs say shares the retry rule
/// (docs/reliability.md: "shared by Client and the cluster client"; "a
/// pipeline refused only in part ... is returned as it came"; docs/cluster.md:
/// "None of these replies means the command ran, so resending is always
/// safe"), resends a whole unit when any reply in it is LOADING: `INCR k`
/// then `WAIT 0 0` are one unit, the INCR ran, the server began loading
/// (a replica's full sync, DEBUG RELOAD, ...) before the WAIT, and the
/// INCR runs again.
#[test]
fn a_cluster_unit_refused_only_in_part_with_loading_is_not_resent() {
    greenhub::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let incrs = Rc::new(Cell::new(0i64));
        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        let answer: Answerer = {
            let (incrs, log) = (incrs.clone(), log.clone());
            Rc::new(move |_conn, args: &[String]| {
                let name = args[0].to_ascii_uppercase();
                log.borrow_mut().push(args.join(" "));
                match name.as_str() {
                    "CLUSTER" if args[1].eq_ignore_ascii_case("SHARDS") => Answer::Reply(
                        b"-ERR unknown subcommand 'SHARDS'. Try CLUSTER HELP.\r\n".to_vec(),
                    ),
                    "CLUSTER" => Answer::Reply(
                        format!(
                            "*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:{port}\r\n$40\r\n{}\r\n",
                            "a".repeat(40)
                        )
                        .into_bytes(),
                    ),
                    "INCR" => {
                        incrs.set(incrs.get() + 1);
                        Answer::Reply(format!(":{}\r\n", incrs.get()).into_bytes())
                    }
                    // The first WAIT finds the node loading.
                    "WAIT" if incrs.get() == 1 => Answer::Reply(LOADING.to_vec()),
                    "WAIT" => Answer::Reply(b":0\r\n".to_vec()),
                    _ => Answer::Reply(b"+OK\r\n".to_vec()),
                }
            })
        };
        greenhub::spawn(move || {
            let mut number = 0;
            while let Ok((conn, _)) = listener.accept() {
                number += 1;
                let answer = answer.clone();
                greenhub::spawn(move || serve(conn, number, answer));
            }
        });
        let cluster =
            greenhub_redis::cluster::ClusterClient::open(&[format!("redis://127.0.0.1:{port}")])
                .unwrap();
        let mut cluster = cluster;
        let mut pipe = greenhub_redis::pipe();
        pipe.cmd("INCR").arg("k").cmd("WAIT").arg(0).arg(0);
        let result = pipe.query_values(&mut cluster);
        println!(
            "cluster [INCR k, WAIT 0 0]: {result:?}; INCR ran {} times; the node saw {:?}",
            incrs.get(),
            log.borrow()
        );
        assert_eq!(incrs.get(), 1, "the INCR ran {} times", incrs.get());
    });
}
