//! `hubs`: greenhub's `Runtime` at 1 and N hubs (N = cores) beside Tokio's
//! multi-thread runtime and may, each with N workers, on the same programs:
//! the TCP echo of `echo.rs` (plain, and with about 20 µs of CPU work per
//! request, where a second core must show), and GETs against one Redis.
//!
//! greenhub's N hubs each accept on their own `SO_REUSEPORT` listener of the
//! one port; a second greenhub row accepts on hub 0 only and hands each
//! socket to a hub round robin (`into_std`, `spawn_on`, `from_std`), the
//! alternative the issue asks to measure. may's worker count is global to a
//! process and fixed at its first use (`peers.rs` sets 1), so may runs in a
//! child process of this binary (`bench hubs-may-child ...`). Every system
//! measures its own process's CPU time (`RUSAGE_SELF`: all its threads).

use std::io::{Read, Write};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::measure::{cpu_time, interleaved, Stat};
use crate::Report;

/// Echo connections, as in `echo.rs`.
const CONNECTIONS: usize = 1000;
/// One echo request.
const MESSAGE: &[u8; 64] = &[b'x'; 64];
/// GET clients, as in `redis.rs`'s `get`.
const GET_CLIENTS: usize = 50;
/// `GET key:small`, and its reply for the 3-byte value `xxx`.
const GET: &[u8] = b"*2\r\n$3\r\nGET\r\n$9\r\nkey:small\r\n";
const REPLY: &[u8] = b"$3\r\nxxx\r\n";
/// The CPU-bound variant's work per request.
const WORK_US: f64 = 20.0;

/// Requests per second and CPU µs per request.
type Run = (f64, f64);

