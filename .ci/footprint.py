#!/usr/bin/env python3
"""Footprint report of the board firmware, from their ELF files, and its limits.

Usage: footprint.py --tools LLVM_SIZE LLVM_NM LLVM_DWARFDUMP
                    --board FOLDER NAME FULL_ELF BASELINE_ELF|- [--board ...]
                    [--variant FOLDER FEATURE ELF ...] [--record]

Prints markdown:
1. flash and RAM of each firmware, of its `no-mqtt` baseline (same HAL,
   executor, UART and defmt setup without the driver and the application) and
   the difference, with the limits that apply;
2. the full firmware's code (.text) by the crate its source lines come from,
   read from the DWARF line table, so code the compiler inlined across crates
   (LTO) still counts for the crate that wrote it; the driver's power
   commands and its supervisor's duty cycle (features added after 2026-11)
   are groups of their own, and issue 16's measure (driver + supervisor
   without them) is printed with its limit and its goal (24 KiB);
3. the RAM of the driver's `State` and of the task that runs driver and
   application, from the symbol table;
4. each --variant (a board's image built with an optional feature, e.g.
   `flash-outbox`): its flash and RAM, what the feature adds to the board's
   full image, and the code it adds by source crate; the full image's own
   figures above are those of the build without the feature;
5. the difference from the figures recorded in .ci/recorded/footprint.json
   (information, never a failure).
Then checks the limits of .ci/limits.toml [firmware] (the driver's code, the
supervisor's, both together, the power commands', the duty cycle's, each
image's flash and RAM; a variant's against [firmware."<folder>+<feature>"],
else its board's) and exits 1 if one is exceeded or a figure is missing.
--record writes the figures to .ci/recorded/footprint.json.
"""
import argparse
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import tomllib
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parent.parent
# BC26_LIMITS: another limits file (to see a limit fail, for instance).
LIMITS = pathlib.Path(os.environ.get("BC26_LIMITS", ROOT / ".ci" / "limits.toml"))
RECORDED = ROOT / ".ci" / "recorded" / "footprint.json"

ap = argparse.ArgumentParser()
ap.add_argument("--tools", nargs=3, required=True, metavar=("SIZE", "NM", "DWARFDUMP"))
ap.add_argument("--board", nargs=4, action="append", required=True,
                metavar=("FOLDER", "NAME", "FULL", "BASELINE"))
ap.add_argument("--variant", nargs=3, action="append", default=[],
                metavar=("FOLDER", "FEATURE", "ELF"))
ap.add_argument("--record", action="store_true")
ARGS = ap.parse_args()
SIZE, NM, DWARFDUMP = ARGS.tools


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


