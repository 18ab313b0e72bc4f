//! Child processes whose pipes and exit are waited for by parking:
//! [`Command`], [`Child`], gevent.subprocess's role.
//!
//! `Command` wraps `std::process::Command`. Spawning forks and execs on the
//! calling thread (std's `spawn`: short, and not worth a helper thread);
//! then each piped stdin, stdout and stderr is wrapped in [`io::Async`](crate::io::Async)
//! (`io.rs`), so reading a child's output parks the coroutine while the hub
//! runs the others. The child's exit is a readiness event too: on Linux 5.3
//! and later a pidfd (`pidfd_open`) turns readable when the child exits, and
//! `wait` parks on it like on a socket. Where the kernel has no pidfds, a
//! helper thread (`unblock`) blocks in `waitid(WNOWAIT)` instead, and std
//! reaps the child either way.

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};

use crate::io::Async;

/// The child's stdin: write to it; dropping it closes the pipe (EOF).
pub type ChildStdin = Async<std::process::ChildStdin>;
/// The child's stdout: read from it.
pub type ChildStdout = Async<std::process::ChildStdout>;
/// The child's stderr: read from it.
pub type ChildStderr = Async<std::process::ChildStderr>;

/// A process to start, like `std::process::Command`; its pipes and its exit
/// are waited for by parking.
///
/// ```
/// use greenhub::process::Command;
/// greenhub::run(|| {
///     let output = Command::new("echo").arg("hello").output().unwrap();
///     assert!(output.status.success());
///     assert_eq!(output.stdout, b"hello\n");
/// });
/// ```
pub struct Command {
    inner: std::process::Command,
    /// Which of stdin, stdout and stderr the caller configured, so `output`
    /// captures only the ones left at their default, as std's does.
    configured: [bool; 3],
}

impl Command {
    /// A command for `program`, with std's defaults: inherit the
    /// environment, the working directory and the three standard streams.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            inner: std::process::Command::new(program),
            configured: [false; 3],
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env(key, value);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Starts the child with an empty environment.
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// Configures the child's stdin (`Stdio::piped()` to write to it).
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.configured[0] = true;
        self.inner.stdin(cfg);
        self
    }

    /// Configures the child's stdout (`Stdio::piped()` to read it).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.configured[1] = true;
        self.inner.stdout(cfg);
        self
    }

    /// Configures the child's stderr (`Stdio::piped()` to read it).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.configured[2] = true;
        self.inner.stderr(cfg);
        self
    }

    /// The std command, for options this type does not repeat (`uid`,
    /// `process_group`, `pre_exec`, ...). Stdio set here is not seen by
    /// [`output`](Self::output)'s defaults.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }

    /// Starts the child; its piped streams become cooperative. Fails
    /// outside `greenhub::run` (the pipes need a hub) or when the program
    /// cannot be started.
    pub fn spawn(&mut self) -> io::Result<Child> {
        if !crate::context::installed() {
            return Err(io::Error::other(
                "greenhub::process works only inside greenhub::run (this thread runs no hub)",
            ));
        }
        Child::from_std(self.inner.spawn()?)
    }

    /// Runs the child to its end and collects its stdout and stderr (both
    /// captured unless configured otherwise; stdin is null unless
    /// configured), reading both at once so neither pipe fills and stalls
    /// the child.
    pub fn output(&mut self) -> io::Result<Output> {
        if !self.configured[0] {
            self.inner.stdin(Stdio::null());
        }
        if !self.configured[1] {
            self.inner.stdout(Stdio::piped());
        }
        if !self.configured[2] {
            self.inner.stderr(Stdio::piped());
        }
        self.spawn()?.wait_with_output()
    }

    /// Runs the child to its end and returns its exit status.
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait()
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// A running (or exited, not yet waited for) child process.
///
/// As with std's `Child`, dropping it neither kills nor waits for the
/// process; call [`wait`](Self::wait) to reap it.
pub struct Child {
    /// The child's stdin, if piped.
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if piped.
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if piped.
    pub stderr: Option<ChildStderr>,
    child: std::process::Child,
    /// Readable once the child has exited; `None` where the kernel has no
    /// pidfds, and `wait` asks a helper thread instead.
    exit: Option<Async<OwnedFd>>,
}

impl Child {
    fn from_std(mut child: std::process::Child) -> io::Result<Child> {
        let stdin = child.stdin.take().map(Async::new).transpose()?;
        let stdout = child.stdout.take().map(Async::new).transpose()?;
        let stderr = child.stderr.take().map(Async::new).transpose()?;
        let exit = crate::sys::os::pidfd_open(child.id())
            .ok()
            .map(Async::new)
            .transpose()?;
        Ok(Child {
            stdin,
            stdout,
            stderr,
            child,
            exit,
        })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL to the child (std's `kill`); returns at once. Call
    /// [`wait`](Self::wait) to reap it.
    pub fn kill(&mut self) -> io::Result<()> {
        self.child.kill()
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Closes the child's stdin (as std does, so a child reading it sees
    /// EOF), then parks until the child exits and returns its status. Other
    /// coroutines run meanwhile; honours enclosing `timeout`s and kills.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            match &self.exit {
                Some(pidfd) => pidfd.readable()?,
                None => {
                    let pid = self.child.id();
                    crate::unblock(move || crate::sys::os::wait_exited(pid))??;
                }
            }
        }
    }

    /// Waits for the child while reading its stdout and stderr to their
    /// ends (at once, so neither pipe fills), and returns all three.
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let stderr = self.stderr.take().map(|mut stderr| {
            crate::spawn(move || {
                let mut bytes = Vec::new();
                stderr.read_to_end(&mut bytes).map(|_| bytes)
            })
        });
        let mut stdout = Vec::new();
        if let Some(out) = self.stdout.as_mut() {
            out.read_to_end(&mut stdout)?;
        }
        let stderr = match stderr {
            Some(reader) => reader
                .join()
                .map_err(|err| io::Error::other(format!("reading stderr: {err}")))??,
            None => Vec::new(),
        };
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("id", &self.id())
            .field("pidfd", &self.exit.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_pidfd_wait_asks_a_helper_thread() {
        crate::run(|| {
            let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
            child.exit = None; // as on a kernel without pidfd_open
            let status = child.wait().unwrap();
            assert_eq!(status.code(), Some(3));
        });
    }
}
