//! Runs the QEMU example firmware (`examples/qemu`) on an emulated Cortex-M
//! board, its UART wired to the BC26 simulator's pseudo-terminal (or, for
//! the bench, to nothing): finds or builds the image, starts QEMU, reads
//! what the firmware reports through semihosting.
//!
//! QEMU runs with `-icount shift=0`: the emulated clock advances exactly one
//! nanosecond per executed instruction while the core runs (and with real
//! time while it sleeps in WFI), so the CPU time the firmware reports
//! (`busy_ns`) is its instruction count.
//!
//! Tools: `qemu-system-arm`, and a toolchain for the board's target: rustup
//! with the target installed (`rustup target add thumbv7m-none-eabi`), or
//! Debian's `rustc-web`, `cargo-web`, `rust-web-src` and `lld-22`
//! (`-Zbuild-std=core`). Without them, [`prepare`] says why and the tests
//! skip, unless `BC26_QEMU_REQUIRED` is set (CI), which makes that a
//! failure. A prebuilt image may be named instead: `BC26_QEMU_FIRMWARE_<TARGET>`
//! (the LM3S6965's application, e.g. `BC26_QEMU_FIRMWARE_THUMBV7M_NONE_EABI`),
//! `BC26_QEMU_FIRMWARE_MICROBIT` (and `..._MICROBIT_64K`, linked for 64 KiB of
//! RAM), `BC26_QEMU_FIRMWARE_MICROBIT_FLASH_OUTBOX` (the micro:bit's
//! application with feature `flash-outbox`, linked for 64 KiB of RAM),
//! `BC26_QEMU_BENCH_<TARGET>` (the bench).
//! `BC26_QEMU_ECHO` shows QEMU's output (the firmware's reports) as it comes;
//! `BC26_QEMU_TARGET_DIR` is the target folder of the images it builds.

pub mod bench;
pub mod profile;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An emulated board and core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    /// QEMU's `lm3s6965evb` (TI Stellaris LM3S6965: 256 KiB flash, 64 KiB
    /// RAM, SysTick, PL011 UARTs) with its own Cortex-M3, running the
    /// `thumbv7m-none-eabi` build.
    CortexM3,
    /// The same machine with a Cortex-M0 core in its place (`-cpu
    /// cortex-m0`: ARMv6-M, no compare-and-swap), running the
    /// `thumbv6m-none-eabi` build.
    CortexM0,
    /// QEMU's `microbit` (nRF51822: Cortex-M0, 256 KiB flash, 16 KiB RAM,
    /// TIMER0, the nRF51 UART), running the `thumbv6m-none-eabi` build with
    /// feature `microbit` (the application's small configuration).
    Microbit,
}

impl Board {
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Board::CortexM3 => "cortex-m3",
            Board::CortexM0 => "cortex-m0",
            Board::Microbit => "microbit",
        }
    }

    /// What QEMU runs: `-machine` and `-cpu`.
    pub fn machine(self) -> &'static str {
        match self {
            Board::CortexM3 => "lm3s6965evb",
            Board::CortexM0 => "lm3s6965evb -cpu cortex-m0",
            Board::Microbit => "microbit",
        }
    }

    fn qemu_args(self) -> &'static [&'static str] {
        match self {
            Board::CortexM3 => &["-machine", "lm3s6965evb"],
            Board::CortexM0 => &["-machine", "lm3s6965evb", "-cpu", "cortex-m0"],
            Board::Microbit => &["-machine", "microbit"],
        }
    }

    /// The Rust target.
    pub fn target(self) -> &'static str {
        match self {
            Board::CortexM3 => "thumbv7m-none-eabi",
            Board::CortexM0 | Board::Microbit => "thumbv6m-none-eabi",
        }
    }

    /// The RAM the board has, bytes.
    pub fn ram(self) -> u32 {
        match self {
            Board::CortexM3 | Board::CortexM0 => 64 * 1024,
            Board::Microbit => 16 * 1024,
        }
    }

    /// Cargo's feature arguments for the board and image.
    fn features(self, bin: Bin) -> &'static [&'static str] {
        match (self, bin) {
            (Board::Microbit, Bin::FlashOutbox) => {
                &["--no-default-features", "--features", "flash-outbox"]
            }
            (Board::CortexM3 | Board::CortexM0, _) => &[],
            (Board::Microbit, _) => &["--no-default-features", "--features", "microbit"],
        }
    }

    /// The largest error of the boot calibration, ns: the clock's
    /// resolution and the reads around the loop (20 ns a tick on the
    /// LM3S6965, 62.5 on the micro:bit's timer).
    pub fn calibration_tolerance(self) -> u64 {
        match self {
            Board::CortexM3 | Board::CortexM0 => 100,
            Board::Microbit => 250,
        }
    }
}

