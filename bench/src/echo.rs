//! `echo`: a TCP echo server and 1,000 connections in one hub, against the
//! same program on Tokio's current-thread runtime, on may with one worker,
//! and with an OS thread per connection on std sockets. Issue 11 asks for
//! greenhub ≥ 1.1× Tokio's requests per second, so all four run in turn in
//! the same run, each round starting with the next.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::measure::{cpu_time, interleaved, Stat};
use crate::peers::{in_may, in_tokio_task};
use crate::Report;

/// Connections open at once: enough that the scheduler, not one socket's
/// latency, sets the rate, and well under the 20,000 descriptors a process
/// may hold (each connection has two ends here).
const CONNECTIONS: usize = 1000;
/// The second load: a tenth of the connections, ten times the round trips,
/// so the same number of requests. 200 coroutines' stacks (server and client
/// ends) fit in a core's L2 cache here (2 MiB); 2,000 do not, while 2,000 of
/// Tokio's tasks do.
const FEW: usize = 100;
/// One request: 64 bytes, echoed back whole before the next is sent.
const MESSAGE: &[u8; 64] = &[b'x'; 64];
/// Every server's listen backlog, greenhub's own (`net.core.somaxconn`, 4096
/// by default): std and mio listen with 128, and when the 1,000 clients
/// connect at once the overflow waits out one-second SYN retransmits, which
/// would measure the kernel's timer instead of the scheduler.
const BACKLOG: libc::c_int = 4096;

/// Raises a listening socket's backlog to [`BACKLOG`] (Linux accepts a second
/// `listen` on a listening socket for this), so every server queues alike.
fn raise_backlog(listener: &impl AsRawFd) {
    // SAFETY: `listen` takes a plain fd and an int; `listener` owns the fd
    // and keeps it open for the call.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) };
    assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
}

/// Requests per second and CPU µs per request (server and clients together).
fn greenhub_echo(connections: usize, rounds: usize) -> (f64, f64) {
    greenhub::run(move || {
        let listener = greenhub::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = greenhub::spawn(move || loop {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_nodelay(true).unwrap();
            greenhub::spawn(move || {
                let mut buf = [0u8; 64];
                while conn.read_exact(&mut buf).is_ok() && conn.write_all(&buf).is_ok() {}
            });
        });
        let cpu0 = cpu_time(false);
        let start = Instant::now();
        let clients: Vec<_> = (0..connections)
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
        let result = rate_and_cpu(connections * rounds, start, cpu0);
        server.kill();
        result
    })
}

/// Tokio current-thread: the same server and load as tasks.
fn tokio_echo(connections: usize, rounds: usize) -> (f64, f64) {
    in_tokio_task(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        raise_backlog(&listener);
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..connections {
                let (mut conn, _) = listener.accept().await.unwrap();
                conn.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while conn.read_exact(&mut buf).await.is_ok()
                        && conn.write_all(&buf).await.is_ok()
                    {}
                });
            }
        });
        let cpu0 = cpu_time(false);
        let start = Instant::now();
        let clients: Vec<_> = (0..connections)
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
        rate_and_cpu(connections * rounds, start, cpu0)
    })
}

/// may, one worker: the same server and load as coroutines.
fn may_echo(connections: usize, rounds: usize) -> (f64, f64) {
    in_may(move || {
        let listener = may::net::TcpListener::bind("127.0.0.1:0").unwrap();
        raise_backlog(&listener);
        let addr = listener.local_addr().unwrap();
        let server = may::go!(move || {
            for _ in 0..connections {
                let (mut conn, _) = listener.accept().unwrap();
                conn.set_nodelay(true).unwrap();
                may::go!(move || {
                    let mut buf = [0u8; 64];
                    while conn.read_exact(&mut buf).is_ok() && conn.write_all(&buf).is_ok() {}
                });
            }
        });
        let cpu0 = cpu_time(false);
        let start = Instant::now();
        let clients: Vec<_> = (0..connections)
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
        let result = rate_and_cpu(connections * rounds, start, cpu0);
        server.join().unwrap();
        result
    })
}

/// Requests per second and CPU µs per request since `start` and `cpu0`.
fn rate_and_cpu(requests: usize, start: Instant, cpu0: std::time::Duration) -> (f64, f64) {
    let (wall, cpu) = (start.elapsed(), cpu_time(false) - cpu0);
    let requests = requests as f64;
    (
        requests / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / requests,
    )
}

