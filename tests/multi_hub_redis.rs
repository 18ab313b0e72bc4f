//! The client on a `greenhub::Runtime` of two hubs: one `ClientFactory`
//! shared by both, each hub with its own pool, whose counters add up.

use std::cell::Cell;
use std::rc::Rc;

use greenhub_redis::prelude::*;
use greenhub_redis::{ClientFactory, PoolStats};
use greenhub_tests::RedisServer;

const PER_HUB: usize = 100;

#[test]
fn each_hub_runs_its_own_pool_from_one_factory_and_the_stats_sum() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let server = RedisServer::start();
    let factory = ClientFactory::open(&server.url()).unwrap();
    send_sync(&factory);
    let runtime = greenhub::Runtime::builder().hubs(2).build().unwrap();
    let handle = runtime.handle();
    let (per_hub, counter) = runtime.block_on(move || {
        let jobs: Vec<_> = (0..2)
            .map(|hub| {
                let factory = factory.clone();
                handle
                    .spawn_on(hub, move || {
                        let redis = factory.client();
                        // PER_HUB coroutines each hold a connection until
                        // all of them hold one, so the pool grows to
                        // PER_HUB on this hub.
                        let holding = Rc::new(Cell::new(0));
                        let all_hold = greenhub::sync::Event::new();
                        let workers: Vec<_> = (0..PER_HUB)
                            .map(|_| {
                                let redis = redis.clone();
                                let (holding, all_hold) = (holding.clone(), all_hold.clone());
                                greenhub::spawn(move || {
                                    let mut conn = redis.get_connection().unwrap();
                                    conn.incr("multi-hub-counter").unwrap();
                                    holding.set(holding.get() + 1);
                                    if holding.get() == PER_HUB {
                                        all_hold.set();
                                    }
                                    all_hold.wait().unwrap();
                                    conn.incr("multi-hub-counter").unwrap();
                                })
                            })
                            .collect();
                        workers.into_iter().for_each(|w| w.join().unwrap());
                        (greenhub::hub_id().unwrap(), redis.stats())
                    })
                    .unwrap()
            })
            .collect();
        let per_hub: Vec<_> = jobs.into_iter().map(|j| j.join().unwrap()).collect();
        let mut redis = greenhub_redis::Client::open(&server.url()).unwrap();
        let counter: i64 = redis.get("multi-hub-counter").unwrap();
        (per_hub, counter)
    });
    assert_eq!(counter, 2 * 2 * PER_HUB as i64, "every INCR of both hubs");
    assert_ne!(per_hub[0].0, per_hub[1].0, "two hubs");
    for (_, stats) in &per_hub {
        assert_eq!(stats.created, PER_HUB, "each hub opened its own: {stats:?}");
        assert_eq!((stats.in_use, stats.available), (0, PER_HUB));
    }
    let total: PoolStats = per_hub.iter().map(|(_, s)| *s).sum();
    assert_eq!(
        (total.created, total.in_use, total.available),
        (2 * PER_HUB, 0, 2 * PER_HUB)
    );
}
