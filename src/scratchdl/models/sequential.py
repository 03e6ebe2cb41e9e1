"""``Sequential``: a stack of layers and a loss layer, with the book's model interface (ch5-8).

``params`` (the very arrays the layers use, named as in the book: ``W1``, ``b1``, ...,
``gamma1``, ``beta1``, ...), ``predict``, ``loss``, ``accuracy``, ``gradient`` and
``numerical_gradient``. The book's networks (``scratchdl.models.networks``) only decide which
layers to stack.

How the layers run is the ``plan``'s (``models/plan.py``): the book's block Convolution ->
ReLU (-> max pooling) as one ``ConvReluPool``, and the leading per-sample layers of a
network with convolutions on parts of the batch at once, one thread a part (the parameter
gradients are the sums over the parts). ``reference = True`` runs the book's code, every
layer on its own: what the tests hold the fast path to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import functions as F
from .. import gradient as G
from ..layers import Dropout, Layer, SoftmaxWithLoss
from ..support.checks import check_finite, check_positive, check_positive_int, float_dtype
from .plan import Plan


class Sequential:
    """A stack of layers followed by a loss layer, with optional weight decay.

    Parameters are named by the book's convention: the weight layers (Affine, Convolution)
    give ``W1, b1, W2, b2, ...`` in order, the batch-norm layers ``gamma1, beta1, ...``
    and their running statistics ``running_mean1, running_var1, ...`` (in ``buffers``).
    Weight decay adds ``weight_decay_lambda * 0.5 * sum(W**2)`` over the weights ``W*``
    (not biases or batch-norm parameters) to the loss, and ``weight_decay_lambda * W`` to
    their gradients.

    Shape: x (N, *input_shape) -> scores (N, K).
    """

    def __init__(
        self,
        layers: list[Layer],
        loss_layer: Layer | None = None,
        *,
        input_shape: tuple[int, ...] | None = None,
        weight_decay_lambda: float = 0.0,
        dtype=np.float32,
        config: dict | None = None,
    ) -> None:
        self.layers = list(layers)
        self.last_layer = loss_layer if loss_layer is not None else SoftmaxWithLoss()
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.weight_decay_lambda = check_positive(
            "weight_decay_lambda", weight_decay_lambda, allow_zero=True
        )
        self.dtype = float_dtype(dtype)
        self.params: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        # the constructor arguments that rebuild a book's network (a hand-built one has none)
        self._config = dict(config or {})
        self._owner: dict[str, tuple[Layer, str]] = {}  # parameter name -> (layer, its key)
        self.last_loss: float | None = None  # the loss computed by the latest gradient()
        self.plan = Plan()  # how the layers run: fused blocks, batch parts on threads
        counters = {"W": 0, "gamma": 0}
        for layer in self.layers:
            group = "W" if "W" in layer.params else "gamma" if "gamma" in layer.params else None
            if group is None:
                continue
            counters[group] += 1
            for table, target in ((layer.params, self.params), (layer.buffers, self.buffers)):
                for key, array in table.items():
                    name = f"{key}{counters[group]}"
                    target[name] = array
                    if table is layer.params:
                        self._owner[name] = (layer, key)

    @property
    def reference(self) -> bool:
        """Whether the layers run the book's code, each on its own, in the calling thread
        (True), or the engine's fast path (False, the default). Setting it sets every
        layer's ``reference`` flag too."""
        return self.plan.reference

    @reference.setter
    def reference(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"reference must be True or False, got {value!r}")
        self.plan.reference = bool(value)
        for layer in self.layers:
            layer.reference = bool(value)

    # -- inputs ----------------------------------------------------------------------------

    @property
    def output_size(self) -> int:
        """Number of classes (outputs) of the last weight layer."""
        last_w = [a for k, a in self.params.items() if k.startswith("W")][-1]
        return last_w.shape[0] if last_w.ndim == 4 else last_w.shape[1]

    def check_batch(self, x: np.ndarray, t: np.ndarray | None = None) -> None:
        """Raise ValueError unless the batch ``x`` (and labels ``t``) fit this network:
        shapes, dtypes and the label range; reads no pixel values (a Trainer checks a whole
        data set with it before training)."""
        self._check_layout(x.shape, x.dtype)
        if t is not None:
            self._check_t(x, t)

    def _check_layout(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        if self.input_shape is not None:
            want = self.input_shape
            flat_ok = len(shape) >= 2 and len(want) == 1 and math.prod(shape[1:]) == want[0]
            if len(shape) != len(want) + 1 or shape[1:] != want:
                if not flat_ok:
                    raise ValueError(
                        f"{type(self).__name__} expects input of shape (N, "
                        f"{', '.join(map(str, want))}), got {shape}"
                    )
        if len(shape) == 0 or shape[0] == 0:
            raise ValueError(f"x must hold at least one sample, got an empty batch {shape}")
        if dtype.kind not in "iuf":  # bool, complex, strings, objects: not pixel values
            raise ValueError(f"x must hold real numbers (int or float), got dtype {dtype}")

    def _check_x(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        self._check_layout(x.shape, x.dtype)
        x = x.astype(self.dtype, copy=False)  # one cast here: no silent up-casts later
        if not np.isfinite(x).all():  # one pass; the message names the first bad sample
            check_finite("x", x, fix="remove NaN and infinity from the input")
        return x

    def _check_batch_size(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t)
        if t.ndim == 0 or t.shape[0] != x.shape[0]:
            raise ValueError(
                f"x and t must have the same batch size, got x {x.shape} and t {t.shape}"
            )
        return t

    def _check_t(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        t = self._check_batch_size(x, t)
        if isinstance(self.last_layer, SoftmaxWithLoss):  # labels, or rows that sum to 1
            t = F.check_targets(t, (x.shape[0], self.output_size))
        return t

    # -- the network -----------------------------------------------------------------------

    def predict(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """Scores before the output function (softmax is in the loss). Shape: (N, ...) -> (N, K)."""
        return self.plan.forward(self.layers, self._check_x(x), train)

    def loss(self, x: np.ndarray, t: np.ndarray, train: bool = True) -> float:
        """Loss of the batch, weight decay included. The loss layer checks the labels or
        target rows (``functions.check_targets``); ``check_batch`` checks them up front."""
        x = self._check_x(x)
        t = self._check_batch_size(x, t)
        loss = self.last_layer.forward(self.plan.forward(self.layers, x, train), t)
        if self.weight_decay_lambda:
            loss += self.weight_decay_loss()
        return loss

    def weight_decay_loss(self) -> float:
        """weight_decay_lambda * 0.5 * sum(W**2) over the weights, in float64."""
        lam = self.weight_decay_lambda
        return sum(0.5 * lam * float(np.sum(W.astype(np.float64) ** 2)) for W in self._weights())

    def _weights(self) -> list[np.ndarray]:
        return [a for k, a in self.params.items() if k.startswith("W")]

    def accuracy(self, x: np.ndarray, t: np.ndarray, batch_size: int = 100) -> float:
        """Fraction of samples whose highest score is the label, over every sample; for
        target rows (one-hot or soft) the label is the row's most probable class (argmax)."""
        check_positive_int("batch_size", batch_size)
        x = self._check_x(x)
        t = self._check_t(x, t)
        if t.ndim != 1:
            t = t.argmax(axis=1)  # what functions.class_indices reads from a target row
        correct = 0
        for i in range(0, x.shape[0], batch_size):  # the last, shorter batch included
            y = self.predict(x[i : i + batch_size], train=False)
            correct += int(np.sum(y.argmax(axis=1) == t[i : i + batch_size]))
        return correct / x.shape[0]

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of ``loss(x, t, train=True)`` by backpropagation, named like ``params``
        (the book's ``MultiLayerNetExtend.gradient``: forward, loss, backward, collect).
        The loss layer checks the labels or target rows, as in ``loss``."""
        x = self._check_x(x)
        t = self._check_batch_size(x, t)
        # forward
        loss = self.last_layer.forward(self.plan.forward(self.layers, x, train=True), t)
        if self.weight_decay_lambda:
            loss += self.weight_decay_loss()
        self.last_loss = loss
        # backward
        self.plan.backward(self.last_layer)  # from the loss (dout = 1) back to the first layer
        # collect
        lam = self.weight_decay_lambda
        grads = {}
        for name, (layer, key) in self._owner.items():
            grads[name] = layer.grads[key]
            if lam and name.startswith("W"):
                grads[name] = grads[name] + lam * self.params[name]
        return grads

    def numerical_gradient(
        self, x: np.ndarray, t: np.ndarray, h: float = G.H
    ) -> dict[str, np.ndarray]:
        """Gradients of ``loss(x, t, train=True)`` by central differences of step ``h``
        (slow; for checks)."""

        def f(_):
            return self.loss(x, t, train=True)

        return {name: G.numerical_gradient(f, p, h) for name, p in self.params.items()}

    # -- state -----------------------------------------------------------------------------

    @property
    def config(self) -> dict:
        """Constructor arguments that rebuild this network (JSON-serialisable; the book's
        networks set them, a hand-built Sequential has none)."""
        return dict(self._config)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter and buffer, by name (the live arrays; copy before changing)."""
        return {**self.params, **self.buffers}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays into the parameters and buffers in place (the layers keep them).

        Raises ValueError naming missing or unexpected entries and mismatched shapes,
        before anything is changed.
        """
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        if missing or extra:
            raise ValueError(
                f"state does not match {type(self).__name__}: missing {missing}, unexpected {extra}"
            )
        for name, array in own.items():
            value = np.asarray(state[name])
            if value.shape != array.shape:
                raise ValueError(
                    f"{name} must have shape {array.shape} for this {type(self).__name__}, "
                    f"got {value.shape}"
                )
            if not np.issubdtype(value.dtype, np.floating):
                raise ValueError(f"{name} must hold floating values, got dtype {value.dtype}")
        for name, array in own.items():
            np.copyto(array, state[name], casting="same_kind")

    def _generators(self) -> list[np.random.Generator]:
        """The distinct random generators the layers draw from (dropout masks), in order."""
        found: dict[int, np.random.Generator] = {}
        for layer in self.layers:
            rng = getattr(layer, "rng", None)
            if isinstance(rng, np.random.Generator):
                found.setdefault(id(rng), rng)
        return list(found.values())

    def rng_states(self) -> list[dict]:
        """States of the layers' random generators (for bit-identical resumed training)."""
        return [g.bit_generator.state for g in self._generators()]

    def set_rng_states(self, states: list[dict]) -> None:
        """Restore what ``rng_states`` returned."""
        gens = self._generators()
        if len(states) != len(gens):
            raise ValueError(f"expected {len(gens)} generator states, got {len(states)}")
        for g, state in zip(gens, states, strict=True):
            g.bit_generator.state = state

    def set_dropout_mask_hold(self, hold: bool | Sequence[bool]) -> list[bool]:
        """Make every Dropout reuse its current mask (True) or draw new ones (False).

        ``hold`` is one setting for all, or one per Dropout in order. Returns the settings
        before, one per Dropout, so that passing them back restores them exactly.
        """
        dropouts = [layer for layer in self.layers if isinstance(layer, Dropout)]
        if isinstance(hold, (bool, np.bool_)):
            hold = [bool(hold)] * len(dropouts)
        hold = list(hold)
        if len(hold) != len(dropouts) or not all(isinstance(h, (bool, np.bool_)) for h in hold):
            raise ValueError(
                f"hold must be True, False or {len(dropouts)} of them (one per Dropout), "
                f"got {hold!r}"
            )
        before = [layer.hold_mask for layer in dropouts]
        for layer, h in zip(dropouts, hold, strict=True):
            layer.hold_mask = bool(h)
        return before

    def n_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        lines += [f"  {layer!r}," for layer in self.layers]
        lines.append(f"  {self.last_layer!r},")
        extra = (
            f", weight_decay_lambda={self.weight_decay_lambda}" if self.weight_decay_lambda else ""
        )
        lines.append(f")  # {self.n_params():,} parameters, {self.dtype}{extra}")
        return "\n".join(lines)
