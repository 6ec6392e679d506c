//! Pseudo-terminal transport: the simulator owns the master side; a program opens the
//! slave device (`/dev/pts/N`) like a serial port.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, ppoll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, SpecialCharacterIndices};
use nix::sys::time::TimeSpec;

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
        let pair = nix::pty::openpty(None, None)?;
        let (master, slave) = (File::from(pair.master), File::from(pair.slave));

        // Raw mode (no echo, no CR/LF translation, byte by byte) on the line discipline.
        let mut t = tcgetattr(&slave)?;
        cfmakeraw(&mut t);
        t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        tcsetattr(&slave, SetArg::TCSANOW, &t)?;

        let fl = OFlag::from_bits_retain(fcntl(&master, FcntlArg::F_GETFL)?);
        fcntl(&master, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;

        let path = nix::unistd::ttyname(&slave)?;
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
    let mut pfd = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
    let r = ppoll(&mut pfd, Some(TimeSpec::from_duration(timeout)), None);
    let revents = pfd[0].revents().unwrap_or(PollFlags::empty());
    if r.is_ok_and(|n| n > 0) && revents.intersects(PollFlags::POLLERR | PollFlags::POLLNVAL) {
        // No program has the device open (or it went away): do not spin.
        std::thread::sleep(timeout.max(Duration::from_millis(1)));
        return false;
    }
    r.is_ok_and(|n| n > 0) && revents.contains(PollFlags::POLLIN)
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
                    let mut pfd = [PollFd::new(self.0.as_fd(), PollFlags::POLLOUT)];
                    let _ = poll(&mut pfd, PollTimeout::from(20u8));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
