"""Optimizers that update a network's parameters from their gradients (book ch6).

Every optimizer has ``update(params, grads) -> None``. It changes the arrays in ``params``
in place -- a model's layers hold those very arrays -- and never rebinds ``params[key]``.
State (velocities, sums of squared gradients, moments) is created lazily on the first
update, one array per parameter name, with the parameter's shape and dtype.

Arithmetic stays in the parameter's dtype: hyperparameters are stored as Python floats
(under NEP 50 ``float32_array * python_float`` stays float32, whereas a ``numpy.float64``
scalar would promote to float64), and each step works inside one reusable scratch array
per (shape, dtype), so a step allocates no temporaries the size of a parameter.

Checkpoint format of ``state_dict()`` / ``load_state_dict()``: a flat ``dict`` whose values
are NumPy arrays, so ``safetensors.numpy.save_file`` can store it as is::

    "t"              int64, shape ()     number of updates done so far
    "lr", ...        float64, shape ()   each name in ``hyperparameters``
    "<slot>/<name>"  the param's dtype   state array ``slot`` of parameter ``name``,
                                         e.g. "v/W1" (Momentum), "m/W1" and "v/W1" (Adam)

Loading restores the hyperparameters too (a learning-rate schedule may have changed ``lr``),
so a training run resumed from a checkpoint continues bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .support.checks import check_fraction, check_positive, check_positive_int

__all__ = [
    "EPS", "OPTIMIZERS", "SGD", "AdaGrad", "Adam", "Momentum", "Nesterov", "Optimizer", "RMSprop",
    "get_optimizer",
]  # fmt: skip

EPS = 1e-7  # keeps g / (sqrt(h) + EPS) finite where h == 0; the book's value


class _Hyperparameter:
    """An attribute validated on every assignment and stored as a Python float."""

    def __init__(self, check: Callable[[str, object], float]) -> None:
        self.check = check

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.__dict__[self.name]

    def __set__(self, obj: object, value: object) -> None:
        obj.__dict__[self.name] = self.check(self.name, value)


class Optimizer:
    """Base class: checks ``params`` against ``grads``, keeps per-parameter state, saves it.

    Shape: ``params`` and ``grads`` map the same names to arrays of the same shape;
    each state array has the shape and dtype of its parameter.
    """

    lr = _Hyperparameter(check_positive)
    hyperparameters: tuple[str, ...] = ("lr",)  # shown by __repr__, saved by state_dict
    slots: tuple[str, ...] = ()  # names of the per-parameter state arrays, e.g. ("m", "v")

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self.t = 0  # updates done so far; Adam's bias correction needs it
        self.state: dict[str, dict[str, np.ndarray]] = {slot: {} for slot in self.slots}
        # Reused by every step; not state, so never saved.
        self._scratch: dict[tuple[tuple[int, ...], np.dtype], np.ndarray] = {}

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.hyperparameters)
        return f"{type(self).__name__}({args})"

    def update(self, params: Mapping[str, np.ndarray], grads: Mapping[str, ArrayLike]) -> None:
        """Take one step on every array of ``params``, in place.

        Shape: ``grads[key]`` has the shape of ``params[key]``, for the same set of keys.
        Everything is checked before anything changes, so a bad call leaves no half step.
        """
        self.check(params, grads)
        self.t += 1
        for key, p in params.items():
            self._step(key, p, grads[key])

    def _step(self, key: str, p: np.ndarray, g: ArrayLike) -> None:
        raise NotImplementedError

    def check(self, params: Mapping[str, np.ndarray], grads: Mapping[str, ArrayLike]) -> None:
        """Raise unless ``update(params, grads)`` can take one step: the same keys, writeable
        float arrays, matching shapes, and any state of this optimizer that fits them."""
        missing = [key for key in params if key not in grads]
        extra = [key for key in grads if key not in params]
        if missing or extra:
            raise ValueError(
                f"grads must have the same keys as params: grads lacks {missing}, "
                f"grads has {extra} that params lacks"
            )
        for key, p in params.items():
            if not isinstance(p, np.ndarray) or p.dtype.kind != "f":
                kind = f"array of {p.dtype}" if isinstance(p, np.ndarray) else type(p).__name__
                raise TypeError(
                    f"params[{key!r}] must be a floating-point numpy array (it is updated "
                    f"in place), got {kind}"
                )
            if not p.flags.writeable:
                raise ValueError(f"params[{key!r}] is read-only; pass a writeable array")
            g_shape = np.shape(grads[key])
            if g_shape != p.shape:
                raise ValueError(
                    f"grads[{key!r}] has shape {g_shape}, but params[{key!r}] has shape "
                    f"{p.shape}; they must match"
                )
            for slot in self.slots:
                s = self.state[slot].get(key)
                if s is not None and (s.shape != p.shape or s.dtype != p.dtype):
                    raise ValueError(
                        f"state {slot}/{key} is {s.dtype} of shape {s.shape}, but "
                        f"params[{key!r}] is {p.dtype} of shape {p.shape}; the state must come "
                        f"from this model (load a matching state_dict or use a new optimizer)"
                    )

    def _slot(self, slot: str, key: str, p: np.ndarray) -> np.ndarray:
        """Return the state array ``slot`` of parameter ``key``, zeros on first use."""
        s = self.state[slot].get(key)
        if s is None:
            s = self.state[slot][key] = np.zeros_like(p)
        return s

    def _buffer(self, p: np.ndarray) -> np.ndarray:
        """Return a scratch array shaped like ``p``, shared by all parameters of that shape."""
        buf = self._scratch.get((p.shape, p.dtype))
        if buf is None:
            buf = self._scratch[p.shape, p.dtype] = np.empty(p.shape, p.dtype)
        return buf

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return a copy of the state as a flat dict of arrays (format in the module docstring)."""
        state = {"t": np.array(self.t, dtype=np.int64)}
        for name in self.hyperparameters:
            state[name] = np.array(getattr(self, name), dtype=np.float64)
        for slot, arrays in self.state.items():
            for key, s in arrays.items():
                state[f"{slot}/{key}"] = s.copy()
        return state

    def load_state_dict(self, state: Mapping[str, ArrayLike]) -> None:
        """Replace the state and hyperparameters by those of ``state`` (a ``state_dict()``).

        Shape: each ``"<slot>/<name>"`` array must match parameter ``name``; that is checked
        by the next ``update``.
        """
        scalars = ("t", *self.hyperparameters)
        expected = f"{list(scalars)} and '<slot>/<name>' arrays with slot in {list(self.slots)}"
        missing = [key for key in scalars if key not in state]
        if missing:
            raise ValueError(
                f"state_dict lacks {missing}; {type(self).__name__} expects {expected}"
            )
        arrays: dict[str, dict[str, np.ndarray]] = {slot: {} for slot in self.slots}
        unknown = []
        for key, value in state.items():
            if key in scalars:
                continue
            slot, sep, name = key.partition("/")
            if not sep or not name or slot not in arrays:
                unknown.append(key)
                continue
            s = np.array(value)  # a copy: later steps must not write into the caller's arrays
            if s.dtype.kind != "f":
                raise ValueError(f"state_dict[{key!r}] must be a float array, got {s.dtype}")
            arrays[slot][name] = s
        if unknown:
            raise ValueError(
                f"state_dict has keys {unknown} that {type(self).__name__} does not use; "
                f"it expects {expected}"
            )
        names = [sorted(arrays[slot]) for slot in self.slots]
        if any(n != names[0] for n in names):
            raise ValueError(
                f"state_dict slots {list(self.slots)} must cover the same parameters, got "
                + ", ".join(f"{slot}: {n}" for slot, n in zip(self.slots, names, strict=True))
            )
        t = check_positive_int("t", _scalar("t", state["t"]), allow_zero=True)
        # Validate every hyperparameter before assigning any, so a bad dict changes nothing.
        hyper = {
            name: getattr(type(self), name).check(name, _scalar(name, state[name]))
            for name in self.hyperparameters
        }
        for name, value in hyper.items():
            setattr(self, name, value)
        self.t = t
        self.state = arrays


