//! `Runtime`: N hubs on N threads. Work spread over the hubs all runs,
//! values cross between hubs without loss, a handle joins from anywhere,
//! shutdown unwinds every coroutine of every hub exactly once, and a panic
//! stays on its coroutine.

mod util;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use greenhub::{JoinError, Runtime, SpawnError};

/// Records its id when dropped, so a test can tell each ran exactly once.
struct Dropped(Arc<Mutex<Vec<usize>>>, usize);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.lock().unwrap().push(self.1);
    }
}

#[test]
fn ten_thousand_coroutines_spread_over_two_hubs_all_finish() {
    let runtime = Runtime::builder().hubs(2).build().unwrap();
    let handle = runtime.handle();
    let by_hub = runtime.block_on(move || {
        let jobs: Vec<_> = (0..10_000)
            .map(|_| {
                handle
                    .spawn_anywhere(|| {
                        greenhub::sleep(Duration::from_millis(1));
                        greenhub::hub_id().unwrap()
                    })
                    .unwrap()
            })
            .collect();
        let mut by_hub = BTreeMap::new();
        for job in jobs {
            *by_hub.entry(job.join().unwrap()).or_insert(0) += 1;
        }
        by_hub
    });
    assert_eq!(
        by_hub.values().copied().collect::<Vec<_>>(),
        [5000, 5000],
        "round robin over both hubs: {by_hub:?}"
    );
}

#[test]
fn a_million_messages_cross_between_hubs_and_none_is_lost() {
    const MESSAGES: u64 = 1_000_000;
    let runtime = Runtime::builder().hubs(2).build().unwrap();
    let handle = runtime.handle();
    runtime.block_on(move || {
        let (tx, rx) = greenhub::sync::remote_channel::<u64>();
        let (back_tx, back_rx) = greenhub::sync::remote_channel::<u64>();
        // Hub 1 sends to hub 0 and, in between, receives what hub 0 sends it.
        let sender = handle
            .spawn_on(1, move || {
                let echo = greenhub::spawn(move || {
                    let mut sum = 0;
                    while let Ok(v) = back_rx.recv() {
                        sum += v;
                    }
                    sum
                });
                for i in 0..MESSAGES {
                    tx.send(i).unwrap();
                    if i % 1024 == 0 {
                        greenhub::yield_now();
                    }
                }
                drop(tx);
                echo.join().unwrap()
            })
            .unwrap();
        let mut expected = 0;
        while let Ok(v) = rx.recv() {
            assert_eq!(v, expected, "in order, none lost");
            expected += 1;
            back_tx.send(v).unwrap();
        }
        assert_eq!(expected, MESSAGES);
        drop(back_tx);
        assert_eq!(sender.join().unwrap(), MESSAGES * (MESSAGES - 1) / 2);
    });
}

#[test]
fn a_handle_is_joined_from_another_hub_and_from_a_plain_thread() {
    let runtime = Runtime::builder().hubs(2).build().unwrap();
    let handle = runtime.handle();
    // Spawned from a plain thread before block_on, joined by that thread.
    let from_thread = handle.spawn_on(1, || "joined by a plain thread").unwrap();
    let plain = std::thread::spawn(move || from_thread.join().unwrap());
    let inner = handle.clone();
    runtime.block_on(move || {
        // Spawned on hub 0 by hub 0, joined by a coroutine of hub 1.
        let on_zero = inner.spawn_on(0, || greenhub::hub_id().unwrap()).unwrap();
        let zero = greenhub::hub_id().unwrap();
        let joined_on_one = inner
            .spawn_on(1, move || {
                (greenhub::hub_id().unwrap(), on_zero.join().unwrap())
            })
            .unwrap();
        let (joiner, ran_on) = joined_on_one.join().unwrap();
        assert_eq!(ran_on, zero);
        assert_ne!(joiner, zero, "joined from the other hub");
    });
    assert_eq!(plain.join().unwrap(), "joined by a plain thread");
}

