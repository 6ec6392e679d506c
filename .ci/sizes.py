#!/usr/bin/env python3
"""Memory report of the driver, from the compiler's -Zprint-type-sizes output.

Usage: sizes.py PRINT_TYPE_SIZES_OUTPUT [--record]

Prints a markdown table: the default `State` and the future of every public
async fn of the driver, found by their paths (any type of the crate's own
modules; an async fn is public when the sources declare it `pub async fn`),
so that new or renamed handles and methods are reported without editing this
script (the driver is generic over its lock: src/size_probe.rs, built with
`--cfg bc26_type_sizes`, creates each public future; a `pub async fn` missing
from the report fails). Then the difference from the sizes recorded in
.ci/recorded/memory.json (information only), then the limits of
.ci/limits.toml [memory]: exits 1 if one is exceeded, or if the output holds
no `State` or no public future (a broken measurement must not pass).

--record writes the measured sizes to .ci/recorded/memory.json.
"""
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
# BC26_LIMITS: another limits file (to see a limit fail, for instance).
LIMITS = pathlib.Path(os.environ.get("BC26_LIMITS", ROOT / ".ci" / "limits.toml"))
RECORDED = ROOT / ".ci" / "recorded" / "memory.json"
TARGET = "thumbv7em-none-eabihf"


def local_modules():
    """The crate's top-level modules, from the source tree."""
    mods = {p.stem for p in SRC.glob("*.rs") if p.stem != "lib"}
    mods |= {p.name for p in SRC.iterdir() if p.is_dir()}
    return mods


# Modules that exist only with an optional feature the report does not build:
# their futures are measured by their own tests (the flash outbox's:
# tests/flash_outbox.rs, `FlashOutbox`'s futures against their bounds).
FEATURE_ONLY = {"durable.rs"}


def public_async_fns():
    names = set()
    for p in SRC.rglob("*.rs"):
        if p.name in FEATURE_ONLY:
            continue
        names |= set(re.findall(r"\bpub\s+async\s+fn\s+([A-Za-z_][A-Za-z0-9_]*)", p.read_text()))
    return names


def split_path(path):
    """Splits a type path at `::` outside of <...>."""
    parts, depth, cur, i = [], 0, "", 0
    while i < len(path):
        c = path[i]
        if c == "<":
            depth += 1
        elif c == ">":
            depth -= 1
        if depth == 0 and path.startswith("::", i):
            parts.append(cur)
            cur, i = "", i + 2
            continue
        cur += c
        i += 1
    parts.append(cur)
    return parts


def strip_generics(segment):
    i = segment.find("<")
    return segment if i <= 0 else segment[:i]


def owner_of(segment):
    """The type an impl segment belongs to: `<impl state::Core<'_>>`,
    `<client::Foo as Trait>` or a plain `Foo<'_>`; returns (first module, type)."""
    if segment.startswith("<"):
        inner = segment[1:-1]
        if inner.startswith("impl "):
            inner = inner[5:]
            if " for " in inner:
                inner = inner.split(" for ", 1)[1]
        elif " as " in inner:
            inner = inner.split(" as ", 1)[0]
        parts = split_path(inner.strip())
        return parts[0] if len(parts) > 1 else None, strip_generics(parts[-1])
    return None, strip_generics(segment)


def parse(text, modules, public):
    state = {}
    futures, internal = {}, {}
    line_re = re.compile(r"^print-type-size type: `(.+)`: (\d+) bytes")
    for line in text.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        name, size = m.group(1), int(m.group(2))
        body = re.fullmatch(r"\{async fn body of (.+)\(\)\}", name)
        if body is None:
            parts = split_path(name)
            if (strip_generics(parts[-1]) == "State" and len(parts) > 1
                    and parts[0] in modules):
                state[name] = max(size, state.get(name, 0))
            continue
        parts = split_path(body.group(1))
        method = strip_generics(parts[-1])
        if len(parts) == 1:
            first, label = None, f"{method}()"  # a free fn at the crate root
        else:
            owner_module, owner = owner_of(parts[-2])
            first = parts[0] if not parts[0].startswith("<") else owner_module
            label = f"{owner}::{method}()"
        if first is not None and first not in modules:
            continue  # a dependency's future
        into = futures if method in public else internal
        into[label] = max(size, into.get(label, 0))
    return state, futures, internal


