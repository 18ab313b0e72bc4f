//! Outside `greenhub::run`, sockets give a clear error instead of panicking,
//! and the blocking helpers behave like their std counterparts.

use std::io::ErrorKind;

use greenhub::net::{TcpListener, TcpStream, UnixStream};

#[test]
fn sockets_outside_a_hub_return_an_error_that_says_why() {
    let err = TcpListener::bind("127.0.0.1:0").unwrap_err();
    assert!(
        err.to_string().contains("only inside greenhub::run"),
        "{err}"
    );
    let err = UnixStream::pair().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = TcpStream::connect(std_listener.local_addr().unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("only inside greenhub::run"),
        "{err}"
    );
}

#[test]
fn spawn_outside_a_hub_is_an_error_from_the_builder() {
    let err = greenhub::Builder::new().spawn(|| ()).unwrap_err();
    assert!(err.to_string().contains("inside greenhub::run"), "{err}");
    assert!(greenhub::current().is_none());
    assert_eq!(greenhub::stats(), greenhub::Stats::default());
}

#[test]
fn unblock_outside_a_hub_runs_on_the_calling_thread() {
    let caller = std::thread::current().id();
    assert!(greenhub::unblock(move || std::thread::current().id() == caller).unwrap());
}

#[test]
fn an_impossible_stack_size_is_an_error_naming_vm_max_map_count() {
    greenhub::run(|| {
        let err = greenhub::Builder::new()
            .stack_size(1 << 50)
            .spawn(|| ())
            .unwrap_err();
        assert!(err.to_string().contains("vm.max_map_count"), "{err}");
        // The hub goes on.
        assert_eq!(greenhub::spawn(|| 1).join(), Ok(1));
    });
}
