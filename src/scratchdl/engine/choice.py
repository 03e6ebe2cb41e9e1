"""Which algorithm computes a convolution: the book's im2col product (GEMM) or Winograd.

Winograd F(m x m, 3 x 3) (``winograd.py``) does fewer multiplications for 3x3, stride-1
convolutions, but moves its tiles through memory more often. Which is faster depends on the
shape, so each pass of each convolution asks ``algorithm`` here. The rule for ``auto`` was
derived from measurements (``benchmarks/winograd.py``, numbers in benchmarks/RESULTS.md):
Winograd only where it was faster on every machine measured, GEMM everywhere else.

The choice can be forced for tests and benchmarks: ``$SCRATCHDL_CONV`` (read on first use),
``set_conv_algorithm`` or, for a block of code, ``with conv_algorithm("winograd4"): ...``:

- ``auto``: the rule;
- ``gemm``: always the im2col product;
- ``winograd``: Winograd wherever it applies, with the rule's tile (``tile``);
- ``winograd2``, ``winograd4``: Winograd F(2, 3) or F(4, 3) wherever it applies.

Whatever is forced, a convolution Winograd cannot compute (not 3x3, a stride, a pad over 2,
not floating point) runs as GEMM. Results differ between algorithms only by rounding.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

import numpy as np

from . import threads

ENV_CONV = "SCRATCHDL_CONV"
ALGORITHMS = ("auto", "gemm", "winograd", "winograd2", "winograd4")
PASSES = ("forward", "filter", "input")  # out = x * W, dW, dx
GEMM = 0  # what ``algorithm`` returns for the im2col product; else Winograd's tile m

# The rule, from the measurements (benchmarks/RESULTS.md, Winograd): Winograd pays where the
# products it saves are large next to the transforms it adds and to numpy's cost per call:
# many channels on both sides, and enough work in one call. F(4, 3) was the faster tile,
# within the noise, for every DeepConvNet convolution Winograd won. With OpenBLAS's AVX-512
# kernels Winograd won from 16 channels; with its AVX2 (Haswell) kernels GEMM was as fast or
# faster for 16 channels, and Winograd won from 32.
AVX512_KERNELS = ("skylakex", "cooperlake", "sapphirerapids")  # as threadpoolctl names them
MIN_CHANNELS = {True: 16, False: 32}  # the smaller of C and FN, with AVX-512 products or not
MIN_SIZE = 8  # the output's smaller side: F(4, 3) was measured down to 8 x 8 only
MIN_WORK = 1 << 22  # N * OH * OW * C * FN: batch 1, and batch 10 of 14 x 14, stay GEMM

_algorithm: str | None = None  # None: read $SCRATCHDL_CONV on first use


def _checked(name: str, source: str) -> str:
    if name not in ALGORITHMS:
        raise ValueError(f"{source} must be one of {', '.join(ALGORITHMS)}, got {name!r}")
    return name


def get_conv_algorithm() -> str:
    """The algorithm setting in force: ``set_conv_algorithm``, else ``$SCRATCHDL_CONV``,
    else ``auto``."""
    global _algorithm
    if _algorithm is None:
        value = os.environ.get(ENV_CONV, "").strip().lower() or "auto"
        _algorithm = _checked(value, ENV_CONV)
    return _algorithm


def set_conv_algorithm(name: str | None) -> None:
    """Use ``name`` (one of ALGORITHMS) for every convolution from now on; None goes back
    to the default, ``$SCRATCHDL_CONV`` read anew."""
    global _algorithm
    _algorithm = None if name is None else _checked(name, "the convolution algorithm")


@contextlib.contextmanager
def conv_algorithm(name: str) -> Iterator[None]:
    """``set_conv_algorithm(name)`` for the block, then the setting before it again. The
    setting is global: threads running parts of a batch see it too."""
    before = _algorithm
    set_conv_algorithm(name)
    try:
        yield
    finally:
        set_conv_algorithm(before)


def applies(kind: str, W_shape: tuple, stride: int, pad: int, dtype) -> bool:
    """Whether Winograd F(m, 3) can compute this pass of a convolution: 3x3 filters, stride
    1, floating point; for the input gradient (dout padded by 2 - pad), a pad of at most 2."""
    FH, FW = W_shape[2:]
    fits = FH == FW == 3 and stride == 1 and np.dtype(dtype).kind == "f"
    return fits and (kind != "input" or pad <= 2)


def tile(OH: int, OW: int) -> int:
    """Winograd's tile for an OH x OW output: F(4, 3) from 8 x 8 up, else F(2, 3)."""
    return 4 if min(OH, OW) >= MIN_SIZE else 2


@functools.cache
def avx512_products() -> bool:
    """Whether BLAS multiplies with AVX-512 kernels, as threadpoolctl reports OpenBLAS's
    (read once; False without threadpoolctl or for another BLAS: the rule for AVX2 holds)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return False
    kernels = [str(i.get("architecture")).lower() for i in threadpool_info()]
    return any(kernel in AVX512_KERNELS for kernel in kernels)


def rule(C: int, FN: int, OH: int, OW: int, N: int) -> int:
    """``auto``'s choice for one pass, a convolution of C channels into FN over an OH x OW
    output of a batch of N: GEMM, or Winograd's tile m."""
    if min(OH, OW) < MIN_SIZE or N * OH * OW * C * FN < MIN_WORK:
        return GEMM
    if threads.blas_threads() != 1:  # measured with one BLAS thread per product only
        return GEMM
    return GEMM if min(C, FN) < MIN_CHANNELS[avx512_products()] else tile(OH, OW)


def algorithm(kind: str, W_shape: tuple, stride: int, out_shape: tuple, dtype, pad: int = 0):
    """The algorithm of one pass (``kind``, one of PASSES) of a convolution with filters W
    (FN, C, FH, FW) whose output is (N, FN, OH, OW): GEMM (0), or the tile m of Winograd
    F(m, 3). ``pad`` matters to the input gradient only."""
    if kind not in PASSES:
        raise ValueError(f"kind must be one of {PASSES}, got {kind!r}")
    setting = get_conv_algorithm()
    if setting == "gemm" or not applies(kind, W_shape, stride, pad, dtype):
        return GEMM
    if setting in ("winograd2", "winograd4"):
        return int(setting[-1])
    FN, C = W_shape[:2]
    N, _, OH, OW = out_shape
    if kind == "input":  # a convolution of FN channels into C, over the input's H x W
        C, FN, OH, OW = FN, C, OH + 2 - 2 * pad, OW + 2 - 2 * pad
    return tile(OH, OW) if setting == "winograd" else rule(C, FN, OH, OW, N)
