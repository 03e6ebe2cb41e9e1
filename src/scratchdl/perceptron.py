"""Perceptrons and logic gates: AND, NAND, OR, and XOR as a two-layer perceptron (book ch2).

A perceptron outputs 1 when its weighted input plus bias is positive:
y = 1 if b + w1*x1 + w2*x2 > 0 else 0 (book eq. 2.2). One perceptron draws a straight line
through the input plane, which is enough for AND, NAND and OR but not for XOR; layering
them is (book section 2.5): XOR(x1, x2) = AND(NAND(x1, x2), OR(x1, x2)).

Every gate takes its inputs three ways::

    AND(1, 1)                      -> 1 (a Python int)
    AND(x1_array, x2_array)        -> elementwise, broadcast, an int64 array
    AND(pairs)                     -> pairs of shape (N, 2) give shape (N,); shape (2,) an int
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "AND",
    "NAND",
    "OR",
    "TRUTH_TABLE_INPUTS",
    "XOR",
    "Perceptron",
    "find_perceptron",
    "separable",
]

# The four input pairs (x1, x2) in the book's order; gate(TRUTH_TABLE_INPUTS) is its truth table.
TRUTH_TABLE_INPUTS = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.int64)
TRUTH_TABLE_INPUTS.flags.writeable = False


class Perceptron:
    """A single perceptron with weights ``w`` and bias ``b``.

    Shape: n separate inputs of broadcastable shapes -> their broadcast shape;
    one array of shape (N, n) -> (N,); one of shape (n,) or n scalars -> a Python int.
    Rule (book eq. 2.2): y = 1 if b + sum_i w_i * x_i > 0 else 0.
    """

    def __init__(self, w: Sequence[float] | np.ndarray, b: float) -> None:
        w = np.array(w, dtype=np.float64)  # a copy, so the caller's list or array can't change it
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"w must be a non-empty 1-D sequence of weights, got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"w must hold finite numbers, got {w.tolist()!r}")
        if isinstance(b, bool) or not isinstance(b, numbers.Real) or not np.isfinite(b):
            raise ValueError(f"b must be a finite number, got {b!r}")
        w.flags.writeable = False  # gates are shared module-level objects
        self._w = w
        self._b = float(b)

    @property
    def w(self) -> np.ndarray:
        """The weights, read-only, shape (n,)."""
        return self._w

    @property
    def b(self) -> float:
        """The bias; the perceptron fires when the weighted input exceeds ``-b``."""
        return self._b

    @property
    def n_inputs(self) -> int:
        """The number of inputs n, the length of ``w``."""
        return self._w.size

    def __repr__(self) -> str:
        return f"Perceptron(w={self._w.tolist()!r}, b={self._b!r})"

    def __call__(self, *x: ArrayLike) -> int | np.ndarray:
        """Return 1 where b + w . x > 0, else 0 (shapes as in the class docstring)."""
        n = self.n_inputs
        if len(x) == n:
            xs = [_as_inputs(xi) for xi in x]
            try:
                np.broadcast_shapes(*(xi.shape for xi in xs))
            except ValueError:
                shapes = ", ".join(str(xi.shape) for xi in xs)
                raise ValueError(
                    f"inputs of shapes {shapes} do not broadcast together; pass arrays of one "
                    f"shape or an (N, {n}) array of input rows"
                ) from None
        elif len(x) == 1:
            rows = _as_inputs(x[0])
            if rows.ndim not in (1, 2) or rows.shape[-1] != n:
                raise ValueError(
                    f"one argument must be an input row of shape ({n},) or an (N, {n}) array "
                    f"of rows, got shape {rows.shape}"
                )
            xs = [rows[..., i] for i in range(n)]
        else:
            raise TypeError(
                f"a {n}-input perceptron takes {n} inputs or one (N, {n}) array of rows, "
                f"got {len(x)} arguments"
            )
        # One expression for both call forms (not rows @ w, which may fuse and round
        # differently), so AND(x1, x2) and AND(pairs) agree even on the boundary.
        s = sum(wi * xi for wi, xi in zip(self._w, xs, strict=True)) + self._b
        y = s > 0
        return int(y) if y.ndim == 0 else y.astype(np.int64)

    def decision_line(self) -> tuple[float, float]:
        """Return (slope, intercept) of the boundary b + w1*x1 + w2*x2 = 0 as x2 = slope*x1 + c.

        Shape: two inputs only. Rule: slope = -w1 / w2, intercept = -b / w2; the perceptron
        outputs 1 above the line when w2 > 0 and below it when w2 < 0.
        """
        if self.n_inputs != 2:
            raise ValueError(
                f"decision_line needs a 2-input perceptron, this one has {self.n_inputs}"
            )
        w1, w2 = self._w.tolist()
        if w2 == 0:
            where = f"the vertical line x1 = {-self._b / w1!r}" if w1 != 0 else "nowhere (w = 0)"
            raise ValueError(
                f"w2 is 0, so x2 = slope * x1 + c has no solution; the boundary is {where}"
            )
        return -w1 / w2, -self._b / w2


def _as_inputs(x: ArrayLike) -> np.ndarray:
    """Return ``x`` as a numeric array with finite values, or raise ValueError naming it."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"perceptron inputs must be numbers, got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ValueError("perceptron inputs must be finite; got NaN or infinity")
    return a


