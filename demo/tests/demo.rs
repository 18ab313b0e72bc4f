//! The demo binary, run as a user would, against a harness-started server.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use greenhub_tests::{RedisCluster, RedisServer, TlsServer};

fn demo(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_demo"));
    command
        .args(args)
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "info");
    command
}

/// The `key=value` pairs of the summary, which must be the last line.
fn summary(output: &Output) -> HashMap<String, String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let fields = last
        .strip_prefix("summary: ")
        .unwrap_or_else(|| panic!("no summary line at the end:\n{stdout}"));
    fields
        .split(' ')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The private-cluster directories of the demo process `pid` that exist
/// now: `greenhub-demo-cluster-PID-SUFFIX` in the temp dir.
fn cluster_dirs(pid: u32) -> Vec<std::path::PathBuf> {
    let prefix = format!("greenhub-demo-cluster-{pid}-");
    let mut dirs: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn coroutines_mode_reproduces_the_article_in_one_thread() {
    let server = RedisServer::start();
    // BRPOP 2: the snapshot after one second falls well inside the wait (at
    // BRPOP 1, a server at the default hz 10 may answer a few ms early).
    let output = demo(&[
        "--clients",
        "50",
        "--timeout",
        "2",
        "--redis",
        &server.unix_url(),
    ])
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let s = summary(&output);
    for (key, value) in [
        ("mode", "coroutines"),
        ("clients", "50"),
        ("timeout_s", "2"),
        ("os_threads", "1"),
        ("created", "50"),
        ("in_use", "50"),
        ("available", "0"),
        ("nil_replies", "50"),
        ("errors", "0"),
    ] {
        assert_eq!(s[key], value, "{key}");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("(cron) Hello from cron coroutine."),
        "{stdout}"
    );
    assert!(
        stdout.contains("(main) # Redis connections in use: 50"),
        "{stdout}"
    );
    let line = stdout.lines().next().unwrap();
    let (time, rest) = line.split_once(' ').unwrap();
    assert_eq!(
        time.len(),
        "HH:MM:SS,mmm.m".len(),
        "the article's time format: {line}"
    );
    assert_eq!(rest, "(main) Spawning 50 coroutines connecting to Redis...");
}

#[test]
fn threads_mode_shows_what_the_threads_cost() {
    let server = RedisServer::start();
    let output = demo(&[
        "--mode",
        "threads",
        "--clients",
        "20",
        "--timeout",
        "2",
        "--redis",
        &server.url(),
    ])
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let s = summary(&output);
    assert_eq!(
        (
            s["mode"].as_str(),
            s["created"].as_str(),
            s["in_use"].as_str()
        ),
        ("threads", "20", "20")
    );
    assert_eq!(
        (s["nil_replies"].as_str(), s["errors"].as_str()),
        ("20", "0")
    );
    let threads: u32 = s["os_threads"].parse().unwrap();
    assert!(threads >= 22, "20 clients, cron and main: {threads}");
}

#[test]
fn with_redis_private_it_starts_and_stops_its_own_server() {
    let child = demo(&["--clients", "10", "--redis", "private"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("greenhub-demo-{}", child.id()));
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(summary(&output)["nil_replies"], "10");
    assert!(!dir.exists(), "the private server's directory was removed");
}

#[test]
fn ctrl_c_stops_the_private_server_too() {
    let mut child = demo(&["--clients", "10", "--timeout", "30", "--redis", "private"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("greenhub-demo-{}", child.id()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Once the clients are spawned, the private server is up.
    assert!(lines.any(|line| line.unwrap().contains("Spawning 10 coroutines")));
    assert!(dir.join("redis.sock").exists());
    // SAFETY: kill(2) sends SIGINT to our own child; no memory is involved.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "128 + SIGINT");
    assert!(
        !dir.exists(),
        "the handler killed the server and removed its directory"
    );
}

#[test]
fn with_no_redis_server_binary_it_says_how_to_install_one() {
    let output = demo(&["--redis", "private"])
        .env("PATH", "")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("redis-server is not installed")
            && stdout.contains("apt-get install redis-server"),
        "{stdout}"
    );
    let output = demo(&["--redis", "private-cluster"])
        .env("PATH", "")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("needs redis-server and redis-cli")
            && stdout.contains("apt-get install redis-server redis-tools"),
        "{stdout}"
    );
}

#[test]
fn a_client_count_beyond_the_open_files_limit_is_refused_before_spawning() {
    let output = demo(&["--clients", "100000000", "--redis", "private"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("--clients 100000000 needs about") && stdout.contains("open files"),
        "{stdout}"
    );
    assert!(!stdout.contains("Spawning"), "{stdout}");
}

#[test]
fn a_client_count_beyond_the_servers_maxclients_is_refused_with_the_numbers() {
    let server = RedisServer::start_with(&["--maxclients", "20"]);
    let output = demo(&["--clients", "50", "--redis", &server.url()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("maxclients 20") && stdout.contains("--clients 50 cannot fit"),
        "{stdout}"
    );
}

#[test]
fn bad_flags_get_the_help_text() {
    let output = demo(&["--mode", "fibers"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--mode must be coroutines or threads")
    );
    let help = demo(&["--help"]).output().unwrap();
    assert!(
        help.status.success()
            && String::from_utf8_lossy(&help.stdout).contains("--cron-interval SECONDS")
    );
}

#[test]
fn dump_after_logs_who_waits_on_what() {
    let server = RedisServer::start();
    // The dump at 0.5 s must fall inside the BRPOP wait: BRPOP 2 leaves a
    // busy machine 1.5 s of room on the far side of it.
    let output = demo(&[
        "--clients",
        "3",
        "--timeout",
        "2",
        "--dump-after",
        "0.5",
        "--redis",
        &server.url(),
    ])
    .output()
    .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let table: Vec<&str> = stdout.lines().filter(|l| l.contains("(dump)")).collect();
    assert_eq!(
        table.len(),
        1 + 6,
        "a header and main, cron, dump, 3 clients:\n{stdout}"
    );
    assert_eq!(
        table
            .iter()
            .filter(|l| l.contains("ask_redis") && l.contains("socket fd"))
            .count(),
        3
    );
    assert!(table
        .iter()
        .any(|l| l.contains("cron") && l.contains("sleep (")));
}

#[test]
fn hubs_2_spreads_ten_thousand_clients_over_two_threads_with_totals() {
    let server = RedisServer::start_with(&["--maxclients", "10100"]);
    let output = demo(&[
        "--hubs",
        "2",
        "--clients",
        "10000",
        // Room for 10,000 connects in a debug build on a loaded machine:
        // each hub waits for its connects (up to this timeout) before
        // reporting its pool.
        "--timeout",
        "10",
        "--redis",
        &server.unix_url(),
    ])
    .output()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let s = summary(&output);
    for (key, value) in [
        ("mode", "coroutines"),
        ("hubs", "2"),
        ("clients", "10000"),
        ("os_threads", "2"),
        ("created", "10000"),
        ("in_use", "10000"),
        ("available", "0"),
        ("nil_replies", "10000"),
        ("errors", "0"),
    ] {
        assert_eq!(s[key], value, "{key}");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("(cron) Hello from cron coroutine."),
        "{stdout}"
    );
    assert!(stdout.contains("on 2 hubs..."), "{stdout}");
}

#[test]
fn hubs_with_threads_mode_or_zero_hubs_is_refused() {
    for args in [&["--hubs", "0"][..], &["--hubs", "2", "--mode", "threads"]] {
        let output = demo(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--hubs"), "{stderr}");
    }
}

#[test]
fn over_tls_with_a_client_certificate_it_runs_the_experiment() {
    // The server requires a client certificate: the run proves all three
    // --tls-* files reach the connection.
    let server = TlsServer::start(true);
    let files = server.files();
    let path = |p: &std::path::Path| p.display().to_string();
    let output = demo(&[
        "--clients",
        "50",
        "--redis",
        &format!("rediss://127.0.0.1:{}", server.tls_port()),
        "--tls-ca",
        &path(&files.ca),
        "--tls-cert",
        &path(&files.client.cert),
        "--tls-key",
        &path(&files.client.key),
    ])
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let s = summary(&output);
    assert_eq!(
        (s["nil_replies"].as_str(), s["errors"].as_str()),
        ("50", "0"),
        "{stdout}"
    );
    let refused = demo(&["--tls-ca", &path(&files.ca)]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("need --redis rediss://"));
}

/// The per-node lines of a cluster run: `(port, created, in_use)` of each
/// master, as logged before the totals.
fn node_lines(output: &Output) -> Vec<(u16, usize, usize)> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| line.split_once("(main) # Redis node 127.0.0.1:"))
        .map(|(_, rest)| {
            let numbers: Vec<usize> = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|n| n.parse().unwrap())
                .collect();
            assert!(rest.contains("(master)"), "only masters are used: {rest}");
            // port, created, in use, available
            (numbers[0] as u16, numbers[1], numbers[2])
        })
        .collect()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn cluster_mode_spreads_the_clients_over_every_master_and_sums_their_pools() {
    let cluster = RedisCluster::start();
    // BRPOP 3: the snapshot after one second falls well inside the wait,
    // even with 500 TCP connects on a loaded machine.
    let urls = cluster.urls();
    let output = demo(&[
        "--cluster",
        "--clients",
        "500",
        "--timeout",
        "3",
        "--redis",
        &urls[0],
    ])
    .output()
    .unwrap();
    assert_success(&output);
    let s = summary(&output);
    for (key, value) in [
        ("mode", "coroutines"),
        ("clients", "500"),
        ("os_threads", "1"),
        ("nodes", "3"),
        ("created", "500"),
        ("in_use", "500"),
        ("available", "0"),
        ("peak_in_use", "500"),
        ("nil_replies", "500"),
        ("errors", "0"),
    ] {
        assert_eq!(s[key], value, "{key}");
    }
    // On the wire: one BRPOP per client, and no other command on the data
    // path (the harness's cluster is fresh; CLUSTER SHARDS, INFO and the
    // like are the slot-map load and the capacity check).
    let mut brpops = 0;
    for port in cluster.master_ports() {
        let stats = cluster.cli(port, &["INFO", "commandstats"]);
        for line in stats.lines() {
            let Some((name, rest)) = line.split_once(':') else {
                continue;
            };
            let calls: usize = rest
                .strip_prefix("calls=")
                .and_then(|r| r.split(',').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            match name {
                "cmdstat_brpop" => brpops += calls,
                "cmdstat_exists" | "cmdstat_get" | "cmdstat_set" | "cmdstat_lpush" => {
                    panic!("a client sent {name} on {port}: {line}")
                }
                _ => {}
            }
        }
    }
    assert_eq!(brpops, 500, "one BRPOP per client");
    let nodes = node_lines(&output);
    let mut ports: Vec<u16> = nodes.iter().map(|n| n.0).collect();
    ports.sort_unstable();
    let mut masters = cluster.master_ports();
    masters.sort_unstable();
    assert_eq!(ports, masters, "a line per master");
    assert!(
        nodes.iter().all(|n| n.1 > 100 && n.1 == n.2),
        "keys list:0..499 spread over the three masters: {nodes:?}"
    );
    assert_eq!(nodes.iter().map(|n| n.1).sum::<usize>(), 500);
}

#[test]
fn a_cluster_master_without_room_for_its_share_is_refused_with_the_numbers() {
    let cluster = RedisCluster::start();
    for port in cluster.master_ports() {
        assert_eq!(
            cluster.cli(port, &["CONFIG", "SET", "maxclients", "20"]),
            "OK"
        );
    }
    let output = demo(&[
        "--cluster",
        "--clients",
        "100",
        "--redis",
        &cluster.urls()[0],
    ])
    .output()
    .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("--clients 100 cannot fit")
            && stdout.contains("maxclients 20")
            && stdout.contains("of their keys live on the master at redis://127.0.0.1:"),
        "{stdout}"
    );
    assert!(!stdout.contains("Spawning"), "{stdout}");
}

#[test]
fn with_redis_private_cluster_it_starts_six_nodes_and_stops_them() {
    let child = demo(&[
        "--clients",
        "500",
        "--timeout",
        "3",
        "--redis",
        "private-cluster",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert_success(&output);
    let s = summary(&output);
    for (key, value) in [
        ("nodes", "3"),
        ("created", "500"),
        ("in_use", "500"),
        ("nil_replies", "500"),
        ("errors", "0"),
    ] {
        assert_eq!(s[key], value, "{key}");
    }
    assert_eq!(
        cluster_dirs(pid),
        Vec::<std::path::PathBuf>::new(),
        "the private cluster's directory was removed"
    );
    for (port, _, _) in node_lines(&output) {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the master on {port} was stopped"
        );
    }
}

#[test]
fn ten_thousand_clients_run_on_a_private_cluster() {
    let output = demo(&["--clients", "10000", "--redis", "private-cluster"])
        .output()
        .unwrap();
    assert_success(&output);
    let s = summary(&output);
    let number = |key: &str| -> usize { s[key].parse().unwrap() };
    assert_eq!(
        (s["nodes"].as_str(), number("nil_replies"), number("errors")),
        ("3", 10_000, 0)
    );
    // The snapshot is taken one second after the spawn, which a loaded
    // machine may not need to have connected all 10,000 by: the figures
    // must add up, whatever their size.
    let created = number("created");
    assert!(created <= 10_000);
    assert_eq!(created, number("in_use") + number("available"));
    let nodes = node_lines(&output);
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes.iter().map(|n| n.1).sum::<usize>(), created);
    // Each client holds its own connection until its BRPOP returns; with
    // the 1 s default timeout early clients may finish before late ones
    // connect, so the peak is at most N here (review_cluster.rs runs long
    // enough for all N at once).
    let peak = number("peak_in_use");
    assert!(peak > 0 && peak <= 10_000, "peak_in_use={peak}");
}

#[test]
fn ctrl_c_stops_the_private_cluster_too() {
    let mut child = demo(&[
        "--clients",
        "30",
        "--timeout",
        "30",
        "--redis",
        "private-cluster",
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The per-node lines come a second after the spawn, with every client
    // in its 30 s BRPOP.
    let mut ports = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some((_, rest)) = line.split_once("# Redis node 127.0.0.1:") {
            ports.push(rest.split(' ').next().unwrap().parse::<u16>().unwrap());
        }
        if line.contains("Waiting for Redis connection coroutines") {
            break;
        }
    }
    assert_eq!(ports.len(), 3, "a line per master");
    let dirs = cluster_dirs(pid);
    assert_eq!(dirs.len(), 1, "one fresh directory: {dirs:?}");
    let dir = dirs[0].clone();
    assert!(dir.join("node0").join("nodes.conf").exists());
    // SAFETY: kill(2) sends SIGINT to our own child; no memory is involved.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "128 + SIGINT");
    assert!(
        !dir.exists(),
        "the handler killed the nodes and removed their directories"
    );
    for port in ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the master on {port} was killed"
        );
    }
}

#[test]
fn cluster_mode_says_what_is_wrong_with_a_plain_server_or_threads() {
    let server = RedisServer::start();
    let output = demo(&["--cluster", "--clients", "5", "--redis", &server.url()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("cannot load the slot map") && stdout.contains("cluster"),
        "{stdout}"
    );
    let threads = demo(&["--cluster", "--mode", "threads"]).output().unwrap();
    assert_eq!(threads.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&threads.stderr).contains("--cluster runs in coroutines mode"));
}

#[test]
fn cluster_seed_urls_may_have_spaces_and_private_names_private_cluster() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();
    let list = format!("{} , {}", urls[0], urls[1]);
    let output = demo(&[
        "--cluster",
        "--clients",
        "20",
        "--timeout",
        "2",
        "--redis",
        &list,
    ])
    .output()
    .unwrap();
    assert_success(&output);
    assert_eq!(summary(&output)["nil_replies"], "20");

    let private = demo(&["--cluster", "--redis", "private", "--clients", "5"])
        .output()
        .unwrap();
    assert!(!private.status.success());
    let stdout = String::from_utf8_lossy(&private.stdout);
    assert!(stdout.contains("--redis private-cluster"), "{stdout}");
    assert!(!stdout.contains("Spawning"), "{stdout}");
}