/// Which of the firmware's images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    /// The example application (`src/main.rs`).
    App,
    /// The bench (`src/bin/bench.rs`, LM3S6965 only).
    Bench,
    /// The example application with its telemetry journalled in flash
    /// through the nRF51's NVMC (feature `flash-outbox`, micro:bit only).
    FlashOutbox,
}

impl Bin {
    /// The binary cargo builds.
    fn name(self) -> &'static str {
        match self {
            Bin::App | Bin::FlashOutbox => "bc26-example-qemu",
            Bin::Bench => "bc26-qemu-bench",
        }
    }

    /// The name of its copy in `target/images`.
    fn label(self) -> &'static str {
        match self {
            Bin::FlashOutbox => "bc26-example-qemu-flash-outbox",
            _ => self.name(),
        }
    }
}

/// A built image.
#[derive(Debug, Clone)]
pub struct Image {
    /// The ELF file.
    pub elf: PathBuf,
    /// The RAM it was linked for, bytes (its stack starts at the top).
    pub ram: u32,
}

/// The firmware's folder.
pub fn firmware_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("examples/qemu")
        .to_path_buf()
}

/// The image to run: `Ok`, or `Err(why not)` when a tool is missing.
/// `ram`: link for this much RAM instead of the board's (a micro:bit image
/// that does not fit runs on a QEMU micro:bit with its RAM raised to match).
pub fn prepare(board: Board, bin: Bin, ram: Option<u32>) -> Result<Image, String> {
    qemu_version()?;
    let var = match (board, bin) {
        (Board::Microbit, Bin::App) => match ram {
            Some(r) if r != board.ram() => format!("BC26_QEMU_FIRMWARE_MICROBIT_{}K", r / 1024),
            _ => "BC26_QEMU_FIRMWARE_MICROBIT".to_string(),
        },
        (Board::Microbit, Bin::FlashOutbox) => "BC26_QEMU_FIRMWARE_MICROBIT_FLASH_OUTBOX".into(),
        (_, Bin::FlashOutbox) => return Err("the flash outbox image is the micro:bit's".into()),
        (_, Bin::App) => format!("BC26_QEMU_FIRMWARE_{}", env_name(board.target())),
        (_, Bin::Bench) => format!("BC26_QEMU_BENCH_{}", env_name(board.target())),
    };
    if let Some(p) = std::env::var_os(&var) {
        let elf = PathBuf::from(p);
        assert!(elf.is_file(), "{var}={} does not exist", elf.display());
        let linked = linked_ram(&elf).unwrap_or(board.ram());
        match ram {
            Some(want) if want != linked => {
                return Err(format!(
                    "{var} was linked for {linked} bytes of RAM, not {want}"
                ))
            }
            _ => return Ok(Image { elf, ram: linked }),
        }
    }
    let cargo = toolchain(board.target())?;
    Ok(build(board, bin, ram, cargo))
}

fn env_name(target: &str) -> String {
    target.to_uppercase().replace('-', "_")
}

/// The simulator's side of the UART as the QEMU tests run it: the modem's
/// output at 115200 baud, byte by byte, as a UART line delivers it (QEMU's
/// UART itself has no baud rate, and would hand the firmware whatever the
/// pty holds at once).
pub fn uart_line() -> bc26_sim::SimConfig {
    bc26_sim::SimConfig {
        baud: Some(115_200),
        chunking: Some(bc26_sim::Chunking {
            seed: 1,
            max_chunk: 1,
            gap: Duration::ZERO,
        }),
        ..bc26_sim::SimConfig::default()
    }
}

