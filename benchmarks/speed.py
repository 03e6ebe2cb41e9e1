"""Speed and memory of scratchdl against the same networks in PyTorch (CPU), float32.

Both frameworks run the same architecture from the same initial weights on the same random
MNIST-shaped batch (100 images; 1 for "inference b1"), with the same number of threads.

Two ways of timing, both reported:
- isolated (the headline column): every measurement runs in a fresh process that imports one
  framework only, warms up, and times ``--steps`` calls; the frameworks alternate process by
  process (the order flips each round) over ``--rounds`` rounds. A cell is the median of the
  processes' medians, with their range. Two frameworks in one process share the CPUs between
  two thread pools (OpenBLAS's and PyTorch's), which skewed PyTorch's times by 2-6x.
- in-process (the second column): both frameworks in this process, alternating in rounds of
  ROUND calls, as the first release measured.
Peak memory is measured in a fresh process per framework and network.

``--conv gemm,auto`` times scratchdl once per convolution algorithm of the engine
(``$SCRATCHDL_CONV`` of its processes, engine/choice.py): a column each, their ratio to the
first, and each one's ratio to PyTorch, so that what the algorithm buys is seen beside the
rest. Without it, scratchdl runs with the current setting (``$SCRATCHDL_CONV``, else auto).
After the table, what the engine ran: each network's distinct convolution passes in one call,
counted by algorithm.
Usage: python benchmarks/speed.py [--steps 30] [--rounds 3] [--threads N] [--nets simple,deep]
                                  [--conv gemm,auto] [--markdown] [--no-in-process]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter

import numpy as np

import scratchdl
from scratchdl import Adam, DeepConvNet, SimpleConvNet, TwoLayerNet
from scratchdl.engine import choice
from scratchdl.layers import Affine, Convolution, Dropout, Pooling, Relu

BATCH = 100
MIN_SECONDS = 0.5  # of warm-up, and of timed calls, in each isolated process
PHASES = {
    "step": ("train step", BATCH),
    "infer": ("inference", BATCH),
    "infer1": ("inference b1", 1),
}
ROUND = 5  # calls of one framework before switching to the other
MEMORY_STEPS = 5  # training steps, after warm-up, of a memory-measuring process
MEMORY_RUNS = 3  # processes per framework and network; torch's peak varies by ~10% between runs
LOAD_WARNING = 0.05  # other processes' share of our CPUs above which timings mean little
PEAK_SIZE = 2048  # the numpy float32 matmul whose speed is this machine's peak
ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    choice.ENV_CONV,
)
NETS = {
    "two-layer": (lambda: TwoLayerNet(784, 50, 10, rng=0), (784,)),
    "simple": (lambda: SimpleConvNet(rng=0), (1, 28, 28)),
    "deep": (lambda: DeepConvNet(rng=0), (1, 28, 28)),
}
FLOP_RULE = (
    "FLOPs: convolutions and affines only, 2 per multiply-add; a training step is 3x the "
    "forward pass less the first layer's input gradient (not needed); Adam not counted"
)
MEMORY_RULE = (
    "memory: peak RSS (VmHWM, reset before the loop) minus RSS before the loop, in a fresh "
    "process that builds model and data, then runs {} training steps; MiB, median [range] of {}"
)


def flops(model, x: np.ndarray) -> tuple[float, float]:
    """Analytic FLOPs of (training step, inference) on the batch x; see FLOP_RULE."""
    macs = []
    for layer in model.layers:
        x = layer.forward(x, train=False)  # for the output's shape
        if isinstance(layer, Convolution):  # per output value: C * FH * FW multiply-adds
            macs.append(x.size * math.prod(layer.params["W"].shape[1:]))
        elif isinstance(layer, Affine):  # per output value: D multiply-adds
            macs.append(x.size * layer.params["W"].shape[0])
    forward = 2.0 * sum(macs)
    return 3 * forward - 2.0 * macs[0], forward


def to_torch(model):
    """The same network as a torch nn.Sequential, starting from a copy of the model's weights."""
    import torch
    from torch import nn

    modules = []
    for layer in model.layers:
        W, b = layer.params.get("W"), layer.params.get("b")
        if isinstance(layer, Convolution):
            FN, C, FH, FW = W.shape
            m = nn.Conv2d(C, FN, (FH, FW), stride=layer.stride, padding=layer.pad)
        elif isinstance(layer, Affine):
            modules.append(nn.Flatten())  # Affine flattens its input too; a view if 2-D
            m, W = nn.Linear(*W.shape), W.T  # torch stores (out, in)
        elif isinstance(layer, Relu):
            m = nn.ReLU()
        elif isinstance(layer, Pooling):
            m = nn.MaxPool2d((layer.pool_h, layer.pool_w), layer.stride, layer.pad)
        elif isinstance(layer, Dropout):
            m = nn.Dropout(layer.dropout_ratio)
        else:
            raise ValueError(f"no torch equivalent for {layer!r}; add one to to_torch()")
        if W is not None:
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(np.ascontiguousarray(W)))
                m.bias.copy_(torch.from_numpy(b))
        modules.append(m)
    return nn.Sequential(*modules)