AND = Perceptron(w=(0.5, 0.5), b=-0.7)
NAND = Perceptron(w=(-0.5, -0.5), b=0.7)
OR = Perceptron(w=(0.5, 0.5), b=-0.2)


def XOR(*x: ArrayLike) -> int | np.ndarray:
    """Exclusive or, as a two-layer perceptron built from the three gates above.

    Shape: as for any gate: (x1, x2) broadcast elementwise, or one (N, 2) array of pairs -> (N,).
    Rule (book section 2.5): s1 = NAND(x), s2 = OR(x), y = AND(s1, s2).
    """
    s1 = NAND(*x)
    s2 = OR(*x)
    return AND(s1, s2)


def find_perceptron(targets: ArrayLike, grid: ArrayLike | None = None) -> Perceptron | None:
    """Search a grid of (w1, w2, b) for one perceptron whose truth table is ``targets``.

    Shape: ``targets`` (4,) of 0/1 in the order of TRUTH_TABLE_INPUTS; ``grid`` 1-D, the values
    tried for each of w1, w2 and b (default 21 values from -1 to 1 in steps of 0.1).
    Returns the match with the widest margin min |b + w . x| (the first such in grid order),
    or None. The default grid holds a solution for
    each of the 14 linearly separable 2-input functions (the tests check all 16), so None
    here means "no single perceptron", which is the case for XOR and XNOR exactly.
    """
    targets = np.asarray(targets)
    if targets.shape != (4,) or not np.isin(targets, (0, 1)).all():
        raise ValueError(
            "targets must be four 0/1 outputs in the order of TRUTH_TABLE_INPUTS "
            f"(0,0), (1,0), (0,1), (1,1), got {targets.tolist()!r}"
        )
    values = np.arange(-10, 11) / 10 if grid is None else np.asarray(grid, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"grid must be a non-empty 1-D array of finite numbers, got {grid!r}")
    w1, w2, b = (a.reshape(-1, 1) for a in np.meshgrid(values, values, values, indexing="ij"))
    x1, x2 = TRUTH_TABLE_INPUTS.T
    s = w1 * x1 + w2 * x2 + b  # (grid**3, 4): every candidate on every input pair
    # Of the matches, keep the one whose weighted inputs stay farthest from the threshold,
    # so that rounding can't be what makes it match.
    margin = np.where(((s > 0) == targets).all(axis=1), np.abs(s).min(axis=1), -1.0)
    i = int(margin.argmax())
    if margin[i] < 0:
        return None
    return Perceptron(w=(w1[i, 0], w2[i, 0]), b=b[i, 0])


def separable(targets: ArrayLike) -> bool:
    """Return whether one perceptron reproduces the truth table ``targets`` (grid search).

    Shape: ``targets`` (4,) of 0/1 in the order of TRUTH_TABLE_INPUTS.
    Why XOR fails, exactly: it needs b <= 0, w1 + b > 0, w2 + b > 0 and w1 + w2 + b <= 0;
    the middle two sum to w1 + w2 + b > -b >= 0, contradicting the last.
    """
    return find_perceptron(targets) is not None
