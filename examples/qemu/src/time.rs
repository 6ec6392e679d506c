//! The embassy-time driver: the board's 64-bit tick counter and one-shot
//! alarm, with embassy's timer queue (integrated in the executor's tasks).

use core::cell::RefCell;
use core::task::Waker;

use critical_section::{CriticalSection, Mutex};
use embassy_time_queue_utils::Queue;

use crate::board;

struct Driver {
    queue: Mutex<RefCell<Queue>>,
}

embassy_time_driver::time_driver_impl!(static DRIVER: Driver = Driver {
    queue: Mutex::new(RefCell::new(Queue::new())),
});

impl Driver {
    /// Wakes what is due and arms the alarm for the next deadline.
    fn rearm(&self, cs: CriticalSection<'_>) {
        let mut q = self.queue.borrow_ref_mut(cs);
        let mut next = q.next_expiration(board::now());
        // `set_alarm` refuses a moment that has already passed.
        while !board::set_alarm(cs, next) {
            next = q.next_expiration(board::now());
        }
    }
}

impl embassy_time_driver::Driver for Driver {
    fn now(&self) -> u64 {
        board::now()
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        critical_section::with(|cs| {
            let changed = self.queue.borrow_ref_mut(cs).schedule_wake(at, waker);
            if changed {
                self.rearm(cs);
            }
        })
    }
}

/// The board's alarm interrupt handler calls this.
pub fn on_alarm() {
    critical_section::with(|cs| DRIVER.rearm(cs));
}
