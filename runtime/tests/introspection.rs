//! `current`, `current_name` and `stats`: what a learner or a log line sees.

use std::time::Duration;

use greenhub::net::UnixStream;

#[test]
fn coroutines_know_their_names_and_log_lines_can_show_them() {
    greenhub::run(|| {
        assert_eq!(greenhub::current().unwrap().name(), Some("main"));
        assert_eq!(greenhub::current_name().to_string(), "main");
        let named = greenhub::Builder::new()
            .name("cron")
            .spawn(|| greenhub::current_name().to_string())
            .unwrap();
        let unnamed = greenhub::spawn(|| {
            (
                greenhub::current().unwrap().id(),
                greenhub::current_name().to_string(),
            )
        });
        assert_eq!(named.join().unwrap(), "cron");
        let (id, name) = unnamed.join().unwrap();
        assert_eq!(name, format!("coroutine-{id}"));
    });
    let thread = std::thread::current().name().unwrap_or("thread").to_owned();
    assert_eq!(
        greenhub::current_name().to_string(),
        thread,
        "outside a hub: the thread's name"
    );
}

#[test]
fn stats_count_coroutines_by_what_they_wait_on() {
    greenhub::run(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let on_socket = greenhub::spawn(move || std::io::Read::read(&mut &a, &mut [0u8; 1]));
        let on_timer = greenhub::spawn(|| greenhub::sleep(Duration::from_secs(3600)));
        let on_join = {
            let on_timer = std::rc::Rc::new(greenhub::spawn(|| {
                greenhub::sleep(Duration::from_secs(3600))
            }));
            greenhub::spawn(move || on_timer.wait())
        };
        greenhub::yield_now();
        let stats = greenhub::stats();
        assert_eq!(stats.alive, 5);
        assert_eq!(stats.runnable, 1, "main itself");
        assert_eq!(
            (stats.parked_io, stats.parked_timer, stats.parked_other),
            (1, 2, 1)
        );
        assert_eq!(stats.sockets, 2);
        assert_eq!(stats.spawned, 5);
        on_socket.kill();
        on_timer.kill();
        on_join.kill();
    });
}

#[test]
fn dump_shows_who_waits_on_a_socket_a_timer_and_a_channel() {
    greenhub::run(|| {
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
        greenhub::Builder::new()
            .name("reader")
            .spawn(move || std::io::Read::read(&mut &a, &mut [0u8; 1]))
            .unwrap();
        greenhub::Builder::new()
            .name("sleeper")
            .spawn(|| greenhub::sleep(Duration::from_secs(60)))
            .unwrap();
        let channel: greenhub::sync::Channel<u8> = greenhub::sync::Channel::unbounded();
        let keep = channel.clone();
        greenhub::Builder::new()
            .name("consumer")
            .spawn(move || channel.recv())
            .unwrap();
        greenhub::yield_now();
        let dump = greenhub::dump();
        let find = |name: &str| {
            dump.coroutines
                .iter()
                .find(|c| c.name == name)
                .unwrap()
                .clone()
        };
        assert_eq!(find("reader").waiting_on, format!("socket fd {fd} read"));
        let sleeper = find("sleeper");
        assert!(
            sleeper.waiting_on.starts_with("sleep (") && sleeper.waiting_on.ends_with(" ms left)"),
            "{}",
            sleeper.waiting_on
        );
        assert_eq!(find("consumer").waiting_on, "channel recv");
        assert_eq!(find("main").state, "running");
        let table = dump.to_string();
        assert!(
            table.lines().count() == 5 && table.contains("sleeper"),
            "{table}"
        );
        drop(keep);
    });
}

#[test]
fn dump_shows_how_deep_each_stack_has_gone() {
    greenhub::run(|| {
        let deep = greenhub::Builder::new()
            .name("deep")
            .spawn(|| {
                // 48 KiB live on the stack across the park.
                let buf = std::hint::black_box([7u8; 48 * 1024]);
                greenhub::sleep(Duration::from_secs(60));
                buf[0]
            })
            .unwrap();
        let shallow = greenhub::Builder::new()
            .name("shallow")
            .spawn(|| greenhub::sleep(Duration::from_secs(60)))
            .unwrap();
        greenhub::yield_now();
        let dump = greenhub::dump();
        let kib = |name: &str| {
            dump.coroutines
                .iter()
                .find(|c| c.name == name)
                .unwrap()
                .stack_kib
        };
        assert!(kib("deep") >= 48, "deep: {} KiB", kib("deep"));
        assert!(kib("shallow") <= 16, "shallow: {} KiB", kib("shallow"));
        deep.kill();
        shallow.kill();
    });
}
