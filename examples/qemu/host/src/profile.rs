//! Where the instructions of a UART read go: the bench image run under
//! QEMU's execution log (`-d in_asm,exec,nochain`: every translated block
//! with its instructions' addresses, and every execution of a block), each
//! executed instruction's address named with `llvm-symbolizer --inlining`
//! (the images keep full debug information, so an address inlined into the
//! task's poll still names the driver's function and file it came from),
//! and counted by part: the interrupt handler, the executor, the task's
//! selects, the runner, atat's ingress, the digester, the router, the
//! inbox, the consumer, the locks, the timers.
//!
//! Counted between the bench's `bench_window_open` and `bench_window_close`
//! of each phase (QEMU's plan `profile`: two 256-byte messages at 1, 8 and
//! 64 bytes per read). A block QEMU rewinds at an I/O access
//! (`cpu_io_recompile`) is counted up to that access only, so the total
//! matches the instruction count the firmware measures itself (printed
//! beside it).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::bench::{self, Phase};
use crate::{Board, Image};

/// Instructions by address in one window.
type Counts = HashMap<u32, u64>;

/// The parts a read's instructions are counted in, in the order printed.
pub const PARTS: &[&str] = &[
    "interrupt handler (stand-in UART interrupt: ring push, wake)",
    "executor (run queue, poll, the loop around WFI)",
    "task's selects (embassy-futures select/select3/select_array)",
    "runner (read loop, quiet-gap timer set-up)",
    "UART read (the board's ring and Read)",
    "atat ingress (buffer handling around the digester)",
    "digester (framing, +QMTRECV parsing: digest.rs, urc.rs, memchr)",
    "router (router.rs, client filters: clients.rs, types.rs)",
    "inbox (hex check and decode, store, notices: inbox.rs, hex.rs, pubsub)",
    "consumer (Events::next, copy out, the bench's check)",
    "supervisor (lanes polling the outbox, link watch: supervisor/)",
    "channel (the AT channel's state: channel.rs)",
    "counters and receive clock (state.rs)",
    "locks (critical sections, blocking mutexes)",
    "timers (embassy-time, the time driver, the timer queue)",
    "memcpy/memset (compiler-builtins)",
    "ring store behind `dyn RingBuffer` (inbox's or outbox's: ring.rs)",
    "other",
];

/// Which part an address belongs to, from its inlining chain (innermost
/// first: (function, file)).
fn part(chain: &[(String, String)]) -> usize {
    let outer = chain.last().map(|(f, _)| f.as_str()).unwrap_or("");
    if outer.contains("BenchTick") {
        return 0;
    }
    if outer.contains("memcpy")
        || outer.contains("memset")
        || outer.contains("memclr")
        || outer.contains("memmove")
    {
        return 15;
    }
    if outer.contains("SysTick") || outer.contains("timer0a") {
        return 14;
    }
    for (func, file) in chain {
        let f = file.as_str();
        let p = if f.contains("/bc26-mqtt/src/digest.rs")
            || f.contains("/bc26-mqtt/src/urc.rs")
            || f.contains("/memchr-")
        {
            Some(6)
        } else if f.contains("/bc26-mqtt/src/router.rs")
            || f.contains("/bc26-mqtt/src/clients.rs")
            || f.contains("/bc26-mqtt/src/types.rs")
        {
            Some(7)
        } else if f.contains("/bc26-mqtt/src/inbox.rs")
            || f.contains("/bc26-mqtt/src/hex.rs")
            || f.contains("/embassy-sync-") && f.contains("pubsub")
        {
            Some(8)
        } else if f.contains("/bc26-mqtt/src/modem.rs")
            || f.contains("/bc26-mqtt/src/event.rs")
            || f.contains("examples/qemu/src/bin/bench.rs")
        {
            Some(9)
        } else if f.contains("/bc26-mqtt/src/supervisor/") {
            Some(10)
        } else if f.contains("/bc26-mqtt/src/channel.rs") {
            Some(11)
        } else if f.contains("/bc26-mqtt/src/state.rs") {
            Some(12)
        } else if f.contains("/bc26-mqtt/src/runner.rs") {
            Some(3)
        } else if f.contains("/atat-") {
            Some(5)
        } else if f.contains("examples/qemu/src/uart.rs") || f.contains("examples/qemu/src/ring.rs")
        {
            Some(4)
        } else if f.contains("/embassy-futures-") {
            Some(2)
        } else if f.contains("/critical-section-")
            || f.contains("examples/qemu/src/cs.rs")
            || f.contains("/embassy-sync-") && f.contains("blocking_mutex")
            || f.contains("/portable-atomic-")
        {
            Some(13)
        } else if f.contains("/embassy-time")
            || f.contains("examples/qemu/src/time.rs")
            || f.contains("examples/qemu/src/lm3s6965.rs")
        {
            Some(14)
        } else if f.contains("/embassy-executor-")
            || f.contains("examples/qemu/src/exec.rs")
            || func.contains("__pender")
        {
            Some(1)
        } else {
            // Wakers, signals (embassy-sync), the ring store (src/ring.rs,
            // the inbox's and the outbox's): the code that uses them decides.
            None
        };
        if let Some(p) = p {
            return p;
        }
    }
    if chain
        .iter()
        .any(|(_, f)| f.contains("/bc26-mqtt/src/ring.rs"))
    {
        return 16;
    }
    17
}

