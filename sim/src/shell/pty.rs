//! Pseudo-terminal transport: the simulator owns the master side; a program opens the
//! slave device (`/dev/pts/N`) like a serial port.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::shell::tx::Sink;
use crate::shell::uart::{precise_timers, sleep_until, Pacer, Waiter};

pub(crate) struct Pty {
    master: File,
    /// Kept open so that the master never sees EIO/hang-up when the program closes the device.
    _slave: File,
    pub(crate) path: PathBuf,
}

impl Pty {
    pub(crate) fn open() -> std::io::Result<Pty> {
        let mut master: libc::c_int = -1;
        let mut slave: libc::c_int = -1;
        // SAFETY: openpty writes two fds; the name, termios and winsize arguments may be null.
        let r = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both fds were just returned by openpty and are owned by nobody else.
        let (master, slave) = unsafe { (File::from_raw_fd(master), File::from_raw_fd(slave)) };

        // Raw mode (no echo, no CR/LF translation, byte by byte) on the line discipline.
        // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(slave.as_raw_fd(), &mut t) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::cfmakeraw(&mut t);
            t.c_cc[libc::VMIN] = 1;
            t.c_cc[libc::VTIME] = 0;
            if libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }

        // SAFETY: fcntl on a valid fd.
        unsafe {
            let fl = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }

        let mut name = [0 as libc::c_char; 256];
        // SAFETY: the buffer is valid for its length; ttyname_r NUL-terminates on success.
        let r = unsafe { libc::ttyname_r(slave.as_raw_fd(), name.as_mut_ptr(), name.len()) };
        if r != 0 {
            return Err(std::io::Error::from_raw_os_error(r));
        }
        // SAFETY: NUL-terminated by ttyname_r.
        let cstr = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) };
        let path = PathBuf::from(cstr.to_string_lossy().into_owned());
        Ok(Pty {
            master,
            _slave: slave,
            path,
        })
    }

    /// Reads what the program writes to the device and hands it to the modem; with a
    /// `pacer`, each byte once its stop bit is complete on the line's schedule, which starts
    /// when the byte is read from the kernel (this thread polls the device whenever it waits,
    /// so that is within its wake-up latency of the write). No back-pressure: the bytes wait
    /// here and in the kernel's pty buffer.
    pub(crate) fn spawn_reader(
        &self,
        mut deliver: impl FnMut(Vec<u8>) -> bool + Send + 'static,
        stop: Arc<AtomicBool>,
        mut pacer: Option<Pacer>,
    ) -> std::io::Result<JoinHandle<()>> {
        let mut m = self.master.try_clone()?;
        std::thread::Builder::new()
            .name("bc26-sim-pty-rx".into())
            .spawn(move || {
                if pacer.is_some() {
                    precise_timers();
                }
                /// Bytes read ahead of the wire at most (the rest waits in the kernel).
                const AHEAD: usize = 1024;
                let mut buf = [0u8; AHEAD];
                // Bytes read, each with the instant it is complete on the wire.
                let mut pending: VecDeque<(Instant, u8)> = VecDeque::new();
                let mut waiter = Waiter::default();
                while !stop.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    // Deliver every complete byte.
                    let complete = pending.iter().take_while(|(d, _)| *d <= now).count();
                    if complete > 0 {
                        let bytes = pending.drain(..complete).map(|(_, b)| b).collect();
                        if !deliver(bytes) {
                            return;
                        }
                        continue;
                    }
                    // Wait for the next byte's stop bit (spinning at the end when it is the
                    // last one read, see `Waiter`), or for new bytes meanwhile.
                    let (wait, spin) = match pending.front() {
                        Some(&(due, _)) => {
                            let spin = waiter.spins(due, pending.len() == 1);
                            let sleep = if spin {
                                Waiter::sleep_before(due, now)
                            } else {
                                due - now
                            };
                            (sleep, spin.then_some(due))
                        }
                        None => (Duration::from_millis(50), None),
                    };
                    let more = pending.len() < AHEAD && readable(&m, wait);
                    if !more {
                        if pending.len() >= AHEAD {
                            sleep_until(now + wait);
                        }
                        if let Some(due) = spin {
                            waiter.spin_until(due);
                        }
                        continue;
                    }
                    let n = match m.read(&mut buf[..AHEAD - pending.len()]) {
                        Ok(0) => continue,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    };
                    let read_at = Instant::now();
                    pending.extend(buf[..n].iter().map(|&b| {
                        let due = match &mut pacer {
                            Some(p) => p.schedule(read_at),
                            None => read_at,
                        };
                        (due, b)
                    }));
                }
            })
    }

    pub(crate) fn sink(&self) -> std::io::Result<PtySink> {
        Ok(PtySink(self.master.try_clone()?))
    }
}

/// Wait at most `timeout` for the master to be readable (to the nanosecond: `ppoll`).
fn readable(f: &File, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    let r = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    if r > 0 && pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        // No program has the device open (or it went away): do not spin.
        std::thread::sleep(timeout.max(Duration::from_millis(1)));
        return false;
    }
    r > 0 && pfd.revents & libc::POLLIN != 0
}

pub(crate) struct PtySink(File);

impl Sink for PtySink {
    /// The master is non-blocking: when nobody drains the device for 2 s, the rest of the
    /// data is dropped (like a UART overrun) instead of blocking the modem forever.
    fn write_all(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !data.is_empty() {
            match self.0.write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if std::time::Instant::now() >= give_up {
                        return Err(e);
                    }
                    let mut pfd = libc::pollfd {
                        fd: self.0.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut pfd, 1, 20) };
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
