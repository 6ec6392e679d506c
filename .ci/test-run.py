#!/usr/bin/env python3
"""Runs a workspace's test programs side by side, as `cargo test` would one
after another (`.ci/run`'s test steps).

    .ci/test-run.py [-j N] -- CARGO-TEST-ARGUMENTS...

builds with `cargo test --no-run --message-format=json ARGUMENTS` (so exactly
the programs `cargo test ARGUMENTS` would run), then runs each test program
as cargo does: in its package's folder, with cargo's CARGO_MANIFEST_DIR,
CARGO_PKG_NAME and CARGO_PKG_VERSION. N programs at a time (default 3),
the slowest known first. Each program's output is printed whole when it
ends, under cargo's `Running` line, with its wall time; the exit status is
1 if any program failed (they are listed at the end). Doc tests are not run
here: `cargo test --doc` runs them.

Why: most of `cargo test`'s wall time on two cores is test programs that
wait (for the simulator's and the broker's timers, for real sockets), one
after another; side by side they wait together. Each program keeps its own
test threads, so a program sees no more load than when two of its own tests
run at once.
"""
import json
import os
import subprocess
import sys
import threading
import time

# Programs that take longest (seconds on two idle cores, 2026-12-07): started
# first, so that the last one to end is not a long one started late.
SLOW_FIRST = [
    "duty_cycle", "supervisor", "broker_model", "supervisor_soak",
    "robustness", "stdin", "transcripts", "supervisor_fake", "power",
    "supervisor_prop", "faults", "mqtt", "cli",
]


def main():
    args = sys.argv[1:]
    jobs = 3
    if args[:1] == ["-j"]:
        jobs = int(args[1])
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    cargo = os.environ.get("CARGO", "cargo")
    build = subprocess.run(
        [cargo, "test", "--no-run", "--message-format=json-render-diagnostics", *args],
        stdout=subprocess.PIPE, text=True)
    if build.returncode != 0:
        sys.exit(build.returncode)
    programs = []
    for line in build.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg.get("profile", {}).get("test"):
            continue
        # package_id: "path+file:///.../cli#bc26-cli@0.1.0" (or an older form)
        manifest = msg["manifest_path"]
        pkg = msg["package_id"]
        name, version = "", ""
        if "#" in pkg:
            tail = pkg.rsplit("#", 1)[1]
            if "@" in tail:
                name, version = tail.split("@", 1)
            else:
                version = tail
        target = msg["target"]
        if not name:
            name = os.path.basename(os.path.dirname(manifest))
        programs.append({
            "exe": msg["executable"],
            "dir": os.path.dirname(manifest),
            "manifest": manifest,
            "name": name,
            "version": version,
            "src": os.path.relpath(target["src_path"], os.path.dirname(manifest)),
            "test": target["name"],
            "kind": target["kind"],
        })

    def rank(p):
        t = p["test"] if "test" in p["kind"] else ""
        return SLOW_FIRST.index(t) if t in SLOW_FIRST else len(SLOW_FIRST)

    queue = sorted(programs, key=rank)
    lock = threading.Lock()
    failed = []
    start = time.monotonic()

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                p = queue.pop(0)
            env = dict(os.environ)
            env.update({
                "CARGO_MANIFEST_DIR": p["dir"],
                "CARGO_MANIFEST_PATH": p["manifest"],
                "CARGO_PKG_NAME": p["name"],
                "CARGO_PKG_VERSION": p["version"],
            })
            t0 = time.monotonic()
            r = subprocess.run([p["exe"]], cwd=p["dir"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            dt = time.monotonic() - t0
            kind = "unittests" if "lib" in p["kind"] or "bin" in p["kind"] else ""
            head = f"     Running {kind + ' ' if kind else ''}{p['src']} ({p['name']}; {os.path.relpath(p['exe'])})"
            with lock:
                sys.stdout.write(f"\n{head}\n")
                sys.stdout.write(r.stdout.decode("utf-8", "replace"))
                sys.stdout.write(f"     ({dt:.1f} s, exit {r.returncode})\n")
                sys.stdout.flush()
                if r.returncode != 0:
                    failed.append(f"{p['name']} {p['src']} (exit {r.returncode})")

    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"\n{len(programs)} test programs, {jobs} at a time, in {time.monotonic() - start:.1f} s")
    if failed:
        print("FAILED:\n  " + "\n  ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    main()
