//! Runs the runtime's numbered examples (built by `cargo test` beside this
//! test) and checks that each prints what its header says it prints.

use greenhub_tests::{promised_output, run_example};

#[test]
fn every_example_prints_what_its_header_promises() {
    for (name, source) in [
        (
            "01_spawn_and_join",
            include_str!("../examples/01_spawn_and_join.rs"),
        ),
        (
            "02_sleep_and_timers",
            include_str!("../examples/02_sleep_and_timers.rs"),
        ),
        ("04_timeouts", include_str!("../examples/04_timeouts.rs")),
        (
            "05_chat_server",
            include_str!("../examples/05_chat_server.rs"),
        ),
        ("06_udp_echo", include_str!("../examples/06_udp_echo.rs")),
        (
            "07_graceful_shutdown",
            include_str!("../examples/07_graceful_shutdown.rs"),
        ),
        (
            "08_select_loop",
            include_str!("../examples/08_select_loop.rs"),
        ),
    ] {
        assert_eq!(run_example(name, None), promised_output(source), "{name}");
    }
}

#[test]
fn the_echo_example_serves_a_thousand_clients_in_one_thread() {
    let stdout = run_example("03_echo_server", None);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("echo server listening on 127.0.0.1:"),
        "{stdout}"
    );
    assert_eq!(
        lines[1],
        "1000 clients echoed 10000 messages in one OS thread (helper threads: 0)"
    );
    assert!(
        lines[2].starts_with("hub: 2002 coroutines spawned, at most "),
        "{stdout}"
    );
}
