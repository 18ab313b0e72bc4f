//! Spawn and join: three coroutines take turns on one OS thread.
//!
//! Run it with `cargo run -p greenhub --example 01_spawn_and_join`. It prints:
//!
//! ```text
//! main spawns a, b and c; none has run yet
//! a: step 1
//! b: step 1
//! c: step 1
//! a: step 2
//! b: step 2
//! c: step 2
//! results: a=1 b=2 c=3, all on thread main
//! ```
//!
//! `spawn` only queues a coroutine. It first runs when `main` parks (here, in
//! `join`). Each `yield_now` sends the running coroutine to the back of the
//! queue, so the three alternate.

fn main() {
    greenhub::run(|| {
        let workers: Vec<_> = [("a", 1), ("b", 2), ("c", 3)]
            .into_iter()
            .map(|(name, result)| {
                greenhub::Builder::new()
                    .name(name)
                    .spawn(move || {
                        for step in 1..=2 {
                            println!("{}: step {step}", greenhub::current_name());
                            greenhub::yield_now();
                        }
                        (
                            result,
                            std::thread::current().name().unwrap_or("?").to_owned(),
                        )
                    })
                    .expect("spawn")
            })
            .collect();
        println!("main spawns a, b and c; none has run yet");
        let results: Vec<(i32, String)> = workers
            .into_iter()
            .map(|w| w.join().expect("join"))
            .collect();
        println!(
            "results: a={} b={} c={}, all on thread {}",
            results[0].0, results[1].0, results[2].0, results[0].1
        );
    });
}