#[test]
fn shutdown_while_every_hub_has_parked_coroutines_runs_each_destructor_once() {
    const PER_HUB: usize = 100;
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let started = Arc::new(AtomicUsize::new(0));
    let runtime = Runtime::builder().hubs(2).build().unwrap();
    let handle = runtime.handle();
    let (dropped2, started2) = (dropped.clone(), started.clone());
    runtime.block_on(move || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (ready_tx, ready_rx) = greenhub::sync::remote_channel::<()>();
        for hub in 0..2 {
            for k in 0..PER_HUB {
                let id = hub * PER_HUB + k;
                let (dropped, started, ready) =
                    (dropped2.clone(), started2.clone(), ready_tx.clone());
                // A third each: asleep, parked on a socket, parked on a channel.
                handle
                    .spawn_on(hub, move || {
                        let _guard = Dropped(dropped, id);
                        let (_keep, rx) = greenhub::sync::remote_channel::<()>();
                        let stream = match k % 3 {
                            1 => Some(greenhub::net::TcpStream::connect(addr).unwrap()),
                            _ => None,
                        };
                        started.fetch_add(1, Ordering::SeqCst);
                        ready.send(()).unwrap();
                        match (k % 3, stream) {
                            (0, _) => greenhub::sleep(Duration::from_secs(3600)),
                            (1, Some(mut s)) => drop(s.read(&mut [0; 8])),
                            _ => drop(rx.recv()),
                        }
                        unreachable!("only shutdown ends this park");
                    })
                    .unwrap();
            }
        }
        for _ in 0..2 * PER_HUB {
            ready_rx.recv().unwrap();
        }
        let stats = handle.stats();
        let parked = |s: &greenhub::Stats| s.parked_io + s.parked_timer + s.parked_other;
        let hub1 = stats.per_hub[1].clone().unwrap();
        assert_eq!(
            parked(&hub1),
            PER_HUB + 1,
            "hub 1's coroutines and its main"
        );
        assert_eq!(hub1.alive, PER_HUB + 1);
        assert!(stats.total.alive >= 2 * PER_HUB + 2, "{stats:?}");
        drop(listener);
    });
    assert_eq!(started.load(Ordering::SeqCst), 2 * PER_HUB);
    let mut ids = dropped.lock().unwrap().clone();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..2 * PER_HUB).collect::<Vec<_>>(),
        "each destructor once"
    );
}

#[test]
fn dropping_a_runtime_without_block_on_unwinds_its_hubs() {
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let runtime = Runtime::builder().hubs(3).build().unwrap();
    let handle = runtime.handle();
    let (tx, rx) = std::sync::mpsc::channel();
    for hub in 1..3 {
        let (dropped, tx) = (dropped.clone(), tx.clone());
        handle
            .spawn_on(hub, move || {
                let _guard = Dropped(dropped, hub);
                tx.send(()).unwrap();
                greenhub::sleep(Duration::from_secs(3600));
            })
            .unwrap();
    }
    rx.recv().unwrap();
    rx.recv().unwrap();
    drop(runtime);
    let mut ids = dropped.lock().unwrap().clone();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    assert_eq!(
        handle.spawn_on(1, || ()).unwrap_err(),
        SpawnError::NotRunning { index: 1 }
    );
}

#[test]
fn a_panic_on_one_hub_stays_on_its_coroutine() {
    let runtime = Runtime::builder().hubs(2).build().unwrap();
    let handle = runtime.handle();
    runtime.block_on(move || {
        let (tx, rx) = greenhub::sync::remote_channel::<&str>();
        let bystander = handle.spawn_on(1, move || rx.recv().unwrap()).unwrap();
        let boom = handle.spawn_on(1, || -> u32 { panic!("boom on hub 1") });
        assert_eq!(
            boom.unwrap().join(),
            Err(JoinError::Panicked("boom on hub 1".into()))
        );
        tx.send("still here").unwrap();
        assert_eq!(bystander.join().unwrap(), "still here");
        assert_eq!(handle.spawn_on(1, || 7).unwrap().join(), Ok(7));
    });
}

