//! Runs the client's numbered examples against a server the harness starts,
//! and checks that each prints what its header says it prints.

use greenhub_tests::{promised_output, run_example, RedisServer};

#[test]
fn every_example_prints_what_its_header_promises() {
    let server = RedisServer::start();
    for (name, source) in [
        ("01_get_set", include_str!("../examples/01_get_set.rs")),
        (
            "02_brpop_handoff",
            include_str!("../examples/02_brpop_handoff.rs"),
        ),
        ("03_pubsub", include_str!("../examples/03_pubsub.rs")),
        (
            "04_reliable_queue",
            include_str!("../examples/04_reliable_queue.rs"),
        ),
    ] {
        assert_eq!(
            run_example(name, Some(&server.url())),
            promised_output(source),
            "{name}"
        );
    }
}
