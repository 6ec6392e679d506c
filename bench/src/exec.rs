//! Running futures: embassy's std executor for the wire-level loops (it
//! sleeps while the simulator's threads work), and a plain poll loop for the
//! ingress comparison (both paths under the same loop, nothing else running).

use core::future::Future;
use core::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use embassy_executor::Executor;

type BoxedTask = Pin<Box<dyn Future<Output = ()>>>;

// One slot per run: a slot whose waker fired after its task ended (a
// simulator thread, a timer) stays queued on its stopped executor, so slots
// are not reused.
#[embassy_executor::task(pool_size = 64)]
async fn bench_task(fut: BoxedTask, done: &'static AtomicBool) {
    fut.await;
    done.store(true, Ordering::SeqCst);
}

/// Runs `fut` to completion on a fresh embassy std executor (the thread
/// sleeps while nothing is ready) and returns its output.
///
/// Each call leaks one executor (a few hundred bytes) and takes one of the
/// 64 task slots for good: a benchmark run makes a dozen calls.
pub fn on_executor<T: 'static, F: Future<Output = T> + 'static>(fut: F) -> T {
    let out: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
    let slot = out.clone();
    let done: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    let task: BoxedTask = Box::pin(async move {
        let v = fut.await;
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
    });
    executor.run_until(
        |spawner| spawner.spawn(bench_task(task, done).expect("task pool")),
        || done.load(Ordering::SeqCst),
    );
    let v = out.lock().unwrap_or_else(|e| e.into_inner()).take();
    v.expect("the task finished")
}

/// Polls `fut` in a loop until it is ready (embassy-futures' `block_on`: a
/// no-op waker, every future polled again at once). Both ingress paths run
/// under it, so neither pays for wake-ups the other does not.
pub fn poll_loop<F: Future>(fut: F) -> F::Output {
    embassy_futures::block_on(fut)
}
