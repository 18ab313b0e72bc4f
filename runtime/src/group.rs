//! Many coroutines at once: [`Group`] (spawn into it, join or kill them
//! all), [`Pool`] (a group with a concurrency limit: spawning parks while it
//! is full; [`Pool::map`], [`Pool::imap`] and [`Pool::imap_unordered`] run a
//! function over many items through it), and [`wait_any`] / [`wait_all`]
//! over join handles, as gevent's `Group`, `Pool`, `map`, `imap`, `wait` and
//! `joinall`.
//!
//! A group holds only its running members, and only weakly: a member is
//! linked to its coroutine's end (`Finish::link`) and leaves the group the
//! moment it finishes, so an accept loop that adds a member per connection
//! keeps a group as big as its live connections, and a member's return value
//! lives only as long as its `JoinHandle`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::sched::{HubId, Key, Slab};
use crate::spawn::{Finish, JoinError, JoinHandle};
use crate::sync::queue::Queue;
use crate::sync::{deadline, Semaphore, WaitError};

/// Parks until one of `handles` has finished; returns its index (the lowest,
/// if several have finished by the time the caller runs again). With a
/// timeout, gives up with `WaitError::TimedOut`.
///
/// # Panics
///
/// Panics if `handles` is empty: nothing could ever finish.
///
/// ```
/// use std::time::Duration;
/// greenhub::run(|| {
///     // Still asleep when main returns, and killed then.
///     let slow = greenhub::spawn(|| greenhub::sleep(Duration::from_secs(60)));
///     let fast = greenhub::spawn(|| greenhub::sleep(Duration::from_millis(5)));
///     assert_eq!(greenhub::wait_any(&[slow, fast], None), Ok(1));
/// });
/// ```
pub fn wait_any<T>(
    handles: &[JoinHandle<T>],
    timeout: Option<Duration>,
) -> Result<usize, WaitError> {
    assert!(!handles.is_empty(), "wait_any needs at least one handle");
    let deadline = deadline(timeout);
    loop {
        if let Some(index) = handles.iter().position(JoinHandle::is_finished) {
            return Ok(index);
        }
        let queues: Vec<&Queue> = handles.iter().map(JoinHandle::joiners).collect();
        WaitError::from_outcome(Queue::wait_any(&queues, deadline))?;
    }
}

/// Parks until every one of `handles` has finished (gevent's `joinall`),
/// at most `timeout` in all.
pub fn wait_all<T>(handles: &[JoinHandle<T>], timeout: Option<Duration>) -> Result<(), WaitError> {
    let deadline = deadline(timeout);
    for handle in handles {
        while !handle.is_finished() {
            WaitError::from_outcome(handle.joiners().wait(deadline))?;
        }
    }
    Ok(())
}

/// A set of coroutines to join or kill together. Cheap to clone: clones
/// are the same group (an accept loop spawns into the group that `main`
/// drains).
///
/// ```
/// greenhub::run(|| {
///     let group = greenhub::Group::new();
///     for n in 0..3 {
///         group.spawn(move || greenhub::sleep(std::time::Duration::from_millis(n)));
///     }
///     assert_eq!(group.len(), 3);
///     group.join_all(None).unwrap();
///     assert!(group.is_empty());
/// });
/// ```
#[derive(Clone, Default)]
pub struct Group {
    members: Rc<RefCell<Slab<Member>>>,
}

/// A running member: its identity, to kill it, and its join state, weakly.
struct Member {
    hub: HubId,
    key: Key,
    state: Weak<dyn Finish>,
}

impl Group {
    /// An empty group.
    pub fn new() -> Group {
        Group::default()
    }

