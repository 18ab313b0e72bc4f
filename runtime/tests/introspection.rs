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
