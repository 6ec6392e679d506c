#!/usr/bin/env python3
"""Footprint tables of the board examples, from their ELF files.

Usage: footprint.py <llvm-size> <llvm-nm> <llvm-dwarfdump> NAME=FULL_ELF:BASELINE_ELF ...

Prints markdown (the tables of the README ("Board examples")):
1. flash and RAM of each firmware, of its `no-mqtt` baseline (same HAL,
   executor, UART and defmt setup without the driver and the application) and
   the difference;
2. the full firmware's code (.text) by the crate its source lines come from,
   read from the DWARF line table, so code the compiler inlined across crates
   (LTO) still counts for the crate that wrote it;
3. the RAM of the driver's `State` and of the task that runs driver and
   application, from the symbol table.
"""
import re
import subprocess
import sys
from collections import defaultdict

SIZE, NM, DWARFDUMP = sys.argv[1:4]
BOARDS = [a.split("=", 1) for a in sys.argv[4:]]


def sections(elf):
    out = subprocess.run([SIZE, "-A", elf], check=True, capture_output=True, text=True).stdout
    s = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0].startswith(".") and f[1].isdigit():
            s[f[0]] = int(f[1])
    return s


def flash_ram(elf):
    s = sections(elf)
    flash = sum(s.get(k, 0) for k in (".vector_table", ".text", ".rodata", ".data"))
    ram = sum(s.get(k, 0) for k in (".data", ".bss", ".uninit"))
    return flash, ram, s


# Source directory -> crate group, first match wins.
GROUPS = [
    ("/bc26-mqtt/src/", "bc26-mqtt (the driver)"),
    ("/bc26-mqtt/examples/app/", "bc26-example-app (the application)"),
    ("/atat-", "atat (the driver's AT framework)"),
    ("/heapless-", "heapless"),
    ("/embassy-sync-", "embassy-sync, embassy-futures, embassy-time"),
    ("/embassy-futures-", "embassy-sync, embassy-futures, embassy-time"),
    ("/embassy-time-", "embassy-sync, embassy-futures, embassy-time"),
    ("/embassy-stm32-", "HAL (embassy-stm32 / embassy-nrf, PACs)"),
    ("/embassy-nrf-", "HAL (embassy-stm32 / embassy-nrf, PACs)"),
    ("/stm32-metapac-", "HAL (embassy-stm32 / embassy-nrf, PACs)"),
    ("/nrf-pac-", "HAL (embassy-stm32 / embassy-nrf, PACs)"),
    ("/embassy-hal-internal-", "HAL (embassy-stm32 / embassy-nrf, PACs)"),
    ("/embassy-executor", "embassy-executor"),
    ("/defmt", "defmt, defmt-rtt, panic-probe"),
    ("/panic-probe-", "defmt, defmt-rtt, panic-probe"),
    ("/compiler_builtins", "core, compiler-builtins"),
    ("/library/core/", "core, compiler-builtins"),
    ("/rustlib/src/rust/library/", "core, compiler-builtins"),
]
BOARD_GROUP = "board crate (its main.rs, tasks)"
RODATA = ".rodata (constants, strings; not split by crate)"
OTHER = "other (cortex-m, cortex-m-rt, critical-section, ...)"


def group_of(path):
    for needle, g in GROUPS:
        if needle in path:
            return g
    if path.startswith("src/") or "/examples/stm32/" in path or "/examples/nrf/" in path:
        return BOARD_GROUP
    return OTHER


def text_range(elf):
    out = subprocess.run([SIZE, "-A", elf], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0] == ".text":
            return int(f[2]), int(f[2]) + int(f[1])
    raise SystemExit(f"{elf}: no .text")


