"""What bounds a convolution's time: its matrix products against the BLAS peak, the
im2col copies beside them, and the whole passes before and after Winograd, layer by layer,
on one thread.

For every convolution of a network, with one thread's share of a batch (default 50 of 100:
two threads split a batch), this times separately
- the im2col bands (the copies: bytes written, GB/s),
- the three products on bands built beforehand: forward ``W_col @ col``, the filter
  gradient ``col @ dout_t`` and the input gradient (``W_turned @ col(dout)`` or ``dout @
  W_col``), in GFLOP/s and as a share of the float32 matmul peak of one thread,
and prints the sum: the time a training step's convolutions need even if everything but the
products took no time at all. Then the whole passes as the layers run them (``ConvEngine``'s
forward, filter gradient and input gradient, copies and transforms included), once with the
im2col product (``gemm``) and once with the engine's choice (``auto``: Winograd F(4, 3) where
engine/choice.py takes it), each as an effective rate: the direct method's FLOPs over the
time, and its share of the peak. Medians of ``--repeats`` runs, CPU time, one BLAS thread.

    python benchmarks/conv_products.py [--net deep|simple] [--batch 50] [--repeats 7]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from scratchdl import DeepConvNet, SimpleConvNet, conv_output_size
from scratchdl.engine import ConvEngine, conv_algorithm
from scratchdl.engine.bands import pad_batch_last
from scratchdl.engine.choice import GEMM, algorithm
from scratchdl.layers import Convolution

PEAK_SIZE = 1024


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return float(np.median(times))


def under(setting: str, fn):
    """``fn`` run with the engine's convolution algorithm set to ``setting``."""

    def call():
        with conv_algorithm(setting):
            return fn()

    return call