def _scalar(key: str, value: ArrayLike) -> int | float:
    """Return the one number held by ``value`` (a 0-d or 1-element array, or a number)."""
    a = np.asarray(value)
    if a.size != 1:
        raise ValueError(f"state_dict[{key!r}] must hold one number, got shape {a.shape}")
    return a.reshape(()).item()


class SGD(Optimizer):
    """Stochastic gradient descent.

    Shape: each step works elementwise on arrays of the parameter's shape.
    Rule (book eq. 6.1): W <- W - lr * g.
    """

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _step(self, key: str, p: np.ndarray, g: ArrayLike) -> None:
        buf = np.multiply(g, self.lr, out=self._buffer(p))
        p -= buf


class Momentum(Optimizer):
    """SGD with momentum (Polyak 1964).

    Shape: each step works elementwise; state ``v`` has the parameter's shape, zeros at first.
    Rule (book eqs. 6.3-6.4): v <- momentum * v - lr * g;  W <- W + v.
    """

    momentum = _Hyperparameter(check_fraction)
    hyperparameters = ("lr", "momentum")
    slots = ("v",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = momentum

    def _step(self, key: str, p: np.ndarray, g: ArrayLike) -> None:
        v = self._slot("v", key, p)
        buf = self._buffer(p)
        v *= self.momentum
        v -= np.multiply(g, self.lr, out=buf)  # v = momentum * v - lr * g
        p += v


class Nesterov(Optimizer):
    """Nesterov's accelerated gradient, in the form that takes the gradient at the parameters.

    Shape: each step works elementwise; state ``v`` has the parameter's shape, zeros at first.
    Rule (Bengio, Boulanger-Lewandowski & Pascanu 2012, eq. 7, reformulating Sutskever et al.
    2013): v_new = m * v - lr * g;  W <- W + m * v_new - lr * g,
    which equals W + m**2 * v - (1 + m) * lr * g with the *old* v. Here W is the look-ahead
    point theta + m * v of the classic form v <- m * v - lr * grad(theta + m * v),
    theta <- theta + v. The book's sample code applies m**2 to the *new* v instead, i.e.
    W <- W + m**3 * v - (1 + m + m**2) * lr * g, which is not Nesterov's method; we do not.
    """

    momentum = _Hyperparameter(check_fraction)
    hyperparameters = ("lr", "momentum")
    slots = ("v",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__(lr)
        self.momentum = momentum

    def _step(self, key: str, p: np.ndarray, g: ArrayLike) -> None:
        v = self._slot("v", key, p)
        buf = np.multiply(g, self.lr, out=self._buffer(p))  # lr * g
        v *= self.momentum
        v -= buf  # v = m * v - lr * g
        p -= buf
        p += np.multiply(v, self.momentum, out=buf)  # W = W - lr * g + m * v


class AdaGrad(Optimizer):
    """AdaGrad: per-element learning rates that shrink as gradients add up (Duchi et al. 2011).

    Shape: each step works elementwise; state ``h`` has the parameter's shape, zeros at first.
    Rule (book eqs. 6.5-6.6, with the EPS of the book's code):
    h <- h + g * g;  W <- W - lr * g / (sqrt(h) + EPS).
    """

    slots = ("h",)

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__(lr)

    def _step(self, key: str, p: np.ndarray, g: ArrayLike) -> None:
        h = self._slot("h", key, p)
        buf = self._buffer(p)
        h += np.square(g, out=buf)
        _scaled_descent(p, g, h, self.lr, buf)


class RMSprop(Optimizer):
    """RMSprop: AdaGrad with an exponentially decaying sum (Tieleman & Hinton 2012, lecture 6e).

    Shape: each step works elementwise; state ``h`` has the parameter's shape, zeros at first.
    Rule (the book's code): h <- decay_rate * h + (1 - decay_rate) * g * g;
    W <- W - lr * g / (sqrt(h) + EPS).
    """

    decay_rate = _Hyperparameter(check_fraction)
    hyperparameters = ("lr", "decay_rate")
    slots = ("h",)

    def __init__(self, lr: float = 0.01, decay_rate: float = 0.99) -> None:
        super().__init__(lr)
        self.decay_rate = decay_rate

    def _step(self, key: str, p: np.ndarray, g: ArrayLike) -> None:
        h = self._slot("h", key, p)
        buf = self._buffer(p)
        h *= self.decay_rate
        np.square(g, out=buf)
        buf *= 1.0 - self.decay_rate
        h += buf
        _scaled_descent(p, g, h, self.lr, buf)


def _scaled_descent(p: np.ndarray, g: ArrayLike, h: np.ndarray, lr: float, buf: np.ndarray) -> None:
    """W <- W - lr * g / (sqrt(h) + EPS), computed inside ``buf``."""
    np.sqrt(h, out=buf)
    buf += EPS
    np.divide(g, buf, out=buf)
    buf *= lr
    p -= buf


class Adam(Optimizer):
    """Adam: momentum plus RMSprop-style scaling, with bias correction (Kingma & Ba 2014).

    Shape: each step works elementwise; states ``m`` and ``v`` have the parameter's shape.
    Rule (the book's code; Kingma & Ba, end of section 2, bias correction folded into lr_t):
    t <- t + 1;  lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t);
    m <- m + (1 - beta1) * (g - m);  v <- v + (1 - beta2) * (g * g - v);
    W <- W - lr_t * m / (sqrt(v) + EPS).
    This is the paper's update with its epsilon equal to EPS / sqrt(1 - beta2**t).
    """

    beta1 = _Hyperparameter(check_fraction)
    beta2 = _Hyperparameter(check_fraction)
    hyperparameters = ("lr", "beta1", "beta2")
    slots = ("m", "v")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999) -> None:
        super().__init__(lr)
        self.beta1 = beta1
        self.beta2 = beta2

    def _step(self, key: str, p: np.ndarray, g: ArrayLike) -> None:
        m = self._slot("m", key, p)
        v = self._slot("v", key, p)
        buf = self._buffer(p)
        # A Python float (math, not numpy), so that float32 parameters stay float32.
        lr_t = self.lr * math.sqrt(1.0 - self.beta2**self.t) / (1.0 - self.beta1**self.t)
        np.subtract(g, m, out=buf)
        buf *= 1.0 - self.beta1
        m += buf  # m += (1 - beta1) * (g - m)
        np.square(g, out=buf)
        buf -= v
        buf *= 1.0 - self.beta2
        v += buf  # v += (1 - beta2) * (g * g - v)
        np.sqrt(v, out=buf)
        buf += EPS
        np.divide(m, buf, out=buf)
        buf *= lr_t
        p -= buf  # W -= lr_t * m / (sqrt(v) + EPS)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}


def get_optimizer(name: str, **kwargs: float) -> Optimizer:
    """Build an optimizer by name, case-insensitive: ``get_optimizer("Adam", lr=1e-3)``."""
    cls = OPTIMIZERS.get(name.lower()) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    unknown = {k: v for k, v in kwargs.items() if k not in cls.hyperparameters}
    if unknown:
        got = ", ".join(f"{k}={v!r}" for k, v in unknown.items())
        raise ValueError(f"{cls.__name__} takes {', '.join(cls.hyperparameters)}, got {got}")
    return cls(**kwargs)