def text_by_group(elf):
    """Bytes of code per crate group, from .debug_line address ranges.

    The linker leaves the line rows of functions it dropped (gc-sections) at
    address 0: a sequence that starts below .text is one of those, skipped."""
    lo, hi = text_range(elf)
    skip = False
    out = subprocess.run([DWARFDUMP, "--debug-line", elf], check=True, capture_output=True,
                         text=True).stdout
    sizes = defaultdict(int)
    dirs, files = {}, {}
    cur_file_no = None
    prev = None  # (address, group)
    row = re.compile(r"^0x([0-9a-f]+)\s+\d+\s+\d+\s+(\d+)\s+\d+\s+\d+\s*(.*)$")
    for line in out.splitlines():
        if line.startswith("debug_line["):
            dirs, files, prev = {}, {}, None
            continue
        m = re.match(r'^include_directories\[\s*(\d+)\] = "(.*)"', line)
        if m:
            dirs[int(m.group(1))] = m.group(2)
            continue
        m = re.match(r"^file_names\[\s*(\d+)\]:", line)
        if m:
            cur_file_no = int(m.group(1))
            files[cur_file_no] = ["", 0]
            continue
        m = re.match(r'^\s+name: "(.*)"', line)
        if m and cur_file_no is not None:
            files[cur_file_no][0] = m.group(1)
            continue
        m = re.match(r"^\s+dir_index: (\d+)", line)
        if m and cur_file_no is not None:
            files[cur_file_no][1] = int(m.group(1))
            continue
        m = row.match(line)
        if not m:
            continue
        addr, fno, flags = int(m.group(1), 16), int(m.group(2)), m.group(3)
        if prev is None and not skip:
            skip = not lo <= addr < hi  # the first row of a sequence
        if "end_sequence" in flags:
            if prev is not None and not skip and prev[0] <= addr <= hi:
                sizes[prev[1]] += addr - prev[0]
            prev, skip = None, False
            continue
        if skip:
            continue
        if prev is not None and prev[0] <= addr <= hi:
            sizes[prev[1]] += addr - prev[0]
        name, d = files.get(fno, ("?", 0))
        path = name if name.startswith("/") else (dirs.get(d, "") + "/" + name if d else name)
        prev = (addr, group_of(path))
    return sizes


def symbol_sizes(elf):
    out = subprocess.run([NM, "-C", "-S", "--size-sort", elf], check=True, capture_output=True,
                         text=True).stdout
    syms = {}
    for line in out.splitlines():
        f = line.split(None, 3)
        if len(f) == 4:
            syms[f[3]] = int(f[1], 16)
    return syms


def kib(n):
    return f"{n / 1024:.1f} KiB"


def main():
    rows = []
    groups = {}
    ram_rows = []
    for name, elfs in BOARDS:
        full, base = elfs.split(":")
        ff, fr, fs = flash_ram(full)
        bf, br, _ = flash_ram(base)
        rows.append((name, ff, fr, bf, br))
        g = text_by_group(full)
        b = text_by_group(base)
        g[RODATA] = fs.get(".rodata", 0)
        b[RODATA] = sections(base).get(".rodata", 0)
        groups[name] = (g, b)
        syms = symbol_sizes(full)
        state = next((v for k, v in syms.items() if k.endswith("::app::STATE")), 0)
        pool = next((v for k, v in syms.items() if k.endswith("::app_task::POOL")), 0)
        ram_rows.append((name, state, pool))

    print("| firmware (thumbv7em-none-eabihf, opt-level \"s\", LTO) | flash | RAM |")
    print("|---|---:|---:|")
    for name, ff, fr, bf, br in rows:
        print(f"| {name}: full | {ff} ({kib(ff)}) | {fr} ({kib(fr)}) |")
        print(f"| {name}: `no-mqtt` baseline | {bf} ({kib(bf)}) | {br} ({kib(br)}) |")
        print(f"| {name}: **driver + application** | **{ff - bf} ({kib(ff - bf)})** "
              f"| **{fr - br} ({kib(fr - br)})** |")
    print()
    names = [n for n, _ in BOARDS]
    print("| code (.text) by source crate, bytes | "
          + " | ".join(f"{n}: full | {n}: added to `no-mqtt`" for n in names) + " |")
    print("|---|" + "---:|" * (2 * len(names)))
    first = groups[names[0]][0]
    order = sorted({k for g, _ in groups.values() for k in g},
                   key=lambda k: (k == RODATA, -first.get(k, 0)))
    for k in order:
        cells = []
        for n in names:
            g, b = groups[n]
            cells += [str(g.get(k, 0)), f"{g.get(k, 0) - b.get(k, 0):+d}"]
        print(f"| {k} | " + " | ".join(cells) + " |")
    print()
    print("| RAM (symbols of the full firmware) | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    print("| driver `State` (default sizes) | " + " | ".join(str(r[1]) for r in ram_rows) + " |")
    print("| task running driver + application (futures) | "
          + " | ".join(str(r[2]) for r in ram_rows) + " |")


main()