/// Reads QEMU's execution log: instructions counted by address, per window
/// (a window opens where a block at `open` runs and closes at `close`).
pub fn count(log: &Path, open: u32, close: u32) -> Vec<Counts> {
    let f = std::fs::File::open(log).expect("the execution log");
    let mut blocks: HashMap<u64, Vec<u32>> = HashMap::new();
    let mut translating: Option<Vec<u32>> = None;
    let mut pending: Option<Vec<u32>> = None;
    let mut last: Vec<u32> = Vec::new();
    let mut last_counted = false;
    let mut windows: Vec<Counts> = Vec::new();
    let mut inside = false;
    for line in BufReader::new(f).lines() {
        let Ok(line) = line else { break };
        if line.starts_with("IN:") {
            translating = Some(Vec::new());
        } else if let Some(rest) = line.strip_prefix("0x") {
            if let Some(t) = translating.as_mut() {
                if let Some(pc) = rest
                    .split(':')
                    .next()
                    .and_then(|a| u32::from_str_radix(a, 16).ok())
                {
                    t.push(pc);
                }
            }
        } else if line.is_empty() {
            if let Some(t) = translating.take() {
                pending = Some(t);
            }
        } else if let Some(rest) = line.strip_prefix("Trace ") {
            // "Trace 0: 0x7f... [cs_base/pc/flags/cflags] name"
            let mut w = rest.split_ascii_whitespace();
            let host = w
                .nth(1)
                .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok());
            let pc = w
                .next()
                .and_then(|b| b.trim_start_matches('[').split('/').nth(1))
                .and_then(|p| u32::from_str_radix(p, 16).ok());
            let (Some(host), Some(pc)) = (host, pc) else {
                continue;
            };
            if let Some(t) = pending.take() {
                blocks.insert(host, t);
            }
            // A block may be traced twice (see "Stopped" below): a window
            // opens and closes once.
            if pc == open & !1 && !inside {
                inside = true;
                windows.push(Counts::new());
            } else if pc == close & !1 {
                inside = false;
            }
            let pcs = blocks.get(&host).cloned().unwrap_or_else(|| vec![pc]);
            last_counted = inside;
            if inside {
                let w = windows.last_mut().unwrap();
                for &a in &pcs {
                    *w.entry(a).or_default() += 1;
                }
            }
            last = pcs;
        } else if line.starts_with("Stopped execution of TB chain before ") {
            // The block traced last did not start (the instruction budget
            // ran out at its start, under -icount): none of it ran.
            if last_counted {
                let w = windows.last_mut().unwrap();
                for &a in &last {
                    if let Some(c) = w.get_mut(&a) {
                        *c = c.saturating_sub(1);
                    }
                }
                last_counted = false;
            }
        } else if let Some(rest) =
            line.strip_prefix("cpu_io_recompile: rewound execution of TB to ")
        {
            // The block stopped at an I/O access and runs again from there
            // in a block of its own: what follows the access did not run.
            if let (Ok(at), true) = (u32::from_str_radix(rest.trim(), 16), last_counted) {
                let w = windows.last_mut().unwrap();
                for &a in last.iter().filter(|&&a| a >= at) {
                    if let Some(c) = w.get_mut(&a) {
                        *c = c.saturating_sub(1);
                    }
                }
            }
        }
    }
    windows
}

