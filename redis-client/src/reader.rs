//! The read side of a connection: bytes from the socket to whole RESP frames.
//!
//! `connection.rs` asks for the next frame; [`Reader`] hands the decoder
//! (`resp/decode.rs`) whatever is buffered and reads more only when it says
//! "incomplete". The decoder keeps a partial reply between reads, so each
//! byte is parsed once and the buffer only ever holds the start of one
//! unfinished line: its size follows the reads, not the replies.
//!
//! Reads obey one rule, because readiness is edge-triggered: a read tries
//! the socket first, and parks only on `WouldBlock`. Two exceptions wait
//! for readability first, each only with nothing buffered or held: the
//! first read right after a write (its reply cannot be in the kernel yet,
//! and parking at once saves a read that would only say `WouldBlock`), and,
//! while a blocking command waits, every read (so that the buffer can be
//! freed for the wait). Both are safe because that wait consults the hub's
//! cached readiness and returns at once for bytes already in the kernel (a
//! TLS stream first checks its decrypted plaintext; a `std` socket does not
//! wait). Every other read (the second reply of a pipeline, a pub/sub
//! message that came while the subscriber was busy) tries first. See
//! `docs/readiness-and-edge-triggering.md`.

use std::io;

use crate::error::{Error, Result};
use crate::resp::{Decoded, Decoder, Limits, Value};
use crate::stream::Stream;

/// The read buffer's first size: most replies are a few bytes (BRPOP's nil
/// is 5), and 10,000 parked connections with 16 KiB each would be 160 MiB.
/// A read that fills the buffer doubles it, since more is likely waiting.
const INITIAL_BUFFER: usize = 256;
/// The read buffer's largest size: 64 KiB per read system call covers a
/// large reply in few calls, and the buffer must also hold the start of one
/// unfinished line, which the decoder bounds at 64 KiB (`MAX_LINE`).
const MAX_BUFFER: usize = 128 * 1024;

/// Received bytes and the reply being parsed from them.
#[derive(Debug)]
pub(crate) struct Reader {
    /// `buf[start..end]` is not consumed by the decoder yet (at most the
    /// start of an unfinished line). Between `INITIAL_BUFFER` and
    /// `MAX_BUFFER` long, trimmed back by [`Reader::trim`]; empty only while
    /// a blocking command's read waits for its first byte.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The reply being parsed, kept between reads.
    decoder: Decoder,
    /// Set by [`Reader::wrote`], cleared by the next read: only then may a
    /// read park before trying.
    park_first: bool,
    /// Set by [`Reader::wrote_blocking`], cleared by the next request: the
    /// buffer is freed while a read waits with nothing buffered.
    lend: bool,
    /// Whether any byte was ever read: a plaintext connection whose server
    /// hangs up, or answers in TLS records, before its first byte is most
    /// likely talking to a TLS port, and the error says so.
    received: bool,
}

impl Reader {
    pub(crate) fn new(limits: Limits) -> Reader {
        Reader {
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            decoder: Decoder::new(limits),
            park_first: false,
            lend: false,
            received: false,
        }
    }

    pub(crate) fn set_limits(&mut self, limits: Limits) {
        self.decoder.set_limits(limits);
    }

    /// Called after each successful write of a request.
    pub(crate) fn wrote(&mut self) {
        self.park_first = true;
        self.lend = false;
    }

    /// Called after a request whose reply may take long (a blocking
    /// command): until the next request, every read that starts with
    /// nothing buffered waits for readiness first, with the buffer given
    /// back for the wait and taken anew after.
    pub(crate) fn wrote_blocking(&mut self) {
        self.lend = true;
    }

    /// Gives the buffer its first size back if a parked wait lent it out.
    fn ensure_buffer(&mut self) {
        if self.buf.is_empty() {
            self.buf = vec![0; INITIAL_BUFFER];
        }
    }

    /// Whether no byte of a frame is buffered or held: the stream is at a
    /// frame boundary.
    pub(crate) fn is_idle(&self) -> bool {
        self.start == self.end && self.decoder.is_idle()
    }

    /// The next whole frame, reading as needed.
    ///
    /// A coroutine parks in here (in `fill`) for every reply, so this frame
    /// stays small: the value is taken from the buffer in a function of its
    /// own, and only its result is held here.
    pub(crate) fn next_frame(&mut self, stream: &mut Stream) -> Result<Value> {
        loop {
            // Nothing buffered: no reply can complete without new bytes.
            if self.start < self.end {
                if let Some(value) = self.take_buffered()? {
                    return Ok(value);
                }
            }
            self.fill(stream)?;
        }
    }

