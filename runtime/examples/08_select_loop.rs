//! A worker's event loop on `select`: jobs from a channel, commands from an
//! admin socket, an idle tick when nothing happens for 20 ms, and a stop
//! event, all waited on at once.
//!
//! Run it with `cargo run -p greenhub --example 08_select_loop`. It prints:
//!
//! ```text
//! job 1 done
//! job 2 done
//! admin: status
//! idle for 20 ms: tick
//! job 3 done
//! stopped after 3 jobs, 1 admin command, 1 tick
//! ```
//!
//! Each turn builds a `Select`, adds the arms in priority order and parks
//! once on all of them. `wait` only says which arm is ready; the loop then
//! takes from that one alone (`ready.recv(&jobs)`, a read on the socket), so
//! the arms that did not win lose nothing. The producer waits for the tick
//! before sending the last job, so the output is the same on any machine.

use std::io::{Read, Write};
use std::time::Duration;

use greenhub::net::UnixStream;
use greenhub::select::Select;
use greenhub::sync::{Channel, Event};

fn main() {
    greenhub::run(|| {
        let jobs: Channel<u32> = Channel::bounded(8);
        let (admin, mut operator) = UnixStream::pair().expect("a socket pair");
        let (ticked, stop) = (Event::new(), Event::new());

        {
            let (jobs, ticked, stop) = (jobs.clone(), ticked.clone(), stop.clone());
            greenhub::spawn(move || {
                jobs.send(1).expect("send");
                jobs.send(2).expect("send");
                operator.write_all(b"status").expect("write");
                ticked.wait().expect("the idle tick");
                jobs.send(3).expect("send");
                stop.set();
                operator // kept open until the end
            });
        }

        let (mut done, mut commands, mut ticks) = (0, 0, 0);
        loop {
            let mut sel = Select::new();
            let job = sel.recv(&jobs);
            let command = sel.readable(&admin);
            let stopping = sel.event(&stop);
            let idle = sel.after(Duration::from_millis(20));
            let ready = sel.wait().expect("select");
            match ready.index() {
                i if i == job => {
                    let n = ready.recv(&jobs).expect("a job");
                    println!("job {n} done");
                    done += 1;
                }
                i if i == command => {
                    let mut buf = [0u8; 64];
                    let n = (&admin).read(&mut buf).expect("read"); // ready: never parks
                    println!("admin: {}", String::from_utf8_lossy(&buf[..n]));
                    commands += 1;
                }
                i if i == idle => {
                    println!("idle for 20 ms: tick");
                    ticks += 1;
                    ticked.set();
                }
                i if i == stopping => break,
                _ => unreachable!("every arm is matched"),
            }
        }
        println!("stopped after {done} jobs, {commands} admin command, {ticks} tick");
    });
}