def median_times(fns: dict, repeats: int) -> dict[str, float]:
    """Median CPU seconds of each function, timed in turns, so that a drift of a shared
    machine's speed slows each alike."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeats):
        for name in list(fns)[:: 1 if r % 2 == 0 else -1]:
            start = time.process_time()
            fns[name]()
            times[name].append(time.process_time() - start)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def peak(repeats: int) -> float:
    a, b = (np.random.default_rng(i).random((PEAK_SIZE,) * 2, dtype=np.float32) for i in (1, 2))
    return 2 * PEAK_SIZE**3 / median_time(lambda: a @ b, repeats) / 1e9


def layer_rows(conv: Convolution, x: np.ndarray, repeats: int, top: float) -> list[str]:
    """One table row per product of this convolution on input x (N, C, H, W)."""
    W = conv.params["W"]
    FN, C, FH, FW = W.shape
    N, _, H, W_in = x.shape
    s, p = conv.stride, conv.pad
    OH, OW = conv_output_size(H, FH, s, p), conv_output_size(W_in, FW, s, p)
    work = ConvEngine()
    xp = pad_batch_last(x, p)
    tiles = work.tiles(OH, OW, N, C * FH * FW, x.dtype)
    bands = [work.band(xp, FH, FW, s, tile, OW).copy() for tile in tiles]
    copy_s = median_time(lambda: [work.band(xp, FH, FW, s, tile, OW) for tile in tiles], repeats)
    W_col = W.reshape(FN, -1)
    douts = [np.random.default_rng(0).random((FN, b.shape[1]), dtype=x.dtype) for b in bands]
    W_turned = W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(C, -1)
    K_in = FN * FH * FW  # rows of the dout bands the input gradient multiplies
    din_bands = [np.random.default_rng(1).random((K_in, b.shape[1]), dtype=x.dtype) for b in bands]
    macs = FN * C * FH * FW * OH * OW * N  # of each of the three products
    products = {
        "forward W_col @ col": lambda: [W_col @ b for b in bands],
        "filter grad col @ dout": lambda: [b @ d.T for b, d in zip(bands, douts, strict=True)],
        "input grad W_turned @ col": lambda: [W_turned @ d for d in din_bands],
    }
    name = f"{C}->{FN} {FH}x{FW} p{p} on {H}x{W_in}"
    band_bytes = sum(b.nbytes for b in bands)
    rows = [
        [name, "im2col copies", f"{copy_s * 1e3:.2f}", f"{band_bytes / 2**20:.1f} MiB",
         f"{band_bytes / copy_s / 1e9:.1f} GB/s"]
    ]  # fmt: skip
    for what, fn in products.items():
        t = median_time(fn, repeats)
        rate = 2 * macs / t / 1e9
        rows.append(["", what, f"{t * 1e3:.2f}", f"{2 * macs / 1e9:.3f} GFLOP",
                     f"{rate:.1f} GFLOP/s ({rate / top:.0%})"])  # fmt: skip
    return rows


def pass_rows(conv: Convolution, x: np.ndarray, repeats: int, top: float) -> list[list[str]]:
    """One table row per pass of this convolution and setting (gemm, auto) through
    ConvEngine, as the layer calls it; the rate counts the direct method's FLOPs. A network's
    first layer (one input channel) has no input gradient in training: not timed."""
    W, b = conv.params["W"], conv.params["b"]
    FN, C, FH, FW = W.shape
    s, p = conv.stride, conv.pad
    engine = ConvEngine()
    with conv_algorithm("gemm"):
        y = engine.convolve(x, W, b, s, p)  # keeps the padded input the gradients read
    N, _, OH, OW = y.shape
    # batch-last, as the ReLU's backward hands it over
    dout = np.random.default_rng(2).random((FN, OH, OW, N), dtype=x.dtype).transpose(3, 0, 1, 2)
    passes = {
        "forward": lambda: engine.convolve(x, W, b, s, p),
        "filter": lambda: engine.filter_gradient(dout, W, s),
        "input": lambda: engine.input_gradient(dout, W, s, p),
    }
    flop = 2 * FN * C * FH * FW * OH * OW * N  # of each pass, done directly
    rows = []
    for kind, fn in passes.items():
        if kind == "input" and C == 1:
            continue
        settings = ("gemm", "auto")
        seconds = median_times({st: under(st, fn) for st in settings}, repeats)
        for setting, t in seconds.items():
            with conv_algorithm(setting):
                m = algorithm(kind, W.shape, s, y.shape, y.dtype, p)
            label = f"{kind} pass, {setting}" + (f": F({m},3)" if m != GEMM else "")
            rate = flop / t / 1e9
            rows.append(["", label, f"{t * 1e3:.2f}", f"{flop / 1e9:.3f} GFLOP",
                         f"{rate:.1f} GFLOP/s ({rate / top:.0%})"])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", choices=["deep", "simple"], default="deep")
    parser.add_argument("--batch", type=int, default=50, help="one thread's share of a batch")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with threadpool_limits(1):
        top = peak(args.repeats)
        model = DeepConvNet(rng=0) if args.net == "deep" else SimpleConvNet(rng=0)
        x = np.random.default_rng(0).random((args.batch, 1, 28, 28), dtype=np.float32)
        rows, sums = [], {"copies": 0.0, "products": 0.0, "gemm": 0.0, "auto": 0.0}
        for layer in model.layers:
            if isinstance(layer, Convolution):
                found = layer_rows(layer, x, args.repeats, top)
                passes = pass_rows(layer, x, args.repeats, top)
                rows += found + passes
                sums["copies"] += float(found[0][2])
                sums["products"] += sum(float(r[2]) for r in found[1:])
                for setting in ("gemm", "auto"):
                    sums[setting] += sum(float(r[2]) for r in passes if f", {setting}" in r[1])
            if len(getattr(layer, "params", {})) and not isinstance(layer, Convolution):
                break  # the convolutions come first in the book's networks
            x = layer.forward(x)
    print(f"{args.net}, batch {args.batch}, float32, 1 BLAS thread; peak ({PEAK_SIZE}^2 "
          f"matmul): {top:.1f} GFLOP/s; CPU ms, medians of {args.repeats}")  # fmt: skip
    width = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)))
    print(f"sum: products {sums['products']:.1f} ms, copies {sums['copies']:.1f} ms; "
          f"whole passes (the first layer's input gradient left out) gemm {sums['gemm']:.1f} "
          f"ms, auto {sums['auto']:.1f} ms ({sums['gemm'] / sums['auto']:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