    /// A whole frame from what is buffered, if there is one; else the
    /// decoder keeps what it could use and the caller reads more.
    #[inline(never)]
    fn take_buffered(&mut self) -> Result<Option<Value>> {
        let input = &self.buf[self.start..self.end];
        let (value, used) = match self.decoder.quick(input) {
            Some(found) => found,
            None => match self.decoder.decode(input) {
                Ok(Decoded::Complete { value, used }) => (value, used),
                Ok(Decoded::Incomplete { used, .. }) => {
                    self.start += used;
                    return Ok(None);
                }
                Err(err) => return Err(Error::Protocol(err.0)),
            },
        };
        self.start += used;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        Ok(Some(value))
    }

    /// The next whole frame if the bytes for it have arrived, without
    /// waiting: for a socket in non-blocking mode (the cache's invalidation
    /// listener), `Ok(None)` when a read says `WouldBlock`.
    pub(crate) fn poll_frame(&mut self, stream: &mut Stream) -> Result<Option<Value>> {
        loop {
            match self.decoder.decode(&self.buf[self.start..self.end]) {
                Ok(Decoded::Complete { value, used }) => {
                    self.start += used;
                    if self.start == self.end {
                        (self.start, self.end) = (0, 0);
                    }
                    return Ok(Some(value));
                }
                Ok(Decoded::Incomplete { used, .. }) => self.start += used,
                Err(err) => return Err(Error::Protocol(err.0)),
            }
            self.ensure_buffer();
            self.make_room();
            match stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(closed()),
                Ok(n) => self.grew(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(Error::Io(err)),
            }
        }
    }

    /// Reads once into the buffer's free space, making some first.
    #[inline(never)]
    fn fill(&mut self, stream: &mut Stream) -> Result<()> {
        self.ensure_buffer();
        self.make_room();
        let park_first = std::mem::take(&mut self.park_first);
        if (park_first || self.lend) && self.end == 0 && self.decoder.is_idle() {
            if self.lend {
                self.buf = Vec::new();
            }
            let waited = stream.wait_readable();
            self.ensure_buffer();
            waited?;
        }
        let first = !self.received && !stream.is_tls();
        let n = match stream.read(&mut self.buf[self.end..]) {
            Err(err) if first && err.kind() == io::ErrorKind::ConnectionReset => {
                return Err(maybe_tls_port(err.kind()))
            }
            other => other?,
        };
        if n == 0 {
            return Err(match first {
                true => maybe_tls_port(io::ErrorKind::UnexpectedEof),
                false => closed(),
            });
        }
        // 0x15 0x03 starts a TLS alert record, 0x16 0x03 a handshake one:
        // no RESP reply starts with either byte.
        if first && matches!(self.buf[self.end..self.end + n], [0x15 | 0x16, 0x03, ..]) {
            return Err(maybe_tls_port(io::ErrorKind::InvalidData));
        }
        self.received = true;
        self.grew(n);
        Ok(())
    }

    /// Notes `n` bytes read at `end`.
    fn grew(&mut self, n: usize) {
        self.end += n;
        if self.end == self.buf.len() && self.buf.len() < MAX_BUFFER {
            // The read filled the space it had: more is likely waiting.
            self.buf.resize(self.buf.len() * 2, 0);
        }
    }

    /// Makes free space at the end of the buffer.
    fn make_room(&mut self) {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.buf.len() {
            // What is left is the start of one unfinished line: move it to
            // the front, and grow if it fills the buffer alone.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() && self.buf.len() < MAX_BUFFER {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
    }

    /// Gives back the memory a large reply made the buffer take, if nothing
    /// is buffered (the pool calls it when the connection goes idle).
    pub(crate) fn trim(&mut self) {
        if self.buf.len() > INITIAL_BUFFER && self.start == self.end {
            self.buf = vec![0; INITIAL_BUFFER];
            (self.start, self.end) = (0, 0);
        }
    }
}

/// A plaintext connection refused before its first reply, or answered in
/// TLS: the likely cause is a TLS port.
fn maybe_tls_port(kind: io::ErrorKind) -> Error {
    Error::Io(io::Error::new(
        kind,
        "the server hung up or answered in TLS before its first reply: \
         if this port speaks TLS, connect with a rediss:// URL",
    ))
}

fn closed() -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the server closed the connection",
    ))
}
