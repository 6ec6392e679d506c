#!/usr/bin/env python3
"""The bytes of a future, as a tree, from rustc's -Zprint-type-sizes.

    python3 examples/qemu/tools/futures.py TYPE-SIZES.txt [--root SUBSTRING] [--depth N] [--min BYTES]

(`examples/qemu/tools/llvm-report.sh type-sizes` makes TYPE-SIZES.txt for an
image.) Without --root: the largest `{async fn body of ...}` (the task's
future). An async fn's future is as large as its largest suspension point
(variant): the tree follows that variant's locals, and into the futures it
awaits (`__awaitee`) and the fields of selects (`Select3` .a .b .c, by the
type arguments). Fields under --min bytes (default 24) are left out.
"""

import argparse
import re
import sys

TYPE = re.compile(r"^print-type-size type: `(.*)`: (\d+) bytes")
VARIANT = re.compile(r"^print-type-size\s+variant `(.*)`: (\d+) bytes")
FIELD = re.compile(r"^print-type-size\s+(?:field|local|upvar) `\.?(.*?)`: (\d+) bytes(?:.*type: (.*))?$")


def norm(name):
    """A type name without module paths and lifetimes, to match the
    abbreviated names of awaited futures."""
    name = re.sub(r"\b[a-z_][a-z0-9_]*::", "", name)
    return name.replace("'_, ", "").replace("<'_>", "").replace("'_", "").replace(" ", "")


def parse(path):
    types = {}
    cur = None
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        m = TYPE.match(line)
        if m:
            cur = {"name": m.group(1), "size": int(m.group(2)), "variants": [], "fields": []}
            types.setdefault(m.group(1), cur)
            continue
        if cur is None:
            continue
        m = VARIANT.match(line)
        if m:
            cur["variants"].append({"name": m.group(1), "size": int(m.group(2)), "fields": []})
            continue
        m = FIELD.match(line)
        if m:
            f = (m.group(1), int(m.group(2)), (m.group(3) or "").strip())
            (cur["variants"][-1]["fields"] if cur["variants"] else cur["fields"]).append(f)
    by_norm = {}
    for t in types.values():
        by_norm.setdefault(norm(t["name"]), t)
    return types, by_norm


def type_args(name):
    """The top-level type arguments of `Name<A, B, C>`."""
    i = name.find("<")
    if i < 0:
        return []
    depth, start, out = 0, i + 1, []
    for j in range(i, len(name)):
        c = name[j]
        if c in "<([{":
            depth += 1
        elif c in ">)]}":
            depth -= 1
            if depth == 0:
                out.append(name[start:j].strip())
                break
        elif c == "," and depth == 1:
            out.append(name[start:j].strip())
            start = j + 1
    return out


def show(types, by_norm, name, label, size, depth, max_depth, min_bytes, seen):
    pad = "  " * depth
    t = types.get(name) or by_norm.get(norm(name)) if name else None
    shown = re.sub(r"\b[a-z_][a-z0-9_]*::", "", name) if name else ""
    if len(shown) > 110:
        shown = shown[:107] + "..."
    print(f"{pad}{size:6}  {label}{': ' + shown if shown else ''}")
    if t is None or depth >= max_depth or t["name"] in seen:
        return
    seen = seen | {t["name"]}
    fields = t["fields"]
    if t["variants"]:
        # The variant whose fields take the most (all are padded to the
        # same size).
        v = max(t["variants"], key=lambda v: sum(f[1] for f in v["fields"]))
        if len(t["variants"]) > 1:
            print(f"{pad}  (largest variant: {v['name']}, {v['size']} bytes)")
        fields = v["fields"]
    args = type_args(t["name"])
    for fname, fsize, ftype in sorted(fields, key=lambda f: -f[1]):
        if fsize < min_bytes:
            continue
        if not ftype and re.fullmatch(r"[a-e]", fname) and args:
            k = ord(fname) - ord("a")
            ftype = args[k] if k < len(args) else ""
        if not ftype and fname in ("inner", "value", "0", "futures") and args:
            ftype = args[0]
        if not ftype and fsize >= 64:
            # A local whose type rustc does not print (a pinned future):
            # the one async fn body of that size, if there is one.
            same = {u["name"] for u in types.values() if u["size"] == fsize and u["name"].startswith("{async fn body of")}
            if len(same) == 1:
                ftype = same.pop()
                fname += " (by size)"
        show(types, by_norm, ftype, "." + fname, fsize, depth + 1, max_depth, min_bytes, seen)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes")
    ap.add_argument("--root")
    ap.add_argument("--depth", type=int, default=9)
    ap.add_argument("--min", type=int, default=24)
    a = ap.parse_args()
    types, by_norm = parse(a.sizes)
    if a.root:
        cands = [t for t in types.values() if a.root in t["name"]]
    else:
        cands = [t for t in types.values() if t["name"].startswith("{async fn body of")]
    if not cands:
        sys.exit("no such type")
    root = max(cands, key=lambda t: t["size"])
    show(types, by_norm, root["name"], "", root["size"], 0, a.depth, a.min, frozenset())


if __name__ == "__main__":
    main()
