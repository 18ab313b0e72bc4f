//! Runs the runtime's numbered examples (built by `cargo test` beside this
//! test) and checks that each prints what its header says it prints.

use std::path::PathBuf;
use std::process::Command;

/// Runs `target/<profile>/examples/NAME` and returns its stdout.
fn run_example(name: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let path: PathBuf = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run the whole `cargo test -p greenhub`, which builds the examples",
        path.display()
    );
    let output = Command::new(path).output().expect("run the example");
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The ```text block of the example's header: the output it promises.
fn promised(source: &str) -> String {
    let lines: Vec<&str> = source
        .lines()
        .skip_while(|l| !l.starts_with("//! ```text"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| {
            l.strip_prefix("//! ")
                .or_else(|| l.strip_prefix("//!"))
                .unwrap()
        })
        .collect();
    lines.join("\n") + "\n"
}

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
    ] {
        assert_eq!(run_example(name), promised(source), "{name}");
    }
}

#[test]
fn the_echo_example_serves_a_thousand_clients_in_one_thread() {
    let stdout = run_example("03_echo_server");
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