    /// Spawns `f` as a member.
    ///
    /// # Panics
    ///
    /// As [`spawn`](crate::spawn()).
    pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let handle = crate::spawn(f);
        self.add(&handle);
        handle
    }

    /// Adds a coroutine spawned elsewhere; it leaves the group when it ends
    /// (at once, if it has ended already).
    pub fn add<T: 'static>(&self, handle: &JoinHandle<T>) {
        let (hub, key, state) = handle.erased();
        let member = self.members.borrow_mut().insert(Member {
            hub,
            key,
            state: Rc::downgrade(&state),
        });
        let members = Rc::downgrade(&self.members);
        state.link(Box::new(move || {
            if let Some(members) = members.upgrade() {
                let gone = members.borrow_mut().remove(member);
                drop(gone); // a weak reference: dropping it runs no user code
            }
        }));
    }

    /// Members still running.
    pub fn len(&self) -> usize {
        self.members.borrow().len()
    }

    /// Whether no member is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Parks until every member has finished, at most `timeout` in all.
    pub fn join_all(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        let deadline = deadline(timeout);
        loop {
            let next = self
                .members
                .borrow()
                .iter()
                .next()
                .and_then(|(_, member)| member.state.upgrade());
            let Some(state) = next else { return Ok(()) };
            while !state.is_finished() {
                WaitError::from_outcome(state.joiners().wait(deadline))?;
            }
        }
    }

    /// Kills every member, then waits until they have all unwound; members
    /// added meanwhile (a member's destructor may spawn one) are killed in
    /// turn, until the group is empty.
    pub fn kill_all(&self) -> Result<(), WaitError> {
        loop {
            let members: Vec<(HubId, Key, Rc<dyn Finish>)> = self
                .members
                .borrow()
                .iter()
                .filter_map(|(_, m)| Some((m.hub, m.key, m.state.upgrade()?)))
                .collect();
            if members.is_empty() {
                return Ok(());
            }
            crate::context::with(|hub| {
                for (of, key, _) in &members {
                    if *of == hub.id {
                        hub.sched.kill(*key);
                    }
                }
            });
            for (_, _, state) in members {
                while !state.is_finished() {
                    WaitError::from_outcome(state.joiners().wait(None))?;
                }
            }
        }
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("running", &self.len())
            .finish()
    }
}

/// A [`Group`] with a limit: at most `size` members run at once, and
/// `spawn` parks while the pool is full (gevent's `Pool`).
///
/// ```
/// greenhub::run(|| {
///     let pool = greenhub::Pool::new(2);
///     for _ in 0..5 {
///         pool.spawn(|| greenhub::sleep(std::time::Duration::from_millis(2))).unwrap();
///         assert!(pool.len() <= 2);
///     }
///     pool.join_all(None).unwrap();
/// });
/// ```
pub struct Pool {
    group: Group,
    slots: Semaphore,
    size: usize,
}

impl Pool {
    /// A pool running at most `size` coroutines at once.
    ///
    /// # Panics
    ///
    /// Panics if `size` is 0.
    pub fn new(size: usize) -> Pool {
        assert!(size > 0, "a pool needs room for at least one coroutine");
        Pool {
            group: Group::new(),
            slots: Semaphore::new(size),
            size,
        }
    }

    /// Spawns `f` once a slot is free, parking until then. The slot is held
    /// until the coroutine ends (or is killed, or never starts).
    pub fn spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, WaitError>
    where
        F: FnOnce() -> T + 'static,
        T: 'static,
    {
        let slot = self.slots.acquire()?;
        Ok(self.group.spawn(move || {
            let _slot = slot;
            f()
        }))
    }

    /// Runs `f` on every item, at most [`size`](Self::size) at once, and
    /// returns the results in the order of the items (gevent's `map`). A
    /// panic in one call is that item's `Err(JoinError::Panicked)`; the
    /// others go on.
    ///
    /// ```
    /// greenhub::run(|| {
    ///     let pool = greenhub::Pool::new(3);
    ///     let squares = pool.map(1..=5, |n: u64| {
    ///         greenhub::sleep(std::time::Duration::from_millis(6 - n)); // finish out of order
    ///         n * n
    ///     });
    ///     let squares: Vec<u64> = squares.into_iter().map(Result::unwrap).collect();
    ///     assert_eq!(squares, [1, 4, 9, 16, 25]);
    /// });
    /// ```
    pub fn map<I, F, T>(&self, items: I, f: F) -> Vec<Result<T, JoinError>>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> T + 'static,
        T: 'static,
    {
        self.imap(items, f).collect()
    }

    /// Like [`map`](Self::map), lazily (gevent's `imap`): results come in
    /// the order of the items as the iterator is advanced, and at most
    /// `size` items are being worked on or waiting to be taken at any
    /// time, so a long input never piles up.
    pub fn imap<I, F, T>(&self, items: I, f: F) -> Imap<'_, I::IntoIter, F, T>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> T + 'static,
        T: 'static,
    {
        Imap {
            window: Window::new(self, items.into_iter(), f),
            running: VecDeque::new(),
        }
    }

    /// Like [`imap`](Self::imap), but each result comes as soon as it is
    /// ready, whatever its item's position (gevent's `imap_unordered`).
    pub fn imap_unordered<I, F, T>(&self, items: I, f: F) -> ImapUnordered<'_, I::IntoIter, F, T>
    where
        I: IntoIterator,
        I::Item: 'static,
        F: Fn(I::Item) -> T + 'static,
        T: 'static,
    {
        ImapUnordered {
            window: Window::new(self, items.into_iter(), f),
            running: Vec::new(),
        }
    }