/// An OS thread per connection, on std's blocking sockets.
fn threads_echo(connections: usize, rounds: usize) -> (f64, f64) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    raise_backlog(&listener);
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(connections) {
            let mut conn = conn.unwrap();
            conn.set_nodelay(true).unwrap();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let mut buf = [0u8; 64];
                    while conn.read_exact(&mut buf).is_ok() && conn.write_all(&buf).is_ok() {}
                })
                .unwrap();
        }
    });
    let cpu0 = cpu_time(false);
    let start = Instant::now();
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let mut conn = std::net::TcpStream::connect(addr).unwrap();
                    conn.set_nodelay(true).unwrap();
                    let mut buf = [0u8; 64];
                    for _ in 0..rounds {
                        conn.write_all(MESSAGE).unwrap();
                        conn.read_exact(&mut buf).unwrap();
                    }
                })
                .unwrap()
        })
        .collect();
    clients.into_iter().for_each(|c| c.join().unwrap());
    rate_and_cpu(connections * rounds, start, cpu0)
}

/// One system's run: connections and round trips per connection in,
/// (requests per second, CPU µs per request) out.
type EchoRun = fn(usize, usize) -> (f64, f64);

/// The `echo` suite: the load of issue 11's target, then the same requests
/// over a tenth of the connections, so the page shows how the gap depends on
/// the number of coroutines whose stacks the hub cycles through.
pub(crate) fn echo(quick: bool) -> Report {
    let rounds = if quick { 10 } else { 100 };
    let mut report = Report::new("echo", &format!("TCP echo, {CONNECTIONS} connections × {rounds} round trips of 64 bytes (and {FEW} × {}), server and clients in one process", rounds * 10));
    report.header(&[
        "system",
        "connections",
        "requests per second",
        "CPU µs per request",
    ]);
    let systems: [(&str, &str, EchoRun); 4] = [
        ("greenhub, one hub", "greenhub", greenhub_echo),
        ("Tokio current-thread", "tokio", tokio_echo),
        ("may, 1 worker", "may", may_echo),
        ("OS thread per connection", "threads", threads_echo),
    ];
    let mut ratios = Vec::new();
    for (connections, rounds, suffix) in [(CONNECTIONS, rounds, ""), (FEW, rounds * 10, "_100")] {
        let runs = interleaved(&[
            &|| systems[0].2(connections, rounds),
            &|| systems[1].2(connections, rounds),
            &|| systems[2].2(connections, rounds),
            &|| systems[3].2(connections, rounds),
        ]);
        let mut rates = Vec::new();
        for ((name, key, _), runs) in systems.iter().zip(runs) {
            let rate = Stat::of(runs.iter().map(|r| r.0).collect());
            let cpu = Stat::of(runs.iter().map(|r| r.1).collect());
            report.row(&[
                name,
                &connections.to_string(),
                &rate.to_string(),
                &cpu.to_string(),
            ]);
            report.field(&format!("{key}_rps{suffix}"), rate.median);
            report.field(&format!("{key}_cpu_us{suffix}"), cpu.median);
            rates.push(rate.median);
        }
        let ratio = rates[0] / rates[1];
        report.field(&format!("vs_tokio_rps{suffix}"), ratio);
        ratios.push((ratio, rates[0], rates[1]));
    }
    let (ratio, greenhub, tokio) = ratios[0];
    report.target(
        "≥ 1.1× Tokio current-thread's requests per second",
        ratio >= 1.1,
        format!("{ratio:.2}× ({greenhub:.0} / {tokio:.0} per second)"),
    );
    report.note("Each system runs the same server (accept, then one coroutine, task or thread per connection echoing 64-byte reads) and the same clients (each connects, then writes 64 bytes and reads them back, one at a time), with `TCP_NODELAY` and a listen backlog of 4096, in one process; CPU is the whole process's user + system time over the run, divided by the requests. greenhub, Tokio and may each run server and clients on one thread; the four systems run in turn, three rounds. With 1,000 connections the hub resumes 2,000 coroutines in turn, and each resume reloads the frames its coroutine parked in (about 1.4 KB deep at a read's park); under `valgrind --tool=cachegrind` with a 2 MiB last-level cache, nearly every resume misses those frames, while 2,000 of Tokio's tasks (a few hundred bytes each) stay cached. With 100 connections both fit, which the second set of rows shows.");
    report
}
