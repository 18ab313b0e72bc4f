//! [`Channel`]: a FIFO of values between coroutines, bounded or not
//! (gevent's `Queue`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use super::queue::Queue;
use super::{deadline, WaitError};

/// A queue of values: `send` parks while a bounded channel is full, `recv`
/// parks while it is empty. `close` wakes everyone: senders get their value
/// back with [`ChannelError::Closed`], receivers first drain what is left.
/// Cheap to clone (clones are the same channel). Both sides are FIFO.
///
/// ```
/// use greenhub::sync::Channel;
/// greenhub::run(|| {
///     let jobs = Channel::bounded(2);
///     let producer = { let jobs = jobs.clone(); greenhub::spawn(move || {
///         for n in 0..5 { jobs.send(n).unwrap(); }   // parks while 2 are queued
///         jobs.close();
///     }) };
///     let received: Vec<i32> = jobs.iter().collect();
///     assert_eq!(received, [0, 1, 2, 3, 4]);
///     producer.join().unwrap();
/// });
/// ```
pub struct Channel<T> {
    inner: Rc<Inner<T>>,
}

struct Inner<T> {
    items: RefCell<VecDeque<T>>,
    /// `None` for an unbounded channel.
    capacity: Option<usize>,
    closed: Cell<bool>,
    receivers: Queue,
    senders: Queue,
}

/// Why a send or receive did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelError {
    /// The channel was closed (and, for a receive, is drained).
    Closed,
    /// `try_send` on a full channel.
    Full,
    /// `try_recv` on an empty channel.
    Empty,
    /// The wait failed: timed out, deadlock, or not allowed to park.
    Wait(WaitError),
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::Closed => f.write_str("greenhub channel: closed"),
            ChannelError::Full => f.write_str("greenhub channel: full"),
            ChannelError::Empty => f.write_str("greenhub channel: empty"),
            ChannelError::Wait(_) => f.write_str("greenhub channel: the wait failed"),
        }
    }
}

impl std::error::Error for ChannelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChannelError::Wait(err) => Some(err),
            _ => None,
        }
    }
}

/// A send that did not happen, with the value it was given.
#[derive(Debug, PartialEq, Eq)]
pub struct SendError<T> {
    /// The value, returned to the sender.
    pub value: T,
    /// Why it was not sent.
    pub reason: ChannelError,
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "send failed: {}", self.reason)
    }
}

impl<T: fmt::Debug> std::error::Error for SendError<T> {}

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Channel {
            inner: self.inner.clone(),
        }
    }
}

impl<T> Channel<T> {
    /// A channel that holds at most `capacity` values.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is 0.
    pub fn bounded(capacity: usize) -> Channel<T> {
        assert!(
            capacity > 0,
            "a bounded channel needs a capacity of at least 1"
        );
        Channel::with_capacity(Some(capacity))
    }

    /// A channel whose `send` never parks.
    pub fn unbounded() -> Channel<T> {
        Channel::with_capacity(None)
    }

    fn with_capacity(capacity: Option<usize>) -> Channel<T> {
        Channel {
            inner: Rc::new(Inner {
                items: RefCell::new(VecDeque::new()),
                capacity,
                closed: Cell::new(false),
                receivers: Queue::new("channel recv"),
                senders: Queue::new("channel send"),
            }),
        }
    }

