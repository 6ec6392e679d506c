//! Stack high-water mark: the stack is painted with a pattern at boot and
//! scanned for the deepest word that is no longer the pattern.
//!
//! Everything runs on the one main stack (MSP): the executor, the task that
//! runs the driver and the application, and every interrupt handler (whose
//! exception frames land on it too), so its peak is the task's real use plus
//! whatever interrupt nested on top of it.

const PAINT: u32 = 0x5AC3_A53C;

unsafe extern "C" {
    /// Top of the stack (cortex-m-rt: end of RAM).
    static _stack_start: u32;
    /// Lowest address the stack may use (cortex-m-rt: end of the statics).
    static _stack_end: u32;
}

fn bounds() -> (usize, usize) {
    // Linker symbols: only their addresses are used.
    (
        core::ptr::addr_of!(_stack_end) as usize,
        core::ptr::addr_of!(_stack_start) as usize,
    )
}

/// Paints the free part of the stack, from its lowest address up to the
/// current stack pointer. Call first thing in `main`.
#[inline(always)]
pub fn paint() {
    let (bottom, _) = bounds();
    // SAFETY: writes only below the stack pointer, where nothing lives yet
    // (interrupts are not enabled); the loop uses registers only.
    unsafe {
        core::arch::asm!(
            "2:",
            "cmp {p}, sp",
            "bhs 3f",
            "str {pat}, [{p}]",
            "adds {p}, #4",
            "b 2b",
            "3:",
            p = inout(reg) bottom => _,
            pat = in(reg) PAINT,
            options(nostack),
        );
    }
}

/// Where RAM starts on both boards.
const RAM_ORIGIN: usize = 0x2000_0000;

/// The RAM the image was linked for, its statics (`.data`, `.bss`,
/// `.uninit`: everything below the stack) and the stack's size, in bytes.
pub fn layout() -> (usize, usize, usize) {
    let (bottom, top) = bounds();
    (top - RAM_ORIGIN, bottom - RAM_ORIGIN, top - bottom)
}

/// Bytes of stack used at the deepest point so far, and the stack's size.
pub fn peak() -> (usize, usize) {
    let (bottom, top) = bounds();
    let mut p = bottom;
    // SAFETY: reads inside the stack region, word-aligned.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    (top - p, top - bottom)
}