#[test]
fn bad_hub_indexes_are_clear_errors() {
    let runtime = Runtime::builder().hubs(2).build().unwrap();
    let handle = runtime.handle();
    let err = handle.spawn_on(2, || ()).unwrap_err();
    assert_eq!(err, SpawnError::NoSuchHub { index: 2, hubs: 2 });
    assert_eq!(err.to_string(), "no hub 2: the runtime has 2 (0..2)");
    let err = handle.spawn_on(0, || ()).unwrap_err();
    assert_eq!(err.to_string(), "hub 0 runs only during Runtime::block_on");
    // Outside block_on, spawn_anywhere skips hub 0.
    let anywhere = handle.spawn_anywhere(greenhub::hub_id).unwrap();
    assert_eq!(anywhere.join().unwrap(), handle.hub_id(1));
}

#[test]
fn each_hub_accepts_on_its_own_reuseport_listener() {
    const CONNECTIONS: usize = 200;
    let runtime = Runtime::builder().hubs(2).build().unwrap();
    let handle = runtime.handle();
    let accepted: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let counts = accepted.clone();
    runtime.block_on(move || {
        // Each hub accepts forever on its own listener of the one port;
        // shutdown kills both accept loops.
        let serve = |listener: greenhub::net::TcpListener,
                     hub: usize,
                     counts: Arc<[AtomicUsize; 2]>| loop {
            let (mut conn, _) = listener.accept().unwrap();
            counts[hub].fetch_add(1, Ordering::SeqCst);
            conn.write_all(b"hi").unwrap();
        };
        let first = greenhub::net::TcpListener::bind_reuseport("127.0.0.1:0").unwrap();
        let addr = first.local_addr().unwrap();
        let (bound_tx, bound_rx) = greenhub::sync::remote_channel::<()>();
        let theirs = counts.clone();
        handle
            .spawn_on(1, move || {
                let listener = greenhub::net::TcpListener::bind_reuseport(addr).unwrap();
                bound_tx.send(()).unwrap();
                serve(listener, 1, theirs)
            })
            .unwrap();
        bound_rx.recv().unwrap();
        let mine = counts.clone();
        greenhub::spawn(move || serve(first, 0, mine));
        // Each client reads the greeting, so by its end every connection
        // was accepted by one hub or the other.
        let clients = greenhub::unblock(move || {
            for _ in 0..CONNECTIONS {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                let mut buf = [0; 2];
                c.read_exact(&mut buf).unwrap();
            }
        });
        clients.unwrap();
    });
    let [zero, one] = [0, 1].map(|i| accepted[i].load(Ordering::SeqCst));
    assert_eq!(zero + one, CONNECTIONS);
    // The kernel hashes each connection to a listener: with 200 of them,
    // one hub getting none has odds of 2^-199.
    assert!(zero > 0 && one > 0, "hub 0 took {zero}, hub 1 took {one}");
}

#[test]
fn the_runtime_stack_size_reaches_coroutines_spawned_on_its_hubs() {
    // 300 KiB of locals: more than a job's default 128 KiB stack holds.
    fn deep() -> u8 {
        let buf = std::hint::black_box([7u8; 300 * 1024]);
        buf[buf.len() - 1]
    }
    let runtime = Runtime::builder()
        .hubs(2)
        .stack_size(1024 * 1024)
        .thread_name("wide")
        .build()
        .unwrap();
    let handle = runtime.handle();
    let name = handle
        .spawn_on(1, || {
            (deep(), std::thread::current().name().map(String::from))
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(name, (7, Some("wide-1".to_owned())));
}

#[test]
fn with_a_runtime_stack_size_a_panic_and_a_kill_keep_their_outcomes() {
    let runtime = Runtime::builder()
        .hubs(2)
        .stack_size(256 * 1024)
        .build()
        .unwrap();
    let handle = runtime.handle();
    let panicked = handle
        .spawn_on(1, || -> u8 { panic!("deep trouble") })
        .unwrap();
    assert_eq!(
        panicked.join(),
        Err(JoinError::Panicked("deep trouble".into()))
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let parked = handle
        .spawn_on(1, move || {
            tx.send(()).unwrap();
            greenhub::sleep(Duration::from_secs(3600));
        })
        .unwrap();
    rx.recv().unwrap();
    drop(runtime); // shutdown kills it
    assert_eq!(parked.join(), Err(JoinError::Killed));
}
