//! Sockets in and out of the hub: `from_std` / `into_std`, owned and raw
//! file descriptors, and listeners sharing a port with `SO_REUSEPORT`.

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;

use greenhub::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};

#[test]
fn a_std_tcp_stream_becomes_cooperative_and_goes_back_to_blocking() {
    greenhub::run(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = greenhub::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0; 5];
            conn.read_exact(&mut buf).unwrap();
            conn.write_all(&buf).unwrap();
        });
        let std_stream = std::net::TcpStream::connect(addr).unwrap();
        let sockets_before = greenhub::stats().sockets;
        let mut stream = TcpStream::from_std(std_stream).unwrap();
        assert_eq!(greenhub::stats().sockets, sockets_before + 1);
        stream.write_all(b"hello").unwrap();
        server.join().unwrap();
        let registered = greenhub::stats().sockets;
        let mut std_stream = stream.into_std().unwrap();
        assert_eq!(greenhub::stats().sockets, registered - 1, "deregistered");
        // Back to blocking, as std code expects: a read waits for the bytes
        // the server echoed instead of failing with WouldBlock.
        let mut buf = [0; 5];
        std_stream.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    });
}

#[test]
fn a_raw_fd_round_trip_keeps_the_connection() {
    greenhub::run(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let raw = a.into_raw_fd();
        // SAFETY: `raw` came from `into_raw_fd` just above and nothing else owns it.
        let mut a = unsafe { UnixStream::from_raw_fd(raw) };
        assert_eq!(a.as_raw_fd(), raw);
        (&b).write_all(b"ping").unwrap();
        let mut buf = [0; 4];
        a.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        let owned = OwnedFd::from(b);
        let b = UnixStream::try_from(owned).unwrap();
        a.write_all(b"pong").unwrap();
        (&b).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        assert_eq!(b.as_fd().as_raw_fd(), b.as_raw_fd());
    });
}

#[test]
fn udp_and_unix_listeners_convert_both_ways() {
    greenhub::run(|| {
        let std_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp = UdpSocket::from_std(std_udp).unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.send_to(b"dgram", udp.local_addr().unwrap()).unwrap();
        let mut buf = [0; 8];
        let (n, _) = udp.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"dgram");
        let std_udp = udp.into_std().unwrap();
        peer.send_to(b"again", std_udp.local_addr().unwrap())
            .unwrap();
        let (n, _) = std_udp.recv_from(&mut buf).unwrap(); // blocking, on purpose
        assert_eq!(&buf[..n], b"again");

        let dir = std::env::temp_dir().join(format!("greenhub-conv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sock");
        let std_listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let listener = UnixListener::from_std(std_listener).unwrap();
        let client = {
            let path = path.clone();
            greenhub::spawn(move || UnixStream::connect(path).unwrap())
        };
        let (conn, _) = listener.accept().unwrap();
        let client = client.join().unwrap().into_std().unwrap();
        (&client).write_all(b"x").unwrap();
        let mut one = [0; 1];
        (&conn).read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
        drop(listener.into_std().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn reuseport_listeners_share_a_port_and_both_accept() {
    let accepted = greenhub::run(|| {
        let first = TcpListener::bind_reuseport("127.0.0.1:0").unwrap();
        let addr = first.local_addr().unwrap();
        let second = TcpListener::bind_reuseport(addr).unwrap();
        assert!(TcpListener::bind(addr).is_err(), "a plain bind is refused");
        let accepted = Rc::new(Cell::new(0));
        for listener in [first, second] {
            let accepted = accepted.clone();
            greenhub::spawn(move || loop {
                let _conn = listener.accept().unwrap();
                accepted.set(accepted.get() + 1);
            });
        }
        let clients: Vec<_> = (0..20)
            .map(|_| greenhub::spawn(move || TcpStream::connect(addr).unwrap()))
            .collect();
        let _open: Vec<TcpStream> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        // Each connect completed; wait (with a generous cap) for both
        // accept loops to have taken them all.
        for _ in 0..5000 {
            if accepted.get() == 20 {
                break;
            }
            greenhub::sleep(std::time::Duration::from_millis(1));
        }
        accepted.get()
    });
    assert_eq!(accepted, 20);
}

#[test]
fn taking_over_a_std_socket_outside_a_hub_is_an_error() {
    let std_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = UdpSocket::from_std(std_udp).unwrap_err();
    assert!(err.to_string().contains("greenhub::run"), "{err}");
}
