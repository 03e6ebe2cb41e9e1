"""The book's networks, built from layers (ch5-8).

``Sequential`` holds a list of layers and a loss layer and gives every network the same
interface: ``params`` (the very arrays the layers use, named as in the book: ``W1``, ``b1``,
..., ``gamma1``, ``beta1``, ...), ``predict``, ``loss``, ``accuracy``, ``gradient`` and
``numerical_gradient``. ``TwoLayerNet``, ``MultiLayerNet``, ``SimpleConvNet`` and
``DeepConvNet`` only decide which layers to stack.

Threads: a network with convolutions runs its leading per-sample layers (everything up to
the first dropout or training-mode batch norm) on parts of the batch at once, one thread per
part, each part through its own copies of those layers that share the parameters; the
parameter gradients are the sums over the parts. See ``scratchdl._parallel``.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Sequence

import numpy as np

from . import _parallel as parallel
from . import gradient as G
from . import init
from .checks import as_rng, check_fraction, check_positive, check_positive_int, float_dtype
from .im2col import output_size as out_len
from .layers import (
    Affine,
    BatchNormalization,
    Convolution,
    Dropout,
    Layer,
    Pooling,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
    Tanh,
)

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid, "tanh": Tanh}


def _forward_part(layers: list[Layer], x: np.ndarray, train: bool) -> np.ndarray:
    for layer in layers:
        x = layer.forward(x, train=train)
    return x


def _backward_part(layers: list[Layer], dout: np.ndarray) -> None:
    for layer in reversed(layers):
        dout = layer.backward(dout)


def _part_copy(layer: Layer) -> Layer:
    """A copy of ``layer`` for another part of the batch: the same parameters and buffers
    (the very arrays, so optimizer updates reach both), its own caches and gradients."""
    twin = copy.copy(layer)
    shared = {id(a) for a in (*layer.params.values(), *layer.buffers.values())}
    for name, value in vars(layer).items():
        if isinstance(value, np.ndarray) and id(value) not in shared:
            setattr(twin, name, None)  # a cache of the latest pass: the copy fills its own
    twin.grads = {}
    return twin


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
    ) -> None:
        self.layers = list(layers)
        if self.layers and self.layers[0].params:
            self.layers[0].skip_dx = True  # the gradient of the input data is never used
        self.last_layer = loss_layer if loss_layer is not None else SoftmaxWithLoss()
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.weight_decay_lambda = check_positive(
            "weight_decay_lambda", weight_decay_lambda, allow_zero=True
        )
        self.dtype = float_dtype(dtype)
        self.params: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self._owner: dict[str, tuple[Layer, str]] = {}  # global name -> (layer, local name)
        self.last_loss: float | None = None  # the loss computed by the latest gradient()
        # threads: how the latest forward pass split the batch, for backward to do the same
        self._split: tuple[int, list[tuple[int, int]]] = (0, [])
        self._stacks: list[list[Layer]] = []  # per batch part: the layers it goes through
        self._stacks_key: tuple = ()
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
                    self._owner[name] = (layer, key)

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
        if not np.isfinite(x).all():
            bad = x[~np.isfinite(x)].flat[0]
            raise ValueError(f"x must be finite, got {bad} (NaN or infinity in the input)")
        return x

    def _check_t(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t)
        if t.ndim == 0 or t.shape[0] != x.shape[0]:
            raise ValueError(
                f"x and t must have the same batch size, got x {x.shape} and t {t.shape}"
            )
        if isinstance(self.last_layer, SoftmaxWithLoss):
            K = self.output_size
            if t.ndim == 2 and t.shape[1] != K:
                raise ValueError(f"one-hot t must have shape ({x.shape[0]}, {K}), got {t.shape}")
            if t.ndim == 1:
                if not np.issubdtype(t.dtype, np.integer):
                    if not np.issubdtype(t.dtype, np.floating) or np.any(np.mod(t, 1) != 0):
                        raise ValueError(f"labels must be integers, got dtype {t.dtype}")
                if t.size and (t.min() < 0 or t.max() >= K):
                    raise ValueError(
                        f"labels must lie in [0, {K - 1}], got values in [{t.min()}, {t.max()}]"
                    )
            if t.ndim > 2:
                raise ValueError(f"t must be labels (N,) or one-hot (N, {K}), got {t.shape}")
        return t

    # -- the network -----------------------------------------------------------------------

    def predict(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """Scores before the output function (softmax is in the loss). Shape: (N, ...) -> (N, K)."""
        return self._forward(self._check_x(x), train)

    def _forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        k, parts = self._split = self._plan(x.shape[0], train)
        if k:  # the first k layers on parts of the batch, one thread each
            stacks = self._part_stacks(len(parts))
            outs = parallel.run_all(
                [
                    functools.partial(_forward_part, stack[:k], x[lo:hi], train)
                    for stack, (lo, hi) in zip(stacks, parts, strict=True)
                ]
            )
            x = np.concatenate(outs)
        for layer in self.layers[k:]:
            x = layer.forward(x, train=train)
        return x

    def _plan(self, N: int, train: bool) -> tuple[int, list[tuple[int, int]]]:
        """``(k, parts)``: the first k layers run on these parts of the batch (k = 0: none).

        Only networks with a convolution among those layers are split: for an MLP's small
        products, handing work to threads costs more than it saves.
        """
        k = 0
        while k < len(self.layers) and self.layers[k].splittable(train):
            k += 1
        n = parallel.threads_for(N)
        if n == 1 or not any(isinstance(layer, Convolution) for layer in self.layers[:k]):
            return 0, [(0, N)]
        return k, parallel.split(N, n)

    def _part_stacks(self, n: int) -> list[list[Layer]]:
        """``n`` stacks of layers: the network's own, then copies that share its parameters
        and buffers (the very arrays) but keep their own caches. Rebuilt when layers change."""
        key = (n, *(id(layer) for layer in self.layers), *(id(l.params) for l in self.layers))
        if key != self._stacks_key:
            copies = [[_part_copy(layer) for layer in self.layers] for _ in range(n - 1)]
            self._stacks, self._stacks_key = [self.layers, *copies], key
        return self._stacks

    def loss(self, x: np.ndarray, t: np.ndarray, train: bool = True) -> float:
        """Loss of the batch, weight decay included."""
        x = self._check_x(x)
        t = self._check_t(x, t)
        loss = self.last_layer.forward(self._forward(x, train), t)
        if self.weight_decay_lambda:
            lam = self.weight_decay_lambda
            loss += sum(
                0.5 * lam * float(np.sum(W.astype(np.float64) ** 2)) for W in self._weights()
            )
        return loss

    def _weights(self) -> list[np.ndarray]:
        return [a for k, a in self.params.items() if k.startswith("W")]

    def accuracy(self, x: np.ndarray, t: np.ndarray, batch_size: int = 100) -> float:
        """Fraction of samples whose highest score is the label, over every sample."""
        check_positive_int("batch_size", batch_size)
        x = self._check_x(x)
        t = self._check_t(x, t)
        if t.ndim != 1:
            t = t.argmax(axis=1)
        if x.shape[0] == 0:
            raise ValueError("accuracy needs at least one sample, got an empty batch")
        correct = 0
        for i in range(0, x.shape[0], batch_size):  # the last, shorter batch included
            y = self.predict(x[i : i + batch_size], train=False)
            correct += int(np.sum(y.argmax(axis=1) == t[i : i + batch_size]))
        return correct / x.shape[0]

    def gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of ``loss(x, t, train=True)`` by backpropagation, named like ``params``."""
        self.last_loss = self.loss(x, t, train=True)
        dout = self.last_layer.backward(1.0)
        k, parts = self._split
        for layer in reversed(self.layers[k:]):
            dout = layer.backward(dout)
        if k:  # back through the first k layers on the parts of the batch forward used
            stacks = self._stacks
            parallel.run_all(
                [
                    functools.partial(_backward_part, stack[:k], dout[lo:hi])
                    for stack, (lo, hi) in zip(stacks, parts, strict=True)
                ]
            )
            for i, layer in enumerate(self.layers[:k]):  # the loss is a mean: partial sums add
                layer.grads = {
                    key: functools.reduce(np.add, [stack[i].grads[key] for stack in stacks])
                    for key in layer.grads
                }
        grads = {}
        for name, (layer, key) in self._owner.items():
            if name in self.params:
                grads[name] = layer.grads[key]
        if self.weight_decay_lambda:
            for name in grads:
                if name.startswith("W"):
                    grads[name] = grads[name] + self.weight_decay_lambda * self.params[name]
        return grads

    def numerical_gradient(self, x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of ``loss(x, t, train=True)`` by central differences (slow; for checks)."""

        def f(_):
            return self.loss(x, t, train=True)

        return {name: G.numerical_gradient(f, p) for name, p in self.params.items()}

    # -- state -----------------------------------------------------------------------------

    @property
    def config(self) -> dict:
        """Constructor arguments that rebuild this network (JSON-serialisable)."""
        return {}

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

    def set_dropout_mask_hold(self, hold: bool) -> None:
        """Make every Dropout reuse its current mask (True) or draw new ones (False)."""
        for layer in self.layers:
            if isinstance(layer, Dropout):
                layer.hold_mask = hold

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


def _zeros(n: int, dtype) -> np.ndarray:
    return np.zeros(n, dtype=dtype)


class TwoLayerNet(Sequential):
    """The book's ch5 network: Affine - ReLU - Affine - SoftmaxWithLoss.

    Weights are N(0, weight_init_std**2), biases zero. Shape: (N, input_size) -> (N, output_size).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        weight_init_std: float = 0.01,
        *,
        rng=None,
        dtype=np.float32,
    ) -> None:
        sizes = [
            check_positive_int(n, v)
            for n, v in (
                ("input_size", input_size),
                ("hidden_size", hidden_size),
                ("output_size", output_size),
            )
        ]
        dtype = float_dtype(dtype)
        rng = as_rng(rng)
        std = check_positive("weight_init_std", weight_init_std)
        self._config = dict(
            input_size=sizes[0],
            hidden_size=sizes[1],
            output_size=sizes[2],
            weight_init_std=std,
            dtype=dtype.name,
        )
        layers = [
            Affine(init.std_normal(sizes[:2], std, rng=rng, dtype=dtype), _zeros(sizes[1], dtype)),
            Relu(),
            Affine(init.std_normal(sizes[1:], std, rng=rng, dtype=dtype), _zeros(sizes[2], dtype)),
        ]
        super().__init__(layers, input_shape=(sizes[0],), dtype=dtype)

    @property
    def config(self) -> dict:
        return dict(self._config)


