//! Runs the client's numbered examples against a server the harness starts,
//! and checks that each prints what its header says it prints.

use std::path::PathBuf;
use std::process::Command;

use greenhub_tests::RedisServer;

fn run_example(name: &str, url: &str) -> String {
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
        "{} is missing: run the whole `cargo test -p greenhub-redis`",
        path.display()
    );
    let output = Command::new(path)
        .env("REDIS_URL", url)
        .output()
        .expect("run the example");
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

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
    let server = RedisServer::start();
    for (name, source) in [
        ("01_get_set", include_str!("../examples/01_get_set.rs")),
        (
            "02_brpop_handoff",
            include_str!("../examples/02_brpop_handoff.rs"),
        ),
        ("03_pubsub", include_str!("../examples/03_pubsub.rs")),
    ] {
        assert_eq!(run_example(name, &server.url()), promised(source), "{name}");
    }
}
