"""Winograd against the im2col product (GEMM), convolution by convolution, and the training
curves of DeepConvNet with each.

``time``: every convolution of the networks (DeepConvNet's six 3x3 ones, SimpleConvNet's 5x5
one, which Winograd cannot compute), each pass (forward, filter gradient dW, input gradient
dx) with GEMM, Winograd F(2, 3) and F(4, 3), through ``ConvEngine`` as the layers call it,
one BLAS thread, float32. Repeats are interleaved (every cell once per round, the order
turned each round) and the medians of CPU time are reported, so that other work on a shared
machine slows every cell alike. The last column is what ``auto`` picks.

``train``: DeepConvNet on the shipped MNIST sample (2000 / 1000 images), Adam lr 0.001,
batch 100, for each seed once with GEMM and once with Winograd forced everywhere it
applies: the test accuracy after each epoch, and the spread between seeds beside the
difference between algorithms.

    python benchmarks/winograd.py time [--batch 100] [--repeats 9] [--markdown]
    python benchmarks/winograd.py train [--seeds 0,1,2] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from scratchdl import DeepConvNet, SimpleConvNet, Trainer
from scratchdl.datasets import load_mnist_sample
from scratchdl.engine import ConvEngine
from scratchdl.engine.choice import GEMM, algorithm, conv_algorithm
from scratchdl.layers import Convolution

ALGORITHMS = {"gemm": "gemm", "F(2,3)": "winograd2", "F(4,3)": "winograd4"}
PASSES = ("forward", "filter", "input")


def header(batch: int) -> str:
    """The machine, the BLAS kernel and the settings, for the top of a result."""
    info = open("/proc/cpuinfo").read()
    cpu = dict(re.findall(r"(model name|cpu family|model)\s*:\s*(.*)", info))
    flags = re.search(r"flags\s*:\s*(.*)", info)
    simd = [f for f in ("avx2", "avx512f") if flags and f in flags.group(1).split()]
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.*)", lscpu)
    blas = "; ".join(
        f"{i['internal_api']} {i['version']} ({i.get('architecture', '?')} kernels)"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )
    return (
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"CPU: {model.group(1) if model else cpu.get('model name')} (family "
        f"{cpu.get('cpu family')}, model {cpu.get('model')}, {'+'.join(simd)}), "
        f"{os.cpu_count()} cores; BLAS: {blas}; numpy {np.__version__}; "
        f"batch {batch}, float32, 1 BLAS thread, load average {os.getloadavg()[0]:.1f}"
    )


def convolutions(batch: int) -> list[tuple[str, Convolution, np.ndarray]]:
    """(name, layer, input) of every convolution of the two networks, the input of the
    shape the layer sees in training (a random one)."""
    rng = np.random.default_rng(0)
    found = []
    for net_name, net in (("deep", DeepConvNet(rng=0)), ("simple", SimpleConvNet(rng=0))):
        x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        for layer in net.layers:
            if isinstance(layer, Convolution):
                FN, C, FH, FW = layer.params["W"].shape
                name = f"{net_name} C{C}->{FN} {x.shape[2]}x{x.shape[3]} {FH}x{FW} pad {layer.pad}"
                if C > 1:  # batch-last, as the layer before hands it over
                    x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
                found.append((name, layer, x))
            x = layer.forward(x, train=False)
    return found


def run_pass(engine: ConvEngine, layer: Convolution, x, dout, kind: str):
    W, b = layer.params["W"], layer.params["b"]
    if kind == "forward":
        return engine.convolve(x, W, b, layer.stride, layer.pad)
    if kind == "filter":
        return engine.filter_gradient(dout, W, layer.stride)
    return engine.input_gradient(dout, W, layer.stride, layer.pad)


def time_cells(batch: int, repeats: int) -> dict:
    """{(name, pass, algorithm): [CPU seconds, ...]}, interleaved."""
    cells, runs = [], {}
    rng = np.random.default_rng(1)
    for name, layer, x in convolutions(batch):
        engine = ConvEngine()
        with conv_algorithm("gemm"):
            y = engine.convolve(x, layer.params["W"], layer.params["b"], layer.stride, layer.pad)
        dout = np.ascontiguousarray(rng.standard_normal(y.shape[1:] + y.shape[:1]), np.float32)
        dout = dout.transpose(3, 0, 1, 2)  # batch-last, as the ReLU's backward hands it over
        for kind in PASSES:
            if kind == "input" and layer.params["W"].shape[1] == 1:
                continue  # a network's first layer computes no input gradient
            for label, setting in ALGORITHMS.items():
                if setting != "gemm" and layer.params["W"].shape[2:] != (3, 3):
                    continue
                cells.append((name, kind, label, setting, engine, layer, x, dout))
    for r in range(repeats + 1):  # round 0 warms up
        for name, kind, label, setting, engine, layer, x, dout in cells[r % 7 :] + cells[: r % 7]:
            with conv_algorithm(setting):
                start = time.process_time()
                run_pass(engine, layer, x, dout, kind)
                seconds = time.process_time() - start
            if r:
                runs.setdefault((name, kind, label), []).append(seconds)
    return runs


def auto_choice(name: str, kind: str, layer: Convolution, x, batch: int) -> str:
    W = layer.params["W"]
    FN, _, FH, _ = W.shape
    OH, OW = x.shape[2] + 2 * layer.pad - FH + 1, x.shape[3] + 2 * layer.pad - FH + 1
    with conv_algorithm("auto"):
        m = algorithm(kind, W.shape, layer.stride, (batch, FN, OH, OW), W.dtype, layer.pad)
    return "gemm" if m == GEMM else f"F({m},3)"


def time_main(args) -> None:
    with threadpool_limits(limits=1, user_api="blas"):
        print(header(args.batch))
        runs = time_cells(args.batch, args.repeats)
        layers = {name: (layer, x) for name, layer, x in convolutions(args.batch)}
        labels = list(ALGORITHMS)
        rows, totals = [], {}  # net -> label -> ms of all its passes
        for name, (layer, x) in layers.items():
            for kind in PASSES:
                ms = {lb: 1e3 * float(np.median(runs[name, kind, lb])) for lb in labels
                      if (name, kind, lb) in runs}  # fmt: skip
                if not ms:
                    continue
                pick = auto_choice(name, kind, layer, x, args.batch)
                best = min(ms, key=ms.get)
                total = totals.setdefault(
                    name.split()[0], dict.fromkeys([*labels, "auto", "best"], 0)
                )
                for label in labels:  # where Winograd cannot run, the layer runs GEMM
                    total[label] += ms.get(label, ms["gemm"])
                total["auto"] += ms[pick]
                total["best"] += ms[best]
                cols = [f"{ms[lb]:.2f}" if lb in ms else "n/a" for lb in labels]
                ratio = f"{ms['gemm'] / ms[best]:.2f}x" if best != "gemm" else "1.00x"
                rows.append([name, kind, *cols, best, ratio, pick])
        head = ["convolution", "pass", *(f"{lb} ms" for lb in labels), "fastest", "gain", "auto"]
        for net, total in totals.items():  # a training step's convolutions, one thread's part
            gain = f"{total['gemm'] / total['auto']:.2f}x"
            sums = [f"{total[label]:.2f}" for label in labels]
            rows.append([f"{net}: all passes", "sum", *sums, "", gain, f"{total['auto']:.2f}"])
        print(table(head, rows, args.markdown))
        spread = max(np.percentile(v, 75) / np.percentile(v, 25) for v in runs.values())
        print(f"medians of {args.repeats} interleaved runs each; the widest interquartile "
              f"ratio of a cell: {spread:.2f}")  # fmt: skip


def table(head: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        return "\n".join("| " + " | ".join(r) + " |" for r in [head, ["---"] * len(head), *rows])
    width = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(map(str.ljust, r, width)).rstrip() for r in [head, *rows])


def train_main(args) -> None:
    print(header(100).rsplit(";", 1)[0] + f"; training threads: the default ({os.cpu_count()})")
    (x_train, t_train), (x_test, t_test) = load_mnist_sample(flatten=False)
    results = {}
    for seed in args.seeds:
        for setting in ("gemm", "winograd"):
            with conv_algorithm(setting):
                net = DeepConvNet(rng=seed)
                trainer = Trainer(
                    net, x_train, t_train, x_test, t_test, epochs=args.epochs,
                    mini_batch_size=100, optimizer="adam", optimizer_param={"lr": 0.001},
                    verbose=False, rng=seed,
                )  # fmt: skip
                start = time.perf_counter()
                history = trainer.train()
                wall = time.perf_counter() - start
            accs = history["test_acc"]
            results[seed, setting] = accs
            steps = len(history["loss"]) // args.epochs  # the mean loss of each epoch's steps
            losses = np.reshape(history["loss"][: steps * args.epochs], (args.epochs, -1))
            print(
                f"seed {seed} {setting:8s}: test accuracy per epoch "
                f"{', '.join(f'{a:.3f}' for a in accs)}; mean loss per epoch "
                f"{', '.join(f'{v:.4f}' for v in losses.mean(axis=1))} ({wall:.0f} s)",
                flush=True,
            )
    final = {s: [results[seed, s][-1] for seed in args.seeds] for s in ("gemm", "winograd")}
    diffs = [abs(results[seed, "gemm"][-1] - results[seed, "winograd"][-1]) for seed in args.seeds]
    for setting, accs in final.items():
        print(f"{setting:8s}: final {np.mean(accs):.4f} (seeds range {min(accs):.4f}-"
              f"{max(accs):.4f}, spread {max(accs) - min(accs):.4f})")  # fmt: skip
    print(f"|gemm - winograd| per seed: {', '.join(f'{d:.4f}' for d in diffs)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("time", help="each convolution's passes with each algorithm")
    t.add_argument("--batch", type=int, default=100)
    t.add_argument("--repeats", type=int, default=9)
    t.add_argument("--markdown", action="store_true")
    r = sub.add_parser("train", help="DeepConvNet's curves, gemm against winograd")
    r.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    r.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    time_main(args) if args.command == "time" else train_main(args)


if __name__ == "__main__":
    main()
