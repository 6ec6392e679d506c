//! A single-threaded executor: a task is polled only when its waker was woken (as on a
//! real executor, so a lost wake-up shows as a wedge), in the order the tasks were spawned.
//! Tasks are dropped whole (in the middle of whatever they await) when the world re-creates
//! them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

struct Task<'f> {
    id: u64,
    fut: Pin<Box<dyn Future<Output = ()> + 'f>>,
    flag: Arc<Flag>,
    waker: Waker,
}

/// Tasks that borrow for `'f`.
pub(crate) struct Tasks<'f> {
    tasks: Vec<Task<'f>>,
    next: u64,
}

impl<'f> Tasks<'f> {
    pub(crate) fn new() -> Self {
        Tasks {
            tasks: Vec::new(),
            next: 0,
        }
    }

    /// A task, polled at the next round; returns its number.
    pub(crate) fn spawn(&mut self, fut: impl Future<Output = ()> + 'f) -> u64 {
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        self.next += 1;
        self.tasks.push(Task {
            id: self.next,
            fut: Box::pin(fut),
            waker: Waker::from(flag.clone()),
            flag,
        });
        self.next
    }

    /// Drops task `id` wherever it is (a no-op if it finished).
    pub(crate) fn drop_task(&mut self, id: u64) {
        self.tasks.retain(|t| t.id != id);
    }

    /// Polls every woken task once (finished ones are dropped); true if any was polled.
    pub(crate) fn poll_woken(&mut self) -> bool {
        let mut any = false;
        self.tasks.retain_mut(|t| {
            if !t.flag.0.swap(false, Ordering::Relaxed) {
                return true;
            }
            any = true;
            let mut cx = Context::from_waker(&t.waker);
            t.fut.as_mut().poll(&mut cx).is_pending()
        });
        any
    }
}
