//! `echo`: a TCP echo server and 1,000 connections in one hub, against the
//! same with an OS thread per connection on std sockets.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::Instant;

use crate::measure::{cpu_time, Stat};
use crate::{Report, RUNS};

const CONNECTIONS: usize = 1000;
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
fn greenhub_echo(rounds: usize) -> (f64, f64) {
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
        let clients: Vec<_> = (0..CONNECTIONS)
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
        let (wall, cpu) = (start.elapsed(), cpu_time(false) - cpu0);
        server.kill();
        let requests = (CONNECTIONS * rounds) as f64;
        (
            requests / wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / requests,
        )
    })
}

fn threads_echo(rounds: usize) -> (f64, f64) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    raise_backlog(&listener);
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(CONNECTIONS) {
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
    let clients: Vec<_> = (0..CONNECTIONS)
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
    let (wall, cpu) = (start.elapsed(), cpu_time(false) - cpu0);
    let requests = (CONNECTIONS * rounds) as f64;
    (
        requests / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / requests,
    )
}

/// The `echo` suite.
pub(crate) fn echo(quick: bool) -> Report {
    let rounds = if quick { 10 } else { 100 };
    let mut report = Report::new("echo", &format!("TCP echo, {CONNECTIONS} connections × {rounds} round trips of 64 bytes, server and clients in one process"));
    report.header(&["system", "requests per second", "CPU µs per request"]);
    for (name, run) in [
        (
            "greenhub, one hub",
            greenhub_echo as fn(usize) -> (f64, f64),
        ),
        ("OS thread per connection", threads_echo),
    ] {
        let runs: Vec<(f64, f64)> = (0..RUNS).map(|_| run(rounds)).collect();
        let rate = Stat::of(runs.iter().map(|r| r.0).collect());
        let cpu = Stat::of(runs.iter().map(|r| r.1).collect());
        report.row(&[name, &rate.to_string(), &cpu.to_string()]);
        let key = if name.starts_with("greenhub") {
            "greenhub"
        } else {
            "threads"
        };
        report.field(&format!("{key}_rps"), rate.median);
        report.field(&format!("{key}_cpu_us"), cpu.median);
    }
    report
}
