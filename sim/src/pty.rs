//! Pseudo-terminal transport: the simulator owns the master side; a program opens the
//! slave device (`/dev/pts/N`) like a serial port.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::modem::Event;
use crate::output::Sink;
use crate::uart::Pacer;

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
    /// `pacer`, at the baud rate (the bytes wait in the kernel's pty buffer meanwhile).
    pub(crate) fn spawn_reader(
        &self,
        tx: Sender<Event>,
        stop: Arc<AtomicBool>,
        mut pacer: Option<Pacer>,
    ) -> std::io::Result<JoinHandle<()>> {
        let mut m = self.master.try_clone()?;
        std::thread::Builder::new()
            .name("bc26-sim-pty-rx".into())
            .spawn(move || {
                let mut buf = [0u8; 1024];
                let mut idle = true;
                while !stop.load(Ordering::Relaxed) {
                    // Data already waiting continues the stream; otherwise wait up to 50 ms.
                    if !readable(&m, 0) {
                        idle = true;
                        if !readable(&m, 50) {
                            continue;
                        }
                    }
                    let n = match m.read(&mut buf) {
                        Ok(0) => continue,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            continue;
                        }
                    };
                    let pieces: Vec<&[u8]> = match &pacer {
                        Some(p) => buf[..n].chunks(p.piece()).collect(),
                        None => vec![&buf[..n]],
                    };
                    for piece in pieces {
                        if let Some(p) = &mut pacer {
                            if idle {
                                p.resume();
                            }
                            p.wait_for(piece.len());
                        }
                        idle = false;
                        if tx.send(Event::Host(piece.to_vec())).is_err() {
                            return;
                        }
                    }
                }
            })
    }

    pub(crate) fn sink(&self) -> std::io::Result<PtySink> {
        Ok(PtySink(self.master.try_clone()?))
    }
}

/// Wait at most `ms` for the master to be readable.
fn readable(f: &File, ms: libc::c_int) -> bool {
    let mut pfd = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    if r > 0 && pfd.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        // No program has the device open (or it went away): do not spin.
        std::thread::sleep(std::time::Duration::from_millis(ms.max(1) as u64));
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
