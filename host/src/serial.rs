//! A serial device (or pty) as the driver's UART on the host: two threads copy
//! bytes between the device and the two pipes the driver reads and writes.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::pipe::Pipe;
use nix::sys::termios::{cfmakeraw, cfsetspeed, tcgetattr, tcsetattr, BaudRate, SetArg};

/// The driver's receive side (modem to host).
pub type Rx = &'static Pipe<CriticalSectionRawMutex, 1024>;
/// The driver's transmit side (host to modem).
pub type Tx = &'static Pipe<CriticalSectionRawMutex, 1024>;

fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115200 => BaudRate::B115200,
        230400 => BaudRate::B230400,
        460800 => BaudRate::B460800,
        921600 => BaudRate::B921600,
        _ => return None,
    })
}

/// Opens `path` in raw mode at `baud` and bridges it to two pipes.
pub fn open(path: &str, baud: u32) -> Result<(Rx, Tx), String> {
    let speed = baud_rate(baud).ok_or_else(|| format!("unsupported baud rate {baud}"))?;
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    let mut tio = tcgetattr(&dev).map_err(|e| format!("{path}: not a terminal: {e}"))?;
    cfmakeraw(&mut tio);
    cfsetspeed(&mut tio, speed).map_err(|e| format!("{path}: {e}"))?;
    tcsetattr(&dev, SetArg::TCSANOW, &tio).map_err(|e| format!("{path}: {e}"))?;
    let mut dev_in = dev.try_clone().map_err(|e| e.to_string())?;
    let mut dev_out = dev;

    let rx: Rx = Box::leak(Box::new(Pipe::new()));
    let tx: Tx = Box::leak(Box::new(Pipe::new()));
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = dev_in.read(&mut buf) {
            if n == 0 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let mut rest = &buf[..n];
            while !rest.is_empty() {
                match rx.try_write(rest) {
                    Ok(k) => rest = &rest[k..],
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        loop {
            match tx.try_read(&mut buf) {
                Ok(n) => {
                    if dev_out.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    });
    Ok((rx, tx))
}
