//! Deadlock detection: when nothing can ever wake anyone, the parked
//! operation fails and names the coroutines, instead of hanging.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use greenhub::{JoinError, JoinHandle};

#[test]
fn main_waiting_on_a_coroutine_that_waits_on_itself_gets_a_deadlock_error() {
    let (result, survivor) = greenhub::run(|| {
        let slot: Rc<RefCell<Option<Rc<JoinHandle<()>>>>> = Rc::new(RefCell::new(None));
        let own = slot.clone();
        let stuck = greenhub::Builder::new()
            .name("waits-on-itself")
            .spawn(move || {
                let me = own.borrow().clone().expect("main stored the handle");
                let _ = me.wait();
            })
            .unwrap();
        let stuck = Rc::new(stuck);
        *slot.borrow_mut() = Some(stuck.clone());
        let bystander = greenhub::Builder::new()
            .name("bystander")
            .spawn(move || {
                let _ = stuck.wait();
            })
            .unwrap();
        let result = bystander.wait();
        // The hub is still healthy after reporting.
        let survivor = greenhub::spawn(|| {
            greenhub::sleep(Duration::from_millis(1));
            "still running"
        });
        (result, survivor.join())
    });
    let Err(JoinError::Deadlock(message)) = result else {
        panic!("expected a deadlock error, got {result:?}");
    };
    assert!(message.contains("would block forever"), "{message}");
    for name in ["main (join)", "waits-on-itself (join)", "bystander (join)"] {
        assert!(message.contains(name), "{name} missing from: {message}");
    }
    assert_eq!(survivor, Ok("still running"));
}

#[test]
fn a_coroutine_waiting_on_a_socket_is_not_a_deadlock() {
    greenhub::run(|| {
        let (a, b) = greenhub::net::UnixStream::pair().unwrap();
        let reader = greenhub::spawn(move || {
            let mut buf = [0u8; 1];
            std::io::Read::read(&mut &a, &mut buf).unwrap()
        });
        let writer = greenhub::spawn(move || {
            // By the time this runs, main and the reader are parked, and
            // only the socket can wake the reader.
            std::io::Write::write_all(&mut &b, b"x").unwrap();
        });
        writer.join().unwrap();
        assert_eq!(reader.join(), Ok(1));
    });
}
