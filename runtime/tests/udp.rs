//! UDP sockets: echo with many peers in one thread, timeouts, peeking, and
//! the rule that a datagram shorter than the buffer never hides the next one.

use std::rc::Rc;
use std::time::Duration;

use greenhub::net::UdpSocket;

/// How long a client waits for its echo before sending again: UDP may drop
/// a datagram when a socket's buffer overflows, and real clients retry.
const RETRY_AFTER: Duration = Duration::from_millis(200);

#[test]
fn a_udp_echo_server_answers_a_thousand_peers_in_one_thread() {
    let echoed = greenhub::run(|| {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        greenhub::spawn(move || {
            let mut buf = [0; 64];
            loop {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                server.send_to(&buf[..n], from).unwrap();
            }
        });
        let clients: Vec<_> = (0..1000)
            .map(|n| {
                greenhub::spawn(move || {
                    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                    socket.connect(addr).unwrap();
                    socket.set_read_timeout(Some(RETRY_AFTER)).unwrap();
                    let message = format!("hello {n}");
                    let mut buf = [0; 64];
                    for _ in 0..50 {
                        socket.send(message.as_bytes()).unwrap();
                        match socket.recv(&mut buf) {
                            Ok(len) => return buf[..len] == *message.as_bytes(),
                            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
                            Err(err) => panic!("recv: {err}"),
                        }
                    }
                    false
                })
            })
            .collect();
        let echoed = clients
            .into_iter()
            .map(|client| client.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(greenhub::stats().helper_threads, 0, "no helper threads");
        echoed
    });
    assert_eq!(echoed, 1000);
}

#[test]
fn a_short_datagram_never_hides_the_one_queued_behind_it() {
    greenhub::run(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        a.send(b"first").unwrap();
        a.send(b"second").unwrap();
        // Let the hub poll: it sees the one readiness edge for both
        // datagrams now, and no event will come after the first receive.
        greenhub::sleep(Duration::from_millis(5));
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0; 100];
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"first");
        let n = b
            .recv(&mut buf)
            .expect("the second datagram is received, not slept through");
        assert_eq!(&buf[..n], b"second");
    });
}

#[test]
fn peek_leaves_the_datagram_for_the_next_receive() {
    greenhub::run(|| {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.send_to(b"peeked", b.local_addr().unwrap()).unwrap();
        let mut buf = [0; 16];
        let (n, from) = b.peek_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"peeked"[..], a.local_addr().unwrap()));
        b.connect(from).unwrap();
        assert_eq!(b.peek(&mut buf).unwrap(), 6);
        let (n, _) = b.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"peeked");
    });
}

#[test]
fn a_read_timeout_ends_a_receive_that_nothing_answers() {
    greenhub::run(|| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(socket.set_read_timeout(Some(Duration::ZERO)).is_err());
        socket
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        assert_eq!(socket.read_timeout(), Some(Duration::from_millis(10)));
        let err = socket.recv_from(&mut [0; 8]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    });
}

#[test]
fn an_enclosing_timeout_cuts_a_receive_short_and_other_coroutines_run_meanwhile() {
    greenhub::run(|| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let ticks = Rc::new(std::cell::Cell::new(0));
        let ticker = {
            let ticks = ticks.clone();
            greenhub::spawn(move || loop {
                greenhub::sleep(Duration::from_millis(1));
                ticks.set(ticks.get() + 1);
            })
        };
        let cut = greenhub::timeout(Duration::from_millis(30), || socket.recv(&mut [0; 8]));
        assert!(cut.is_err());
        assert!(
            ticks.get() > 0,
            "the hub ran the ticker while recv was parked"
        );
        ticker.kill();
    });
}

#[test]
fn broadcast_and_multicast_options_read_back_what_was_set() {
    greenhub::run(|| {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.set_broadcast(true).unwrap();
        assert!(socket.broadcast().unwrap());
        socket.set_multicast_loop_v4(false).unwrap();
        assert!(!socket.multicast_loop_v4().unwrap());
        socket.set_multicast_ttl_v4(4).unwrap();
        assert_eq!(socket.multicast_ttl_v4().unwrap(), 4);
        socket.set_ttl(33).unwrap();
        assert_eq!(socket.ttl().unwrap(), 33);
        // Joining a group needs a multicast-capable interface: loopback
        // has one on Linux, but a sandbox may not; join and leave if it can.
        let group = std::net::Ipv4Addr::new(239, 255, 0, 1);
        if socket
            .join_multicast_v4(&group, &std::net::Ipv4Addr::LOCALHOST)
            .is_ok()
        {
            socket
                .leave_multicast_v4(&group, &std::net::Ipv4Addr::LOCALHOST)
                .unwrap();
        }
    });
}

#[test]
fn a_udp_socket_outside_a_hub_is_an_error() {
    let err = UdpSocket::bind("127.0.0.1:0").unwrap_err();
    assert!(err.to_string().contains("greenhub::run"), "{err}");
}