def toolchain():
    try:
        v = subprocess.run(["/usr/bin/rustc", "--version"], capture_output=True, text=True,
                           check=True).stdout.strip()
        return v.replace("(built from a source tarball)", "(Debian rustc-web)")
    except (OSError, subprocess.CalledProcessError):
        return "unknown rustc"


def main():
    args = sys.argv[1:]
    record = "--record" in args
    args = [a for a in args if a != "--record"]
    if len(args) != 1:
        sys.exit(__doc__)
    text = pathlib.Path(args[0]).read_text()
    public = public_async_fns()
    state, futures, internal = parse(text, local_modules(), public)
    limits = tomllib.loads(LIMITS.read_text())["memory"]
    state_max, future_max = limits["state_max"], limits["future_max"]
    tasks = set(limits.get("task_futures", []))
    task_max = limits.get("task_future_max", future_max)
    limit_of = lambda k: task_max if k in tasks else future_max

    rows = [(f"`{n.split('::')[-1]}` (default: 6 clients, 1024-byte payloads)", s)
            for n, s in sorted(state.items())]
    rows += [(f"`{label}` future", s) for label, s in sorted(futures.items())]
    print(f"| type ({TARGET}) | bytes | limit |")
    print("|---|---:|---:|")
    for label, s in rows[:len(state)]:
        print(f"| {label} | {s} | {state_max} |")
    for (label, s), k in zip(rows[len(state):], sorted(futures)):
        print(f"| {label} | {s} | {limit_of(k)} |")
    if internal:
        big = max(internal.items(), key=lambda kv: kv[1])
        print(f"\n{len(internal)} internal futures of the crate (not limited: they live inside "
              f"the public ones); the largest is `{big[0]}` ({big[1]} bytes).")

    measured = {"State": max(state.values(), default=0), **futures}
    if RECORDED.exists():
        rec = json.loads(RECORDED.read_text())
        old = rec.get("sizes", {})
        changed = [(k, old.get(k), measured.get(k)) for k in sorted(set(old) | set(measured))
                   if old.get(k) != measured.get(k)]
        print(f"\nCompared with .ci/recorded/memory.json ({rec.get('date', '?')}, "
              f"{rec.get('toolchain', '?')}; information, not a check): ", end="")
        if not changed:
            print("no change.")
        else:
            print(f"{len(changed)} changed.\n")
            print("| type | recorded | now | difference |")
            print("|---|---:|---:|---:|")
            for k, a, b in changed:
                diff = f"{b - a:+d}" if a is not None and b is not None else "-"
                print(f"| {k} | {a if a is not None else 'new'} | "
                      f"{b if b is not None else 'gone'} | {diff} |")
    if record:
        RECORDED.parent.mkdir(exist_ok=True)
        RECORDED.write_text(json.dumps({
            "date": datetime.date.today().isoformat(),
            "toolchain": toolchain(),
            "target": TARGET,
            "sizes": measured,
        }, indent=2) + "\n")
        print(f"\nrecorded in {RECORDED.relative_to(ROOT)}")

    failures = []
    measured_names = {label.split("::")[-1].rstrip("()") for label in futures}
    for name in sorted(public - measured_names):
        failures.append(f"the public `async fn {name}` is not in the report: create its "
                        f"future in src/size_probe.rs")
    if not state:
        failures.append("no `State` in the compiler's output: the measurement is broken")
    if not futures:
        failures.append("no public future in the compiler's output: the measurement is broken")
    failures += [f"`State` is {s} bytes, over the limit of {state_max}"
                 for s in state.values() if s > state_max]
    failures += [f"the `{k}` future is {s} bytes, over the limit of {limit_of(k)}"
                 for k, s in futures.items() if s > limit_of(k)]
    print()
    if failures:
        for f in failures:
            print(f"sizes: FAIL: {f} (.ci/limits.toml)")
        sys.exit(1)
    print(f"sizes: within the limits of .ci/limits.toml: `State` <= {state_max} bytes, "
          f"each of {len(futures)} public futures <= {future_max} bytes "
          f"(a task's own future <= {task_max})")


main()
