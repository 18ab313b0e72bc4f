//! Helpers shared by the runtime's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// The one timing tolerance: how late a timer may fire, or how long the
/// hub's thread may go without the CPU, on a busy machine before a test calls
/// it wrong. Tests assert order and completion, and use this only as a loose
/// upper bound. With every core busy and the suite running (what
/// `scripts/stress-tests.sh` does), a 5 ms sleep was seen to end 0.3 s late;
/// a second leaves room for worse.
pub const SLACK: Duration = Duration::from_secs(1);

/// Sets a flag when dropped: proves a coroutine's stack was unwound.
pub struct DropFlag(pub Rc<RefCell<Vec<&'static str>>>, pub &'static str);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.borrow_mut().push(self.1);
    }
}

/// A shared log that coroutines append to.
pub fn journal() -> Rc<RefCell<Vec<&'static str>>> {
    Rc::new(RefCell::new(Vec::new()))
}