/// The firmware's settings (QEMU's `-append`) for a device of broker `b`
/// whose topics are under `base`, its client ID made of `base`.
pub fn device_settings(b: &bc26_sim::broker::Broker, base: &str) -> String {
    format!(
        "broker={}:{} id={} topics={base} timing=test",
        b.host,
        b.port,
        format!("{base}-dev").replace('/', "-")
    )
}

/// [`prepare`], or `None` after printing why the test is skipped (a
/// failure instead when `BC26_QEMU_REQUIRED` is set). `BC26_QEMU_DEFER`
/// skips the test without building anything: `.ci/run` sets it for the
/// workspace's `cargo test`, because `.ci/qemu.sh` runs these tests later
/// with the images it built (and `BC26_QEMU_REQUIRED`, which wins).
pub fn prepare_or_skip(board: Board, bin: Bin, ram: Option<u32>, test: &str) -> Option<Image> {
    let deferred = std::env::var_os("BC26_QEMU_DEFER").is_some()
        && std::env::var_os("BC26_QEMU_REQUIRED").is_none();
    if deferred {
        eprintln!("{test}: SKIPPED: BC26_QEMU_DEFER is set (.ci/qemu.sh runs it)");
        return None;
    }
    match prepare(board, bin, ram) {
        Ok(p) => Some(p),
        Err(why) if std::env::var_os("BC26_QEMU_REQUIRED").is_some() => {
            panic!("{test}: {why} (and BC26_QEMU_REQUIRED is set)")
        }
        Err(why) => {
            eprintln!("{test}: SKIPPED: {why}");
            None
        }
    }
}

/// The RAM an image was linked for: its initial stack pointer
/// (cortex-m-rt's `_stack_start`, the top of RAM) less RAM's origin.
pub fn linked_ram(elf: &Path) -> Option<u32> {
    elf_symbol(&std::fs::read(elf).ok()?, "_stack_start").map(|top| top - 0x2000_0000)
}

/// The value of a symbol of a little-endian ELF32 file.
pub fn elf_symbol(f: &[u8], name: &str) -> Option<u32> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(f.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(f.get(o..o + 4)?.try_into().ok()?));
    if f.get(..5)? != b"\x7fELF\x01" {
        return None;
    }
    let shoff = u32_at(0x20)? as usize;
    let shentsize = u16_at(0x2E)? as usize;
    let shnum = u16_at(0x30)? as usize;
    let section = |i: usize| -> Option<(u32, usize, usize, usize)> {
        let h = shoff + i * shentsize;
        Some((
            u32_at(h + 4)?,
            u32_at(h + 16)? as usize,
            u32_at(h + 20)? as usize,
            u32_at(h + 24)? as usize,
        ))
    };
    for i in 0..shnum {
        let (kind, off, size, link) = section(i)?;
        if kind != 2 {
            continue; // not SHT_SYMTAB
        }
        let (_, stroff, _, _) = section(link)?;
        for sym in (off..off + size).step_by(16) {
            let at = stroff + u32_at(sym)? as usize;
            let end = at + f.get(at..)?.iter().position(|&b| b == 0)?;
            if &f[at..end] == name.as_bytes() {
                return u32_at(sym + 4);
            }
        }
    }
    None
}

/// `qemu-system-arm --version`'s first line.
pub fn qemu_version() -> Result<String, String> {
    match Command::new("qemu-system-arm").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()),
        _ => {
            Err("qemu-system-arm is not installed (Debian: apt-get install qemu-system-arm)".into())
        }
    }
}

