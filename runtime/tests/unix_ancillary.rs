//! A Unix stream read stops after a message that carried file descriptors
//! (`SCM_RIGHTS`), even with bytes behind it: such a short read has not
//! drained the socket, and the bytes after it must be read, not slept
//! through.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::time::Duration;

use greenhub::net::UnixStream;

/// Sends `bytes` on `fd` with one file descriptor (`passed`) attached.
fn send_with_fd(fd: i32, bytes: &[u8], passed: i32) {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    #[repr(C)]
    struct Control {
        _align: [libc::cmsghdr; 0],
        bytes: [u8; 64],
    }
    let mut control = Control {
        _align: [],
        bytes: [0; 64],
    };
    // SAFETY: CMSG_SPACE is a pure size computation; an all-zero msghdr is
    // a valid empty one, and every pointer set below points at a live
    // local; CMSG_FIRSTHDR of a control buffer of CMSG_SPACE(4) bytes is
    // inside it, and CMSG_DATA has room for one int.
    unsafe {
        let space = libc::CMSG_SPACE(4) as usize;
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.bytes.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(4) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), passed);
        let n = libc::sendmsg(fd, &msg, 0);
        assert_eq!(
            n,
            bytes.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn bytes_behind_a_message_that_carried_a_descriptor_are_read() {
    let got = greenhub::run(|| {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        send_with_fd(a.as_raw_fd(), b"abcd", a.as_raw_fd());
        (&a).write_all_plain(b"efgh");
        // The hub polls: the edges for all of it are used up.
        greenhub::sleep(Duration::from_millis(20));
        let mut got = Vec::new();
        while got.len() < 8 {
            let mut eight = [0; 8];
            match b.read(&mut eight) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&eight[..n]),
                Err(err) => return Err(err.kind()),
            }
        }
        drop(a);
        Ok(got)
    });
    assert_eq!(got, Ok(b"abcdefgh".to_vec()));
}

trait WritePlain {
    fn write_all_plain(self, bytes: &[u8]);
}

impl WritePlain for &UnixStream {
    fn write_all_plain(mut self, bytes: &[u8]) {
        std::io::Write::write_all(&mut self, bytes).unwrap();
    }
}
