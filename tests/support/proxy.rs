//! A TCP fault proxy, written on greenhub itself: placed between a client
//! and a real `redis-server`, it forwards bytes both ways and injects the
//! fault it is set to ([`Fault`]): added latency, every write sliced into
//! 1-byte chunks both ways, a reply cut in its middle, a blackhole that
//! accepts and never answers, refused connections.
//!
//! It runs its own hub on its own thread, so that a test's hub (and a test
//! that blocks its thread on purpose) never stalls it. Per connection, two
//! coroutines pump bytes (client to server, server to client) and read the
//! current fault before forwarding each chunk; a control coroutine polls
//! the settings the test changes from its thread and kills pumps when the
//! test asks to cut every connection. It shows the runtime's model in a
//! hundred lines: blocking-style reads and writes, `spawn`, `kill`, `sleep`.
//! See `docs/testing.md`, "The fault proxy".

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use greenhub::net::{TcpListener, TcpStream};

/// What the proxy does to the bytes it forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fault {
    /// Forward as they come.
    #[default]
    None,
    /// Wait this long before forwarding each chunk, both ways.
    Latency(Duration),
    /// Forward each chunk one byte per write, both ways, each byte its own
    /// TCP segment (no Nagle): every read on the other side sees one byte.
    Slice,
    /// The next chunk from the server is cut in its middle: its first half
    /// is forwarded, then the connection is closed both ways.
    CutMidReply,
    /// Accept connections and read requests, never forward or answer.
    Blackhole,
    /// New connections are refused (the listener is closed); those open
    /// already go on.
    Refuse,
}

/// What the test's thread and the proxy's hub share.
#[derive(Debug, Default)]
struct Shared {
    fault: Mutex<Fault>,
    /// Bumped by [`FaultProxy::cut_all`]: pumps of older generations are killed.
    cuts: AtomicU64,
    stop: AtomicBool,
    accepted: AtomicUsize,
    /// Replies cut by `CutMidReply`.
    cut_replies: AtomicUsize,
}

impl Shared {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap()
    }
}

/// A running proxy, stopped when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy on a free port of 127.0.0.1 forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let hub_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || greenhub::run(move || serve(upstream, hub_shared, tx)))
            .expect("start the proxy's thread");
        let addr = rx.recv().expect("the proxy's address");
        FaultProxy {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    /// `redis://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Sets the fault for every chunk forwarded from now on.
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    /// Closes every connection open now (new ones are served as the fault says).
    pub fn cut_all(&self) {
        self.shared.cuts.fetch_add(1, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Replies cut in their middle so far.
    pub fn cut_replies(&self) -> usize {
        self.shared.cut_replies.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How often the control coroutine looks at the test's settings: short
/// next to any fault a test waits on, long enough to cost nothing.
const POLL: Duration = Duration::from_millis(2);

/// The proxy's hub: listens (except while refusing), accepts, pumps; stops
/// when told, which kills every coroutine as `main` returns.
fn serve(upstream: SocketAddr, shared: Arc<Shared>, tx: std::sync::mpsc::Sender<SocketAddr>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let addr = listener.local_addr().unwrap();
    tx.send(addr).unwrap();
    let pumps: Pumps = Rc::default();
    let mut acceptor = Some(spawn_acceptor(listener, upstream, &shared, &pumps));
    let mut seen_cuts = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        greenhub::sleep(POLL);
        match (shared.fault() == Fault::Refuse, acceptor.take()) {
            (true, Some(handle)) => handle.kill(),
            (false, None) => {
                let listener = TcpListener::bind(addr).expect("bind the proxy again");
                acceptor = Some(spawn_acceptor(listener, upstream, &shared, &pumps));
            }
            (_, kept) => acceptor = kept,
        }
        let cuts = shared.cuts.load(Ordering::SeqCst);
        let mut pumps = pumps.borrow_mut();
        pumps.retain(|(_, pump)| !pump.is_finished());
        if cuts != seen_cuts {
            seen_cuts = cuts;
            for (_, pump) in pumps.iter().filter(|(gen, _)| *gen < cuts) {
                pump.kill();
            }
        }
    }
}

/// Each connection's coroutine, with the cut generation it was accepted in.
type Pumps = Rc<std::cell::RefCell<Vec<(u64, greenhub::JoinHandle<()>)>>>;

fn spawn_acceptor(
    listener: TcpListener,
    upstream: SocketAddr,
    shared: &Arc<Shared>,
    pumps: &Pumps,
) -> greenhub::JoinHandle<()> {
    let (shared, pumps) = (shared.clone(), pumps.clone());
    greenhub::spawn(move || {
        while let Ok((client, _)) = listener.accept() {
            shared.accepted.fetch_add(1, Ordering::SeqCst);
            let generation = shared.cuts.load(Ordering::SeqCst);
            let shared = shared.clone();
            let pump = greenhub::spawn(move || connection(client, upstream, shared));
            pumps.borrow_mut().push((generation, pump));
        }
    })
}

/// One proxied connection: a pump each way, on this coroutine and a child;
/// when either ends (or this coroutine is killed), both sockets close.
fn connection(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let _ = client.set_nodelay(true);
    if shared.fault() == Fault::Blackhole {
        let mut sink = [0u8; 4096];
        while matches!((&client).read(&mut sink), Ok(n) if n > 0) {}
        return;
    }
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (client, server) = (Rc::new(client), Rc::new(server));
    struct Close(
        Rc<TcpStream>,
        Rc<TcpStream>,
        Option<greenhub::JoinHandle<()>>,
    );
    impl Drop for Close {
        fn drop(&mut self) {
            let _ = self.0.shutdown(Shutdown::Both);
            let _ = self.1.shutdown(Shutdown::Both);
            if let Some(up) = self.2.take() {
                up.kill();
            }
        }
    }
    let up = {
        let (client, server, shared) = (client.clone(), server.clone(), shared.clone());
        greenhub::spawn(move || {
            pump(&client, &server, &shared, false);
            // The client is gone: end the other pump's read too.
            let _ = server.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
        })
    };
    let _close = Close(client.clone(), server.clone(), Some(up));
    pump(&server, &client, &shared, true);
}

/// Forwards `from` to `to` until either side closes, applying the fault
/// set when each chunk arrives.
fn pump(from: &TcpStream, to: &TcpStream, shared: &Shared, replies: bool) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match (&*from).read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let sent = match shared.fault() {
            Fault::None | Fault::Refuse => (&*to).write_all(chunk),
            Fault::Latency(d) => {
                greenhub::sleep(d);
                (&*to).write_all(chunk)
            }
            Fault::Slice => chunk.iter().try_for_each(|byte| {
                (&*to).write_all(std::slice::from_ref(byte))?;
                // Let the byte leave as its own segment before the next.
                greenhub::yield_now();
                Ok(())
            }),
            Fault::CutMidReply if replies => {
                let _ = (&*to).write_all(&chunk[..n / 2]);
                shared.cut_replies.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Fault::CutMidReply => (&*to).write_all(chunk),
            Fault::Blackhole => Ok(()),
        };
        if sent.is_err() {
            return;
        }
    }
}
