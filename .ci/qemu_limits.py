#!/usr/bin/env python3
"""Compares the `qemu-figure:` lines of the QEMU tests (on standard input)
with .ci/limits.toml [qemu.<board>] (`<figure>_max`): prints every figure
with its limit and its goal ([qemu.goal.<board>], the targets of issue 16:
printed, never enforced), exits 1 if a figure exceeds its limit or a limit
names a figure no test printed.

    ... | python3 .ci/qemu_limits.py

BC26_LIMITS names another limits file (to see a limit fail, for instance).
"""

import os
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIMITS = pathlib.Path(os.environ.get("BC26_LIMITS", ROOT / ".ci" / "limits.toml"))


def main():
    figures = {}
    for line in sys.stdin:
        m = re.match(r"^qemu-figure: (\S+) (.*)$", line.strip())
        if not m:
            continue
        board = figures.setdefault(m.group(1), {})
        for kv in m.group(2).split():
            k, _, v = kv.partition("=")
            board[k] = float(v)
    qemu = tomllib.loads(LIMITS.read_text()).get("qemu", {})
    goals = qemu.get("goal", {})
    failed = []
    for board, limits in qemu.items():
        if board == "goal":
            continue
        for key, limit in limits.items():
            name = key.removesuffix("_max")
            value = figures.get(board, {}).get(name)
            goal = goals.get(board, {}).get(name)
            goal_text = "" if goal is None else f", goal {goal:g}"
            if value is None:
                failed.append(f"{board} {name}: no test printed it")
                continue
            verdict = "ok" if value <= limit else "OVER THE LIMIT"
            print(f"qemu-limits: {board} {name} = {value:g} (limit {limit:g}{goal_text}): {verdict}")
            if value > limit:
                failed.append(f"{board} {name} = {value:g} > {limit:g}")
    for f in failed:
        print(f"qemu-limits: FAIL: {f} (.ci/limits.toml)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
