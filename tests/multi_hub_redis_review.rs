//! Review of issue 16: a `ClientFactory` client taken past the hub that
//! made it. `Client` is `!Send`, but `block_on` returns a `!Send` value to
//! its caller, so a client (and its idle connections, registered with that
//! hub 0) can outlive the hub and be used on the same thread afterwards: on
//! the plain thread, and on a later runtime's hub 0.

use greenhub_redis::prelude::*;
use greenhub_redis::ClientFactory;
use greenhub_tests::RedisServer;

#[test]
fn a_client_kept_past_its_runtime_works_on_the_plain_thread_and_a_later_hub_0() {
    let server = RedisServer::start();
    let factory = ClientFactory::open(&server.url()).unwrap();
    let first = greenhub::Runtime::builder().hubs(2).build().unwrap();
    let kept = first.block_on({
        let factory = factory.clone();
        move || {
            let mut redis = factory.client();
            redis.set("review16", "a").unwrap();
            assert_eq!(redis.stats().available, 1);
            redis
        }
    });
    // On the plain thread: the hub's idle connection is not handed out.
    let mut redis = kept.clone();
    let got: String = redis.get("review16").unwrap();
    assert_eq!(got, "a");
    // On a later runtime's hub 0, the same thread: again a fresh connection.
    let second = greenhub::Runtime::builder().hubs(2).build().unwrap();
    let got: String = second.block_on(move || {
        let mut redis = kept;
        redis.get("review16").unwrap()
    });
    assert_eq!(got, "a");
}
