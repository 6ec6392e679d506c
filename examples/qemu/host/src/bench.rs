//! The bench image (`examples/qemu/src/bin/bench.rs`): runs it, reads its
//! phases, fits the cost per UART read, and names the places where
//! interrupts stayed masked longest.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{Board, Image, Options, Qemu};

/// One phase's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// Bytes per read (per stand-in interrupt).
    pub piece: u64,
    /// Payload bytes per message.
    pub payload: u64,
    /// Messages sent.
    pub messages: u64,
    /// The masked-interrupt probe was on.
    pub probe: bool,
    /// Messages the consumer received, with a wrong topic, length or
    /// content, reported missed.
    pub got: u64,
    pub bad: u64,
    pub missed: u64,
    /// Bytes and reads the driver's runner made.
    pub bytes: u64,
    pub reads: u64,
    /// Stand-in interrupts.
    pub ticks: u64,
    /// Instructions the core executed in the phase, of which the scripted
    /// modem's making of the bytes, and the rest of the stand-in handler.
    pub busy: u64,
    pub source: u64,
    pub isr: u64,
    /// Masked windows by site (probe phases), longest first.
    pub masked: Vec<Masked>,
}

impl Phase {
    /// Instructions the driver's side spent (all but the scripted modem's
    /// making of the bytes): the stand-in handler, the executor, the task.
    pub fn driver(&self) -> u64 {
        self.busy - self.source
    }

    /// [`driver`](Self::driver) per read.
    pub fn per_read(&self) -> f64 {
        self.driver() as f64 / self.reads as f64
    }

    /// Bytes per read.
    pub fn bytes_per_read(&self) -> f64 {
        self.bytes as f64 / self.reads as f64
    }
}

/// The longest window interrupts stayed masked at one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// Where the critical section was entered (1: the executor's loop).
    pub site: u32,
    /// Its longest window, instructions (to 20).
    pub max: u64,
    /// Windows measured there.
    pub count: u64,
}

/// What a bench run printed.
#[derive(Debug, Clone)]
pub struct Run {
    /// The masked windows while the supervisor brought the link up.
    pub bring_up: Vec<Masked>,
    pub phases: Vec<Phase>,
    /// Every line QEMU printed.
    pub log: Vec<String>,
}

fn field(words: &[&str], key: &str) -> Option<u64> {
    words
        .iter()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn masked(words: &[&str]) -> Option<Masked> {
    let site = words.iter().find_map(|w| w.strip_prefix("site=0x"))?;
    Some(Masked {
        site: u32::from_str_radix(site, 16).ok()?,
        max: field(words, "max_ns")?,
        count: field(words, "count")?,
    })
}

/// Parses a run's lines.
pub fn parse(log: Vec<String>) -> Run {
    let mut run = Run {
        bring_up: Vec::new(),
        phases: Vec::new(),
        log: Vec::new(),
    };
    for l in &log {
        let Some(rest) = l.strip_prefix("bc26-qemu: bench: ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_ascii_whitespace().collect();
        if rest.starts_with("masked bring-up site=") {
            run.bring_up.extend(masked(&words));
        } else if rest.starts_with("masked phase=") && rest.contains("site=") {
            let m = masked(&words).unwrap_or_else(|| panic!("bad line: {l}"));
            run.phases
                .last_mut()
                .unwrap_or_else(|| panic!("masked sites before a phase: {l}"))
                .masked
                .push(m);
        } else if rest.starts_with("phase=") {
            let f = |k| field(&words, k).unwrap_or_else(|| panic!("no {k} in {l}"));
            run.phases.push(Phase {
                piece: f("piece"),
                payload: f("payload"),
                messages: f("messages"),
                probe: f("probe") == 1,
                got: f("got"),
                bad: f("bad"),
                missed: f("missed"),
                bytes: f("bytes"),
                reads: f("reads"),
                ticks: f("ticks"),
                busy: f("busy_ns"),
                source: f("source_ns"),
                isr: f("isr_ns"),
                masked: Vec::new(),
            });
        }
    }
    run.log = log;
    run
}

/// Runs the bench image (`plan`: "" for the full plan, or "profile") to its
/// end, emulated time only (`sleep=off`); `exec_log` as in [`Options`].
pub fn run(board: Board, image: &Image, plan: &str, exec_log: Option<&Path>) -> Run {
    let mut qemu = Qemu::start(
        board,
        image,
        &Options {
            serial: None,
            cmdline: plan.to_string(),
            no_sleep: true,
            exec_log: exec_log.map(Path::to_path_buf),
            monitor: false,
        },
    );
    let timeout = if exec_log.is_some() { 600 } else { 180 };
    parse(qemu.wait_exit(Duration::from_secs(timeout)))
}

/// A line `y = fixed + per_byte * x` fitted (least squares) through the
/// phases' cost per read (`y`) against their bytes per read (`x`).
#[derive(Debug, Clone, Copy)]
pub struct Fit {
    pub fixed: f64,
    pub per_byte: f64,
}

/// Fits the cost per read of `phases` (at least two bytes-per-read values).
pub fn fit(phases: &[&Phase]) -> Fit {
    let n = phases.len() as f64;
    let xs: Vec<f64> = phases.iter().map(|p| p.bytes_per_read()).collect();
    let ys: Vec<f64> = phases.iter().map(|p| p.per_read()).collect();
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    assert!(sxx > 0.0, "the phases need different bytes per read");
    let per_byte = sxy / sxx;
    Fit {
        fixed: my - per_byte * mx,
        per_byte,
    }
}

/// Where a masked window was entered, in words: the innermost function of
/// the driver (`src/`) the address was inlined from, with file and line,
/// else the innermost one outside `core` and the critical-section glue.
/// Needs `llvm-symbolizer`; without it, the address.
pub fn site_name(elf: &Path, site: u32) -> String {
    if site == 1 {
        return "the executor's loop around WFI (examples/qemu/src/exec.rs)".into();
    }
    let out = Command::new("llvm-symbolizer")
        .arg(format!("--obj={}", elf.display()))
        .args(["--inlining", "--functions=short", "--demangle"])
        .arg(format!("{site:#x}"))
        .stderr(Stdio::null())
        .output();
    let Ok(out) = out else {
        return format!("{site:#010x}");
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let frames: Vec<(&str, &str)> = text
        .lines()
        .collect::<Vec<_>>()
        .chunks(2)
        .filter_map(|c| Some((c.first()?.trim(), c.get(1)?.trim())))
        .collect();
    let local = |file: &str| {
        file.split_once("/bc26-mqtt/")
            .map(|(_, f)| f.to_string())
            .unwrap_or_else(|| {
                file.rsplit_once("/src/")
                    .map(|(c, f)| format!("{}: src/{f}", c.rsplit('/').next().unwrap_or(c)))
                    .unwrap_or(file.to_string())
            })
    };
    let pick = frames
        .iter()
        .find(|(_, f)| f.contains("/bc26-mqtt/src/"))
        .or_else(|| {
            frames.iter().find(|(func, f)| {
                !f.contains("/library/core/")
                    && !f.contains("critical-section")
                    && !f.contains("examples/qemu/src/cs.rs")
                    && !func.starts_with("critical_section")
            })
        });
    match pick {
        Some((func, file)) => format!("{func} ({})", local(file)),
        None => format!("{site:#010x}"),
    }
}