    /// Queues `value`, parking while the channel is full.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.send_timeout_opt(value, None)
    }

    /// Queues `value`, parking at most `timeout` while the channel is full.
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendError<T>> {
        self.send_timeout_opt(value, Some(timeout))
    }

    /// Queues `value` if there is room now.
    pub fn try_send(&self, value: T) -> Result<(), SendError<T>> {
        let inner = &self.inner;
        if inner.closed.get() {
            return Err(SendError {
                value,
                reason: ChannelError::Closed,
            });
        }
        let room = match inner.capacity {
            None => true,
            Some(cap) => {
                inner.items.borrow().len() + inner.senders.outstanding() < cap
                    && inner.senders.is_empty()
            }
        };
        if !room {
            return Err(SendError {
                value,
                reason: ChannelError::Full,
            });
        }
        self.push(value);
        Ok(())
    }

    /// Takes the oldest value, parking while the channel is empty.
    pub fn recv(&self) -> Result<T, ChannelError> {
        self.recv_timeout_opt(None)
    }

    /// Takes the oldest value, parking at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, ChannelError> {
        self.recv_timeout_opt(Some(timeout))
    }

    /// Takes the oldest value if one is there and nobody waits for it.
    pub fn try_recv(&self) -> Result<T, ChannelError> {
        let inner = &self.inner;
        let unclaimed = inner
            .items
            .borrow()
            .len()
            .saturating_sub(inner.receivers.outstanding());
        if unclaimed > 0 && inner.receivers.is_empty() {
            return Ok(self.pop());
        }
        if inner.closed.get() && inner.items.borrow().is_empty() {
            return Err(ChannelError::Closed);
        }
        Err(ChannelError::Empty)
    }

    /// Closes the channel: sends fail from now on, receives drain what is
    /// queued and then fail; every parked sender and receiver wakes.
    pub fn close(&self) {
        self.inner.closed.set(true);
        self.inner.receivers.notify_all();
        self.inner.senders.notify_all();
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Values queued now.
    pub fn len(&self) -> usize {
        self.inner.items.borrow().len()
    }

    /// Whether no value is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Receives until the channel is closed and drained (or a wait fails).
    pub fn iter(&self) -> Iter<T> {
        Iter {
            channel: self.clone(),
        }
    }

    /// Whether a receive would complete now (a value, or `Closed`) without
    /// parking; `woken`: this caller was handed a value by a send (it
    /// parked on `recv_queue` and that queue woke it), so other waiters'
    /// claims do not stand in its way. For `select`.
    pub(crate) fn recv_ready(&self, woken: bool) -> bool {
        let inner = &self.inner;
        let items = inner.items.borrow().len();
        if inner.closed.get() && items == 0 {
            return true;
        }
        if woken {
            return items > 0;
        }
        items.saturating_sub(inner.receivers.outstanding()) > 0 && inner.receivers.is_empty()
    }

    /// Whether a send would complete now (queued, or `Closed`) without
    /// parking; `woken` as for [`recv_ready`](Self::recv_ready).
    pub(crate) fn send_ready(&self, woken: bool) -> bool {
        let inner = &self.inner;
        let Some(cap) = inner.capacity else {
            return true;
        };
        if inner.closed.get() {
            return true;
        }
        let items = inner.items.borrow().len();
        if woken {
            return items < cap;
        }
        items + inner.senders.outstanding() < cap && inner.senders.is_empty()
    }

    /// The queue receivers park on.
    pub(crate) fn recv_queue(&self) -> &Queue {
        &self.inner.receivers
    }

    /// The queue senders park on.
    pub(crate) fn send_queue(&self) -> &Queue {
        &self.inner.senders
    }

    /// The channel's identity, to check that a `select` arm is completed on
    /// the channel it was made for.
    pub(crate) fn id(&self) -> *const () {
        Rc::as_ptr(&self.inner).cast()
    }

    /// The receive a `select` chose: takes a value even if others wait
    /// (`recv_ready` said this caller may); parks only if the caller
    /// parked in between and lost the value.
    pub(crate) fn recv_selected(&self) -> Result<T, ChannelError> {
        if !self.inner.items.borrow().is_empty() {
            return Ok(self.pop());
        }
        if self.inner.closed.get() {
            return Err(ChannelError::Closed);
        }
        self.recv()
    }

    /// The send a `select` chose, like [`recv_selected`](Self::recv_selected).
    pub(crate) fn send_selected(&self, value: T) -> Result<(), SendError<T>> {
        if self.inner.closed.get() {
            return Err(SendError {
                value,
                reason: ChannelError::Closed,
            });
        }
        let room = self
            .inner
            .capacity
            .is_none_or(|cap| self.inner.items.borrow().len() < cap);
        if room {
            self.push(value);
            return Ok(());
        }
        self.send(value)
    }

    fn push(&self, value: T) {
        self.inner.items.borrow_mut().push_back(value);
        self.inner.receivers.notify_one();
    }

    fn pop(&self) -> T {
        let value = self
            .inner
            .items
            .borrow_mut()
            .pop_front()
            .expect("checked: not empty");
        self.inner.senders.notify_one();
        value
    }

    fn send_timeout_opt(&self, value: T, timeout: Option<Duration>) -> Result<(), SendError<T>> {
        let value = match self.try_send(value) {
            Err(SendError {
                value,
                reason: ChannelError::Full,
            }) => value,
            done => return done,
        };
        let deadline = deadline(timeout);
        loop {
            if let Err(err) = WaitError::from_outcome(self.inner.senders.wait(deadline)) {
                return Err(SendError {
                    value,
                    reason: ChannelError::Wait(err),
                });
            }
            if self.inner.closed.get() {
                return Err(SendError {
                    value,
                    reason: ChannelError::Closed,
                });
            }
            // Woken by a receive: a slot was kept for us.
            let cap = self
                .inner
                .capacity
                .expect("only a bounded channel parks a sender");
            if self.inner.items.borrow().len() < cap {
                self.push(value);
                return Ok(());
            }
        }
    }

    fn recv_timeout_opt(&self, timeout: Option<Duration>) -> Result<T, ChannelError> {
        match self.try_recv() {
            Err(ChannelError::Empty) => {}
            done => return done,
        }
        let deadline = deadline(timeout);
        loop {
            WaitError::from_outcome(self.inner.receivers.wait(deadline))
                .map_err(ChannelError::Wait)?;
            // Woken by a send (an item was kept for us) or by close.
            if !self.inner.items.borrow().is_empty() {
                return Ok(self.pop());
            }
            if self.inner.closed.get() {
                return Err(ChannelError::Closed);
            }
        }
    }
}

impl<T> fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("len", &self.len())
            .field("capacity", &self.inner.capacity)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The iterator of [`Channel::iter`].
#[derive(Debug)]
pub struct Iter<T> {
    channel: Channel<T>,
}

impl<T> Iterator for Iter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.channel.recv().ok()
    }
}
