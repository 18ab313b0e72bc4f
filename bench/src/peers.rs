//! The peers greenhub is measured against in `switch` and `spawn`: may
//! (stackful coroutines, like greenhub) on one worker thread, and Tokio's
//! current-thread runtime (stackless tasks, one thread, as greenhub's hub).
//! Each runs the same program as `micro.rs` runs on greenhub and `floor.rs`
//! on the floor prototype, and times itself from inside its own scheduler
//! (the timing code is a coroutine or task like the ones it times), so
//! thread start-up and cross-thread wakes stay outside the figures.
//! The echo servers of both are in `echo.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::task::{Context, Poll};
use std::time::Instant;

use may::sync::SyncFlag;

/// Configures may before its scheduler starts (on its first use; later
/// settings are ignored): one worker, so it runs coroutines on one thread as
/// greenhub and Tokio's current-thread runtime do. Not pinned to a core, so
/// all three are left to the same OS scheduler on this shared machine.
fn may_init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        may::config().set_workers(1);
        may::config().set_worker_pin(false);
    });
}

/// Runs `f` in a may coroutine and returns its value (the caller's thread
/// blocks meanwhile; may's worker thread does the work).
pub(crate) fn in_may<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    may_init();
    may::go!(f).join().expect("the may coroutine returned")
}

/// A current-thread Tokio runtime with its I/O driver, as an echo server
/// needs: the scheduler polls it when its queue runs dry and every 61 tasks.
fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a Tokio runtime")
}

/// Runs `f` as a spawned task and returns its value. Not as the `block_on`
/// future itself: the scheduler polls that one apart from its run queue,
/// only between batches of up to 61 tasks, where a task is queued like the
/// coroutines it is compared with.
pub(crate) fn in_tokio_task<F: Future + Send + 'static>(f: F) -> F::Output
where
    F::Output: Send,
{
    tokio_runtime()
        .block_on(async { tokio::spawn(f).await })
        .expect("the Tokio task returned")
}

/// may: ns per switch, `coroutines` each yielding `rounds` times, timed once
/// every one has started (as `floor::switch_ns`). may queues a spawn on its
/// global queue, which the worker drains only when its local queue is empty,
/// and a yield goes back on the local queue: a coroutine yielding in a loop
/// would keep the others from ever starting. So each one parks on a flag once
/// started, and firing the flag puts them all on the local queue together.
pub(crate) fn may_switch_ns(coroutines: usize, rounds: u64) -> f64 {
    in_may(move || {
        let started = Arc::new(AtomicUsize::new(0));
        let (all_started, go) = (Arc::new(SyncFlag::new()), Arc::new(SyncFlag::new()));
        let workers: Vec<_> = (0..coroutines)
            .map(|_| {
                let (started, all_started, go) = (started.clone(), all_started.clone(), go.clone());
                may::go!(move || {
                    if started.fetch_add(1, Ordering::Relaxed) + 1 == coroutines {
                        all_started.fire();
                    }
                    go.wait();
                    (0..rounds).for_each(|_| may::coroutine::yield_now());
                })
            })
            .collect();
        all_started.wait();
        let start = Instant::now();
        go.fire();
        workers.into_iter().for_each(|w| w.join().unwrap());
        start.elapsed().as_nanos() as f64 / (coroutines as u64 * rounds) as f64
    })
}

/// may: ns per spawn + run + join of an empty coroutine.
pub(crate) fn may_spawn_ns(rounds: u64) -> f64 {
    in_may(move || {
        may::go!(|| ()).join().unwrap(); // warm the coroutine pool
        let start = Instant::now();
        for _ in 0..rounds {
            may::go!(|| ()).join().unwrap();
        }
        start.elapsed().as_nanos() as f64 / rounds as f64
    })
}

/// How a Tokio task gives way in `tokio_switch_ns`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TokioYield {
    /// `tokio::task::yield_now()`, what a Tokio user writes: the task is
    /// deferred until the scheduler has polled its driver (`epoll_wait(0)`)
    /// once the queue runs dry, so a round of yields costs one system call.
    YieldNow,
    /// A future that wakes itself and returns `Pending` once: the task goes
    /// straight to the back of the run queue, Tokio's bare task switch.
    SelfWake,
}

/// Pending once after waking itself: [`TokioYield::SelfWake`].
struct SelfWake(bool);

impl Future for SelfWake {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

async fn give_way(how: TokioYield) {
    match how {
        TokioYield::YieldNow => tokio::task::yield_now().await,
        TokioYield::SelfWake => SelfWake(false).await,
    }
}

/// Tokio: ns per switch, `tasks` each yielding `rounds` times, timed once
/// every one has started.
pub(crate) fn tokio_switch_ns(tasks: usize, rounds: u64, how: TokioYield) -> f64 {
    in_tokio_task(async move {
        let started = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..tasks)
            .map(|_| {
                let started = started.clone();
                tokio::spawn(async move {
                    started.fetch_add(1, Ordering::Relaxed);
                    give_way(how).await;
                    for _ in 0..rounds {
                        give_way(how).await;
                    }
                })
            })
            .collect();
        while started.load(Ordering::Relaxed) < tasks {
            give_way(how).await;
        }
        let start = Instant::now();
        for worker in workers {
            worker.await.unwrap();
        }
        start.elapsed().as_nanos() as f64 / (tasks as u64 * rounds) as f64
    })
}

/// Tokio: ns per spawn + run + join (await) of an empty task.
pub(crate) fn tokio_spawn_ns(rounds: u64) -> f64 {
    in_tokio_task(async move {
        tokio::spawn(async {}).await.unwrap();
        let start = Instant::now();
        for _ in 0..rounds {
            tokio::spawn(async {}).await.unwrap();
        }
        start.elapsed().as_nanos() as f64 / rounds as f64
    })
}