    /// The limit.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Slots free now.
    pub fn free_count(&self) -> usize {
        self.slots.available()
    }

    /// Members still running.
    pub fn len(&self) -> usize {
        self.group.len()
    }

    /// Whether no member is running.
    pub fn is_empty(&self) -> bool {
        self.group.is_empty()
    }

    /// Parks until every member has finished, at most `timeout` in all.
    pub fn join_all(&self, timeout: Option<Duration>) -> Result<(), WaitError> {
        self.group.join_all(timeout)
    }

    /// Kills every member and waits until they have unwound.
    pub fn kill_all(&self) -> Result<(), WaitError> {
        self.group.kill_all()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.size)
            .field("running", &self.len())
            .finish()
    }
}

/// The input side of `imap`: the items not started yet, the function, and
/// the pool that bounds how many run.
struct Window<'p, I, F> {
    pool: &'p Pool,
    items: I,
    f: Rc<F>,
}

impl<'p, I, F, T> Window<'p, I, F>
where
    I: Iterator,
    I::Item: 'static,
    F: Fn(I::Item) -> T + 'static,
    T: 'static,
{
    fn new(pool: &'p Pool, items: I, f: F) -> Self {
        Window {
            pool,
            items,
            f: Rc::new(f),
        }
    }

    /// Starts the next item, parking for a slot of the pool; `None` when
    /// the items are used up.
    fn start(&mut self) -> Option<Started<T>> {
        let item = self.items.next()?;
        let f = self.f.clone();
        Some(match self.pool.spawn(move || f(item)) {
            Ok(handle) => Started::Running(handle),
            Err(err) => Started::Failed(match err {
                WaitError::TimedOut => JoinError::TimedOut,
                WaitError::Deadlock(message) => JoinError::Deadlock(message),
                WaitError::CannotWait => JoinError::Killed,
            }),
        })
    }
}

/// An item of an `imap`: running, or refused a slot (a `timeout` elapsed
/// while the pool was full, say).
enum Started<T> {
    Running(JoinHandle<T>),
    Failed(JoinError),
}

impl<T> Started<T> {
    fn join(self) -> Result<T, JoinError> {
        match self {
            Started::Running(handle) => handle.join(),
            Started::Failed(err) => Err(err),
        }
    }
}

/// The iterator of [`Pool::imap`]: results in the order of the items.
pub struct Imap<'p, I, F, T> {
    window: Window<'p, I, F>,
    /// Started items, oldest first; at most the pool's size.
    running: VecDeque<Started<T>>,
}

impl<I, F, T> Iterator for Imap<'_, I, F, T>
where
    I: Iterator,
    I::Item: 'static,
    F: Fn(I::Item) -> T + 'static,
    T: 'static,
{
    type Item = Result<T, JoinError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.running.len() < self.window.pool.size() {
            match self.window.start() {
                Some(started) => self.running.push_back(started),
                None => break,
            }
        }
        Some(self.running.pop_front()?.join())
    }
}

impl<I, F, T> fmt::Debug for Imap<'_, I, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}

/// The iterator of [`Pool::imap_unordered`]: results as they finish.
pub struct ImapUnordered<'p, I, F, T> {
    window: Window<'p, I, F>,
    running: Vec<JoinHandle<T>>,
}

impl<I, F, T> Iterator for ImapUnordered<'_, I, F, T>
where
    I: Iterator,
    I::Item: 'static,
    F: Fn(I::Item) -> T + 'static,
    T: 'static,
{
    type Item = Result<T, JoinError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.running.len() < self.window.pool.size() {
            match self.window.start() {
                Some(Started::Running(handle)) => self.running.push(handle),
                Some(Started::Failed(err)) => return Some(Err(err)),
                None => break,
            }
        }
        if self.running.is_empty() {
            return None;
        }
        let done = match wait_any(&self.running, None) {
            Ok(index) => index,
            Err(err) => {
                return Some(Err(match err {
                    WaitError::TimedOut => JoinError::TimedOut,
                    WaitError::Deadlock(message) => JoinError::Deadlock(message),
                    WaitError::CannotWait => JoinError::Killed,
                }))
            }
        };
        Some(self.running.swap_remove(done).join())
    }
}

impl<I, F, T> fmt::Debug for ImapUnordered<'_, I, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImapUnordered")
            .field("running", &self.running.len())
            .finish_non_exhaustive()
    }
}