/// `iterations` rounds of xorshift: CPU work the optimiser cannot drop.
fn spin(iterations: u64) -> u64 {
    let mut x = std::hint::black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..iterations {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

/// Iterations of [`spin`] that take `us` µs on this machine, measured once
/// (the least of several tries, so a preemption does not inflate it) and
/// given to every system alike.
fn calibrate(us: f64) -> u64 {
    let probe = 1_000_000;
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            spin(probe);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    (probe as f64 * us * 1e-6 / best).max(1.0) as u64
}

fn rate_and_cpu(requests: usize, start: Instant, cpu0: std::time::Duration) -> Run {
    let (wall, cpu) = (start.elapsed(), cpu_time(false) - cpu0);
    (
        requests as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / requests as f64,
    )
}

/// One echo connection on greenhub: read 64 bytes, work, write them back.
fn serve_greenhub(mut conn: greenhub::net::TcpStream, work: u64) {
    conn.set_nodelay(true).unwrap();
    let mut buf = [0u8; 64];
    while conn.read_exact(&mut buf).is_ok() {
        if work > 0 {
            spin(work);
        }
        if conn.write_all(&buf).is_err() {
            break;
        }
    }
}

/// greenhub's echo on a runtime of `hubs` hubs. `handoff`: hub 0 accepts
/// alone and hands each socket over; otherwise every hub accepts on its own
/// `SO_REUSEPORT` listener. The clients are spread over the hubs alike.
fn greenhub_echo(hubs: usize, rounds: usize, work: u64, handoff: bool) -> Run {
    let runtime = greenhub::Runtime::builder().hubs(hubs).build().unwrap();
    let rt = runtime.handle();
    runtime.block_on(move || {
        let first = greenhub::net::TcpListener::bind_reuseport("127.0.0.1:0").unwrap();
        let addr = first.local_addr().unwrap();
        if handoff {
            let rt = rt.clone();
            greenhub::spawn(move || {
                for k in 0.. {
                    let (conn, _) = first.accept().unwrap();
                    let conn = conn.into_std().unwrap();
                    rt.spawn_on(k % hubs, move || {
                        serve_greenhub(greenhub::net::TcpStream::from_std(conn).unwrap(), work)
                    })
                    .unwrap();
                }
            });
        } else {
            let (bound_tx, bound_rx) = greenhub::sync::remote_channel::<()>();
            for hub in 1..hubs {
                let bound = bound_tx.clone();
                rt.spawn_on(hub, move || {
                    let listener = greenhub::net::TcpListener::bind_reuseport(addr).unwrap();
                    bound.send(()).unwrap();
                    loop {
                        let (conn, _) = listener.accept().unwrap();
                        greenhub::spawn(move || serve_greenhub(conn, work));
                    }
                })
                .unwrap();
            }
            (1..hubs).for_each(|_| bound_rx.recv().unwrap());
            greenhub::spawn(move || loop {
                let (conn, _) = first.accept().unwrap();
                greenhub::spawn(move || serve_greenhub(conn, work));
            });
        }
        let cpu0 = cpu_time(false);
        let start = Instant::now();
        let shares: Vec<_> = (0..hubs)
            .map(|hub| {
                let clients = (CONNECTIONS + hubs - 1 - hub) / hubs;
                rt.spawn_on(hub, move || {
                    let clients: Vec<_> = (0..clients)
                        .map(|_| {
                            greenhub::spawn(move || {
                                let mut conn = greenhub::net::TcpStream::connect(addr).unwrap();
                                conn.set_nodelay(true).unwrap();
                                let mut buf = [0u8; 64];
                                for _ in 0..rounds {
                                    conn.write_all(MESSAGE).unwrap();
                                    conn.read_exact(&mut buf).unwrap();
                                }
                            })
                        })
                        .collect();
                    clients.into_iter().for_each(|c| c.join().unwrap());
                })
                .unwrap()
            })
            .collect();
        shares.into_iter().for_each(|s| s.join().unwrap());
        rate_and_cpu(CONNECTIONS * rounds, start, cpu0)
    })
}

fn tokio_multi(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_io()
        .build()
        .expect("a Tokio runtime")
}

/// Tokio multi-thread, `workers` workers, work stealing: the same echo.
fn tokio_echo(workers: usize, rounds: usize, work: u64) -> Run {
    tokio_multi(workers).block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                conn.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while conn.read_exact(&mut buf).await.is_ok() {
                        if work > 0 {
                            spin(work);
                        }
                        if conn.write_all(&buf).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let cpu0 = cpu_time(false);
        let start = Instant::now();
        let clients: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                tokio::spawn(async move {
                    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
                    conn.set_nodelay(true).unwrap();
                    let mut buf = [0u8; 64];
                    for _ in 0..rounds {
                        conn.write_all(MESSAGE).await.unwrap();
                        conn.read_exact(&mut buf).await.unwrap();
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
        rate_and_cpu(CONNECTIONS * rounds, start, cpu0)
    })
}

/// may with `workers` workers: runs in a child process (see the module
/// docs), which prints `rps cpu_us`.
fn may_in_child(args: &[String]) -> Run {
    let args: Vec<&str> = std::iter::once("hubs-may-child")
        .chain(args.iter().map(String::as_str))
        .collect();
    let out = crate::child(&args);
    let mut fields = out.split_whitespace().map(|f| f.parse::<f64>().unwrap());
    (fields.next().unwrap(), fields.next().unwrap())
}

/// The child's side: `echo WORKERS ROUNDS WORK` or `get WORKERS PORT REQUESTS`.
pub(crate) fn may_child(args: &[String]) -> String {
    let number = |i: usize| args[i].parse::<usize>().expect("a number");
    may::config().set_workers(number(1));
    may::config().set_worker_pin(false);
    let (rps, cpu) = match args[0].as_str() {
        "echo" => may_echo(number(2), number(3) as u64),
        _ => may_get(number(2) as u16, number(3)),
    };
    format!("{rps} {cpu}")
}

fn may_echo(rounds: usize, work: u64) -> Run {
    let listener = may::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    may::go!(move || loop {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_nodelay(true).unwrap();
        may::go!(move || {
            let mut buf = [0u8; 64];
            while conn.read_exact(&mut buf).is_ok() {
                if work > 0 {
                    spin(work);
                }
                if conn.write_all(&buf).is_err() {
                    break;
                }
            }
        });
    });
    let cpu0 = cpu_time(false);
    let start = Instant::now();
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            may::go!(move || {
                let mut conn = may::net::TcpStream::connect(addr).unwrap();
                conn.set_nodelay(true).unwrap();
                let mut buf = [0u8; 64];
                for _ in 0..rounds {
                    conn.write_all(MESSAGE).unwrap();
                    conn.read_exact(&mut buf).unwrap();
                }
            })
        })
        .collect();
    clients.into_iter().for_each(|c| c.join().unwrap());
    rate_and_cpu(CONNECTIONS * rounds, start, cpu0)
}

/// greenhub's GET on `hubs` hubs: each hub its own client (and pool) from
/// one `ClientFactory`, `GET_CLIENTS / hubs` coroutines each on its own
/// connection.
fn greenhub_get(hubs: usize, url: &str, requests: usize) -> Run {
    let factory = greenhub_redis::ClientFactory::open(url).unwrap();
    let runtime = greenhub::Runtime::builder().hubs(hubs).build().unwrap();
    let rt = runtime.handle();
    runtime.block_on(move || {
        let per_client = requests / GET_CLIENTS;
        let cpu0 = cpu_time(false);
        let start = Instant::now();
        let shares: Vec<_> = (0..hubs)
            .map(|hub| {
                let clients = (GET_CLIENTS + hubs - 1 - hub) / hubs;
                let factory = factory.clone();
                rt.spawn_on(hub, move || {
                    let client = factory.client();
                    let workers: Vec<_> = (0..clients)
                        .map(|_| {
                            let client = client.clone();
                            greenhub::spawn(move || {
                                let mut conn = client.get_connection().unwrap();
                                let get = greenhub_redis::cmd("GET").arg("key:small").clone();
                                for _ in 0..per_client {
                                    let _: Vec<u8> = get.query(&mut *conn).unwrap();
                                }
                            })
                        })
                        .collect();
                    workers.into_iter().for_each(|w| w.join().unwrap());
                })
                .unwrap()
            })
            .collect();
        shares.into_iter().for_each(|s| s.join().unwrap());
        rate_and_cpu(per_client * GET_CLIENTS, start, cpu0)
    })
}

/// Tokio multi-thread: `GET_CLIENTS` tasks writing the GET and reading its
/// fixed-length reply (a hand-rolled RESP exchange with no parser: if
/// anything, cheaper than a client library).
fn tokio_get(workers: usize, port: u16, requests: usize) -> Run {
    tokio_multi(workers).block_on(async move {
        let per_client = requests / GET_CLIENTS;
        let cpu0 = cpu_time(false);
        let start = Instant::now();
        let clients: Vec<_> = (0..GET_CLIENTS)
            .map(|_| {
                tokio::spawn(async move {
                    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .unwrap();
                    conn.set_nodelay(true).unwrap();
                    let mut buf = [0u8; REPLY.len()];
                    for _ in 0..per_client {
                        conn.write_all(GET).await.unwrap();
                        conn.read_exact(&mut buf).await.unwrap();
                        assert_eq!(&buf, REPLY);
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
        rate_and_cpu(per_client * GET_CLIENTS, start, cpu0)
    })
}

/// may: the same hand-rolled exchange as [`tokio_get`].
fn may_get(port: u16, requests: usize) -> Run {
    let per_client = requests / GET_CLIENTS;
    let cpu0 = cpu_time(false);
    let start = Instant::now();
    let clients: Vec<_> = (0..GET_CLIENTS)
        .map(|_| {
            may::go!(move || {
                let mut conn = may::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                conn.set_nodelay(true).unwrap();
                let mut buf = [0u8; REPLY.len()];
                for _ in 0..per_client {
                    conn.write_all(GET).unwrap();
                    conn.read_exact(&mut buf).unwrap();
                    assert_eq!(&buf, REPLY);
                }
            })
        })
        .collect();
    clients.into_iter().for_each(|c| c.join().unwrap());
    rate_and_cpu(per_client * GET_CLIENTS, start, cpu0)
}

/// Medians of each system's runs, added to `report` as rows and fields.
fn tabulate(
    report: &mut Report,
    scenario: &str,
    prefix: &str,
    systems: &[(String, String)],
    runs: Vec<Vec<Run>>,
) -> Vec<f64> {
    let mut rates = Vec::new();
    for ((name, key), runs) in systems.iter().zip(runs) {
        let rate = Stat::of(runs.iter().map(|r| r.0).collect());
        let cpu = Stat::of(runs.iter().map(|r| r.1).collect());
        // CPU seconds per wall second: how much of the machine the run got.
        let cores = rate.median * cpu.median * 1e-6;
        report.row(&[
            scenario,
            name,
            &rate.to_string(),
            &cpu.to_string(),
            &format!("{cores:.2}"),
        ]);
        report.field(&format!("{prefix}_{key}_rps"), rate.median);
        report.field(&format!("{prefix}_{key}_cpu_us"), cpu.median);
        rates.push(rate.median);
    }
    rates
}

/// The `hubs` suite.
pub(crate) fn hubs(quick: bool) -> Report {
    let n = std::thread::available_parallelism()
        .map_or(2, |c| c.get())
        .max(2);
    let rounds = if quick { 10 } else { 100 };
    let cpu_rounds = if quick { 5 } else { 50 };
    let requests = if quick { 20_000 } else { 200_000 };
    let work = calibrate(WORK_US);
    let mut report = Report::new(
        "hubs",
        &format!("one hub per core: greenhub's Runtime at 1 and {n} hubs beside Tokio multi-thread and may with {n} workers"),
    );
    report.header(&[
        "scenario",
        "system",
        "requests per second",
        "CPU µs per request",
        "cores used",
    ]);
    let systems: Vec<(String, String)> = vec![
        ("greenhub, 1 hub".into(), "hub1".into()),
        (format!("greenhub, {n} hubs (SO_REUSEPORT)"), "hubn".into()),
        (
            format!("greenhub, {n} hubs (one acceptor, hand-off)"),
            "handoff".into(),
        ),
        (format!("Tokio multi-thread, {n} workers"), "tokio".into()),
        (format!("may, {n} workers"), "may".into()),
    ];
    let echo_runs = |rounds: usize, work: u64| {
        let may_args: Vec<String> = [
            "echo",
            &n.to_string(),
            &rounds.to_string(),
            &work.to_string(),
        ]
        .map(String::from)
        .to_vec();
        interleaved(&[
            &|| greenhub_echo(1, rounds, work, false),
            &|| greenhub_echo(n, rounds, work, false),
            &|| greenhub_echo(n, rounds, work, true),
            &|| tokio_echo(n, rounds, work),
            &|| may_in_child(&may_args),
        ])
    };
    let plain = echo_runs(rounds, 0);
    let plain = tabulate(&mut report, "echo", "echo", &systems, plain);
    let busy = echo_runs(cpu_rounds, work);
    let busy = tabulate(
        &mut report,
        &format!("echo + {WORK_US} µs work"),
        "work",
        &systems,
        busy,
    );

    let server = crate::redis::Server::start();
    let url = server.url();
    let mut seed =
        greenhub_redis::Connection::open(&greenhub_redis::ConnectionInfo::from_url(&url).unwrap())
            .unwrap();
    let _: () = greenhub_redis::cmd("SET")
        .arg("key:small")
        .arg("xxx")
        .query(&mut seed)
        .unwrap();
    let port = server.port;
    let may_args: Vec<String> = [
        "get",
        &n.to_string(),
        &port.to_string(),
        &requests.to_string(),
    ]
    .map(String::from)
    .to_vec();
    let get_systems: Vec<(String, String)> =
        [0, 1, 3, 4].iter().map(|&i| systems[i].clone()).collect();
    let get = interleaved(&[
        &|| greenhub_get(1, &url, requests),
        &|| greenhub_get(n, &url, requests),
        &|| tokio_get(n, port, requests),
        &|| may_in_child(&may_args),
    ]);
    let get = tabulate(
        &mut report,
        &format!("{GET_CLIENTS} clients GET"),
        "get",
        &get_systems,
        get,
    );

    let scaling = busy[1] / busy[0];
    report.field("work_scaling", scaling);
    report.target(
        &format!("CPU-bound: {n} hubs ≥ 1.7× one hub"),
        scaling >= 1.7,
        format!("{scaling:.2}×"),
    );
    for (what, ours, tokio) in [
        ("echo", plain[1], plain[3]),
        ("CPU-bound echo", busy[1], busy[3]),
        ("GET", get[1], get[2]),
    ] {
        report.target(
            &format!("{what}: {n} hubs ahead of Tokio multi-thread"),
            ours > tokio,
            format!("{:.2}× ({ours:.0} / {tokio:.0} per second)", ours / tokio),
        );
    }
    report.note(&format!(
        "Echo: {CONNECTIONS} connections × {rounds} round trips of 64 bytes ({cpu_rounds} with work), server and clients in one process, clients spread over the hubs (Tokio and may: spawned, their schedulers place them). The work is {work} rounds of xorshift, calibrated at start to take {WORK_US} µs, done by the server per request. GET: {GET_CLIENTS} clients, {requests} GETs of a 3-byte value against one redis-server on loopback TCP; Tokio and may write the request and read its fixed-length reply by hand, greenhub runs its client with a pool per hub. Load generator, servers and Redis share the machine's {n} cores, so the plain rows cannot double; the CPU-bound rows show the second core. CPU is the process's user + system time over the run (may's, its child process's), divided by the requests; \"cores used\" is the two medians' product (CPU seconds per second of wall time): a run that got less than N cores from a busy machine cannot show N-fold scaling. Systems run in turn, three rounds."
    ));
    drop(server);
    report
}