def setup(
    net: str, framework: str, threads: int, count_flops: bool = True, batch: int = BATCH
) -> dict:
    """The training step and inference callables of one framework for one network.

    Counting FLOPs runs a forward pass (for the shapes); a memory measurement must not, or
    the buffers of that pass would count as memory held before the loop.
    """
    make, shape = NETS[net]
    rng = np.random.default_rng(0)
    x = rng.random((batch, *shape), dtype=np.float32)  # like pixel intensities in [0, 1)
    t = rng.integers(0, 10, batch)
    model = make()
    if framework == "scratchdl":
        opt = Adam(lr=1e-3)

        def step():
            opt.update(model.params, model.gradient(x, t))

        counted = flops(model, x) if count_flops else None
        return dict(step=step, infer=lambda: model.predict(x), flops=counted)
    import torch

    torch.set_num_threads(threads)
    tnet, xt, tt = to_torch(model), torch.from_numpy(x), torch.from_numpy(t)
    topt, loss_fn = torch.optim.Adam(tnet.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()

    def step():
        topt.zero_grad(set_to_none=True)
        loss_fn(tnet(xt), tt).backward()
        topt.step()

    def infer():
        with torch.no_grad():
            return tnet(xt)

    return dict(step=step, infer=infer, net=tnet)


def bench(net: str, framework: str, phase: str, threads: int) -> dict:
    """The callable of one phase (step, infer, infer1) of one framework, ready to time;
    torch's network is put in the mode of the phase."""
    b = setup(net, framework, threads, count_flops=False, batch=PHASES[phase][1])
    if framework == "torch":
        b["net"].train(phase == "step")
    return b["step" if phase == "step" else "infer"]


def timing_child(net: str, framework: str, phase: str, steps: int, warmup: int, threads: int):
    """Time one phase of one framework in this (fresh) process; print the median seconds.

    Warm-up and timing each last at least ``warmup`` / ``steps`` calls and MIN_SECONDS: a
    1 ms call is not at its steady speed after 3 calls, and 20 of them are too few for a
    median on a machine whose speed drifts by 10-30 % from one second to the next."""
    limit_blas(threads)
    fn = bench(net, framework, phase, threads)
    start, calls = time.perf_counter(), 0
    while calls < warmup or time.perf_counter() - start < MIN_SECONDS:
        fn()
        calls += 1
    times: list[float] = []
    while len(times) < steps or sum(times) < MIN_SECONDS:
        times.append(timed(fn))
    if framework == "scratchdl":
        print(f"picks: {engine_picks(fn)}")
    print(np.median(times))


def engine_picks(fn) -> str:
    """What the engine ran in one call of ``fn``: its distinct convolution passes (batch
    parts on threads count once) by algorithm, e.g. "gemm 2, F(4,3) 15".

    Recorded by wrapping ``choice.algorithm``, which ConvEngine and FusedConv ask for each
    pass, so that the answer is what ran and not a copy of the rule; put back after."""
    seen, ask = {}, choice.algorithm

    def recording(kind, W_shape, stride, out_shape, dtype, pad=0):
        m = ask(kind, W_shape, stride, out_shape, dtype, pad)
        seen[kind, tuple(W_shape), stride, pad, tuple(out_shape[1:])] = m
        return m

    choice.algorithm = recording
    try:
        fn()
    finally:
        choice.algorithm = ask
    counts = Counter("gemm" if m == choice.GEMM else f"F({m},3)" for m in seen.values())
    names = sorted(counts, key=lambda name: (name != "gemm", name))  # gemm, F(2,3), F(4,3)
    return ", ".join(f"{name} {counts[name]}" for name in names) or "no convolution"


def child_env(conv: str | None) -> dict[str, str]:
    """This process's environment, with ``$SCRATCHDL_CONV`` set to ``conv`` (None: as is)."""
    return os.environ | ({choice.ENV_CONV: conv} if conv else {})


def isolated(cells: list[tuple[str, str]], columns: dict, args) -> tuple[dict, dict]:
    """{(net, phase, column): [median seconds of each process]}, and {(net, phase, column):
    the engine's picks} for scratchdl's columns: one fresh process per measurement, the
    columns alternating process by process, the order flipped every round and from one cell
    to the next. ``columns``: label -> (framework, $SCRATCHDL_CONV or None)."""
    found: dict[tuple, list[float]] = {}
    picks: dict[tuple, str] = {}
    base = [sys.executable, __file__, f"--threads={args.threads}"]
    for r in range(args.rounds):
        for c, (net, phase) in enumerate(cells):
            for label in list(columns)[:: 1 if (r + c) % 2 == 0 else -1]:
                framework, conv = columns[label]
                spec = f"{net}:{framework}:{phase}:{args.steps}:{args.warmup}"
                run = subprocess.run(
                    [*base, f"--timing-child={spec}"],
                    capture_output=True,
                    text=True,
                    env=child_env(conv),
                )
                if run.returncode:
                    raise SystemExit(f"timing {spec} ({label}) failed:\n{run.stderr}")
                found.setdefault((net, phase, label), []).append(float(run.stdout.split()[-1]))
                for line in run.stdout.splitlines():
                    if line.startswith("picks: "):
                        picks[net, phase, label] = line.removeprefix("picks: ")
    return found, picks


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def alternate(fns: dict, steps: int, warmup: int) -> dict[str, np.ndarray]:
    """Seconds per call of each function, timed in alternating rounds after warm-up."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(math.ceil(steps / ROUND)):
        for name in list(fns)[:: 1 if r % 2 == 0 else -1]:
            times[name] += [timed(fns[name]) for _ in range(min(ROUND, steps - len(times[name])))]
    return {name: np.array(ts) for name, ts in times.items()}


def matmul_peak(reps: int = 7) -> float:
    """Median GFLOP/s of a PEAK_SIZE x PEAK_SIZE float32 matmul in numpy."""
    a, b = (np.random.default_rng(i).random((PEAK_SIZE,) * 2, dtype=np.float32) for i in (1, 2))
    a @ b  # warm-up: threads started, pages touched
    return 2 * PEAK_SIZE**3 / np.median([timed(lambda: a @ b) for _ in range(reps)]) / 1e9


def memory_child(net: str, framework: str, steps: int, threads: int) -> None:
    """Print the training loop's peak RSS growth in MiB; run in a fresh process."""
    limit_blas(threads)
    step = setup(net, framework, threads, count_flops=False)["step"]

    def vm(key: str) -> int:  # kB, from the kernel's own accounting
        return int(re.search(rf"Vm{key}:\s+(\d+)", open("/proc/self/status").read()).group(1))

    before = vm("RSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass  # then VmHWM may hold a peak of the imports: an upper bound
    for _ in range(steps):
        step()
    print((vm("HWM") - before) / 1024)


def memory_row(net: str, columns: dict, args) -> list[str]:
    """Training peak memory of each column: median [range] of MEMORY_RUNS fresh processes,
    then each scratchdl column's ratio to torch's."""
    base = [sys.executable, __file__, f"--threads={args.threads}"]
    cells, medians = [net], {}
    for label, (framework, conv) in columns.items():
        cmd = [*base, f"--memory-child={net}:{framework}:{args.warmup + MEMORY_STEPS}"]
        runs = [
            subprocess.run(cmd, capture_output=True, text=True, env=child_env(conv))
            for _ in range(MEMORY_RUNS)
        ]
        for run in (r for r in runs if r.returncode):
            print(f"memory of {net} in {label} not measured:\n{run.stderr}", file=sys.stderr)
        mib = [float(r.stdout.split()[-1]) if r.returncode == 0 else math.nan for r in runs]
        medians[label] = np.median(mib)
        cells.append(f"{medians[label]:.1f} [{min(mib):.1f}-{max(mib):.1f}]")
    if "torch" in medians:
        cells += [f"{medians[lb] / medians['torch']:.2f}" for lb in ours(columns)]
    return cells


def ours(columns: dict) -> list[str]:
    """The labels of scratchdl's columns, one per convolution algorithm timed."""
    return [label for label, (framework, _) in columns.items() if framework == "scratchdl"]


def limit_blas(threads: int) -> str:
    """Limit numpy's BLAS and scratchdl's batch threads to ``threads`` for the whole process;
    describe the BLAS."""
    scratchdl.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return "unknown (threadpoolctl missing: pip install threadpoolctl; threads not limited)"
    threadpool_limits(limits=threads, user_api="blas")  # not undone: holds until exit
    return "; ".join(
        f"{i['internal_api']} {i['version']} {i.get('architecture', '')}, {i['num_threads']} thr"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )


def conv_kernels(step) -> set[str]:
    """The kernels torch picks for convolution, seen by the profiler over one training step."""
    import torch

    with torch.profiler.profile() as prof:
        step()
    return {e.name for e in prof.events() if re.search("mkldnn|slow_conv|nnpack|thnn", e.name)}


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds used so far by (the whole machine, this process and its children)."""
    ticks = [int(v) for v in open("/proc/stat").readline().split()[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait; steal counts as busy
    return busy / os.sysconf("SC_CLK_TCK"), sum(os.times()[:4])


def sh(command: str) -> str:
    """The output of a shell command run in the repository root, "?" if none."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run(command, shell=True, capture_output=True, text=True, cwd=root)
    return run.stdout.strip() or "?"


def table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = [header, ["---"] * len(header), *rows]
        return "\n".join("| " + " | ".join(r) + " |" for r in lines)
    width = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ("  ".join(map(str.ljust, r, width)).rstrip() for r in [header, *rows])
    return "\n".join(lines)


def under(setting: str | None, fn):
    """``fn`` run with the engine's convolution algorithm set to ``setting`` (None: as is)."""
    if setting is None:
        return fn

    def call():
        with choice.conv_algorithm(setting):
            return fn()

    return call


def in_process(net: str, columns: dict, args) -> tuple[dict, set[str]]:
    """{(net, phase, column): median seconds} timed in this process (the columns alternating
    in rounds of ROUND calls), and torch's conv kernels."""
    found, conv = {}, set()
    for phase in PHASES:
        fns = {
            label: under(setting, bench(net, framework, phase, args.threads))
            for label, (framework, setting) in columns.items()
        }
        if phase == "step" and "torch" in fns:
            conv = conv_kernels(fns["torch"])
        for label, ts in alternate(fns, args.steps, args.warmup).items():
            found[(net, phase, label)] = float(np.median(ts))
    return found, conv


def work_of(net: str, phase: str) -> float:
    """FLOPs of one call of a phase (see FLOP_RULE)."""
    b = setup(net, "scratchdl", 1, batch=PHASES[phase][1])
    return b["flops"][0 if phase == "step" else 1]


def header_of(columns: dict) -> list[str]:
    """The timing table's header (see rows_of)."""
    mine = ours(columns)
    header = ["net", "phase", "GFLOP", *(f"{label} ms, isolated" for label in columns)]
    first = columns[mine[0]][1]
    header += [f"{columns[label][1]}/{first} isolated" for label in mine[1:]]
    if "torch" in columns:
        for label in mine:
            header += [f"{label}/torch isolated", "in-process"]
    return header + [f"{label} GFLOP/s (% peak)" for label in columns]


def rows_of(cells, columns: dict, isolated_s: dict, in_process_s: dict, peak: float) -> list:
    """The timing table's rows: per cell the isolated medians [range] in ms; each scratchdl
    column's ratio to the first one (what its convolution algorithm buys); each one's ratio
    to torch in both modes; the GFLOP/s (isolated medians) against the matmul peak."""
    mine, rows = ours(columns), []
    for net, phase in cells:
        work = work_of(net, phase)
        med = {lb: float(np.median(isolated_s[(net, phase, lb)])) for lb in columns}
        row = [net, PHASES[phase][0], f"{work / 1e9:.4f}"]
        for label in columns:
            ts = np.array(isolated_s[(net, phase, label)]) * 1e3
            row.append(f"{np.median(ts):.2f} [{ts.min():.2f}-{ts.max():.2f}]")
        row += [f"{med[label] / med[mine[0]]:.2f}" for label in mine[1:]]
        if "torch" in columns:
            for label in mine:
                row.append(f"**{med[label] / med['torch']:.2f}**")
                ip = [in_process_s.get((net, phase, lb)) for lb in (label, "torch")]
                row.append(f"{ip[0] / ip[1]:.2f}" if None not in ip else "-")
        row += [f"{work / m / 1e9:.1f} ({work / m / 1e7 / peak:.0f}%)" for m in med.values()]
        rows.append(row)
    return rows


def picks_lines(cells, columns: dict, picks: dict) -> list[str]:
    """What the engine ran, a line per network and scratchdl column: each phase's distinct
    convolution passes by algorithm (from the last round's timing processes)."""
    lines = []
    for net in dict.fromkeys(net for net, _ in cells):
        for label in ours(columns):
            found = [
                f"{PHASES[phase][0]}: {picks[net, phase, label]}"
                for n, phase in cells
                if n == net and (net, phase, label) in picks
            ]
            lines.append(f"{net}, {label}: {'; '.join(found)}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30, help="timed calls per framework and phase")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of both")
    p.add_argument("--nets", default=",".join(NETS), help=f"any of {', '.join(NETS)}")
    p.add_argument("--no-torch", action="store_true", help="time scratchdl only")
    p.add_argument("--markdown", action="store_true", help="Markdown for benchmarks/RESULTS.md")
    p.add_argument("--rounds", type=int, default=3, help="fresh processes per framework and cell")
    p.add_argument("--phases", default=",".join(PHASES), help=f"any of {', '.join(PHASES)}")
    p.add_argument("--no-in-process", action="store_true", help="skip the in-process column")
    p.add_argument("--no-memory", action="store_true", help="skip the memory table")
    p.add_argument(
        "--conv",
        help="scratchdl's convolution algorithms, a column each, any of "
        f"{', '.join(choice.ALGORITHMS)} (e.g. gemm,auto; default: the current setting)",
    )
    p.add_argument("--memory-child", help=argparse.SUPPRESS)  # internal: NET:FRAMEWORK:STEPS
    p.add_argument("--timing-child", help=argparse.SUPPRESS)  # NET:FRAMEWORK:PHASE:STEPS:WARMUP
    args = p.parse_args()
    if args.memory_child:
        net, framework, steps = args.memory_child.split(":")
        return memory_child(net, framework, int(steps), args.threads)
    if args.timing_child:
        net, framework, phase, steps, warmup = args.timing_child.split(":")
        return timing_child(net, framework, phase, int(steps), int(warmup), args.threads)
    nets, phases = args.nets.split(","), args.phases.split(",")
    if bad := [n for n in nets if n not in NETS] + [f for f in phases if f not in PHASES]:
        p.error(f"unknown nets or phases {bad}; choose from {', '.join([*NETS, *PHASES])}")
    if min(args.steps, args.threads, args.rounds) < 1 or args.warmup < 0:
        p.error("--steps, --rounds and --threads must be >= 1, --warmup >= 0")
    try:
        convs, conv_note = conv_settings(args.conv)
    except ValueError as e:
        p.error(str(e))
    # one choice keeps the column names of earlier runs ("scratchdl"); the header names it
    columns = {
        ("scratchdl" if len(convs) == 1 else f"scratchdl {c}"): ("scratchdl", c) for c in convs
    }
    torch_note = "PyTorch not used (--no-torch)"
    if not args.no_torch:
        try:
            import torch

            columns["torch"] = ("torch", None)
            torch_note = f"PyTorch {torch.__version__}, mkldnn {torch.backends.mkldnn.enabled}"
        except ImportError:
            torch_note = "PyTorch not installed (pip install 'scratchdl[bench]'): scratchdl only"
    blas = limit_blas(args.threads)
    started, cpu_before = time.perf_counter(), cpu_seconds()
    first_peak = matmul_peak()  # and again at the end: noise only slows, so the faster counts

    cells = [(net, phase) for net in nets for phase in phases]
    isolated_s, picks = isolated(cells, columns, args)
    in_process_s, conv, mem_rows = {}, set(), []
    for net in nets:
        if not args.no_in_process:
            found, net_conv = in_process(net, columns, args)
            in_process_s, conv = in_process_s | found, conv | net_conv
        if not args.no_memory:
            mem_rows.append(memory_row(net, columns, args))
    peak = max(first_peak, matmul_peak())
    wall = time.perf_counter() - started
    others = np.subtract(cpu_seconds(), cpu_before) @ [1, -1] / (wall * os.cpu_count())
    spare = max(0, os.cpu_count() - args.threads) / os.cpu_count()  # CPUs we leave to others

    env = ", ".join(f"{k}={os.environ[k]}" for k in ENV_VARS if k in os.environ) or "none set"
    cpu = dict(
        re.findall(r"(model name|cpu family|model)\s*:\s*(.*)", open("/proc/cpuinfo").read())
    )
    info = [
        f"command: python {' '.join(sys.argv)}",
        f"date: {sh('date -u')}; git: {sh('git rev-parse --short HEAD')}, "
        f"{sh('git status --short src | wc -l')} changed or new files in src/",
        f"machine: {cpu.get('model name')} (family {cpu.get('cpu family')}, "
        f"model {cpu.get('model')}), {os.cpu_count()} cores; {args.threads} threads for each",
        f"numpy {np.__version__}, BLAS: {blas}; scratchdl threads: {scratchdl.get_num_threads()}",
        f"convolution algorithm ({choice.ENV_CONV} of scratchdl's processes): {conv_note}",
        f"{torch_note}; torch conv kernels: {', '.join(sorted(conv)) or 'n/a'}",
        f"environment: {env}",
        f"peak: numpy float32 {PEAK_SIZE}x{PEAK_SIZE} matmul, the faster of the medians at start "
        f"({first_peak:.1f}) and end: {peak:.1f} GFLOP/s",
        f"{FLOP_RULE}; batch {BATCH} (b1: 1), float32",
        f"isolated: {args.rounds} rounds of one fresh process per column and cell, each "
        f"timing at least {args.steps} calls and {MIN_SECONDS} s after at least {args.warmup} "
        f"warm-up calls and {MIN_SECONDS} s; ms: median of the processes' medians [their range]"
        + ("" if args.no_in_process else f"; in-process: alternating in rounds of {ROUND}"),
        MEMORY_RULE.format(args.warmup + MEMORY_STEPS, MEMORY_RUNS),
        f"run time: {wall:.0f} s; other processes (and steal) kept {others:.0%} of the CPUs busy, "
        f"{spare:.0%} were spare"
        + (
            ": numbers unreliable, rerun on a quiet machine"
            if others > spare + LOAD_WARNING
            else ""
        ),
    ]
    print("\n".join(f"- {line}" for line in info) if args.markdown else "\n".join(info), end="\n\n")
    rows = rows_of(cells, columns, isolated_s, in_process_s, peak)
    print(table(header_of(columns), rows, args.markdown), end="\n\n")
    print("the engine's algorithm for each distinct convolution pass of one call:")
    lines = picks_lines(cells, columns, picks)
    print("\n".join(f"- {line}" if args.markdown else line for line in lines), end="\n\n")
    if args.no_memory:
        return
    mem_header = ["net", *(f"{label} train peak MiB" for label in columns)]
    mem_header += [f"{label}/torch" for label in ours(columns)] * ("torch" in columns)
    print(table(mem_header, mem_rows, args.markdown))


def conv_settings(conv: str | None) -> tuple[list[str], str]:
    """The convolution algorithms to time (``--conv``, else the current setting) and a note
    for the header that says where they came from and what auto does on this machine."""
    if conv:
        convs = list(dict.fromkeys(c.strip().lower() for c in conv.split(",")))
        if bad := [c for c in convs if c not in choice.ALGORITHMS]:
            raise ValueError(
                f"--conv takes any of {', '.join(choice.ALGORITHMS)}, got {', '.join(bad)}"
            )
        source = "--conv"
    else:
        convs = [choice.get_conv_algorithm()]  # raises for a bad $SCRATCHDL_CONV
        source = f"${choice.ENV_CONV}" if os.environ.get(choice.ENV_CONV) else "the default"
    avx512 = choice.avx512_products()
    rule = (
        f"auto: Winograd F(4,3) for 3x3 stride-1 passes of >= {choice.MIN_CHANNELS[avx512]} "
        f"channels ({'AVX-512' if avx512 else 'AVX2'} products), else GEMM"
    )
    return convs, f"{', '.join(convs)} ({source}); {rule}"


if __name__ == "__main__":
    main()