# Source directory -> crate group, first match wins. The features added
# after 2026-11 (issue 16's goal is for the feature set of 2026-11) are
# groups of their own: the power commands (issue 17) and the duty cycle
# (issue 18).
GROUPS = [
    ("/bc26-mqtt/src/supervisor/durable.rs", "bc26-mqtt flash outbox (src/supervisor/durable.rs)"),
    ("/bc26-mqtt/src/supervisor/duty.rs", "bc26-mqtt supervisor's duty cycle (src/supervisor/duty.rs)"),
    ("/bc26-mqtt/src/supervisor/", "bc26-mqtt supervisor (keeps a client online)"),
    ("/bc26-mqtt/src/power.rs", "bc26-mqtt power commands (src/power.rs, src/commands/power.rs)"),
    ("/bc26-mqtt/src/commands/power.rs",
     "bc26-mqtt power commands (src/power.rs, src/commands/power.rs)"),
    ("/bc26-mqtt/src/", "bc26-mqtt (the driver)"),
    ("/bc26-mqtt/examples/app/", "bc26-example-app (the application)"),
    ("/atat-", "atat (the driver's AT framework)"),
    ("/sequential-storage-", "sequential-storage (the flash outbox's queue)"),
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
    if path.startswith("src/") or re.search(r"/bc26-mqtt/examples/[^/]+/", path):
        return BOARD_GROUP  # a board crate (the application matched above)
    return OTHER


def text_range(elf):
    out = subprocess.run([SIZE, "-A", elf], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 3 and f[0] == ".text":
            return int(f[2]), int(f[2]) + int(f[1])
    raise SystemExit(f"{elf}: no .text")


def comp_dirs(elf):
    """The compilation directory of each unit, by the offset of its line
    table: a relative file name in a line table is relative to it."""
    out = subprocess.run([DWARFDUMP, "--debug-info", "--recurse-depth=0", elf], check=True,
                         capture_output=True, text=True).stdout
    dirs, stmt = {}, None
    for line in out.splitlines():
        m = re.search(r"DW_AT_stmt_list\s+\((0x[0-9a-f]+)\)", line)
        if m:
            stmt = int(m.group(1), 16)
            continue
        m = re.search(r'DW_AT_comp_dir\s+\("(.*)"\)', line)
        if m and stmt is not None:
            dirs[stmt] = m.group(1)
            stmt = None
    return dirs


def text_by_group(elf):
    """Bytes of code per crate group, from .debug_line address ranges.

    The linker leaves the line rows of functions it dropped (gc-sections) at
    address 0: a sequence that starts below .text is one of those, skipped.
    A relative file name is resolved against its unit's compilation
    directory: `src/inbox.rs` is the driver's in the driver's own unit and
    the board's in the board's (until 2026-12-06 every relative name was
    counted as the board's, and the driver's code was undercounted)."""
    lo, hi = text_range(elf)
    units = comp_dirs(elf)
    comp_dir = ""
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
            m = re.match(r"debug_line\[(0x[0-9a-f]+)\]", line)
            comp_dir = units.get(int(m.group(1), 16), "") if m else ""
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
        if name.startswith("/"):
            path = name
        else:
            base = dirs.get(d, "") if d else ""
            if not base.startswith("/"):
                base = comp_dir + ("/" + base if base else "")
            path = base + "/" + name
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


def cell(n):
    return "-" if n is None else f"{n} ({kib(n)})"


DRIVER = "bc26-mqtt (the driver)"
SUPERVISOR = "bc26-mqtt supervisor (keeps a client online)"
POWER = "bc26-mqtt power commands (src/power.rs, src/commands/power.rs)"
DUTY = "bc26-mqtt supervisor's duty cycle (src/supervisor/duty.rs)"
APP = "bc26-example-app (the application)"


def measure(folder, name, full, base):
    ff, fr, fs = flash_ram(full)
    g = text_by_group(full)
    g[RODATA] = fs.get(".rodata", 0)
    if base == "-":
        bf = br = None
        b = None
    else:
        bf, br, bs = flash_ram(base)
        b = text_by_group(base)
        b[RODATA] = bs.get(".rodata", 0)
    syms = symbol_sizes(full)
    state = next((v for k, v in syms.items() if k.endswith("::app::STATE")), None)
    task = next((v for k, v in syms.items() if k.endswith("::app_task::POOL")), None)
    return {
        "folder": folder, "name": name, "flash": ff, "ram": fr,
        "baseline_flash": bf, "baseline_ram": br, "groups": g, "base_groups": b,
        "state": state, "task": task,
    }


def figures(m):
    """The figures recorded and compared, per board."""
    return {
        "flash": m["flash"], "ram": m["ram"],
        "baseline_flash": m["baseline_flash"], "baseline_ram": m["baseline_ram"],
        "driver_code": m["groups"].get(DRIVER, 0),
        "supervisor_code": m["groups"].get(SUPERVISOR, 0),
        "core_code": core_code(m),
        "power_code": m["groups"].get(POWER, 0),
        "duty_code": m["groups"].get(DUTY, 0),
        "application_code": m["groups"].get(APP, 0),
        "state_symbol": m["state"], "task_pool": m["task"],
    }


def core_code(m):
    """Issue 16's measure: the driver and its supervisor without the features
    added after 2026-11 (power commands, duty cycle)."""
    return m["groups"].get(DRIVER, 0) + m["groups"].get(SUPERVISOR, 0)


def toolchain():
    try:
        v = subprocess.run(["/usr/bin/rustc", "--version"], capture_output=True, text=True,
                           check=True).stdout.strip()
        return v.replace("(built from a source tarball)", "(Debian rustc-web)")
    except (OSError, subprocess.CalledProcessError):
        return "unknown rustc"


def main():
    limits = tomllib.loads(LIMITS.read_text())["firmware"]
    default = limits.get("default", {})
    driver_max = limits["driver_code_max"]
    supervisor_max = limits.get("supervisor_code_max")
    core_max = limits.get("core_code_max")
    core_goal = limits.get("core_code_goal")
    feature_max = {POWER: limits.get("power_code_max"), DUTY: limits.get("duty_code_max")}

    def limit(folder, key):
        return limits.get(folder, {}).get(key, default.get(key))

    boards = [measure(*b) for b in ARGS.board]

    print("| firmware (opt-level \"s\", LTO) | flash | RAM | flash limit | RAM limit |")
    print("|---|---:|---:|---:|---:|")
    for m in boards:
        f, n = m["folder"], m["name"]
        print(f"| {n}: full | {cell(m['flash'])} | {cell(m['ram'])} "
              f"| {cell(limit(f, 'flash_max'))} | {cell(limit(f, 'ram_max'))} |")
        if m["baseline_flash"] is not None:
            df = m["flash"] - m["baseline_flash"]
            dr = m["ram"] - m["baseline_ram"]
            print(f"| {n}: `no-mqtt` baseline | {cell(m['baseline_flash'])} "
                  f"| {cell(m['baseline_ram'])} | | |")
            print(f"| {n}: **driver + application** | **{cell(df)}** | **{cell(dr)}** | | |")
    print()
    print("| code (.text) by source crate, bytes | "
          + " | ".join(f"{m['name']}: full | {m['name']}: added to `no-mqtt`" for m in boards)
          + " |")
    print("|---|" + "---:|" * (2 * len(boards)))
    first = boards[0]["groups"]
    order = sorted({k for m in boards for k in m["groups"]},
                   key=lambda k: (k == RODATA, -first.get(k, 0)))
    for k in order:
        cells = []
        for m in boards:
            v = m["groups"].get(k, 0)
            b = m["base_groups"]
            cells += [str(v), "-" if b is None else f"{v - b.get(k, 0):+d}"]
        label = (f"{k} (limit {driver_max})" if k == DRIVER
                 else f"{k} (limit {supervisor_max})" if k == SUPERVISOR and supervisor_max
                 else f"{k} (limit {feature_max[k]})" if feature_max.get(k)
                 else k)
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    print("| driver + supervisor (issue 16), bytes | " + " | ".join(m["name"] for m in boards)
          + " |")
    print("|---|" + "---:|" * len(boards))
    print(f"| **driver + supervisor, feature set of 2026-11** (limit {core_max}; "
          f"goal {core_goal}) | " + " | ".join(f"**{core_code(m)}**" for m in boards) + " |")
    for k, what in ((POWER, "power commands (issue 17), apart"),
                    (DUTY, "duty cycle (issue 18), apart")):
        print(f"| {what} | " + " | ".join(str(m["groups"].get(k, 0)) for m in boards) + " |")
    print("| all of the driver's `src/` | " + " | ".join(
        str(core_code(m) + m["groups"].get(POWER, 0) + m["groups"].get(DUTY, 0))
        for m in boards) + " |")
    if core_goal:
        for m in boards:
            c = core_code(m)
            verdict = ("met" if c <= core_goal
                       else f"not met: {c - core_goal} bytes over")
            print(f"\n{m['name']}: issue 16's goal, driver + supervisor <= {core_goal} bytes "
                  f"({kib(core_goal)}) without the later features: {verdict} "
                  f"(a goal, printed; the limit is {core_max}).", end="")
        print()
    print()
    print("| RAM (symbols of the full firmware) | " + " | ".join(m["name"] for m in boards) + " |")
    print("|---|" + "---:|" * len(boards))
    print("| driver `State` in its `StaticCell` | "
          + " | ".join("-" if m["state"] is None else str(m["state"]) for m in boards) + " |")
    print("| task running driver + application (futures) | "
          + " | ".join("-" if m["task"] is None else str(m["task"]) for m in boards) + " |")

    variants = []
    for folder, feature, elf in ARGS.variant:
        board = next((m for m in boards if m["folder"] == folder), None)
        if board is None:
            raise SystemExit(f"--variant {folder}: no --board {folder}")
        vf, vr, vs = flash_ram(elf)
        vg = text_by_group(elf)
        vg[RODATA] = vs.get(".rodata", 0)
        variants.append({"board": board, "feature": feature, "flash": vf, "ram": vr,
                         "groups": vg})
    if variants:
        print()
        print("| firmware with an optional feature | flash | RAM "
              "| added to the full image: flash | RAM |")
        print("|---|---:|---:|---:|---:|")
        for v in variants:
            m = v["board"]
            print(f"| {m['name']}: `{v['feature']}` | {cell(v['flash'])} | {cell(v['ram'])} "
                  f"| **{v['flash'] - m['flash']:+d}** | **{v['ram'] - m['ram']:+d}** |")
        print()
        print("| code (.text) a feature adds, by source crate, bytes | "
              + " | ".join(f"{v['board']['name']}: `{v['feature']}`" for v in variants) + " |")
        print("|---|" + "---:|" * len(variants))
        keys = sorted({k for v in variants for k in set(v["groups"]) | set(v["board"]["groups"])},
                      key=lambda k: (k == RODATA, k))
        for k in keys:
            d = [v["groups"].get(k, 0) - v["board"]["groups"].get(k, 0) for v in variants]
            if any(d):
                print(f"| {k} | " + " | ".join(f"{x:+d}" for x in d) + " |")

    now = {m["folder"]: figures(m) for m in boards}
    for v in variants:
        now[f"{v['board']['folder']}+{v['feature']}"] = {
            "flash": v["flash"], "ram": v["ram"],
            "added_flash": v["flash"] - v["board"]["flash"],
            "added_ram": v["ram"] - v["board"]["ram"],
        }
    if RECORDED.exists():
        rec = json.loads(RECORDED.read_text())
        old = rec.get("boards", {})
        rows = []
        for folder in sorted(set(old) | set(now)):
            o, n = old.get(folder, {}), now.get(folder, {})
            for key in sorted(set(o) | set(n)):
                a, b = o.get(key), n.get(key)
                if a != b:
                    diff = f"{b - a:+d}" if a is not None and b is not None else "-"
                    rows.append(f"| {folder} | {key} | {a if a is not None else 'new'} "
                                f"| {b if b is not None else 'gone'} | {diff} |")
        print(f"\nCompared with .ci/recorded/footprint.json ({rec.get('date', '?')}, "
              f"{rec.get('toolchain', '?')}; information, not a check): ", end="")
        if not rows:
            print("no change.")
        else:
            print(f"{len(rows)} changed.\n")
            print("| board | figure (bytes) | recorded | now | difference |")
            print("|---|---|---:|---:|---:|")
            print("\n".join(rows))
    if ARGS.record:
        RECORDED.parent.mkdir(exist_ok=True)
        RECORDED.write_text(json.dumps({
            "date": datetime.date.today().isoformat(),
            "toolchain": toolchain(),
            "profile": "release: opt-level \"s\", LTO, codegen-units 1, DEFMT_LOG=info",
            "boards": now,
        }, indent=2) + "\n")
        print(f"\nrecorded in {RECORDED.relative_to(ROOT)}")

    failures = []
    for m in boards:
        f, n = m["folder"], m["name"]
        drv = m["groups"].get(DRIVER, 0)
        if drv == 0:
            failures.append(f"{n}: no code attributed to the driver: the measurement is broken")
        elif drv > driver_max:
            failures.append(f"{n}: the driver's code is {drv} bytes, over the limit of {driver_max}")
        sup = m["groups"].get(SUPERVISOR, 0)
        if supervisor_max and sup > supervisor_max:
            failures.append(f"{n}: the supervisor's code is {sup} bytes, over the limit of "
                            f"{supervisor_max}")
        if core_max and core_code(m) > core_max:
            failures.append(f"{n}: driver + supervisor (without the power commands and the "
                            f"duty cycle) is {core_code(m)} bytes, over the limit of {core_max}")
        for k, lim in feature_max.items():
            v = m["groups"].get(k, 0)
            if lim and v > lim:
                failures.append(f"{n}: {k} is {v} bytes, over the limit of {lim}")
        for key, what in (("flash", "flash"), ("ram", "RAM")):
            lim = limit(f, f"{key}_max")
            if lim is None:
                failures.append(f"{n}: no {what} limit in [firmware.{f}] or [firmware.default]")
            elif m[key] > lim:
                failures.append(f"{n}: {what} is {m[key]} bytes, over the limit of {lim}")
    def variant_limit(v, key):
        # [firmware."<folder>+<feature>"], else the board's limits.
        f = v["board"]["folder"]
        return limits.get(f"{f}+{v['feature']}", {}).get(f"{key}_max", limit(f, f"{key}_max"))

    for v in variants:
        n = f"{v['board']['name']} with `{v['feature']}`"
        for key, what in (("flash", "flash"), ("ram", "RAM")):
            lim = variant_limit(v, key)
            if lim is not None and v[key] > lim:
                failures.append(f"{n}: {what} is {v[key]} bytes, over the limit of {lim}")
    print()
    if failures:
        for msg in failures:
            print(f"footprint: FAIL: {msg} (.ci/limits.toml)")
        sys.exit(1)
    print(f"footprint: within the limits of .ci/limits.toml: the driver's code <= {driver_max} "
          f"bytes, its supervisor's <= {supervisor_max}, both <= {core_max}; " + "; ".join(f"{m['name']} flash <= {limit(m['folder'], 'flash_max')}, "
                                  f"RAM <= {limit(m['folder'], 'ram_max')}" for m in boards)
          + "".join(f"; {v['board']['name']} with `{v['feature']}` flash <= "
                    f"{variant_limit(v, 'flash')}, RAM <= {variant_limit(v, 'ram')}"
                    for v in variants))


main()
