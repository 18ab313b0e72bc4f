//! Review of issue 12 (second pass): the heap a parked BRPOP's connection
//! holds, counted by a global allocator of this test binary alone (one
//! test at a time, through `SERIAL`, so nothing else allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use greenhub_redis::prelude::*;
use greenhub_redis::{pipe, Client};
use greenhub_tests::RedisServer;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// One measuring test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Live heap, less the heap before, while one BRPOP parks on a new
/// client's one connection, which first ran `pipeline` commands (if any).
fn parked_heap(url: &str, pipeline: usize) -> isize {
    let before = LIVE.load(Ordering::Relaxed);
    let r = Client::open(url).unwrap();
    let mut con = r.get_connection().unwrap();
    if pipeline > 0 {
        let mut big = pipe();
        for _ in 0..pipeline {
            big.cmd("PING");
        }
        let _: Vec<String> = big.query(&mut *con).unwrap();
    }
    con.ping().unwrap();
    let waiter = greenhub::spawn(move || {
        let mut con = con;
        con.brpop(&["q"], 10.0).unwrap()
    });
    greenhub::sleep(Duration::from_millis(100));
    let during = LIVE.load(Ordering::Relaxed);
    Client::open(url).unwrap().rpush("q", &["x"]).unwrap();
    waiter.join().unwrap();
    during - before
}

/// docs/redis-client.md (d6f4985): while a blocking command waits, "the
/// list of replies owed holds exactly the one or two entries the command
/// needs". `send_command` does `clear` + `reserve_exact`, which never
/// shrinks: a pooled connection that once ran a 2,000-command pipeline
/// keeps 2,000 slots through every later parked BRPOP (and while idle in
/// the pool: `trim` gives back only the read buffer).
#[test]
fn a_parked_brpop_after_a_big_pipeline_holds_what_a_fresh_one_holds() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let fresh_heap = parked_heap(&url, 0);
        let used_heap = parked_heap(&url, 2000);
        eprintln!("parked heap: fresh {fresh_heap} B, after a pipeline {used_heap} B");
        assert!(
            used_heap - fresh_heap < 1024,
            "fresh {fresh_heap} B, after a 2,000-command pipeline {used_heap} B"
        );
    });
}

/// docs/redis-client.md: the read buffer "is trimmed back when the pool
/// takes the connection back"; the write buffer (`Connection::out`) never
/// is: after one SET of an 8 MiB value, the idle pooled connection keeps
/// 8 MiB of heap for as long as it lives (every pooled connection that ever
/// sent a large value does).
#[test]
fn an_idle_pooled_connection_gives_back_a_large_requests_write_buffer() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = RedisServer::start();
    let url = server.url();
    greenhub::run(move || {
        let mut r = Client::open(&url).unwrap();
        r.ping().unwrap();
        let big = vec![b'v'; 8 << 20];
        let before = LIVE.load(Ordering::Relaxed);
        r.set("big", &big).unwrap();
        drop(big);
        let kept = LIVE.load(Ordering::Relaxed) - before + (8 << 20);
        assert_eq!(r.stats().available, 1, "pooled");
        assert!(kept < 64 << 10, "the idle pooled connection keeps {kept} B");
    });
}
