//! The critical-section implementation: single core, by PRIMASK, as
//! cortex-m's `critical-section-single-core` (which this replaces), with a
//! probe that measures every window in which interrupts stay masked.
//!
//! Everything that masks interrupts goes through here: the driver's locks
//! (embassy-sync's `CriticalSectionRawMutex`), the executor's run queue on
//! ARMv6-M, the timer queue, the wakers, `portable-atomic` on ARMv6-M. (The
//! executor loop masks interrupts around `WFI` by itself and reports its own
//! windows with [`record`].)
//!
//! While the probe is on ([`set_probe`]), the outermost acquire reads the
//! board's cycle stamp and the address it was inlined at (a `mov rN, pc` at
//! the call site: the host names it with `llvm-symbolizer`), and the
//! matching release records the window's length: the longest overall and
//! the longest per site (the [`SITES`] longest sites are kept). Under QEMU's
//! `-icount shift=0` a window's emulated time is its instruction count, to
//! the resolution of the stamp (20 instructions on the LM3S6965's 50 MHz
//! SysTick, 62.5 on the micro:bit's 16 MHz timer). Off, the probe costs a
//! load and a branch per section.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::board;

/// Distinct sites whose longest window is kept.
pub const SITES: usize = 8;

/// One site's record.
#[derive(Clone, Copy)]
pub struct Site {
    /// Where the section was entered (an address in the image).
    pub at: u32,
    /// Its longest window, in stamp ticks.
    pub max: u32,
    /// Windows measured there.
    pub count: u32,
}

struct Probe {
    /// Stamp and site of the section now open.
    start: u32,
    start_at: u32,
    /// The longest windows, by site.
    sites: [Site; SITES],
    /// Windows measured.
    count: u32,
}

struct Cell(UnsafeCell<Probe>);
// SAFETY: only touched with interrupts masked (inside acquire/release, or
// in `snapshot`/`reset` under a critical section), on a single core.
unsafe impl Sync for Cell {}

static ON: AtomicBool = AtomicBool::new(false);
static PROBE: Cell = Cell(UnsafeCell::new(Probe {
    start: 0,
    start_at: 0,
    sites: [Site {
        at: 0,
        max: 0,
        count: 0,
    }; SITES],
    count: 0,
}));

/// Turns the probe on or off.
pub fn set_probe(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Forgets what the probe recorded.
pub fn reset() {
    critical_section::with(|_| {
        // SAFETY: interrupts are masked.
        let p = unsafe { &mut *PROBE.0.get() };
        p.sites = [Site {
            at: 0,
            max: 0,
            count: 0,
        }; SITES];
        p.count = 0;
    });
}

/// The sites recorded so far, longest window first, and how many windows
/// were measured.
pub fn snapshot() -> ([Site; SITES], u32) {
    let (mut sites, count) = critical_section::with(|_| {
        // SAFETY: interrupts are masked.
        let p = unsafe { &*PROBE.0.get() };
        (p.sites, p.count)
    });
    sites.sort_unstable_by(|a, b| b.max.cmp(&a.max));
    (sites, count)
}

/// Records a window of `ticks` entered at `at`. Interrupts are masked.
pub fn record(at: u32, ticks: u32) {
    // SAFETY: the caller masked interrupts: nothing else touches PROBE.
    let p = unsafe { &mut *PROBE.0.get() };
    p.count = p.count.wrapping_add(1);
    let mut min = 0;
    for i in 0..SITES {
        let s = &mut p.sites[i];
        if s.at == at {
            s.count = s.count.wrapping_add(1);
            s.max = s.max.max(ticks);
            return;
        }
        if s.max < p.sites[min].max {
            min = i;
        }
    }
    let m = &mut p.sites[min];
    if ticks > m.max {
        *m = Site {
            at,
            max: ticks,
            count: 1,
        };
    }
}

/// The address of the instruction this is inlined at.
#[inline(always)]
fn here() -> u32 {
    let pc: u32;
    // SAFETY: reads the program counter into a register.
    unsafe {
        core::arch::asm!("mov {}, pc", out(reg) pc, options(nomem, nostack, preserves_flags))
    };
    pc
}

/// Interrupts are enabled (PRIMASK clear).
#[inline(always)]
fn enabled() -> bool {
    cortex_m::register::primask::read().is_active()
}

#[unsafe(no_mangle)]
unsafe fn _critical_section_1_0_acquire() -> bool {
    let was_enabled = enabled();
    cortex_m::interrupt::disable();
    if was_enabled && ON.load(Ordering::Relaxed) {
        let at = here();
        // SAFETY: interrupts are masked now.
        let p = unsafe { &mut *PROBE.0.get() };
        p.start_at = at;
        p.start = board::stamp();
    }
    was_enabled
}

#[unsafe(no_mangle)]
unsafe fn _critical_section_1_0_release(was_enabled: bool) {
    if was_enabled {
        if ON.load(Ordering::Relaxed) {
            let end = board::stamp();
            // SAFETY: interrupts are still masked.
            let p = unsafe { &*PROBE.0.get() };
            let (start, at) = (p.start, p.start_at);
            record(at, end.wrapping_sub(start) & board::STAMP_MASK);
        }
        // SAFETY: the outermost section ends: interrupts were enabled when
        // it began.
        unsafe { cortex_m::interrupt::enable() };
    }
}

/// Whether the probe is on.
pub fn probe_on() -> bool {
    ON.load(Ordering::Relaxed)
}
