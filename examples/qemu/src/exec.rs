//! The executor loop: embassy's raw executor, asleep (WFI) when no task is
//! ready, and an account of the time asleep.
//!
//! Under QEMU's `-icount shift=0` the emulated clock advances exactly one
//! nanosecond per executed instruction while the core runs, and with real
//! time while it sleeps. So the time not spent in WFI, converted to
//! nanoseconds, is the number of instructions the core executed (tasks and
//! interrupt handlers alike): [`busy_ns`].

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, Ordering};

use critical_section::Mutex;
use embassy_executor::{raw, Spawner};
use static_cell::StaticCell;

use crate::board;

/// A task was woken: poll before sleeping.
static PENDING: AtomicBool = AtomicBool::new(false);
/// Ticks spent in WFI.
static IDLE: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));

#[unsafe(export_name = "__pender")]
fn pender(_context: *mut ()) {
    // From a task or an interrupt handler. An interrupt handler has already
    // woken the core from WFI; a task runs with the core awake.
    PENDING.store(true, Ordering::Release);
}

/// Runs the executor forever; `init` spawns the tasks.
pub fn run(init: impl FnOnce(Spawner)) -> ! {
    static EXECUTOR: StaticCell<raw::Executor> = StaticCell::new();
    let executor: &'static raw::Executor = EXECUTOR.init(raw::Executor::new(core::ptr::null_mut()));
    init(executor.spawner());
    loop {
        // Interrupts stay pending (they end WFI but run only after
        // `enable`), so no wake-up falls between the check and the WFI.
        cortex_m::interrupt::disable();
        if PENDING.load(Ordering::Acquire) {
            PENDING.store(false, Ordering::Relaxed);
            // SAFETY: the executor's own loop, not inside a critical section.
            unsafe { cortex_m::interrupt::enable() };
            // SAFETY: never re-entered: only this loop polls.
            unsafe { executor.poll() };
            continue;
        }
        let asleep = board::now();
        cortex_m::asm::wfi();
        let awake = board::now();
        // SAFETY: interrupts are disabled: this is a critical section.
        let cs = unsafe { critical_section::CriticalSection::new() };
        let idle = IDLE.borrow(cs);
        idle.set(idle.get() + (awake - asleep));
        // SAFETY: as above; pending interrupt handlers run now.
        unsafe { cortex_m::interrupt::enable() };
    }
}

/// Ticks to nanoseconds.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    ticks * 1_000_000_000 / embassy_time_driver::TICK_HZ
}

/// Time the core has spent awake since the time base started, in
/// nanoseconds of emulated time (= instructions under `-icount shift=0`).
pub fn busy_ns() -> u64 {
    let (now, idle) = critical_section::with(|cs| (board::now(), IDLE.borrow(cs).get()));
    ticks_to_ns(now - idle)
}
