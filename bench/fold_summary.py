"""Summarise py-spy raw (folded) profiles of two trees side by side: samples per process and
the functions with the most inclusive samples (each counted once per stack).

Why: ``bench_startup_stages.py --profile DIR`` leaves ``DIR/<round>-<tree>/<process>.txt``;
comparing the same process of both trees, summed over rounds, says where extra CPU goes.

Run: ``python bench/fold_summary.py DIR [--process kernel] [--top 30] [--match TEXT]``
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")


def load(path: Path, match: str | None) -> tuple[int, collections.Counter[str]]:
    total = 0
    inclusive: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        stack, count = m[1], int(m[2])
        if match and match not in stack:
            continue
        total += count
        frames = {re.sub(r":\d+\)$", ")", f) for f in stack.split(";")}
        for frame in frames:
            inclusive[frame] += count
    return total, inclusive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--process", default=None)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match", default=None, help="only stacks containing this text")
    args = parser.parse_args()
    by: dict[tuple[str, str], tuple[int, collections.Counter[str]]] = {}
    for path in sorted(args.dir.glob("*-*/*.txt")):
        tree = path.parent.name.split("-", 1)[1]
        proc = re.sub(r"\d+$", "", path.stem)
        total, inc = load(path, args.match)
        old_total, old_inc = by.get((tree, proc), (0, collections.Counter()))
        by[(tree, proc)] = (old_total + total, old_inc + inc)
    trees = sorted({t for t, _ in by})
    procs = sorted({p for _, p in by})
    for proc in procs:
        print(f"{proc}: " + ", ".join(f"{t} {by.get((t, proc), (0,))[0]} samples" for t in trees))
    for proc in procs if args.process is None else [args.process]:
        print(f"\n== {proc}: top inclusive frames (samples: " + " / ".join(trees) + ")")
        merged: collections.Counter[str] = collections.Counter()
        for t in trees:
            merged.update(by.get((t, proc), (0, collections.Counter()))[1])
        for frame, _ in merged.most_common(args.top):
            counts = [by.get((t, proc), (0, collections.Counter()))[1][frame] for t in trees]
            print("  " + " / ".join(f"{c:6d}" for c in counts) + f"  {frame[:110]}")


if __name__ == "__main__":
    main()
