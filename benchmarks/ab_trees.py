"""One training step of a book network, timed for two source trees of scratchdl in turn.

Each measurement is a fresh process that imports scratchdl from ``TREE/src``, warms up, and
times Adam steps on one fixed batch of 100 for ``--seconds``; the trees alternate process by
process over ``--rounds`` rounds, so that the machine's drift from minute to minute falls on
both. Prints each process's median and, per tree, the median of the medians with the range.

    python benchmarks/ab_trees.py OLD_TREE NEW_TREE [--net simple|deep] [--rounds 6]

For example, the code of an earlier commit: ``git archive COMMIT | tar -x -C /tmp/before``.
Set ``SCRATCHDL_CONV`` or ``SCRATCHDL_NUM_THREADS`` in the environment to time one setting.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CHILD = """
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[1] + "/src")
from scratchdl import Adam, DeepConvNet, SimpleConvNet
net = {"simple": SimpleConvNet, "deep": DeepConvNet}[sys.argv[2]](rng=0)
rng = np.random.default_rng(0)
x, t = rng.random((100, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 100)
opt = Adam(lr=0.001)
for _ in range(5):
    opt.update(net.params, net.gradient(x, t))
times, end = [], time.perf_counter() + float(sys.argv[3])
while time.perf_counter() < end:
    start = time.perf_counter()
    opt.update(net.params, net.gradient(x, t))
    times.append(time.perf_counter() - start)
print(np.median(times) * 1e3)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trees", nargs=2, help="two folders that each hold src/scratchdl")
    p.add_argument("--net", choices=("simple", "deep"), default="simple")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=1.5, help="timed per process")
    args = p.parse_args()
    found: dict[str, list[float]] = {tree: [] for tree in args.trees}
    for r in range(args.rounds):
        for tree in args.trees if r % 2 == 0 else reversed(args.trees):
            cmd = [sys.executable, "-c", CHILD, tree, args.net, str(args.seconds)]
            ms = float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
            found[tree].append(ms)
            print(f"round {r + 1}: {tree}: {ms:.2f} ms", flush=True)
    for tree, ms in found.items():
        print(
            f"{tree}: {args.net} step {statistics.median(ms):.2f} ms "
            f"[{min(ms):.2f}-{max(ms):.2f}] over {len(ms)} processes"
        )


if __name__ == "__main__":
    main()
