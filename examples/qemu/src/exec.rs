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

use crate::{board, cs};

/// The site the executor loop's masked window is recorded under (no
/// address in the image: the host names it).
pub const EXECUTOR_SITE: u32 = 1;

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
        // Interrupts are masked from here to `enable`, asleep or not: the
        // probe records the instructions (the time awake) of that window.
        let masked = board::stamp();
        let asleep = board::now();
        cortex_m::asm::wfi();
        let awake = board::now();
        // SAFETY: interrupts are disabled: this is a critical section.
        let cs = unsafe { critical_section::CriticalSection::new() };
        let idle = IDLE.borrow(cs);
        idle.set(idle.get() + (awake - asleep));
        if cs::probe_on() {
            let slept = (awake - asleep) as u32;
            let ticks = board::stamp().wrapping_sub(masked) & board::STAMP_MASK;
            cs::record(EXECUTOR_SITE, ticks.wrapping_sub(slept) & board::STAMP_MASK);
        }
        // SAFETY: as above; pending interrupt handlers run now.
        unsafe { cortex_m::interrupt::enable() };
    }
}

const fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Nanoseconds per tick as a fraction (50 MHz: 20/1; 16 MHz: 125/2).
const NS_MUL: u64 = 1_000_000_000 / gcd(1_000_000_000, embassy_time_driver::TICK_HZ);
const NS_DIV: u64 = embassy_time_driver::TICK_HZ / gcd(1_000_000_000, embassy_time_driver::TICK_HZ);

/// Ticks to nanoseconds (a multiplication and a shift on both boards).
pub fn ticks_to_ns(ticks: u64) -> u64 {
    ticks * NS_MUL / NS_DIV
}

/// Time the core has spent awake since the time base started, in ticks.
pub fn busy_ticks() -> u64 {
    let (now, idle) = critical_section::with(|cs| (board::now(), IDLE.borrow(cs).get()));
    now - idle
}

/// Time the core has spent awake since the time base started, in
/// nanoseconds of emulated time (= instructions under `-icount shift=0`).
pub fn busy_ns() -> u64 {
    ticks_to_ns(busy_ticks())
}
