#!/usr/bin/env python3
"""Fault injection: kill summit-rs runs at chosen system calls, resume, compare byte for byte.

Each case runs an example under strace, which sends SIGKILL at the N-th call of a chosen
system call (`-e inject=SYSCALLS:signal=KILL:when=N`, counted per thread, optionally only
calls on one path with -P): during the pass (the checkpoint's writes, syncs and renames), the
export (the output's files, the manifest, the swap into place), a `--force` rerun over a
previous output, and a merge of shards. After each kill the script checks what is on disk,
then runs the same command again (no strace) and compares the result with an uninterrupted
run of the same command, file by file, byte for byte (timing fields excepted: `seconds`,
`timings`, `created_unix`).

A case passes when
  - after the kill, the output directory is absent, or is the previous output unchanged, or is
    the new output complete and equal to the uninterrupted run's (never anything else), and
  - the rerun exits 0 and its output equals the uninterrupted run's, with nothing left beside
    it (no staging directory, no temporary file, no checkpoint temporary).

    python3 scripts/fault_inject.py [--bin target/release/examples] [--table docs/x.md]

Needs strace and the release examples (`cargo build --release --examples`). Exits 1 when a
case fails, printing the table either way.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# timings, and the checkpoint path (each case has its own) recorded with the configuration
VOLATILE = {"seconds", "timings", "created_unix", "checkpoint"}
JS_WRAPPED = {"view/images.js", "view/featvis.js"}
JSON_TIMED = {"manifest.json", "images.json", "feature-vis.json"}
LIMIT = "1280"


def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in VOLATILE}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v


def content(path: Path, rel: str):
    data = path.read_bytes()
    if rel in JSON_TIMED:
        return strip(json.loads(data))
    if rel in JS_WRAPPED:
        text = data.decode()
        start, end = text.index("(") + 1, text.rindex(")")
        return (text[:start], strip(json.loads(text[start:end])))
    return data


def tree(d: Path):
    return {
        str(p.relative_to(d)): content(p, str(p.relative_to(d)))
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def raw_tree(d: Path):
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def where(x, y, path=""):
    """The first JSON path where x and y differ."""
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(set(x) | set(y)):
            if x.get(k) != y.get(k):
                return where(x.get(k), y.get(k), f"{path}.{k}")
    if isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        for i, (u, v) in enumerate(zip(x, y)):
            if u != v:
                return where(u, v, f"{path}[{i}]")
    return path or "bytes"


def first_difference(a: dict, b: dict) -> str:
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        return f"files differ: {only[:3]}"
    for k in a:
        if a[k] != b[k]:
            return f"{k} differs at {where(a[k], b[k])}"
    return ""


def leftovers(parent: Path, name: str):
    """Staging or retired directories beside the output, temporaries inside it or beside the
    checkpoint."""
    found = [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.summit-")]
    found += [p.name for p in parent.iterdir() if ".summit-tmp-" in p.name]
    out = parent / name
    if out.is_dir():
        found += [
            str(p.relative_to(out)) for p in out.rglob("*")
            if ".summit-tmp-" in p.name or p.name.startswith(".tmp")
        ]
    return found


class Runner:
    def __init__(self, bins: Path, work: Path):
        self.bins = bins
        self.work = work

    def fashion(self, out: Path, ck, limit=LIMIT, force=False):
        cmd = [
            str(self.bins / "fashion_mnist"), "--out", str(out), "--limit", limit,
            "--embedding", "pca", "--batch-size", "64",
            "--attribution", "grad-cam", "--attribution-per-class", "2",
            "--feature-vis", "vertices", "--feature-vis-steps", "4",
            "--feature-vis-channels", "6", "--feature-vis-cache", "off",
        ]
        if ck is not None:
            cmd += ["--checkpoint", str(ck), "--checkpoint-every", "2"]
        if force:
            cmd.append("--force")
        return cmd

    def run(self, cmd, inject=None):
        env = dict(os.environ, RAYON_NUM_THREADS="2")
        if inject is not None:
            cmd = ["strace", "-f", "-qq", "-o", "/dev/null"] + inject + ["--"] + cmd
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stdout = p.stdout.decode(errors="replace")
        return p.returncode, p.stderr.decode(errors="replace")


def inject(syscalls: str, when: int, signal="KILL"):
    return ["-e", f"trace={syscalls}", "-e", f"inject={syscalls}:signal={signal}:when={when}"]




def renames_until(cmd, name, scratch: Path, syscall="renameat") -> int:
    """In an uninterrupted run of `cmd` under strace, the number of `syscall` calls its thread
    had made when it renamed a file onto `name` (counted per thread and syscall, as strace's
    injection counts); with `name` None, the number of the thread's last call."""
    trace = scratch / "trace"
    subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", f"trace={syscall}", "-o", str(trace), "--", *cmd],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    per_tid = {}
    for line in trace.read_text().splitlines():
        if "resumed>" in line:
            continue  # the second half of a call another thread's call interrupted
        tid = line.split()[0]
        per_tid[tid] = per_tid.get(tid, 0) + 1
        if name is not None and name in line:
            return per_tid[tid]
        last = per_tid[tid]
    if name is None and per_tid:
        return last
    raise SystemExit(f"no {syscall} onto {name} in {trace}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", type=Path, default=ROOT / "target/release/examples")
    ap.add_argument("--table", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args()
    if shutil.which("strace") is None:
        sys.exit("strace is missing (Debian: apt-get install strace)")
    for b in ["fashion_mnist", "merge_shards"]:
        if not (args.bin / b).exists():
            sys.exit(f"{args.bin / b} is missing: cargo build --release --examples")

    work = Path(tempfile.mkdtemp(prefix="summit-faults-"))
    r = Runner(args.bin, work)
    # the references: one uninterrupted run; the previous output a --force run replaces
    ref = work / "ref"
    code, err = r.run(r.fashion(ref, None))
    assert code == 0, err
    reference = tree(ref)
    old_ref = work / "old-ref"
    code, err = r.run(r.fashion(old_ref, None, limit="640"))
    assert code == 0, err

    # shards and their merge
    shards = []
    for i in range(2):
        d = work / f"shard{i}"
        code, err = r.run([
            str(args.bin / "fashion_mnist"), "--out", str(d), "--shard", f"{i}/2",
            "--embedding", "pca", "--attribution", "off", "--feature-vis", "off"])
        assert code == 0, err
        shards.append(d)
    merged_ref = work / "merged-ref"
    code, err = r.run([str(args.bin / "merge_shards"), "--out", str(merged_ref), *map(str, shards)])
    assert code == 0, err
    merged_reference = tree(merged_ref)

    # renameat is how every atomic write of the run commits (the checkpoint's first, then the
    # output's files, the manifest last); renameat2 moves the finished output into place
    # (RENAME_NOREPLACE) or swaps it with a previous one (RENAME_EXCHANGE); unlinkat removes the
    # previous one.
    manifest_at = renames_until(r.fashion(work / "probe", None), "manifest.json", work)
    merge_manifest_at = renames_until(
        [str(args.bin / "merge_shards"), "--out", str(work / "probe-merge"), *map(str, shards)],
        "manifest.json", work)
    cases = []
    # (name, where, kind, strace arguments, over a previous output?)
    for n in [1, 2, 3]:
        cases.append((f"renameat #{n}", "pass: a checkpoint's rename", "ck",
                      inject("renameat", n), False))
    for n in [1, 4]:
        cases.append((f"fsync #{n}", "pass: a checkpoint's sync", "ck", inject("fsync", n), False))
    for n in [1, 6, 40]:
        cases.append((f"write #{n}", "pass: a checkpoint's bytes", "ck", inject("write", n), False))
    for sig in ["INT", "TERM"]:
        cases.append((f"SIG{sig} at renameat #3", "pass: interrupted, exits 130", "ck",
                      inject("renameat", 3, sig), False))
    for n in sorted({15, manifest_at // 8, manifest_at // 2, manifest_at - 1}):
        cases.append((f"renameat #{n}", "export: the output's files", None,
                      inject("renameat", n), False))
    cases.append((f"renameat #{manifest_at}", "export: the manifest", None,
                  inject("renameat", manifest_at), False))
    cases.append(("renameat2 #1", "export: moving the output into place", None,
                  inject("renameat2", 1), False))
    for n in [1, 40]:
        cases.append((f"mkdir #{n}", "export: directories", None, inject("mkdir", n), False))
    for n in [300, manifest_at]:
        cases.append((f"--force, renameat #{n}", "export over a previous output", None,
                      inject("renameat", n), True))
    cases.append(("--force, unlink #1", "the writability probe", None, inject("unlink", 1), True))
    cases.append(("--force, renameat2 #1", "the swap (RENAME_EXCHANGE)", None,
                  inject("renameat2", 1), True))
    for n in [1, 1000]:
        cases.append((f"--force, unlinkat #{n}", "removing the previous output", None,
                      inject("unlinkat", n), True))
    for n in sorted({5, merge_manifest_at // 2, merge_manifest_at}):
        cases.append((f"merge, renameat #{n}", "merge_shards' export", "merge",
                      inject("renameat", n), False))
    cases.append(("merge, renameat2 #1", "merge_shards: moving the output into place", "merge",
                  inject("renameat2", 1), False))

    rows = []
    failed = 0
    for i, (name, phase, kind, inj, previous) in enumerate(cases):
        case = work / f"case{i}"
        case.mkdir()
        out = case / "out"
        ck = case / "ck.bin" if kind == "ck" else None
        if previous:
            shutil.copytree(old_ref, out)
            old = raw_tree(out)
        if kind == "merge":
            cmd = [str(args.bin / "merge_shards"), "--out", str(out), *map(str, shards)]
            want = merged_reference
        else:
            cmd = r.fashion(out, ck, force=previous)
            want = reference
        code, err = r.run(cmd, inj)
        killed = code in (-9, 137)
        stopped = code == 130 and "run the same command again to resume" in err
        # what the kill left
        if not out.exists():
            state = "absent"
        elif previous and raw_tree(out) == old:
            state = "previous output, unchanged"
        elif (out / "manifest.json").exists() and not first_difference(tree(out), want):
            state = "new output, complete"
        else:
            state = "MIXED OR PARTIAL"
        # the same command again
        code2, err2 = r.run(cmd)
        resumed = next((line.split(": ", 1)[1].split(" came")[0] for line in r.stdout.splitlines()
                        if line.startswith("resumed from the checkpoint")), "")
        diff = first_difference(tree(out), want) if code2 == 0 and out.exists() else f"exit {code2}: {err2.strip()[-200:]}"
        left = leftovers(case, "out")
        if killed:
            how = "killed"
        elif stopped:
            how = "stopped: exit 130, checkpoint written"
        else:
            how = f"not reached (exit {code})"
        ok = (killed or stopped) and state != "MIXED OR PARTIAL" and not diff and not left
        failed += not ok
        rerun = ("resumed (" + resumed + " from the checkpoint), " if resumed else "") + (
            "identical" if not diff else diff)
        rows.append((name, phase, how, state, rerun, ", ".join(left) or "none",
                     "ok" if ok else "FAIL"))
        print(f"{'ok  ' if ok else 'FAIL'} {name:28} {phase:32} {rows[-1][2]:20} {state:28} {rows[-1][4]}", flush=True)

    table = ["| case | where | strace | left by the kill | rerun vs uninterrupted run | left beside | verdict |",
             "|---|---|---|---|---|---|---|"]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    text = "\n".join(table)
    print()
    print(text)
    print(f"\n{len(rows) - failed} of {len(rows)} cases ok")
    if args.table:
        args.table.write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