class MultiLayerNet(Sequential):
    """The book's fully connected network of ch6, MultiLayerNetExtend included.

    Each hidden layer is Affine [- BatchNormalization] - activation [- Dropout]; the output is
    an Affine into SoftmaxWithLoss. ``weight_init_std`` is a number or 'relu'/'he'
    (std = sqrt(2 / fan_in)) or 'sigmoid'/'xavier' (std = sqrt(1 / fan_in)).
    Shape: (N, input_size) -> (N, output_size).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size_list: list[int],
        output_size: int,
        activation: str = "relu",
        weight_init_std: float | str = "relu",
        weight_decay_lambda: float = 0,
        use_dropout: bool = False,
        dropout_ratio: float = 0.5,
        use_batchnorm: bool = False,
        *,
        rng=None,
        dtype=np.float32,
    ) -> None:
        if not isinstance(hidden_size_list, (Sequence, np.ndarray)) or isinstance(
            hidden_size_list, str
        ):
            raise ValueError(f"hidden_size_list must be a list of sizes, got {hidden_size_list!r}")
        hidden = [check_positive_int("hidden size", h) for h in hidden_size_list]
        use_dropout = _check_flag("use_dropout", use_dropout)
        use_batchnorm = _check_flag("use_batchnorm", use_batchnorm)
        dropout_ratio = check_fraction("dropout_ratio", dropout_ratio)  # also when unused
        input_size = check_positive_int("input_size", input_size)
        output_size = check_positive_int("output_size", output_size)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not isinstance(weight_init_std, str):
            weight_init_std = check_positive("weight_init_std", weight_init_std)
        dtype = float_dtype(dtype)
        rng = as_rng(rng)
        self._config = dict(
            input_size=input_size,
            hidden_size_list=hidden,
            output_size=output_size,
            activation=activation,
            weight_init_std=weight_init_std,
            weight_decay_lambda=float(weight_decay_lambda),
            use_dropout=bool(use_dropout),
            dropout_ratio=float(dropout_ratio),
            use_batchnorm=bool(use_batchnorm),
            dtype=dtype.name,
        )
        sizes = [input_size, *hidden, output_size]
        layers: list[Layer] = []
        for i in range(1, len(sizes)):
            fan_in, fan_out = sizes[i - 1], sizes[i]
            std = init.resolve_std(weight_init_std, fan_in)
            W = init.std_normal((fan_in, fan_out), std, rng=rng, dtype=dtype)
            layers.append(Affine(W, _zeros(fan_out, dtype)))
            if i == len(sizes) - 1:
                break
            if use_batchnorm:
                layers.append(
                    BatchNormalization(np.ones(fan_out, dtype=dtype), _zeros(fan_out, dtype))
                )
            layers.append(ACTIVATIONS[activation]())
            if use_dropout:
                layers.append(Dropout(dropout_ratio, rng=rng))
        super().__init__(
            layers,
            input_shape=(input_size,),
            weight_decay_lambda=weight_decay_lambda,
            dtype=dtype,
        )

    @property
    def config(self) -> dict:
        return dict(self._config)


def _conv_param(name: str, param: dict) -> dict:
    required = {"filter_num", "filter_size", "pad", "stride"}
    if not isinstance(param, dict) or set(param) != required:
        raise ValueError(f"{name} must be a dict with keys {sorted(required)}, got {param!r}")
    return {
        "filter_num": check_positive_int(f"{name}['filter_num']", param["filter_num"]),
        "filter_size": check_positive_int(f"{name}['filter_size']", param["filter_size"]),
        "pad": check_positive_int(f"{name}['pad']", param["pad"], allow_zero=True),
        "stride": check_positive_int(f"{name}['stride']", param["stride"]),
    }


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):  # "no" would be truthy
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _input_dim(input_dim) -> tuple[int, int, int]:
    if not isinstance(input_dim, (Sequence, np.ndarray)) or len(input_dim) != 3:
        raise ValueError(f"input_dim must be (C, H, W), got {input_dim!r}")
    return tuple(check_positive_int("input_dim", v) for v in input_dim)


class SimpleConvNet(Sequential):
    """The book's ch7 network: Conv - ReLU - Pool(2x2) - Affine - ReLU - Affine - Softmax.

    Shape: (N, C, H, W) = (N, *input_dim) -> (N, output_size).
    """

    def __init__(
        self,
        input_dim: tuple[int, int, int] = (1, 28, 28),
        conv_param: dict | None = None,
        hidden_size: int = 100,
        output_size: int = 10,
        weight_init_std: float = 0.01,
        *,
        rng=None,
        dtype=np.float32,
    ) -> None:
        if conv_param is None:
            conv_param = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}
        cp = _conv_param("conv_param", conv_param)
        C, H, W = _input_dim(input_dim)
        hidden_size = check_positive_int("hidden_size", hidden_size)
        output_size = check_positive_int("output_size", output_size)
        std = check_positive("weight_init_std", weight_init_std)
        dtype = float_dtype(dtype)
        rng = as_rng(rng)
        self._config = dict(
            input_dim=[C, H, W],
            conv_param=cp,
            hidden_size=hidden_size,
            output_size=output_size,
            weight_init_std=std,
            dtype=dtype.name,
        )
        FN, FS = cp["filter_num"], cp["filter_size"]
        conv_h = out_len(H, FS, cp["stride"], cp["pad"])
        conv_w = out_len(W, FS, cp["stride"], cp["pad"])
        pool_size = FN * out_len(conv_h, 2, 2, 0) * out_len(conv_w, 2, 2, 0)
        layers = [
            Convolution(
                init.std_normal((FN, C, FS, FS), std, rng=rng, dtype=dtype),
                _zeros(FN, dtype),
                cp["stride"],
                cp["pad"],
            ),
            Relu(),
            Pooling(2, 2, stride=2),
            Affine(
                init.std_normal((pool_size, hidden_size), std, rng=rng, dtype=dtype),
                _zeros(hidden_size, dtype),
            ),
            Relu(),
            Affine(
                init.std_normal((hidden_size, output_size), std, rng=rng, dtype=dtype),
                _zeros(output_size, dtype),
            ),
        ]
        super().__init__(layers, input_shape=(C, H, W), dtype=dtype)

    @property
    def config(self) -> dict:
        return dict(self._config)


DEEP_CONV_PARAMS = (
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 16, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 32, "filter_size": 3, "pad": 2, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
    {"filter_num": 64, "filter_size": 3, "pad": 1, "stride": 1},
)


class DeepConvNet(Sequential):
    """The book's ch8 network for 99%+ on MNIST, He-initialised:

    conv - relu - conv - relu - pool - conv - relu - conv - relu - pool - conv - relu - conv -
    relu - pool - affine - relu - dropout - affine - dropout - softmax.
    The 3x3 convolutions have 16, 16, 32, 32, 64, 64 filters (the 4th with pad 2); the pools
    are 2x2 with stride 2. Dropout is inverted (see ``Dropout``).
    Shape: (N, *input_dim) -> (N, output_size).
    """

    def __init__(
        self,
        input_dim: tuple[int, int, int] = (1, 28, 28),
        conv_param_1: dict | None = None,
        conv_param_2: dict | None = None,
        conv_param_3: dict | None = None,
        conv_param_4: dict | None = None,
        conv_param_5: dict | None = None,
        conv_param_6: dict | None = None,
        hidden_size: int = 50,
        output_size: int = 10,
        dropout_ratio: float = 0.5,
        *,
        rng=None,
        dtype=np.float32,
    ) -> None:
        given = (conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5, conv_param_6)
        cps = [
            _conv_param(f"conv_param_{i + 1}", dict(DEEP_CONV_PARAMS[i]) if p is None else p)
            for i, p in enumerate(given)
        ]
        C, H, W = _input_dim(input_dim)
        hidden_size = check_positive_int("hidden_size", hidden_size)
        output_size = check_positive_int("output_size", output_size)
        dtype = float_dtype(dtype)
        rng = as_rng(rng)
        self._config = dict(
            input_dim=[C, H, W],
            **{f"conv_param_{i + 1}": cp for i, cp in enumerate(cps)},
            hidden_size=hidden_size,
            output_size=output_size,
            dropout_ratio=float(dropout_ratio),
            dtype=dtype.name,
        )
        layers: list[Layer] = []
        channels, h, w = C, H, W
        for i, cp in enumerate(cps):
            FN, FS = cp["filter_num"], cp["filter_size"]
            Wc = init.he((FN, channels, FS, FS), channels * FS * FS, rng=rng, dtype=dtype)
            layers += [Convolution(Wc, _zeros(FN, dtype), cp["stride"], cp["pad"]), Relu()]
            h = out_len(h, FS, cp["stride"], cp["pad"])
            w = out_len(w, FS, cp["stride"], cp["pad"])
            channels = FN
            if i % 2 == 1:
                layers.append(Pooling(2, 2, stride=2))
                h, w = out_len(h, 2, 2, 0), out_len(w, 2, 2, 0)
        flat = channels * h * w
        layers += [
            Affine(
                init.he((flat, hidden_size), flat, rng=rng, dtype=dtype), _zeros(hidden_size, dtype)
            ),
            Relu(),
            Dropout(dropout_ratio, rng=rng),
            Affine(
                init.he((hidden_size, output_size), hidden_size, rng=rng, dtype=dtype),
                _zeros(output_size, dtype),
            ),
            Dropout(dropout_ratio, rng=rng),
        ]
        super().__init__(layers, input_shape=(C, H, W), dtype=dtype)

    @property
    def config(self) -> dict:
        return dict(self._config)


MODELS = {cls.__name__: cls for cls in (TwoLayerNet, MultiLayerNet, SimpleConvNet, DeepConvNet)}


def model_from_config(class_name: str, config: dict, *, rng=None) -> Sequential:
    """Rebuild a model from its class name and ``config`` (as saved in a model file)."""
    if class_name not in MODELS:
        raise ValueError(f"unknown model class {class_name!r}; choices: {sorted(MODELS)}")
    try:
        return MODELS[class_name](**config, rng=rng)
    except TypeError as e:
        raise ValueError(f"bad constructor arguments for {class_name}: {e}") from e
