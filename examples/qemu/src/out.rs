//! Text lines to the host through semihosting (QEMU prints them on its
//! standard output with `-semihosting-config enable=on,target=native`).

use core::fmt::Write;

/// Writes one line (`SYS_WRITE0`, in one piece so that lines never mix).
pub fn line(args: core::fmt::Arguments<'_>) {
    let mut buf: heapless::String<200> = heapless::String::new();
    // A line longer than the buffer is cut; the NUL always fits.
    let _ = buf.write_fmt(args);
    while buf.len() > 198 {
        buf.pop();
    }
    let _ = buf.push('\n');
    let _ = buf.push('\0');
    // SAFETY: SYS_WRITE0 reads a NUL-terminated string.
    unsafe {
        cortex_m_semihosting::syscall1(cortex_m_semihosting::nr::WRITE0, buf.as_ptr() as usize);
    }
}

/// `say!("...", args)`: one line to the host, prefixed with `bc26-qemu: `.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::out::line(format_args!("bc26-qemu: {}", format_args!($($arg)*)))
    };
}

/// The command line QEMU passes (`-append`), after the image's name.
pub fn cmdline() -> &'static str {
    static mut BUF: [u8; 256] = [0; 256];
    // SAFETY: called once, at boot, before anything else reads BUF.
    let buf = unsafe { &mut *core::ptr::addr_of_mut!(BUF) };
    let mut args = [buf.as_mut_ptr() as usize, buf.len()];
    // SAFETY: SYS_GET_CMDLINE writes at most `len` bytes (NUL included)
    // and the length into `args[1]`.
    let r = unsafe {
        cortex_m_semihosting::syscall1(
            cortex_m_semihosting::nr::GET_CMDLINE,
            args.as_mut_ptr() as usize,
        )
    };
    if r != 0 {
        return "";
    }
    // SAFETY: written by the host through the pointer above.
    let len = unsafe { core::ptr::read_volatile(&args[1]) }.min(buf.len());
    let text = core::str::from_utf8(&buf[..len]).unwrap_or("");
    // The first word is the image's path.
    text.split_once(' ').map_or("", |(_, rest)| rest)
}