/// A `cargo` that builds for `target`: the one running the tests if its
/// rustc has the target's `core`, else Debian's with `-Zbuild-std=core`.
fn toolchain(target: &str) -> Result<Command, String> {
    let dir = firmware_dir();
    let libdir = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", target])
        .current_dir(&dir)
        .output();
    if let Ok(o) = libdir {
        let libdir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        let has_core = std::fs::read_dir(&libdir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
            })
            .unwrap_or(false);
        if o.status.success() && has_core {
            let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            c.args(["build", "--release", "--target", target]);
            return Ok(c);
        }
    }
    let debian = Path::new("/usr/bin/cargo").is_file()
        && Path::new("/usr/bin/rustc").is_file()
        && Path::new("/usr/lib/rustlib/src/rust/library/core").is_dir();
    let lld = ["22", "21", "20", "19"]
        .iter()
        .map(|v| PathBuf::from(format!("/usr/bin/ld.lld-{v}")))
        .find(|p| p.is_file());
    match (debian, lld) {
        (true, Some(lld)) => {
            let mut c = Command::new("/usr/bin/cargo");
            let path = std::env::var("PATH").unwrap_or_default();
            c.env("PATH", format!("/usr/bin:{path}"))
                .env("RUSTC", "/usr/bin/rustc")
                .env("RUSTDOC", "/usr/bin/rustdoc")
                .env("RUSTC_BOOTSTRAP", "1")
                .env(
                    format!(
                        "CARGO_TARGET_{}_LINKER",
                        target.to_uppercase().replace('-', "_")
                    ),
                    lld,
                )
                .args(["build", "--release", "-Zbuild-std=core", "--target", target]);
            Ok(c)
        }
        _ => Err(format!(
            "no toolchain for {target}: `rustup target add {target}`, or Debian's \
             rustc-web, cargo-web, rust-web-src and lld-22"
        )),
    }
}

/// Builds the firmware (cold: a few minutes with `-Zbuild-std`), returns
/// the image, copied to a name of its own (the board, the image, the RAM)
/// so that the next build, for another board or size, leaves it alone.
/// Source paths in the image (panic locations) are mapped to fixed names,
/// as `.ci/qemu.sh` does, so that its size does not depend on where the
/// repository is, and the two builds share cargo's fingerprints.
fn build(board: Board, bin: Bin, ram: Option<u32>, mut cargo: Command) -> Image {
    let repo = firmware_dir().join("../..");
    let repo = repo.canonicalize().unwrap_or(repo);
    let cargo_home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    cargo.env(
        "RUSTFLAGS",
        format!(
            "--remap-path-prefix={}=/bc26-mqtt --remap-path-prefix={cargo_home}=/cargo",
            repo.display()
        ),
    );
    let ram = ram.unwrap_or(board.ram());
    cargo.env("BC26_QEMU_RAM_KIB", (ram / 1024).to_string());
    // The micro:bit's features change the dependencies' (embassy-time's tick
    // rate): a target folder of its own keeps both builds, unless
    // `BC26_QEMU_TARGET_DIR` names one folder for all (CI's, which every thumb
    // build shares; the image is copied out below before the next build).
    let target_dir = match std::env::var_os("BC26_QEMU_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => firmware_dir().join(match board {
            Board::Microbit => "target/microbit",
            _ => "target",
        }),
    };
    cargo
        .args(board.features(bin))
        .args(["--bin", bin.name()])
        .arg("--target-dir")
        .arg(&target_dir);
    eprintln!(
        "building {} for {} ({} bytes of RAM; examples/qemu)...",
        bin.name(),
        board.name(),
        ram
    );
    let mut child = cargo
        .arg("--message-format=json-render-diagnostics")
        .current_dir(firmware_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30 * 60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("cargo") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("building the firmware took more than 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "building the firmware failed:\n{err}");
    // The artifact of the binary asked for.
    let exe = out
        .lines()
        .filter(|l| l.contains(&format!("\"name\":\"{}\"", bin.name())))
        .filter_map(|l| l.split_once("\"executable\":\"").map(|(_, r)| r))
        .filter_map(|r| r.split_once('"').map(|(p, _)| PathBuf::from(p)))
        .next_back()
        .unwrap_or_else(|| panic!("cargo named no executable {}:\n{err}", bin.name()));
    assert!(exe.is_file(), "{} is missing", exe.display());
    let images = firmware_dir().join("target/images");
    std::fs::create_dir_all(&images).expect("target/images");
    let elf = images.join(format!(
        "{}-{}-{}k.elf",
        bin.label(),
        board.name(),
        ram / 1024
    ));
    std::fs::copy(&exe, &elf).expect("copy the image");
    Image { elf, ram }
}

/// A running QEMU; killed when dropped.
pub struct Qemu {
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
    /// Lines of the monitor's output (`Options::monitor`).
    monitor: Receiver<String>,
}

/// One `led ...` report: what the firmware prints on every command.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// The LED's state after the command.
    pub led: bool,
    /// Emulated time the core was awake so far, in ns (= instructions
    /// under `-icount shift=0`), the reports' own cost taken out.
    pub busy_ns: u64,
    /// Emulated time since the time base started, ns.
    pub up_ns: u64,
    /// Stack high-water mark so far, bytes.
    pub stack: u64,
    /// The stack's size (RAM above the statics), bytes.
    pub stack_size: u64,
    /// Bytes the firmware has read from its UART so far.
    pub rx_bytes: u64,
    /// Reads that returned them (one per wake-up of the reading task, or
    /// fewer when bytes wait in the buffer).
    pub rx_reads: u64,
}

