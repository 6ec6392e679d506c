#!/usr/bin/env python3
"""Where a firmware image's stack goes.

    python3 examples/qemu/tools/frames.py IMAGE.elf [--top N]
    python3 examples/qemu/tools/frames.py IMAGE.elf --objects DUMP

1. Frame sizes: every function's stack in its prologue (`llvm-objdump -d`:
   `sub sp, #N`, `sub.w sp, sp, #N`, and on ARMv6-M `ldr rX, [pc, ...]` of
   a negative constant then `add sp, rX`, plus the registers it pushes),
   largest first. The deepest stack is one chain of calls, so the largest
   frame that is on the task's path (the task's poll, the futures it did
   not inline) sets most of the high-water mark.
2. `--objects DUMP`: what is in a frame. DUMP is LLVM's machine code of one
   function after stack colouring, which `examples/qemu/tools/frame-objects.sh`
   makes (it rebuilds the image's last crate with `-C llvm-args=-print-after=
   stack-coloring -filter-print-funcs=SYMBOL`): the frame objects that
   survived, largest first. Their sizes name them: match them against
   `-Zprint-type-sizes` (`examples/qemu/tools/futures.py`). (The DWARF of the
   images describes few of them: futures moved by value and other
   temporaries have no variable.)

Needs llvm-objdump (Debian's `llvm`).
"""

import argparse
import re
import subprocess


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def demangle(names):
    if not names:
        return {}
    out = subprocess.run(["llvm-cxxfilt"], input="\n".join(names), capture_output=True, text=True)
    return dict(zip(names, out.stdout.splitlines()))


def short(name, width=120):
    name = re.sub(r"::h[0-9a-f]{16}$", "", name)
    return name if len(name) <= width else name[: width - 3] + "..."


FUNC = re.compile(r"^([0-9a-f]+) <(.*)>:$")


def frames(elf):
    """(bytes, adjustment, function) for every function with a stack frame."""
    text = run("llvm-objdump", "-d", "--no-show-raw-insn", elf)
    # Literal pool words, for ARMv6-M's `ldr rX, [pc, #N]`.
    words = {}
    for line in run("llvm-objdump", "-s", "-j", ".text", elf).splitlines():
        m = re.match(r"^ ([0-9a-f]{4,8}) ((?:[0-9a-f]{8} ?){1,4})", line)
        if m:
            base = int(m.group(1), 16)
            for i, w in enumerate(m.group(2).split()):
                words[base + 4 * i] = int.from_bytes(bytes.fromhex(w), "little")
    result = []
    name, pushed, adjust, regs, seen = None, 0, 0, {}, 0

    def done():
        if name is not None and not name.startswith("$") and (adjust or pushed):
            result.append((adjust + pushed, adjust, name))

    for line in text.splitlines():
        m = FUNC.match(line)
        if m:
            if m.group(2).startswith("$"):
                continue  # mapping symbols ($t, $d) inside a function
            done()
            name, pushed, adjust, regs, seen = m.group(2), 0, 0, {}, 0
            continue
        m = re.match(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
        if not m or name is None:
            continue
        op, args = m.group(2), m.group(3)
        seen += 1
        if seen > 24:  # the prologue only
            continue
        if op in ("push", "push.w", "stmdb"):
            pushed += 4 * len(re.findall(r"\b(?:r\d+|lr)\b", args.split("{", 1)[-1]))
        elif op in ("sub", "sub.w", "subw") and args.startswith("sp"):
            n = re.search(r"#(\d+)", args)
            if n:
                adjust += int(n.group(1))
        elif op == "ldr" and "[pc" in args:
            r = args.split(",")[0].strip()
            at = re.search(r"@ 0x([0-9a-f]+)", args)
            if at and int(at.group(1), 16) in words:
                regs[r] = words[int(at.group(1), 16)]
        elif op == "add" and args.startswith("sp,"):
            r = args.split(",")[-1].strip()
            if regs.get(r, 0) >= 1 << 31:
                adjust += (1 << 32) - regs[r]
    done()
    result.sort(reverse=True)
    return result


def objects(dump):
    """LLVM's surviving frame objects of a function: (size, align, index)."""
    out = []
    for m in re.finditer(r"fi#(-?\d+): size=(\d+), align=(\d+)", open(dump).read()):
        out.append((int(m.group(2)), int(m.group(3)), int(m.group(1))))
    out.sort(reverse=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("elf")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--objects", help="LLVM's frame objects of one function (frame-objects.sh)")
    args = ap.parse_args()
    fr = frames(args.elf)
    names = demangle([n for _, _, n in fr[: args.top]])
    print(f"== largest stack frames of {args.elf} (prologue: adjustment + pushed registers)")
    for total, _, n in fr[: args.top]:
        print(f"{total:7} bytes  {short(names.get(n, n))}")
    if args.objects:
        objs = objects(args.objects)
        print(f"\n== LLVM's frame objects ({args.objects}): {sum(o[0] for o in objs)} bytes in {len(objs)}")
        for size, align, i in objs[:30]:
            print(f"{size:7} bytes  fi#{i} (align {align})")


if __name__ == "__main__":
    main()
