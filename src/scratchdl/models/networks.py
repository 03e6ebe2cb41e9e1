"""The book's networks (ch5-8): ``TwoLayerNet``, ``MultiLayerNet`` (``MultiLayerNetExtend``
included), ``SimpleConvNet`` and ``DeepConvNet``, each a ``Sequential`` of the book's layers."""

from __future__ import annotations

import numpy as np

from .. import weight_init as init
from ..columns import conv_output_size as out_len
from ..layers import (
    Affine,
    BatchNormalization,
    Convolution,
    Dropout,
    Layer,
    Pooling,
    Relu,
    Sigmoid,
    Tanh,
)
from ..support.checks import (
    as_rng,
    check_flag,
    check_fraction,
    check_positive,
    check_positive_int,
    check_sizes,
    float_dtype,
)
from .sequential import Sequential

ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid, "tanh": Tanh}


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
        config = dict(
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
        super().__init__(layers, input_shape=(sizes[0],), dtype=dtype, config=config)


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
        hidden = list(check_sizes("hidden_size_list", hidden_size_list))
        use_dropout = check_flag("use_dropout", use_dropout)
        use_batchnorm = check_flag("use_batchnorm", use_batchnorm)
        dropout_ratio = check_fraction("dropout_ratio", dropout_ratio)  # also when unused
        input_size = check_positive_int("input_size", input_size)
        output_size = check_positive_int("output_size", output_size)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not isinstance(weight_init_std, str):
            weight_init_std = check_positive("weight_init_std", weight_init_std)
        dtype = float_dtype(dtype)
        rng = as_rng(rng)
        config = dict(
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
            config=config,
        )


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
        C, H, W = check_sizes("input_dim (C, H, W)", input_dim, 3)
        hidden_size = check_positive_int("hidden_size", hidden_size)
        output_size = check_positive_int("output_size", output_size)
        std = check_positive("weight_init_std", weight_init_std)
        dtype = float_dtype(dtype)
        rng = as_rng(rng)
        config = dict(
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
        super().__init__(layers, input_shape=(C, H, W), dtype=dtype, config=config)


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
        C, H, W = check_sizes("input_dim (C, H, W)", input_dim, 3)
        hidden_size = check_positive_int("hidden_size", hidden_size)
        output_size = check_positive_int("output_size", output_size)
        dtype = float_dtype(dtype)
        rng = as_rng(rng)
        config = dict(
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
        super().__init__(layers, input_shape=(C, H, W), dtype=dtype, config=config)


# The book's name for MultiLayerNet with its options (batch norm, dropout, weight decay; ch6).
# One class: a model file names it MultiLayerNet. The book's ``dropout_ration`` is spelled
# ``dropout_ratio`` here.
MultiLayerNetExtend = MultiLayerNet

MODELS = {cls.__name__: cls for cls in (TwoLayerNet, MultiLayerNet, SimpleConvNet, DeepConvNet)}


def model_from_config(class_name: str, config: dict, *, rng=None) -> Sequential:
    """Rebuild a model from its class name and ``config`` (as saved in a model file)."""
    if class_name not in MODELS:
        raise ValueError(f"unknown model class {class_name!r}; choices: {sorted(MODELS)}")
    try:
        return MODELS[class_name](**config, rng=rng)
    except TypeError as e:
        raise ValueError(f"bad constructor arguments for {class_name}: {e}") from e
