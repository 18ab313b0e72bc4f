//! Runs the runtime's examples (built by `cargo test` beside this test) and
//! checks what they print.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/examples/NAME`, next to this test's own `deps/` folder.
fn example(name: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let profile_dir: PathBuf = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the whole `cargo test -p greenhub`, which builds the examples",
        path.display()
    );
    Command::new(path)
}

#[test]
fn the_echo_example_serves_a_thousand_clients_in_one_thread() {
    let output = example("echo").output().expect("run the echo example");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
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