impl Report {
    fn parse(line: &str) -> Option<Report> {
        let rest = line.strip_prefix("bc26-qemu: led ")?;
        let mut words = rest.split_ascii_whitespace();
        let led = words.next()? == "on";
        let mut r = Report {
            led,
            busy_ns: 0,
            up_ns: 0,
            stack: 0,
            stack_size: 0,
            rx_bytes: 0,
            rx_reads: 0,
        };
        for w in words {
            let (k, v) = w.split_once('=')?;
            match k {
                "busy_ns" => r.busy_ns = v.parse().ok()?,
                "up_ns" => r.up_ns = v.parse().ok()?,
                "stack" => {
                    let (a, b) = v.split_once('/')?;
                    r.stack = a.parse().ok()?;
                    r.stack_size = b.parse().ok()?;
                }
                "rx" => {
                    let (a, b) = v.split_once('/')?;
                    r.rx_bytes = a.parse().ok()?;
                    r.rx_reads = b.parse().ok()?;
                }
                _ => return None,
            }
        }
        Some(r)
    }
}

/// How QEMU runs the image.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-serial`: the UART's other end (none: `null`).
    pub serial: Option<PathBuf>,
    /// `-append`: the firmware's command line.
    pub cmdline: String,
    /// `-icount shift=0,sleep=off`: while the core sleeps, emulated time
    /// jumps to the next timer instead of following real time (the bench:
    /// nothing outside the emulation, so its runs are identical).
    pub no_sleep: bool,
    /// `-d in_asm,exec,nochain -D <file>`: every translated block and every
    /// execution of one, for the instruction profile.
    pub exec_log: Option<PathBuf>,
    /// `-monitor stdio`: QEMU's monitor on its standard input and output
    /// ([`Qemu::monitor`], [`Qemu::read_memory`]).
    pub monitor: bool,
}

