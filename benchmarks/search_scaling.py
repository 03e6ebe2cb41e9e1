"""How `scratchdl search` scales with Dask workers (issue 15).

Runs the same search (the book's: MultiLayerNet 784-[100 x 6]-10, SGD, batch 100, 50 epochs
on the first 500 MNIST training images, 20 % held out; 16 trials, seed 0) three times:

1. on an embedded LocalCluster of 1 worker process,
2. on an embedded LocalCluster of 2 worker processes,
3. on a cluster started by hand as a user would: `dask scheduler` and `dask worker
   --nworkers 2 --nthreads 1`, both on 127.0.0.1 (subprocesses of this script).

For each it reports the start-up (cluster up, workers ready), the time from the first
submit to the last result (the part that scales), the total, the speed-up over one worker,
how busy the workers were in trials (the rest is Dask's overhead and the tail), and how long
one trial took. Before and after, it measures how many of the cores are free (other work on
the machine caps the speed-up at that). It also checks that the three runs give every trial
the same result: trials are functions of (seed, index), whatever worker runs them.

    python benchmarks/search_scaling.py            # full MNIST (fetched if missing)
    python benchmarks/search_scaling.py --quick    # the package's sample (the same first 500)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from scratchdl import cli
from scratchdl.cli.search import plan
from scratchdl.search.engine import connect, run_trials
from scratchdl.search.space import sample_trials
from scratchdl.search.trial import load_split

DASK = Path(sys.executable).with_name("dask")


def timed_search(recipe, space, seed: int, trials: int, *, scheduler=None, workers=None) -> dict:
    records: list[dict] = []
    start = time.perf_counter()
    with connect(scheduler, workers, timeout=60) as client:
        if workers:
            client.wait_for_workers(workers, timeout=60)
        ready = time.perf_counter()
        todo = list(enumerate(sample_trials(space, seed, trials)))
        run_trials(client, recipe, seed, todo, records.append, progress=False)
        done = time.perf_counter()
    return {
        "startup_s": ready - start,
        "trials_s": done - ready,
        "total_s": time.perf_counter() - start,
        "workers": sorted({r["worker"] for r in records}),
        "results": {r["trial"]: r["val_acc_curve"] for r in records},
        "trial_seconds": sorted(r["seconds"] for r in records),
    }


SPIN = (
    "import time; t = time.perf_counter(); sum(range(30_000_000)); print(time.perf_counter() - t)"
)


def free_cores() -> float:
    """How many cores are free now, as 2 x (one process's time alone) / (its time with a
    second one beside it): 2.0 on a quiet 2-core machine, about 1.0 when other work holds a
    core. The speed-up of 2 workers can be no more than this."""
    alone = float(
        subprocess.run(
            [sys.executable, "-c", SPIN], capture_output=True, text=True, check=True
        ).stdout
    )
    pair = [
        subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    together = max(float(p.communicate()[0]) for p in pair)
    return 2 * alone / together


def external_cluster(folder: Path, workers: int):
    """Start `dask scheduler` and `dask worker` on 127.0.0.1; return (address, processes)."""
    scheduler_file = folder / "scheduler.json"
    common = ["--no-dashboard", "--scheduler-file", str(scheduler_file)]
    log = open(folder / "cluster.log", "w")  # noqa: SIM115 (closed with the processes)
    scheduler = subprocess.Popen(
        [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", *common],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not scheduler_file.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no scheduler after 60 s; see {folder / 'cluster.log'}")
        time.sleep(0.1)
    worker = subprocess.Popen(
        [
            str(DASK),
            "worker",
            "--nworkers",
            str(workers),
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            *common,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return json.loads(scheduler_file.read_text())["address"], [worker, scheduler]


def stop(processes) -> None:
    for proc in processes:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # what a nanny started, too
        except ProcessLookupError:
            pass
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the package's MNIST sample")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    command = ["search", "--epochs", str(args.epochs), "--seed", str(args.seed)]
    command += ["--set", "train_size=500", "--set", "batch_size=100"]  # the book's, even quick
    if args.quick:
        command.append("--quick")
    recipe, space, _, settings = plan(cli.make_parser().parse_args(command))
    load_split(recipe.data)  # fetched once, before any worker wants it
    load = os.getloadavg()
    free = free_cores()
    print(
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, free cores {free:.2f}; "
        f"{platform.platform()}"
    )
    print(f"settings: {json.dumps(settings)}; {args.trials} trials")
    runs = {}
    for n in (1, 2):
        runs[f"embedded, {n} worker{'s' if n > 1 else ''}"] = timed_search(
            recipe, space, args.seed, args.trials, workers=n
        )
    with tempfile.TemporaryDirectory() as tmp:
        address, processes = external_cluster(Path(tmp), 2)
        try:
            runs["dask scheduler + dask worker (2 processes), loopback"] = timed_search(
                recipe, space, args.seed, args.trials, scheduler=address, workers=2
            )
        finally:
            stop(processes)
    base = runs["embedded, 1 worker"]
    print(
        f"{'run':<52} {'start-up':>9} {'trials':>8} {'total':>8} {'speed-up (total)':>18} "
        f"{'busy':>6} {'one trial':>12}"
    )
    for name, r in runs.items():
        seconds = r["trial_seconds"]
        # the workers' share of the trials phase spent in trials: what Dask's overhead leaves
        busy = sum(seconds) / (len(r["workers"]) * r["trials_s"])
        print(
            f"{name:<52} {r['startup_s']:8.1f}s {r['trials_s']:7.1f}s {r['total_s']:7.1f}s "
            f"{base['trials_s'] / r['trials_s']:7.2f}x ({base['total_s'] / r['total_s']:4.2f}x) "
            f"{busy:6.0%} {seconds[0]:5.2f}-{seconds[-1]:.2f}s"
        )
    same = all(r["results"] == base["results"] for r in runs.values())
    print(f"every trial's validation curve the same in the three runs: {same}")
    after = free_cores()
    print(f"free cores after: {after:.2f}; load average {os.getloadavg()[0]:.2f}")
    if args.json:
        numbers = {k: {x: v for x, v in r.items() if x != "results"} for k, r in runs.items()}
        args.json.write_text(
            json.dumps(
                {"load": load, "free_cores": [free, after], "runs": numbers, "same": same}, indent=1
            )
        )


if __name__ == "__main__":
    main()