/// The inlining chain (innermost first) of each address.
pub fn symbolize(elf: &Path, addrs: &[u32]) -> HashMap<u32, Vec<(String, String)>> {
    let mut child = Command::new("llvm-symbolizer")
        .arg(format!("--obj={}", elf.display()))
        .args(["--inlining", "--functions=linkage", "--no-demangle"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("llvm-symbolizer (Debian: llvm)");
    let mut stdin = child.stdin.take().unwrap();
    let input: String = addrs.iter().map(|a| format!("{a:#x}\n")).collect();
    let writer = std::thread::spawn(move || {
        stdin.write_all(input.as_bytes()).unwrap();
    });
    let out = child.wait_with_output().expect("llvm-symbolizer");
    writer.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut result = HashMap::new();
    let mut blocks = text.split("\n\n");
    for &a in addrs {
        let block = blocks.next().unwrap_or("");
        let lines: Vec<&str> = block.lines().filter(|l| !l.is_empty()).collect();
        let chain = lines
            .chunks(2)
            .map(|c| {
                (
                    c[0].to_string(),
                    c.get(1).copied().unwrap_or("").to_string(),
                )
            })
            .collect();
        result.insert(a, chain);
    }
    result
}

/// One phase's breakdown: instructions per read by part, and the total the
/// log counted.
#[derive(Debug, Clone)]
pub struct Breakdown {
    pub phase: Phase,
    pub per_part: Vec<f64>,
    pub counted: u64,
    /// Instructions per read by function (the innermost one outside `core`
    /// of each address, with its file), largest first, and its part.
    pub functions: Vec<(String, usize, f64)>,
}

/// The function an address is counted under in the list of functions: the
/// innermost frame outside `core`/`compiler_builtins`, demangled, without
/// its generic arguments, with its file, and the next function of the
/// driver or the firmware it was inlined into.
fn function(chain: &[(String, String)]) -> String {
    let ours = |f: &str| f.contains("/bc26-mqtt/");
    let at = chain
        .iter()
        .position(|(_, f)| {
            !f.contains("/library/core/")
                && !f.contains("compiler_builtins")
                && !f.contains("compiler-builtins")
        })
        .unwrap_or(0);
    let Some((func, file)) = chain.get(at) else {
        return "?".into();
    };
    let name = demangle_short(func);
    let caller = chain[at + 1..]
        .iter()
        .filter(|(_, f)| ours(f))
        .map(|(g, _)| demangle_short(g))
        .find(|g| *g != name);
    let file = file
        .split_once("/bc26-mqtt/")
        .map(|(_, f)| f.to_string())
        .or_else(|| {
            file.split_once("/registry/src/")
                .map(|(_, f)| f.split_once('/').map_or(f, |(_, r)| r).to_string())
        })
        .unwrap_or_else(|| file.rsplit('/').next().unwrap_or(file).to_string());
    let file = file.split(':').next().unwrap_or(&file).to_string();
    match caller {
        Some(c) => format!("{name} ({file}) <- {c}"),
        None => format!("{name} ({file})"),
    }
}

/// A symbol demangled (`llvm-cxxfilt`), without generic arguments or
/// closures, its last three path segments: `bc26_mqtt::inbox::Inbox::push_message`
/// becomes `inbox::Inbox::push_message`.
fn demangle_short(linkage: &str) -> String {
    thread_local! {
        static CACHE: std::cell::RefCell<HashMap<String, String>> = Default::default();
    }
    if let Some(v) = CACHE.with(|c| c.borrow().get(linkage).cloned()) {
        return v;
    }
    let full = Command::new("llvm-cxxfilt")
        .arg(linkage)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| linkage.to_string());
    let v = simplify(&full);
    CACHE.with(|c| c.borrow_mut().insert(linkage.to_string(), v.clone()));
    v
}

/// See [`demangle_short`].
fn simplify(name: &str) -> String {
    // `<T as Trait>::f` -> `T::f`; `<T>::f` -> `T::f`.
    let mut s = name.to_string();
    if let Some(rest) = s.strip_prefix('<') {
        let mut depth = 1;
        let mut end = rest.len();
        for (i, ch) in rest.char_indices() {
            match ch {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let inner = &rest[..end];
        let inner = inner.split(" as ").next().unwrap_or(inner);
        s = format!("{inner}{}", rest.get(end + 1..).unwrap_or(""));
    }
    // Generic arguments out.
    let mut plain = String::new();
    let mut depth = 0;
    for ch in s.chars() {
        match ch {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => plain.push(ch),
            _ => {}
        }
    }
    let segs: Vec<&str> = plain
        .split("::")
        .filter(|p| !p.is_empty() && !p.starts_with("{closure"))
        .collect();
    segs[segs.len().saturating_sub(3)..].join("::")
}

/// Runs the bench's `plan` (`profile`: the runner in a task of its own, or
/// `profile-one-task`: the runner, the supervisor and the consumer in one
/// task) under the execution log and breaks each phase's
/// instructions down by part. `log` is where QEMU writes (some hundred
/// megabytes; removed afterwards).
pub fn profile(board: Board, image: &Image, plan: &str, log: &Path) -> Vec<Breakdown> {
    let elf = std::fs::read(&image.elf).expect("the image");
    let sym = |n| crate::elf_symbol(&elf, n).unwrap_or_else(|| panic!("no {n} in the image"));
    let (open, close) = (sym("bench_window_open"), sym("bench_window_close"));
    let run = bench::run(board, image, plan, Some(log));
    let windows = count(log, open, close);
    let _ = std::fs::remove_file(log);
    assert_eq!(
        windows.len(),
        run.phases.len(),
        "one window per phase in QEMU's execution log"
    );
    let mut addrs: Vec<u32> = windows.iter().flat_map(|w| w.keys().copied()).collect();
    addrs.sort_unstable();
    addrs.dedup();
    let chains = symbolize(&image.elf, &addrs);
    windows
        .iter()
        .zip(run.phases)
        .map(|(w, phase)| {
            let mut parts = vec![0u64; PARTS.len()];
            let mut functions: HashMap<String, (usize, u64)> = HashMap::new();
            for (a, n) in w {
                let p = part(&chains[a]);
                parts[p] += n;
                let e = functions.entry(function(&chains[a])).or_insert((p, 0));
                e.1 += n;
            }
            let mut functions: Vec<(String, usize, f64)> = functions
                .into_iter()
                .map(|(f, (p, n))| (f, p, n as f64 / phase.reads as f64))
                .collect();
            functions.sort_by(|a, b| b.2.total_cmp(&a.2));
            let counted = parts.iter().sum();
            // The scripted modem's making of the bytes is not the driver's:
            // taken out of the interrupt handler's part, as the bench does.
            parts[0] = parts[0].saturating_sub(phase.source);
            Breakdown {
                per_part: parts
                    .iter()
                    .map(|&n| n as f64 / phase.reads as f64)
                    .collect(),
                counted,
                functions,
                phase,
            }
        })
        .collect()
}

/// Prints the breakdowns as a table, a column per phase.
pub fn print(board: Board, title: &str, b: &[Breakdown]) {
    let m = format!("{} on {}", board.target(), board.machine());
    println!("qemu-profile: {m}: instructions per UART read, by part ({title}; 256-byte payloads in hex; QEMU's execution log)");
    let head: Vec<String> = b
        .iter()
        .map(|x| format!("{:>9}", format!("{} B/read", x.phase.piece)))
        .collect();
    println!("qemu-profile: {:<72} {}", "part", head.join(" "));
    for (i, name) in PARTS.iter().enumerate() {
        let cols: Vec<String> = b
            .iter()
            .map(|x| format!("{:>9.0}", x.per_part[i]))
            .collect();
        println!("qemu-profile: {name:<72} {}", cols.join(" "));
    }
    let total: Vec<String> = b
        .iter()
        .map(|x| format!("{:>9.0}", x.per_part.iter().sum::<f64>()))
        .collect();
    println!(
        "qemu-profile: {:<72} {}",
        "total (the driver's side)",
        total.join(" ")
    );
    let fw: Vec<String> = b
        .iter()
        .map(|x| format!("{:>9.0}", x.phase.per_read()))
        .collect();
    println!(
        "qemu-profile: {:<72} {}",
        "the firmware's own count (SysTick, -icount), same phases",
        fw.join(" ")
    );
    if let Some(x) = b.iter().find(|x| x.phase.piece == 1).or(b.first()) {
        println!(
            "qemu-profile: {m}: the functions that take most, per read at {} bytes per read:",
            x.phase.piece
        );
        for (f, p, n) in x.functions.iter().take(40) {
            let part = PARTS[*p].split(" (").next().unwrap_or("");
            println!("qemu-profile: {n:>7.0}  {f}  [{part}]");
        }
    }
    let _ = std::io::stdout().flush();
}
