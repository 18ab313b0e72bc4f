//! Child processes: their pipes and their exit park the coroutine while
//! the hub runs the others.

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;

use greenhub::process::Command;

#[test]
fn a_childs_output_is_read_while_a_cron_coroutine_ticks() {
    let (line, ticks_at_reply) = greenhub::run(|| {
        let mut child = Command::new("sh")
            .args(["-c", "read line; echo \"got $line\""])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let ticks = Rc::new(Cell::new(0));
        // Cron answers the child only after ticking three times, so the
        // child's reply can only come while main is parked on its stdout.
        let mut stdin = child.stdin.take().unwrap();
        let cron = {
            let ticks = ticks.clone();
            greenhub::Builder::new()
                .name("cron")
                .spawn(move || loop {
                    greenhub::sleep(Duration::from_millis(2));
                    ticks.set(ticks.get() + 1);
                    if ticks.get() == 3 {
                        stdin.write_all(b"hello\n").unwrap();
                        stdin.flush().unwrap();
                    }
                })
                .unwrap()
        };
        let mut line = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut line)
            .unwrap();
        let ticks_at_reply = ticks.get();
        assert!(child.wait().unwrap().success());
        cron.kill();
        (line, ticks_at_reply)
    });
    assert_eq!(line, "got hello\n");
    assert!(
        ticks_at_reply >= 3,
        "cron ticked while main read: {ticks_at_reply}"
    );
}

#[test]
fn output_captures_stdout_stderr_and_the_status() {
    let output = greenhub::run(|| {
        Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 7"])
            .output()
            .unwrap()
    });
    assert_eq!(output.stdout, b"out\n");
    assert_eq!(output.stderr, b"err\n");
    assert_eq!(output.status.code(), Some(7));
}

#[test]
fn output_reads_both_pipes_at_once_so_a_chatty_child_never_stalls() {
    // 256 KiB on each stream: more than a pipe holds, so reading one to its
    // end before the other would leave the child blocked on the other.
    let output = greenhub::run(|| {
        Command::new("sh")
            .args([
                "-c",
                "head -c 262144 /dev/zero; head -c 262144 /dev/zero >&2",
            ])
            .output()
            .unwrap()
    });
    assert_eq!(
        (output.stdout.len(), output.stderr.len()),
        (262_144, 262_144)
    );
    assert!(output.status.success());
}

#[test]
fn a_killed_child_reports_the_signal_and_wait_parks_meanwhile() {
    greenhub::run(|| {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(child.try_wait().unwrap().is_none());
        let cut = greenhub::timeout(Duration::from_millis(20), || child.wait());
        assert!(cut.is_err(), "a timeout ends the wait; the child runs on");
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    });
}

#[test]
fn status_reports_failure_and_a_missing_program_is_an_error() {
    greenhub::run(|| {
        assert!(!Command::new("false").status().unwrap().success());
        let err = Command::new("/nonexistent/program").spawn().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    });
}

#[test]
fn spawning_outside_a_hub_is_an_error() {
    let err = Command::new("true").spawn().unwrap_err();
    assert!(err.to_string().contains("greenhub::run"), "{err}");
}
