"""Per-layer time of one training step (forward + backward) of SimpleConvNet and DeepConvNet.

Walks the model's stages: the fused Convolution -> ReLU (-> pooling) blocks as the model
runs them, or, with ``--plain``, the book's code, every layer on its own. Reports wall
time (BLAS threads as configured) and, with ``--cpu``, CPU time with one BLAS thread, which
is steadier on a shared machine. Batch 100, float32, random MNIST-shaped input. Used to
decide what to optimise; see benchmarks/RESULTS.md.

    python benchmarks/profile_layers.py [--cpu] [--repeats 10] [--batch 100] [--plain]

The layers are called one by one on the whole batch, so models do not split it over threads
here. ``--cpu --batch 50`` shows what one thread does with its half of a batch of 100 in a
threaded training step (see scratchdl/engine/threads.py).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

from scratchdl import DeepConvNet, SimpleConvNet
from scratchdl.optimizers import Adam


def profile(model, x, t, repeats: int, clock) -> dict[str, list[float]]:
    """Milliseconds per stage (a layer, or a fused block: ``model.plan.stages``): {repr:
    [forward, backward]}, mean over ``repeats`` steps."""
    opt = Adam()
    for _ in range(2):  # warm-up: buffers allocated, BLAS threads started
        opt.update(model.params, model.gradient(x, t))
    stages = model.plan.stages(model.layers)
    times = [[0.0, 0.0] for _ in stages]
    for _ in range(repeats):
        h = x.astype(model.dtype, copy=False)
        for i, layer in enumerate(stages):
            start = clock()
            h = layer.forward(h, train=True)
            times[i][0] += clock() - start
        model.last_layer.forward(h, t)
        dout = model.last_layer.backward(1.0)
        for i in reversed(range(len(stages))):
            start = clock()
            if i:
                dout = stages[i].backward(dout)
            else:  # as the model does: the input data needs no gradient
                stages[i].backward_params(dout)
            times[i][1] += clock() - start
    return {
        f"{i:2d} {layer!r}"[:70]: [v * 1e3 / repeats for v in times[i]]
        for i, layer in enumerate(stages)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="CPU time with one BLAS thread")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100, help="images per step")
    parser.add_argument("--plain", action="store_true", help="the book's code, layer by layer")
    args = parser.parse_args()
    limit = contextlib.nullcontext()
    if args.cpu:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(1)
    clock = time.process_time if args.cpu else time.perf_counter
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, args.batch)
    with limit:
        for make in (SimpleConvNet, DeepConvNet):
            model = make(rng=0)
            model.reference = args.plain
            rows = profile(model, x, t, args.repeats, clock)
            kinds: dict[str, list[float]] = {}
            print(f"{make.__name__} ({'CPU ms, 1 BLAS thread' if args.cpu else 'wall ms'})")
            for name, (f, b) in rows.items():
                print(f"  {name:<70} forward {f:7.2f}  backward {b:7.2f}")
                kind = name.split()[1].split("(")[0]
                kinds.setdefault(kind, [0.0, 0.0])
                kinds[kind][0] += f
                kinds[kind][1] += b
            total = sum(f + b for f, b in kinds.values())
            print(
                "  by type: "
                + ", ".join(
                    f"{k} {f + b:.1f} ({(f + b) / total:.0%})" for k, (f, b) in kinds.items()
                )
            )
            print(f"  total {total:.1f} ms")


if __name__ == "__main__":
    main()