impl Qemu {
    /// Starts `image` on `board` (under `-icount shift=0`).
    pub fn start(board: Board, image: &Image, opts: &Options) -> Qemu {
        let mut cmd = Command::new("qemu-system-arm");
        cmd.args(board.qemu_args());
        if board == Board::Microbit && image.ram > board.ram() {
            // QEMU's nRF51 has a property for its RAM's size.
            cmd.arg("-global")
                .arg(format!("nrf51-soc.sram-size={}", image.ram));
        }
        cmd.args(["-display", "none", "-monitor"])
            .arg(if opts.monitor { "stdio" } else { "none" })
            .arg("-serial")
            .arg(opts.serial.as_deref().unwrap_or(Path::new("null")))
            .args(["-semihosting-config", "enable=on,target=native"])
            .args([
                "-icount",
                if opts.no_sleep {
                    "shift=0,sleep=off"
                } else {
                    "shift=0"
                },
            ]);
        if let Some(log) = &opts.exec_log {
            cmd.args(["-d", "in_asm,exec,nochain", "-D"]).arg(log);
        }
        let mut child = cmd
            .arg("-kernel")
            .arg(&image.elf)
            .args(["-append", &opts.cmdline])
            .stdin(if opts.monitor {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(if opts.monitor {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            // Semihosting output goes to QEMU's standard error.
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-arm");
        let (tx, lines) = channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let l = log.clone();
        let echo = std::env::var_os("BC26_QEMU_ECHO").is_some();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if echo {
                    eprintln!("{line}");
                }
                l.lock().unwrap().push(line.clone());
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        // The monitor's answers, line by line.
        let (mtx, monitor) = channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    if mtx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Qemu {
            child,
            lines,
            log,
            monitor,
        }
    }

    /// Sends a command to QEMU's monitor (`Options::monitor`), e.g.
    /// `system_reset`: a reset of the machine, which keeps what QEMU holds
    /// in memory for its devices (the nRF51's flash) but restarts the core.
    pub fn monitor(&mut self, command: &str) {
        let stdin = self.child.stdin.as_mut().expect("Options::monitor");
        writeln!(stdin, "{command}").expect("QEMU's monitor");
        stdin.flush().expect("QEMU's monitor");
    }

    /// `len` bytes (a multiple of 4) of the machine's physical memory from
    /// `addr`, read through the monitor (`xp`), within 10 s.
    pub fn read_memory(&mut self, addr: u32, len: u32) -> Vec<u8> {
        assert_eq!(len % 4, 0);
        while self.monitor.try_recv().is_ok() {}
        self.monitor(&format!("xp /{}xw {addr:#x}", len / 4));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut out = Vec::with_capacity(len as usize);
        while out.len() < len as usize {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.monitor.recv_timeout(left) {
                Ok(l) => l,
                Err(e) => panic!("QEMU's monitor: {e}; read {} of {len} bytes", out.len()),
            };
            // `<address>: 0x<word> 0x<word> ...`
            let Some((at, words)) = line.split_once(": 0x") else {
                continue;
            };
            let at = at.rsplit(|c: char| !c.is_ascii_hexdigit()).next().unwrap();
            let at = u64::from_str_radix(at, 16).expect("an address");
            assert_eq!(at, addr as u64 + out.len() as u64, "{line}");
            for w in format!("0x{words}").split_ascii_whitespace() {
                let w = u32::from_str_radix(w.trim_start_matches("0x"), 16).expect("a word");
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out.truncate(len as usize);
        out
    }

    /// Everything QEMU printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The next line for which `pred` holds, within `timeout`; panics (with
    /// QEMU's output) on a timeout, a firmware panic or QEMU's exit.
    pub fn line(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with("bc26-qemu: panic") || l.contains("hard fault") => {
                    panic!("the firmware failed: {l}\n--- QEMU:\n{}", self.log())
                }
                Ok(l) if pred(&l) => return l,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {what} within {timeout:?}\n--- QEMU:\n{}", self.log())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("QEMU exited before {what}\n--- QEMU:\n{}", self.log())
                }
            }
        }
    }

    /// Forgets the lines printed so far (checking them for failures).
    pub fn drain(&self) {
        while let Ok(l) = self.lines.try_recv() {
            if l.starts_with("bc26-qemu: panic") || l.contains("hard fault") {
                panic!("the firmware failed: {l}\n--- QEMU:\n{}", self.log())
            }
        }
    }

    /// The next `led` report (one per command), within 10 s.
    pub fn report(&self) -> Report {
        let l = self.line("report", Duration::from_secs(10), |l| {
            l.starts_with("bc26-qemu: led ")
        });
        Report::parse(&l).unwrap_or_else(|| panic!("bad report: {l}"))
    }

    /// The boot report of the memory: (RAM linked for, statics, stack), bytes.
    pub fn memory(&self) -> (u64, u64, u64) {
        let l = self.line("memory report", Duration::from_secs(10), |l| {
            l.starts_with("bc26-qemu: memory: ")
        });
        let n: Vec<u64> = l
            .split_ascii_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        match n.as_slice() {
            [ram, statics, stack] => (*ram, *statics, *stack),
            _ => panic!("bad memory line: {l}"),
        }
    }

    /// Waits until QEMU exits (the firmware ended it), within `timeout`;
    /// every line it printed.
    pub fn wait_exit(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("qemu") {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                let log = self.log.lock().unwrap().clone();
                assert!(
                    status.success(),
                    "QEMU exited with {status}\n--- QEMU:\n{}",
                    log.join("\n")
                );
                return log;
            }
            if Instant::now() > deadline {
                panic!(
                    "QEMU still runs after {timeout:?}\n--- QEMU:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The boot calibration: (instructions, emulated ns) of a known loop.
    pub fn calibration(&self) -> (u64, u64) {
        let l = self.line("calibration", Duration::from_secs(10), |l| {
            l.starts_with("bc26-qemu: calibration: ")
        });
        let words: Vec<&str> = l.split_ascii_whitespace().collect();
        match words.as_slice() {
            [_, _, n, "instructions", "in", ns, "ns"] => {
                (n.parse().expect("instructions"), ns.parse().expect("ns"))
            }
            _ => panic!("bad calibration line: {l}"),
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
