//! Echo round trips: one hub serves and drives 1,000 concurrent clients.

use std::io::{Read, Write};

use greenhub::net::{TcpListener, TcpStream, UnixListener, UnixStream};

const CLIENTS: usize = 1000;
const ROUNDS: usize = 5;

fn serve_echo<S: Read + Write + 'static>(mut conn: S) {
    let mut buf = [0u8; 512];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => conn.write_all(&buf[..n]).unwrap(),
        }
    }
}

fn client_round_trips<S: Read + Write>(mut conn: S, client: usize) -> usize {
    let mut echoed = 0;
    for round in 0..ROUNDS {
        let message = format!("client {client} round {round}\n");
        conn.write_all(message.as_bytes()).unwrap();
        let mut reply = vec![0u8; message.len()];
        conn.read_exact(&mut reply).unwrap();
        assert_eq!(reply, message.as_bytes());
        echoed += 1;
    }
    echoed
}

#[test]
fn a_thousand_tcp_clients_get_their_own_bytes_back_in_one_thread() {
    let (echoed, helpers) = greenhub::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = greenhub::spawn(move || loop {
            let (conn, _) = listener.accept().unwrap();
            conn.set_nodelay(true).unwrap();
            greenhub::spawn(move || serve_echo(conn));
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                greenhub::spawn(move || {
                    client_round_trips(TcpStream::connect(addr).unwrap(), client)
                })
            })
            .collect();
        let echoed: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
        server.kill();
        (echoed, greenhub::stats().helper_threads)
    });
    assert_eq!(echoed, CLIENTS * ROUNDS);
    assert_eq!(
        helpers, 0,
        "servers and clients all ran in the test's own thread"
    );
}

#[test]
fn a_thousand_unix_socket_clients_get_their_own_bytes_back() {
    let dir = std::env::temp_dir().join(format!("greenhub-echo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let _ = std::fs::remove_file(&path);
    let echoed = greenhub::run(move || {
        let listener = UnixListener::bind(&path).unwrap();
        let server = greenhub::spawn(move || loop {
            let (conn, _) = listener.accept().unwrap();
            greenhub::spawn(move || serve_echo(conn));
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let path = path.clone();
                greenhub::spawn(move || {
                    client_round_trips(UnixStream::connect(&path).unwrap(), client)
                })
            })
            .collect();
        let echoed: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
        server.kill();
        echoed
    });
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(echoed, CLIENTS * ROUNDS);
}

#[test]
fn a_shared_reference_reads_and_writes_like_std() {
    greenhub::run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        (&a).write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        (&b).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        drop(a);
        assert_eq!(
            (&b).read(&mut got).unwrap(),
            0,
            "the peer's close reads as end of file"
        );
    });
}
